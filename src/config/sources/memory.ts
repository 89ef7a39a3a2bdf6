import { parseConfigText } from '../parse.js';
import { resourceKey, type ConfigError, type ParseResult, type Resource, type ResourceKey, type SourcePos } from '../types.js';
import { deepFreeze, notifyAll, type ConfigSource, type SnapshotListener, type SourceSnapshot } from './source.js';

/** A resource given as an object; `source` may be left out (it then points at the source's pseudo file). */
export type MemoryResource = Omit<Resource, 'source'> & { source?: SourcePos };

export type MemoryInput = MemoryResource | readonly MemoryResource[] | string;

/**
 * A source held in memory: for tests, and as the landing place of feeds that are not files (peers).
 * Changes are delivered on a microtask, so a run of synchronous calls reaches listeners as one
 * snapshot (and the store as one batch).
 */
export class MemorySource implements ConfigSource {
  readonly name: string;
  private readonly resources = new Map<ResourceKey, Resource>();
  /** Errors by pseudo file, so re-applying a fixed text clears that text's errors only. */
  private readonly errorsByFile = new Map<string, readonly ConfigError[]>();
  private readonly listeners = new Set<SnapshotListener>();
  private cached: SourceSnapshot | undefined;
  private scheduled = false;
  private stopped = false;

  constructor(name = 'memory', initial?: MemoryInput) {
    this.name = name.includes(':') ? name : `memory:${name}`;
    if (initial !== undefined) this.apply(initial);
  }

  async start(): Promise<void> {
    this.stopped = false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
  }

  snapshot(): SourceSnapshot {
    this.cached ??= Object.freeze({
      resources: new Map(this.resources),
      errors: Object.freeze([...this.errorsByFile.values()].flat()),
    });
    return this.cached;
  }

  subscribe(listener: SnapshotListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /**
   * Adds or replaces resources. Text is parsed as if it were the file `file`; like a file in a
   * directory, a text with any error applies nothing (its errors are reported instead), while
   * warnings do not block. Returns what the parse found (for objects: those objects, no errors).
   */
  apply(input: MemoryInput, file = `${this.name}.yaml`): ParseResult {
    const result = this.toResult(input, file);
    if (typeof input === 'string') {
      this.errorsByFile.set(file, result.errors);
      if (result.errors.length === 0) this.errorsByFile.delete(file);
      if (result.errors.some((e) => e.severity === 'error')) {
        this.changed();
        return result;
      }
    }
    for (const r of result.resources) this.resources.set(resourceKey(r), r);
    this.changed();
    return result;
  }

  /** Removes one resource by key or by the resource itself; returns whether it existed. */
  delete(target: ResourceKey | Resource): boolean {
    const key = typeof target === 'string' ? target : resourceKey(target);
    const existed = this.resources.delete(key);
    if (existed) this.changed();
    return existed;
  }

  /** Replaces the whole content (and clears earlier errors) in one delivery. */
  replaceAll(input: MemoryInput, file = `${this.name}.yaml`): ParseResult {
    this.resources.clear();
    this.errorsByFile.clear();
    return this.apply(input, file);
  }

  private toResult(input: MemoryInput, file: string): ParseResult {
    if (typeof input === 'string') {
      const parsed = parseConfigText(file, input);
      return { resources: parsed.resources.map((r) => deepFreeze(r)), errors: parsed.errors };
    }
    const list: readonly MemoryResource[] = Array.isArray(input) ? input : [input as MemoryResource];
    // Cloned so that a caller reusing or editing its object cannot change what the store already has.
    const resources = list.map((r) => deepFreeze({ ...structuredClone(r), source: { ...(r.source ?? { file, line: 1 }) } } as Resource));
    return { resources, errors: [] };
  }

  private changed(): void {
    this.cached = undefined;
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      if (this.stopped) return;
      notifyAll(this.listeners, [this.snapshot()]);
    });
  }
}
