import { deepFreeze, notifyAll, rethrowAsync, type ConfigSource, type SourceSnapshot } from './sources/source.js';
import { errorAt, resourceKey, type ConfigError, type ConfigEvent, type Kind, type Resource, type ResourceKey } from './types.js';

/**
 * Receives each batch of changes. `version` is the store version after the batch (every event in it
 * carries the same one). Events, their arrays and the resources in them are frozen and shared by all
 * listeners: do not mutate them.
 */
export type ConfigListener = (events: readonly ConfigEvent[], version: number) => void;
export type ErrorsListener = (errors: readonly ConfigError[]) => void;

/** A resource as the store holds it: the resource and the store version at which it last changed. */
export interface StoredResource {
  readonly resource: Resource;
  readonly resourceVersion: number;
}

interface Attached {
  source: ConfigSource;
  current: ReadonlyMap<ResourceKey, Resource>;
  errors: readonly ConfigError[];
  unsubscribe: () => void;
}

interface Entry {
  resource: Resource;
  resourceVersion: number;
  canonical: string;
  /** Index of the source the winning definition came from. */
  from: number;
}

/**
 * Merges the snapshots of several sources into one keyed set of resources and emits the differences.
 *
 * Precedence: a source added earlier wins for the same key; the losing definition is reported as an
 * error naming both. Only content counts as change (apiVersion, kind, metadata name/namespace/labels/
 * annotations, spec): a resource that moved to another line or file is updated in place silently.
 */
export class ConfigStore {
  private readonly sources: Attached[] = [];
  private readonly entries = new Map<ResourceKey, Entry>();
  /**
   * list() results by kind ('' = all), dropped on any change: pushes and connecting proxies list
   * a kind or two of thousands of resources many times between changes.
   */
  private readonly lists = new Map<string, readonly Resource[]>();
  private readonly conflicts = new Map<ResourceKey, ConfigError[]>();
  private readonly listeners = new Set<ConfigListener>();
  private readonly errorListeners = new Set<ErrorsListener>();
  private currentVersion = 0;
  private errorsCache: readonly ConfigError[] | undefined;
  private errorsFingerprint = '[]';
  private readonly onListenerError: (err: unknown) => void;

  /** `onListenerError` receives what a subscriber throws (default: rethrown asynchronously). */
  constructor(opts: { onListenerError?: (err: unknown) => void } = {}) {
    this.onListenerError = opts.onListenerError ?? rethrowAsync;
  }

  /** Increases by one for every batch of changes; 0 until the first resource arrives. */
  get version(): number {
    return this.currentVersion;
  }

  /**
   * Attaches a source with lower precedence than all sources attached before it. Its current
   * snapshot is merged at once; start it with `start()` (or yourself, before or after).
   */
  addSource(source: ConfigSource): void {
    if (this.sources.some((a) => a.source === source)) throw new Error(`source ${source.name} already added`);
    const attached: Attached = { source, current: new Map(), errors: [], unsubscribe: () => {} };
    this.sources.push(attached);
    attached.unsubscribe = source.subscribe((snap) => this.ingest(attached, snap));
    this.ingest(attached, source.snapshot());
  }

  /** Detaches a source; its resources disappear unless a lower-precedence source also has them. */
  removeSource(source: ConfigSource): void {
    const i = this.sources.findIndex((a) => a.source === source);
    if (i < 0) return;
    const attached = this.sources[i]!;
    attached.unsubscribe();
    this.ingest(attached, { resources: new Map(), errors: [] });
    this.sources.splice(i, 1);
    // Indexes shifted; `from` is only a hint for conflict messages, so refresh it.
    for (const e of this.entries.values()) if (e.from > i) e.from -= 1;
  }

  /** Starts every attached source; resolves when all have delivered their initial content. */
  async start(): Promise<void> {
    await Promise.all(this.sources.map((a) => a.source.start()));
    // A source may finish loading without notifying (nothing changed from its empty start state, or
    // it notified before we subscribed); re-reading is free because unchanged objects diff to nothing.
    for (const a of this.sources) this.ingest(a, a.source.snapshot());
  }

  async stop(): Promise<void> {
    await Promise.all(this.sources.map((a) => a.source.stop()));
  }

  get(kind: Kind, namespace: string | undefined, name: string): Resource | undefined {
    return this.entries.get(resourceKey({ kind, metadata: { name, namespace: namespace || undefined } }))?.resource;
  }

  /** The resource under `key` with the store version at which its content last changed. */
  getWithVersion(key: ResourceKey): StoredResource | undefined {
    const e = this.entries.get(key);
    return e && { resource: e.resource, resourceVersion: e.resourceVersion };
  }

  /** All resources (of one kind if given), sorted by key. */
  list(kind?: Kind): Resource[] {
    let cached = this.lists.get(kind ?? '');
    if (!cached) {
      const out: [ResourceKey, Resource][] = [];
      for (const [k, e] of this.entries) if (kind === undefined || e.resource.kind === kind) out.push([k, e.resource]);
      cached = out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, r]) => r);
      this.lists.set(kind ?? '', cached);
    }
    return [...cached];
  }

  /** Every source's current errors and warnings, then the cross-source conflicts. */
  errors(): readonly ConfigError[] {
    if (!this.errorsCache) {
      const all = this.sources.flatMap((a) => a.errors);
      for (const list of this.conflicts.values()) all.push(...list);
      this.errorsCache = Object.freeze(all);
    }
    return this.errorsCache;
  }

  subscribe(listener: ConfigListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Called whenever the set returned by `errors()` changes. */
  subscribeErrors(listener: ErrorsListener): () => void {
    this.errorListeners.add(listener);
    return () => void this.errorListeners.delete(listener);
  }

  private ingest(attached: Attached, snap: SourceSnapshot): void {
    if (!this.sources.includes(attached)) return;
    const before = attached.current;
    const after = snap.resources;
    // Snapshots keep the identity of unchanged resources, so `!==` finds the candidates cheaply.
    const touched = new Set<ResourceKey>();
    for (const [k, r] of after) if (before.get(k) !== r) touched.add(k);
    for (const k of before.keys()) if (!after.has(k)) touched.add(k);
    attached.current = after;
    const errorsChanged = attached.errors !== snap.errors;
    attached.errors = snap.errors;

    const nextVersion = this.currentVersion + 1;
    const events: ConfigEvent[] = [];
    let conflictsChanged = false;
    // Only the lists of the kinds touched: a moved WorkloadEntry must not make every push re-sort
    // the whole store for its VirtualServices and DestinationRules.
    if (touched.size > 0) {
      this.lists.delete('');
      for (const key of touched) this.lists.delete(key.slice(0, key.indexOf('/')));
    }
    for (const key of [...touched].sort()) {
      conflictsChanged = this.updateConflicts(key) || conflictsChanged;
      const winner = this.winner(key);
      const old = this.entries.get(key);
      if (!winner) {
        if (old) {
          this.entries.delete(key);
          events.push({ type: 'deleted', key, previous: old.resource, version: nextVersion });
        }
        continue;
      }
      const resource = deepFreeze(winner.resource);
      const canon = canonical(resource);
      if (!old) {
        this.entries.set(key, { resource, resourceVersion: nextVersion, canonical: canon, from: winner.index });
        events.push({ type: 'added', key, resource, version: nextVersion });
      } else if (old.canonical !== canon) {
        this.entries.set(key, { resource, resourceVersion: nextVersion, canonical: canon, from: winner.index });
        events.push({ type: 'updated', key, resource, previous: old.resource, version: nextVersion });
      } else {
        // Same content from a new place (line, file, or source): keep the version, refresh `source`.
        old.resource = resource;
        old.from = winner.index;
      }
    }

    if (events.length > 0) {
      this.currentVersion = nextVersion;
      for (const e of events) Object.freeze(e);
      notifyAll(this.listeners, [Object.freeze(events), nextVersion], this.onListenerError);
    }
    if (errorsChanged || conflictsChanged) this.errorsMaybeChanged();
  }

  private winner(key: ResourceKey): { resource: Resource; index: number } | undefined {
    for (let i = 0; i < this.sources.length; i++) {
      const r = this.sources[i]!.current.get(key);
      if (r) return { resource: r, index: i };
    }
    return undefined;
  }

  private updateConflicts(key: ResourceKey): boolean {
    const holders = this.sources.flatMap((a) => {
      const r = a.current.get(key);
      return r ? [{ name: a.source.name, r }] : [];
    });
    const had = this.conflicts.has(key);
    if (holders.length < 2) {
      this.conflicts.delete(key);
      return had;
    }
    const [win, ...losers] = holders as [(typeof holders)[0], ...typeof holders];
    this.conflicts.set(
      key,
      losers.map(({ name, r }) => errorAt(r, `also defined by source ${win.name} (${win.r.source.file}:${win.r.source.line}), which takes precedence over source ${name}`)),
    );
    return true;
  }

  private errorsMaybeChanged(): void {
    this.errorsCache = undefined;
    const errs = this.errors();
    const fp = JSON.stringify(errs);
    if (fp === this.errorsFingerprint) return;
    this.errorsFingerprint = fp;
    notifyAll(this.errorListeners, [errs], this.onListenerError);
  }
}

const canonicalCache = new WeakMap<Resource, string>();

/** The content that matters for change detection; `source` (file and line) deliberately excluded. */
export function canonical(r: Resource): string {
  let c = canonicalCache.get(r);
  if (c === undefined) {
    const m = r.metadata;
    c = stableStringify({
      apiVersion: r.apiVersion,
      kind: r.kind,
      metadata: {
        name: m.name,
        namespace: m.namespace,
        labels: nonEmpty(m.labels),
        annotations: nonEmpty(m.annotations),
      },
      spec: r.spec,
    });
    canonicalCache.set(r, c);
  }
  return c;
}

function nonEmpty(o: Record<string, string> | undefined): Record<string, string> | undefined {
  return o && Object.keys(o).length > 0 ? o : undefined;
}

/** JSON with object keys sorted and undefined members dropped, so equal content gives equal text. */
function stableStringify(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : stableStringify(x))).join(',')}]`;
  const parts: string[] = [];
  for (const k of Object.keys(v).sort()) {
    const x = (v as Record<string, unknown>)[k];
    if (x === undefined) continue;
    parts.push(`${JSON.stringify(k)}:${stableStringify(x)}`);
  }
  return `{${parts.join(',')}}`;
}
