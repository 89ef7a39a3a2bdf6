/** The pure router: RouteConfigModel + request → what to do with it. */
import type {
  DataSourceModel,
  ForwardActionModel,
  HeaderMutationsModel,
  RetryPolicyModel,
  RouteConfigModel,
  RouteModel,
  VirtualHostModel,
  WeightedClusterModel,
} from '../model.js';
import { matchRoute, pathOnly, type RouteRequest } from './match.js';
import { selectVirtualHost, stripPort } from './vhost.js';

export type { RouteRequest } from './match.js';

/** Uniform in [0, 1). Inject a seeded PRNG in tests. */
export type Random = () => number;

export interface RouteOptions {
  random?: Random;
}

export interface ForwardResult {
  readonly kind: 'route';
  readonly virtualHost: VirtualHostModel;
  readonly route: RouteModel;
  readonly action: ForwardActionModel;
  /** The chosen cluster ('' when cluster_header names no cluster: treat as unknown). */
  readonly cluster: string;
  /** For weighted clusters: the chosen entry. */
  readonly weightedCluster: WeightedClusterModel | undefined;
  /** 0 = no timeout. */
  readonly timeoutMs: number;
  /** The route's policy, else the virtual host's; null = no retries. */
  readonly retryPolicy: RetryPolicyModel | null;
  /** Request target to send upstream (after prefix/regex rewrite; query kept). */
  readonly path: string;
  /** New Host / :authority, or undefined to keep it (auto_host_rewrite is the caller's). */
  readonly hostRewrite: string | undefined;
  /** Header mutations in Envoy's application order (weighted cluster, route, vhost, config). */
  readonly mutations: readonly HeaderMutationsModel[];
}

export interface RedirectResult {
  readonly kind: 'redirect';
  readonly virtualHost: VirtualHostModel;
  readonly route: RouteModel;
  readonly status: number;
  readonly location: string;
  readonly mutations: readonly HeaderMutationsModel[];
}

export interface DirectResult {
  readonly kind: 'direct';
  readonly virtualHost: VirtualHostModel;
  readonly route: RouteModel;
  readonly status: number;
  readonly body: DataSourceModel | undefined;
  readonly mutations: readonly HeaderMutationsModel[];
}

/** no-vhost and no-route are both 404 in Envoy (NR flag). */
export type RouteResult =
  | { readonly kind: 'no-vhost' }
  | { readonly kind: 'no-route'; readonly virtualHost: VirtualHostModel }
  | ForwardResult
  | RedirectResult
  | DirectResult;

export function route(config: RouteConfigModel, req: RouteRequest, opts: RouteOptions = {}): RouteResult {
  const vh = selectVirtualHost(config, req.authority);
  if (!vh) return { kind: 'no-vhost' };
  const rt = vh.routes.find((r) => matchRoute(r.match, req));
  if (!rt) return { kind: 'no-route', virtualHost: vh };
  const a = rt.action;
  const levels = [rt.mutations, vh.mutations, config.mutations];
  switch (a.kind) {
    case 'direct':
      return { kind: 'direct', virtualHost: vh, route: rt, status: a.status, body: a.body, mutations: levels };
    case 'redirect':
      return {
        kind: 'redirect',
        virtualHost: vh,
        route: rt,
        status: a.responseCode,
        location: redirectLocation(rt, req),
        mutations: levels,
      };
    case 'route': {
      let cluster = '';
      let weighted: WeightedClusterModel | undefined;
      const spec = a.cluster;
      if (spec.kind === 'cluster') cluster = spec.name;
      else if (spec.kind === 'weighted') {
        weighted = pickWeighted(spec.clusters, spec.totalWeight, opts.random ?? Math.random);
        cluster = weighted.name;
      } else {
        const v = req.headers[spec.header];
        cluster = typeof v === 'string' ? v : (v?.[0] ?? '');
      }
      return {
        kind: 'route',
        virtualHost: vh,
        route: rt,
        action: a,
        cluster,
        weightedCluster: weighted,
        timeoutMs: a.timeoutMs,
        retryPolicy: a.retryPolicy ?? vh.retryPolicy,
        path: rewritePath(rt, a, req.path),
        hostRewrite: weighted?.hostRewriteLiteral ?? a.hostRewriteLiteral,
        mutations: weighted ? [weighted.mutations, ...levels] : levels,
      };
    }
  }
}

/** Envoy picks `random % total_weight` and walks the cumulative weights. */
export function pickWeighted<T extends { weight: number }>(items: readonly T[], total: number, random: Random): T {
  let x = Math.floor(random() * total);
  for (const it of items) {
    if (x < it.weight) return it;
    x -= it.weight;
  }
  return items[items.length - 1]!;
}

/** RE2 `\1` substitutions → JS `$1`; literal `$` escaped. */
function jsSubstitution(s: string): string {
  return s.replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1');
}

function rewritePath(rt: RouteModel, a: ForwardActionModel, path: string): string {
  const p = pathOnly(path);
  const rest = path.slice(p.length);
  if (a.prefixRewrite !== undefined) {
    const m = rt.match.path;
    // Only prefix, path and path_separated_prefix matches can carry a prefix_rewrite.
    if (m.kind === 'regex') return path;
    return a.prefixRewrite + p.slice(m.value.length) + rest;
  }
  if (a.regexRewrite) {
    const re = a.regexRewrite.regex.re;
    re.lastIndex = 0;
    return p.replace(re, jsSubstitution(a.regexRewrite.substitution)) + rest;
  }
  return path;
}

function redirectLocation(rt: RouteModel, req: RouteRequest): string {
  const a = rt.action;
  if (a.kind !== 'redirect') throw new Error('not a redirect');
  const origScheme = (req.scheme ?? 'http').toLowerCase();
  const scheme = a.scheme ?? origScheme;
  let host = a.host ?? stripPort(req.authority);
  let port: string | undefined;
  if (a.port !== undefined) port = String(a.port);
  else if (a.host === undefined) {
    const orig = req.authority.slice(stripPort(req.authority).length + 1);
    // Envoy drops the port when the scheme changes and the port was the old scheme's default.
    if (orig && !(scheme !== origScheme && ((origScheme === 'http' && orig === '80') || (origScheme === 'https' && orig === '443')))) port = orig;
  }
  if (host.includes(':') && !host.startsWith('[') && port !== undefined) host = stripPort(host);
  const defaultPort = (scheme === 'http' && port === '80') || (scheme === 'https' && port === '443');
  const authority = port && !defaultPort ? `${host}:${port}` : host;
  const p = pathOnly(req.path);
  let query = req.path.slice(p.length);
  const hash = query.indexOf('#');
  if (hash >= 0) query = query.slice(0, hash);
  let newPath = p;
  if (a.path !== undefined) {
    // path_redirect may carry its own query, which replaces the request's.
    newPath = a.path;
    if (a.path.includes('?')) query = '';
  } else if (a.prefixRewrite !== undefined && rt.match.path.kind !== 'regex') {
    newPath = a.prefixRewrite + p.slice(rt.match.path.value.length);
  }
  if (a.stripQuery) query = '';
  return `${scheme}://${authority}${newPath}${query}`;
}
