/**
 * Multi-network EDS (Istio's "split horizon"): what a proxy on `network` gets for a set of
 * endpoints spread over several networks.
 *
 * - Same network, or either side unnamed (one flat network): the endpoint itself.
 * - Another network: that network's east-west gateway(s) instead, one per locality, weighted by
 *   the (healthy) endpoints behind it in that locality, so both locality-aware balancing and the
 *   split between direct endpoints and the gateway stay proportional to real endpoints. Health is
 *   aggregated: HEALTHY if any endpoint behind is, else DRAINING if any is, else UNHEALTHY.
 *   The client's mTLS goes through the gateway untouched; the cluster's SNI
 *   (`outbound_.<port>_.<subset>_.<fqdn>`, cds.ts) is what the gateway routes on.
 * - Another network with no known gateway: dropped (as Istio does), and reported by
 *   `unreachableEndpoints` so the control plane can say why traffic does not go there.
 *
 * When a network has several gateways the weight behind it is shared between them; to keep
 * integer weights exact, every weight of the assignment is scaled by the least common multiple of
 * those gateway counts (1 in the usual one-gateway case).
 */
import { endpointsFor, type GatewayAddress, type PushContext } from '../model/pushcontext.js';
import { localityString, type Endpoint, type Health, type Labels } from '../registry/model.js';
import { cmp, socketAddress, type EnvoyObject } from './common.js';

/** The east-west gateway port (DESIGN §4). */
export const EAST_WEST_PORT = 15443;

/**
 * Whether EDS for proxies on `network` goes through the network-aware rule. The map the peering
 * manager produces names every known network, the proxy's own included (possibly with no
 * gateways); a map that does not name the proxy's network is a partial one and keeps the
 * same-network-only rule (see docs/decisions/0012-peering.md).
 */
export function isNetworkAware(push: PushContext, network: string): boolean {
  return network !== '' && Object.prototype.hasOwnProperty.call(push.networkGateways, network);
}

function weightOf(ep: Endpoint): number {
  return ep.weight !== undefined && ep.weight > 0 ? ep.weight : 1;
}

function isDirect(ep: Endpoint, network: string): boolean {
  return ep.network === '' || network === '' || ep.network === network;
}

function gatewaysOf(push: PushContext, network: string): readonly GatewayAddress[] {
  const list = push.networkGateways[network] ?? [];
  return [...list].sort((a, b) => cmp(a.address, b.address) || a.port - b.port);
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

interface Behind {
  healthy: number;
  all: number;
  health: Set<Health>;
  /** Labels every endpoint behind shares (topology labels at least): for failoverPriority. */
  labels: Labels | undefined;
}

function common(a: Labels | undefined, b: Labels): Labels {
  if (a === undefined) return b;
  const out: Record<string, string> = {};
  for (const k in a) if (b[k] === a[k]) out[k] = a[k]!;
  return out;
}

/**
 * LocalityLbEndpoints for a proxy on `network`, in the shape of eds.ts' localityLbEndpoints:
 * sorted by `region/zone/subzone`, each weighted by the sum of its endpoints' weights.
 */
export function networkLocalityLbEndpoints(endpoints: readonly Endpoint[], network: string, push: PushContext, tags?: Map<EnvoyObject, Labels>): EnvoyObject[] {
  const groups = new Map<string, { ep: Endpoint; direct: Endpoint[]; remote: Map<string, Behind> }>();
  let scale = 1;
  for (const ep of endpoints) {
    const direct = isDirect(ep, network);
    if (direct && ep.address === undefined) continue;
    if (!direct) {
      const n = gatewaysOf(push, ep.network).length;
      if (n === 0) continue;
      scale = (scale * n) / gcd(scale, n);
    }
    const key = localityString(ep.locality);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { ep, direct: [], remote: new Map() }));
    if (direct) {
      g.direct.push(ep);
      continue;
    }
    let b = g.remote.get(ep.network);
    if (!b) g.remote.set(ep.network, (b = { healthy: 0, all: 0, health: new Set(), labels: undefined }));
    b.labels = common(b.labels, ep.labels);
    b.all += weightOf(ep);
    if (ep.health === 'HEALTHY') b.healthy += weightOf(ep);
    b.health.add(ep.health);
  }

  return [...groups.keys()].sort(cmp).map((k) => {
    const g = groups.get(k)!;
    const lb: EnvoyObject[] = [];
    let total = 0;
    const seen = new Set<string>();
    for (const ep of g.direct) {
      const at = `${ep.address}:${ep.port}`;
      if (seen.has(at)) continue;
      seen.add(at);
      const w = weightOf(ep) * scale;
      total += w;
      const o: EnvoyObject = { endpoint: { address: socketAddress(ep.address!, ep.port) }, health_status: ep.health, load_balancing_weight: w };
      tags?.set(o, ep.labels);
      lb.push(o);
    }
    for (const net of [...g.remote.keys()].sort(cmp)) {
      const b = g.remote.get(net)!;
      const gws = gatewaysOf(push, net);
      const health: Health = b.health.has('HEALTHY') ? 'HEALTHY' : b.health.has('DRAINING') ? 'DRAINING' : 'UNHEALTHY';
      const behind = b.healthy > 0 ? b.healthy : b.all;
      const each = (behind * scale) / gws.length;
      for (const gw of gws) {
        const at = `${gw.address}:${gw.port}`;
        if (seen.has(at)) continue;
        seen.add(at);
        total += each;
        const o: EnvoyObject = { endpoint: { address: socketAddress(gw.address, gw.port) }, health_status: health, load_balancing_weight: each };
        tags?.set(o, b.labels ?? {});
        lb.push(o);
      }
    }
    const l = g.ep.locality;
    const locality: EnvoyObject = {};
    if (l.region) locality['region'] = l.region;
    if (l.zone) locality['zone'] = l.zone;
    if (l.subzone) locality['sub_zone'] = l.subzone;
    return { ...(Object.keys(locality).length > 0 ? { locality } : {}), lb_endpoints: lb, load_balancing_weight: total };
  });
}

export interface UnreachableEndpoints {
  hostname: string;
  servicePort: number;
  /** The network without a known east-west gateway. */
  network: string;
  endpoints: number;
}

/**
 * Endpoints a proxy on `network` cannot reach because their network has no known gateway: what
 * the network-aware rule dropped, for the control plane's log and status.
 */
export function unreachableEndpoints(push: PushContext, network: string): UnreachableEndpoints[] {
  if (network === '') return [];
  const out: UnreachableEndpoints[] = [];
  for (const svc of push.services) {
    for (const p of svc.ports) {
      const byNet = new Map<string, number>();
      for (const ep of endpointsFor(push, svc.hostname, p.port)) {
        if (isDirect(ep, network) || gatewaysOf(push, ep.network).length > 0) continue;
        byNet.set(ep.network, (byNet.get(ep.network) ?? 0) + 1);
      }
      for (const [net, n] of [...byNet].sort(([a], [b]) => cmp(a, b))) out.push({ hostname: svc.hostname, servicePort: p.port, network: net, endpoints: n });
    }
  }
  return out;
}
