/**
 * The generator set for proxyless gRPC clients (node metadata `GENERATOR: grpc`), Istio's grpcgen
 * shapes (ADR 0055). A gRPC client with the xDS resolver (`xds:///<host>:<port>`) asks LDS for the
 * listener named exactly `<host>:<port>`, then follows RDS → CDS → EDS by name:
 *
 * - LDS: one API listener per service port, named `<fqdn>:<port>`, whose HttpConnectionManager
 *   takes its routes by RDS (the fault filter, then the router: the only filters gRPC runs).
 * - RDS: a route config of the same name with one virtual host (domains `<fqdn>` and
 *   `<fqdn>:<port>`), the same VirtualService translation sidecars get, minus what gRPC cannot do
 *   (redirects and direct responses, which would make the client reject the whole config).
 * - CDS: the sidecar's outbound clusters without the SDS transport socket (gRPC has no SDS and
 *   rejects it) and with an lb_policy gRPC knows. mTLS only when a DestinationRule asks for
 *   ISTIO_MUTUAL, by `certificate_provider_instance` `default` (the bootstrap's file watcher).
 * - EDS: what sidecars of the same network get, except that endpoints on other networks are left
 *   out (reaching them means mTLS with the cluster's SNI through their east-west gateway, which a
 *   plaintext proxyless client cannot do), and every locality group names its locality, if only
 *   as `{}` (gRPC rejects a group without one; Envoy does not care).
 * - SDS: nothing.
 *
 * Listeners, routes and clusters do not depend on the client beyond its namespace (VirtualService
 * and DestinationRule visibility) and `sourceLabels`, so they are shared like the sidecar's.
 */
import type { PushContext } from '../model/pushcontext.js';
import type { Proxy } from '../model/proxy.js';
import { labelsMatch, type Service } from '../registry/model.js';
import { HTTP_CONNECTION_MANAGER_TYPE, UPSTREAM_TLS_CONTEXT_TYPE } from '../mesh/typeurls.js';
import { outboundSni, SECRET_DEFAULT, SECRET_ROOTCA } from '../mesh/names.js';
import { adsConfigSource, faultFilter, routerFilter, type EnvoyObject, type ResourceGroup } from './common.js';
import { outboundCluster } from './cds.js';
import { hasOutboundCluster, outboundClusterKeys } from './clusterkeys.js';
import { cdsShareKey, destinationRuleFor, effectivePolicy } from './destinationrule.js';
import { outboundLoadAssignments, sameNetworkOnly } from './eds.js';
import { localityClassOf } from './locality.js';
import { routeConfig, virtualHost } from './rds.js';
import { sourceLabelSelectors } from './virtualservice.js';

/** The certificate provider a grpc bootstrap must define for ISTIO_MUTUAL clusters (Istio's name). */
export const GRPC_CERT_PROVIDER = 'default';

/** `<fqdn>:<port>`: the name in `xds:///<fqdn>:<port>`, of the listener and its route config. */
export const grpcListenerName = (hostname: string, port: number): string => `${hostname}:${port}`;

function servicePorts(push: PushContext): { svc: Service; port: number }[] {
  return push.services.filter(hasOutboundCluster).flatMap((svc) => svc.ports.map((p) => ({ svc, port: p.port })));
}

export function grpcApiListener(hostname: string, port: number): EnvoyObject {
  const name = grpcListenerName(hostname, port);
  return {
    name,
    api_listener: {
      api_listener: {
        '@type': HTTP_CONNECTION_MANAGER_TYPE,
        stat_prefix: name,
        rds: { config_source: adsConfigSource(), route_config_name: name },
        // VirtualService faults are per-route config of this filter; gRPC implements it.
        http_filters: [faultFilter(), routerFilter()],
      },
    },
  };
}

export function grpcListeners(push: PushContext): EnvoyObject[] {
  return servicePorts(push).map(({ svc, port }) => grpcApiListener(svc.hostname, port));
}

/** Routes gRPC can follow: only `route` actions (a redirect or direct response NACKs the config). */
function forwardingOnly(vhost: EnvoyObject): EnvoyObject {
  const routes = (vhost['routes'] as EnvoyObject[]).filter((r) => r['route'] !== undefined);
  return { ...vhost, routes };
}

export function grpcRouteConfigs(push: PushContext, namespace: string, labels?: Readonly<Record<string, string>>): EnvoyObject[] {
  return servicePorts(push).map(({ svc, port }) => {
    const name = grpcListenerName(svc.hostname, port);
    const vh = virtualHost(push, { namespace, ...(labels ? { labels } : {}) }, svc, port, [svc.hostname, name]);
    return routeConfig(name, [forwardingOnly(vh)]);
  });
}

/** mTLS from the bootstrap's certificate provider: the workload certificate and the root bundle. */
export function grpcMtlsSocket(sans: readonly string[], sni: string): EnvoyObject {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': UPSTREAM_TLS_CONTEXT_TYPE,
      common_tls_context: {
        tls_certificate_provider_instance: { instance_name: GRPC_CERT_PROVIDER, certificate_name: SECRET_DEFAULT },
        validation_context: {
          ca_certificate_provider_instance: { instance_name: GRPC_CERT_PROVIDER, certificate_name: SECRET_ROOTCA },
          ...(sans.length > 0 ? { match_subject_alt_names: sans.map((s) => ({ exact: s })) } : {}),
        },
      },
      sni,
    },
  };
}

export function grpcClusters(push: PushContext, namespace: string): EnvoyObject[] {
  return outboundClusterKeys(push).map((k) => {
    const c = outboundCluster(push, k, namespace);
    // The sidecar's transport socket is SDS (rejected by gRPC) and may be auto mTLS, which a
    // proxyless client cannot know to do: only an explicit ISTIO_MUTUAL turns TLS on.
    delete c['transport_socket'];
    // gRPC knows ROUND_ROBIN and RING_HASH; other policies would make it reject the cluster.
    delete c['lb_policy'];
    // STRICT_DNS is not a gRPC cluster type; LOGICAL_DNS (one name, resolved by the client) is.
    if (c['type'] === 'STRICT_DNS') c['type'] = 'LOGICAL_DNS';
    const dr = destinationRuleFor(push, k.hostname, namespace);
    const tls = effectivePolicy(dr, k.port, k.subset).tls;
    if (tls?.mode === 'ISTIO_MUTUAL') {
      const sans = tls.subjectAltNames?.length ? tls.subjectAltNames : (push.identitiesByHost.get(k.hostname) ?? []);
      c['transport_socket'] = grpcMtlsSocket(sans, tls.sni || outboundSni(k.port, k.hostname, k.subset));
    }
    return c;
  });
}

/** sourceLabels make routes depend on the client's labels: the key names the selectors it matches. */
function routeShareKey(push: PushContext, proxy: Proxy): { key: string; labels?: Readonly<Record<string, string>> } {
  const selectors = sourceLabelSelectors(push);
  if (selectors.length === 0) return { key: `grpc|ns|${proxy.namespace}` };
  const matched = selectors.map((sel, i) => (labelsMatch(sel, proxy.labels) ? i : -1)).filter((i) => i >= 0);
  return { key: `grpc|ns|${proxy.namespace}|sl|${matched.join(',')}`, labels: proxy.labels };
}

export function grpcListenerGroups(push: PushContext): ResourceGroup[] {
  return [{ shareKey: 'grpc', build: () => grpcListeners(push) }];
}

export function grpcRouteGroups(push: PushContext, proxy: Proxy): ResourceGroup[] {
  const { key, labels } = routeShareKey(push, proxy);
  return [{ shareKey: key, build: () => grpcRouteConfigs(push, proxy.namespace, labels) }];
}

export function grpcClusterGroups(push: PushContext, proxy: Proxy): ResourceGroup[] {
  return [{ shareKey: `grpc|${cdsShareKey(push, proxy.namespace)}`, build: () => grpcClusters(push, proxy.namespace) }];
}

function withLocality(cla: EnvoyObject): EnvoyObject {
  const groups = cla['endpoints'] as EnvoyObject[] | undefined;
  if (!groups) return cla;
  return { ...cla, endpoints: groups.map((g) => (g['locality'] === undefined ? { locality: {}, ...g } : g)) };
}

export function grpcEndpointGroups(push: PushContext, proxy: Proxy): ResourceGroup[] {
  const cls = localityClassOf(push, proxy);
  const build = () => outboundLoadAssignments(push, proxy.network, sameNetworkOnly, cls.key === '' ? undefined : cls).map(withLocality);
  return [{ shareKey: `grpc|net|${proxy.network}${cls.key === '' ? '' : `|loc|${cls.key}`}`, build }];
}

export function grpcSecretGroups(): ResourceGroup[] {
  return [];
}
