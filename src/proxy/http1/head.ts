/**
 * HTTP/1.1 message heads: parsed once from the bytes on the wire, serialized once into the bytes
 * written. Pure functions over Buffers, no sockets, so the limits and the hostile cases are tested
 * directly.
 *
 * Limits are Envoy's defaults (`max_request_headers_kb` 60, `max_headers_count` 100). A head over
 * either is refused with 431, never truncated: a silently dropped header can be the
 * x-forwarded-client-cert the app relies on.
 */

/** Lower-case names; a repeated header becomes an array in arrival order. */
export type Headers = Record<string, string | string[]>;

export interface HeadLimits {
  /** Most header fields in one head (Envoy: max_headers_count, default 100). */
  maxHeaders: number;
  /** Most bytes of the whole head, request line included (Envoy: max_request_headers_kb, 60). */
  maxHeadBytes: number;
}

export const DEFAULT_HEAD_LIMITS: HeadLimits = { maxHeaders: 100, maxHeadBytes: 60 * 1024 };

export interface RequestHead {
  method: string;
  /** The request target as sent (origin-form, absolute-form, authority-form or `*`). */
  target: string;
  /** Minor version: 1 for HTTP/1.1, 0 for HTTP/1.0. */
  minor: number;
  headers: Headers;
}

export interface ResponseHead {
  status: number;
  reason: string;
  minor: number;
  headers: Headers;
}

export interface HeadError {
  error: 400 | 431;
  reason: string;
  /** The reason is worth telling the client in the body (a protocol mix-up, not an attack). */
  tell?: boolean;
  /** It is the HTTP/2 connection preface (an HTTP/2 engine may take the connection instead). */
  http2?: boolean;
}

const H2_PREFACE = 'PRI * HTTP/2.0\r\n';

/**
 * Another protocol at the start of a request, known from its first bytes: a TLS handshake record
 * (0x16 0x03) never contains the blank line that ends an HTTP head, so without this check the
 * client would wait for a ServerHello until the idle timeout; an HTTP/2 preface would only get
 * "malformed request line". Undefined: HTTP/1 (or not enough bytes to tell yet).
 */
export function foreignProtocol(buf: Buffer): HeadError | undefined {
  if (buf[0] === 0x16 && (buf.length < 2 || buf[1] === 0x03)) {
    return { error: 400, reason: 'TLS handshake on a plain HTTP/1.1 port (use http://, or a port whose protocol is TLS/TCP)', tell: true };
  }
  // One byte compare on the hot path: only a head starting with `P` goes on.
  if (buf[0] !== 0x50) return undefined;
  const n = Math.min(buf.length, H2_PREFACE.length);
  if (n >= 4 && buf.toString('latin1', 0, n) === H2_PREFACE.slice(0, n)) {
    return { error: 400, reason: 'HTTP/2 connection preface on an HTTP/1.1-only listener (its codec_type is HTTP1)', tell: true, http2: true };
  }
  return undefined;
}

/** A head and how many bytes it took (the body starts there), an error, or undefined: need more. */
export type HeadResult<T> = { head: T; length: number } | HeadError | undefined;

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Whether the head `buf[0..end)` holds a byte no head may: field values are visible ASCII,
 * obs-text, SP and HTAB (RFC 9110 §5.5), and lines end only in CRLF (no bare CR or LF, no NUL).
 * One pass over the bytes: the regex it replaced (with a lookbehind for bare LF) was the largest
 * single user-space entry in a sidecar's CPU profile (ADR 0128); a plain character-class regex
 * for the control characters is still twice as slow as this loop (ADR 0130).
 */
function badHeadByte(buf: Buffer, end: number): boolean {
  for (let i = 0; i < end; i++) {
    const c = buf[i]!;
    if (c >= 32) {
      if (c === 127) return true;
      continue;
    }
    if (c === 9) continue;
    if (c === 13 && i + 1 < end && buf[i + 1] === 10) {
      i++;
      continue;
    }
    return true;
  }
  return false;
}

/**
 * Header names as sent → their lower-case key, for names seen before (the same dozen names on
 * every request), found without slicing the name out of the head: a fresh name string per field
 * had to be hashed for the lookup and compared char by char, which with the megamorphic stores
 * into the headers object was most of a head's parsing (ADR 0151). A direct-mapped table: the
 * slot comes from the name's length and three of its characters, the entry is confirmed with
 * `startsWith` at the name's offset. A hostile client sending many names only evicts entries
 * (a slower parse); the keys behind them are bounded (512 names of at most 64 characters, the
 * first ones seen; later names parse on the slower reading path).
 */
interface NameEntry {
  /** The name as it appears on the wire (case as sent); a valid token. */
  raw: string;
  info: KeyInfo;
}

/** One per lower-case key: the interned key and the last head it was stored into. */
interface KeyInfo {
  key: string;
  /** `generation` of the head that last stored this key: equal means "already in this head". */
  seen: number;
}

const NAME_SLOTS = 512;
const nameSlots: (NameEntry | undefined)[] = new Array<NameEntry | undefined>(NAME_SLOTS).fill(undefined);
/** Every KeyInfo a slot can point at, so a key has one stamp however its name was cased. Bounded. */
const keyInfos = new Map<string, KeyInfo>();
const KEY_INFOS_MAX = 512;
/** Longest name tabled (the longest standard field name is 32 characters). */
const TABLED_NAME_MAX = 64;
/** Bumped per head parsed; a KeyInfo stamped with the current value is in the current head. */
let generation = 0;

function nameSlot(text: string, pos: number, len: number): number {
  return (len * 31 + text.charCodeAt(pos) * 7 + text.charCodeAt(pos + (len >> 1)) * 3 + text.charCodeAt(pos + len - 1)) & (NAME_SLOTS - 1);
}

/** The internalized copy of `s` (property keys are internalized; a fresh string would be looked up on every store). */
function internalize(s: string): string {
  // No prototype: `__proto__` would be the prototype setter on a plain object (it is refused
  // before this, but the key table must never hold anything but the name given).
  const o = Object.create(null) as Record<string, number>;
  o[s] = 0;
  return Object.keys(o)[0]!;
}

/** Index of the blank line ending a head (`\r\n\r\n`), searching from `from`; -1 if not there. */
function headEnd(buf: Buffer, from: number): number {
  return buf.indexOf('\r\n\r\n', Math.max(0, from - 3), 'latin1');
}

/** A header named `error` is a field like any other: only a HeadError has a numeric `error`. */
function isHeadError(h: Headers | HeadError): h is HeadError {
  return typeof h['error'] === 'number';
}

/** SP or HTAB: the optional whitespace around a field value (RFC 9110 §5.6.3). */
function isOws(c: number): boolean {
  return c === 32 || c === 9;
}

/**
 * The fields of a head whose text (CRLF line ends, no final blank line) is `text`, from offset
 * `pos` (the start of the line after the start line; `text.length` when there are no fields).
 * Walks the text by index: no array of lines, no sliced line and no trimmed copy per field
 * (`split` and `trim` were a quarter of the head parsing, ADR 0130).
 */
function parseFields(text: string, pos: number, limits: HeadLimits): Headers | HeadError {
  const headers: Headers = {};
  const n = text.length;
  const gen = (generation = (generation + 1) | 0);
  let count = 0;
  while (pos < n) {
    let eol = text.indexOf('\r\n', pos);
    if (eol < 0) eol = n;
    if (++count > limits.maxHeaders) return { error: 431, reason: `more than ${limits.maxHeaders} header fields` };
    const colon = text.indexOf(':', pos);
    if (colon <= pos || colon > eol) return { error: 400, reason: 'malformed header line' };
    // Control characters were refused for the whole head already (badHeadByte); what is left
    // to drop around the value is SP and HTAB.
    let vs = colon + 1;
    while (vs < eol && isOws(text.charCodeAt(vs))) vs++;
    let ve = eol;
    while (ve > vs && isOws(text.charCodeAt(ve - 1))) ve--;
    const value = text.slice(vs, ve);
    const len = colon - pos;
    const slot = nameSlot(text, pos, len);
    const entry = nameSlots[slot];
    if (entry !== undefined && entry.raw.length === len && text.startsWith(entry.raw, pos)) {
      const info = entry.info;
      // Not yet in this head (the common case): a store without reading the key first.
      if (info.seen !== gen) {
        info.seen = gen;
        headers[info.key] = value;
      } else addHeaderValue(headers, info.key, value);
    } else {
      const name = text.slice(pos, colon);
      // obs-fold (a line starting with SP/HTAB) and spaces before the colon are errors (RFC 9112 §5).
      if (!TOKEN.test(name)) return { error: 400, reason: `invalid header name ${JSON.stringify(name.slice(0, 40))}` };
      const lower = name.toLowerCase();
      // The one name a plain object cannot hold as a field (assigning it sets the prototype):
      // refused rather than dropped. Inherited names such as `constructor` are fields like any
      // other (addHeaderValue reads own properties only).
      if (lower === '__proto__') return { error: 400, reason: 'header name __proto__ is not accepted' };
      let info = keyInfos.get(lower);
      // Only short names are tabled: the table lives as long as the process, and 512 names of
      // 60 KB each would pin 30 MB. Untabled names always take the reading path.
      if (info === undefined && keyInfos.size < KEY_INFOS_MAX && len <= TABLED_NAME_MAX) keyInfos.set(lower, (info = { key: internalize(lower), seen: 0 }));
      if (info !== undefined) {
        info.seen = gen;
        nameSlots[slot] = { raw: name, info };
      }
      // Names not tabled (the table is full) always take the reading path.
      addHeaderValue(headers, info?.key ?? lower, value);
    }
    pos = eol + 2;
  }
  return headers;
}

const hasOwn = Object.prototype.hasOwnProperty;

/**
 * The field `name` of a head, own properties only: a head is a plain object, so `h['constructor']`
 * would be Object.prototype's function for a request without that field (ADR 0151). For names
 * not known in advance (from the wire or from config).
 */
export function ownHeader<V>(h: Readonly<Record<string, V>>, name: string): V | undefined {
  return hasOwn.call(h, name) ? h[name] : undefined;
}

/** Adds a value under `key`, which may already hold one (a repeated header becomes an array). */
export function addHeaderValue(headers: Headers, key: string, value: string): void {
  const prev = ownHeader(headers, key);
  if (prev === undefined) headers[key] = value;
  else if (typeof prev === 'string') headers[key] = [prev, value];
  else prev.push(value);
}

/** The minor version of the `HTTP/1.x` at `text[at..end)` (0 or 1), or -1; no slice to compare. */
function versionAt(text: string, at: number, end: number): number {
  if (end - at !== 8 || !text.startsWith('HTTP/1.', at)) return -1;
  const c = text.charCodeAt(at + 7);
  return c === 49 ? 1 : c === 48 ? 0 : -1;
}

/** The common methods as constants, so a request line's method is neither sliced nor token-checked. */
const METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'PATCH', 'OPTIONS'];

function commonMethod(text: string, len: number): string | undefined {
  for (const m of METHODS) if (m.length === len && text.startsWith(m)) return m;
  return undefined;
}

/**
 * Parses a request head from the start of `buf`. `scanned` is how many bytes were already
 * searched without finding the end (so a head arriving in many pieces is scanned once).
 */
export function parseRequestHead(buf: Buffer, limits: HeadLimits = DEFAULT_HEAD_LIMITS, scanned = 0): HeadResult<RequestHead> {
  const end = headEnd(buf, scanned);
  if (end < 0) return buf.length > limits.maxHeadBytes ? { error: 431, reason: `request head larger than ${limits.maxHeadBytes} bytes` } : undefined;
  if (end + 4 > limits.maxHeadBytes) return { error: 431, reason: `request head larger than ${limits.maxHeadBytes} bytes` };
  if (badHeadByte(buf, end)) return { error: 400, reason: 'invalid character in request head' };
  const text = buf.toString('latin1', 0, end);
  let eol = text.indexOf('\r\n');
  if (eol < 0) eol = text.length;
  // Exactly two spaces: `method SP target SP version`.
  const sp1 = text.indexOf(' ');
  const sp2 = sp1 < 0 ? -1 : text.indexOf(' ', sp1 + 1);
  if (sp2 < 0 || sp2 >= eol) return { error: 400, reason: 'malformed request line' };
  const sp3 = text.indexOf(' ', sp2 + 1);
  if (sp3 >= 0 && sp3 < eol) return { error: 400, reason: 'malformed request line' };
  const common = commonMethod(text, sp1);
  const method = common ?? text.slice(0, sp1);
  const target = text.slice(sp1 + 1, sp2);
  const minor = versionAt(text, sp2 + 1, eol);
  if (minor < 0 || (common === undefined && !TOKEN.test(method)) || target === '') return { error: 400, reason: 'malformed request line' };
  const headers = parseFields(text, eol + 2, limits);
  if (isHeadError(headers)) return headers;
  return { head: { method, target, minor, headers }, length: end + 4 };
}

/** The three digits at offset 9 of a status line as a number, or NaN. */
function statusAt(text: string): number {
  const a = text.charCodeAt(9) - 48;
  const b = text.charCodeAt(10) - 48;
  const c = text.charCodeAt(11) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 && c >= 0 && c <= 9 ? a * 100 + b * 10 + c : NaN;
}

/** Parses a response head (from an upstream). Same limits. */
export function parseResponseHead(buf: Buffer, limits: HeadLimits = DEFAULT_HEAD_LIMITS, scanned = 0): HeadResult<ResponseHead> {
  const end = headEnd(buf, scanned);
  if (end < 0) return buf.length > limits.maxHeadBytes ? { error: 431, reason: `response head larger than ${limits.maxHeadBytes} bytes` } : undefined;
  if (end + 4 > limits.maxHeadBytes) return { error: 431, reason: `response head larger than ${limits.maxHeadBytes} bytes` };
  if (badHeadByte(buf, end)) return { error: 400, reason: 'invalid character in response head' };
  const text = buf.toString('latin1', 0, end);
  let eol = text.indexOf('\r\n');
  if (eol < 0) eol = text.length;
  // `HTTP/1.1 200 OK`; the reason phrase may be empty or contain spaces.
  const minor = versionAt(text, 0, 8);
  const status = statusAt(text);
  if (minor < 0 || eol < 12 || text.charCodeAt(8) !== 32 || !(status >= 100 && status <= 999) || (eol > 12 && text.charCodeAt(12) !== 32)) return { error: 400, reason: 'malformed status line' };
  const headers = parseFields(text, eol + 2, limits);
  if (isHeadError(headers)) return headers;
  return { head: { status, reason: eol > 13 ? text.slice(13, eol) : '', minor, headers }, length: end + 4 };
}

/** Appends `name: value` lines (one per value of an array). */
export function serializeFields(headers: Headers): string {
  let s = '';
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined) continue;
    if (typeof v === 'string') s += `${k}: ${v}\r\n`;
    else for (const x of v) s += `${k}: ${x}\r\n`;
  }
  return s;
}

export function serializeRequestHead(method: string, path: string, headers: Headers): string {
  return `${method} ${path} HTTP/1.1\r\n${serializeFields(headers)}\r\n`;
}

export function serializeResponseHead(status: number, reason: string, headers: Headers): string {
  return `HTTP/1.1 ${status} ${reason}\r\n${serializeFields(headers)}\r\n`;
}

/** The single value of a header that must not repeat (Content-Length, Host); undefined if absent. */
export function single(h: Headers, name: string): string | undefined | HeadError {
  const v = h[name];
  if (v === undefined || typeof v === 'string') return v;
  // Repeats with one value are tolerated (RFC 9110 §8.6 for Content-Length); different ones are not.
  return v.every((x) => x === v[0]) ? v[0] : { error: 400, reason: `conflicting ${name} headers` };
}

/** Whether the comma-separated header contains `token` (case-insensitive). */
export function hasToken(v: string | string[] | undefined, token: string): boolean {
  if (v === undefined) return false;
  const s = typeof v === 'string' ? v : v.join(',');
  // Walks the list by index: no array, trimmed copies or lower-cased strings per call (every
  // response's `Connection: keep-alive` comes through here, ADR 0143).
  let at = 0;
  while (at <= s.length) {
    let end = s.indexOf(',', at);
    if (end < 0) end = s.length;
    let a = at;
    let b = end;
    while (a < b && isTrimmed(s.charCodeAt(a))) a++;
    while (b > a && isTrimmed(s.charCodeAt(b - 1))) b--;
    if (b - a === token.length && sameLower(s, a, token)) return true;
    at = end + 1;
  }
  return false;
}

/** What `trim()` removed around a list element (JS whitespace and line terminators). */
function isTrimmed(c: number): boolean {
  if (c <= 0xff) return c === 32 || (c >= 9 && c <= 13) || c === 0xa0;
  return /\s/.test(String.fromCharCode(c));
}

/** `s` from `at` equals the lower-case `token`, ASCII case-insensitively. */
function sameLower(s: string, at: number, token: string): boolean {
  for (let i = 0; i < token.length; i++) {
    const c = s.charCodeAt(at + i);
    const t = token.charCodeAt(i);
    if (c !== t && !(c >= 65 && c <= 90 && c + 32 === t)) return false;
  }
  return true;
}

/** How the body of a message is delimited (RFC 9112 §6.3). */
export type Framing = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

const NONE: Framing = { kind: 'none' };
const CHUNKED: Framing = { kind: 'chunked' };
const CLOSE: Framing = { kind: 'close' };

/** 1 to 15 ASCII digits (what `/^\d{1,15}$/` accepted), without a regex per message. */
function isDigits(s: string): boolean {
  if (s.length === 0 || s.length > 15) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function lengthFraming(cl: string | undefined | HeadError): Framing | HeadError | undefined {
  if (cl === undefined) return undefined;
  if (typeof cl !== 'string') return cl;
  if (!isDigits(cl)) return { error: 400, reason: 'invalid Content-Length' };
  const n = Number(cl);
  return n === 0 ? NONE : { kind: 'length', length: n };
}

/**
 * Request body framing. Transfer-Encoding together with Content-Length is refused (a request
 * smuggling vector; Envoy refuses it too unless allow_chunked_length), as is any coding but chunked.
 */
export function requestFraming(h: Headers): Framing | HeadError {
  const te = h['transfer-encoding'];
  if (te !== undefined) {
    if (h['content-length'] !== undefined) return { error: 400, reason: 'both Transfer-Encoding and Content-Length' };
    const s = (typeof te === 'string' ? te : te.join(',')).trim().toLowerCase();
    if (s !== 'chunked') return { error: 400, reason: `unsupported Transfer-Encoding ${JSON.stringify(s)}` };
    return CHUNKED;
  }
  return lengthFraming(single(h, 'content-length')) ?? NONE;
}

/** Response body framing, given the request method (HEAD has no body) and status. */
export function responseFraming(h: Headers, status: number, method: string): Framing | HeadError {
  if (method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)) return NONE;
  const te = h['transfer-encoding'];
  if (te !== undefined) return hasToken(te, 'chunked') ? CHUNKED : CLOSE;
  return lengthFraming(single(h, 'content-length')) ?? CLOSE;
}
