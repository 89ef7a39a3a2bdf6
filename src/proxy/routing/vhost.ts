/**
 * Virtual host selection by :authority, in Envoy's order: exact domains, then suffix wildcards
 * (`*.foo.com`, longest first), then prefix wildcards (`foo.*`, longest first), then `*`.
 * Case-insensitive. The port is part of the match unless the config sets
 * ignore_port_in_host_matching (Istio lists each domain with and without `:port`).
 */
import type { RouteConfigModel, VirtualHostModel } from '../model.js';

interface VhostIndex {
  exact: Map<string, VirtualHostModel>;
  /** [suffix without `*`, vhost], longest first. */
  suffix: [string, VirtualHostModel][];
  prefix: [string, VirtualHostModel][];
  any: VirtualHostModel | undefined;
}

const cache = new WeakMap<RouteConfigModel, VhostIndex>();

function build(config: RouteConfigModel): VhostIndex {
  const idx: VhostIndex = { exact: new Map(), suffix: [], prefix: [], any: undefined };
  for (const vh of config.virtualHosts) {
    for (const d of vh.domains) {
      if (d === '*') idx.any ??= vh;
      else if (d.startsWith('*')) idx.suffix.push([d.slice(1), vh]);
      else if (d.endsWith('*')) idx.prefix.push([d.slice(0, -1), vh]);
      else if (!idx.exact.has(d)) idx.exact.set(d, vh);
    }
  }
  // Stable sort keeps config order between equal lengths, as Envoy's ordered maps do not
  // guarantee anything better and duplicates are rejected at decode time.
  idx.suffix.sort((a, b) => b[0].length - a[0].length);
  idx.prefix.sort((a, b) => b[0].length - a[0].length);
  return idx;
}

/** `host:port` → `host`; `[v6]:port` → `[v6]`. */
export function stripPort(authority: string): string {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end < 0 ? authority : authority.slice(0, end + 1);
  }
  const c = authority.lastIndexOf(':');
  return c >= 0 && authority.indexOf(':') === c ? authority.slice(0, c) : authority;
}

export function selectVirtualHost(config: RouteConfigModel, authority: string): VirtualHostModel | undefined {
  let idx = cache.get(config);
  if (!idx) {
    idx = build(config);
    cache.set(config, idx);
  }
  let host = authority.toLowerCase();
  if (config.ignorePortInHostMatching) host = stripPort(host);
  const exact = idx.exact.get(host);
  if (exact) return exact;
  // The wildcard must stand for at least one character (Envoy: `*-bar.foo.com` ≠ `-bar.foo.com`).
  for (const [suffix, vh] of idx.suffix) if (host.length > suffix.length && host.endsWith(suffix)) return vh;
  for (const [prefix, vh] of idx.prefix) if (host.length > prefix.length && host.startsWith(prefix)) return vh;
  return idx.any;
}
