/**
 * Checks across resources (validation looks at one resource at a time). Each analyzer is a small
 * pure function over the whole set; add one by appending it to ANALYZERS.
 */
import { fieldLine } from './parse.js';
import { fqdn, hostMatches, serviceHost, DEFAULT_DOMAIN_SUFFIX } from './hosts.js';
import { formatPath, type Path } from './schema.js';
import { resourceKey, type ConfigError, type Kind, type Resource, type Severity } from './types.js';
import type { Destination, DestinationRuleSpec, HTTPRoute, ServiceEntrySpec, VirtualServiceSpec } from './kinds/networking.js';
import type { ServiceSpec } from './kinds/core.js';
import type { MeshConfigSpec, RemoteClusterSpec } from './kinds/mesh.js';
import type { PeerAuthenticationSpec } from './kinds/security.js';

export interface AnalyzeOptions {
  /** DNS suffix of Kubernetes services. Default `cluster.local`. */
  domainSuffix?: string;
}

export class AnalyzeContext {
  readonly domainSuffix: string;
  private readonly kinds = new Map<Kind, Resource[]>();
  constructor(readonly resources: readonly Resource[], opts: AnalyzeOptions = {}) {
    this.domainSuffix = opts.domainSuffix ?? DEFAULT_DOMAIN_SUFFIX;
    for (const r of resources) {
      const list = this.kinds.get(r.kind) ?? [];
      list.push(r);
      this.kinds.set(r.kind, list);
    }
  }
  of<S>(kind: Kind): Resource<S>[] {
    return (this.kinds.get(kind) ?? []) as Resource<S>[];
  }
  fqdn(host: string, r: Resource): string {
    return fqdn(host, r.metadata.namespace ?? 'default', this.domainSuffix);
  }
  /** A problem at a field of `r` (or at `r` itself when `path` is empty). */
  problem(severity: Severity, r: Resource, path: Path, message: string): ConfigError {
    return {
      severity,
      file: r.source.file,
      line: fieldLine(r, path),
      kind: r.kind,
      ...(r.metadata.namespace !== undefined ? { namespace: r.metadata.namespace } : {}),
      name: r.metadata.name,
      ...(path.length > 0 ? { path: formatPath(path) } : {}),
      message,
    };
  }
}

export interface Analyzer {
  name: string;
  run: (ctx: AnalyzeContext) => ConfigError[];
}

// ----------------------------------------------------------------- analyzers

const duplicates: Analyzer = {
  name: 'duplicates',
  run: (ctx) => {
    const first = new Map<string, Resource>();
    const out: ConfigError[] = [];
    for (const r of ctx.resources) {
      const key = resourceKey(r);
      const f = first.get(key);
      if (!f) first.set(key, r);
      else out.push(ctx.problem('error', r, [], `defined more than once (also at ${f.source.file}:${f.source.line})`));
    }
    return out;
  },
};

/** Every host a Service or ServiceEntry defines, fully qualified. */
function definedHosts(ctx: AnalyzeContext): string[] {
  const hosts = ctx.of<ServiceSpec>('Service').map((s) => serviceHost(s.metadata.name, s.metadata.namespace ?? 'default', ctx.domainSuffix));
  for (const se of ctx.of<ServiceEntrySpec>('ServiceEntry')) for (const h of se.spec.hosts ?? []) hosts.push(ctx.fqdn(h, se));
  return hosts;
}

interface DestRef {
  vs: Resource<VirtualServiceSpec>;
  dest: Destination;
  path: Path;
}

/** Every destination a VirtualService sends (or mirrors) traffic to. */
function destinations(vs: Resource<VirtualServiceSpec>): DestRef[] {
  const out: DestRef[] = [];
  const add = (dest: Destination | undefined, path: Path) => {
    if (dest && typeof dest.host === 'string') out.push({ vs, dest, path });
  };
  (vs.spec.http ?? []).forEach((h: HTTPRoute, i) => {
    (h.route ?? []).forEach((r, j) => add(r.destination, ['spec', 'http', i, 'route', j, 'destination']));
    add(h.mirror, ['spec', 'http', i, 'mirror']);
    (h.mirrors ?? []).forEach((m, j) => add(m.destination, ['spec', 'http', i, 'mirrors', j, 'destination']));
  });
  for (const proto of ['tcp', 'tls'] as const) {
    (vs.spec[proto] ?? []).forEach((t, i) => (t.route ?? []).forEach((r, j) => add(r.destination, ['spec', proto, i, 'route', j, 'destination'])));
  }
  return out;
}

function boundToMesh(vs: Resource<VirtualServiceSpec>): boolean {
  const gw = vs.spec.gateways;
  return !gw || gw.length === 0 || gw.includes('mesh');
}

const unknownHosts: Analyzer = {
  name: 'unknown-hosts',
  run: (ctx) => {
    const defined = definedHosts(ctx);
    const known = (h: string) => defined.some((d) => hostMatches(h, d));
    const out: ConfigError[] = [];
    const why = 'no Service or ServiceEntry defines host';
    for (const vs of ctx.of<VirtualServiceSpec>('VirtualService')) {
      // Hosts of a VirtualService bound to an ingress gateway are public names, not services.
      const reported = new Set<string>();
      if (boundToMesh(vs)) {
        (vs.spec.hosts ?? []).forEach((h, i) => {
          const f = ctx.fqdn(h, vs);
          if (f === '*' || known(f)) return;
          reported.add(f);
          out.push(ctx.problem('error', vs, ['spec', 'hosts', i], `${why} ${f}`));
        });
      }
      // Routing a missing host to itself is one mistake, reported once (at spec.hosts).
      for (const d of destinations(vs)) {
        const f = ctx.fqdn(d.dest.host, vs);
        if (!known(f) && !reported.has(f)) out.push(ctx.problem('error', vs, [...d.path, 'host'], `${why} ${f}`));
      }
    }
    for (const dr of ctx.of<DestinationRuleSpec>('DestinationRule')) {
      const f = ctx.fqdn(dr.spec.host, dr);
      if (!known(f)) out.push(ctx.problem('error', dr, ['spec', 'host'], `${why} ${f}`));
    }
    return out;
  },
};

const unknownSubsets: Analyzer = {
  name: 'unknown-subsets',
  run: (ctx) => {
    const defined = definedHosts(ctx);
    const drs = ctx.of<DestinationRuleSpec>('DestinationRule').map((dr) => ({ host: ctx.fqdn(dr.spec.host, dr), subsets: (dr.spec.subsets ?? []).map((s) => s.name) }));
    const out: ConfigError[] = [];
    for (const vs of ctx.of<VirtualServiceSpec>('VirtualService')) {
      for (const d of destinations(vs)) {
        if (d.dest.subset === undefined) continue;
        const f = ctx.fqdn(d.dest.host, vs);
        // An unknown host is already reported; a subset error on top would only repeat it.
        if (!defined.some((h) => hostMatches(f, h))) continue;
        const ok = drs.some((dr) => hostMatches(dr.host, f) && dr.subsets.includes(d.dest.subset!));
        if (!ok) {
          out.push(ctx.problem('error', vs, [...d.path, 'subset'], `subset ${JSON.stringify(d.dest.subset)} is not defined by any DestinationRule for host ${f}`));
        }
      }
    }
    return out;
  },
};

/** A destination port the service does not have gets no traffic. */
const unknownPorts: Analyzer = {
  name: 'unknown-ports',
  run: (ctx) => {
    const ports = new Map<string, Set<number>>();
    for (const s of ctx.of<ServiceSpec>('Service')) {
      ports.set(serviceHost(s.metadata.name, s.metadata.namespace ?? 'default', ctx.domainSuffix), new Set((s.spec.ports ?? []).map((p) => p.port)));
    }
    for (const se of ctx.of<ServiceEntrySpec>('ServiceEntry')) {
      for (const h of se.spec.hosts ?? []) {
        const set = ports.get(ctx.fqdn(h, se)) ?? new Set<number>();
        for (const p of se.spec.ports ?? []) set.add(p.number);
        ports.set(ctx.fqdn(h, se), set);
      }
    }
    const out: ConfigError[] = [];
    for (const vs of ctx.of<VirtualServiceSpec>('VirtualService')) {
      for (const d of destinations(vs)) {
        const n = d.dest.port?.number;
        const have = ports.get(ctx.fqdn(d.dest.host, vs));
        if (n === undefined || !have || have.size === 0 || have.has(n)) continue;
        const p = [...d.path, 'port', 'number'];
        out.push(ctx.problem('warning', vs, p, `host ${ctx.fqdn(d.dest.host, vs)} has no port ${n} (ports: ${[...have].sort((a, b) => a - b).join(', ')})`));
      }
    }
    return out;
  },
};

/** Istio picks one VirtualService per host for sidecars and ignores the rest (IST0109). */
const conflictingVirtualServices: Analyzer = {
  name: 'conflicting-virtual-services',
  run: (ctx) => {
    const owner = new Map<string, Resource<VirtualServiceSpec>>();
    const out: ConfigError[] = [];
    for (const vs of ctx.of<VirtualServiceSpec>('VirtualService')) {
      if (!boundToMesh(vs)) continue;
      (vs.spec.hosts ?? []).forEach((h, i) => {
        const f = ctx.fqdn(h, vs);
        const o = owner.get(f);
        if (!o) owner.set(f, vs);
        else if (resourceKey(o) !== resourceKey(vs)) {
          out.push(ctx.problem('warning', vs, ['spec', 'hosts', i], `host ${f} is also routed by VirtualService ${o.metadata.namespace}/${o.metadata.name} (${o.source.file}:${o.source.line}); only one applies`));
        }
      });
    }
    return out;
  },
};

/** With two namespace-wide PeerAuthentications, Istio applies only the oldest. */
const peerAuthentication: Analyzer = {
  name: 'peer-authentication',
  run: (ctx) => {
    const seen = new Map<string, Resource>();
    const out: ConfigError[] = [];
    for (const pa of ctx.of<PeerAuthenticationSpec>('PeerAuthentication')) {
      if (pa.spec.selector?.matchLabels && Object.keys(pa.spec.selector.matchLabels).length > 0) continue;
      const ns = pa.metadata.namespace ?? 'default';
      const o = seen.get(ns);
      if (!o) seen.set(ns, pa);
      else if (resourceKey(o) !== resourceKey(pa)) {
        out.push(ctx.problem('warning', pa, [], `namespace ${ns} already has a namespace-wide PeerAuthentication (${o.metadata.name} at ${o.source.file}:${o.source.line}); only one applies`));
      }
    }
    return out;
  },
};

/** One control plane has one MeshConfig, and does not peer with itself. */
const meshConfig: Analyzer = {
  name: 'mesh-config',
  run: (ctx) => {
    const out: ConfigError[] = [];
    const meshes = ctx.of<MeshConfigSpec>('MeshConfig');
    const names = new Set(meshes.map((m) => m.metadata.name));
    if (names.size > 1) {
      const first = meshes[0]!;
      for (const m of meshes.slice(1)) {
        if (m.metadata.name !== first.metadata.name) {
          out.push(ctx.problem('error', m, [], `only one MeshConfig is allowed (another is ${first.metadata.name} at ${first.source.file}:${first.source.line})`));
        }
      }
    }
    const self = meshes[0]?.spec.clusterName;
    const addresses = new Map<string, Resource>();
    for (const rc of ctx.of<RemoteClusterSpec>('RemoteCluster')) {
      if (self !== undefined && rc.metadata.name === self) {
        out.push(ctx.problem('error', rc, ['metadata', 'name'], `${self} is this cluster (MeshConfig clusterName); a cluster cannot be its own peer`));
      }
      const o = addresses.get(rc.spec.address);
      if (o && o.metadata.name !== rc.metadata.name) {
        out.push(ctx.problem('warning', rc, ['spec', 'address'], `same address as RemoteCluster ${o.metadata.name} (${o.source.file}:${o.source.line})`));
      } else addresses.set(rc.spec.address, rc);
    }
    return out;
  },
};

export const ANALYZERS: Analyzer[] = [duplicates, unknownHosts, unknownSubsets, unknownPorts, conflictingVirtualServices, peerAuthentication, meshConfig];

/** Runs every analyzer. Pure: the resources are not changed. */
export function analyze(resources: readonly Resource[], opts: AnalyzeOptions = {}): ConfigError[] {
  const ctx = new AnalyzeContext(resources, opts);
  return ANALYZERS.flatMap((a) => a.run(ctx));
}
