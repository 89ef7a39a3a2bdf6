/**
 * The terminal filter: one attempt. Picks an endpoint with the cluster's load balancer (avoiding
 * hosts already tried when the policy says so), sets the attempt headers, and sends through the
 * cluster's pool. The outcome is left in `ctx.last` for the retry and router filters.
 */
import type { Filter } from './context.js';

const NONE_TRIED: ReadonlySet<string> = new Set();

export const upstreamFilter: Filter = (ctx) => {
  const cluster = ctx.cluster!;
  const fwd = ctx.forward!;
  const policy = fwd.retryPolicy;
  const ep = ctx.deps.pick(cluster, ctx.graph.endpoints.get(cluster.name), { previous: ctx.tried ?? NONE_TRIED, avoidPrevious: policy?.avoidPreviousHosts ?? false, attempt: ctx.attempt });
  if (!ep) {
    if (ctx.last) ctx.exhausted = true;
    else {
      ctx.deps.stats.upstreamCxNoneHealthy.inc({ cluster_name: cluster.name });
      ctx.reply('no-healthy-upstream');
    }
    return Promise.resolve();
  }
  ctx.endpoint = ep;
  // Only a retry reads it: a single-attempt request allocates no Set.
  if (ctx.maxAttempts > 1) (ctx.tried ??= new Set()).add(ep.key);
  const headers = ctx.req.headers;
  if (ctx.maxAttempts > 1) headers['x-envoy-attempt-count'] = String(ctx.attempt);
  if (fwd.action.autoHostRewrite && ep.hostname && fwd.hostRewrite === undefined) headers['host'] = ep.hostname;
  // `then` rather than an async function: no generator and no await per attempt (ADR 0130).
  return ctx.deps.pools.send({ method: ctx.req.method, path: fwd.path, headers, body: ctx.body, signal: ctx.attemptCancel ?? undefined }, cluster, ep).then((o) => {
    ctx.last = o;
  });
};
