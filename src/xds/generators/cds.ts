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
import { endpointsFor, type PushContext } from '../../controlplane/pushcontext.js';
import type { InboundPort, Proxy } from '../../controlplane/proxy.js';
import type { Endpoint, Protocol, Service, ServicePort } from '../../registry/model.js';
import { HTTP_PROTOCOL_OPTIONS_TYPE } from '../typeurls.js';
import {
  adsConfigSource,
  CONNECT_TIMEOUT,
  isHttp2,
  socketAddress,
  type EnvoyObject,
  type ResourceGroup,
} from './common.js';
import { direct, loadAssignment, localityLbEndpoints } from './eds.js';
import { applyPolicy, cdsShareKey, destinationRuleFor } from './destinationrule.js';
import { inboundClusterName, outboundClusterName, outboundSni } from './names.js';

export interface ClusterKey {
  readonly name: string;
  readonly hostname: string;
  readonly port: number;
  /** '' for the whole service. */
  readonly subset: string;
  readonly service: Service;
  readonly servicePort: ServicePort;
}

/** Service ports and subsets of `svc`, in a stable order: by port, the whole service first. */
function clusterKeysOf(push: PushContext, svc: Service, name: (port: number, host: string, subset: string) => string): ClusterKey[] {
  const subsets = push.subsetsByHost.get(svc.hostname) ?? [];
  const out: ClusterKey[] = [];
  for (const sp of svc.ports) {
    for (const subset of ['', ...subsets.map((s) => s.name)]) {
      out.push({ name: name(sp.port, svc.hostname, subset), hostname: svc.hostname, port: sp.port, subset, service: svc, servicePort: sp });
    }
  }
  return out;
}

/**
 * Resolution NONE (headless Services, passthrough ServiceEntries) gets no cluster: it needs
 * original-destination routing, which an explicit HTTP proxy cannot do (no destination address).
 */
export function hasOutboundCluster(svc: Service): boolean {
  return svc.resolution !== 'NONE' && !(svc.resolution !== 'STATIC' && svc.hostname.includes('*'));
}

export function outboundClusterKeys(push: PushContext): ClusterKey[] {
  return push.services.filter(hasOutboundCluster).flatMap((s) => clusterKeysOf(push, s, outboundClusterName));
}

/** The outbound clusters that get their endpoints by EDS (the rest carry them inline). */
export function edsClusterKeys(push: PushContext): ClusterKey[] {
  return outboundClusterKeys(push).filter((k) => k.service.resolution === 'STATIC');
}

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
    eds_cluster_config: { eds_config: adsConfigSource(), service_name: name },
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
    return c;
  });
}

/** Endpoints the gateway forwards to: those on its own network (its cluster when unnamed). */
export function isLocalToGateway(ep: Endpoint, proxy: Proxy): boolean {
  if (ep.address === undefined) return false;
  return proxy.network !== '' ? ep.network === proxy.network : ep.cluster === proxy.cluster;
}

/** Mesh-internal services with at least one endpoint the gateway can reach itself. */
export function gatewayClusterKeys(push: PushContext, proxy: Proxy): ClusterKey[] {
  return push.services
    .filter((s) => s.location === 'MESH_INTERNAL' && s.resolution === 'STATIC')
    .filter((s) => s.ports.some((p) => endpointsFor(push, s.hostname, p.port).some((e) => isLocalToGateway(e, proxy))))
    .flatMap((s) => clusterKeysOf(push, s, outboundSni));
}

export function gatewayClusters(push: PushContext, proxy: Proxy): EnvoyObject[] {
  return gatewayClusterKeys(push, proxy).map((k) => edsCluster(k.name));
}

export function clusterGroups(push: PushContext, proxy: Proxy): ResourceGroup[] {
  if (proxy.type === 'gateway') {
    return [{ shareKey: `gateway|${proxy.network}|${proxy.cluster}`, build: () => gatewayClusters(push, proxy) }];
  }
  // Shared by every sidecar unless a DestinationRule's exportTo makes namespaces differ.
  return [{ shareKey: cdsShareKey(push, proxy.namespace), build: () => outboundClusters(push, proxy.namespace) }, { build: () => inboundClusters(proxy) }];
}

/** CDS for a proxy. */
export function generateClusters(push: PushContext, proxy: Proxy): EnvoyObject[] {
  return clusterGroups(push, proxy).flatMap((g) => g.build());
}
