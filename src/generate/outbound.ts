/**
 * The filter chains of `virtualOutbound` (15001) for captured traffic (docs/capture.md, ADR 0071).
 * An explicit-proxy client connects to 15001 itself, so its chain matches `destination_port:
 * 15001`; a captured connection is matched on its original destination, Envoy's order:
 *
 * 1. `destination_port` P plus `prefix_ranges` (the service's addresses and its endpoints'), then
 *    `server_names` for VirtualService `tls` routes; on HTTP ports, sniffed HTTP/1.1
 *    or h2c (`application_protocols`) goes to the HTTP connection manager (RDS `15001`, by Host);
 *    anything else to `tcp_proxy` (VirtualService `tcp` routes, weighted, else the service's
 *    cluster) — so TLS or h2 sent to an HTTP port passes through instead of hanging.
 * 2. HTTP on a port some service serves over HTTP, to an address the mesh does not know: the HCM
 *    (the Host header names the service: DNS may have answered with any address).
 * 3. Nothing matched: the default chain, `PassthroughCluster` (ALLOW_ANY) or `BlackHoleCluster`
 *    (REGISTRY_ONLY), per meshConfig.outboundTrafficPolicy.
 */
import { BlockList, isIP } from 'node:net';
import { endpointsFor, type PushContext } from '../model/pushcontext.js';
import type { Proxy } from '../model/proxy.js';
import { labelsMatch, type Service } from '../registry/model.js';
import type { L4MatchAttributes, RouteDestination, TCPRoute } from '../config/kinds/networking.js';
import { TCP_PROXY_TYPE } from '../mesh/typeurls.js';
import { outboundClusterName } from '../mesh/names.js';
import { cmp, isHttp, type EnvoyObject } from './common.js';
import { hasOutboundCluster } from './clusterkeys.js';
import { destinationCluster, virtualServicesFor, type VsRouteContext } from './virtualservice.js';

export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';
// The HCM's AUTO codec serves both (HTTP/1.1, and h2c with prior knowledge).
const HTTP_ALPN = ['http/1.1', 'h2c'];

export function tcpProxyFilter(statPrefix: string, cluster: EnvoyObject | string): EnvoyObject {
  const spec = typeof cluster === 'string' ? { cluster } : { weighted_clusters: cluster };
  return { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP_PROXY_TYPE, stat_prefix: statPrefix, ...spec } };
}

/** Istio's passthrough and black-hole clusters: where unknown destinations go or die. */
export function trafficPolicyClusters(): EnvoyObject[] {
  return [
    { name: PASSTHROUGH_CLUSTER, type: 'ORIGINAL_DST', connect_timeout: '10s', lb_policy: 'CLUSTER_PROVIDED' },
    { name: BLACKHOLE_CLUSTER, type: 'STATIC', connect_timeout: '10s', load_assignment: { cluster_name: BLACKHOLE_CLUSTER } },
  ];
}

export function defaultOutboundChain(push: PushContext): EnvoyObject {
  const blocked = push.mesh.outboundTrafficPolicy === 'REGISTRY_ONLY';
  const cluster = blocked ? BLACKHOLE_CLUSTER : PASSTHROUGH_CLUSTER;
  return { name: blocked ? 'BlackHoleFilterChain' : 'PassthroughFilterChain', filters: [tcpProxyFilter(cluster, cluster)] };
}

/** An IPv4/IPv6 prefix (Envoy's CidrRange) with what containment tests need. */
interface Prefix {
  readonly ip: string;
  readonly len: number;
  readonly family: 'ipv4' | 'ipv6';
}

function prefixOf(a: string): Prefix | undefined {
  const [ip, len] = a.split('/');
  const fam = isIP(ip!);
  if (fam === 0) return undefined;
  return { ip: ip!, len: len === undefined ? (fam === 4 ? 32 : 128) : Number(len), family: fam === 4 ? 'ipv4' : 'ipv6' };
}

const prefixKey = (p: Prefix): string => `${p.ip}/${p.len}`;
const envoyRange = (p: Prefix): EnvoyObject => ({ address_prefix: p.ip, prefix_len: p.len });

/** A validated `ip[/len]` (config: ipOrCidr) as Envoy's CidrRange. */
export function cidrRange(a: string): EnvoyObject {
  const p = prefixOf(a);
  if (!p) throw new TypeError(`not an IP address or CIDR: ${JSON.stringify(a)}`);
  return envoyRange(p);
}

/** `inner` ⊆ `outer`. */
function within(inner: Prefix, outer: Prefix): boolean {
  if (inner.family !== outer.family || inner.len < outer.len) return false;
  const b = new BlockList();
  b.addSubnet(outer.ip, outer.len, outer.family);
  return b.check(inner.ip, inner.family);
}

/** The addresses a captured connection to `svc:port` may carry: its VIPs, else its endpoints'. */
function serviceRanges(push: PushContext, svc: Service, port: number): Prefix[] {
  const addrs = new Set<string>();
  for (const a of svc.addresses) addrs.add(a);
  for (const e of endpointsFor(push, svc.hostname, port)) if (e.address && e.port === port) addrs.add(e.address);
  // IPv4 only (the capture rules are iptables); DNS endpoints are names, not addresses.
  return [...addrs]
    .filter((a) => isIP(a.split('/')[0]!) === 4)
    .sort(cmp)
    .map((a) => prefixOf(a)!);
}

/**
 * Where `destinationSubnets` meet the service's addresses: an address inside a subnet is taken
 * whole (`covered`), a subnet inside a wider service prefix (a CIDR ServiceEntry address) is
 * carved out of it (`carved`: the longer prefix wins in Envoy's match). A service without
 * addresses of its own gets the subnets themselves, as Istio's wildcard listener would.
 */
function meet(ranges: readonly Prefix[], subnets: readonly string[]): { covered: Prefix[]; carved: Prefix[] } {
  const nets = subnets.map(prefixOf).filter((p): p is Prefix => p !== undefined);
  if (ranges.length === 0) return { covered: [], carved: nets };
  const covered = ranges.filter((r) => nets.some((n) => within(r, n)));
  const carved = nets.filter((n) => ranges.some((r) => r.len < n.len && within(n, r)));
  return { covered, carved };
}

function l4Matches(m: L4MatchAttributes, port: number, proxy: Proxy): boolean {
  if (m.port !== undefined && m.port !== port) return false;
  if (m.sourceLabels && !labelsMatch(m.sourceLabels, proxy.labels)) return false;
  if (m.sourceNamespace && m.sourceNamespace !== proxy.namespace) return false;
  return !m.gateways || m.gateways.length === 0 || m.gateways.includes('mesh');
}

function weighted(ctx: VsRouteContext, vsNamespace: string, routes: readonly RouteDestination[]): EnvoyObject | string {
  if (routes.length === 1) return destinationCluster(ctx, vsNamespace, routes[0]!.destination);
  const clusters = routes.map((r) => ({ name: destinationCluster(ctx, vsNamespace, r.destination), weight: r.weight ?? Math.floor(100 / routes.length) }));
  return { clusters };
}

interface TcpPlan {
  /** Chains of tcp routes restricted by destinationSubnets, in route order. */
  readonly subnetChains: { name: string; prefixes: Prefix[]; target: EnvoyObject | string }[];
  /** The service's addresses no subnet route took, and where they go. */
  readonly rest: Prefix[];
  readonly target: EnvoyObject | string;
}

/**
 * Istio's TCP route order (`buildSidecarOutboundTCPFilterChainOpts`): the first route whose
 * fitting match has no destinationSubnets (or that has no match) takes every address left; a
 * route whose fitting matches all name subnets takes those (within the service's addresses) and
 * the search goes on.
 */
function planTcp(ctx: VsRouteContext, vss: readonly { metadata: { name: string; namespace?: string }; spec: { tcp?: TCPRoute[] } }[], ranges: readonly Prefix[], port: number, proxy: Proxy, hostname: string): TcpPlan {
  const id = `${hostname}:${port}`;
  const subnetChains: TcpPlan['subnetChains'] = [];
  let rest = [...ranges];
  const taken = new Set<string>();
  for (const vs of vss) {
    const ns = vs.metadata.namespace ?? 'default';
    for (const [i, r] of (vs.spec.tcp ?? []).entries()) {
      if (!r.route?.length) continue;
      const fits = (r.match ?? []).filter((m) => l4Matches(m, port, proxy));
      if (!r.match?.length || fits.some((m) => !m.destinationSubnets?.length)) return { subnetChains, rest, target: weighted(ctx, ns, r.route) };
      if (fits.length === 0) continue;
      const { covered, carved } = meet(rest, fits.flatMap((m) => m.destinationSubnets!));
      rest = rest.filter((x) => !covered.includes(x));
      const prefixes = [...covered, ...carved].filter((x) => !taken.has(prefixKey(x)));
      for (const x of prefixes) taken.add(prefixKey(x));
      if (prefixes.length) subnetChains.push({ name: `${id}|tcp|${ns}/${vs.metadata.name}[${i}]`, prefixes, target: weighted(ctx, ns, r.route) });
    }
  }
  return { subnetChains, rest, target: outboundClusterName(port, hostname) };
}

/** The chains for one service port: TLS routes, HTTP, then TCP (VirtualService `tcp` or the cluster). */
function servicePortChains(push: PushContext, proxy: Proxy, svc: Service, port: number, http: boolean, httpFilter: EnvoyObject): EnvoyObject[] {
  const ranges = serviceRanges(push, svc, port);
  const ctx: VsRouteContext = { push, port, clientNamespace: proxy.namespace, proxyLabels: proxy.labels, defaultRetryPolicy: () => ({}) };
  const vss = virtualServicesFor(push, svc.hostname, proxy.namespace);
  const id = `${svc.hostname}:${port}`;
  const stat = `outbound|${port}||${svc.hostname}`;
  const tcp = planTcp(ctx, vss, ranges, port, proxy, svc.hostname);

  // TLS routes: one chain per route for its matches without subnets (the service's addresses),
  // one per match with subnets (those, within the service's addresses).
  const tls: { name: string; prefixes: Prefix[] | undefined; sni: string[]; target: EnvoyObject | string }[] = [];
  for (const vs of vss) {
    const ns = vs.metadata.namespace ?? 'default';
    for (const [i, r] of (vs.spec.tls ?? []).entries()) {
      if (!r.route?.length) continue;
      const fits = r.match.filter((m) => l4Matches(m, port, proxy));
      const target = weighted(ctx, ns, r.route);
      const plain = [...new Set(fits.filter((m) => !m.destinationSubnets?.length).flatMap((m) => m.sniHosts))].sort(cmp);
      if (plain.length) tls.push({ name: `${id}|tls|${ns}/${vs.metadata.name}[${i}]`, prefixes: undefined, sni: plain, target });
      fits.forEach((m, j) => {
        if (!m.destinationSubnets?.length) return;
        const { covered, carved } = meet(ranges, m.destinationSubnets);
        const prefixes = [...covered, ...carved];
        if (prefixes.length) tls.push({ name: `${id}|tls|${ns}/${vs.metadata.name}[${i}]/${j}`, prefixes, sni: [...new Set(m.sniHosts)].sort(cmp), target });
      });
    }
  }

  // Subnets carved out of a wider service prefix win Envoy's longest-prefix step, so every chain
  // of the service lists them too: HTTP and other SNIs still find their chain there.
  const carvedAll = new Map<string, Prefix>();
  for (const p of [...tcp.subnetChains.flatMap((c) => c.prefixes), ...tls.flatMap((c) => c.prefixes ?? [])]) {
    if (ranges.some((r) => r.len < p.len && within(p, r))) carvedAll.set(prefixKey(p), p);
  }
  const own = [...ranges, ...carvedAll.values()];
  const match = (prefixes: readonly Prefix[]): EnvoyObject => ({ destination_port: port, ...(prefixes.length ? { prefix_ranges: prefixes.map(envoyRange) } : {}) });

  // TCP chains: each carved prefix also goes to the TCP chain that would have had it uncarved
  // (the one with the longest prefix around it), so non-TLS traffic there keeps its route.
  const tcpChains = [...tcp.subnetChains.map((c) => ({ ...c, prefixes: [...c.prefixes] })), ...(tcp.rest.length ? [{ name: `${id}|tcp`, prefixes: [...tcp.rest], target: tcp.target }] : [])];
  for (const p of carvedAll.values()) {
    if (tcpChains.some((c) => c.prefixes.some((x) => prefixKey(x) === prefixKey(p)))) continue;
    let best: { chain: (typeof tcpChains)[number]; len: number } | undefined;
    for (const c of tcpChains) for (const x of c.prefixes) if (x.len < p.len && within(p, x) && (!best || x.len > best.len)) best = { chain: c, len: x.len };
    best?.chain.prefixes.push(p);
  }

  const chains: EnvoyObject[] = [];
  for (const c of tls) {
    chains.push({ name: c.name, filter_chain_match: { ...match(c.prefixes ?? own), server_names: c.sni, transport_protocol: 'tls' }, filters: [tcpProxyFilter(stat, c.target)] });
  }
  if (http && ranges.length) chains.push({ name: `${id}|http`, filter_chain_match: { ...match(own), application_protocols: HTTP_ALPN }, filters: [httpFilter] });
  for (const c of tcpChains) chains.push({ name: c.name, filter_chain_match: match(c.prefixes), filters: [tcpProxyFilter(stat, c.target)] });
  return chains;
}

/** Every chain of virtualOutbound after the explicit-proxy one. */
export function captureChains(push: PushContext, proxy: Proxy, httpFilter: EnvoyObject): EnvoyObject[] {
  const chains: EnvoyObject[] = [];
  const httpPorts = new Set<number>();
  for (const svc of push.services) {
    if (!hasOutboundCluster(svc)) continue;
    for (const p of svc.ports) {
      const http = isHttp(p.protocol);
      if (http) httpPorts.add(p.port);
      chains.push(...servicePortChains(push, proxy, svc, p.port, http, httpFilter));
    }
  }
  for (const p of [...httpPorts].sort((a, b) => a - b)) {
    chains.push({ name: `0.0.0.0:${p}|http`, filter_chain_match: { destination_port: p, application_protocols: HTTP_ALPN }, filters: [httpFilter] });
  }
  // Envoy rejects two chains with the same match (two services sharing an address and port):
  // the first, in host order, keeps it, as Istio's listener conflict rule does.
  const seen = new Set<string>();
  return chains.filter((c) => {
    const k = JSON.stringify(c['filter_chain_match']);
    return !seen.has(k) && seen.add(k);
  });
}
