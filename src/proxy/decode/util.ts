/**
 * Shared helpers for the xDS → model decoders: a path-aware reader that collects every error
 * instead of stopping at the first, so one NACK can name all problems of a resource.
 */
import type {
  DataSourceModel,
  HeaderAppendAction,
  HeaderMutationsModel,
  HeaderValueOptionModel,
  RegexModel,
  SanMatcherModel,
  SanType,
  StringMatcherModel,
  TlsCertificateModel,
  TlsCertificateRef,
  ValidationContextModel,
  ValidationContextRef,
} from '../model.js';

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Collects errors for one resource; `at(path)` reads relative to a field path. */
export class Errors {
  readonly list: string[] = [];
  constructor(private readonly prefix: string) {}

  add(path: string, message: string): void {
    this.list.push(path ? `${this.prefix}: ${path}: ${message}` : `${this.prefix}: ${message}`);
  }

  get any(): boolean {
    return this.list.length > 0;
  }
}

/** `a.b` / `a[0]` joining that leaves the root unprefixed. */
export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Reader over a plain object with error collection. Missing (undefined/null) = unset. */
export class Reader {
  constructor(
    readonly obj: Obj,
    readonly path: string,
    readonly errs: Errors,
  ) {}

  static of(v: unknown, path: string, errs: Errors): Reader | undefined {
    if (v === undefined || v === null) return undefined;
    if (!isObj(v)) {
      errs.add(path, `expected an object, got ${describe(v)}`);
      return undefined;
    }
    return new Reader(v, path, errs);
  }

  p(key: string | number): string {
    return join(this.path, key);
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  raw(key: string): unknown {
    const v = this.obj[key];
    return v === null ? undefined : v;
  }

  str(key: string): string | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') {
      this.errs.add(this.p(key), `expected a string, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  /**
   * A string that goes into a request or response head (header value, host, path, scheme): as its
   * UTF-8 bytes, one character per byte — how heads are written (latin1) and what Envoy sends —
   * and without CR, LF or NUL (Envoy's HTTP_HEADER_VALUE rule). Written as the string's own
   * characters, U+010D U+010A would leave as the bytes CR LF: a header injected by config.
   */
  wire(key: string): string | undefined {
    const v = this.str(key);
    return v === undefined ? undefined : wireBytes(v, this.p(key), this.errs);
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.raw(key);
    if (v === undefined) return dflt;
    // BoolValue wrappers may arrive in message form.
    const b = isObj(v) ? v['value'] : v;
    if (typeof b !== 'boolean') {
      this.errs.add(this.p(key), `expected a boolean, got ${describe(v)}`);
      return dflt;
    }
    return b;
  }

  /** Integer (uint32/int64/wrapper) within [min, max]. */
  int(key: string, dflt: number, min = 0, max = 4294967295): number {
    const v0 = this.raw(key);
    if (v0 === undefined) return dflt;
    const v = isObj(v0) ? v0['value'] : v0;
    const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) {
      this.errs.add(this.p(key), `expected an integer, got ${describe(v0)}`);
      return dflt;
    }
    if (n < min || n > max) {
      this.errs.add(this.p(key), `${n} is out of range [${min}, ${max}]`);
      return dflt;
    }
    return n;
  }

  num(key: string, dflt: number): number {
    const v0 = this.raw(key);
    if (v0 === undefined) return dflt;
    const v = isObj(v0) ? v0['value'] : v0;
    if (typeof v !== 'number' || Number.isNaN(v)) {
      this.errs.add(this.p(key), `expected a number, got ${describe(v0)}`);
      return dflt;
    }
    return v;
  }

  /** Duration in ms; `undefined` when unset. */
  durationMs(key: string): number | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    const ms = parseDurationMs(v);
    if (ms === undefined) {
      this.errs.add(this.p(key), `expected a duration like "1.5s", got ${describe(v)}`);
      return undefined;
    }
    return ms;
  }

  obj_(key: string): Reader | undefined {
    return Reader.of(this.raw(key), this.p(key), this.errs);
  }

  /** Array of elements; each element passed with its path. Non-arrays are an error. */
  arr(key: string): { v: unknown; path: string; i: number }[] {
    const v = this.raw(key);
    if (v === undefined) return [];
    if (!Array.isArray(v)) {
      this.errs.add(this.p(key), `expected an array, got ${describe(v)}`);
      return [];
    }
    return v.map((x, i) => ({ v: x, path: join(this.p(key), i), i }));
  }

  objs(key: string): Reader[] {
    const out: Reader[] = [];
    for (const { v, path } of this.arr(key)) {
      const r = Reader.of(v, path, this.errs);
      if (r) out.push(r);
      else if (v === undefined || v === null) this.errs.add(path, 'expected an object, got null');
    }
    return out;
  }

  strs(key: string): string[] {
    const out: string[] = [];
    for (const { v, path } of this.arr(key)) {
      if (typeof v === 'string') out.push(v);
      else this.errs.add(path, `expected a string, got ${describe(v)}`);
    }
    return out;
  }

  enum_<T extends string>(key: string, allowed: readonly T[], dflt: T): T {
    const v = this.raw(key);
    if (v === undefined) return dflt;
    if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
    this.errs.add(this.p(key), `unsupported value ${describe(v)} (supported: ${allowed.join(', ')})`);
    return dflt;
  }

  /** Which members of a oneof are set; reports more than one. */
  oneof(keys: readonly string[]): string | undefined {
    const set = keys.filter((k) => this.has(k));
    if (set.length > 1) this.errs.add(this.path, `only one of ${set.join(', ')} may be set`);
    return set[0];
  }
}

/** `"1.500s"`, `"-0.5s"`, or `{seconds, nanos}` → ms (rounded); undefined if malformed. */
export function parseDurationMs(v: unknown): number | undefined {
  if (typeof v === 'string') {
    const m = /^(-?)(\d+)(?:\.(\d{1,9}))?s$/.exec(v);
    if (!m) return undefined;
    const secs = Number(m[2]);
    const frac = m[3] ? Number((m[3] + '000000000').slice(0, 9)) : 0;
    const ms = secs * 1000 + frac / 1e6;
    return Math.round(m[1] ? -ms : ms);
  }
  if (isObj(v)) {
    const s = v['seconds'] ?? 0;
    const n = v['nanos'] ?? 0;
    const secs = typeof s === 'string' ? Number(s) : s;
    if (typeof secs !== 'number' || typeof n !== 'number' || !Number.isFinite(secs)) return undefined;
    return Math.round(secs * 1000 + n / 1e6);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// regexes (RE2 → JS)
// ---------------------------------------------------------------------------------------------

/**
 * Translates an RE2 pattern to a JS one, rejecting what RE2 itself would reject but JS would
 * accept (backreferences, lookaround) so a config that real Envoy NACKs is NACKed here too.
 * Returns the JS source and flags, or an error message.
 */
export function translateRe2(src: string): { source: string; flags: string } | { error: string } {
  let out = '';
  let flags = 'u';
  let i = 0;
  // RE2 accepts a leading flag group; JS (Node 20) has no inline modifiers, so lift it to flags.
  const lead = /^\(\?([imsU]+)\)/.exec(src);
  if (lead) {
    for (const f of lead[1]!) {
      if (f === 'i' || f === 's' || f === 'm') flags += f;
      else return { error: `inline flag "${f}" is not supported` };
    }
    i = lead[0].length;
  }
  let inClass = false;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '\\') {
      const n = src[i + 1];
      if (n === undefined) return { error: 'trailing backslash' };
      if (!inClass && n >= '1' && n <= '9') return { error: `backreference \\${n} is not supported by RE2` };
      if (n === 'k' && src[i + 2] === '<') return { error: 'named backreference \\k<…> is not supported by RE2' };
      if (!inClass && n === 'A') {
        out += '^';
        i += 2;
        continue;
      }
      if (!inClass && n === 'z') {
        out += '$';
        i += 2;
        continue;
      }
      if (n === 'Z') return { error: '\\Z is not supported by RE2' };
      if (n === 'C') return { error: '\\C is not supported' };
      if (n === 'Q') return { error: '\\Q…\\E is not supported' };
      out += c + n;
      i += 2;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      i++;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      i++;
      // A `]` right after `[` or `[^` is a literal in RE2; JS needs it escaped.
      if (src[i] === '^') {
        out += '^';
        i++;
      }
      if (src[i] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (c === '(' && src[i + 1] === '?') {
      const rest = src.slice(i + 2);
      if (rest.startsWith('=') || rest.startsWith('!')) return { error: 'lookahead (?= / (?! is not supported by RE2' };
      if (rest.startsWith('<=') || rest.startsWith('<!')) return { error: 'lookbehind (?<= / (?<! is not supported by RE2' };
      if (rest.startsWith('P<')) {
        out += '(?<';
        i += 4;
        continue;
      }
      if (rest.startsWith('P=')) return { error: 'named backreference (?P=…) is not supported by RE2' };
      if (rest.startsWith(':') || rest.startsWith('<')) {
        out += '(?';
        i += 2;
        continue;
      }
      return { error: 'inline flag groups are only supported at the start of the pattern' };
    }
    out += c;
    i++;
  }
  return { source: out, flags };
}

/** Compiles an RE2 regex with full-match semantics; reports errors at `path`. */
export function compileRegex(src: unknown, path: string, errs: Errors): RegexModel | undefined {
  if (typeof src !== 'string') {
    errs.add(path, `expected a string, got ${describe(src)}`);
    return undefined;
  }
  const t = translateRe2(src);
  if ('error' in t) {
    errs.add(path, `invalid regular expression: ${t.error}`);
    return undefined;
  }
  try {
    return { source: src, re: new RegExp(`^(?:${t.source})$`, t.flags) };
  } catch (e) {
    const msg = (e as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /, '');
    errs.add(path, `invalid regular expression: ${msg}`);
    return undefined;
  }
}

/** Compiles an RE2 regex that must match anywhere (regex_rewrite): not anchored, global. */
export function compileSearchRegex(src: unknown, path: string, errs: Errors): RegexModel | undefined {
  const full = compileRegex(src, path, errs);
  if (!full) return undefined;
  const t = translateRe2(full.source) as { source: string; flags: string };
  return { source: full.source, re: new RegExp(t.source, t.flags + 'g') };
}

/** A RegexMatcher object (`{ regex, google_re2? }`). */
export function regexMatcher(r: Reader | undefined, path: string, errs: Errors): RegexModel | undefined {
  if (!r) {
    errs.add(path, 'missing regex matcher');
    return undefined;
  }
  return compileRegex(r.raw('regex'), r.p('regex'), errs);
}

// ---------------------------------------------------------------------------------------------
// common Envoy messages
// ---------------------------------------------------------------------------------------------

/** envoy.type.matcher.v3.StringMatcher. */
export function stringMatcher(r: Reader | undefined, path: string, errs: Errors): StringMatcherModel | undefined {
  if (!r) {
    errs.add(path, 'missing string matcher');
    return undefined;
  }
  const ignoreCase = r.bool('ignore_case', false);
  const which = r.oneof(['exact', 'prefix', 'suffix', 'contains', 'safe_regex']);
  switch (which) {
    case 'exact':
    case 'prefix':
    case 'suffix':
    case 'contains': {
      const value = r.str(which) ?? '';
      if (which !== 'exact' && value === '') r.errs.add(r.p(which), 'must not be empty');
      return { kind: which, value: ignoreCase ? value.toLowerCase() : value, ignoreCase };
    }
    case 'safe_regex': {
      const regex = regexMatcher(r.obj_('safe_regex'), r.p('safe_regex'), errs);
      return regex ? { kind: 'regex', regex } : undefined;
    }
    default:
      errs.add(path, 'string matcher needs one of exact, prefix, suffix, contains, safe_regex');
      return undefined;
  }
}

export function dataSource(r: Reader | undefined, path: string, errs: Errors): DataSourceModel | undefined {
  if (!r) {
    errs.add(path, 'missing data source');
    return undefined;
  }
  const which = r.oneof(['inline_string', 'inline_bytes', 'filename', 'environment_variable']);
  switch (which) {
    case 'inline_string':
      return { kind: 'inline', data: r.str('inline_string') ?? '' };
    case 'inline_bytes': {
      const b = r.str('inline_bytes') ?? '';
      return { kind: 'inline', data: Buffer.from(b, 'base64').toString('utf8') };
    }
    case 'filename':
      return { kind: 'file', path: r.str('filename') ?? '' };
    case 'environment_variable':
      errs.add(r.p('environment_variable'), 'environment_variable data sources are not supported');
      return undefined;
    default:
      errs.add(path, 'data source needs one of inline_string, inline_bytes, filename');
      return undefined;
  }
}

const APPEND_ACTIONS: readonly HeaderAppendAction[] = [
  'APPEND_IF_EXISTS_OR_ADD',
  'ADD_IF_ABSENT',
  'OVERWRITE_IF_EXISTS_OR_ADD',
  'OVERWRITE_IF_EXISTS',
];

/** `v` as the one-byte-per-character string of its UTF-8 bytes; CR, LF and NUL are errors at `path`. */
function wireBytes(v: string, path: string, errs: Errors): string {
  // eslint-disable-next-line no-control-regex
  const bytes = /[^\x00-\x7f]/.test(v) ? Buffer.from(v, 'utf8').toString('latin1') : v;
  noCrLfNul(bytes, path, errs);
  return bytes;
}

function noCrLfNul(bytes: string, path: string, errs: Errors): void {
  if (/[\r\n\0]/.test(bytes)) errs.add(path, 'must not contain CR, LF or NUL');
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

export function headerValueOptions(r: Reader, key: string): HeaderValueOptionModel[] {
  const out: HeaderValueOptionModel[] = [];
  for (const o of r.objs(key)) {
    const h = o.obj_('header');
    if (!h) {
      o.errs.add(o.p('header'), 'missing header');
      continue;
    }
    const name = (h.str('key') ?? '').toLowerCase();
    if (!HEADER_NAME.test(name)) h.errs.add(h.p('key'), `invalid header name ${JSON.stringify(name)}`);
    else if (name.startsWith(':') || name === 'host') h.errs.add(h.p('key'), `${name} cannot be modified this way`);
    // A head is a plain object, which cannot hold this field (ADR 0151): a NACK, not a silent no-op.
    else if (name === '__proto__') h.errs.add(h.p('key'), 'header name __proto__ is not supported');
    let value: string;
    if (h.has('raw_value')) {
      value = Buffer.from(h.str('raw_value') ?? '', 'base64').toString('latin1');
      noCrLfNul(value, h.p('raw_value'), h.errs);
    } else value = h.wire('value') ?? '';
    // Legacy `append` (BoolValue, default true) maps onto append_action, as Envoy does.
    let appendAction: HeaderAppendAction;
    if (o.has('append')) {
      if (o.has('append_action')) o.errs.add(o.path, 'append and append_action cannot both be set');
      appendAction = o.bool('append', true) ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD';
    } else {
      appendAction = o.enum_('append_action', APPEND_ACTIONS, 'APPEND_IF_EXISTS_OR_ADD');
    }
    out.push({ key: name, value, appendAction, keepEmptyValue: o.bool('keep_empty_value', false) });
  }
  return out;
}

function headerNames(r: Reader, key: string): string[] {
  return r.strs(key).map((s, i) => {
    const n = s.toLowerCase();
    if (!HEADER_NAME.test(n)) r.errs.add(join(r.p(key), i), `invalid header name ${JSON.stringify(s)}`);
    return n;
  });
}

export function headerMutations(r: Reader): HeaderMutationsModel {
  return {
    requestHeadersToAdd: headerValueOptions(r, 'request_headers_to_add'),
    requestHeadersToRemove: headerNames(r, 'request_headers_to_remove'),
    responseHeadersToAdd: headerValueOptions(r, 'response_headers_to_add'),
    responseHeadersToRemove: headerNames(r, 'response_headers_to_remove'),
  };
}

export const NO_MUTATIONS: HeaderMutationsModel = {
  requestHeadersToAdd: [],
  requestHeadersToRemove: [],
  responseHeadersToAdd: [],
  responseHeadersToRemove: [],
};

// ---------------------------------------------------------------------------------------------
// TLS pieces
// ---------------------------------------------------------------------------------------------

const SAN_TYPES: readonly SanType[] = ['URI', 'DNS', 'EMAIL', 'IP_ADDRESS', 'OTHER_NAME'];

export function tlsCertificate(r: Reader): TlsCertificateModel | undefined {
  const chain = dataSource(r.obj_('certificate_chain'), r.p('certificate_chain'), r.errs);
  const key = dataSource(r.obj_('private_key'), r.p('private_key'), r.errs);
  return chain && key ? { certificateChain: chain, privateKey: key } : undefined;
}

export function validationContext(r: Reader, requireCa: boolean): ValidationContextModel {
  let trustedCa: DataSourceModel | null = null;
  if (r.has('trusted_ca')) trustedCa = dataSource(r.obj_('trusted_ca'), r.p('trusted_ca'), r.errs) ?? null;
  else if (requireCa) r.errs.add(r.p('trusted_ca'), 'missing trusted CA');
  const matchSans: SanMatcherModel[] = [];
  for (const m of r.objs('match_typed_subject_alt_names')) {
    const sanType = m.enum_('san_type', SAN_TYPES, 'URI');
    if (!m.has('san_type')) m.errs.add(m.p('san_type'), 'missing san_type');
    const matcher = stringMatcher(m.obj_('matcher'), m.p('matcher'), m.errs);
    if (matcher) matchSans.push({ sanType, matcher });
  }
  // Deprecated form: match_subject_alt_names applies to any SAN type; Isle's identities are URIs.
  for (const m of r.objs('match_subject_alt_names')) {
    const matcher = stringMatcher(m, m.path, m.errs);
    if (matcher) matchSans.push({ sanType: 'URI', matcher });
  }
  return { trustedCa, matchSans };
}

function sdsName(r: Reader): string | undefined {
  const name = r.str('name');
  if (!name) r.errs.add(r.p('name'), 'missing SDS secret name');
  return name || undefined;
}

export interface CommonTls {
  certificates: TlsCertificateRef[];
  validation: ValidationContextRef | null;
  matchSans: SanMatcherModel[];
  alpnProtocols: string[];
}

/** CommonTlsContext: inline / SDS certificates, and plain / SDS / combined validation. */
export function commonTlsContext(r: Reader | undefined): CommonTls {
  const out: CommonTls = { certificates: [], validation: null, matchSans: [], alpnProtocols: [] };
  if (!r) return out;
  for (const c of r.objs('tls_certificates')) {
    const certificate = tlsCertificate(c);
    if (certificate) out.certificates.push({ kind: 'inline', certificate });
  }
  for (const c of r.objs('tls_certificate_sds_secret_configs')) {
    const name = sdsName(c);
    if (name) out.certificates.push({ kind: 'sds', name });
  }
  const which = r.oneof(['validation_context', 'validation_context_sds_secret_config', 'combined_validation_context']);
  if (which === 'validation_context') {
    const v = r.obj_('validation_context')!;
    const validation = validationContext(v, false);
    out.matchSans.push(...validation.matchSans);
    if (validation.trustedCa) out.validation = { kind: 'inline', validation };
  } else if (which === 'validation_context_sds_secret_config') {
    const name = sdsName(r.obj_('validation_context_sds_secret_config')!);
    if (name) out.validation = { kind: 'sds', name };
  } else if (which === 'combined_validation_context') {
    const c = r.obj_('combined_validation_context')!;
    const dflt = c.obj_('default_validation_context');
    if (dflt) {
      const v = validationContext(dflt, false);
      out.matchSans.push(...v.matchSans);
    } else c.errs.add(c.p('default_validation_context'), 'missing default_validation_context');
    const sds = c.obj_('validation_context_sds_secret_config');
    if (sds) {
      const name = sdsName(sds);
      if (name) out.validation = { kind: 'sds', name };
    } else c.errs.add(c.p('validation_context_sds_secret_config'), 'missing validation_context_sds_secret_config');
  }
  out.alpnProtocols = r.strs('alpn_protocols');
  return out;
}
