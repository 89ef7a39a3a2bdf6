/**
 * SotW DiscoveryRequests whose resource names are compared as bytes, and decoded only when read.
 *
 * A SotW ACK repeats the proxy's whole subscription: a sidecar's EDS ACK carries all ~1,000
 * cluster names (≈ 50 KB) after every push. Decoding those names into fresh strings and comparing
 * them with the stream's set took a quarter of the control plane's CPU in an endpoint push at
 * 1,000 proxies, half of them SotW (ADR 0123) — for a list that almost never changes. So the
 * names (field 3) are located in the request bytes, the other fields are decoded as before, and
 * `resource_names` is a getter that decodes the names the first time it is read. The ADS server
 * keeps the names' bytes of the request that set a stream's subscription (one shared copy per
 * distinct list, `keepNames`) and compares the next request's with them (a memcmp; hashing 50 KB
 * per ACK cost 100 times more) and reads the names only when they differ.
 *
 * The bytes are every field-3 entry, tags included, in order: equal bytes mean the same list in
 * the same order (another order or duplicates only cost a decode). Anything the scan does not
 * understand is left to the full decoder, which reports it as it always did.
 */
import { createHash } from 'node:crypto';
import protobuf from 'protobufjs';
import { decodeMessage } from './codec.js';
import type { DiscoveryRequestMsg } from './protos.js';

/** Set on a decoded SotW request: the bytes of its resource_names entries, as they came. */
export const NAMES_BYTES: unique symbol = Symbol('isle.xds.namesBytes');

export interface NamesBytes {
  [NAMES_BYTES]?: Buffer;
}

const FULL_NAME = 'envoy.service.discovery.v3.DiscoveryRequest';
/** The tag of a resource_names entry: field 3, length-delimited. */
const NAMES_TAG = (3 << 3) | 2;

interface Split {
  /** Every other field's bytes, in order. */
  rest: Buffer[];
  /** The field-3 entries' bytes (tags included): a view of the request when they are contiguous. */
  namesBytes: Buffer;
}

/** A varint at `b[i]`: [value, next offset], or undefined past the end or beyond 2^53. */
function varint(b: Buffer, i: number): [number, number] | undefined {
  let v = 0;
  let mul = 1;
  for (;;) {
    if (i >= b.length || mul > 2 ** 49) return undefined;
    const x = b[i++]!;
    v += (x & 0x7f) * mul;
    if ((x & 0x80) === 0) return [v, i];
    mul *= 128;
  }
}

/**
 * Top-level fields of `b`; undefined when the bytes are not a well-formed message (the full decoder
 * says why). Allocates per field other than the names only: an ACK's thousand names cost a scan,
 * a byte loop here (protobufjs' Reader, a call per varint and per skip, was 5 % of a
 * DestinationRule push at 2,000 proxies, ADR 0135).
 */
function split(b: Buffer): Split | undefined {
  const rest: Buffer[] = [];
  const runs: Buffer[] = [];
  let runStart = -1;
  let i = 0;
  while (i < b.length) {
    const start = i;
    let tag: number;
    // A names entry: one-byte tag (field 3, length-delimited) and, for names under 128 bytes, a one-byte length.
    if (b[i] === NAMES_TAG && i + 1 < b.length && b[i + 1]! < 0x80) {
      tag = NAMES_TAG;
      i += 2 + b[i + 1]!;
      if (i > b.length) return undefined;
    } else {
      const t = varint(b, i);
      if (!t) return undefined;
      tag = t[0];
      i = t[1];
      const field = Math.floor(tag / 8);
      const wire = tag % 8;
      // Groups (3, 4) are left to the full decoder, like anything else unusual.
      if (field === 0 || wire === 3 || wire === 4 || wire > 5) return undefined;
      if (wire === 0) {
        const v = varint(b, i);
        if (!v) return undefined;
        i = v[1];
      } else if (wire === 1) i += 8;
      else if (wire === 5) i += 4;
      else {
        const n = varint(b, i);
        if (!n) return undefined;
        i = n[1] + n[0];
      }
      if (i > b.length) return undefined;
    }
    if (tag === NAMES_TAG) {
      if (runStart < 0) runStart = start;
    } else {
      if (runStart >= 0) runs.push(b.subarray(runStart, start));
      runStart = -1;
      rest.push(b.subarray(start, i));
    }
  }
  if (runStart >= 0) runs.push(b.subarray(runStart, i));
  return { rest, namesBytes: runs.length === 1 ? runs[0]! : Buffer.concat(runs) };
}

/**
 * One copy of each distinct names list that streams hold on to: the sidecars of a namespace
 * subscribe to the same thousand clusters, so a stream keeps a reference, not 50 KB of its own.
 * Entries go when no stream holds them any more.
 */
const canonical = new Map<string, WeakRef<Buffer>>();
const collected = new FinalizationRegistry<string>((key) => {
  if (canonical.get(key)?.deref() === undefined) canonical.delete(key);
});

/**
 * The shared copy of `bytes` (a request's names, from NAMES_BYTES) to keep until the next
 * subscription change. Hashes once per change; ACKs are then compared byte for byte with it.
 */
export function keepNames(bytes: Buffer): Buffer {
  if (bytes.length === 0) return EMPTY;
  const key = createHash('sha256').update(bytes).digest('base64');
  const known = canonical.get(key)?.deref();
  if (known && known.equals(bytes)) return known;
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(copy);
  canonical.set(key, new WeakRef(copy));
  collected.register(copy, key);
  return copy;
}

const EMPTY = Buffer.alloc(0);

/** Decodes a DiscoveryRequest like the validating codec, with `resource_names` decoded when first read and their bytes kept. */
export function decodeSotwRequest(bytes: Buffer): DiscoveryRequestMsg & NamesBytes {
  const parts = split(bytes);
  if (!parts) return decodeMessage(FULL_NAME, bytes) as DiscoveryRequestMsg;
  const msg = decodeMessage(FULL_NAME, parts.rest.length === 1 ? parts.rest[0]! : Buffer.concat(parts.rest)) as DiscoveryRequestMsg & NamesBytes;
  // Not enumerable: copies and logs of a request show its fields only.
  Object.defineProperty(msg, NAMES_BYTES, { value: parts.namesBytes });
  const entries = parts.namesBytes;
  // The codec omits empty lists; so does this.
  if (entries.length === 0) return msg;
  Object.defineProperty(msg, 'resource_names', {
    enumerable: true,
    configurable: true,
    get(): string[] {
      // `entries` holds only well-formed field-3 entries (split checked them): tag, then a string.
      const names: string[] = [];
      const r = protobuf.Reader.create(entries);
      while (r.pos < r.len) {
        r.uint32();
        names.push(r.string());
      }
      Object.defineProperty(msg, 'resource_names', { value: names, enumerable: true, configurable: true, writable: true });
      return names;
    },
  });
  return msg;
}

/** [entry start, string start, string end] per field-3 entry of a names list; undefined when malformed. */
function entryOffsets(b: Buffer): number[] | undefined {
  const o: number[] = [];
  let i = 0;
  while (i < b.length) {
    const start = i;
    if (b[i++] !== 0x1a) return undefined; // field 3, length-delimited
    let len = 0;
    let mul = 1;
    let x: number;
    do {
      if (i >= b.length || mul > 2 ** 28) return undefined;
      x = b[i++]!;
      len += (x & 0x7f) * mul;
      mul *= 128;
    } while (x & 0x80);
    if (i + len > b.length) return undefined;
    o.push(start, i, i + len);
    i += len;
  }
  return o;
}

/** How one SotW names list became the next: the names that came and went, and how many entries the next has. */
export interface NamesChange {
  added: string[];
  removed: string[];
  count: number;
}

/**
 * What changed between two names lists (NAMES_BYTES of two requests), decoding only the entries
 * that differ: the common leading and trailing entries are compared as bytes. A proxy that gains
 * one cluster resends a thousand names; decoding, hashing and re-interning all of them on each of
 * 2,000 streams was most of a DestinationRule push's CPU. Undefined when more than `limit` entries
 * differ (decoding everything is then as cheap) or the bytes are not a well-formed list. Names that
 * only moved inside the differing middle are neither added nor removed. `removed` is exact when
 * `prev` has no duplicates; `added` may also hold a name the next list repeats from its common part.
 */
export function diffNames(prev: Buffer, next: Buffer, limit = 256): NamesChange | undefined {
  const a = entryOffsets(prev);
  const b = entryOffsets(next);
  if (!a || !b) return undefined;
  const na = a.length / 3;
  const nb = b.length / 3;
  // Equal leading and trailing bytes, found with a few memcmp calls, then walked as entries.
  const head = equalPrefix(prev, next);
  const tail = equalSuffix(prev, next);
  let p = 0;
  while (p < na && p < nb && a[3 * p + 2]! <= head && a[3 * p]! === b[3 * p]! && a[3 * p + 2]! === b[3 * p + 2]!) p++;
  let s = 0;
  const shift = next.length - prev.length;
  while (s < na - p && s < nb - p) {
    const i = na - 1 - s;
    const j = nb - 1 - s;
    if (prev.length - a[3 * i]! > tail || a[3 * i]! + shift !== b[3 * j]! || a[3 * i + 1]! + shift !== b[3 * j + 1]!) break;
    s++;
  }
  if (na - p - s + (nb - p - s) > limit) return undefined;
  const before = new Set<string>();
  for (let i = p; i < na - s; i++) before.add(prev.toString('utf8', a[3 * i + 1]!, a[3 * i + 2]!));
  const after = new Set<string>();
  for (let j = p; j < nb - s; j++) after.add(next.toString('utf8', b[3 * j + 1]!, b[3 * j + 2]!));
  const added: string[] = [];
  for (const n of after) if (!before.has(n)) added.push(n);
  const removed: string[] = [];
  for (const n of before) if (!after.has(n)) removed.push(n);
  return { added, removed, count: nb };
}

/** Length of the longest common prefix of a and b (binary search over memcmp of prefixes). */
function equalPrefix(a: Buffer, b: Buffer): number {
  let lo = 0;
  let hi = Math.min(a.length, b.length);
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (a.compare(b, 0, mid, 0, mid) === 0) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Length of the longest common suffix of a and b. */
function equalSuffix(a: Buffer, b: Buffer): number {
  let lo = 0;
  let hi = Math.min(a.length, b.length);
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (a.compare(b, b.length - mid, b.length, a.length - mid, a.length) === 0) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** One step from a kept names list: the next list's kept copy, how it differs, and the last set it made. */
export interface NamesStep {
  kept: Buffer;
  change: NamesChange | undefined;
  /** Filled by the ADS server: the set this step made from `from` (shared by streams that make the same step). */
  applied?: { from: ReadonlySet<string>; names: Set<string>; added: string[] };
}

/** The last step seen from one kept names list. */
const steps = new WeakMap<Buffer, NamesStep>();

/**
 * `bytes` (a request's names, from NAMES_BYTES) as the shared copy to keep (keepNames), and how
 * it differs from `prev` (a kept list; diffNames). Thousands of streams make the same step when a
 * cluster is added, so the step from a kept list is remembered: the next stream that makes it pays
 * one memcmp, neither a hash nor a diff.
 */
export function stepNames(prev: Buffer, bytes: Buffer): NamesStep {
  const known = steps.get(prev);
  if (known && known.kept.equals(bytes)) return known;
  const kept = keepNames(bytes);
  const step: NamesStep = { kept, change: diffNames(prev, kept) };
  // Not from the empty list: its buffer lives forever, and would keep the step's sets alive.
  if (prev.length > 0) steps.set(prev, step);
  return step;
}

/**
 * The names set decoded from a kept list (keepNames), shared by every SotW stream that subscribes
 * with that list: 2,000 proxies of a namespace hold one 1,000-entry set, not one each, and a
 * connecting proxy whose list is known decodes none of it. The ADS server never changes a SotW
 * stream's set in place (a changed subscription gets a new set), so sharing is safe.
 */
const setsOfKept = new WeakMap<Buffer, { names: Set<string>; count: number }>();

export function sharedNames(kept: Buffer): { names: Set<string>; count: number } | undefined {
  return setsOfKept.get(kept);
}

export function shareNames(kept: Buffer, names: Set<string>, count: number): void {
  setsOfKept.set(kept, { names, count });
}
