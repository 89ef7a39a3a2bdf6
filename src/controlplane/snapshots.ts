/**
 * All xDS types for one proxy, as serialized XdsResources in the xDS cache's snapshot shape.
 *
 * Serialize once: a ResourceGroup with a shareKey (src/generate/common.ts) is built and encoded
 * once per PushContext and the same XdsResource objects (so the same bytes) go to every proxy with
 * that key. The cache is keyed on the PushContext object itself, which is immutable and built once
 * per push, so "per push version" comes for free and a push's entries go away with it.
 */
import { createHash } from 'node:crypto';
import { groupersFor, type ResourceGroup } from '../generate/index.js';
import { SERVED_TYPES } from '../mesh/typeurls.js';
import type { Proxy } from '../model/proxy.js';
import type { PushContext } from '../model/pushcontext.js';
import { layeredTypeSnapshot, makeResource, makeSnapshot, resourceName, typeSnapshot, type Snapshot, type TypeSnapshot, type XdsResource } from '../xds/cache.js';

const shared = new WeakMap<PushContext, Map<string, readonly XdsResource[]>>();

function serialize(typeUrl: string, g: ResourceGroup): readonly XdsResource[] {
  return Object.freeze(g.build().map((o) => makeResource(typeUrl, o)));
}

/**
 * Across pushes, a shared group's resources whose content did not move keep their XdsResource
 * objects: the next push re-encodes only what changed. An endpoint change rebuilds the whole EDS
 * group of a network (one ClusterLoadAssignment per cluster), and encoding every assignment again
 * was most of the first proxy's wait (issue 18: local change p99 ≤ 100 ms + debounce); keeping the
 * objects also keeps their versions and pre-encoded bytes, so the memoized diffs stay small.
 * The content key is the generator's plain object as JSON (native, several times cheaper than
 * validating and encoding it); a resource JSON cannot express (a bigint) is simply encoded again.
 */
interface GroupMemo {
  seq: number;
  byName: Map<string, { readonly json: string; readonly res: XdsResource }>;
}
const memo = new Map<string, GroupMemo>();
let pushSeq = 0;
/** Groups not rebuilt for this many pushes are dropped (a namespace that went away). */
const MEMO_KEEP_PUSHES = 16;

function serializeMemo(typeUrl: string, key: string, g: ResourceGroup): readonly XdsResource[] {
  const prev = memo.get(key);
  const byName = new Map<string, { readonly json: string; readonly res: XdsResource }>();
  const out = g.build().map((o) => {
    let json: string | undefined;
    try {
      json = JSON.stringify(o);
    } catch {
      return makeResource(typeUrl, o);
    }
    const res = reuseOrMake(typeUrl, o, json, prev);
    byName.set(res.name, { json, res });
    return res;
  });
  memo.set(key, { seq: pushSeq, byName });
  return Object.freeze(out);
}

function reuseOrMake(typeUrl: string, o: Record<string, unknown>, json: string, prev: GroupMemo | undefined): XdsResource {
  const hit = prev?.byName.get(resourceName(typeUrl, o));
  if (hit && hit.json === json) return hit.res;
  return makeResource(typeUrl, o);
}

function nextPush(): void {
  pushSeq++;
  if (pushSeq % MEMO_KEEP_PUSHES !== 0) return;
  for (const [k, m] of memo) if (m.seq < pushSeq - MEMO_KEEP_PUSHES) memo.delete(k);
}

/** The resources of one type for a proxy; shared groups come from the push's cache. */
export function generateResources(push: PushContext, proxy: Proxy, typeUrl: string, groups?: readonly ResourceGroup[]): XdsResource[] {
  const grouper = groupersFor(proxy)[typeUrl];
  if (!grouper) throw new TypeError(`no generator for ${typeUrl}`);
  let cache = shared.get(push);
  if (!cache) {
    shared.set(push, (cache = new Map()));
    nextPush();
  }
  const out: XdsResource[] = [];
  for (const g of groups ?? grouper(push, proxy)) {
    if (g.shareKey === undefined) {
      out.push(...serialize(typeUrl, g));
      continue;
    }
    const key = `${typeUrl}\u0000${g.shareKey}`;
    let rs = cache.get(key);
    if (!rs) cache.set(key, (rs = serializeMemo(typeUrl, key, g)));
    out.push(...rs);
  }
  return out;
}

const sharedTypes = new WeakMap<PushContext, Map<string, TypeSnapshot>>();

/**
 * The TypeSnapshot of one type for a proxy, computed once per distinct scope: the shared groups
 * of a type (outbound CDS per DestinationRule visibility, EDS per network/locality class, RDS per
 * namespace, ROOTCA) make one TypeSnapshot per push for every proxy with the same share keys —
 * its name → resource map and its version hash are built once, not per proxy. A proxy's own
 * resources (inbound clusters, listeners) are layered over that shared snapshot
 * (`layeredTypeSnapshot`): the proxy holds a reference to the shared map plus its few entries,
 * and its version is derived from the shared version and its own resources. Before, every proxy
 * re-sorted and hashed the whole type (12 % of an endpoint push at 200 proxies) and held its own
 * thousand-entry map.
 */
export function generateTypeSnapshot(push: PushContext, proxy: Proxy, typeUrl: string): TypeSnapshot {
  const grouper = groupersFor(proxy)[typeUrl];
  if (!grouper) throw new TypeError(`no generator for ${typeUrl}`);
  const groups = grouper(push, proxy);
  const sharedGroups = groups.filter((g) => g.shareKey !== undefined);
  const ownGroups = groups.filter((g) => g.shareKey === undefined);
  const own = ownGroups.length > 0 ? generateResources(push, proxy, typeUrl, ownGroups) : [];
  if (sharedGroups.length === 0) return typeSnapshot(typeVersion(own), own);
  let memo = sharedTypes.get(push);
  if (!memo) sharedTypes.set(push, (memo = new Map()));
  const key = `${typeUrl}\u0000${sharedGroups.map((g) => g.shareKey).join('\u0001')}`;
  let base = memo.get(key);
  if (!base) {
    const rs = generateResources(push, proxy, typeUrl, sharedGroups);
    memo.set(key, (base = typeSnapshot(typeVersion(rs), rs)));
  }
  return layeredTypeSnapshot(base, own);
}

/** typeUrl → resources, every type, in SERVED_TYPES order. */
export function generateAll(push: PushContext, proxy: Proxy): Map<string, XdsResource[]> {
  return new Map(SERVED_TYPES.map((t) => [t, generateResources(push, proxy, t)]));
}

/**
 * A version per type from the resources' own versions, so a push that leaves a proxy's resources
 * of a type unchanged does not wake its watches (the cache trusts version strings).
 */
export function typeVersion(resources: readonly XdsResource[]): string {
  const h = createHash('sha256');
  for (const r of [...resources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) h.update(`${r.name}\u0000${r.version}\u0000`);
  return h.digest('base64url').slice(0, 16);
}

/** The SnapshotCache snapshot for a proxy. */
export function generateSnapshot(push: PushContext, proxy: Proxy): Snapshot {
  const types: Record<string, { version: string; resources: XdsResource[] }> = {};
  for (const [t, rs] of generateAll(push, proxy)) types[t] = { version: typeVersion(rs), resources: rs };
  return makeSnapshot(types);
}
