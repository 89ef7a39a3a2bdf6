/**
 * The per-request state the HTTP filters share, the filter signature, and the chain builder.
 *
 * A filter is `(ctx, next)`: it may answer locally (and not call next), call next once, or call
 * it several times (the retry filter). The chain is composed once per listener, so running it
 * allocates no closures per request; what a request needs lives on its HttpContext.
 */
import type { Readable } from 'node:stream';
import type { Timers } from '../../mesh/timers.js';
import type { ExchangeOwner, ResponseFraming } from '../http1/server.js';
import type { Headers } from '../http1/head.js';
import type { ConnInfo, ListenerDeps } from '../listeners/context.js';
import type { ClusterModel, ConfigGraph, EndpointModel } from '../model.js';
import type { ForwardResult, RouteResult } from '../routing/router.js';
import { headerBytes, noteGrpcStatus, type RequestRecord } from '../stats.js';
import { PEER_METADATA } from '../peer.js';
import { writeAccessLog, type AccessLogEntry, type AccessLogModel } from '../accesslog.js';
import { Cancellation, type AttemptOutcome, type ResponseSink, type UpstreamResponse } from '../upstream/pool.js';
import { localReplyFor, type Outcome } from './outcomes.js';
import { DEADLINE_EXCEEDED, DEADLINE_EXCEEDED_CODE, DEADLINE_FLAG, DEADLINE_MESSAGE, grpcMessage, httpToGrpcStatus, isGrpcContentType } from './grpc.js';
import type { ActiveSpan } from '../tracing/span.js';
import { tracerOf } from '../tracing/tracer.js';
import { parseOutboundName } from '../../mesh/names.js';

const NO_BODY: ResponseFraming = { kind: 'none' };
const NO_FLAGS: readonly string[] = [];

/**
 * The downstream half of an exchange as the filters see it: the HTTP/1.1 codec's ServerExchange,
 * an HTTP/2 stream (`../http2/server.ts`), or a test double. Nothing in the filters depends on
 * which one it is (ADR 0080).
 */
export interface Downstream {
  readonly method: string;
  /** `HTTP/1.1` or `HTTP/2` (access logs' %PROTOCOL%); absent: HTTP/1.1. */
  readonly protocol?: string;
  readonly headersSent: boolean;
  readonly gone: boolean;
  readonly requestComplete: boolean;
  /** Content-Length of the request body; 0 when there is none; undefined when chunked. */
  readonly contentLength: number | undefined;
  /** The client's IP address. */
  readonly remoteAddress: string | undefined;
  owner: ExchangeOwner | null;
  readBody(): Promise<Buffer>;
  /**
   * For bodies without Content-Length: the whole body if it is already complete and at most
   * `limit` bytes after the bytes in flight are read, else undefined (then `bodyStream`).
   */
  tryReadBody?(limit: number): Promise<Buffer | undefined>;
  bodyStream(): Readable;
  discardBody(): void;
  respond(status: number, headers: Headers, body: string | Buffer): void;
  writeHead(status: number, reason: string | undefined, headers: Headers, framing: ResponseFraming): void;
  write(chunk: Buffer): boolean;
  /** Trailers are sent where the protocol can carry them (HTTP/2; chunked HTTP/1.1). */
  end(chunk?: Buffer, trailers?: Headers): void;
  reset(): void;
}

export type Next = (ctx: HttpContext) => Promise<void>;
export type Filter = (ctx: HttpContext, next: Next) => Promise<void>;

/** Composes filters once; the last one's `next` does nothing. */
export function chain(filters: readonly Filter[]): Next {
  let next: Next = () => Promise.resolve();
  for (let i = filters.length - 1; i >= 0; i--) {
    const f = filters[i]!;
    const n = next;
    next = (ctx) => f(ctx, n);
  }
  return next;
}

export interface RequestInfo {
  method: string;
  /** Host / absolute-form authority as sent. */
  authority: string;
  /** Origin-form path with query, as sent. */
  path: string;
  scheme: string;
  /** Hop-by-hop headers already removed; the filters edit this object and it goes upstream. */
  headers: Headers;
}

/**
 * One request's state. Implements the ExchangeOwner (downstream events) and the ResponseSink
 * (upstream body) itself so that neither needs a closure.
 */
export class HttpContext implements ExchangeOwner, ResponseSink {
  readonly started: number;
  /** Wall clock at the start (access logs' START_TIME); `started` is the injectable clock. */
  readonly wallStart: number;
  readonly graph: ConfigGraph;
  readonly inbound: boolean;
  readonly random: () => number;
  readonly record: RequestRecord;
  /** Response flags gathered on the way (DI from the fault filter); null until one is. */
  flags: string[] | null = null;

  /** A sampled request's span (tracing filter), ended and exported by finish(). */
  span: ActiveSpan | undefined;

  /** Inbound: our peer metadata, added to the response by the router (stats filter). */
  peerResponseHeader: string | undefined;
  /** Response header + body bytes sent so far (istio_response_bytes). */
  responseBytes = 0;

  /** Set by the HCM before the filters run (Envoy's route cache); undefined: no route config. */
  route: RouteResult | undefined;
  routeConfigName = '';

  // Set by the router filter.
  forward: ForwardResult | undefined;
  cluster: ClusterModel | undefined;
  body: Buffer | Readable | null = null;
  replayable = true;

  // Attempts.
  attempt = 0;
  maxAttempts = 1;
  /** Endpoints tried so far; kept only when a retry may follow (maxAttempts > 1). */
  tried: Set<string> | null = null;
  last: AttemptOutcome | undefined;
  /** The upstream filter found nothing more to try (no endpoint on a retry). */
  exhausted = false;
  /** Cancels the attempt in flight (per-try timeout, route timeout, downstream gone). */
  attemptCancel: Cancellation | null = null;
  perTryTimedOut = false;
  timedOut = false;
  downstreamGone = false;
  /** Something was (or is being) sent downstream. */
  responded = false;

  private recorded = false;
  private wake: (() => void) | null = null;
  private upstream: UpstreamResponse | null = null;
  private status = 0;
  private finalFlags = '';

  constructor(
    readonly deps: ListenerDeps,
    readonly conn: ConnInfo,
    readonly ds: Downstream,
    readonly req: RequestInfo,
    readonly timers: Timers,
  ) {
    this.started = timers.now();
    this.wallStart = Date.now();
    this.graph = deps.config();
    this.inbound = conn.direction === 'INBOUND';
    this.random = deps.random ?? Math.random;
    this.record = { reporter: this.inbound ? 'destination' : 'source', responseCode: 0, responseFlags: '-', durationMs: 0 };
    ds.owner = this;
  }

  /** The gRPC deadline passed (grpc-timeout, ../filters/grpc.ts). */
  deadlineHit = false;
  private deadlineTimer: unknown;

  /** Arms the gRPC deadline over the whole call (Envoy's max stream duration). */
  armDeadline(ms: number): void {
    this.deadlineTimer = this.timers.setTimeout(() => this.deadlineExpired(), ms);
  }

  private deadlineExpired(): void {
    this.deadlineTimer = undefined;
    this.deadlineHit = true;
    const up = this.upstream;
    if (!up) {
      // Before response headers: the router answers once the attempt is cancelled.
      if (!this.responded) this.cancel('timeout');
      return;
    }
    // Mid-response: stop the upstream and end the call with DEADLINE_EXCEEDED in the trailers
    // (HTTP/2; an HTTP/1.1 client without chunked framing only sees the connection close).
    this.upstream = null;
    up.destroy();
    this.record.grpcStatus = DEADLINE_EXCEEDED;
    this.ds.end(undefined, { 'grpc-status': DEADLINE_EXCEEDED, 'grpc-message': DEADLINE_MESSAGE });
    this.finish(this.status, [DEADLINE_FLAG, ...(this.finalFlags ? this.finalFlags.split(',') : [])]);
  }

  /** The trailers-only answer Envoy gives a gRPC call whose deadline passed before a response. */
  grpcDeadlineReply(): void {
    this.responded = true;
    const ds = this.ds;
    if (ds.headersSent || ds.gone) return this.finish(0, ['DC']);
    this.grpcReply(DEADLINE_EXCEEDED_CODE, DEADLINE_MESSAGE, [DEADLINE_FLAG]);
  }

  private grpcRequest: boolean | undefined;

  /** Envoy's `is_grpc` for local replies: the request's content-type is gRPC's (not gRPC-Web). */
  get isGrpc(): boolean {
    return (this.grpcRequest ??= isGrpcContentType(this.req.headers['content-type']));
  }

  /**
   * A local reply to a gRPC request, as Envoy's `sendLocalReply` makes it: HTTP 200 and one
   * HEADERS frame with END_STREAM (trailers-only) carrying `grpc-status` and the reply text as
   * `grpc-message`; `extra` (rate limit headers, a redirect's location) goes along. On HTTP/1.1
   * the same fields leave as a header-only 200 with Content-Length 0.
   */
  grpcReply(code: number, text: string, flags: readonly string[], extra?: Headers): void {
    this.responded = true;
    const ds = this.ds;
    if (ds.headersSent) ds.reset();
    else if (!ds.gone) {
      const h: Headers = extra ? { ...extra } : {};
      delete h['content-length'];
      h['content-type'] = 'application/grpc';
      h['grpc-status'] = String(code);
      const msg = grpcMessage(text);
      if (msg) h['grpc-message'] = msg;
      if (this.inbound && this.peerResponseHeader) h[PEER_METADATA] = this.peerResponseHeader;
      ds.writeHead(200, undefined, h, NO_BODY);
      ds.end();
      this.responseHeaders = h;
      this.responseBytes += headerBytes(h);
      if (!ds.requestComplete) ds.discardBody();
    }
    this.record.grpcStatus = String(code);
    this.finish(200, flags);
  }

  /** Records the request in the standard metrics, once. */
  finish(status: number, flags: readonly string[]): void {
    if (this.recorded) return;
    this.recorded = true;
    if (this.deadlineTimer !== undefined) {
      this.timers.clearTimeout(this.deadlineTimer);
      this.deadlineTimer = undefined;
    }
    const all = this.flags ? [...this.flags, ...flags] : flags;
    this.record.responseCode = status;
    this.record.responseFlags = all.length ? all.join(',') : '-';
    this.record.durationMs = this.timers.now() - this.started;
    const ds = this.ds;
    const body = this.body;
    this.record.requestBytes = headerBytes(this.req.headers) + (ds.contentLength ?? (Buffer.isBuffer(body) ? body.length : 0));
    this.record.responseBytes = this.responseBytes;
    noteGrpcStatus(this.record, this.responseHeaders);
    this.deps.stats.recordRequest(this.record);
    const logs = this.conn.hcm.accessLogs;
    if (logs) this.accessLog(logs);
    if (this.span) this.endSpan(this.span);
    this.onDone?.();
  }

  private endSpan(span: ActiveSpan): void {
    const r = this.record;
    const req = this.req;
    tracerOf(this.deps).finish(span, {
      inbound: this.inbound,
      protocol: this.ds.protocol ?? 'HTTP/1.1',
      method: req.method,
      scheme: req.scheme,
      authority: req.authority,
      path: req.path,
      requestHeaders: req.headers,
      status: r.responseCode,
      responseFlags: r.responseFlags,
      requestSize: this.ds.contentLength ?? (Buffer.isBuffer(this.body) ? this.body.length : 0),
      responseSize: this.responseBytes,
      durationMs: r.durationMs,
      upstreamCluster: r.upstreamCluster,
      peerAddress: this.ds.remoteAddress,
      name: this.spanName(),
    });
  }

  /** The route's decorator, else Istio's default `<service host>:<port>/*`, else `<authority>/*`. */
  private spanName(): string {
    const route = this.route;
    const d = route && (route.kind === 'route' || route.kind === 'redirect' || route.kind === 'direct') ? route.route.decorator : undefined;
    if (d) return d;
    const cluster = this.record.upstreamCluster;
    if (this.inbound) {
      const svc = cluster ? this.graph.clusters.get(cluster)?.service : undefined;
      if (svc && this.conn.destinationPort !== undefined) return `${svc}:${this.conn.destinationPort}/*`;
    } else {
      const o = cluster ? parseOutboundName(cluster) : undefined;
      if (o) return `${o.hostname}:${o.port}/*`;
    }
    return `${this.req.authority}/*`;
  }

  /** Added to the upstream response by the router (the rate limit filters' x-ratelimit-* headers). */
  extraResponseHeaders: Headers | undefined;

  /** Response headers as sent downstream (access logs' %RESP(…)%). */
  responseHeaders: Headers | undefined;

  private accessLog(logs: readonly AccessLogModel[]): void {
    const r = this.record;
    const req = this.req;
    const ep = this.endpoint;
    const entry: AccessLogEntry = {
      startMs: this.wallStart,
      method: req.method,
      path: req.path,
      authority: req.authority,
      protocol: this.ds.protocol ?? 'HTTP/1.1',
      requestHeaders: req.headers,
      responseHeaders: this.responseHeaders,
      responseCode: r.responseCode,
      responseFlags: r.responseFlags,
      bytesReceived: this.ds.contentLength ?? (Buffer.isBuffer(this.body) ? this.body.length : 0),
      bytesSent: this.responseBytes,
      durationMs: r.durationMs,
      upstreamHost: ep ? `${ep.address}:${ep.port}` : undefined,
      upstreamCluster: r.upstreamCluster,
      downstreamLocal: this.conn.destinationPort !== undefined ? `${this.conn.listener}:${this.conn.destinationPort}` : this.conn.listener,
      downstreamRemote: this.ds.remoteAddress,
      sni: this.conn.sni,
      routeName: undefined,
      grpcStatus: r.grpcStatus,
      responseTrailers: this.responseTrailers,
    };
    for (const l of logs) writeAccessLog(l, entry);
  }

  /** Called once when the request is over (drain counts in-flight requests with it). */
  onDone: (() => void) | null = null;

  get sourceIp(): string | undefined {
    return this.ds.remoteAddress;
  }

  /**
   * Answers with Envoy's local reply for `outcome` and records it. A gRPC request gets it as a
   * gRPC status (`grpcStatus`, else the outcome's, else the HTTP status's mapping).
   */
  reply(outcome: Outcome, detail?: string, extraFlags: readonly string[] = [], headers?: Headers, statusOverride?: number, grpcStatus?: number): void {
    const r = localReplyFor(outcome, detail);
    const status = statusOverride ?? r.status;
    const flags = r.flag ? [r.flag, ...extraFlags] : extraFlags;
    if (this.isGrpc) return this.grpcReply(grpcStatus ?? r.grpc ?? httpToGrpcStatus(status), r.body, flags, headers);
    this.responded = true;
    const ds = this.ds;
    if (ds.headersSent) {
      ds.reset();
    } else if (!ds.gone) {
      const h: Headers = headers ? { ...headers, 'content-type': 'text/plain' } : { 'content-type': 'text/plain' };
      // Inbound local replies (RBAC 403, app unreachable 503…) carry our metadata like forwarded
      // responses, so the caller's metrics still name this workload as the destination (ADR 0050).
      if (this.inbound && this.peerResponseHeader) h[PEER_METADATA] = this.peerResponseHeader;
      ds.respond(status, h, r.body);
      this.responseHeaders = h;
      this.responseBytes += headerBytes(h) + Buffer.byteLength(r.body);
      // A body we did not read must not be parsed as the next request.
      if (!ds.requestComplete) ds.discardBody();
    }
    this.finish(status, flags);
  }

  /** Sleeps (retry back-off, fault delay); a cancelled request wakes at once. */
  sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.cancelled) return Promise.resolve();
    return new Promise((resolve) => {
      const h = this.timers.setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        this.timers.clearTimeout(h);
        this.wake = null;
        resolve();
      };
    });
  }

  get cancelled(): boolean {
    return this.timedOut || this.downstreamGone;
  }

  /** Route timeout or downstream gone: stop waiting, cancel the attempt in flight. */
  cancel(why: 'timeout' | 'downstream'): void {
    if (why === 'timeout') this.timedOut = true;
    else this.downstreamGone = true;
    this.attemptCancel?.abort();
    this.wake?.();
  }

  /** Streams an upstream response downstream; records the request when it completes. */
  streamResponse(up: UpstreamResponse, status: number, headers: Headers, framing: ResponseFraming, flags: readonly string[]): void {
    this.responded = true;
    this.upstream = up;
    this.status = status;
    this.finalFlags = flags.join(',');
    this.responseBytes += headerBytes(headers);
    this.responseHeaders = headers;
    this.ds.writeHead(status, up.statusMessage, headers, framing);
    up.pipe(this);
  }

  // --- ResponseSink (upstream body) ---
  data(chunk: Buffer): boolean {
    this.responseBytes += chunk.length;
    return this.ds.write(chunk);
  }
  /** Response trailers as forwarded (access logs' %TRAILER(…)%). */
  responseTrailers: Headers | undefined;

  end(trailers?: Headers): void {
    this.upstream = null;
    this.responseTrailers = trailers;
    // A gRPC status in trailers (the usual place); a trailers-only one is read from the headers at finish.
    noteGrpcStatus(this.record, trailers);
    this.ds.end(undefined, trailers);
  }
  abort(): void {
    // Upstream reset mid-body: the only honest signal downstream is a reset too.
    this.upstream = null;
    this.ds.reset();
    this.finish(this.status, this.finalFlags ? ['UC', ...this.finalFlags.split(',')] : ['UC']);
  }

  // --- ExchangeOwner (downstream events) ---
  downstreamDrained(): void {
    this.upstream?.flow();
  }
  downstreamClosed(): void {
    const up = this.upstream;
    if (up) {
      this.upstream = null;
      up.destroy();
      this.finish(this.status, this.finalFlags ? ['DC', ...this.finalFlags.split(',')] : ['DC']);
      return;
    }
    this.cancel('downstream');
  }
  responseFinished(): void {
    if (this.status) this.finish(this.status, this.finalFlags ? this.finalFlags.split(',') : NO_FLAGS);
  }

  /** The endpoint an attempt is going to (set by the upstream filter, for logs/tests). */
  endpoint: EndpointModel | undefined;
}
