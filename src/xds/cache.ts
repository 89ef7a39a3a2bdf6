/**
 * What the xDS server serves, kept apart from how it is served (go-control-plane's split): the
 * push pipeline writes per-node snapshots here; the server only reads them and opens watches.
 * The cache knows nothing about streams, nonces or ACKs, and the server nothing about how
 * resources are generated.
 *
 * Resources are serialized once when they are made (makeResource) and the same `Any` object, and
 * so the same bytes, is shared by every snapshot and every response that carries it.
 */
import { createHash } from 'node:crypto';
import { toAny } from './codec.js';
import type { AnyMsg } from './protos.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, NAME_TABLE_TYPE, ROUTE_TYPE, SECRET_TYPE } from '../mesh/typeurls.js';

/** One named resource, serialized. Immutable: build a new one to change it. */
export interface XdsResource {
  readonly name: string;
  /** Version of this resource alone (delta xDS); a hash of its bytes unless given. */
  readonly version: string;
  readonly any: AnyMsg;
}

/** All resources of one type for one node, at one version (the SotW `version_info`). */
export interface TypeSnapshot {
  readonly version: string;
  readonly resources: ReadonlyMap<string, XdsResource>;
}

/** typeUrl → TypeSnapshot. The same Snapshot object may be given to many nodes. */
export type Snapshot = ReadonlyMap<string, TypeSnapshot>;

/** What the server needs from a cache; SnapshotCache is the implementation. */
export interface ConfigWatcher {
  /** The current resources of a type for a node, if any were set. */
  get(nodeId: string, typeUrl: string): TypeSnapshot | undefined;
  /**
   * Calls `listener` (synchronously, inside the setter) each time the node's snapshot of this
   * type gets a new version. It does not fire for what is already there: read it with get().
   * Returns the cancel function; calling it more than once is harmless.
   */
  watch(nodeId: string, typeUrl: string, listener: (snapshot: TypeSnapshot) => void): () => void;
}

const NAME_FIELD: Record<string, string> = {
  [CLUSTER_TYPE]: 'name',
  [ENDPOINT_TYPE]: 'cluster_name',
  [LISTENER_TYPE]: 'name',
  [ROUTE_TYPE]: 'name',
  [SECRET_TYPE]: 'name',
};

/** The xDS resource name of a plain Envoy object (`cluster_name` for EDS, `name` otherwise). */
export function resourceName(typeUrl: string, obj: Record<string, unknown>): string {
  // Istio sends its one NameTable unnamed; the proxy subscribes to it as a wildcard.
  if (typeUrl === NAME_TABLE_TYPE) return '';
  const v = obj[NAME_FIELD[typeUrl] ?? 'name'];
  if (typeof v !== 'string' || v === '') {
    throw new TypeError(`${typeUrl}: resource has no ${NAME_FIELD[typeUrl] ?? 'name'}`);
  }
  return v;
}

export function hashVersion(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url').slice(0, 16);
}

/** Validates and serializes `obj` once; throws XdsCodecError for anything Envoy would reject. */
export function makeResource(typeUrl: string, obj: Record<string, unknown>, name?: string): XdsResource {
  const any = toAny(typeUrl, obj);
  return Object.freeze({ name: name ?? resourceName(typeUrl, obj), version: hashVersion(any.value), any });
}

/**
 * Resources carried over from one push to the next (ADR 0120): a resource whose content did not
 * change is handed out as the very same XdsResource (so the same version, the same preencoded
 * bytes, and diffs that skip it), and a group of resources that are all the same objects as the
 * last group of the same key as the very same TypeSnapshot (so an unchanged scope is `===` its
 * previous snapshot, and every proxy on it diffs to nothing). Content is compared as JSON, which
 * costs a fraction of the validation, protobuf encoding and hash it saves; two objects with the
 * same JSON encode to the same bytes (JSON cannot tell NaN from null, which no generator makes),
 * so a hit is always right, and an object JSON cannot express (a bigint) is simply encoded.
 *
 * Resources are remembered by scope (a share key, or a proxy) and name. A generation is a push
 * (PushContext); what was not made or reused for `keepGenerations` pushes is dropped (a namespace
 * or proxy that went away), so a type a push did not regenerate (generate/affected.ts) is still
 * there when a later push does.
 */
export class ResourceMemo {
  private generation: object | undefined;
  private seq = 0;
  /** scope → (type, name) → the last content and resource. */
  private readonly resources = new Map<string, Map<string, { json: string; res: XdsResource; seq: number }>>();
  private readonly types = new Map<string, { ts: TypeSnapshot; seq: number }>();
  /** Resources handed out again / encoded anew, since construction (tests, debugging). */
  hits = 0;
  misses = 0;

  /**
   * Every push is a generation, endpoint-only ones too, so the window is long: a proxy's own
   * listeners must outlive a run of endpoint pushes to be reused by the next config push. Scopes
   * of proxies that leave are dropped at once (`dropScope`); this sweep catches the rest.
   */
  constructor(private readonly keepGenerations = 256) {}

  private at(generation: object): number {
    if (generation === this.generation) return this.seq;
    this.generation = generation;
    if (++this.seq % this.keepGenerations === 0) {
      const old = this.seq - this.keepGenerations;
      for (const [scope, m] of this.resources) {
        for (const [k, e] of m) if (e.seq < old) m.delete(k);
        if (m.size === 0) this.resources.delete(scope);
      }
      for (const [k, e] of this.types) if (e.seq < old) this.types.delete(k);
    }
    return this.seq;
  }

  /** `makeResource(typeUrl, obj)`, or the resource made earlier in `scope` from equal content. */
  resource(generation: object, scope: string, typeUrl: string, obj: Record<string, unknown>): XdsResource {
    const seq = this.at(generation);
    let json: string;
    try {
      json = JSON.stringify(obj);
    } catch {
      return makeResource(typeUrl, obj);
    }
    let m = this.resources.get(scope);
    if (!m) this.resources.set(scope, (m = new Map()));
    const key = `${typeUrl}\u0000${resourceName(typeUrl, obj)}`;
    const e = m.get(key);
    if (e && e.json === json) {
      this.hits++;
      e.seq = seq;
      return e.res;
    }
    this.misses++;
    const res = makeResource(typeUrl, obj);
    m.set(key, { json, res, seq });
    return res;
  }

  /** `res`, made earlier in `scope`, is still in use in this generation (so the sweep keeps it). */
  keep(generation: object, scope: string, typeUrl: string, res: XdsResource): XdsResource {
    const e = this.resources.get(scope)?.get(`${typeUrl}\u0000${res.name}`);
    if (e && e.res === res) e.seq = this.at(generation);
    return res;
  }

  /** Forgets what `scope` made (a proxy that disconnected). */
  dropScope(scope: string): void {
    this.resources.delete(scope);
  }

  /** The TypeSnapshot of `resources` under `key`: the last one when it holds the same objects. */
  typeSnapshot(generation: object, key: string, resources: readonly XdsResource[], make: () => TypeSnapshot): TypeSnapshot {
    const seq = this.at(generation);
    const e = this.types.get(key);
    if (e && sameResources(e.ts, resources)) {
      e.seq = seq;
      return e.ts;
    }
    const ts = make();
    this.types.set(key, { ts, seq });
    return ts;
  }
}

function sameResources(ts: TypeSnapshot, resources: readonly XdsResource[]): boolean {
  if (ts.resources.size !== resources.length) return false;
  for (const r of resources) if (ts.resources.get(r.name) !== r) return false;
  return true;
}

/** For bytes encoded elsewhere (a peer's feed, another cache). */
export function resourceFromAny(name: string, any: AnyMsg, version?: string): XdsResource {
  return Object.freeze({ name, version: version ?? hashVersion(any.value), any });
}

export function typeSnapshot(version: string, resources: Iterable<XdsResource>): TypeSnapshot {
  const map = new Map<string, XdsResource>();
  for (const r of resources) {
    if (map.has(r.name)) throw new TypeError(`duplicate resource name ${JSON.stringify(r.name)} in version ${version}`);
    map.set(r.name, r);
  }
  return Object.freeze({ version, resources: map });
}

/**
 * A read-only map over a shared base map plus a few own entries, so a proxy whose resources of a
 * type are a shared group plus its own (outbound CDS + its inbound clusters) holds a reference to
 * the shared map instead of a copy of its thousand entries.
 */
class LayeredResources implements ReadonlyMap<string, XdsResource> {
  constructor(
    readonly base: ReadonlyMap<string, XdsResource>,
    readonly own: ReadonlyMap<string, XdsResource>,
  ) {}

  get size(): number {
    return this.base.size + this.own.size;
  }

  get(name: string): XdsResource | undefined {
    return this.own.get(name) ?? this.base.get(name);
  }

  has(name: string): boolean {
    return this.own.has(name) || this.base.has(name);
  }

  *entries(): MapIterator<[string, XdsResource]> {
    yield* this.base.entries();
    yield* this.own.entries();
  }

  *keys(): MapIterator<string> {
    yield* this.base.keys();
    yield* this.own.keys();
  }

  *values(): MapIterator<XdsResource> {
    yield* this.base.values();
    yield* this.own.values();
  }

  [Symbol.iterator](): MapIterator<[string, XdsResource]> {
    return this.entries();
  }

  forEach(cb: (value: XdsResource, key: string, map: ReadonlyMap<string, XdsResource>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) cb.call(thisArg, v, k, this);
  }
}

/**
 * `base` plus `own` resources as one TypeSnapshot, sharing base's map (no per-node copy). Its
 * version derives from base's version and own's resource versions, so it is computed without
 * touching base's resources; equal inputs give equal versions.
 */
export function layeredTypeSnapshot(base: TypeSnapshot, own: readonly XdsResource[]): TypeSnapshot {
  if (own.length === 0) return base;
  const h = createHash('sha256').update(`layered\u0000${base.version}\u0000`);
  const mine = new Map<string, XdsResource>();
  for (const r of [...own].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (base.resources.has(r.name) || mine.has(r.name)) throw new TypeError(`duplicate resource name ${JSON.stringify(r.name)} over version ${base.version}`);
    mine.set(r.name, r);
    h.update(`${r.name}\u0000${r.version}\u0000`);
  }
  return Object.freeze({ version: h.digest('base64url').slice(0, 16), resources: new LayeredResources(base.resources, mine) });
}

/** The shared base and own part of a layered snapshot (undefined for a plain one). */
export function layersOf(ts: TypeSnapshot): { base: ReadonlyMap<string, XdsResource>; own: ReadonlyMap<string, XdsResource> } | undefined {
  return ts.resources instanceof LayeredResources ? { base: ts.resources.base, own: ts.resources.own } : undefined;
}

/** What changed from one TypeSnapshot to the next: names added or with a new version, names gone. */
export interface SnapshotDiff {
  readonly changed: readonly string[];
  readonly removed: readonly string[];
}

const diffs = new WeakMap<ReadonlyMap<string, XdsResource>, { next: ReadonlyMap<string, XdsResource>; diff: SnapshotDiff }>();

function diffMaps(prev: ReadonlyMap<string, XdsResource>, next: ReadonlyMap<string, XdsResource>): SnapshotDiff {
  if (prev === next) return { changed: [], removed: [] };
  const memo = diffs.get(prev);
  if (memo?.next === next) return memo.diff;
  let diff: SnapshotDiff;
  const lp = prev instanceof LayeredResources ? prev : undefined;
  const ln = next instanceof LayeredResources ? next : undefined;
  if (lp && ln) {
    // Layer by layer: the shared layers' diff is computed once for every node that moves with them.
    const a = diffMaps(lp.base, ln.base);
    const b = diffMaps(lp.own, ln.own);
    const changed = [...a.changed, ...b.changed];
    // A name may move between layers: gone from one, present in the other.
    const removed = [...a.removed, ...b.removed].filter((n) => !next.has(n));
    diff = { changed: [...new Set(changed)], removed };
  } else {
    const changed: string[] = [];
    const removed: string[] = [];
    for (const [n, r] of next) if (prev.get(n)?.version !== r.version) changed.push(n);
    for (const n of prev.keys()) if (!next.has(n)) removed.push(n);
    diff = { changed, removed };
  }
  diffs.set(prev, { next, diff });
  return diff;
}

/**
 * The resources that differ between two snapshots of a type. Memoized per pair (the latest `next`
 * per `prev`), so when thousands of nodes move from the same shared snapshot to the same next one,
 * the diff is computed once, and a stream sends a change in time proportional to the change.
 */
export function diffTypeSnapshots(prev: TypeSnapshot, next: TypeSnapshot): SnapshotDiff {
  return diffMaps(prev.resources, next.resources);
}

/** Builds a Snapshot from `{ [typeUrl]: { version, resources } }`. */
export function makeSnapshot(
  types: Record<string, { version: string; resources: Iterable<XdsResource> } | TypeSnapshot>,
): Snapshot {
  const m = new Map<string, TypeSnapshot>();
  for (const [typeUrl, t] of Object.entries(types)) {
    m.set(typeUrl, isTypeSnapshot(t) ? t : typeSnapshot(t.version, t.resources as Iterable<XdsResource>));
  }
  return m;
}

type Listener = (snapshot: TypeSnapshot) => void;

/**
 * Per-node snapshots plus the watches of open streams. Versions are trusted: a type whose version
 * string did not change is considered unchanged and wakes nobody.
 */
export class SnapshotCache implements ConfigWatcher {
  private readonly nodes = new Map<string, Map<string, TypeSnapshot>>();
  /** nodeId → typeUrl → listeners. Emptied eagerly so a reconnect storm leaves nothing behind. */
  private readonly watches = new Map<string, Map<string, Set<Listener>>>();
  private watchTotal = 0;

  /**
   * Replaces everything the node gets. A type left out is forgotten without a push (SotW cannot
   * say "this type is gone"; proxies keep what they had); to empty a type, set it with no resources.
   * Listeners that throw do not stop the others; their errors are rethrown together afterwards.
   */
  setSnapshot(nodeId: string, snapshot: Snapshot): void {
    const prev = this.nodes.get(nodeId);
    this.nodes.set(nodeId, new Map(snapshot));
    const changed: [string, TypeSnapshot][] = [];
    for (const [typeUrl, ts] of snapshot) {
      if (prev?.get(typeUrl)?.version !== ts.version) changed.push([typeUrl, ts]);
    }
    this.notify(nodeId, changed);
  }

  /** Sets one type of one node, keeping the others. */
  setResources(
    nodeId: string,
    typeUrl: string,
    version: string,
    resources: Iterable<XdsResource> | TypeSnapshot,
  ): void {
    const ts = isTypeSnapshot(resources) ? resources : typeSnapshot(version, resources);
    if (ts.version !== version) throw new TypeError(`version ${version} does not match its snapshot's ${ts.version}`);
    let types = this.nodes.get(nodeId);
    if (!types) this.nodes.set(nodeId, (types = new Map()));
    const before = types.get(typeUrl)?.version;
    types.set(typeUrl, ts);
    if (before !== version) this.notify(nodeId, [[typeUrl, ts]]);
  }

  /** Forgets a node (e.g. its proxy is gone for good). Open watches stay and see later sets. */
  clearSnapshot(nodeId: string): void {
    this.nodes.delete(nodeId);
  }

  getSnapshot(nodeId: string): Snapshot | undefined {
    return this.nodes.get(nodeId);
  }

  get(nodeId: string, typeUrl: string): TypeSnapshot | undefined {
    return this.nodes.get(nodeId)?.get(typeUrl);
  }

  nodeIds(): string[] {
    return [...this.nodes.keys()];
  }

  watch(nodeId: string, typeUrl: string, listener: Listener): () => void {
    let byType = this.watches.get(nodeId);
    if (!byType) this.watches.set(nodeId, (byType = new Map()));
    let set = byType.get(typeUrl);
    if (!set) byType.set(typeUrl, (set = new Set()));
    let live = true;
    // A wrapper, so the same function can watch twice and each cancel removes only its own; the
    // flag stops a watch cancelled during a notification from still being called in that round.
    const entry: Listener = (s) => {
      if (live) listener(s);
    };
    set.add(entry);
    this.watchTotal++;
    return () => {
      if (!live) return;
      live = false;
      this.watchTotal--;
      set.delete(entry);
      if (set.size === 0) {
        byType.delete(typeUrl);
        if (byType.size === 0 && this.watches.get(nodeId) === byType) this.watches.delete(nodeId);
      }
    };
  }

  /** Open watches, for one node or all; leak checks and metrics. */
  watchCount(nodeId?: string): number {
    if (nodeId === undefined) return this.watchTotal;
    let n = 0;
    for (const set of this.watches.get(nodeId)?.values() ?? []) n += set.size;
    return n;
  }

  private notify(nodeId: string, changed: [string, TypeSnapshot][]): void {
    const byType = this.watches.get(nodeId);
    if (!byType || changed.length === 0) return;
    const errors: unknown[] = [];
    for (const [typeUrl, ts] of changed) {
      // Copy: a listener may cancel its own or another watch while we iterate.
      for (const l of [...(byType.get(typeUrl) ?? [])]) {
        try {
          l(ts);
        } catch (e) {
          errors.push(e);
        }
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} xDS watch listeners failed`);
  }
}

function isTypeSnapshot(v: unknown): v is TypeSnapshot {
  if (typeof v !== 'object' || v === null || !('version' in v)) return false;
  const r = (v as TypeSnapshot).resources as unknown;
  return r instanceof Map || r instanceof LayeredResources;
}
