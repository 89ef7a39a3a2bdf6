/**
 * Envoy's fault filter (`envoy.filters.http.fault`) with the route's config: a delay, then maybe
 * an abort, before the request reaches the router. The decision is the routing module's pure
 * `faultFor`; the delay runs on the request's injectable timers and ends early when the client
 * goes away.
 */
import { faultFor, type FaultDecision } from '../routing/fault.js';
import type { Filter, HttpContext, Next } from './context.js';
import { DELAY_INJECTED } from './outcomes.js';

export const faultFilter: Filter = (ctx, next) => {
  const route = ctx.route;
  const d = route ? faultFor(ctx.conn.hcm, route, ctx.random) : undefined;
  // No fault (the common case): no promise of our own, straight on.
  return d ? inject(ctx, next, d) : next(ctx);
};

async function inject(ctx: HttpContext, next: Next, d: FaultDecision): Promise<void> {
  if (d.delayMs > 0) {
    (ctx.flags ??= []).push(DELAY_INJECTED);
    await ctx.sleep(d.delayMs);
  }
  if (d.abortStatus !== undefined) return ctx.reply('fault-abort', undefined, [], undefined, d.abortStatus, d.abortGrpcStatus);
  return next(ctx);
}
