/**
 * What every analyzer works from: the resources by kind, host resolution, and a way to report a
 * problem at a field's line. Analyzers are small pure functions over the whole set.
 */
import { fieldLine } from '../parse.js';
import { fqdn, serviceHost, DEFAULT_DOMAIN_SUFFIX } from '../hosts.js';
import { formatPath, type Path } from '../schema.js';
import type { ConfigError, Kind, ObjectRef, Resource, Severity } from '../types.js';
import type { Destination, HTTPRoute, ServiceEntrySpec, VirtualServiceSpec } from '../kinds/networking.js';
import type { ServiceSpec } from '../kinds/core.js';

export interface AnalyzeOptions {
  /** DNS suffix of Kubernetes services. Default `cluster.local`. */
  domainSuffix?: string;
  /** Objects of kinds Isle skips (Secrets, ...), for checks of references to them. */
  others?: readonly ObjectRef[];
  /** Hosts other clusters of the mesh define (their Services, discovered through peering). */
  peerHosts?: readonly string[];
}

export class AnalyzeContext {
  readonly domainSuffix: string;
  readonly others: readonly ObjectRef[];
  readonly peerHosts: readonly string[];
  private readonly kinds = new Map<Kind, Resource[]>();
  constructor(readonly resources: readonly Resource[], opts: AnalyzeOptions = {}) {
    this.domainSuffix = opts.domainSuffix ?? DEFAULT_DOMAIN_SUFFIX;
    this.others = opts.others ?? [];
    this.peerHosts = opts.peerHosts ?? [];
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
  /** Namespaces the config knows of: Namespace objects and the namespaces resources are in. */
  namespaces(): Set<string> {
    const out = new Set<string>();
    for (const r of this.resources) {
      if (r.kind === 'Namespace') out.add(r.metadata.name);
      else if (r.metadata.namespace !== undefined) out.add(r.metadata.namespace);
    }
    for (const o of this.others) if (o.namespace !== undefined) out.add(o.namespace);
    return out;
  }
  /** A problem at a field of `r` (or at `r` itself when `path` is empty); `code` is Istio's analyzer code. */
  problem(severity: Severity, r: Resource, path: Path, message: string, code?: string): ConfigError {
    return {
      severity,
      file: r.source.file,
      line: fieldLine(r, path),
      kind: r.kind,
      ...(r.metadata.namespace !== undefined ? { namespace: r.metadata.namespace } : {}),
      name: r.metadata.name,
      ...(path.length > 0 ? { path: formatPath(path) } : {}),
      message,
      ...(code !== undefined ? { code } : {}),
    };
  }
}

/** `ns/name` of a namespaced resource. */
export function nsName(r: Resource): string {
  return `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
}

/**
 * The namespaces a resource is visible in (`exportTo`), or undefined for all of them. Istio's
 * values: `*` everywhere, `.` its own namespace, else namespace names.
 */
export function visibleIn(r: Resource<{ exportTo?: string[] }>): Set<string> | undefined {
  const to = r.spec.exportTo;
  if (!to || to.length === 0 || to.includes('*')) return undefined;
  return new Set(to.map((x) => (x === '.' ? (r.metadata.namespace ?? 'default') : x)));
}

/** Whether some namespace sees both resources. */
export function visibleTogether(a: Resource<{ exportTo?: string[] }>, b: Resource<{ exportTo?: string[] }>): boolean {
  const va = visibleIn(a);
  const vb = visibleIn(b);
  if (!va || !vb) return true;
  return [...va].some((n) => vb.has(n));
}

export interface Analyzer {
  name: string;
  run: (ctx: AnalyzeContext) => ConfigError[];
}

/** Every host a Service or ServiceEntry defines, fully qualified. */
export function definedHosts(ctx: AnalyzeContext): string[] {
  const hosts = ctx.of<ServiceSpec>('Service').map((s) => serviceHost(s.metadata.name, s.metadata.namespace ?? 'default', ctx.domainSuffix));
  for (const se of ctx.of<ServiceEntrySpec>('ServiceEntry')) for (const h of se.spec.hosts ?? []) hosts.push(ctx.fqdn(h, se));
  hosts.push(...ctx.peerHosts);
  return hosts;
}

export interface DestRef {
  vs: Resource<VirtualServiceSpec>;
  dest: Destination;
  path: Path;
}

/** Every destination a VirtualService sends (or mirrors) traffic to. */
export function destinations(vs: Resource<VirtualServiceSpec>): DestRef[] {
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

export function boundToMesh(vs: Resource<VirtualServiceSpec>): boolean {
  const gw = vs.spec.gateways;
  return !gw || gw.length === 0 || gw.includes('mesh');
}

/** A route that matches every request: no match, or a match entry with no condition. */
export function isCatchAll(h: HTTPRoute): boolean {
  return !h.match || h.match.length === 0 || h.match.some((m) => Object.keys(m).filter((k) => k !== 'name').length === 0);
}

export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => k !== 'name').sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

