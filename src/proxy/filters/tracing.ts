/**
 * The tracing filter (ADR 0085): Envoy's HCM tracing, right after stats so the span covers faults
 * and RBAC denials too. Without `tracing` on the HCM it is one property check; with it, every
 * request gets a span context (continued from W3C/B3 headers or new) that replaces the incoming
 * one on the way out, and a sampled one gets a span that `HttpContext.finish` ends and exports.
 */
import { tracerOf } from '../tracing/tracer.js';
import type { Filter } from './context.js';

export const tracingFilter: Filter = (ctx, next) => {
  const tracing = ctx.conn.hcm.tracing;
  if (!tracing) return next(ctx);
  ctx.span = tracerOf(ctx.deps).start(ctx.req.headers, tracing, ctx.random, ctx.wallStart);
  return next(ctx);
};
