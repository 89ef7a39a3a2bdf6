/**
 * The HTTP connection manager and router filter: what runs for every request on an outbound
 * (15001) or inbound listener. Routing decisions come from the router module; this file does
 * what Envoy's router filter does with them: header manipulation, the forward-client-cert
 * policy, retries with a fresh endpoint per attempt, per-try and route timeouts, streaming the
 * bodies, local replies with Envoy's status codes and texts, and the standard metrics.
 *
 * Bodies stream both ways. The one exception is a small request body (≤ retryBufferBytes, with
 * a Content-Length), which is read first so the request can be retried, as Envoy buffers for
 * retries up to its buffer limit; larger or chunked bodies stream and are tried once.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { Socket } from 'node:net';
import { parseOutboundName } from '../../mesh/names.js';
import type tls from 'node:tls';
import type { ClusterModel, FilterChainModel, HeaderMutationsModel, HttpConnectionManagerModel, RetryPolicyModel, RouteConfigModel } from '../model.js';
import type { InflightTracker } from '../net/drain.js';
import { readDataSource, upstreamPeerSpiffeId } from '../net/tls.js';
import { applyHeaderMutations, backoffMs, isRetriable, route as defaultRoute, type RouteRequest, type RouteResult } from '../routing/index.js';
import { faultFor, injectFault } from '../routing/fault.js';
import { mirrorVia } from '../routing/mirror.js';
import type { RequestRecord } from '../stats.js';
import type { AttemptOutcome } from '../upstream/pool.js';
import type { ListenerDeps } from './context.js';

/** What a listener learned about a downstream connection before HTTP started. */
export interface ConnInfo {
  listener: string;
  direction: 'INBOUND' | 'OUTBOUND' | 'UNSPECIFIED';
  chain: FilterChainModel;
  hcm: HttpConnectionManagerModel;
  /** TLS with a verified client certificate. */
  mtls: boolean;
  /** The verified peer's SPIFFE id. */
  peerId: string | undefined;
  /** SHA-256 of the peer certificate (DER), hex: XFCC `Hash=`. */
  peerCertHash: string | undefined;
  /** Our own SPIFFE id (the certificate this chain serves): XFCC `By=`. */
  ownId: string | undefined;
}

// RFC 9110 §7.6.1 plus the legacy ones proxies must not forward.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings']);
const XFCC = 'x-forwarded-client-cert';

function stripHopByHop(headers: http.IncomingHttpHeaders): Record<string, string | string[]> {
  // Hot path (every request and response): no Set or entries array unless Connection names some.
  const conn = headers.connection;
  let named: Set<string> | undefined;
  if (conn) for (const t of String(conn).split(',')) (named ??= new Set()).add(t.trim().toLowerCase());
  const out: Record<string, string | string[]> = {};
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined || HOP_BY_HOP.has(k) || named?.has(k)) continue;
    out[k] = v;
  }
  return out;
}

function applyMutations(headers: Record<string, string | string[]>, levels: readonly HeaderMutationsModel[], which: 'request' | 'response'): void {
  applyHeaderMutations(headers, levels, which);
}

/** Envoy's XFCC handling (forward_client_cert_details + set_current_client_cert_details). */
function applyXfcc(headers: Record<string, string | string[]>, conn: ConnInfo): void {
  const mode = conn.hcm.forwardClientCertDetails;
  const incoming = headers[XFCC];
  if (mode === 'ALWAYS_FORWARD_ONLY') return;
  if (!conn.mtls || mode === 'SANITIZE') {
    delete headers[XFCC];
    return;
  }
  if (mode === 'FORWARD_ONLY') return;
  const set = conn.hcm.setCurrentClientCertDetails;
  const parts: string[] = [];
  if (conn.ownId) parts.push(`By=${conn.ownId}`);
  if (conn.peerCertHash) parts.push(`Hash=${conn.peerCertHash}`);
  if (set.uri && conn.peerId) parts.push(`URI=${conn.peerId}`);
  const mine = parts.join(';');
  if (mode === 'APPEND_FORWARD' && incoming !== undefined) headers[XFCC] = `${String(incoming)},${mine}`;
  else headers[XFCC] = mine; // SANITIZE_SET (or APPEND_FORWARD with nothing to append to)
}

/** Maps a pool attempt onto the router's retry vocabulary. */
function retryable(policy: RetryPolicyModel, o: AttemptOutcome): boolean {
  switch (o.kind) {
    case 'response':
      return isRetriable(policy, { kind: 'response', status: o.status, envoyRateLimited: o.response.headers['x-envoy-ratelimited'] !== undefined });
    case 'connect-failure':
    case 'reset':
      return isRetriable(policy, { kind: o.kind });
    case 'timeout':
      return isRetriable(policy, { kind: 'per-try-timeout' });
    default:
      return false;
  }
}

/** The service a cluster name stands for: the FQDN of `outbound|port|subset|fqdn`. */
export function serviceOfCluster(name: string): string | undefined {
  return parseOutboundName(name)?.hostname;
}

function namespaceOfSpiffe(id: string | undefined): string | undefined {
  return id ? /\/ns\/([^/]+)\//.exec(id)?.[1] : undefined;
}

interface LocalReply {
  status: number;
  body: string;
  flags: string[];
  headers?: Record<string, string | string[]>;
}

export interface HcmHandlerOptions {
  deps: ListenerDeps;
  /** The connection facts; undefined means the connection was not set up by a listener. */
  connInfo: (socket: Socket) => ConnInfo | undefined;
  inflight: InflightTracker;
}

/** An http.Server that serves handed-over connections (`emit('connection')`), never listens itself. */
export function createHcmServer(opts: HcmHandlerOptions): http.Server {
  const server = http.createServer({ keepAliveTimeout: 60_000, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
    const conn = opts.connInfo(req.socket);
    if (!conn) {
      req.socket.destroy();
      return;
    }
    const end = opts.inflight.begin();
    res.once('close', end);
    handleRequest(opts.deps, conn, req, res).catch((e: unknown) => {
      opts.deps.log?.(`isle proxy: request handling failed: ${e instanceof Error ? e.stack : String(e)}`);
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('isle: internal proxy error\n');
      } else res.destroy();
    });
  });
  // CONNECT tunnels are not offered (no upgrade_configs for CONNECT, as Istio's sidecar): say so
  // rather than leaving the client hanging.
  server.on('connect', (_req: http.IncomingMessage, socket: Socket) => {
    // Node hands the socket over without its error handler.
    socket.on('error', () => socket.destroy());
    const body = 'isle: CONNECT is not supported by this proxy; send plain HTTP requests (absolute-form)\n';
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) return socket.destroy();
    socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  });
  return server;
}

function parseTarget(req: http.IncomingMessage, allowAbsolute: boolean): { authority: string; path: string; scheme: string } | string {
  const url = req.url ?? '/';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    if (!allowAbsolute) return 'absolute-form request target not allowed on this listener';
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return 'malformed absolute-form request target';
    }
    // The URL parser drops a default port; keep what the client wrote so `host:80` routes as sent.
    const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(url)![1]!.replace(/^.*@/, '');
    return { authority, path: (u.pathname || '/') + u.search, scheme: u.protocol.slice(0, -1) };
  }
  const host = req.headers.host;
  if (!host) return 'missing Host header';
  return { authority: host, path: url, scheme: 'http' };
}

async function readSmallBody(req: http.IncomingMessage, limit: number): Promise<Buffer | 'stream'> {
  const te = req.headers['transfer-encoding'];
  const cl = req.headers['content-length'];
  if (te === undefined && (cl === undefined || cl === '0')) {
    // Nothing to read, but the stream must still end for keep-alive to work.
    req.resume();
    return Buffer.alloc(0);
  }
  if (te !== undefined || cl === undefined || Number(cl) > limit) return 'stream';
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function handleRequest(deps: ListenerDeps, conn: ConnInfo, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const started = performance.now();
  const graph = deps.config();
  const identity = deps.identity ?? {};
  const inbound = conn.direction === 'INBOUND';
  const record: RequestRecord = {
    reporter: inbound ? 'destination' : 'source',
    responseCode: 0,
    responseFlags: '-',
    durationMs: 0,
    connectionSecurityPolicy: inbound ? (conn.mtls ? 'mutual_tls' : 'none') : undefined,
  };
  if (inbound) {
    record.sourcePrincipal = conn.peerId;
    record.sourceWorkloadNamespace = namespaceOfSpiffe(conn.peerId);
    record.destinationWorkload = identity.workload;
    record.destinationWorkloadNamespace = identity.namespace;
    record.destinationPrincipal = identity.principal ?? conn.ownId;
    record.destinationService = identity.service;
  } else {
    record.sourceWorkload = identity.workload;
    record.sourceWorkloadNamespace = identity.namespace;
    record.sourcePrincipal = identity.principal;
  }
  let recorded = false;
  const finish = (status: number, flags: string[]): void => {
    if (recorded) return;
    recorded = true;
    record.responseCode = status;
    record.responseFlags = flags.length ? flags.join(',') : '-';
    record.durationMs = performance.now() - started;
    deps.stats.recordRequest(record);
  };

  const localReply = (r: LocalReply): void => {
    if (res.headersSent) {
      res.destroy();
      finish(r.status, r.flags);
      return;
    }
    const body = r.body.endsWith('\n') || r.body === '' ? r.body : r.body + '\n';
    res.writeHead(r.status, { ...r.headers, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
    // A body we did not read must not be parsed as the next request.
    if (!req.complete) req.resume();
    finish(r.status, r.flags);
  };

  const target = parseTarget(req, conn.hcm.allowAbsoluteUrl);
  if (typeof target === 'string') return localReply({ status: 400, body: `isle: ${target}`, flags: ['DPE'] });

  let config: RouteConfigModel | undefined;
  const source = conn.hcm.routeSource;
  if (source.kind === 'inline') config = source.config;
  else config = graph.routes.get(source.routeConfigName);
  if (!config) {
    const name = source.kind === 'rds' ? source.routeConfigName : '(inline)';
    return localReply({ status: 404, body: `isle: route configuration "${name}" not loaded`, flags: ['NR'] });
  }

  const headers = stripHopByHop(req.headers);
  const routeReq: RouteRequest = { authority: target.authority, path: target.path, method: req.method ?? 'GET', headers, scheme: target.scheme };
  const decision: RouteResult = deps.router ? deps.router(config, routeReq) : defaultRoute(config, routeReq, { random: deps.random });
  // The fault filter runs before the router (Envoy's filter order): delay, then maybe abort.
  const fault = await injectFault(faultFor(conn.hcm, decision, deps.random ?? Math.random));
  if (fault && 'status' in fault) return localReply(fault);
  switch (decision.kind) {
    case 'no-vhost':
      return localReply({ status: 404, body: `isle: no route for host "${target.authority}"`, flags: ['NR'] });
    case 'no-route':
      return localReply({ status: 404, body: `isle: no route for ${routeReq.method} ${target.path} on host "${target.authority}" (virtual host ${decision.virtualHost.name})`, flags: ['NR'] });
    case 'redirect': {
      const h: Record<string, string | string[]> = { location: decision.location };
      applyMutations(h, decision.mutations, 'response');
      return localReply({ status: decision.status, body: '', flags: [], headers: h });
    }
    case 'direct': {
      const h: Record<string, string | string[]> = {};
      applyMutations(h, decision.mutations, 'response');
      let body = '';
      if (decision.body) {
        try {
          body = readDataSource(decision.body);
        } catch {
          body = '';
        }
      }
      if (res.headersSent) return;
      res.writeHead(decision.status, { 'content-type': 'text/plain', ...h, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      if (!req.complete) req.resume();
      return finish(decision.status, []);
    }
    case 'route':
      break;
  }

  const clusterName = decision.cluster;
  record.destinationCluster = clusterName;
  if (!inbound) record.destinationService = serviceOfCluster(clusterName) ?? target.authority;
  const cluster: ClusterModel | undefined = graph.clusters.get(clusterName);
  if (!cluster) {
    const what = clusterName ? `no cluster "${clusterName}"` : 'no cluster named by the cluster header';
    return localReply({ status: decision.action.clusterNotFoundResponseCode, body: `isle: ${what}`, flags: ['NC'] });
  }
  if (!inbound) record.connectionSecurityPolicy = cluster.tls ? 'mutual_tls' : 'none';

  // Request headers, in Envoy's order: sanitize, then the proxy's own, then the route's.
  if (!headers['x-request-id']) headers['x-request-id'] = randomUUID();
  headers['x-forwarded-proto'] ??= conn.mtls || target.scheme === 'https' ? 'https' : 'http';
  applyXfcc(headers, conn);
  applyMutations(headers, decision.mutations, 'request');
  headers.host = decision.hostRewrite ?? target.authority;
  if (decision.path !== target.path) headers['x-envoy-original-path'] = target.path;

  const policy = decision.retryPolicy;
  const maxAttempts = policy ? policy.numRetries + 1 : 1;
  const limit = deps.retryBufferBytes ?? 64 * 1024;
  const mirrors = decision.action.mirrorPolicies;
  const body = await readSmallBody(req, maxAttempts > 1 || mirrors?.length ? limit : 0);
  const replayable = body !== 'stream';
  if (replayable) mirrorVia(deps, graph, mirrors, { method: req.method ?? 'GET', path: decision.path, headers, body: body.length ? body : null });

  // The route timeout covers all attempts until response headers; once the response streams,
  // only a downstream or upstream reset ends it.
  const overall = new AbortController();
  let timedOut = false;
  const timeoutMs = decision.timeoutMs;
  const timer =
    timeoutMs > 0
      ? setTimeout(() => {
          timedOut = true;
          overall.abort();
        }, timeoutMs)
      : undefined;
  let downstreamGone = false;
  const onDownstreamClose = (): void => {
    if (!res.writableFinished) {
      downstreamGone = true;
      overall.abort();
    }
  };
  res.once('close', onDownstreamClose);

  const tried = new Set<string>();
  const endpoints = graph.endpoints.get(clusterName);
  let last: AttemptOutcome | undefined;
  let attempt = 0;
  const label = { cluster_name: clusterName };
  const random = deps.random ?? Math.random;
  try {
    while (attempt < maxAttempts) {
      attempt++;
      if (attempt > 1) {
        deps.stats.upstreamRqRetry.inc(label);
        await sleep(backoffMs(policy!, attempt - 1, random), overall.signal);
        if (overall.signal.aborted) break;
      }
      const ep = deps.pick(cluster, endpoints, { previous: tried, avoidPrevious: policy?.avoidPreviousHosts ?? false, attempt });
      if (!ep) {
        if (last) break;
        deps.stats.upstreamCxNoneHealthy.inc(label);
        return localReply({ status: 503, body: 'no healthy upstream', flags: ['UH'] });
      }
      tried.add(ep.key);
      if (attempt > 1 || maxAttempts > 1) headers['x-envoy-attempt-count'] = String(attempt);
      if (decision.action.autoHostRewrite && ep.hostname && decision.hostRewrite === undefined) headers.host = ep.hostname;
      const perTry = policy?.perTryTimeoutMs ?? 0;
      last = await deps.pools.send(
        { method: req.method ?? 'GET', path: decision.path, headers, body: replayable ? body : req, perTryTimeoutMs: perTry, signal: overall.signal },
        cluster,
        ep,
      );
      if (last.kind === 'response') {
        const canRetry = policy && attempt < maxAttempts && replayable && !overall.signal.aborted && retryable(policy, last);
        if (canRetry) {
          last.response.resume();
          continue;
        }
        return forwardResponse(last.response, ep.address);
      }
      if (last.kind === 'aborted' || last.kind === 'overflow') break;
      if (!(policy && replayable && retryable(policy, last))) break;
    }
  } finally {
    if (timer) clearTimeout(timer);
  }

  const retried = attempt > 1;
  const exhausted = retried && attempt >= maxAttempts ? ['URX'] : [];
  if (downstreamGone) return finish(0, ['DC']);
  if (timedOut) {
    deps.stats.upstreamRqTimeout.inc(label);
    return localReply({ status: 504, body: 'upstream request timeout', flags: ['UT'] });
  }
  const prefix = 'upstream connect error or disconnect/reset before headers. ';
  const reason = retried ? 'retried and the latest reset reason: ' : 'reset reason: ';
  switch (last?.kind) {
    case 'timeout':
      return localReply({ status: 504, body: 'upstream request timeout', flags: ['UT', ...exhausted] });
    case 'overflow':
      return localReply({ status: 503, body: `${prefix}${reason}overflow`, flags: ['UO'] });
    case 'connect-failure': {
      const tlsDetail = last.detail.startsWith('TLS error') ? `, transport failure reason: ${last.detail}` : '';
      return localReply({ status: 503, body: `${prefix}${reason}connection failure${tlsDetail}`, flags: ['UF', ...exhausted] });
    }
    case 'reset':
      return localReply({ status: 503, body: `${prefix}${reason}connection termination`, flags: ['UC', ...exhausted] });
    default:
      return localReply({ status: 503, body: 'no healthy upstream', flags: ['UH'] });
  }

  function forwardResponse(up: http.IncomingMessage, _endpoint: string): void {
    const status = up.statusCode ?? 502;
    const h = stripHopByHop(up.headers);
    applyMutations(h, decision.kind === 'route' ? decision.mutations : [], 'response');
    h['x-envoy-upstream-service-time'] = String(Math.round(performance.now() - started));
    if (!inbound) {
      const sock = up.socket as tls.TLSSocket | null;
      if (sock && 'getPeerCertificate' in sock && typeof sock.getPeerCertificate === 'function') {
        // Once per upstream connection, not per response; null: an odd certificate, no label.
        const peer = upstreamPeerSpiffeId(sock);
        if (peer !== null) {
          record.destinationPrincipal = peer;
          record.destinationWorkloadNamespace = namespaceOfSpiffe(peer);
        }
      }
    }
    const flags = attempt > 1 && attempt >= maxAttempts && status >= 500 ? ['URX'] : [];
    res.writeHead(status, up.statusMessage, h);
    up.pipe(res);
    up.once('error', () => res.destroy());
    up.once('close', () => {
      // Upstream reset mid-body: the only honest signal downstream is a reset too.
      if (!up.complete) {
        res.destroy();
        finish(status, ['UC', ...flags]);
      }
    });
    res.once('finish', () => finish(status, flags));
    res.once('close', () => {
      if (!res.writableFinished) {
        up.destroy();
        finish(status, ['DC', ...flags]);
      }
    });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
