/**
 * The registry: one shard per cluster (the local one, and peers' exported services and workloads)
 * and the aggregate view the generators query. Merge rules and change classification are written
 * down in docs/decisions/0006-registry.md; this file implements them.
 */
import { notifyAll, rethrowAsync } from '../config/sources/source.js';
import {
  labelsMatch,
  type Endpoint,
  type Labels,
  type RegistryConflict,
  type RegistryProblem,
  type Service,
  type ServicePort,
  type Workload,
} from './model.js';
import { cmp, emptyShard, type Shard } from './shard.js';

/**
 * What one update changed. A hostname is in at most one of `services` (its definition changed, or
 * it appeared or disappeared: a full push for it) and `endpoints` (only its endpoints changed: the
 * EDS-only fast path). `workloads` holds `cluster/namespace/name` of workloads that changed, so
 * a proxy's own inbound config can follow its labels.
 */
export interface RegistryChange {
  readonly version: number;
  /** The shard that changed: the local cluster's, or a peer's (already debounced at its source). */
  readonly cluster: string;
  readonly services: ReadonlySet<string>;
  readonly endpoints: ReadonlySet<string>;
  readonly workloads: ReadonlySet<string>;
}

export type RegistryListener = (change: RegistryChange) => void;

export interface RegistryOptions {
  /** The cluster this control plane serves: its definitions win conflicts. */
  localCluster: string;
  /** Where conflicts are reported as they appear and disappear. Default console.warn. */
  log?: (line: string) => void;
  /** Receives what a listener throws. Default: rethrown asynchronously. */
  onListenerError?: (err: unknown) => void;
}

interface Merged {
  service: Service;
  endpoints: readonly Endpoint[];
  serviceFp: string;
  endpointsFp: string;
  conflicts: readonly RegistryConflict[];
}

interface ShardFingerprints {
  services: Map<string, string>;
  endpoints: Map<string, string>;
  workloads: Map<string, string>;
}

const fingerprintCache = new WeakMap<Shard, ShardFingerprints>();

function fingerprints(shard: Shard): ShardFingerprints {
  let fp = fingerprintCache.get(shard);
  if (!fp) {
    fp = { services: new Map(), endpoints: new Map(), workloads: new Map() };
    for (const [h, s] of shard.services) fp.services.set(h, JSON.stringify(s));
    for (const [h, e] of shard.endpoints) fp.endpoints.set(h, endpointsFingerprint(e));
    for (const w of shard.workloads) fp.workloads.set(`${w.namespace}/${w.name}`, jsonOf(w));
    fingerprintCache.set(shard, fp);
  }
  return fp;
}

const jsonCache = new WeakMap<object, string>();

/** Shards reuse unchanged workload and endpoint objects, so their text is computed once. */
function jsonOf(o: object): string {
  let f = jsonCache.get(o);
  if (f === undefined) jsonCache.set(o, (f = JSON.stringify(o)));
  return f;
}

function endpointsFingerprint(eps: readonly Endpoint[]): string {
  let out = '';
  for (const e of eps) out += jsonOf(e) + '\n';
  return out;
}

const NO_ENDPOINTS: readonly Endpoint[] = Object.freeze([]);

export class Registry {
  readonly localCluster: string;
  private readonly log: (line: string) => void;
  private readonly onListenerError: (err: unknown) => void;
  private readonly shardMap = new Map<string, Shard>();
  private readonly staleSet = new Set<string>();
  private readonly merged = new Map<string, Merged>();
  private readonly listeners = new Set<RegistryListener>();
  private currentVersion = 0;
  private servicesCache: readonly Service[] | undefined;
  private conflictsCache: readonly RegistryConflict[] | undefined;
  private addressIndex: Map<string, Workload[]> | undefined;

  constructor(opts: RegistryOptions) {
    this.localCluster = opts.localCluster;
    this.log = opts.log ?? ((line) => console.warn(line));
    this.onListenerError = opts.onListenerError ?? rethrowAsync;
  }

  /** Increases by one with every update that changed services, endpoints or workloads. */
  get version(): number {
    return this.currentVersion;
  }

  /**
   * Replaces the shard of `cluster` (fresh data, so the stale mark goes). Returns what changed,
   * or undefined when nothing did (no version bump, no notification).
   */
  setShard(cluster: string, shard: Shard): RegistryChange | undefined {
    const old = this.shardMap.get(cluster) ?? emptyShard(cluster);
    this.shardMap.set(cluster, shard);
    this.staleSet.delete(cluster);
    return this.applyDiff(cluster, old, shard);
  }

  /**
   * Replaces the shard of `cluster` with one that differs only in the endpoints of `hosts` and in
   * the workloads `workloads` (`namespace/name`), as patchShardWorkloads makes it: only those
   * hosts are merged again, nothing is diffed whole. Same result and notification as setShard.
   */
  patchShard(cluster: string, shard: Shard, hosts: ReadonlySet<string>, workloads: ReadonlySet<string>): RegistryChange | undefined {
    this.shardMap.set(cluster, shard);
    this.staleSet.delete(cluster);
    return this.applyChanges(cluster, new Set(hosts), new Set([...workloads].map((k) => `${cluster}/${k}`)));
  }

  removeShard(cluster: string): RegistryChange | undefined {
    const old = this.shardMap.get(cluster);
    this.staleSet.delete(cluster);
    if (!old) return undefined;
    this.shardMap.delete(cluster);
    return this.applyDiff(cluster, old, emptyShard(cluster));
  }

  /**
   * A peer whose feed is down keeps serving its last-known endpoints (dropping them would black-hole
   * traffic that most likely still works) and is flagged on /debug/registryz. The view is
   * unchanged, so there is no notification.
   */
  markStale(cluster: string, stale: boolean): void {
    if (stale) this.staleSet.add(cluster);
    else this.staleSet.delete(cluster);
  }

  isStale(cluster: string): boolean {
    return this.staleSet.has(cluster);
  }

  shard(cluster: string): Shard | undefined {
    return this.shardMap.get(cluster);
  }

  /** Clusters with a shard, in merge precedence: the local cluster first, then by name. */
  clusters(): string[] {
    return [...this.shardMap.keys()].sort((a, b) => this.rank(a, b));
  }

  /** The merged services, sorted by hostname. */
  services(): readonly Service[] {
    this.servicesCache ??= Object.freeze([...this.merged.keys()].sort(cmp).map((h) => this.merged.get(h)!.service));
    return this.servicesCache;
  }

  service(hostname: string): Service | undefined {
    return this.merged.get(hostname.toLowerCase())?.service;
  }

  /**
   * Endpoints of one service port (by name, or by service port number), from every shard, each
   * with its own cluster/network/locality; narrowed to `subsetLabels` when given. Unhealthy and
   * draining endpoints are included: EDS carries health, the proxy decides.
   */
  endpoints(hostname: string, port: string | number, subsetLabels?: Labels): readonly Endpoint[] {
    const m = this.merged.get(hostname.toLowerCase());
    if (!m) return NO_ENDPOINTS;
    return m.endpoints.filter(
      (e) => (typeof port === 'number' ? e.servicePort === port : e.portName === port) && labelsMatch(subsetLabels, e.labels),
    );
  }

  /** Every endpoint of a service, all ports. */
  allEndpoints(hostname: string): readonly Endpoint[] {
    return this.merged.get(hostname.toLowerCase())?.endpoints ?? NO_ENDPOINTS;
  }

  /**
   * Workloads with this address across shards. Addresses are only unique within a network, so
   * pass `network` to narrow.
   */
  workloadsByAddress(address: string, network?: string): readonly Workload[] {
    if (!this.addressIndex) {
      this.addressIndex = new Map();
      for (const c of this.clusters()) {
        for (const w of this.shardMap.get(c)!.workloads) {
          if (w.address === undefined) continue;
          let list = this.addressIndex.get(w.address);
          if (!list) this.addressIndex.set(w.address, (list = []));
          list.push(w);
        }
      }
    }
    const list = this.addressIndex.get(address) ?? [];
    return network === undefined ? list : list.filter((w) => w.network === network);
  }

  /** Current conflicts, sorted by hostname. */
  conflicts(): readonly RegistryConflict[] {
    this.conflictsCache ??= Object.freeze(
      [...this.merged.keys()].sort(cmp).flatMap((h) => this.merged.get(h)!.conflicts),
    );
    return this.conflictsCache;
  }

  /** Every shard's problems (skipped endpoints, duplicate hosts...), local cluster first. */
  problems(): readonly RegistryProblem[] {
    return this.clusters().flatMap((c) => this.shardMap.get(c)!.problems);
  }

  subscribe(listener: RegistryListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  private rank = (a: string, b: string): number => {
    if (a === b) return 0;
    if (a === this.localCluster) return -1;
    if (b === this.localCluster) return 1;
    return cmp(a, b);
  };

  private applyDiff(cluster: string, before: Shard, after: Shard): RegistryChange | undefined {
    const fb = fingerprints(before);
    const fa = fingerprints(after);
    const touched = new Set<string>();
    for (const m of [fb.services, fb.endpoints]) for (const h of m.keys()) touched.add(h);
    for (const m of [fa.services, fa.endpoints]) for (const h of m.keys()) touched.add(h);
    for (const h of [...touched]) {
      if (fb.services.get(h) === fa.services.get(h) && fb.endpoints.get(h) === fa.endpoints.get(h)) touched.delete(h);
    }
    const workloads = new Set<string>();
    for (const [k, v] of fa.workloads) if (fb.workloads.get(k) !== v) workloads.add(`${cluster}/${k}`);
    for (const k of fb.workloads.keys()) if (!fa.workloads.has(k)) workloads.add(`${cluster}/${k}`);
    return this.applyChanges(cluster, touched, workloads);
  }

  /** Merges `touched` hosts again (a change of `cluster`'s shard), classifies what moved, and notifies. */
  private applyChanges(cluster: string, touched: Set<string>, workloads: Set<string>): RegistryChange | undefined {
    if (workloads.size > 0) this.addressIndex = undefined;

    const services = new Set<string>();
    const endpoints = new Set<string>();
    for (const h of [...touched].sort(cmp)) {
      const prev = this.merged.get(h);
      const next = this.merge(h);
      if (next) this.merged.set(h, next);
      else this.merged.delete(h);
      this.reportConflicts(prev?.conflicts ?? [], next?.conflicts ?? []);
      if (prev?.serviceFp !== next?.serviceFp) services.add(h);
      else if (prev?.endpointsFp !== next?.endpointsFp) endpoints.add(h);
    }
    if (services.size > 0) this.servicesCache = undefined;
    // A losing shard's definition can change its conflicts without changing the merged view.
    if (touched.size > 0) this.conflictsCache = undefined;
    if (services.size === 0 && endpoints.size === 0 && workloads.size === 0) return undefined;

    this.currentVersion += 1;
    const change: RegistryChange = Object.freeze({ version: this.currentVersion, cluster, services, endpoints, workloads });
    notifyAll(this.listeners, [change], this.onListenerError);
    return change;
  }

  /** The merge rules of docs/decisions/0006-registry.md, for one hostname. */
  private merge(hostname: string): Merged | undefined {
    const defs: { cluster: string; svc: Service; eps: readonly Endpoint[] }[] = [];
    for (const cluster of this.clusters()) {
      const shard = this.shardMap.get(cluster)!;
      const svc = shard.services.get(hostname);
      if (svc) defs.push({ cluster, svc, eps: shard.endpoints.get(hostname) ?? NO_ENDPOINTS });
    }
    if (defs.length === 0) return undefined;
    const win = defs[0]!;
    const conflicts: RegistryConflict[] = [];
    const conflict = (field: string, clusters: string[], detail: string) =>
      conflicts.push({ hostname, clusters, field, detail, winner: win.cluster });

    const scalar = (field: string, get: (s: Service) => unknown) => {
      const want = JSON.stringify(get(win.svc));
      const others = defs.slice(1).filter((d) => JSON.stringify(get(d.svc)) !== want);
      if (others.length === 0) return;
      const all = [win, ...others];
      conflict(field, all.map((d) => d.cluster), all.map((d) => `${d.cluster}: ${JSON.stringify(get(d.svc)) ?? 'unset'}`).join('; '));
    };
    scalar('kind', (s) => s.kind);
    scalar('namespace', (s) => s.namespace);
    scalar('resolution', (s) => s.resolution);
    scalar('location', (s) => s.location);
    scalar('exportTo', (s) => s.exportTo);

    // Ports: union by number; the first definition in precedence order wins a number.
    const byNumber = new Map<number, { port: ServicePort; cluster: string; rank: number }>();
    const disagree = new Map<number, Map<string, ServicePort>>();
    defs.forEach((d, rank) => {
      for (const p of d.svc.ports) {
        const have = byNumber.get(p.port);
        if (!have) {
          byNumber.set(p.port, { port: p, cluster: d.cluster, rank });
        } else if (have.port.name !== p.name || have.port.protocol !== p.protocol || have.port.targetPort !== p.targetPort) {
          let m = disagree.get(p.port);
          if (!m) disagree.set(p.port, (m = new Map([[have.cluster, have.port]])));
          m.set(d.cluster, p);
        }
      }
    });
    for (const [n, m] of [...disagree].sort(([a], [b]) => a - b)) {
      const desc = (p: ServicePort) => `${p.name || '(unnamed)'} ${p.protocol} targetPort ${p.targetPort}`;
      conflict('port', [...m.keys()], `port ${n}: ${[...m].map(([c, p]) => `${c}: ${desc(p)}`).join('; ')}`);
    }
    // Port names must stay unique (endpoints are looked up by name): a name already taken by a
    // higher-precedence number loses its port, and that shard's endpoints for it.
    const kept = new Map<number, ServicePort>();
    const nameOwner = new Map<string, { number: number; cluster: string }>();
    for (const [n, e] of [...byNumber].sort(([a, x], [b, y]) => x.rank - y.rank || a - b)) {
      const owner = nameOwner.get(e.port.name);
      if (owner) {
        conflict(
          'portName',
          [owner.cluster, e.cluster],
          `port name ${JSON.stringify(e.port.name)}: ${owner.cluster} uses it for ${owner.number}, ${e.cluster} for ${n}; port ${n} and its endpoints dropped`,
        );
        continue;
      }
      nameOwner.set(e.port.name, { number: n, cluster: e.cluster });
      kept.set(n, e.port);
    }
    const ports = [...kept.values()].sort((a, b) => a.port - b.port);

    const clusterAddresses: Record<string, readonly string[]> = {};
    for (const c of defs.map((d) => d.cluster).sort(cmp)) clusterAddresses[c] = defs.find((d) => d.cluster === c)!.svc.addresses;
    const service: Service = {
      ...win.svc,
      ports,
      addresses: win.svc.addresses,
      clusterAddresses,
      clusters: defs.map((d) => d.cluster).sort(cmp),
    };

    const endpoints: Endpoint[] = [];
    for (const d of defs) {
      for (const ep of d.eps) {
        const p = kept.get(ep.servicePort);
        if (!p) continue;
        // A shard that named the port differently still serves it: its endpoints follow the winner's name.
        endpoints.push(p.name === ep.portName ? ep : { ...ep, portName: p.name });
      }
    }
    return {
      service,
      endpoints,
      serviceFp: JSON.stringify(service),
      endpointsFp: endpointsFingerprint(endpoints),
      conflicts,
    };
  }

  private reportConflicts(before: readonly RegistryConflict[], after: readonly RegistryConflict[]): void {
    const key = (c: RegistryConflict) => `${c.field} ${c.detail}`;
    const was = new Set(before.map(key));
    const is = new Set(after.map(key));
    for (const c of after) {
      if (!was.has(key(c))) this.log(`registry conflict: ${c.hostname} ${c.field}: ${c.detail} (using ${c.winner})`);
    }
    for (const c of before) {
      if (!is.has(key(c))) this.log(`registry conflict resolved: ${c.hostname} ${c.field}`);
    }
  }
}
