/**
 * Envoy's retry policy around the attempts: each attempt (`next`: per-try timeout → upstream)
 * picks an endpoint again; a retriable outcome is retried after a jittered back-off while
 * attempts remain and the body can be replayed. When retries run out on a response, that last
 * response is what the router forwards, as Envoy does.
 */
import type { Headers } from '../http1/head.js';
import type { RetryPolicyModel } from '../model.js';
import { backoffMs, isRetriable } from '../routing/retry.js';
import type { AttemptOutcome } from '../upstream/pool.js';
import type { Filter, HttpContext, Next } from './context.js';

/**
 * The gRPC status of a response from its headers: only a trailers-only response has it there.
 * Envoy's grpc retry_on conditions look at response headers too (a status in trailers comes
 * after the body was forwarded, too late to retry).
 */
function grpcStatusOf(h: Headers): number | undefined {
  const g = h['grpc-status'];
  return typeof g === 'string' && /^\d+$/.test(g) ? Number(g) : undefined;
}

/** Maps a pool attempt onto the routing module's retry vocabulary. */
export function retryable(policy: RetryPolicyModel, o: AttemptOutcome): boolean {
  switch (o.kind) {
    case 'response':
      return isRetriable(policy, { kind: 'response', status: o.status, grpcStatus: grpcStatusOf(o.response.headers), envoyRateLimited: o.response.headers['x-envoy-ratelimited'] !== undefined });
    case 'connect-failure':
    case 'reset':
      return isRetriable(policy, { kind: o.kind });
    case 'timeout':
      return isRetriable(policy, { kind: 'per-try-timeout' });
    default:
      return false;
  }
}

export const retryFilter: Filter = (ctx, next) => {
  // One attempt and nothing to retry (the common case): no promise of our own, straight on.
  if (ctx.maxAttempts <= 1 && ctx.attempt === 0) {
    ctx.attempt = 1;
    return next(ctx);
  }
  if (ctx.attempt === 0) {
    // The first attempt (most end there) without an async loop around it (ADR 0130).
    ctx.attempt = 1;
    return next(ctx).then(() => (again(ctx) ? retryLoop(ctx, next) : undefined));
  }
  return retryLoop(ctx, next);
};

/** After an attempt: whether another one is to be made (a retryable outcome and attempts left). */
function again(ctx: HttpContext): boolean {
  const last = ctx.last;
  if (ctx.responded || ctx.exhausted || !last) return false;
  const policy = ctx.forward?.retryPolicy;
  if (last.kind === 'response') {
    if (policy && ctx.attempt < ctx.maxAttempts && ctx.replayable && !ctx.cancelled && retryable(policy, last)) {
      last.response.resume();
      return true;
    }
    return false;
  }
  if (last.kind === 'aborted' || last.kind === 'overflow') return false;
  return !!(policy && ctx.replayable && retryable(policy, last));
}

async function retryLoop(ctx: HttpContext, next: Next): Promise<void> {
  const policy = ctx.forward?.retryPolicy;
  const label = { cluster_name: ctx.cluster!.name };
  while (ctx.attempt < ctx.maxAttempts) {
    ctx.attempt++;
    if (ctx.attempt > 1) {
      ctx.deps.stats.upstreamRqRetry.inc(label);
      await ctx.sleep(backoffMs(policy!, ctx.attempt - 1, ctx.random));
      if (ctx.cancelled) break;
    }
    await next(ctx);
    if (!again(ctx)) break;
  }
}
