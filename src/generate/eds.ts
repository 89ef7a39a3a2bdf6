/**
 * EDS: a ClusterLoadAssignment per EDS cluster of cds.ts, endpoints grouped by locality.
 *
 * Which endpoints a proxy can dial directly depends only on its network, so assignments are
 * shared by every proxy of one network (shareKey `net|<network>`). Endpoints on other networks go
 * through the multi-network rule of network.ts (their network's east-west gateway) when the push's
 * networkGateways names the proxy's network, else the `sameNetworkOnly` resolver drops them.
 */
import { endpointsFor, type PushContext } from '../model/pushcontext.js';
import type { Proxy } from '../model/proxy.js';
import { localityString, type Endpoint } from '../registry/model.js';
import { cmp, socketAddress, type EnvoyObject, type ResourceGroup } from './common.js';
import { edsClusterKeys, gatewayClusterKeys, isLocalToGateway } from './clusterkeys.js';
import { applyLocalityLb, localityClassOf, localityLbFor, type EndpointTags, type LocalityClass } from './locality.js';
import { isNetworkAware, networkLocalityLbEndpoints } from './network.js';
import { isEastWest, isIngress } from './ingress.js';

/** Where a proxy on `network` sends traffic for `ep`, or undefined to leave `ep` out. */
export type EndpointResolver = (ep: Endpoint, network: string, push: PushContext) => { address: string; port: number } | undefined;

/** Direct when both sides are on the same network (or either network is unnamed: one flat network). */
export const sameNetworkOnly: EndpointResolver = (ep, network) => {
  if (ep.address === undefined) return undefined;
  if (ep.network !== '' && network !== '' && ep.network !== network) return undefined;
  return { address: ep.address, port: ep.port };
};

/** Every endpoint with an address, whatever its network (DNS names, gateway-local sets). */
export const direct: EndpointResolver = (ep) => (ep.address === undefined ? undefined : { address: ep.address, port: ep.port });

/** Envoy's default: a locality counts as fully healthy until fewer than 1/1.4 of its hosts are. */
export const OVERPROVISIONING_FACTOR = 140;

function weightOf(ep: Endpoint): number {
  return ep.weight !== undefined && ep.weight > 0 ? ep.weight : 1;
}

/**
 * The `endpoints` of a ClusterLoadAssignment (also the inline `load_assignment` of DNS clusters):
 * one LocalityLbEndpoints per locality, sorted by `region/zone/subzone`, each weighted by the sum of
 * its endpoints' weights so locality-weighted balancing matches flat balancing over all endpoints.
 */
export function localityLbEndpoints(endpoints: readonly Endpoint[], network: string, push: PushContext, resolve: EndpointResolver, tags?: EndpointTags): EnvoyObject[] {
  const groups = new Map<string, { ep: Endpoint; lb: EnvoyObject[]; weight: number; seen: Set<string> }>();
  for (const ep of endpoints) {
    const to = resolve(ep, network, push);
    if (!to) continue;
    const key = localityString(ep.locality);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { ep, lb: [], weight: 0, seen: new Set() }));
    // Two workloads cannot share an address and port on one network; after resolution they can
    // (a gateway), and Envoy then balances on duplicates: keep the first.
    const at = `${to.address}:${to.port}`;
    if (g.seen.has(at)) continue;
    g.seen.add(at);
    const w = weightOf(ep);
    g.weight += w;
    const lb: EnvoyObject = { endpoint: { address: socketAddress(to.address, to.port) }, health_status: ep.health, load_balancing_weight: w };
    tags?.set(lb, ep.labels);
    g.lb.push(lb);
  }
  return [...groups.keys()].sort(cmp).map((k) => {
    const g = groups.get(k)!;
    const l = g.ep.locality;
    const locality: EnvoyObject = {};
    if (l.region) locality['region'] = l.region;
    if (l.zone) locality['zone'] = l.zone;
    if (l.subzone) locality['sub_zone'] = l.subzone;
    return {
      ...(Object.keys(locality).length > 0 ? { locality } : {}),
      lb_endpoints: g.lb,
      load_balancing_weight: g.weight,
    };
  });
}

export function loadAssignment(clusterName: string, endpoints: EnvoyObject[]): EnvoyObject {
  return {
    cluster_name: clusterName,
    ...(endpoints.length > 0 ? { endpoints } : {}),
    policy: { overprovisioning_factor: OVERPROVISIONING_FACTOR },
  };
}

/**
 * Assignments for every outbound EDS cluster a sidecar on `network` has. Without an explicit
 * resolver, a push whose networkGateways names the proxy's network uses the multi-network rule
 * (network.ts: other networks through their east-west gateways); otherwise `sameNetworkOnly`.
 * With a locality class, clusters whose DestinationRule asks for it get locality load balancing
 * (locality.ts: priorities for failover, weights for distribute) for proxies of that class.
 */
export function outboundLoadAssignments(push: PushContext, network: string, resolve?: EndpointResolver, cls?: LocalityClass): EnvoyObject[] {
  return assignments(push, network, resolve, cls) as EnvoyObject[];
}

/** outboundLoadAssignments, with the clusters of hosts not in `only` as their names. */
function assignments(push: PushContext, network: string, resolve?: EndpointResolver, cls?: LocalityClass, only?: ReadonlySet<string>): (EnvoyObject | string)[] {
  const lbEndpoints =
    resolve === undefined && isNetworkAware(push, network)
      ? (eps: readonly Endpoint[], tags?: EndpointTags) => networkLocalityLbEndpoints(eps, network, push, tags)
      : (eps: readonly Endpoint[], tags?: EndpointTags) => localityLbEndpoints(eps, network, push, resolve ?? sameNetworkOnly, tags);
  return edsClusterKeys(push).map((k) => {
    if (only !== undefined && !only.has(k.hostname)) return k.name;
    const eps = endpointsFor(push, k.hostname, k.port, k.subset || undefined);
    const lb = cls ? localityLbFor(push, k.hostname, k.port, k.subset, cls.namespace) : undefined;
    if (!cls || !lb) return loadAssignment(k.name, lbEndpoints(eps));
    const tags: EndpointTags = new Map();
    return loadAssignment(k.name, applyLocalityLb(lbEndpoints(eps, tags), cls, lb, tags));
  });
}

/**
 * Whether sidecar EDS built from `b` equals EDS built from `a` for every host whose endpoints did
 * not move: what EDS reads apart from endpoints (services, DestinationRules, mesh, east-west
 * gateways) is the same. Services and rules changes push in full anyway; this holds the incremental
 * path to exactness should a push ever be built between such a change and its own push.
 */
export function sameEdsInputs(a: PushContext, b: PushContext): boolean {
  if (a.services.length !== b.services.length || a.destinationRuleByHost.size !== b.destinationRuleByHost.size) return false;
  for (const [h, dr] of a.destinationRuleByHost) if (b.destinationRuleByHost.get(h) !== dr) return false;
  for (let i = 0; i < a.services.length; i++) {
    const x = a.services[i]!;
    const y = b.services[i]!;
    if (x !== y && JSON.stringify(x) !== JSON.stringify(y)) return false;
  }
  return JSON.stringify(a.mesh) === JSON.stringify(b.mesh) && JSON.stringify(a.networkGateways) === JSON.stringify(b.networkGateways);
}

/** Assignments of the gateway's passthrough clusters: only endpoints on the gateway's own network. */
export function gatewayLoadAssignments(push: PushContext, proxy: Proxy): EnvoyObject[] {
  return gatewayClusterKeys(push, proxy).map((k) =>
    loadAssignment(
      k.name,
      localityLbEndpoints(
        endpointsFor(push, k.hostname, k.port, k.subset || undefined).filter((e) => isLocalToGateway(e, proxy)),
        proxy.network,
        push,
        direct,
      ),
    ),
  );
}

export function endpointGroups(push: PushContext, proxy: Proxy): ResourceGroup[] {
  if (proxy.type === 'gateway') {
    return [
      ...(isEastWest(push, proxy) ? [{ shareKey: `gateway|${proxy.network}|${proxy.cluster}`, build: () => gatewayLoadAssignments(push, proxy) }] : []),
      ...(isIngress(push, proxy) ? sidecarEndpointGroups(push, proxy) : []),
    ];
  }
  return sidecarEndpointGroups(push, proxy);
}

function sidecarEndpointGroups(push: PushContext, proxy: Proxy): ResourceGroup[] {
  // One serialization per locality class: proxies of one network share EDS unless a
  // DestinationRule's locality setting makes it depend on where the proxy is (locality.ts).
  const cls = localityClassOf(push, proxy);
  const c = cls.key === '' ? undefined : cls;
  return [
    {
      shareKey: c ? `net|${proxy.network}|loc|${c.key}` : `net|${proxy.network}`,
      build: () => outboundLoadAssignments(push, proxy.network, undefined, c),
      buildHosts: (hosts) => assignments(push, proxy.network, undefined, c, hosts),
    },
  ];
}

/** EDS for a proxy: ClusterLoadAssignments named by `cluster_name`. */
export function generateEndpoints(push: PushContext, proxy: Proxy): EnvoyObject[] {
  return endpointGroups(push, proxy).flatMap((g) => g.build());
}
