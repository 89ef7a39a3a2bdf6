/**
 * Rate limit config → model: the `envoy.filters.http.local_ratelimit` and `envoy.filters.http.ratelimit`
 * HTTP filters, their per-route `typed_per_filter_config`, and `rate_limits` on routes and virtual
 * hosts. Every field Isle does not enforce is refused by name (NACK): a silently skipped
 * descriptor or stage would let traffic through that the config meant to limit.
 */
import type {
  FractionModel,
  GlobalRateLimitModel,
  HttpRateLimitFilterModel,
  LocalRateLimitModel,
  RateLimitActionModel,
  RateLimitPolicyModel,
  TokenBucketModel,
} from '../model.js';
import { headerMatcher, fractionalPercent } from './matchers.js';
import { headerValueOptions, type Reader } from './util.js';

export const LOCAL_RATELIMIT_FILTER = 'envoy.filters.http.local_ratelimit';
export const LOCAL_RATELIMIT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
export const RATELIMIT_FILTER = 'envoy.filters.http.ratelimit';
export const RATELIMIT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit';

/** Refuses every key not in `known` (`@type` is the Any's own). */
export function onlyKeys(r: Reader, known: readonly string[]): void {
  for (const k of Object.keys(r.obj)) {
    if (k === '@type' || known.includes(k) || r.obj[k] === undefined || r.obj[k] === null) continue;
    r.errs.add(r.p(k), 'is not supported by isle proxy');
  }
}

const NEVER: FractionModel = { numerator: 0, denominator: 100 };

/** RuntimeFractionalPercent: only its default_value counts (Isle has no runtime layer). */
function runtimeFraction(r: Reader | undefined): FractionModel {
  if (!r) return NEVER;
  onlyKeys(r, ['default_value', 'runtime_key']);
  return fractionalPercent(r.obj_('default_value'), NEVER);
}

function tokenBucket(r: Reader): TokenBucketModel {
  onlyKeys(r, ['max_tokens', 'tokens_per_fill', 'fill_interval']);
  if (!r.has('max_tokens')) r.errs.add(r.p('max_tokens'), 'is required');
  const maxTokens = r.int('max_tokens', 1, 1);
  const tokensPerFill = r.int('tokens_per_fill', 1, 1);
  const fillIntervalMs = r.durationMs('fill_interval');
  if (fillIntervalMs === undefined) r.errs.add(r.p('fill_interval'), 'is required');
  else if (fillIntervalMs < 50) r.errs.add(r.p('fill_interval'), `must be at least 50ms, got ${fillIntervalMs}ms`);
  return { maxTokens, tokensPerFill, fillIntervalMs: Math.max(50, fillIntervalMs ?? 1000) };
}

function httpStatus(r: Reader | undefined, dflt: number): number {
  if (!r) return dflt;
  onlyKeys(r, ['code']);
  const code = r.int('code', dflt, 200, 599);
  return code;
}

function xRateLimitHeaders(r: Reader): boolean {
  return r.enum_('enable_x_ratelimit_headers', ['OFF', 'DRAFT_VERSION_03'] as const, 'OFF') === 'DRAFT_VERSION_03';
}

export function localRateLimit(r: Reader): LocalRateLimitModel {
  onlyKeys(r, [
    'stat_prefix',
    'status',
    'token_bucket',
    'filter_enabled',
    'filter_enforced',
    'request_headers_to_add_when_not_enforced',
    'response_headers_to_add',
    'local_rate_limit_per_downstream_connection',
    'enable_x_ratelimit_headers',
    'always_consume_default_token_bucket',
    'stage',
    'descriptors',
  ]);
  const statPrefix = r.str('stat_prefix') ?? '';
  if (!statPrefix) r.errs.add(r.p('stat_prefix'), 'must not be empty');
  if (r.int('stage', 0, 0, 10) !== 0) r.errs.add(r.p('stage'), 'only stage 0 is supported by isle proxy');
  if (r.arr('descriptors').length > 0) r.errs.add(r.p('descriptors'), 'local rate limit descriptors are not supported by isle proxy');
  const tb = r.obj_('token_bucket');
  return {
    statPrefix,
    tokenBucket: tb ? tokenBucket(tb) : undefined,
    filterEnabled: runtimeFraction(r.obj_('filter_enabled')),
    filterEnforced: runtimeFraction(r.obj_('filter_enforced')),
    responseHeadersToAdd: headerValueOptions(r, 'response_headers_to_add'),
    requestHeadersWhenNotEnforced: headerValueOptions(r, 'request_headers_to_add_when_not_enforced'),
    perConnection: r.bool('local_rate_limit_per_downstream_connection', false),
    xRateLimitHeaders: xRateLimitHeaders(r),
    status: httpStatus(r.obj_('status'), 429),
  };
}

export function globalRateLimit(r: Reader): GlobalRateLimitModel {
  onlyKeys(r, [
    'domain',
    'stage',
    'request_type',
    'timeout',
    'failure_mode_deny',
    'rate_limit_service',
    'enable_x_ratelimit_headers',
    'disable_x_envoy_ratelimited_header',
    'rate_limited_status',
    'status_on_error',
    'stat_prefix',
  ]);
  const domain = r.str('domain') ?? '';
  if (!domain) r.errs.add(r.p('domain'), 'must not be empty');
  const timeoutMs = r.durationMs('timeout') ?? 20;
  if (timeoutMs <= 0) r.errs.add(r.p('timeout'), 'must be greater than 0');
  let cluster = '';
  let authority: string | undefined;
  const rls = r.obj_('rate_limit_service');
  if (!rls) r.errs.add(r.p('rate_limit_service'), 'is required');
  else {
    onlyKeys(rls, ['grpc_service', 'transport_api_version']);
    rls.enum_('transport_api_version', ['V3'] as const, 'V3');
    const gs = rls.obj_('grpc_service');
    if (!gs) rls.errs.add(rls.p('grpc_service'), 'is required');
    else {
      onlyKeys(gs, ['envoy_grpc', 'timeout']);
      const eg = gs.obj_('envoy_grpc');
      if (!eg) gs.errs.add(gs.p('envoy_grpc'), 'is required (google_grpc is not supported by isle proxy)');
      else {
        onlyKeys(eg, ['cluster_name', 'authority']);
        cluster = eg.str('cluster_name') ?? '';
        if (!cluster) eg.errs.add(eg.p('cluster_name'), 'must not be empty');
        authority = eg.str('authority');
      }
    }
  }
  const statusOnError = httpStatus(r.obj_('status_on_error'), 500);
  return {
    domain,
    stage: r.int('stage', 0, 0, 10),
    failureModeDeny: r.bool('failure_mode_deny', false),
    timeoutMs,
    cluster,
    authority,
    xRateLimitHeaders: xRateLimitHeaders(r),
    rateLimitedStatus: httpStatus(r.obj_('rate_limited_status'), 429),
    xEnvoyRateLimitedHeader: !r.bool('disable_x_envoy_ratelimited_header', false),
    requestType: r.enum_('request_type', ['internal', 'external', 'both'] as const, 'both'),
    statusOnError,
  };
}

function action(r: Reader): RateLimitActionModel | undefined {
  const which = r.oneof(['source_cluster', 'destination_cluster', 'request_headers', 'remote_address', 'generic_key', 'header_value_match']);
  onlyKeys(r, which ? [which] : []);
  switch (which) {
    case 'source_cluster':
      return { kind: 'source-cluster' };
    case 'destination_cluster':
      return { kind: 'destination-cluster' };
    case 'remote_address':
      return { kind: 'remote-address' };
    case 'request_headers': {
      const h = r.obj_('request_headers')!;
      onlyKeys(h, ['header_name', 'descriptor_key', 'skip_if_absent']);
      const headerName = (h.str('header_name') ?? '').toLowerCase();
      const descriptorKey = h.str('descriptor_key') ?? '';
      if (!headerName) h.errs.add(h.p('header_name'), 'must not be empty');
      if (!descriptorKey) h.errs.add(h.p('descriptor_key'), 'must not be empty');
      return { kind: 'request-headers', headerName, descriptorKey, skipIfAbsent: h.bool('skip_if_absent', false) };
    }
    case 'generic_key': {
      const g = r.obj_('generic_key')!;
      onlyKeys(g, ['descriptor_value', 'descriptor_key']);
      const descriptorValue = g.str('descriptor_value') ?? '';
      if (!descriptorValue) g.errs.add(g.p('descriptor_value'), 'must not be empty');
      return { kind: 'generic-key', descriptorKey: g.str('descriptor_key') || 'generic_key', descriptorValue };
    }
    case 'header_value_match': {
      const m = r.obj_('header_value_match')!;
      onlyKeys(m, ['descriptor_key', 'descriptor_value', 'expect_match', 'headers']);
      const descriptorValue = m.str('descriptor_value') ?? '';
      if (!descriptorValue) m.errs.add(m.p('descriptor_value'), 'must not be empty');
      const headers = m.objs('headers').map(headerMatcher);
      if (headers.length === 0) m.errs.add(m.p('headers'), 'at least one header matcher is required');
      return { kind: 'header-value-match', descriptorKey: m.str('descriptor_key') || 'header_match', descriptorValue, expectMatch: m.bool('expect_match', true), headers };
    }
    default:
      r.errs.add(r.path, 'unsupported rate limit action (isle proxy has source_cluster, destination_cluster, request_headers, remote_address, generic_key, header_value_match)');
      return undefined;
  }
}

/** `rate_limits` of a route action or a virtual host. */
export function rateLimitPolicies(r: Reader): RateLimitPolicyModel[] {
  return r.objs('rate_limits').map((p) => {
    onlyKeys(p, ['stage', 'disable_key', 'actions']);
    const actions = p.objs('actions').map(action).filter((a): a is RateLimitActionModel => a !== undefined);
    if (!p.has('actions') || p.arr('actions').length === 0) p.errs.add(p.p('actions'), 'at least one action is required');
    return { stage: p.int('stage', 0, 0, 10), disableKey: p.str('disable_key') || undefined, actions };
  });
}

/**
 * An HCM http_filters entry, if it is one of the rate limit filters (by name or type); `false` when
 * it is some other filter. A rate limit filter needs its typed_config.
 */
export function rateLimitHttpFilter(f: Reader): HttpRateLimitFilterModel | undefined | false {
  const name = f.str('name') ?? '';
  const c = f.obj_('typed_config');
  const type = c?.str('@type');
  const local = name === LOCAL_RATELIMIT_FILTER || type === LOCAL_RATELIMIT_TYPE;
  const global = name === RATELIMIT_FILTER || type === RATELIMIT_TYPE;
  if (!local && !global) return false;
  const want = local ? LOCAL_RATELIMIT_TYPE : RATELIMIT_TYPE;
  if (!c || type !== want) {
    f.errs.add(c ? c.p('@type') : f.p('typed_config'), `expected a typed_config of ${want}, got ${JSON.stringify(type)}`);
    return undefined;
  }
  return local ? { kind: 'local', name, config: localRateLimit(c) } : { kind: 'global', name, config: globalRateLimit(c) };
}
