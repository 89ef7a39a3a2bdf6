import { errorAt, resourceKey, type ConfigError, type Resource, type ResourceKey } from '../types.js';

/**
 * Everything a source holds at one moment. Sources hand over whole snapshots rather than deltas so
 * that a missed or reordered notification can never leave a consumer out of sync: the latest
 * snapshot is always the truth, and the ConfigStore does the diffing.
 *
 * A snapshot is immutable: the maps are never mutated after delivery and the resources are frozen.
 * Resource objects that did not change keep their identity across snapshots, which lets consumers
 * skip unchanged entries with a cheap `!==` before comparing content.
 */
export interface SourceSnapshot {
  readonly resources: ReadonlyMap<ResourceKey, Resource>;
  /** Current problems (errors and warnings). A resource with errors is absent or at its last good version. */
  readonly errors: readonly ConfigError[];
}

export type SnapshotListener = (snapshot: SourceSnapshot) => void;

export interface ConfigSource {
  /** Shown in conflict messages, e.g. `dir:/etc/isle` or `memory:tests`. */
  readonly name: string;
  /** Begins producing snapshots; resolves once the first complete snapshot is available. Idempotent. */
  start(): Promise<void>;
  /** Releases watchers and timers; no listener is called afterwards. Idempotent. */
  stop(): Promise<void>;
  /** The latest snapshot (empty before start for sources that load lazily). */
  snapshot(): SourceSnapshot;
  /** Called with each new snapshot. Not called for the current one: read `snapshot()` for that. */
  subscribe(listener: SnapshotListener): () => void;
}

export const EMPTY_SNAPSHOT: SourceSnapshot = Object.freeze({
  resources: new Map<ResourceKey, Resource>(),
  errors: Object.freeze([]) as readonly ConfigError[],
});

/** Freezes a value and everything reachable from it, so shared resources cannot be edited by a consumer. */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const v of Object.values(value as object)) deepFreeze(v);
  return value;
}

/** By default a throwing listener is rethrown asynchronously, as EventEmitter would surface it. */
export function rethrowAsync(err: unknown): void {
  queueMicrotask(() => {
    throw err;
  });
}

/**
 * Calls every listener even if one throws: a throwing listener is a bug in that listener, and must
 * neither keep the others from the change nor leave the sender's state half-updated.
 */
export function notifyAll<A extends unknown[]>(
  listeners: Iterable<(...args: A) => void>,
  args: A,
  onError: (err: unknown) => void = rethrowAsync,
): void {
  for (const l of [...listeners]) {
    try {
      l(...args);
    } catch (err) {
      onError(err);
    }
  }
}

/** One file's contribution to a snapshot: its last good resources and its current problems. */
export interface FileContribution {
  readonly good: readonly Resource[];
  readonly errors: readonly ConfigError[];
}

/**
 * Files (already in path order) into one snapshot's content: the first definition of a key wins;
 * a later one is an error naming where the winner is.
 */
export function mergeFiles(files: readonly FileContribution[], errors: ConfigError[] = []): { resources: Map<ResourceKey, Resource>; errors: ConfigError[] } {
  const resources = new Map<ResourceKey, Resource>();
  for (const f of files) {
    errors.push(...f.errors);
    for (const r of f.good) {
      const key = resourceKey(r);
      const first = resources.get(key);
      if (first) {
        errors.push(errorAt(r, `defined again; the definition at ${first.source.file}:${first.source.line} wins`));
        continue;
      }
      resources.set(key, r);
    }
  }
  return { resources, errors };
}

/** A file's new contribution; `resources` undefined means "invalid: keep the last good ones" (and say so). */
export function nextContribution(file: string, prevGood: readonly Resource[] | undefined, resources: readonly Resource[] | undefined, errors: readonly ConfigError[]): FileContribution {
  const good = resources ? resources.map((r) => deepFreeze(r)) : (prevGood ?? []);
  const all = [...errors];
  if (!resources && good.length > 0) {
    all.push({ severity: 'warning', file, message: `has errors; still serving its last good version (${good.length} resource${good.length === 1 ? '' : 's'})` });
  }
  return { good, errors: all };
}
