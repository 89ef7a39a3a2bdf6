/**
 * Envoy's filter chain selection, for the criteria Isle's listeners use. Envoy narrows level by
 * level (destination port, server name, transport protocol, application protocol), and at each
 * level the most specific match wins over the catch-all: an exact SNI over a `*.suffix`, over no
 * server_names at all. No match → the default chain, or the connection is closed.
 */
import type { FilterChainModel, ListenerModel } from '../model.js';
import { inCidr } from '../rbac/evaluate.js';

export interface ConnectionFacts {
  destinationPort: number;
  /** The (original) destination address; matched against prefix_ranges. Undefined = unknown. */
  destinationIp?: string | undefined;
  /** `tls` or `raw_buffer`; undefined when no inspector ran. */
  transportProtocol: string | undefined;
  serverName: string | undefined;
  alpn: readonly string[];
}

function narrow<T>(items: T[], exact: (t: T) => boolean, catchAll: (t: T) => boolean): T[] {
  const hit = items.filter(exact);
  return hit.length ? hit : items.filter(catchAll);
}

function sniRank(names: readonly string[], sni: string | undefined): number {
  // 0 = no match; higher = more specific. Exact beats any wildcard; longer wildcards beat shorter.
  if (sni === undefined) return 0;
  let best = 0;
  for (const n of names) {
    if (n === sni) return Number.MAX_SAFE_INTEGER;
    if (n.startsWith('*.') && sni.endsWith(n.slice(1)) && sni.length > n.length - 1) best = Math.max(best, n.length);
  }
  return best;
}

export function selectFilterChain(listener: ListenerModel, facts: ConnectionFacts): FilterChainModel | undefined {
  let c = [...listener.filterChains];
  c = narrow(c, (f) => f.match.destinationPort === facts.destinationPort, (f) => f.match.destinationPort === undefined);
  // Destination IP: the longest matching prefix wins; chains without prefix_ranges catch the rest.
  const ipRank = c.map((f) => Math.max(-1, ...f.match.prefixRanges.filter((r) => inCidr(r, facts.destinationIp)).map((r) => r.prefixLen)));
  const topIp = Math.max(-1, ...ipRank);
  c = topIp >= 0 ? c.filter((_, i) => ipRank[i] === topIp) : c.filter((f) => f.match.prefixRanges.length === 0);
  const ranks = c.map((f) => sniRank(f.match.serverNames, facts.serverName));
  const top = Math.max(0, ...ranks);
  c = top > 0 ? c.filter((_, i) => ranks[i] === top) : c.filter((f) => f.match.serverNames.length === 0);
  c = narrow(c, (f) => facts.transportProtocol !== undefined && f.match.transportProtocol === facts.transportProtocol, (f) => f.match.transportProtocol === undefined);
  c = narrow(c, (f) => f.match.applicationProtocols.some((p) => facts.alpn.includes(p)), (f) => f.match.applicationProtocols.length === 0);
  return c[0] ?? listener.defaultFilterChain ?? undefined;
}

/** True when some chain needs more than the first byte (SNI or ALPN) to be chosen. */
export function needsClientHello(listener: ListenerModel): boolean {
  return [...listener.filterChains, ...(listener.defaultFilterChain ? [listener.defaultFilterChain] : [])].some(
    (f) => f.match.serverNames.length > 0 || f.match.applicationProtocols.length > 0,
  );
}
