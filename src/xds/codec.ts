/**
 * Plain objects ⇄ Envoy protobuf bytes.
 *
 * Convention (proto3 JSON mapping, with proto field names):
 * - Field names are the .proto names, snake_case (`connect_timeout`, `typed_config`), as in
 *   Envoy's docs and YAML, so golden files can be compared with Envoy examples by eye. camelCase
 *   is rejected (with a hint), never silently accepted.
 * - `google.protobuf.Any` is `{ "@type": "type.googleapis.com/…", ...fields }`; nested Anys
 *   (an HttpConnectionManager in a Listener filter) are encoded and decoded recursively. An Any
 *   whose type is not loaded decodes to `{ type_url, value: <base64> }`, which encodes back as is.
 * - Well-known types use their JSON forms: Duration `"1.500s"`, Timestamp RFC 3339, wrappers
 *   (`UInt32Value`…) the bare value, Struct/Value/ListValue plain JSON. Encoding also accepts the
 *   message forms (`{seconds, nanos}`, `{value}`).
 * - Enums encode from their name or number and decode to their name. 64-bit integers encode from a
 *   number, a decimal string or a bigint and decode to a number when it is safe, else a string.
 *   bytes encode from a Buffer/Uint8Array or base64 and decode to base64.
 * - `undefined` and `null` mean "not set". Decoding omits unset fields and empty lists/maps, so a
 *   round trip is the identity on objects written in the decoded forms above.
 *
 * Encoding verifies as it goes and throws XdsCodecError naming the path of the first problem:
 * unknown fields, wrong JSON types, out-of-range integers, unknown enum names, two members of one
 * oneof, unknown `@type`s. A generator therefore cannot produce what Envoy would refuse to parse.
 * (protoc-gen-validate rules such as `min_len` are not checked yet.)
 */
import protobuf from 'protobufjs';
import { findMessageType, type AnyMsg } from './protos.js';
import { messageNameOf, TYPE_URL_PREFIX } from '../mesh/typeurls.js';
import { setOwn } from '../config/own.js';

export type PlainObject = Record<string, unknown>;

export class XdsCodecError extends Error {
  readonly code: 'ERR_XDS_ENCODE' | 'ERR_XDS_DECODE';
  /** Where in the object the problem is, e.g. `Listener.filter_chains[0].filters[0].name`. */
  readonly path: string;

  constructor(code: 'ERR_XDS_ENCODE' | 'ERR_XDS_DECODE', path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'XdsCodecError';
    this.code = code;
    this.path = path;
  }
}

/** A Uint8Array view as a Buffer without copying (protobufjs hands back either). */
export function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function typeForUrl(typeUrl: string): protobuf.Type | undefined {
  const name = messageNameOf(typeUrl);
  return name === undefined ? undefined : findMessageType(name);
}

function resolveType(typeUrl: string, code: 'ERR_XDS_ENCODE' | 'ERR_XDS_DECODE', path: string): protobuf.Type {
  const t = typeForUrl(typeUrl);
  if (!t) throw new XdsCodecError(code, path, `type ${JSON.stringify(typeUrl)} is not a loaded Envoy message`);
  return t;
}

/** Serializes a plain object as the message named by `typeUrl`; throws XdsCodecError if invalid. */
export function encodeResource(typeUrl: string, obj: unknown): Buffer {
  const t = resolveType(typeUrl, 'ERR_XDS_ENCODE', typeUrl);
  return asBuffer(t.encode(toWire(t, obj, t.name)).finish());
}

/** `encodeResource` wrapped in an Any, ready for a DiscoveryResponse. */
export function toAny(typeUrl: string, obj: unknown): AnyMsg {
  return { type_url: typeUrl, value: encodeResource(typeUrl, obj) };
}

/** The plain object inside an Any (without `@type`); nested Anys keep theirs. */
export function decodeResource(any: AnyMsg): PlainObject {
  const t = resolveType(any.type_url, 'ERR_XDS_DECODE', any.type_url);
  let msg: protobuf.Message;
  try {
    msg = t.decode(any.value);
  } catch (e) {
    throw new XdsCodecError('ERR_XDS_DECODE', t.name, (e as Error).message);
  }
  return fromWire(t, msg as unknown as PlainObject) as PlainObject;
}

/** Like encodeResource, by full message name (`envoy.service.discovery.v3.DiscoveryRequest`). */
export function encodeMessage(fullName: string, obj: unknown): Buffer {
  return encodeResource(TYPE_URL_PREFIX + fullName, obj);
}

export function decodeMessage(fullName: string, bytes: Uint8Array): PlainObject {
  return decodeResource({ type_url: TYPE_URL_PREFIX + fullName, value: bytes });
}

// ---------------------------------------------------------------------------------------------
// plain → wire (objects protobufjs' encoder accepts)
// ---------------------------------------------------------------------------------------------

const WRAPPERS = new Set(
  ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map(
    (w) => `google.protobuf.${w}Value`,
  ),
);
/** Types whose JSON form is not an object, so inside an Any they sit under `value`. */
const SPECIAL_JSON = new Set([
  ...WRAPPERS,
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
]);

const fullNames = new WeakMap<protobuf.ReflectionObject, string>();

/**
 * Memoized: protobufjs' `fullName` is a getter that walks the parents and joins their names on
 * every read, and the codec reads it for every message it converts (13 % of generating a
 * sidecar's first config, ADR 0120). The loaded types never change.
 */
function fullNameOf(t: protobuf.ReflectionObject): string {
  let n = fullNames.get(t);
  if (n === undefined) fullNames.set(t, (n = t.fullName.replace(/^\./, '')));
  return n;
}

/** Object literals only: a Map or class instance would otherwise encode as an empty message. */
function isPlainObject(v: unknown): v is PlainObject {
  if (typeof v !== 'object' || v === null) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return 'bytes';
  if (typeof v === 'object') return isPlainObject(v) ? 'an object' : `a ${v.constructor?.name ?? 'non-plain object'}`;
  if (typeof v === 'bigint') return `bigint ${v}`;
  return `${typeof v} ${JSON.stringify(v)}`;
}

function fail(path: string, message: string): never {
  throw new XdsCodecError('ERR_XDS_ENCODE', path, message);
}

function snakeHint(key: string, t: protobuf.Type): string {
  const snake = key.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
  if (snake !== key && t.fields[snake]) return ` (field names are snake_case: did you mean "${snake}"?)`;
  return '';
}

function toWire(t: protobuf.Type, v: unknown, path: string): PlainObject {
  const name = fullNameOf(t);
  switch (name) {
    case 'google.protobuf.Any':
      return anyToWire(v, path);
    case 'google.protobuf.Duration':
      if (typeof v === 'string') return parseDuration(v, path);
      break;
    case 'google.protobuf.Timestamp':
      if (typeof v === 'string') return parseTimestamp(v, path);
      break;
    case 'google.protobuf.Struct':
      return structToWire(v, path);
    case 'google.protobuf.Value':
      return valueToWire(v, path);
    case 'google.protobuf.ListValue':
      if (!Array.isArray(v)) fail(path, `expected an array, got ${describe(v)}`);
      return { values: v.map((x, i) => valueToWire(x, `${path}[${i}]`)) };
    default:
      if (WRAPPERS.has(name) && !isPlainObject(v)) {
        return { value: scalarToWire(t.fields['value']!, v, `${path}.value`) };
      }
  }
  if (!isPlainObject(v)) fail(path, `expected an object (${name}), got ${describe(v)}`);
  const out: PlainObject = {};
  for (const key of Object.keys(v)) {
    const fv = v[key];
    if (fv === undefined || fv === null) continue;
    const f = t.fields[key];
    if (!f) fail(`${path}.${key}`, `unknown field of ${name}${snakeHint(key, t)}`);
    out[key] = fieldToWire(f, fv, `${path}.${key}`);
  }
  for (const o of t.oneofsArray) {
    const set = o.oneof.filter((n) => out[n] !== undefined);
    if (set.length > 1) fail(path, `oneof ${o.name} allows one of ${set.join(', ')}, got ${set.length}`);
  }
  return out;
}

function fieldToWire(f: protobuf.Field, v: unknown, path: string): unknown {
  if (f.map) {
    if (!isPlainObject(v)) fail(path, `expected an object (map), got ${describe(v)}`);
    const out: PlainObject = {};
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined || x === null) continue;
      out[k] = singleToWire(f, x, `${path}[${JSON.stringify(k)}]`);
    }
    return out;
  }
  if (f.repeated) {
    if (!Array.isArray(v)) fail(path, `expected an array, got ${describe(v)}`);
    return v.map((x, i) => singleToWire(f, x, `${path}[${i}]`));
  }
  return singleToWire(f, v, path);
}

function singleToWire(f: protobuf.Field, v: unknown, path: string): unknown {
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Type) return toWire(rt, v, path);
  if (rt instanceof protobuf.Enum) return enumToWire(rt, v, path);
  return scalarToWire(f, v, path);
}

function enumToWire(e: protobuf.Enum, v: unknown, path: string): number {
  if (typeof v === 'string') {
    const n = e.values[v];
    if (n === undefined) fail(path, `unknown ${e.name} value ${JSON.stringify(v)} (one of ${Object.keys(e.values).join(', ')})`);
    return n;
  }
  if (typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647) return v;
  return fail(path, `expected a ${e.name} name, got ${describe(v)}`);
}

const INT_RANGE: Record<string, [number, number]> = {
  int32: [-2147483648, 2147483647],
  sint32: [-2147483648, 2147483647],
  sfixed32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
  fixed32: [0, 4294967295],
};
const INT64 = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);

function scalarToWire(f: protobuf.Field, v: unknown, path: string): unknown {
  const type = f.type;
  switch (type) {
    case 'string':
      if (typeof v !== 'string') fail(path, `expected a string, got ${describe(v)}`);
      return v;
    case 'bool':
      if (typeof v !== 'boolean') fail(path, `expected a boolean, got ${describe(v)}`);
      return v;
    case 'double':
    case 'float':
      if (typeof v !== 'number' || Number.isNaN(v)) fail(path, `expected a number, got ${describe(v)}`);
      return v;
    case 'bytes':
      if (v instanceof Uint8Array) return v;
      if (typeof v === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) return Buffer.from(v, 'base64');
      return fail(path, `expected bytes (Buffer or base64), got ${describe(v)}`);
  }
  const range = INT_RANGE[type];
  if (range) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < range[0] || v > range[1]) {
      fail(path, `expected a ${type}, got ${describe(v)}`);
    }
    return v;
  }
  if (INT64.has(type)) {
    const unsigned = type === 'uint64' || type === 'fixed64';
    let big: bigint;
    if (typeof v === 'bigint') big = v;
    else if (typeof v === 'number' && Number.isSafeInteger(v)) big = BigInt(v);
    else if (typeof v === 'string' && /^-?\d+$/.test(v)) big = BigInt(v);
    else return fail(path, `expected a ${type} (integer or decimal string), got ${describe(v)}`);
    const min = unsigned ? 0n : -(2n ** 63n);
    const max = unsigned ? 2n ** 64n - 1n : 2n ** 63n - 1n;
    if (big < min || big > max) fail(path, `${big} is out of range for ${type}`);
    if (big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(big);
    // protobufjs parses decimal strings itself (two's complement bits, so uint64 fits too).
    return big.toString();
  }
  return fail(path, `unsupported field type ${type}`);
}

function anyToWire(v: unknown, path: string): PlainObject {
  if (!isPlainObject(v)) fail(path, `expected an Any object with "@type", got ${describe(v)}`);
  const url = v['@type'];
  if (url === undefined) {
    // Already-encoded form, e.g. one produced by decoding an Any of a type we don't load.
    if (typeof v['type_url'] === 'string' && v['value'] !== undefined) {
      const extra = Object.keys(v).filter((k) => k !== 'type_url' && k !== 'value');
      if (extra.length) fail(`${path}.${extra[0]}`, 'unknown field of google.protobuf.Any');
      const value = v['value'];
      if (value instanceof Uint8Array) return { type_url: v['type_url'], value };
      if (typeof value === 'string') return { type_url: v['type_url'], value: Buffer.from(value, 'base64') };
      fail(`${path}.value`, `expected bytes, got ${describe(value)}`);
    }
    fail(path, 'an Any needs "@type"');
  }
  if (typeof url !== 'string') fail(`${path}.@type`, `expected a string, got ${describe(url)}`);
  const t = typeForUrl(url);
  if (!t) fail(`${path}.@type`, `type ${JSON.stringify(url)} is not a loaded Envoy message`);
  const inner = `${path}(${t.name})`;
  let wire: PlainObject;
  if (SPECIAL_JSON.has(fullNameOf(t))) {
    const extra = Object.keys(v).filter((k) => k !== '@type' && k !== 'value');
    if (extra.length) fail(`${inner}.${extra[0]}`, `unknown field (a ${t.name} in an Any sits under "value")`);
    wire = toWire(t, v['value'], `${inner}.value`);
  } else {
    const { ['@type']: _drop, ...rest } = v;
    wire = toWire(t, rest, inner);
  }
  return { type_url: url, value: t.encode(wire).finish() };
}

function parseDuration(s: string, path: string): PlainObject {
  const m = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(s);
  if (!m) return fail(path, `expected a duration like "1.5s", got ${JSON.stringify(s)}`);
  const sign = m[1] ? -1 : 1;
  const seconds = Number(m[2]);
  if (!Number.isSafeInteger(seconds) || seconds > 315576000000) fail(path, `duration ${s} is out of range`);
  const nanos = m[3] ? Number(m[3].padEnd(9, '0')) : 0;
  return { seconds: sign * seconds, nanos: sign * nanos };
}

function parseTimestamp(s: string, path: string): PlainObject {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(s);
  const ms = m ? Date.parse(`${m[1]}${m[3]}`) : NaN;
  if (!m || Number.isNaN(ms)) return fail(path, `expected an RFC 3339 timestamp, got ${JSON.stringify(s)}`);
  return { seconds: Math.floor(ms / 1000), nanos: m[2] ? Number(m[2].padEnd(9, '0')) : 0 };
}

function structToWire(v: unknown, path: string): PlainObject {
  if (!isPlainObject(v)) fail(path, `expected a JSON object (Struct), got ${describe(v)}`);
  const fields: PlainObject = {};
  for (const [k, x] of Object.entries(v)) {
    if (x !== undefined) setOwn(fields, k, valueToWire(x, `${path}.${k}`));
  }
  return { fields };
}

/**
 * protobufjs bundles google/protobuf/struct.proto as a camelCase JSON descriptor (`numberValue`),
 * whatever keepCase says; look the names up instead of assuming them.
 */
let valueFieldNames: Record<'null' | 'number' | 'string' | 'bool' | 'struct' | 'list', string> | undefined;
function vf(): NonNullable<typeof valueFieldNames> {
  if (valueFieldNames) return valueFieldNames;
  const t = findMessageType('google.protobuf.Value');
  const pick = (snake: string): string =>
    t?.fields[snake] ? snake : snake.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
  valueFieldNames = {
    null: pick('null_value'),
    number: pick('number_value'),
    string: pick('string_value'),
    bool: pick('bool_value'),
    struct: pick('struct_value'),
    list: pick('list_value'),
  };
  return valueFieldNames;
}

function valueToWire(v: unknown, path: string): PlainObject {
  const f = vf();
  if (v === null) return { [f.null]: 0 };
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) fail(path, `a JSON number must be finite, got ${v}`);
    return { [f.number]: v };
  }
  if (typeof v === 'string') return { [f.string]: v };
  if (typeof v === 'boolean') return { [f.bool]: v };
  if (Array.isArray(v)) return { [f.list]: { values: v.map((x, i) => valueToWire(x, `${path}[${i}]`)) } };
  if (isPlainObject(v)) return { [f.struct]: structToWire(v, path) };
  return fail(path, `not representable as JSON: ${describe(v)}`);
}

// ---------------------------------------------------------------------------------------------
// wire → plain
// ---------------------------------------------------------------------------------------------

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

interface LongLike {
  low: number;
  high: number;
  unsigned: boolean;
}

function isLong(v: unknown): v is LongLike {
  return typeof v === 'object' && v !== null && 'low' in v && 'high' in v;
}

function longToBigInt(v: LongLike): bigint {
  const u = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return !v.unsigned && v.high < 0 ? u - 2n ** 64n : u;
}

function fromWire(t: protobuf.Type, m: PlainObject): unknown {
  const name = fullNameOf(t);
  switch (name) {
    case 'google.protobuf.Any':
      return anyFromWire(m);
    case 'google.protobuf.Duration':
      return formatDuration(num(m['seconds']), num(m['nanos']));
    case 'google.protobuf.Timestamp':
      return formatTimestamp(num(m['seconds']), num(m['nanos']));
    case 'google.protobuf.Struct':
      return structFromWire(m);
    case 'google.protobuf.Value':
      return valueFromWire(m);
    case 'google.protobuf.ListValue':
      return ((m['values'] as PlainObject[] | undefined) ?? []).map(valueFromWire);
  }
  if (WRAPPERS.has(name)) {
    const f = t.fields['value']!;
    return hasOwn(m, 'value') ? scalarFromWire(f, m['value']) : defaultScalar(f);
  }
  const out: PlainObject = {};
  for (const f of t.fieldsArray) {
    const v = m[f.name];
    if (v === undefined || v === null) continue;
    if (f.map) {
      const entries = Object.entries(v as PlainObject);
      if (entries.length === 0) continue;
      const o: PlainObject = {};
      for (const [k, x] of entries) setOwn(o, k, singleFromWire(f, x));
      out[f.name] = o;
    } else if (f.repeated) {
      const a = v as unknown[];
      if (a.length === 0) continue;
      out[f.name] = a.map((x) => singleFromWire(f, x));
    } else if (hasOwn(m, f.name)) {
      out[f.name] = singleFromWire(f, v);
    }
  }
  return out;
}

function singleFromWire(f: protobuf.Field, v: unknown): unknown {
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Type) return fromWire(rt, v as PlainObject);
  if (rt instanceof protobuf.Enum) return rt.valuesById[v as number] ?? v;
  return scalarFromWire(f, v);
}

function scalarFromWire(f: protobuf.Field, v: unknown): unknown {
  if (isLong(v)) {
    const b = longToBigInt(v);
    return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b.toString();
  }
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  if (f.type === 'float' && typeof v === 'number') return shortestFloat(v);
  return v;
}

function defaultScalar(f: protobuf.Field): unknown {
  switch (f.type) {
    case 'string':
    case 'bytes':
      return '';
    case 'bool':
      return false;
    default:
      return 0;
  }
}

/** float32 values widen to noisy doubles (0.1 → 0.10000000149…); print the shortest that maps back. */
function shortestFloat(v: number): number {
  for (let p = 1; p <= 9; p++) {
    const c = Number(v.toPrecision(p));
    if (Math.fround(c) === v) return c;
  }
  return v;
}

function num(v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (isLong(v)) return Number(longToBigInt(v));
  return v as number;
}

function formatDuration(seconds: number, nanos: number): string {
  const neg = seconds < 0 || nanos < 0;
  const s = Math.abs(seconds);
  const n = Math.abs(nanos);
  // proto3 JSON prints 0, 3, 6 or 9 fractional digits.
  let frac = '';
  if (n !== 0) {
    frac = String(n).padStart(9, '0');
    frac = '.' + (frac.endsWith('000000') ? frac.slice(0, 3) : frac.endsWith('000') ? frac.slice(0, 6) : frac);
  }
  return `${neg ? '-' : ''}${s}${frac}s`;
}

function formatTimestamp(seconds: number, nanos: number): string {
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  if (!nanos) return `${base}Z`;
  const frac = String(nanos).padStart(9, '0');
  return `${base}.${frac.endsWith('000000') ? frac.slice(0, 3) : frac.endsWith('000') ? frac.slice(0, 6) : frac}Z`;
}

function anyFromWire(m: PlainObject): PlainObject {
  const url = (m['type_url'] as string | undefined) ?? '';
  const value = (m['value'] as Uint8Array | undefined) ?? new Uint8Array(0);
  const t = typeForUrl(url);
  const raw = (): PlainObject => ({ type_url: url, value: asBuffer(value).toString('base64') });
  if (!t) return raw();
  let inner: unknown;
  try {
    inner = fromWire(t, t.decode(value) as unknown as PlainObject);
  } catch {
    return raw();
  }
  if (SPECIAL_JSON.has(fullNameOf(t))) return { '@type': url, value: inner };
  return { '@type': url, ...(inner as PlainObject) };
}

function structFromWire(m: PlainObject): PlainObject {
  const out: PlainObject = {};
  for (const [k, v] of Object.entries((m['fields'] as PlainObject | undefined) ?? {})) {
    // A Struct key `__proto__` must become a key, not the object's prototype.
    setOwn(out, k, valueFromWire(v as PlainObject));
  }
  return out;
}

function valueFromWire(m: PlainObject): unknown {
  const f = vf();
  if (hasOwn(m, f.struct) && m[f.struct]) return structFromWire(m[f.struct] as PlainObject);
  if (hasOwn(m, f.list) && m[f.list]) {
    return (((m[f.list] as PlainObject)['values'] as PlainObject[] | undefined) ?? []).map(valueFromWire);
  }
  if (hasOwn(m, f.string)) return m[f.string];
  if (hasOwn(m, f.number)) return m[f.number];
  if (hasOwn(m, f.bool)) return m[f.bool];
  return null;
}
