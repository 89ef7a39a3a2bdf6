/**
 * The HTTP connection manager of a listener: the HTTP/1.1 codec (`../http1`) turns connections
 * into requests, and each request runs the filter chain, in Envoy's order:
 *
 *   stats → tracing → fault → rbac → headers (x-request-id, x-forwarded-proto, XFCC) → rate limits → router
 *     → retry → per-try timeout → upstream
 *
 * The routing decision is made once before the filters run (Envoy's route cache), so the fault
 * filter can read the route's fault config and the router act on it. What each filter does is in
 * its file under `../filters`; the status codes and response flags of every local reply are in
 * `../filters/outcomes.ts`.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { realTimers } from '../../mesh/timers.js';
import { chain, HttpContext, type Downstream, type Filter, type RequestInfo } from '../filters/context.js';
import { faultFilter } from '../filters/fault.js';
import { headersFilter } from '../filters/headers.js';
import { stripHopByHop } from '../filters/hop.js';
import { rateLimitFilter } from '../filters/ratelimit.js';
import { rbacFilter } from '../filters/rbac.js';
import { retryFilter } from '../filters/retry.js';
import { routerFilter } from '../filters/router.js';
import { statsFilter } from '../filters/stats.js';
import { tracingFilter } from '../filters/tracing.js';
import { perTryTimeoutFilter } from '../filters/timeout.js';
import { upstreamFilter } from '../filters/upstream.js';
import { Http1Server } from '../http1/server.js';
import { Http2Engine, type H2Exchange } from '../http2/server.js';
import type { HeadError, RequestHead } from '../http1/head.js';
import type { InflightTracker } from '../net/drain.js';
import { MUX_ALPN } from '../mux/frame.js';
import { MuxEngine, type MuxExchange } from '../mux/server.js';
import { route as defaultRoute, type RouteOptions, type RouteResult } from '../routing/router.js';
import type { RouteRequest } from '../routing/match.js';
import type { ConnInfo, ListenerDeps } from './context.js';

export type { ConnInfo } from './context.js';
export { serviceOfCluster } from '../filters/router.js';

/** The HTTP filters, outermost first (Envoy's order; see the module comment). */
export const HTTP_FILTERS: readonly Filter[] = [statsFilter, tracingFilter, faultFilter, rbacFilter, headersFilter, rateLimitFilter, routerFilter, retryFilter, perTryTimeoutFilter, upstreamFilter];

const runChain = chain(HTTP_FILTERS);

export interface HcmHandlerOptions {
  deps: ListenerDeps;
  /** The connection facts; undefined means the connection was not set up by a listener. */
  connInfo: (socket: Socket) => ConnInfo | undefined;
  inflight: InflightTracker;
}

/**
 * The HTTP engine of a listener: serves connections handed to it with `serve(socket)`, picking
 * the codec as Envoy's `codec_type: AUTO` does: ALPN `h2` on TLS, else the HTTP/2 preface
 * (prior knowledge), else HTTP/1.1. `HTTP1` refuses the preface with a 400 that says why;
 * `HTTP2` speaks only HTTP/2. ALPN `isle-mux/1` (only ever selected between Isle sidecars, ADR
 * 0138) multiplexes HTTP/1.1 exchanges on one connection.
 */
export class HcmEngine {
  readonly http1: Http1Server;
  readonly http2: Http2Engine;
  readonly mux: MuxEngine;

  constructor(private readonly opts: HcmHandlerOptions) {
    const { deps } = opts;
    const take = (socket: Socket): void => this.http2.serve(socket);
    const onProtocolError = (socket: Socket, err: HeadError): void => {
      const conn = opts.connInfo(socket);
      deps.stats.recordRequest({ reporter: conn?.direction === 'INBOUND' ? 'destination' : 'source', responseCode: err.error, responseFlags: 'DPE', durationMs: 0 });
      deps.log?.(`isle proxy: ${conn?.listener ?? 'listener'}: refused a request: ${err.error} ${err.reason}`);
    };
    this.http1 = new Http1Server({
      onExchange: (ex) => {
        const conn = opts.connInfo(ex.socket);
        if (!conn) return void ex.socket.destroy();
        handleRequest(deps, conn, ex.head, ex, opts.inflight.begin());
      },
      onProtocolError,
      http2Taker: (socket) => (opts.connInfo(socket)?.hcm.codecType === 'HTTP1' ? undefined : take),
    });
    this.http2 = new Http2Engine({ onStream: (ex, socket) => this.onStream(ex, socket) });
    this.mux = new MuxEngine({ onStream: (ex, socket) => this.onStream(ex, socket), onProtocolError });
  }

  serve(socket: Socket): void {
    const codec = this.opts.connInfo(socket)?.hcm.codecType;
    const alpn = (socket as Partial<TLSSocket>).alpnProtocol;
    if (alpn === MUX_ALPN && codec !== 'HTTP2') this.mux.serve(socket);
    else if (codec === 'HTTP2' || (codec !== 'HTTP1' && alpn === 'h2')) this.http2.serve(socket);
    else this.http1.serve(socket);
  }

  private onStream(ex: H2Exchange | MuxExchange, socket: Socket): void {
    const conn = this.opts.connInfo(socket);
    if (!conn) return ex.reset();
    if (ex.method === 'CONNECT') {
      // No extended CONNECT tunnels, as on HTTP/1.1 (405 there too).
      ex.respond(405, { 'content-type': 'text/plain' }, 'isle: CONNECT is not supported by this proxy\n');
      return;
    }
    handleRequest(this.opts.deps, conn, ex.head, ex, this.opts.inflight.begin());
  }

  close(): void {
    this.http1.close();
    this.http2.close();
    this.mux.close();
  }

  closeIdleConnections(): void {
    this.http1.closeIdleConnections();
    this.http2.closeIdleConnections();
    this.mux.closeIdleConnections();
  }

  closeAllConnections(): void {
    this.http1.closeAllConnections();
    this.http2.closeAllConnections();
    this.mux.closeAllConnections();
  }
}

export function createHcmServer(opts: HcmHandlerOptions): HcmEngine {
  return new HcmEngine(opts);
}

/** Where the request goes: from the absolute-form target, or the Host header. */
export function parseTarget(target: string, host: string | string[] | undefined, allowAbsolute: boolean): { authority: string; path: string; scheme: string } | string {
  if (target.charCodeAt(0) !== 47 /* / */ && /^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
    if (!allowAbsolute) return 'absolute-form request target not allowed on this listener';
    let u: URL;
    try {
      u = new URL(target);
    } catch {
      return 'malformed absolute-form request target';
    }
    // The URL parser drops a default port; keep what the client wrote so `host:80` routes as sent.
    const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(target)![1]!.replace(/^.*@/, '');
    return { authority, path: (u.pathname || '/') + u.search, scheme: u.protocol.slice(0, -1) };
  }
  if (host === undefined || host === '') return 'missing Host header';
  if (typeof host !== 'string') return 'more than one Host header';
  return { authority: host, path: target, scheme: 'http' };
}

/**
 * Runs one request through the filter chain. `ds` is the downstream exchange (the codec's, or a
 * test double: the chain itself needs no sockets). `done` is called once when the request is over.
 */
export function handleRequest(deps: ListenerDeps, conn: ConnInfo, head: RequestHead, ds: Downstream, done: () => void): void {
  const target = parseTarget(head.target, head.headers['host'], conn.hcm.allowAbsoluteUrl);
  const timers = deps.timers ?? realTimers;
  const req: RequestInfo =
    typeof target === 'string'
      ? { method: head.method, authority: '', path: head.target, scheme: 'http', headers: head.headers }
      : { method: head.method, authority: target.authority, path: target.path, scheme: target.scheme, headers: stripHopByHop(head.headers) };
  const ctx = new HttpContext(deps, conn, ds, req, timers);
  ctx.onDone = done;
  if (typeof target === 'string') {
    ctx.reply('bad-request', target);
    return;
  }
  routeOnce(ctx);
  void runChain(ctx);
}

const NO_ROUTE_OPTIONS: RouteOptions = {};

/** Envoy's route cache: the decision every filter sees. */
function routeOnce(ctx: HttpContext): void {
  const source = ctx.conn.hcm.routeSource;
  const config = source.kind === 'inline' ? source.config : ctx.graph.routes.get(source.routeConfigName);
  if (!config) {
    ctx.routeConfigName = source.kind === 'rds' ? source.routeConfigName : '(inline)';
    return;
  }
  // The request info is itself a RouteRequest: no copy of it, and no options object without an injected random.
  const routeReq: RouteRequest = ctx.req;
  const deps = ctx.deps;
  const decision: RouteResult = deps.router ? deps.router(config, routeReq) : defaultRoute(config, routeReq, deps.random ? { random: deps.random } : NO_ROUTE_OPTIONS);
  ctx.route = decision;
}
