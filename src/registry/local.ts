/**
 * Keeps the local cluster's shard in step with the ConfigStore and the auto-registered workloads.
 * Cost follows the change: when only workloads moved (auto-registrations, WorkloadEntries) the
 * shard is patched (patchShardWorkloads: the changed workloads and the services selecting them)
 * and the Registry re-merges those hosts only. A Service, ServiceEntry or mesh settings change
 * rebuilds the shard whole from the kept inputs and lets the Registry diff it.
 */
import type { ConfigEvent, Kind, Resource, ResourceKey } from '../config/types.js';
import { resourceKey } from '../config/types.js';
import type { Registry, RegistryChange } from './aggregate.js';
import type { AutoRegistry } from './autoregister.js';
import { pickMeshConfig, type MeshSettingsSource } from '../mesh/settings.js';
import type { WorkloadEntrySpec } from '../config/kinds/networking.js';
import { buildShard, meshDefaultsFrom, patchShardWorkloads, type MeshDefaults, type Shard, type WorkloadInputs } from './shard.js';

const SHARD_KINDS: ReadonlySet<Kind> = new Set<Kind>(['Service', 'ServiceEntry', 'WorkloadEntry', 'MeshConfig']);

const wleKey = (r: Resource): string => `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;

/** The resources a shard is built from, kept up to date from ConfigEvents. */
export class ShardInputs {
  private readonly resources = new Map<ResourceKey, Resource>();
  /** WorkloadEntries by workload key (`namespace/name`). */
  private readonly wles = new Map<string, Resource<WorkloadEntrySpec>>();
  private defaultsCache: MeshDefaults | undefined;

  constructor(initial: Iterable<Resource> = []) {
    for (const r of initial) if (SHARD_KINDS.has(r.kind)) this.set(resourceKey(r), r);
  }

  /**
   * Applies a batch. Returns undefined when it touched nothing that shapes the shard, `'all'` when
   * services or the MeshConfig changed, else the workload keys of the WorkloadEntries it changed.
   */
  apply(events: readonly ConfigEvent[]): 'all' | Set<string> | undefined {
    let all = false;
    let keys: Set<string> | undefined;
    for (const e of events) {
      const r = e.type === 'deleted' ? e.previous : e.resource;
      if (!SHARD_KINDS.has(r.kind)) continue;
      if (r.kind === 'WorkloadEntry') (keys ??= new Set()).add(wleKey(r));
      else all = true;
      if (r.kind === 'MeshConfig') this.defaultsCache = undefined;
      if (e.type === 'deleted') this.remove(e.key, r);
      else this.set(e.key, e.resource);
    }
    return all ? 'all' : keys;
  }

  /** The WorkloadEntry of a workload key, if any. */
  workloadEntry(key: string): Resource<WorkloadEntrySpec> | undefined {
    return this.wles.get(key);
  }

  private set(key: ResourceKey, r: Resource): void {
    const old = this.resources.get(key);
    if (old?.kind === 'WorkloadEntry') this.wles.delete(wleKey(old));
    this.resources.set(key, r);
    if (r.kind === 'WorkloadEntry') this.wles.set(wleKey(r), r as Resource<WorkloadEntrySpec>);
  }

  private remove(key: ResourceKey, r: Resource): void {
    this.resources.delete(key);
    if (r.kind === 'WorkloadEntry' && this.wles.get(wleKey(r)) !== undefined) this.wles.delete(wleKey(r));
  }

  list(): Resource[] {
    return [...this.resources.values()];
  }

  /** The defaults of the MeshConfig that wins (pickMeshConfig), for shards built without a resolver. */
  meshDefaults(): MeshDefaults {
    return (this.defaultsCache ??= meshDefaultsFrom(pickMeshConfig([...this.resources.values()])?.spec));
  }
}

export interface LocalShardOptions {
  cluster: string;
  store: { list(): Resource[]; subscribe(l: (events: readonly ConfigEvent[], version: number) => void): () => void };
  registry: Registry;
  autoRegistry?: AutoRegistry;
  /**
   * The control plane's mesh settings (MeshConfig + flags, re-read live). Absent: the store's
   * MeshConfig alone (tests).
   */
  mesh?: MeshSettingsSource;
  /**
   * Defers a rebuild so a burst (many proxies connecting at once, a batch of files) costs one.
   * Default setImmediate; pass `(fn) => fn()` to rebuild synchronously.
   */
  schedule?: (fn: () => void) => void;
}

export interface LocalShardWatch {
  /** Rebuilds now; returns what changed in the registry. */
  rebuild(): RegistryChange | undefined;
  stop(): void;
}

export function watchLocalShard(opts: LocalShardOptions): LocalShardWatch {
  const inputs = new ShardInputs(opts.store.list());
  const schedule = opts.schedule ?? ((fn: () => void) => void setImmediate(fn));
  let pending = false;
  let stopped = false;
  /** What changed since the last rebuild: everything, or these workload keys only. */
  let dirtyAll = true;
  const dirtyKeys = new Set<string>();
  let last: Shard | undefined;
  const defaults = () => (opts.mesh ? meshDefaultsFrom(opts.mesh.current()) : inputs.meshDefaults());
  const rebuild = () => {
    pending = false;
    if (dirtyAll || !last) {
      dirtyAll = false;
      dirtyKeys.clear();
      last = buildShard(opts.cluster, defaults(), { resources: inputs.list(), workloads: opts.autoRegistry?.workloads() ?? [] });
      return opts.registry.setShard(opts.cluster, last);
    }
    const changed = new Map<string, WorkloadInputs>();
    for (const key of dirtyKeys) {
      const wle = inputs.workloadEntry(key);
      const auto = opts.autoRegistry?.spec(key);
      changed.set(key, { ...(wle ? { wle } : {}), ...(auto ? { auto } : {}) });
    }
    dirtyKeys.clear();
    const patched = patchShardWorkloads(last, defaults(), changed);
    if (patched.shard === last) return undefined;
    last = patched.shard;
    return opts.registry.patchShard(opts.cluster, last, patched.hosts, patched.workloads);
  };
  const later = () => {
    if (pending) return;
    pending = true;
    schedule(() => {
      if (pending && !stopped) rebuild();
    });
  };
  const offStore = opts.store.subscribe((events) => {
    const what = inputs.apply(events);
    if (what === undefined) return;
    if (what === 'all') dirtyAll = true;
    else for (const k of what) dirtyKeys.add(k);
    later();
  });
  const offAuto = opts.autoRegistry?.subscribeChanges((change) => {
    dirtyKeys.add(change.key);
    later();
  });
  const offMesh = opts.mesh?.subscribe(() => {
    dirtyAll = true;
    later();
  });
  rebuild();
  return {
    rebuild: () => {
      dirtyAll = true;
      return rebuild();
    },
    stop: () => {
      stopped = true;
      offStore();
      offAuto?.();
      offMesh?.();
    },
  };
}
