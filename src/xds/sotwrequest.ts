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
const NAMES_FIELD = 3;

interface Split {
  /** Every other field's bytes, in order. */
  rest: Buffer[];
  /** The field-3 entries' bytes (tags included): a view of the request when they are contiguous. */
  namesBytes: Buffer;
}

/**
 * Top-level fields of `b`; undefined when the bytes are not a well-formed message (the full decoder
 * says why). Allocates per field other than the names only: an ACK's thousand names cost a scan.
 */
function split(b: Buffer): Split | undefined {
  const rest: Buffer[] = [];
  const runs: Buffer[] = [];
  let runStart = -1;
  const r = protobuf.Reader.create(b);
  try {
    while (r.pos < r.len) {
      const start = r.pos;
      const tag = r.uint32();
      const field = tag >>> 3;
      const wire = tag & 7;
      // Groups (3, 4) are left to the full decoder, like anything else unusual.
      if (field === 0 || wire === 3 || wire === 4) return undefined;
      r.skipType(wire);
      if (field === NAMES_FIELD && wire === 2) {
        if (runStart < 0) runStart = start;
      } else {
        if (runStart >= 0) runs.push(b.subarray(runStart, start));
        runStart = -1;
        rest.push(b.subarray(start, r.pos));
      }
    }
  } catch {
    // Truncated or an invalid wire type: the full decoder reports it.
    return undefined;
  }
  if (runStart >= 0) runs.push(b.subarray(runStart, r.pos));
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
