/**
 * Protobuf wire reading and writing of ADS messages for the simulated proxies (xdsworker.ts), so
 * that thousands of them cost their worker far less than the control plane they measure.
 *
 * Reading: scanSotw / scanDelta walk a DiscoveryResponse / DeltaDiscoveryResponse in place and
 * note each resource's name and value as offsets into the message (no copy, no object per
 * resource or field); NameTable turns a name's bytes into a small number without making a string.
 *
 * Writing: requests are put together from parts, the same bytes protobufjs' encoder writes for
 * the same object (fields in number order; a field present with '' is written): a SotW ACK
 * repeats its whole subscription, so the encoded list of names is built once per worker and
 * shared by every proxy that subscribes to the same names.
 * Field numbers from envoy/service/discovery/v3/discovery.proto.
 */

/** Position after the last varint read by `varint` (the readers are synchronous and not re-entrant). */
let next = 0;

function varint(b: Uint8Array, i: number): number {
  let v = 0;
  let mul = 1;
  for (;;) {
    if (i >= b.length) throw new Error('truncated varint');
    const x = b[i++]!;
    v += (x & 0x7f) * mul;
    if ((x & 0x80) === 0) {
      next = i;
      return v;
    }
    mul *= 128;
  }
}

/** Position after a field of wire type `wt` (not length-delimited) whose value starts at i. */
function skip(b: Uint8Array, i: number, wt: number): number {
  if (wt === 0) {
    varint(b, i);
    return next;
  }
  if (wt === 1) return i + 8;
  if (wt === 5) return i + 4;
  throw new Error(`unsupported wire type ${wt}`);
}

/**
 * Calls visit(field number, start, end) for each length-delimited field of b[s, e), skipping the
 * others, until visit returns true.
 */
function eachField(b: Uint8Array, s: number, e: number, visit: (no: number, fs: number, fe: number) => boolean | void): void {
  let i = s;
  while (i < e) {
    const key = varint(b, i);
    i = next;
    if ((key & 7) !== 2) {
      i = skip(b, i, key & 7);
      continue;
    }
    const len = varint(b, i);
    const fs = next;
    i = fs + len;
    if (i > e) throw new Error('field overruns its message');
    if (visit(key >>> 3, fs, i) === true) return;
  }
}

/** [start, end) of the field found by `findField`. */
let hitStart = 0;
let hitEnd = 0;
let wanted = 0;
let found = false;
const findVisitor = (no: number, fs: number, fe: number): boolean => {
  if (no !== wanted) return false;
  hitStart = fs;
  hitEnd = fe;
  return (found = true);
};

/** Finds the first length-delimited field `no` in b[s, e) and sets hitStart / hitEnd. */
function findField(b: Uint8Array, s: number, e: number, no: number): boolean {
  wanted = no;
  found = false;
  eachField(b, s, e, findVisitor);
  return found;
}

/** `a`, or a copy twice as large when it holds fewer than `n`. */
function room(a: Int32Array<ArrayBuffer>, n: number): Int32Array<ArrayBuffer> {
  if (a.length >= n) return a;
  const r = new Int32Array(Math.max(n, a.length * 2));
  r.set(a);
  return r;
}

/**
 * What scanSotw / scanDelta found in one response: strings for the few per-response fields,
 * offsets for the rest. Reused from response to response.
 */
export class ResponseScan {
  version = '';
  typeUrl = '';
  nonce = '';
  /** Resource k: res[4k], res[4k+1] its name; res[4k+2], res[4k+3] its value (the Any's bytes; −1 when absent). */
  res = new Int32Array(1024);
  count = 0;
  /** Delta removed_resources k: removed[2k], removed[2k+1]. */
  removed = new Int32Array(64);
  removedCount = 0;

  reset(): void {
    this.version = '';
    this.typeUrl = '';
    this.nonce = '';
    this.count = 0;
    this.removedCount = 0;
  }

  addResource(ns: number, ne: number, vs: number, ve: number): void {
    this.res = room(this.res, 4 * (this.count + 1));
    const k = 4 * this.count++;
    this.res[k] = ns;
    this.res[k + 1] = ne;
    this.res[k + 2] = vs;
    this.res[k + 3] = ve;
  }

  addRemoved(s: number, e: number): void {
    this.removed = room(this.removed, 2 * (this.removedCount + 1));
    const k = 2 * this.removedCount++;
    this.removed[k] = s;
    this.removed[k + 1] = e;
  }
}

/** Sets hitStart / hitEnd to the `value` of the Any in b[s, e) (both e when it has none). */
function anyValue(b: Uint8Array, s: number, e: number): void {
  if (!findField(b, s, e, 2)) hitStart = hitEnd = e;
}

/** The response being scanned, and what to do with field 2 (a resource) of it. */
let scanBuf: Buffer = Buffer.alloc(0);
let scanOut = new ResponseScan();
let scanIsDelta = false;

const topVisitor = (no: number, s: number, e: number): void => {
  const b = scanBuf;
  const out = scanOut;
  if (no === 1) out.version = b.toString('utf8', s, e);
  else if (no === 2) (scanIsDelta ? deltaResource : sotwResource)(s, e);
  else if (no === 4) out.typeUrl = b.toString('utf8', s, e);
  else if (no === 5) out.nonce = b.toString('utf8', s, e);
  else if (no === 6 && scanIsDelta) out.addRemoved(s, e);
};

/** An Any: its value, and field 1 of the value as the name. */
const sotwResource = (s: number, e: number): void => {
  anyValue(scanBuf, s, e);
  const vs = hitStart;
  const ve = hitEnd;
  if (findField(scanBuf, vs, ve, 1)) scanOut.addResource(hitStart, hitEnd, vs, ve);
  else scanOut.addResource(-1, -1, vs, ve);
};

let rns = -1;
let rne = -1;
let rvs = -1;
let rve = -1;
const deltaResourceField = (no: number, s: number, e: number): void => {
  if (no === 3) {
    rns = s;
    rne = e;
  } else if (no === 2) {
    anyValue(scanBuf, s, e);
    rvs = hitStart;
    rve = hitEnd;
  }
};

/** A Resource: its name (field 3) and the value of its Any (field 2). */
const deltaResource = (s: number, e: number): void => {
  rns = rne = rvs = rve = -1;
  eachField(scanBuf, s, e, deltaResourceField);
  scanOut.addResource(rns, rne, rvs, rve);
};

function scan(b: Buffer, start: number, end: number, out: ResponseScan, delta: boolean): void {
  out.reset();
  scanBuf = b;
  scanOut = out;
  scanIsDelta = delta;
  eachField(b, start, end, topVisitor);
}

/**
 * Walks a DiscoveryResponse in b[start, end). A resource's name is field 1 of its value (the
 * `name` of Cluster, Listener, RouteConfiguration, Secret; the `cluster_name` of a
 * ClusterLoadAssignment): −1, −1 when it has none.
 */
export function scanSotw(b: Buffer, start: number, end: number, out: ResponseScan): void {
  scan(b, start, end, out, false);
}

/** Walks a DeltaDiscoveryResponse in b[start, end): each Resource's name and its Any's value, and removed_resources. */
export function scanDelta(b: Buffer, start: number, end: number, out: ResponseScan): void {
  scan(b, start, end, out, true);
}

/**
 * Resource names as small numbers, worker-wide: the same bytes always give the same id, found by
 * hashing the bytes where they lie (no string per lookup); `names[id]` is the name.
 */
export class NameTable {
  readonly names: string[] = [];
  private readonly bytes: Buffer[] = [];
  private readonly byHash = new Map<number, number[]>();
  private readonly byName = new Map<string, number>();

  idOf(b: Uint8Array, s: number, e: number): number {
    let h = 0x811c9dc5;
    for (let i = s; i < e; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
    h &= 0x3fffffff;
    const ids = this.byHash.get(h);
    if (ids) {
      for (const id of ids) {
        const x = this.bytes[id]!;
        if (x.length !== e - s) continue;
        let k = 0;
        while (k < x.length && x[k] === b[s + k]) k++;
        if (k === x.length) return id;
      }
    }
    const copy = Buffer.from(b.subarray(s, e));
    return this.add(copy.toString('utf8'), copy, h);
  }

  idOfName(name: string): number {
    const id = this.byName.get(name);
    if (id !== undefined) return id;
    const b = Buffer.from(name, 'utf8');
    return this.idOf(b, 0, b.length);
  }

  private add(name: string, bytes: Buffer, h: number): number {
    const id = this.names.length;
    this.names.push(name);
    this.bytes.push(bytes);
    this.byName.set(name, id);
    const ids = this.byHash.get(h);
    if (ids) ids.push(id);
    else this.byHash.set(h, [id]);
    return id;
  }
}

function varintSize(n: number): number {
  let s = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    s++;
  }
  return s;
}

function putVarint(b: Buffer, i: number, n: number): number {
  while (n >= 128) {
    b[i++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  b[i++] = n;
  return i;
}

/** Size of a length-delimited field of `len` bytes (field numbers below 16). */
const fieldSize = (len: number): number => 1 + varintSize(len) + len;

/** Writes string field `no` at b[i]; returns the position after it. */
function putString(b: Buffer, i: number, no: number, s: string): number {
  const len = Buffer.byteLength(s);
  b[i++] = (no << 3) | 2;
  i = putVarint(b, i, len);
  return i + b.write(s, i, 'utf8');
}

/** Fields `no` (repeated string), one per name, in order. */
export function stringsField(no: number, names: readonly string[]): Buffer {
  let size = 0;
  for (const n of names) size += fieldSize(Buffer.byteLength(n));
  const b = Buffer.allocUnsafe(size);
  let i = 0;
  for (const n of names) i = putString(b, i, no, n);
  return b;
}

/**
 * `stringsField` of lists of name ids, built once per worker for each list sent again and again
 * (a SotW ACK repeats its subscription; proxies of one scope subscribe to the same names).
 */
export class NamesCache {
  private readonly m = new Map<number, { no: number; ids: readonly number[]; bytes: Buffer }[]>();
  private size = 0;

  constructor(
    private readonly nameOf: (id: number) => string,
    private readonly max = 256,
  ) {}

  get(no: number, ids: readonly number[]): Buffer {
    let h = 0x811c9dc5 ^ no;
    for (const id of ids) h = Math.imul(h ^ id, 0x01000193);
    h &= 0x3fffffff;
    const l = this.m.get(h);
    if (l) for (const x of l) if (x.no === no && sameList(x.ids, ids)) return x.bytes;
    if (this.size >= this.max) {
      this.m.clear();
      this.size = 0;
    }
    const bytes = stringsField(no, ids.map(this.nameOf));
    const entry = { no, ids: [...ids], bytes };
    if (l && this.m.has(h)) l.push(entry);
    else this.m.set(h, [entry]);
    this.size++;
    return bytes;
  }
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const EMPTY = Buffer.alloc(0);

/** String fields ([number, value]) and already encoded fields (bytes), in the order given. */
function fields(list: readonly (readonly [number, string] | Uint8Array | undefined)[]): Buffer {
  let size = 0;
  for (const f of list) if (f) size += f instanceof Uint8Array ? f.length : fieldSize(Buffer.byteLength(f[1]));
  const b = Buffer.allocUnsafe(size);
  let i = 0;
  for (const f of list) {
    if (!f) continue;
    if (f instanceof Uint8Array) {
      b.set(f, i);
      i += f.length;
    } else i = putString(b, i, f[0], f[1]);
  }
  return b;
}

/**
 * A DiscoveryRequest as parts: `node` is the encoded field 2 (or undefined), `names` the encoded
 * field 3 (stringsField / NamesCache).
 */
export function sotwRequest(version: string, node: Uint8Array | undefined, names: Uint8Array, typeUrl: string, nonce: string): Uint8Array[] {
  return [fields([[1, version], node]), names, fields([[4, typeUrl], [5, nonce]])];
}

/**
 * A DeltaDiscoveryRequest as parts: `node` the encoded field 1 (or undefined), `subscribe` and
 * `unsubscribe` the encoded fields 3 and 4, `nonce` omitted when undefined.
 */
export function deltaRequest(node: Uint8Array | undefined, typeUrl: string, subscribe: Uint8Array = EMPTY, unsubscribe: Uint8Array = EMPTY, nonce?: string): Uint8Array[] {
  return [fields([node, [2, typeUrl]]), subscribe, unsubscribe, nonce === undefined ? EMPTY : fields([[6, nonce]])];
}
