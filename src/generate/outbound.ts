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
import { isIP } from 'node:net';
import { endpointsFor, type PushContext } from '../model/pushcontext.js';
import type { Proxy } from '../model/proxy.js';
import { labelsMatch, type Service } from '../registry/model.js';
import type { L4MatchAttributes, RouteDestination } from '../config/kinds/networking.js';
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

/** The addresses a captured connection to `svc:port` may carry: its VIPs, else its endpoints'. */
function serviceRanges(push: PushContext, svc: Service, port: number): EnvoyObject[] {
  const addrs = new Set<string>();
  for (const a of svc.addresses) addrs.add(a);
  for (const e of endpointsFor(push, svc.hostname, port)) if (e.address && e.port === port) addrs.add(e.address);
  // IPv4 only (the capture rules are iptables); DNS endpoints are names, not addresses.
  return [...addrs]
    .filter((a) => isIP(a.split('/')[0]!) === 4)
    .sort(cmp)
    .map((a) => {
      const [ip, len] = a.split('/');
      return { address_prefix: ip, prefix_len: len === undefined ? 32 : Number(len) };
    });
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

/** The chains for one service port: TLS routes, HTTP, then TCP (VirtualService `tcp` or the cluster). */
function servicePortChains(push: PushContext, proxy: Proxy, svc: Service, port: number, http: boolean, httpFilter: EnvoyObject): EnvoyObject[] {
  const ranges = serviceRanges(push, svc, port);
  const ctx: VsRouteContext = { push, port, clientNamespace: proxy.namespace, proxyLabels: proxy.labels, defaultRetryPolicy: () => ({}) };
  const vss = virtualServicesFor(push, svc.hostname, proxy.namespace);
  const base = { destination_port: port, ...(ranges.length ? { prefix_ranges: ranges } : {}) };
  const chains: EnvoyObject[] = [];
  const id = `${svc.hostname}:${port}`;
  vss.forEach((vs) => {
    const ns = vs.metadata.namespace ?? 'default';
    (vs.spec.tls ?? []).forEach((r, i) => {
      if (!r.route?.length) return;
      const sni = [...new Set(r.match.filter((m) => l4Matches(m, port, proxy)).flatMap((m) => m.sniHosts))].sort(cmp);
      if (sni.length === 0) return;
      chains.push({
        name: `${id}|tls|${ns}/${vs.metadata.name}[${i}]`,
        filter_chain_match: { ...base, server_names: sni, transport_protocol: 'tls' },
        filters: [tcpProxyFilter(`outbound|${port}||${svc.hostname}`, weighted(ctx, ns, r.route))],
      });
    });
  });
  if (http && ranges.length) chains.push({ name: `${id}|http`, filter_chain_match: { ...base, application_protocols: HTTP_ALPN }, filters: [httpFilter] });
  if (ranges.length === 0) return chains;
  let tcp: EnvoyObject | string = outboundClusterName(port, svc.hostname);
  outer: for (const vs of vss) {
    for (const r of vs.spec.tcp ?? []) {
      if (!r.route?.length || !(r.match ?? [{}]).some((m) => l4Matches(m, port, proxy))) continue;
      tcp = weighted(ctx, vs.metadata.namespace ?? 'default', r.route);
      break outer;
    }
  }
  chains.push({ name: `${id}|tcp`, filter_chain_match: base, filters: [tcpProxyFilter(`outbound|${port}||${svc.hostname}`, tcp)] });
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
