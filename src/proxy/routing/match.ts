/** Envoy RouteMatch semantics: path specifiers, headers, query parameters, string matchers. */
import { ownHeader } from '../http1/head.js';
import type {
  HeaderMatcherModel,
  QueryParameterMatcherModel,
  RouteMatchModel,
  StringMatcherModel,
} from '../model.js';

export type HeaderValue = string | readonly string[] | undefined;

export interface RouteRequest {
  /** Host / :authority as received (may carry `:port`). */
  readonly authority: string;
  /** Request target: path plus optional `?query` (and `#fragment`, which is ignored). */
  readonly path: string;
  readonly method: string;
  /** Lower-case names. Multiple values are matched joined by `,`, as Envoy does. */
  readonly headers: Readonly<Record<string, HeaderValue>>;
  /** `http` (default) or `https`, for :scheme matches and redirects. */
  readonly scheme?: string;
}

/** The path without query string and fragment: what prefix/path/regex match against. */
export function pathOnly(path: string): string {
  const q = path.search(/[?#]/);
  return q < 0 ? path : path.slice(0, q);
}

export function matchString(m: StringMatcherModel, value: string): boolean {
  if (m.kind === 'regex') return m.regex.re.test(value);
  const v = m.ignoreCase ? value.toLowerCase() : value;
  switch (m.kind) {
    case 'exact':
      return v === m.value;
    case 'prefix':
      return v.startsWith(m.value);
    case 'suffix':
      return v.endsWith(m.value);
    case 'contains':
      return v.includes(m.value);
  }
}

function headerValue(req: RouteRequest, name: string): string | undefined {
  switch (name) {
    case ':authority':
      return req.authority;
    case ':path':
      return req.path;
    case ':method':
      return req.method;
    case ':scheme':
      return req.scheme ?? 'http';
  }
  // Own fields only: a matcher named `constructor` must not find Object.prototype's (ADR 0151).
  const v = ownHeader(req.headers, name);
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.length ? v.join(',') : undefined;
}

/** Envoy HeaderUtility::matchHeaders for one matcher. */
export function matchHeader(h: HeaderMatcherModel, req: RouteRequest): boolean {
  let value = headerValue(req, h.name);
  if (value === undefined) {
    if (!h.treatMissingAsEmpty) {
      // A missing header fails every value matcher, even inverted ones; only presence checks
      // can succeed (present_match: false, or an inverted present_match: true).
      if (h.spec.kind !== 'present') return false;
      return h.invert ? h.spec.present : !h.spec.present;
    }
    value = '';
  }
  let ok: boolean;
  switch (h.spec.kind) {
    case 'present':
      ok = h.spec.present;
      break;
    case 'string':
      ok = matchString(h.spec.matcher, value);
      break;
    case 'range': {
      if (!/^-?\d+$/.test(value)) ok = false;
      else {
        const n = Number(value);
        ok = n >= h.spec.start && n < h.spec.end;
      }
      break;
    }
  }
  return ok !== h.invert;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** First value per name, percent-decoded, as Envoy's query parameter matching. */
export function parseQuery(path: string): Map<string, string> {
  const out = new Map<string, string>();
  const q = path.indexOf('?');
  if (q < 0) return out;
  const h = path.indexOf('#', q);
  const qs = path.slice(q + 1, h < 0 ? undefined : h);
  for (const part of qs.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = decode(eq < 0 ? part : part.slice(0, eq));
    if (!out.has(k)) out.set(k, eq < 0 ? '' : decode(part.slice(eq + 1)));
  }
  return out;
}

function matchQuery(qm: QueryParameterMatcherModel, query: Map<string, string>): boolean {
  const v = query.get(qm.name);
  if (v === undefined) return false;
  return qm.matcher === null || matchString(qm.matcher, v);
}

/** Full RouteMatch: path specifier, then headers, then query parameters (all must hold). */
export function matchRoute(m: RouteMatchModel, req: RouteRequest): boolean {
  const path = pathOnly(req.path);
  const p = m.path;
  switch (p.kind) {
    case 'prefix':
      if (m.caseSensitive ? !path.startsWith(p.value) : !path.toLowerCase().startsWith(p.value.toLowerCase())) return false;
      break;
    case 'path':
      if (m.caseSensitive ? path !== p.value : path.toLowerCase() !== p.value.toLowerCase()) return false;
      break;
    case 'regex':
      if (!p.regex.re.test(path)) return false;
      break;
    case 'path-separated-prefix': {
      const a = m.caseSensitive ? path : path.toLowerCase();
      const b = m.caseSensitive ? p.value : p.value.toLowerCase();
      if (!(a === b || (a.startsWith(b) && a[b.length] === '/'))) return false;
      break;
    }
  }
  for (const h of m.headers) if (!matchHeader(h, req)) return false;
  if (m.queryParameters.length) {
    const q = parseQuery(req.path);
    for (const qm of m.queryParameters) if (!matchQuery(qm, q)) return false;
  }
  return true;
}
