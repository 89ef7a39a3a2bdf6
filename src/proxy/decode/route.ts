/** RouteConfiguration (RDS, or inline in an HCM) → RouteConfigModel. */
import type {
  ClusterSpecifierModel,
  DecodeResult,
  FaultModel,
  FractionModel,
  MirrorPolicyModel,
  ForwardActionModel,
  LocalRateLimitModel,
  PathMatchModel,
  QueryParameterMatcherModel,
  RedirectActionModel,
  RetryOn,
  RetryPolicyModel,
  RouteActionModel,
  RouteConfigModel,
  RouteMatchModel,
  RouteModel,
  VirtualHostModel,
  WeightedClusterModel,
} from '../model.js';
import {
  Errors,
  NO_MUTATIONS,
  Reader,
  compileSearchRegex,
  dataSource,
  describe,
  headerMutations,
  isObj,
  regexMatcher,
  stringMatcher,
} from './util.js';
import { fractionalPercent, headerMatcher } from './matchers.js';
import { LOCAL_RATELIMIT_FILTER, LOCAL_RATELIMIT_TYPE, localRateLimit, rateLimitPolicies } from './ratelimit.js';

/** Envoy's route timeout when `timeout` is unset. */
export const DEFAULT_ROUTE_TIMEOUT_MS = 15_000;

export const RETRY_ON_VALUES: readonly RetryOn[] = [
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'retriable-headers',
  'http3-post-connect-failure',
  'envoy-ratelimited',
  'reset-before-request',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
];

export function decodeRouteConfig(obj: unknown): DecodeResult<RouteConfigModel> {
  const name = isObj(obj) && typeof obj['name'] === 'string' ? obj['name'] : '';
  if (!isObj(obj)) return { errors: [`route_config: expected an object, got ${describe(obj)}`] };
  if (!name) return { errors: ['route_config without a name'] };
  const errs = new Errors(`route_config ${JSON.stringify(name)}`);
  const model = routeConfigBody(new Reader(obj, '', errs));
  return errs.any ? { errors: errs.list } : { ok: model };
}

/** Shared with inline `route_config` in an HCM, where errors carry the listener's path. */
export function routeConfigBody(r: Reader): RouteConfigModel {
  const seenDomains = new Map<string, number>();
  const virtualHosts = r.objs('virtual_hosts').map((v, i) => virtualHost(v, i, seenDomains));
  const seenNames = new Set<string>();
  virtualHosts.forEach((v, i) => {
    if (v.name && seenNames.has(v.name)) r.errs.add(r.p(`virtual_hosts[${i}].name`), `duplicate virtual host name ${JSON.stringify(v.name)}`);
    seenNames.add(v.name);
  });
  unsupported(r, ['vhds', 'cluster_specifier_plugins']);
  return {
    name: r.str('name') ?? '',
    virtualHosts,
    mutations: headerMutations(r),
    // Envoy's default for RDS is false; for inline it is true, but Istio always sets it.
    validateClusters: r.bool('validate_clusters', false),
    ignorePortInHostMatching: r.bool('ignore_port_in_host_matching', false),
  };
}

function unsupported(r: Reader, keys: readonly string[]): void {
  for (const k of keys) if (r.has(k)) r.errs.add(r.p(k), 'is not supported by isle proxy');
}

function validDomain(d: string): string | undefined {
  if (d === '*') return undefined;
  const stars = d.split('*').length - 1;
  if (stars > 1) return 'only one wildcard is allowed';
  if (stars === 1 && !d.startsWith('*') && !d.endsWith('*')) return 'a wildcard must be at the start or end';
  if (d === '') return 'must not be empty';
  if (/[\s/]/.test(d)) return 'must not contain whitespace or "/"';
  return undefined;
}

function virtualHost(r: Reader, index: number, seen: Map<string, number>): VirtualHostModel {
  const name = r.str('name') ?? '';
  if (!name) r.errs.add(r.p('name'), 'virtual host without a name');
  const domains = r.strs('domains').map((d) => d.toLowerCase());
  if (domains.length === 0) r.errs.add(r.p('domains'), 'at least one domain is required');
  domains.forEach((d, i) => {
    const bad = validDomain(d);
    if (bad) r.errs.add(r.p(`domains[${i}]`), `invalid domain ${JSON.stringify(d)}: ${bad}`);
    // Envoy refuses a domain that two virtual hosts claim: which one wins would be arbitrary.
    const other = seen.get(d);
    if (other !== undefined) r.errs.add(r.p(`domains[${i}]`), `duplicate domain ${JSON.stringify(d)} (also in virtual_hosts[${other}])`);
    else seen.set(d, index);
  });
  const requireTls = r.enum_('require_tls', ['NONE', 'EXTERNAL_ONLY', 'ALL'] as const, 'NONE');
  if (requireTls !== 'NONE') r.errs.add(r.p('require_tls'), 'is not supported by isle proxy');
  // Per-filter config is honoured per route (fault injection, local rate limit) and per virtual
  // host (local rate limit only); anything else would be ignored.
  unsupported(r, ['virtual_clusters', 'matcher']);
  const vhRetry = r.obj_('retry_policy');
  const rateLimits = rateLimitPolicies(r);
  const localRateLimit = perFilterConfig(r, false).localRateLimit;
  return {
    name,
    domains,
    routes: r.objs('routes').map(route),
    mutations: headerMutations(r),
    retryPolicy: vhRetry ? retryPolicy(vhRetry) : null,
    ...(rateLimits.length ? { rateLimits } : {}),
    ...(localRateLimit ? { localRateLimit } : {}),
  };
}

function route(r: Reader): RouteModel {
  const m = r.obj_('match');
  let match: RouteMatchModel | undefined;
  if (!m) r.errs.add(r.p('match'), 'missing route match');
  else match = routeMatch(m);
  const which = r.oneof(['route', 'redirect', 'direct_response', 'filter_action', 'non_forwarding_action']);
  let action: RouteActionModel | undefined;
  switch (which) {
    case 'route':
      action = forwardAction(r.obj_('route')!, match);
      break;
    case 'redirect':
      action = redirectAction(r.obj_('redirect')!);
      break;
    case 'direct_response': {
      const d = r.obj_('direct_response')!;
      const status = d.int('status', 0, 0);
      if (status < 200 || status > 599) d.errs.add(d.p('status'), `status must be in [200, 599], got ${status}`);
      const body = d.has('body') ? dataSource(d.obj_('body'), d.p('body'), d.errs) : undefined;
      action = { kind: 'direct', status, body };
      break;
    }
    case undefined:
      r.errs.add(r.path, 'route needs one of route, redirect, direct_response');
      break;
    default:
      r.errs.add(r.p(which), 'is not supported by isle proxy');
  }
  const { fault, localRateLimit } = perFilterConfig(r, true);
  const ra = which === 'route' ? r.obj_('route') : undefined;
  const rateLimits = ra ? rateLimitPolicies(ra) : [];
  const includeVh = ra?.bool('include_vh_rate_limits', false) ?? false;
  const decorator = r.obj_('decorator');
  const operation = decorator?.str('operation');
  if (decorator && !operation) decorator.errs.add(decorator.p('operation'), 'must not be empty');
  if (decorator?.has('propagate') && !decorator.bool('propagate', true)) decorator.errs.add(decorator.p('propagate'), 'propagate: false is not supported by isle proxy');
  return {
    ...(operation ? { decorator: operation } : {}),
    name: r.str('name') ?? '',
    match: match ?? { path: { kind: 'prefix', value: '/' }, caseSensitive: true, headers: [], queryParameters: [] },
    action: action ?? { kind: 'direct', status: 500, body: undefined },
    mutations: headerMutations(r),
    ...(fault ? { fault } : {}),
    ...(rateLimits.length ? { rateLimits } : {}),
    ...(includeVh ? { includeVhRateLimits: true } : {}),
    ...(localRateLimit ? { localRateLimit } : {}),
  };
}

export const FAULT_FILTER = 'envoy.filters.http.fault';
export const HTTP_FAULT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';

/**
 * typed_per_filter_config of a route (fault, local rate limit) or a virtual host (local rate limit).
 * Any other key names a filter whose per-route behaviour Isle would silently skip, so it is refused.
 */
function perFilterConfig(r: Reader, isRoute: boolean): { fault?: FaultModel; localRateLimit?: LocalRateLimitModel } {
  const t = r.obj_('typed_per_filter_config');
  if (!t) return {};
  const out: { fault?: FaultModel; localRateLimit?: LocalRateLimitModel } = {};
  for (const key of Object.keys(t.obj)) {
    const want = key === FAULT_FILTER && isRoute ? HTTP_FAULT_TYPE : key === LOCAL_RATELIMIT_FILTER ? LOCAL_RATELIMIT_TYPE : undefined;
    if (!want) {
      t.errs.add(t.p(key), 'per-filter config is not supported by isle proxy');
      continue;
    }
    const c = t.obj_(key);
    if (!c) continue;
    const type = c.str('@type');
    if (type !== want) {
      c.errs.add(c.p('@type'), `expected ${want}, got ${JSON.stringify(type)}`);
      continue;
    }
    if (want === HTTP_FAULT_TYPE) out.fault = httpFault(c);
    else out.localRateLimit = localRateLimit(c);
  }
  return out;
}

const ALL: FractionModel = { numerator: 100, denominator: 100 };
/** An unset fault percentage is a zero FractionalPercent in Envoy: the fault never fires. */
const NEVER: FractionModel = { numerator: 0, denominator: 100 };

/** HTTPFault with fixed delays and fixed HTTP or gRPC aborts; header-driven faults and limits are refused. */
export function httpFault(r: Reader): FaultModel {
  let delay: FaultModel['delay'];
  const d = r.obj_('delay');
  if (d) {
    const ms = d.durationMs('fixed_delay');
    if (ms === undefined) d.errs.add(d.p('fixed_delay'), d.has('header_delay') ? 'header_delay is not supported by isle proxy' : 'missing fixed_delay');
    else if (ms < 0) d.errs.add(d.p('fixed_delay'), 'must not be negative');
    delay = { fixedDelayMs: Math.max(0, ms ?? 0), fraction: fractionalPercent(d.obj_('percentage'), NEVER) };
  }
  let abort: FaultModel['abort'];
  const a = r.obj_('abort');
  if (a) {
    const which = a.oneof(['http_status', 'grpc_status', 'header_abort']);
    const fraction = fractionalPercent(a.obj_('percentage'), NEVER);
    if (which === 'grpc_status') {
      const g = a.int('grpc_status', 0);
      // Envoy answers a grpc_status abort with HTTP 200 (and the status, to a gRPC request).
      abort = { httpStatus: 200, grpcStatus: g, fraction };
    } else {
      if (which !== 'http_status') a.errs.add(which ? a.p(which) : a.path, which ? 'is not supported by isle proxy' : 'abort needs http_status or grpc_status');
      const status = a.int('http_status', 0);
      if (which === 'http_status' && (status < 200 || status >= 600)) a.errs.add(a.p('http_status'), `must be in [200, 600), got ${status}`);
      abort = { httpStatus: status, fraction };
    }
  }
  // Each of these narrows or caps when a fault applies; ignoring one would inject too often.
  unsupported(r, ['headers', 'downstream_nodes', 'max_active_faults', 'response_rate_limit', 'upstream_cluster', 'filter_metadata']);
  // The *_runtime keys only name overrides in a runtime layer, which Isle has none of: harmless.
  return { delay, abort };
}

function mirrorPolicies(r: Reader): MirrorPolicyModel[] {
  return r.objs('request_mirror_policies').map((m) => {
    const which = m.oneof(['cluster', 'cluster_header']);
    if (which === 'cluster_header') m.errs.add(m.p('cluster_header'), 'is not supported by isle proxy');
    const cluster = m.str('cluster') ?? '';
    if (which !== 'cluster_header' && !cluster) m.errs.add(m.p('cluster'), 'must not be empty');
    const rf = m.obj_('runtime_fraction');
    return {
      cluster,
      fraction: rf ? fractionalPercent(rf.obj_('default_value'), NEVER) : ALL,
      keepHost: m.bool('disable_shadow_host_suffix_append', false),
    };
  });
}

function routeMatch(r: Reader): RouteMatchModel {
  const which = r.oneof(['prefix', 'path', 'safe_regex', 'path_separated_prefix', 'connect_matcher', 'path_match_policy']);
  let path: PathMatchModel = { kind: 'prefix', value: '/' };
  switch (which) {
    case 'prefix':
      path = { kind: 'prefix', value: r.str('prefix') ?? '' };
      break;
    case 'path':
      path = { kind: 'path', value: r.str('path') ?? '' };
      break;
    case 'safe_regex': {
      const regex = regexMatcher(r.obj_('safe_regex'), r.p('safe_regex'), r.errs);
      if (regex) path = { kind: 'regex', regex };
      break;
    }
    case 'path_separated_prefix': {
      const v = r.str('path_separated_prefix') ?? '';
      if (!/^[^?#]+[^?#/]$/.test(v)) {
        r.errs.add(r.p('path_separated_prefix'), `must match ^[^?#]+[^?#/]$, got ${JSON.stringify(v)}`);
      }
      path = { kind: 'path-separated-prefix', value: v };
      break;
    }
    case undefined:
      r.errs.add(r.path, 'route match needs one of prefix, path, safe_regex, path_separated_prefix');
      break;
    default:
      r.errs.add(r.p(which), 'is not supported by isle proxy');
  }
  // Ignoring these would widen the match, so refuse them.
  unsupported(r, ['runtime_fraction', 'grpc', 'tls_context', 'dynamic_metadata', 'filter_state']);
  return {
    path,
    caseSensitive: r.bool('case_sensitive', true),
    headers: r.objs('headers').map(headerMatcher),
    queryParameters: r.objs('query_parameters').map(queryMatcher),
  };
}

function queryMatcher(r: Reader): QueryParameterMatcherModel {
  const name = r.str('name') ?? '';
  if (!name) r.errs.add(r.p('name'), 'query parameter matcher without a name');
  const which = r.oneof(['string_match', 'present_match']);
  if (which === 'string_match') {
    return { name, matcher: stringMatcher(r.obj_('string_match'), r.p('string_match'), r.errs) ?? null };
  }
  if (which === 'present_match' && !r.bool('present_match', true)) {
    r.errs.add(r.p('present_match'), 'present_match: false is not supported');
  }
  return { name, matcher: null };
}

function clusterSpecifier(r: Reader): ClusterSpecifierModel | undefined {
  const which = r.oneof(['cluster', 'weighted_clusters', 'cluster_header', 'cluster_specifier_plugin', 'inline_cluster_specifier_plugin']);
  switch (which) {
    case 'cluster': {
      const name = r.str('cluster') ?? '';
      if (!name) r.errs.add(r.p('cluster'), 'must not be empty');
      return { kind: 'cluster', name };
    }
    case 'cluster_header': {
      const header = (r.str('cluster_header') ?? '').toLowerCase();
      if (!header) r.errs.add(r.p('cluster_header'), 'must not be empty');
      return { kind: 'cluster-header', header };
    }
    case 'weighted_clusters': {
      const w = r.obj_('weighted_clusters')!;
      const clusters: WeightedClusterModel[] = [];
      for (const c of w.objs('clusters')) {
        const name = c.str('name') ?? '';
        if (!name) c.errs.add(c.p('name'), 'weighted cluster without a name');
        if (c.has('cluster_header')) c.errs.add(c.p('cluster_header'), 'is not supported by isle proxy');
        if (c.has('typed_per_filter_config')) c.errs.add(c.p('typed_per_filter_config'), 'is not supported by isle proxy');
        clusters.push({
          name,
          weight: c.int('weight', 0),
          mutations: headerMutations(c),
          hostRewriteLiteral: c.wire('host_rewrite_literal'),
        });
      }
      if (clusters.length === 0) w.errs.add(w.p('clusters'), 'at least one cluster is required');
      const sum = clusters.reduce((a, c) => a + c.weight, 0);
      if (clusters.length > 0 && sum === 0) w.errs.add(w.p('clusters'), 'the sum of weights must be greater than 0');
      if (sum > 4294967295) w.errs.add(w.p('clusters'), `the sum of weights (${sum}) exceeds uint32`);
      if (w.has('total_weight')) {
        const total = w.int('total_weight', 0);
        if (total !== sum) w.errs.add(w.p('total_weight'), `total_weight ${total} does not match the sum of weights ${sum}`);
      }
      unsupported(w, ['runtime_key_prefix', 'header_name']);
      return { kind: 'weighted', clusters, totalWeight: sum };
    }
    case undefined:
      r.errs.add(r.path, 'route action needs one of cluster, weighted_clusters, cluster_header');
      return undefined;
    default:
      r.errs.add(r.p(which), 'is not supported by isle proxy');
      return undefined;
  }
}

export function retryPolicy(r: Reader): RetryPolicyModel {
  const retryOn = new Set<RetryOn>();
  const raw = r.str('retry_on') ?? '';
  for (const tok of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    if ((RETRY_ON_VALUES as readonly string[]).includes(tok)) retryOn.add(tok as RetryOn);
    else r.errs.add(r.p('retry_on'), `unknown retry_on value ${JSON.stringify(tok)}`);
  }
  const codes = new Set<number>();
  for (const { v, path } of r.arr('retriable_status_codes')) {
    if (typeof v === 'number' && Number.isInteger(v) && v >= 100 && v <= 599) codes.add(v);
    else r.errs.add(path, `expected an HTTP status code, got ${describe(v)}`);
  }
  let avoidPreviousHosts = false;
  for (const p of r.objs('retry_host_predicate')) {
    const n = p.str('name');
    if (n === 'envoy.retry_host_predicates.previous_hosts') avoidPreviousHosts = true;
    else p.errs.add(p.p('name'), `unsupported retry host predicate ${JSON.stringify(n)}`);
  }
  const perTry = r.durationMs('per_try_timeout') ?? 0;
  if (perTry < 0) r.errs.add(r.p('per_try_timeout'), 'must not be negative');
  let backoffBaseMs = 25;
  let backoffMaxMs = 250;
  const b = r.obj_('retry_back_off');
  if (b) {
    backoffBaseMs = b.durationMs('base_interval') ?? 0;
    if (backoffBaseMs <= 0) b.errs.add(b.p('base_interval'), 'must be greater than 0');
    backoffMaxMs = b.durationMs('max_interval') ?? backoffBaseMs * 10;
    if (backoffMaxMs < backoffBaseMs) b.errs.add(b.p('max_interval'), 'must be at least base_interval');
  }
  unsupported(r, ['retry_priority', 'rate_limited_retry_back_off', 'retriable_headers', 'retriable_request_headers']);
  return {
    retryOn,
    numRetries: r.int('num_retries', 1),
    perTryTimeoutMs: perTry,
    retriableStatusCodes: codes,
    avoidPreviousHosts,
    hostSelectionRetryMaxAttempts: r.int('host_selection_retry_max_attempts', 1, 0, Number.MAX_SAFE_INTEGER),
    backoffBaseMs,
    backoffMaxMs,
  };
}

const NOT_FOUND_CODES = { SERVICE_UNAVAILABLE: 503, NOT_FOUND: 404, INTERNAL_SERVER_ERROR: 500 } as const;

function forwardAction(r: Reader, match: RouteMatchModel | undefined): ForwardActionModel {
  const cluster = clusterSpecifier(r) ?? { kind: 'cluster', name: '' };
  const timeoutMs = r.durationMs('timeout') ?? DEFAULT_ROUTE_TIMEOUT_MS;
  if (timeoutMs < 0) r.errs.add(r.p('timeout'), 'must not be negative');
  const idleTimeoutMs = r.durationMs('idle_timeout') ?? 0;
  const rp = r.obj_('retry_policy');
  const prefixRewrite = r.wire('prefix_rewrite');
  let regexRewrite: ForwardActionModel['regexRewrite'];
  const rr = r.obj_('regex_rewrite');
  if (rr) {
    const p = rr.obj_('pattern');
    const regex = p ? compileSearchRegex(p.raw('regex'), p.p('regex'), rr.errs) : undefined;
    if (!p) rr.errs.add(rr.p('pattern'), 'missing pattern');
    if (regex) regexRewrite = { regex, substitution: rr.wire('substitution') ?? '' };
  }
  if (prefixRewrite !== undefined && rr) r.errs.add(r.path, 'cannot specify both prefix_rewrite and regex_rewrite');
  if (prefixRewrite !== undefined && match && match.path.kind === 'regex') {
    r.errs.add(r.p('prefix_rewrite'), 'prefix_rewrite cannot be used with a safe_regex match');
  }
  const host = r.oneof(['host_rewrite_literal', 'auto_host_rewrite', 'host_rewrite_header', 'host_rewrite_path_regex']);
  if (host === 'host_rewrite_header' || host === 'host_rewrite_path_regex') r.errs.add(r.p(host), 'is not supported by isle proxy');
  const nf = r.enum_('cluster_not_found_response_code', ['SERVICE_UNAVAILABLE', 'NOT_FOUND', 'INTERNAL_SERVER_ERROR'] as const, 'SERVICE_UNAVAILABLE');
  return {
    kind: 'route',
    cluster,
    timeoutMs,
    idleTimeoutMs,
    retryPolicy: rp ? retryPolicy(rp) : null,
    prefixRewrite,
    regexRewrite,
    hostRewriteLiteral: r.wire('host_rewrite_literal'),
    autoHostRewrite: r.bool('auto_host_rewrite', false),
    clusterNotFoundResponseCode: NOT_FOUND_CODES[nf],
    mirrorPolicies: mirrorPolicies(r),
    ...grpcTimeoutMax(r),
  };
}

/** The cap on grpc-timeout: max_stream_duration.grpc_timeout_header_max, else max_grpc_timeout. */
function grpcTimeoutMax(r: Reader): { grpcTimeoutHeaderMaxMs?: number } {
  const msd = r.obj_('max_stream_duration');
  if (msd) {
    if (msd.has('max_stream_duration') && (msd.durationMs('max_stream_duration') ?? 0) > 0) msd.errs.add(msd.p('max_stream_duration'), 'is not supported by isle proxy (only grpc_timeout_header_max)');
    if (msd.has('grpc_timeout_header_offset')) msd.errs.add(msd.p('grpc_timeout_header_offset'), 'is not supported by isle proxy');
    const max = msd.durationMs('grpc_timeout_header_max');
    if (max !== undefined) {
      if (max < 0) msd.errs.add(msd.p('grpc_timeout_header_max'), 'must not be negative');
      return { grpcTimeoutHeaderMaxMs: max };
    }
  }
  if (r.has('grpc_timeout_offset')) r.errs.add(r.p('grpc_timeout_offset'), 'is not supported by isle proxy');
  const legacy = r.durationMs('max_grpc_timeout');
  if (legacy === undefined) return {};
  if (legacy < 0) r.errs.add(r.p('max_grpc_timeout'), 'must not be negative');
  return { grpcTimeoutHeaderMaxMs: legacy };
}

const REDIRECT_CODES = {
  MOVED_PERMANENTLY: 301,
  FOUND: 302,
  SEE_OTHER: 303,
  TEMPORARY_REDIRECT: 307,
  PERMANENT_REDIRECT: 308,
} as const;

/** RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), compared case-insensitively. */
function redirectScheme(r: Reader): string | undefined {
  const s = r.str('scheme_redirect')?.toLowerCase();
  if (s !== undefined && !/^[a-z][a-z0-9+.-]*$/.test(s)) r.errs.add(r.p('scheme_redirect'), `invalid scheme ${JSON.stringify(s)}`);
  return s;
}

function redirectAction(r: Reader): RedirectActionModel {
  const scheme = r.oneof(['https_redirect', 'scheme_redirect']);
  const pathWhich = r.oneof(['path_redirect', 'prefix_rewrite', 'regex_rewrite']);
  if (pathWhich === 'regex_rewrite') r.errs.add(r.p('regex_rewrite'), 'is not supported by isle proxy');
  const code = r.enum_('response_code', Object.keys(REDIRECT_CODES) as (keyof typeof REDIRECT_CODES)[], 'MOVED_PERMANENTLY');
  const port = r.has('port_redirect') ? r.int('port_redirect', 0, 0, 65535) : undefined;
  return {
    kind: 'redirect',
    scheme: scheme === 'https_redirect' ? (r.bool('https_redirect', false) ? 'https' : undefined) : redirectScheme(r),
    host: r.wire('host_redirect'),
    port: port === 0 ? undefined : port,
    path: r.wire('path_redirect'),
    prefixRewrite: r.wire('prefix_rewrite'),
    responseCode: REDIRECT_CODES[code],
    stripQuery: r.bool('strip_query', false),
  };
}

export { NO_MUTATIONS, fractionalPercent, headerMatcher };
