/**
 * The per-try timeout (`retry_policy.per_try_timeout`): each attempt gets its own cancellation,
 * armed here on the request's injectable timers; when it fires before response headers, the
 * attempt ends as `timeout` (retriable like a reset). The route timeout over all attempts is
 * the router filter's, as in Envoy.
 */
import { Cancellation } from '../upstream/pool.js';
import type { Filter } from './context.js';

export const perTryTimeoutFilter: Filter = async (ctx, next) => {
  const cancel = new Cancellation();
  ctx.attemptCancel = cancel;
  ctx.perTryTimedOut = false;
  if (ctx.cancelled) cancel.abort();
  const ms = ctx.forward?.retryPolicy?.perTryTimeoutMs ?? 0;
  const timer =
    ms > 0
      ? ctx.timers.setTimeout(() => {
          ctx.perTryTimedOut = true;
          cancel.abort();
        }, ms)
      : undefined;
  try {
    await next(ctx);
  } finally {
    if (timer !== undefined) ctx.timers.clearTimeout(timer);
    ctx.attemptCancel = null;
  }
  if (ctx.perTryTimedOut && ctx.last?.kind === 'aborted') {
    ctx.deps.stats.upstreamRqPerTryTimeout.inc({ cluster_name: ctx.cluster!.name });
    ctx.last = { kind: 'timeout' };
  }
};
