/**
 * The rate limit filters (`envoy.filters.http.local_ratelimit`, `envoy.filters.http.ratelimit`), in
 * the order the HCM lists them, just before the router (where Istio's EnvoyFilter examples insert
 * them). Without rate limit filters on the HCM nothing runs.
 *
 * - Local: a token bucket (proxy/ratelimit/bucket.ts) per filter, per route or virtual host config
 *   (typed_per_filter_config, which replaces the filter's), or per connection; 429
 *   `local_rate_limited` with flag RL and the configured response headers.
 * - Global: the route's `rate_limits` become descriptors; ShouldRateLimit to the service; OVER_LIMIT
 *   → 429 (flag RL, `x-envoy-ratelimited`); DRAFT_VERSION_03 headers on every answer when enabled.
 *   A failed call (service or Redis down, timeout) → `status_on_error` (500, flag RLSE) with
 *   failure_mode_deny, else the request goes on; either way counted and logged at most every 10 s.
 */
import { ownHeader, type Headers } from '../http1/head.js';
import type { GlobalRateLimitModel, HeaderValueOptionModel, HttpRateLimitFilterModel, LocalRateLimitModel } from '../model.js';
import { TokenBucket } from '../ratelimit/bucket.js';
import { RateLimitClients } from '../ratelimit/client.js';
import { descriptorsFor } from '../ratelimit/descriptors.js';
import { draft03Headers, localDraft03Headers } from '../ratelimit/headers.js';
import { hits } from '../routing/fault.js';
import type { ConnInfo, ListenerDeps } from '../listeners/context.js';
import type { Filter, HttpContext, Next } from './context.js';

export const rateLimitFilter: Filter = (ctx, next) => {
  const c = ctx.conn;
  const limits = (c.currentHcm ? c.currentHcm() : c.hcm)?.rateLimits;
  return limits ? runLimits(ctx, next, limits) : next(ctx);
};

async function runLimits(ctx: HttpContext, next: Next, limits: readonly HttpRateLimitFilterModel[]): Promise<void> {
  for (const f of limits) {
    const stop = f.kind === 'local' ? local(ctx, f.config) : await global(ctx, f.config);
    if (stop) return;
  }
  return next(ctx);
}

// ------------------------------------------------------------------------------ local

const buckets = new WeakMap<LocalRateLimitModel, TokenBucket>();
const connBuckets = new WeakMap<ConnInfo, WeakMap<LocalRateLimitModel, TokenBucket>>();

function bucketFor(ctx: HttpContext, cfg: LocalRateLimitModel): TokenBucket | undefined {
  const tb = cfg.tokenBucket;
  if (!tb) return undefined;
  let map: WeakMap<LocalRateLimitModel, TokenBucket> = buckets;
  if (cfg.perConnection) {
    let m = connBuckets.get(ctx.conn);
    if (!m) connBuckets.set(ctx.conn, (m = new WeakMap()));
    map = m;
  }
  let b = map.get(cfg);
  if (!b) {
    const timers = ctx.timers;
    map.set(cfg, (b = new TokenBucket(tb, () => timers.now())));
  }
  return b;
}

function addHeaders(h: Headers, list: readonly HeaderValueOptionModel[]): void {
  for (const o of list) {
    const cur = ownHeader(h, o.key);
    if (cur !== undefined && o.appendAction === 'APPEND_IF_EXISTS_OR_ADD') h[o.key] = Array.isArray(cur) ? [...cur, o.value] : [cur, o.value];
    else if (cur !== undefined && o.appendAction === 'ADD_IF_ABSENT') continue;
    else if (cur === undefined && o.appendAction === 'OVERWRITE_IF_EXISTS') continue;
    else h[o.key] = o.value;
  }
}

/** The route's config, else the virtual host's, else the filter's (Envoy's most specific wins). */
function localConfig(ctx: HttpContext, filterCfg: LocalRateLimitModel): LocalRateLimitModel {
  const d = ctx.route;
  if (d && (d.kind === 'route' || d.kind === 'redirect' || d.kind === 'direct')) return d.route.localRateLimit ?? d.virtualHost.localRateLimit ?? filterCfg;
  return filterCfg;
}

/** True when the request was answered (limited). */
function local(ctx: HttpContext, filterCfg: LocalRateLimitModel): boolean {
  const cfg = localConfig(ctx, filterCfg);
  if (!hits(cfg.filterEnabled, ctx.random)) return false;
  const b = bucketFor(ctx, cfg);
  if (!b) return false;
  const stats = ctx.deps.stats.rateLimit;
  const ok = b.consume();
  const xrl = cfg.xRateLimitHeaders ? localDraft03Headers(b.model.maxTokens, b.model.fillIntervalMs, b.remaining(), b.msUntilFill()) : undefined;
  if (ok) {
    stats.inc({ kind: 'local', stat_prefix: cfg.statPrefix, result: 'ok' });
    if (xrl) ctx.extraResponseHeaders = { ...ctx.extraResponseHeaders, ...xrl };
    return false;
  }
  if (!hits(cfg.filterEnforced, ctx.random)) {
    stats.inc({ kind: 'local', stat_prefix: cfg.statPrefix, result: 'not_enforced' });
    addHeaders(ctx.req.headers, cfg.requestHeadersWhenNotEnforced);
    return false;
  }
  stats.inc({ kind: 'local', stat_prefix: cfg.statPrefix, result: 'over_limit' });
  const h: Headers = { ...xrl };
  addHeaders(h, cfg.responseHeadersToAdd);
  ctx.reply('local-rate-limited', undefined, [], h, cfg.status);
  return true;
}

// ------------------------------------------------------------------------------ global

const clients = new WeakMap<ListenerDeps, RateLimitClients>();

function clientsFor(deps: ListenerDeps): RateLimitClients {
  if (deps.rateLimitClients) return deps.rateLimitClients;
  let c = clients.get(deps);
  if (!c) clients.set(deps, (c = new RateLimitClients(deps.pick)));
  return c;
}

const LOG_EVERY_MS = 10_000;
const lastLog = new WeakMap<GlobalRateLimitModel, { at: number; held: number }>();

/** One line per filter config every 10 s at most, with how many failures it stands for. */
function logFailure(ctx: HttpContext, cfg: GlobalRateLimitModel, err: unknown): void {
  const t = ctx.timers.now();
  const l = lastLog.get(cfg);
  if (l && t - l.at < LOG_EVERY_MS) {
    l.held++;
    return;
  }
  const more = l && l.held > 0 ? ` (and ${l.held} more since the last report)` : '';
  const mode = cfg.failureModeDeny ? `failure_mode_deny: answering ${cfg.statusOnError}` : 'failure mode allow: letting requests through';
  ctx.deps.log?.(`isle proxy: rate limit service (domain ${cfg.domain}, cluster ${cfg.cluster}) failed: ${err instanceof Error ? err.message : String(err)}; ${mode}${more}`);
  lastLog.set(cfg, { at: t, held: 0 });
}

async function global(ctx: HttpContext, cfg: GlobalRateLimitModel): Promise<boolean> {
  const d = ctx.route;
  if (!d || d.kind !== 'route') return false;
  // request_type: Envoy's internal requests are those marked x-envoy-internal: true.
  if (cfg.requestType !== 'both' && (ctx.req.headers['x-envoy-internal'] === 'true') !== (cfg.requestType === 'internal')) return false;
  const id = ctx.deps.identity;
  const app = id?.labels?.['service.istio.io/canonical-name'] ?? id?.labels?.['app'] ?? id?.workload;
  const descriptors = descriptorsFor(d.route, d.virtualHost, cfg.stage, {
    method: ctx.req.method,
    authority: ctx.req.authority,
    path: ctx.req.path,
    scheme: ctx.req.scheme,
    headers: ctx.req.headers,
    remoteAddress: ctx.sourceIp,
    destinationCluster: d.cluster || undefined,
    sourceCluster: app && id?.namespace ? `${app}.${id.namespace}` : undefined,
  });
  if (descriptors.length === 0) return false;
  const stats = ctx.deps.stats.rateLimit;
  const prefix = cfg.domain;
  let res;
  try {
    res = await clientsFor(ctx.deps).shouldRateLimit(ctx.graph, cfg, descriptors);
  } catch (e) {
    logFailure(ctx, cfg, e);
    stats.inc({ kind: 'global', stat_prefix: prefix, result: 'error' });
    if (ctx.cancelled) return true;
    if (cfg.failureModeDeny) {
      ctx.reply('rate-limit-error', undefined, [], undefined, cfg.statusOnError);
      return true;
    }
    stats.inc({ kind: 'global', stat_prefix: prefix, result: 'failure_mode_allowed' });
    return false;
  }
  if (ctx.cancelled) return true;
  const xrl = cfg.xRateLimitHeaders ? draft03Headers(res.statuses) : undefined;
  if (res.overall_code === 'OVER_LIMIT') {
    stats.inc({ kind: 'global', stat_prefix: prefix, result: 'over_limit' });
    const h: Headers = { ...xrl };
    if (cfg.xEnvoyRateLimitedHeader) h['x-envoy-ratelimited'] = 'true';
    ctx.reply('rate-limited', undefined, [], h, cfg.rateLimitedStatus);
    return true;
  }
  stats.inc({ kind: 'global', stat_prefix: prefix, result: 'ok' });
  if (xrl) ctx.extraResponseHeaders = { ...ctx.extraResponseHeaders, ...xrl };
  return false;
}
