/**
 * CDS.
 * - Sidecar outbound: `outbound|<port>|<subset>|<fqdn>` per service port and per DestinationRule
 *   subset, with the rule's traffic policy and TLS applied (destinationrule.ts). Identical for
 *   every sidecar in a push (shareKey `outbound`) unless a rule's exportTo hides it from some
 *   namespaces; then namespaces that see the same rules share one serialization.
 * - Sidecar inbound: `inbound|<targetPort>||`, STATIC to the app on 127.0.0.1. Per proxy.
 * - Gateway: `outbound_.<port>_.<subset>_.<fqdn>` passthrough clusters, no TLS (the client's
 *   mTLS goes through untouched), for services with endpoints on the gateway's network.
 */
import { endpointsFor, type PushContext } from '../model/pushcontext.js';
import type { InboundPort, Proxy } from '../model/proxy.js';
import type { Endpoint, Protocol } from '../registry/model.js';
import { HTTP_PROTOCOL_OPTIONS_TYPE } from '../mesh/typeurls.js';
import {
  adsConfigSource,
  CONNECT_TIMEOUT,
  isHttp2,
  socketAddress,
  type EnvoyObject,
  type ResourceGroup,
} from './common.js';
import { direct, loadAssignment, localityLbEndpoints } from './eds.js';
import { gatewayClusterKeys, outboundClusterKeys, type ClusterKey } from './clusterkeys.js';
import { applyPolicy, cdsShareKey, destinationRuleFor } from './destinationrule.js';
import { inboundClusterName } from '../mesh/names.js';
import { isEastWest, isIngress } from './ingress.js';
import { tracingClusters } from './tracing.js';
import { trafficPolicyClusters } from './outbound.js';

export { hasOutboundCluster, isLocalToGateway, edsClusterKeys, gatewayClusterKeys, outboundClusterKeys, type ClusterKey } from './clusterkeys.js';

function httpProtocolOptions(protocol: Protocol): EnvoyObject | undefined {
  if (!isHttp2(protocol)) return undefined;
  return {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': HTTP_PROTOCOL_OPTIONS_TYPE,
      explicit_http_config: { http2_protocol_options: {} },
    },
  };
}

function edsCluster(name: string): EnvoyObject {
  return {
    name,
    type: 'EDS',
    // No service_name: it would repeat the name, which Envoy, gRPC and Isle's proxy use when it is
    // empty. SotW proxies get every cluster on any CDS change (~50 B of ~430 per cluster, ADR 0135).
    eds_cluster_config: { eds_config: adsConfigSource() },
    connect_timeout: CONNECT_TIMEOUT,
    // Without it Envoy ignores the per-locality weights EDS sends.
    common_lb_config: { locality_weighted_lb_config: {} },
  };
}

export function outboundCluster(push: PushContext, k: ClusterKey, clientNamespace?: string): EnvoyObject {
  const svc = k.service;
  let c: EnvoyObject;
  if (svc.resolution === 'STATIC') {
    c = edsCluster(k.name);
  } else {
    // DNS names are resolved by the proxy; the registry already turned an endpoint-less DNS
    // ServiceEntry into one endpoint named by its host.
    const eps: Endpoint[] = [...endpointsFor(push, k.hostname, k.port, k.subset || undefined)];
    const logical = svc.resolution === 'DNS_ROUND_ROBIN';
    // LOGICAL_DNS takes exactly one host; Envoy rejects more.
    const lle = localityLbEndpoints(logical ? eps.slice(0, 1) : eps, '', push, direct);
    c = {
      name: k.name,
      type: logical ? 'LOGICAL_DNS' : 'STRICT_DNS',
      connect_timeout: CONNECT_TIMEOUT,
      dns_lookup_family: 'V4_ONLY',
      load_assignment: loadAssignment(k.name, lle),
    };
  }
  const opts = httpProtocolOptions(k.servicePort.protocol);
  if (opts) c['typed_extension_protocol_options'] = opts;
  // DestinationRule policies and TLS (DR tls, else auto mTLS) for clients in `clientNamespace`.
  return applyPolicy(push, c, svc, k.port, k.subset, destinationRuleFor(push, k.hostname, clientNamespace));
}

/** Outbound clusters as a client in `clientNamespace` sees them (undefined: ignore exportTo). */
export function outboundClusters(push: PushContext, clientNamespace?: string): EnvoyObject[] {
  return outboundClusterKeys(push).map((k) => outboundCluster(push, k, clientNamespace));
}

/** Inbound clusters, one per target port (several services may select the same port). */
export function inboundClusters(proxy: Proxy): EnvoyObject[] {
  const byTarget = new Map<number, InboundPort[]>();
  for (const p of proxy.inbound) {
    const l = byTarget.get(p.targetPort);
    if (l) l.push(p);
    else byTarget.set(p.targetPort, [p]);
  }
  return [...byTarget].map(([target, ports]) => {
    const name = inboundClusterName(target);
    const c: EnvoyObject = {
      name,
      type: 'STATIC',
      connect_timeout: CONNECT_TIMEOUT,
      load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress('127.0.0.1', ports[0]!.appPort) } }] }] },
    };
    // HTTP/2 to the app only when every service agrees, else the port's traffic could break.
    const opts = ports.every((p) => isHttp2(p.protocol)) ? httpProtocolOptions(ports[0]!.protocol) : undefined;
    if (opts) c['typed_extension_protocol_options'] = opts;
    // Istio's metadata: the services behind this port (the proxy's inbound destination_service).
    const seen = new Set<string>();
    const services = ports.filter((p) => !seen.has(p.hostname) && seen.add(p.hostname)).map((p) => ({ host: p.hostname, name: p.serviceName, namespace: p.namespace }));
    c['metadata'] = { filter_metadata: { istio: { services } } };
    return c;
  });
}

export function gatewayClusters(push: PushContext, proxy: Proxy): EnvoyObject[] {
  return gatewayClusterKeys(push, proxy).map((k) => edsCluster(k.name));
}

export function clusterGroups(push: PushContext, proxy: Proxy): ResourceGroup[] {
  if (proxy.type === 'gateway') {
    // An ingress gateway dials services as a sidecar does; the east-west one only passes through.
    return [
      ...(isEastWest(push, proxy) ? [{ shareKey: `gateway|${proxy.network}|${proxy.cluster}`, build: () => gatewayClusters(push, proxy) }] : []),
      ...(isIngress(push, proxy) ? [{ shareKey: cdsShareKey(push, proxy.namespace), build: () => outboundClusters(push, proxy.namespace) }] : []),
    ];
  }
  // Shared by every sidecar unless a DestinationRule's exportTo makes namespaces differ.
  return [
    { shareKey: cdsShareKey(push, proxy.namespace), build: () => outboundClusters(push, proxy.namespace) },
    { shareKey: 'traffic-policy', build: trafficPolicyClusters },
    { build: () => [...inboundClusters(proxy), ...tracingClusters(push, proxy)] },
  ];
}

/** CDS for a proxy. */
export function generateClusters(push: PushContext, proxy: Proxy): EnvoyObject[] {
  return clusterGroups(push, proxy).flatMap((g) => g.build());
}
