/**
 * Keeps the local cluster's shard in step with the ConfigStore and the auto-registered workloads.
 * The shard is rebuilt whole from the kept inputs (buildShard is pure and cheap next to a push);
 * the Registry's diff then decides what actually changed.
 */
import type { ConfigEvent, Kind, Resource, ResourceKey } from '../config/types.js';
import { resourceKey } from '../config/types.js';
import type { Registry, RegistryChange } from './aggregate.js';
import type { AutoRegistry } from './autoregister.js';
import { pickMeshConfig, type MeshSettingsSource } from '../mesh/settings.js';
import { buildShard, meshDefaultsFrom, type MeshDefaults, type WorkloadSpec } from './shard.js';

const SHARD_KINDS: ReadonlySet<Kind> = new Set<Kind>(['Service', 'ServiceEntry', 'WorkloadEntry', 'MeshConfig']);

/** The resources a shard is built from, kept up to date from ConfigEvents. */
export class ShardInputs {
  private readonly resources = new Map<ResourceKey, Resource>();
  private defaultsCache: MeshDefaults | undefined;

  constructor(initial: Iterable<Resource> = []) {
    for (const r of initial) if (SHARD_KINDS.has(r.kind)) this.resources.set(resourceKey(r), r);
  }

  /** Applies a batch; true when it touched a kind that shapes the shard. */
  apply(events: readonly ConfigEvent[]): boolean {
    let relevant = false;
    for (const e of events) {
      const kind = e.type === 'deleted' ? e.previous.kind : e.resource.kind;
      if (!SHARD_KINDS.has(kind)) continue;
      relevant = true;
      if (kind === 'MeshConfig') this.defaultsCache = undefined;
      if (e.type === 'deleted') this.resources.delete(e.key);
      else this.resources.set(e.key, e.resource);
    }
    return relevant;
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
  let auto: readonly WorkloadSpec[] = opts.autoRegistry?.workloads() ?? [];
  const schedule = opts.schedule ?? ((fn: () => void) => void setImmediate(fn));
  let pending = false;
  let stopped = false;
  const rebuild = () => {
    pending = false;
    return opts.registry.setShard(
      opts.cluster,
      buildShard(opts.cluster, opts.mesh ? meshDefaultsFrom(opts.mesh.current()) : inputs.meshDefaults(), { resources: inputs.list(), workloads: auto }),
    );
  };
  const later = () => {
    if (pending) return;
    pending = true;
    schedule(() => {
      if (pending && !stopped) rebuild();
    });
  };
  const offStore = opts.store.subscribe((events) => {
    if (inputs.apply(events)) later();
  });
  const offAuto = opts.autoRegistry?.subscribe((list) => {
    auto = list;
    later();
  });
  const offMesh = opts.mesh?.subscribe(later);
  rebuild();
  return {
    rebuild,
    stop: () => {
      stopped = true;
      offStore();
      offAuto?.();
      offMesh?.();
    },
  };
}
