/**
 * The router filter: acts on the routing decision the connection manager cached (Envoy's route
 * cache). Local answers (no route, redirect, direct response, no cluster) end here; a forward
 * picks the cluster, applies the route's request mutations, reads a small body when it may be
 * replayed (retries, mirrors), starts the mirrors, arms the route timeout, runs the attempts
 * (`next`: retry → per-try timeout → upstream), and finally either streams the chosen upstream
 * response or answers with the local reply for how the attempts ended.
 */
import { parseOutboundName } from '../../mesh/names.js';
import { readDataSource } from '../net/tls.js';
import type { Headers } from '../http1/head.js';
import { applyHeaderMutations } from '../routing/headers.js';
import { mirrorVia } from '../routing/mirror.js';
import type { ResponseFraming } from '../http1/server.js';
import type { AttemptOutcome, UpstreamResponse } from '../upstream/pool.js';
import type { Filter, HttpContext, Next } from './context.js';
import { RETRIES_EXHAUSTED } from './outcomes.js';
import { dropHeader, stripHopByHop } from './hop.js';
import { onUpstreamResponse } from './stats.js';
import { formatGrpcTimeout, grpcDeadlineMs, httpToGrpcStatus } from './grpc.js';

/** The service a cluster name stands for: the FQDN of `outbound|port|subset|fqdn`. */
export function serviceOfCluster(name: string): string | undefined {
  return parseOutboundName(name)?.hostname;
}

/** `host:port` / `[v6]:port` → host. */
function hostOnly(authority: string): string {
  if (authority.startsWith('[')) return authority.slice(0, authority.indexOf(']') + 1);
  const i = authority.lastIndexOf(':');
  return i < 0 ? authority : authority.slice(0, i);
}

const DONE: Promise<void> = Promise.resolve();
const NO_FLAGS: readonly string[] = [];

/**
 * A plain function returning the attempts' promise with a callback on it, not an async function:
 * no generator and no await per request when the body is not read first (ADR 0130).
 */
export const routerFilter: Filter = (ctx, next) => {
  const limit = forwardSetup(ctx);
  if (limit < 0) return DONE;
  // A body is read into memory only when it may be sent more than once (retries, mirrors), as
  // Envoy buffers for retries up to its buffer limit; larger or chunked bodies stream, tried once.
  const ds = ctx.ds;
  const cl = ds.contentLength;
  if (cl === 0) ctx.body = null;
  else if (cl !== undefined ? cl <= limit : limit > 0 && ds.tryReadBody !== undefined) return readBodyThenAttempt(ctx, next, limit);
  else {
    ctx.body = ds.bodyStream();
    ctx.replayable = false;
  }
  return attempts(ctx, next);
};

/**
 * Acts on the cached routing decision: a local answer (then -1), or the forward's setup (cluster,
 * request mutations) and how many body bytes may be buffered for replay (0: none).
 */
function forwardSetup(ctx: HttpContext): number {
  const decision = ctx.route;
  const req = ctx.req;
  if (!decision) {
    ctx.reply('no-route-config', ctx.routeConfigName);
    return -1;
  }
  switch (decision.kind) {
    case 'no-vhost':
      ctx.reply('no-route', `no route for host "${req.authority}"`);
      return -1;
    case 'no-route':
      ctx.reply('no-route', `no route for ${req.method} ${req.path} on host "${req.authority}" (virtual host ${decision.virtualHost.name})`);
      return -1;
    case 'redirect': {
      const h: Headers = { location: decision.location };
      applyHeaderMutations(h, decision.mutations, 'response');
      localAnswer(ctx, decision.status, { ...h, 'content-type': 'text/plain' }, '');
      return -1;
    }
    case 'direct': {
      const h: Headers = {};
      applyHeaderMutations(h, decision.mutations, 'response');
      let body = '';
      if (decision.body) {
        try {
          body = readDataSource(decision.body);
        } catch {
          body = '';
        }
      }
      localAnswer(ctx, decision.status, { 'content-type': 'text/plain', ...h }, body);
      return -1;
    }
    case 'route':
      break;
  }

  ctx.forward = decision;
  const clusterName = decision.cluster;
  const record = ctx.record;
  record.upstreamCluster = clusterName;
  const cluster = ctx.graph.clusters.get(clusterName);
  // Inbound: the service the inbound cluster says it serves (Istio's cluster metadata), else the Host.
  // Outbound: the FQDN in the cluster's name (decoded once; parsed here only for a missing cluster).
  record.destinationService = (ctx.inbound ? cluster?.service : cluster ? cluster.outboundService : serviceOfCluster(clusterName)) ?? hostOnly(req.authority);
  if (!cluster) {
    const what = clusterName ? `no cluster "${clusterName}"` : 'no cluster named by the cluster header';
    ctx.reply('no-cluster', what, [], undefined, decision.action.clusterNotFoundResponseCode);
    return -1;
  }
  ctx.cluster = cluster;
  if (!ctx.inbound) record.connectionSecurityPolicy = cluster.tls ? 'mutual_tls' : 'none';

  const headers = req.headers;
  applyHeaderMutations(headers, decision.mutations, 'request');
  headers['host'] = decision.hostRewrite ?? req.authority;
  if (decision.path !== req.path) headers['x-envoy-original-path'] = req.path;

  const policy = decision.retryPolicy;
  ctx.maxAttempts = policy ? policy.numRetries + 1 : 1;
  const mirrors = decision.action.mirrorPolicies;
  return ctx.maxAttempts > 1 || mirrors?.length ? (ctx.deps.retryBufferBytes ?? 64 * 1024) : 0;
}

/** A body that may be replayed: read it whole first (no Content-Length: only if it has already arrived whole). */
async function readBodyThenAttempt(ctx: HttpContext, next: Next, limit: number): Promise<void> {
  const ds = ctx.ds;
  if (ds.contentLength !== undefined) ctx.body = await ds.readBody();
  else {
    const whole = await ds.tryReadBody!(limit);
    if (whole !== undefined) ctx.body = whole.length ? whole : null;
    else {
      ctx.body = ds.bodyStream();
      ctx.replayable = false;
    }
  }
  return attempts(ctx, next);
}

/** Mirrors, the route timeout (or gRPC deadline), the attempts, then the response or the failure reply. */
function attempts(ctx: HttpContext, next: Next): Promise<void> {
  const decision = ctx.forward!;
  const req = ctx.req;
  const headers = req.headers;
  const mirrors = decision.action.mirrorPolicies;
  if (ctx.replayable && mirrors?.length) {
    const b = ctx.body as Buffer | null;
    mirrorVia(ctx.deps, ctx.graph, mirrors, { method: req.method, path: decision.path, headers, body: b && b.length ? b : null });
  }

  // The route timeout covers all attempts until response headers. A gRPC request's grpc-timeout
  // replaces it (max_grpc_timeout) and bounds the whole call, streamed response included.
  let timeoutMs = decision.timeoutMs;
  const deadline = ctx.record.requestProtocol === 'grpc' ? grpcDeadlineMs(decision.action, headers) : undefined;
  if (deadline !== undefined) {
    timeoutMs = 0;
    if (deadline > 0) {
      headers['grpc-timeout'] = formatGrpcTimeout(deadline);
      ctx.armDeadline(deadline);
    }
  }
  if (timeoutMs <= 0) return next(ctx).then(() => afterAttempts(ctx));
  const timers = ctx.timers;
  const timer = timers.setTimeout(() => ctx.cancel('timeout'), timeoutMs);
  let p: Promise<void>;
  try {
    p = next(ctx);
  } catch (e) {
    timers.clearTimeout(timer);
    throw e;
  }
  return p.then(
    () => {
      timers.clearTimeout(timer);
      afterAttempts(ctx);
    },
    (e: unknown) => {
      timers.clearTimeout(timer);
      throw e;
    },
  );
}

function afterAttempts(ctx: HttpContext): void {
  if (ctx.responded) return;
  const last = ctx.last;
  if (last?.kind === 'response' && !ctx.cancelled) return forwardResponse(ctx, last.response);
  if (last?.kind === 'response') last.response.resume();
  replyFailure(ctx, last);
}

/** A redirect or direct response; to a gRPC request, Envoy's gRPC form of it (HTTP status mapped). */
function localAnswer(ctx: HttpContext, status: number, headers: Headers, body: string): void {
  ctx.responded = true;
  const ds = ctx.ds;
  if (ds.headersSent || ds.gone) return ctx.finish(0, ['DC']);
  if (ctx.isGrpc) return ctx.grpcReply(httpToGrpcStatus(status), body, [], headers);
  ds.respond(status, headers, body);
  if (!ds.requestComplete) ds.discardBody();
  ctx.finish(status, []);
}

/** The local reply for attempts that produced no usable response. */
function replyFailure(ctx: HttpContext, last: AttemptOutcome | undefined): void {
  const retried = ctx.attempt > 1;
  const exhausted = retried && ctx.attempt >= ctx.maxAttempts ? [RETRIES_EXHAUSTED] : [];
  const label = { cluster_name: ctx.cluster!.name };
  if (ctx.downstreamGone) return ctx.finish(0, ['DC']);
  if (ctx.deadlineHit) return ctx.grpcDeadlineReply();
  if (ctx.timedOut) {
    ctx.deps.stats.upstreamRqTimeout.inc(label);
    return ctx.reply('route-timeout');
  }
  const reason = retried ? 'retried and the latest reset reason: ' : 'reset reason: ';
  switch (last?.kind) {
    case 'timeout':
      return ctx.reply('per-try-timeout', undefined, exhausted);
    case 'overflow':
      return ctx.reply('overflow', `${reason}overflow`);
    case 'connect-failure': {
      const tlsDetail = last.detail.startsWith('TLS error') ? `, transport failure reason: ${last.detail}` : '';
      return ctx.reply('connect-failure', `${reason}connection failure${tlsDetail}`, exhausted);
    }
    case 'reset':
      return ctx.reply('reset', `${reason}connection termination`, exhausted);
    default:
      return ctx.reply('no-healthy-upstream');
  }
}

function forwardResponse(ctx: HttpContext, up: UpstreamResponse): void {
  const status = up.status;
  const h = stripHopByHop(up.headers);
  applyHeaderMutations(h, ctx.forward!.mutations, 'response');
  if (ctx.extraResponseHeaders) Object.assign(h, ctx.extraResponseHeaders);
  h['x-envoy-upstream-service-time'] = String(Math.round(ctx.timers.now() - ctx.started));
  onUpstreamResponse(ctx, up, h);
  const flags = ctx.attempt > 1 && ctx.attempt >= ctx.maxAttempts && status >= 500 ? [RETRIES_EXHAUSTED] : NO_FLAGS;
  let framing: ResponseFraming;
  if (ctx.req.method === 'HEAD' || status === 204 || status === 304 || status < 200) framing = { kind: 'none' };
  else {
    dropHeader(h, 'content-length');
    const f = up.framing;
    framing = f.kind === 'length' ? f : f.kind === 'none' ? { kind: 'length', length: 0 } : { kind: 'chunked' };
  }
  ctx.streamResponse(up, status, h, framing, flags);
}
