/**
 * Small hand-written validation combinators. Each check looks at a plain JS value (what `yaml`
 * gives back) at a field path and records issues; the parser maps each path back to a source line.
 * A check never throws and keeps going after a problem, so one pass reports everything.
 */
import type { Severity } from './types.js';

export type PathSeg = string | number;
export type Path = readonly PathSeg[];

export interface Issue {
  severity: Severity;
  path: Path;
  message: string;
}

/** Collects issues for one resource. */
export class Checker {
  readonly issues: Issue[] = [];
  error(path: Path, message: string): void {
    this.issues.push({ severity: 'error', path, message });
  }
  warn(path: Path, message: string): void {
    this.issues.push({ severity: 'warning', path, message });
  }
  get errorCount(): number {
    return this.issues.filter((i) => i.severity === 'error').length;
  }
}

/** Returns false when the value is unusable (wrong type), so callers can skip dependent checks. */
export type Check = (c: Checker, v: unknown, p: Path) => boolean;

const SIMPLE_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `spec.http[0].route`, with odd keys quoted: `to["region1/*"]`. */
export function formatPath(p: Path): string {
  let s = '';
  for (const seg of p) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (SIMPLE_KEY.test(seg)) s += s ? `.${seg}` : seg;
    else s += `[${JSON.stringify(seg)}]`;
  }
  return s;
}

export function describe(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Absent and null mean the same thing in Kubernetes-style config: not set. */
export function isSet(v: unknown): boolean {
  return v !== undefined && v !== null;
}

// ---------------------------------------------------------------- scalars

export const any: Check = () => true;

export function str(opts: { pattern?: RegExp; what?: string; nonEmpty?: boolean; check?: (s: string) => string | undefined } = {}): Check {
  return (c, v, p) => {
    if (typeof v !== 'string') {
      c.error(p, `expected a string (got ${describe(v)})`);
      return false;
    }
    if (opts.nonEmpty && v === '') {
      c.error(p, 'must not be empty');
      return false;
    }
    if (opts.pattern && !opts.pattern.test(v)) {
      c.error(p, `invalid ${opts.what ?? 'value'} ${JSON.stringify(v)}`);
      return false;
    }
    if (opts.check) {
      const msg = opts.check(v);
      if (msg) {
        c.error(p, msg);
        return false;
      }
    }
    return true;
  };
}

/** Istio's integer fields are (u)int32 protobuf fields: a larger number is a typo, never a setting. */
export const INT32_MAX = 2_147_483_647;

/** An integer, at most INT32_MAX unless `max` says otherwise. */
export function int(opts: { min?: number; max?: number } = {}): Check {
  const explicitMax = opts.max !== undefined;
  opts = { ...opts, max: opts.max ?? INT32_MAX };
  return (c, v, p) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      c.error(p, `expected an integer (got ${describe(v)})`);
      return false;
    }
    if (opts.min !== undefined && explicitMax && (v < opts.min || v > opts.max!)) {
      c.error(p, `must be between ${opts.min} and ${opts.max} (got ${v})`);
      return false;
    }
    if (opts.min !== undefined && v < opts.min) {
      c.error(p, `must be at least ${opts.min} (got ${v})`);
      return false;
    }
    if (opts.max !== undefined && v > opts.max) {
      c.error(p, `must be at most ${opts.max} (got ${v})`);
      return false;
    }
    return true;
  };
}

export function num(opts: { min?: number; max?: number } = {}): Check {
  return (c, v, p) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      c.error(p, `expected a number (got ${describe(v)})`);
      return false;
    }
    if ((opts.min !== undefined && v < opts.min) || (opts.max !== undefined && v > opts.max)) {
      c.error(p, `must be between ${opts.min ?? '-inf'} and ${opts.max ?? 'inf'} (got ${v})`);
      return false;
    }
    return true;
  };
}

export const bool: Check = (c, v, p) => {
  if (typeof v !== 'boolean') {
    c.error(p, `expected true or false (got ${describe(v)})`);
    return false;
  }
  return true;
};

export function enumOf(values: readonly string[], opts: { ignoreCase?: boolean } = {}): Check {
  const norm = (s: string) => (opts.ignoreCase ? s.toUpperCase() : s);
  const set = new Set(values.map(norm));
  return (c, v, p) => {
    if (typeof v !== 'string' || !set.has(norm(v))) {
      c.error(p, `must be one of ${values.join(', ')} (got ${describe(v)})`);
      return false;
    }
    return true;
  };
}

export const port: Check = int({ min: 1, max: 65535 });

export const percent: Check = num({ min: 0, max: 100 });

// ---------------------------------------------------------------- durations

const DURATION = /^(?:\d+(?:\.\d+)?|\.\d+)(?:ns|us|µs|ms|s|m|h)$/;
const DURATION_PART = /(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h)/g;
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration as Istio writes them (Go `time.ParseDuration` syntax: `10s`, `600ms`, `1h`,
 * `1.5s`, `1h30m`). Returns milliseconds, or undefined when the text is not a duration.
 */
export function parseDuration(s: string): number | undefined {
  const t = s.trim();
  if (t === '') return undefined;
  let rest = t;
  let ms = 0;
  for (const m of t.matchAll(DURATION_PART)) {
    const part = m[0];
    if (!DURATION.test(part)) return undefined;
    ms += Number(m[1]) * UNIT_MS[m[2]!]!;
    rest = rest.replace(part, '');
  }
  return rest === '' ? ms : undefined;
}

/** The largest google.protobuf.Duration (10,000 years), what Istio's validation accepts at most. */
export const MAX_DURATION_MS = 315_576_000_000_000;

/** Istio rejects durations under 1ms; a bare number is the most common slip (`timeout: 10`). */
export function duration(opts: { minMs?: number } = {}): Check {
  const minMs = opts.minMs ?? 1;
  return (c, v, p) => {
    const ms = typeof v === 'string' ? parseDuration(v) : undefined;
    if (ms === undefined) {
      c.error(p, `invalid duration ${describe(v)} (use a number and a unit: 10s, 600ms, 1h, 1.5s)`);
      return false;
    }
    if (ms < minMs) {
      c.error(p, `duration must be at least ${minMs}ms (got ${describe(v)})`);
      return false;
    }
    if (ms > MAX_DURATION_MS) {
      c.error(p, `duration out of range: must be between ${minMs}ms and ${MAX_DURATION_MS / 1000}s (got ${describe(v)})`);
      return false;
    }
    return true;
  };
}

// ---------------------------------------------------------------- names and addresses

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}
export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}

export const dnsLabel: Check = str({
  check: (s) =>
    isDns1123Label(s) ? undefined : `invalid name ${JSON.stringify(s)} (must be a DNS-1123 label: lowercase letters, digits and '-', at most 63 characters)`,
});

export const dnsSubdomain: Check = str({
  check: (s) =>
    isDns1123Subdomain(s)
      ? undefined
      : `invalid name ${JSON.stringify(s)} (must be a DNS-1123 name: lowercase letters, digits, '-' and '.', at most 253 characters)`,
});

const HOST_LABEL = /^[A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?$/;

/** A host as Istio accepts it: an FQDN or short name, optionally `*.`-prefixed, or `*` alone. */
export function isWildcardHost(s: string): boolean {
  if (s === '*') return true;
  const rest = s.startsWith('*.') ? s.slice(2) : s;
  if (rest === '' || rest.length > 253) return false;
  return rest.split('.').every((l) => l.length <= 63 && HOST_LABEL.test(l));
}

export const host: Check = str({
  check: (s) => (isWildcardHost(s) || isIP(s) ? undefined : `invalid host ${JSON.stringify(s)}`),
});

export function isIPv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((x) => /^\d{1,3}$/.test(x) && Number(x) <= 255);
}

export function isIPv6(s: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(s) || !s.includes(':')) return false;
  const dbl = s.split('::');
  if (dbl.length > 2) return false;
  const groups = s.split(':').filter((g) => g !== '');
  let n = 0;
  for (const [i, g] of groups.entries()) {
    if (i === groups.length - 1 && g.includes('.')) {
      if (!isIPv4(g)) return false;
      n += 2;
    } else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) n += 1;
    else return false;
  }
  return dbl.length === 2 ? n < 8 : n === 8;
}

export function isIP(s: string): boolean {
  return isIPv4(s) || isIPv6(s);
}

export function isCIDR(s: string): boolean {
  const [addr, bits, extra] = s.split('/');
  if (extra !== undefined || addr === undefined) return false;
  if (bits === undefined) return isIP(addr);
  if (!/^\d{1,3}$/.test(bits)) return false;
  return isIPv4(addr) ? Number(bits) <= 32 : isIPv6(addr) && Number(bits) <= 128;
}

export const ipOrCidr: Check = str({ check: (s) => (isCIDR(s) ? undefined : `invalid IP address or CIDR ${JSON.stringify(s)}`) });

/** `region/zone/subzone`, each part optional from the right. */
export function isLocality(s: string, allowWildcard = false): boolean {
  const parts = s.split('/');
  if (parts.length > 3 || parts.some((x) => x === '')) return false;
  return parts.every((x, i) => (x === '*' ? allowWildcard && i === parts.length - 1 : !x.includes('*')));
}

export const locality: Check = str({
  check: (s) => (isLocality(s) ? undefined : `invalid locality ${JSON.stringify(s)} (use region/zone/subzone)`),
});

// ---------------------------------------------------------------- Kubernetes labels

const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export function isQualifiedName(s: string): boolean {
  const slash = s.lastIndexOf('/');
  const name = slash >= 0 ? s.slice(slash + 1) : s;
  const prefix = slash >= 0 ? s.slice(0, slash) : undefined;
  if (prefix !== undefined && !isDns1123Subdomain(prefix)) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

export function isLabelValue(s: string): boolean {
  return s === '' || (s.length <= 63 && LABEL_NAME.test(s));
}

/** Kubernetes labels: string keys and string values (an unquoted `1` or `true` is the usual slip). */
export const labels: Check = (c, v, p) => {
  if (!isObject(v)) {
    c.error(p, `expected a mapping of labels (got ${describe(v)})`);
    return false;
  }
  let ok = true;
  for (const [k, val] of Object.entries(v)) {
    if (!isQualifiedName(k)) {
      c.error([...p, k], `invalid label key ${JSON.stringify(k)}`);
      ok = false;
    } else if (typeof val !== 'string') {
      c.error([...p, k], `label value must be a string (got ${describe(val)}; quote it)`);
      ok = false;
    } else if (!isLabelValue(val)) {
      c.error([...p, k], `invalid label value ${JSON.stringify(val)}`);
      ok = false;
    }
  }
  return ok;
};

// ---------------------------------------------------------------- collections

export function arr(item: Check, opts: { min?: number; unique?: boolean } = {}): Check {
  return (c, v, p) => {
    if (!Array.isArray(v)) {
      c.error(p, `expected a list (got ${describe(v)})`);
      return false;
    }
    if (opts.min !== undefined && v.length < opts.min) {
      c.error(p, opts.min === 1 ? 'must not be empty' : `must have at least ${opts.min} items`);
      return false;
    }
    let ok = true;
    const seen = new Map<string, number>();
    v.forEach((x, i) => {
      if (!item(c, x, [...p, i])) ok = false;
      else if (opts.unique && typeof x === 'string') {
        if (seen.has(x)) c.error([...p, i], `duplicate value ${JSON.stringify(x)}`);
        seen.set(x, i);
      }
    });
    return ok;
  };
}

export function mapOf(value: Check, key?: (k: string) => string | undefined): Check {
  return (c, v, p) => {
    if (!isObject(v)) {
      c.error(p, `expected a mapping (got ${describe(v)})`);
      return false;
    }
    let ok = true;
    for (const [k, val] of Object.entries(v)) {
      const msg = key?.(k);
      if (msg) {
        c.error([...p, k], msg);
        ok = false;
      }
      if (!value(c, val, [...p, k])) ok = false;
    }
    return ok;
  };
}

export interface ObjOptions {
  required?: string[];
  /** At most one of each group may be set. */
  exclusive?: string[][];
  /** Cross-field rules; runs after the field checks, whatever they found. */
  check?: (c: Checker, v: Record<string, unknown>, p: Path) => void;
  /** Fields accepted without a look (Kubernetes bookkeeping, Istio fields Isle does not use). */
  passthrough?: string[];
  /**
   * Unknown fields are errors, not warnings: for config whose unknown fields are real Istio
   * fields Isle does not enforce (Telemetry, MeshConfig tracing), which must never pass silently.
   */
  strict?: boolean;
}

/** A mapping with known fields. Unknown fields are a warning: usually a typo, never fatal. */
export function obj(fields: Record<string, Check>, opts: ObjOptions = {}): Check {
  const known = Object.keys(fields);
  // A Map, not `fields[k]`: input keys such as `__proto__` or `valueOf` would find Object.prototype's members.
  const table = new Map(Object.entries(fields));
  const pass = new Set(opts.passthrough ?? []);
  return (c, v, p) => {
    if (!isObject(v)) {
      c.error(p, `expected a mapping (got ${describe(v)})`);
      return false;
    }
    let ok = true;
    for (const r of opts.required ?? []) {
      if (!isSet(v[r])) {
        c.error([...p, r], 'missing required field');
        ok = false;
      }
    }
    for (const group of opts.exclusive ?? []) {
      const present = group.filter((g) => isSet(v[g]));
      if (present.length > 1) {
        c.error([...p, present[1]!], `cannot set both ${present[0]} and ${present[1]}`);
        ok = false;
      }
    }
    for (const [k, val] of Object.entries(v)) {
      const f = table.get(k);
      if (f) {
        if (isSet(val) && !f(c, val, [...p, k])) ok = false;
      } else if (!pass.has(k)) {
        const guess = closest(k, known);
        const msg = guess ? `unknown field (did you mean "${guess}"?)` : 'unknown field';
        if (opts.strict) {
          c.error([...p, k], `${msg}; not supported by Isle (supported: ${known.join(', ')})`);
          ok = false;
        } else c.warn([...p, k], msg);
      }
    }
    // Cross-field rules run even after field errors (every problem reported), so they must
    // tolerate values of the wrong type.
    opts.check?.(c, v, p);
    return ok;
  };
}

/** Exactly one (or, with `optional`, at most one) of the fields must be set. */
export function oneOf(fields: string[], what = 'one of'): (c: Checker, v: Record<string, unknown>, p: Path) => void {
  return (c, v, p) => {
    const present = fields.filter((f) => isSet(v[f]));
    if (present.length !== 1) c.error(p, `must set exactly ${what} ${fields.join(', ')}`);
  };
}

/** The candidate within a small edit distance of `word` (a typo), if any. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const cand of candidates) {
    const d = editDistance(word.toLowerCase(), cand.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = cand;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 4)) ? best : undefined;
}

/** Optimal string alignment distance: a swapped pair of letters (`wieght`) counts as one edit. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
