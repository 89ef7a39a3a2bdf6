/**
 * The per-try timeout (`retry_policy.per_try_timeout`): each attempt gets its own cancellation,
 * armed here on the request's injectable timers; when it fires before response headers, the
 * attempt ends as `timeout` (retriable like a reset). The route timeout over all attempts is
 * the router filter's, as in Envoy.
 */
import { Cancellation } from '../upstream/pool.js';
import type { Filter, HttpContext, Next } from './context.js';

export const perTryTimeoutFilter: Filter = (ctx, next) => {
  const cancel = new Cancellation();
  ctx.attemptCancel = cancel;
  ctx.perTryTimedOut = false;
  if (ctx.cancelled) cancel.abort();
  const ms = ctx.forward?.retryPolicy?.perTryTimeoutMs ?? 0;
  // No per-try timeout (the common case): no timer, no promise of our own.
  return ms > 0 ? withTimeout(ctx, next, cancel, ms) : next(ctx);
};

async function withTimeout(ctx: HttpContext, next: Next, cancel: Cancellation, ms: number): Promise<void> {
  const timer = ctx.timers.setTimeout(() => {
    ctx.perTryTimedOut = true;
    cancel.abort();
  }, ms);
  try {
    await next(ctx);
  } finally {
    ctx.timers.clearTimeout(timer);
  }
  if (ctx.perTryTimedOut && ctx.last?.kind === 'aborted') {
    ctx.deps.stats.upstreamRqPerTryTimeout.inc({ cluster_name: ctx.cluster!.name });
    ctx.last = { kind: 'timeout' };
  }
}
