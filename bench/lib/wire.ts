/**
 * A minimal protobuf wire reader for ADS responses, for the simulated proxies: it walks
 * DiscoveryResponse / DeltaDiscoveryResponse and keeps each resource's bytes as a view (no copy,
 * no object per field), so thousands of simulated proxies cost their worker far less than the
 * control plane they measure. Field numbers from envoy/service/discovery/v3/discovery.proto.
 */
import type { AnyMsg, DeltaDiscoveryResponseMsg, DiscoveryResponseMsg } from '../../src/xds/index.js';

interface Field {
  no: number;
  /** Length-delimited: [start, end) of the payload. */
  start: number;
  end: number;
}

function varint(b: Uint8Array, pos: { i: number }): number {
  let v = 0;
  let mul = 1;
  for (;;) {
    const x = b[pos.i++]!;
    v += (x & 0x7f) * mul;
    if ((x & 0x80) === 0) return v;
    mul *= 128;
  }
}

/** Visits the length-delimited fields of a message in b[start, end); skips the others. */
function forEachField(b: Uint8Array, start: number, end: number, f: (x: Field) => void): void {
  const pos = { i: start };
  while (pos.i < end) {
    const key = varint(b, pos);
    const no = Math.floor(key / 8);
    const wt = key & 7;
    if (wt === 2) {
      const len = varint(b, pos);
      f({ no, start: pos.i, end: pos.i + len });
      pos.i += len;
    } else if (wt === 0) varint(b, pos);
    else if (wt === 1) pos.i += 8;
    else if (wt === 5) pos.i += 4;
    else throw new Error(`unsupported wire type ${wt}`);
  }
}

const str = (b: Buffer, x: Field): string => b.toString('utf8', x.start, x.end);

function any(b: Buffer, x: Field, typeUrl: string): AnyMsg {
  let value: Uint8Array = b.subarray(0, 0);
  forEachField(b, x.start, x.end, (y) => {
    if (y.no === 2) value = b.subarray(y.start, y.end);
  });
  return { type_url: typeUrl, value };
}

export function readSotwResponse(b: Buffer): DiscoveryResponseMsg {
  const r: DiscoveryResponseMsg = { version_info: '', resources: [], type_url: '', nonce: '' };
  const raw: Field[] = [];
  forEachField(b, 0, b.length, (x) => {
    if (x.no === 1) r.version_info = str(b, x);
    else if (x.no === 2) raw.push(x);
    else if (x.no === 4) r.type_url = str(b, x);
    else if (x.no === 5) r.nonce = str(b, x);
  });
  r.resources = raw.map((x) => any(b, x, r.type_url));
  return r;
}

export function readDeltaResponse(b: Buffer): DeltaDiscoveryResponseMsg {
  const r: DeltaDiscoveryResponseMsg = { system_version_info: '', resources: [], type_url: '', removed_resources: [], nonce: '' };
  const raw: Field[] = [];
  forEachField(b, 0, b.length, (x) => {
    if (x.no === 1) r.system_version_info = str(b, x);
    else if (x.no === 2) raw.push(x);
    else if (x.no === 4) r.type_url = str(b, x);
    else if (x.no === 5) r.nonce = str(b, x);
    else if (x.no === 6) r.removed_resources.push(str(b, x));
  });
  r.resources = raw.map((x) => {
    const res = { name: '', version: '', resource: null as AnyMsg | null };
    forEachField(b, x.start, x.end, (y) => {
      if (y.no === 3) res.name = str(b, y);
      else if (y.no === 1) res.version = str(b, y);
      else if (y.no === 2) res.resource = any(b, y, r.type_url);
    });
    return res;
  });
  return r;
}
