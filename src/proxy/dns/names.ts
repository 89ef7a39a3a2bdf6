/**
 * The names a sidecar answers, from the control plane's NameTable and the proxy's own namespace:
 * every FQDN as sent (`helloworld.hello.global`, `reviews.default.svc.cluster.local`), and for
 * Kubernetes Services of the proxy's domain also `name.ns` and `name.ns.svc` from anywhere and
 * `name` from the same namespace — what a resolver with Kubernetes' search path
 * (`<ns>.svc.<domain> svc.<domain> <domain>`) would have found, as istio-agent's DNS proxy does.
 * A name sent as an FQDN wins over a derived one.
 */
import { isIP } from 'node:net';
import type { NameTableModel } from '../decode/nametable.js';
import { ipv4Bytes, ipv6Bytes } from './packet.js';

export interface HostAddresses {
  /** 4-byte A records. */
  readonly v4: readonly Buffer[];
  /** 16-byte AAAA records. */
  readonly v6: readonly Buffer[];
}

export class NameIndex {
  private readonly names = new Map<string, HostAddresses>();

  constructor(table: NameTableModel, namespace: string, domainSuffix = 'cluster.local') {
    const derived: [string, HostAddresses][] = [];
    for (const [host, e] of table) {
      const addrs = toAddresses(e.ips);
      this.names.set(host, addrs);
      if (e.registry !== 'Kubernetes' || !e.shortname || !e.namespace) continue;
      // A Service of another cluster domain could clash on `name.ns`: only our domain's get short forms.
      if (host !== `${e.shortname}.${e.namespace}.svc.${domainSuffix}`) continue;
      derived.push([`${e.shortname}.${e.namespace}`, addrs], [`${e.shortname}.${e.namespace}.svc`, addrs]);
      if (e.namespace === namespace) derived.push([e.shortname, addrs]);
    }
    for (const [n, a] of derived) if (!this.names.has(n)) this.names.set(n, a);
  }

  /** The addresses of a name (lower case, no trailing dot), or undefined when it is not ours. */
  lookup(name: string): HostAddresses | undefined {
    return this.names.get(name);
  }

  get size(): number {
    return this.names.size;
  }
}

function toAddresses(ips: readonly string[]): HostAddresses {
  const v4: Buffer[] = [];
  const v6: Buffer[] = [];
  for (const ip of ips) {
    const fam = isIP(ip);
    const b = fam === 4 ? ipv4Bytes(ip) : fam === 6 ? ipv6Bytes(ip) : undefined;
    if (b) (fam === 4 ? v4 : v6).push(b);
  }
  return { v4, v6 };
}
