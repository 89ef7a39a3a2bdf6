/**
 * The HTTP/2 upstream of a cluster whose protocol options say `http2_protocol_options` (Istio
 * sets them for http2/grpc ports): one multiplexed connection per endpoint, as Linkerd does
 * between its proxies, reused by every request; h2c towards a plaintext endpoint (the app behind
 * an inbound cluster), ALPN `h2` over mTLS towards a peer sidecar. Trailers are handed on.
 *
 * Same contract as the HTTP/1.1 pool (`pool.ts`): `send` makes one attempt and resolves with how
 * it went, never rejects; the outcome is reported to stats and the outlier detector by the
 * owner. node:http2 does the framing (ADR 0080).
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import net from 'node:net';
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import type { Framing, Headers } from '../http1/head.js';
import { h2Fields } from '../http2/server.js';
import type { ClusterModel, EndpointModel } from '../model.js';
import { upstreamPeerSpiffeId } from '../net/tls.js';
import { ClusterPoolBase, connectErrorDetail, type AttemptOutcome, type UpstreamRequest, type UpstreamResponse } from './attempt.js';
import { AttemptBase } from './attemptbody.js';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

/** What the h2 pool needs from `UpstreamPools` (release of the circuit-breaker count, outcome report). */
export interface H2PoolOwner {
  release(cluster: string): void;
  report(cluster: ClusterModel, endpoint: EndpointModel, o: AttemptOutcome): void;
  watchIdle(): void;
  /** A retired pool's last connection closed: it can be forgotten. */
  poolEmptied(p: H2ClusterPool): void;
}


/** One HTTP/2 connection to one endpoint. */
class H2Conn {
  readonly session: ClientHttp2Session;
  connected = false;
  /** Streams in flight. */
  active = 0;
  idleSince = performance.now();
  peerId: string | undefined | null = undefined;
  private waiting: H2Attempt[] = [];
  private connectTimer: NodeJS.Timeout | undefined;
  private failure: string | undefined;

  constructor(
    readonly pool: H2ClusterPool,
    readonly key: string,
    endpoint: EndpointModel,
    connectTimeoutMs: number,
  ) {
    const p = pool;
    const tlsOptions = p.tlsOptions;
    const host = endpoint.address.includes(':') ? `[${endpoint.address}]` : endpoint.address;
    let socket: net.Socket;
    if (tlsOptions) {
      const s = tls.connect({ ...tlsOptions, host: endpoint.address, port: endpoint.port, session: p.session, noDelay: true } as tls.ConnectionOptions);
      s.on('session', (session: Buffer) => (p.session = session));
      socket = s;
    } else socket = net.connect({ host: endpoint.address, port: endpoint.port, noDelay: true });
    socket.setNoDelay(true);
    this.session = http2.connect(`${tlsOptions ? 'https' : 'http'}://${host}:${endpoint.port}`, {
      createConnection: () => socket,
      settings: { enablePush: false },
      maxSessionMemory: 64,
    });
    const s = this.session;
    s.once('connect', () => this.onConnected(socket));
    s.on('error', (e: NodeJS.ErrnoException) => this.onError(e));
    s.once('close', () => this.onClose());
    s.on('goaway', () => this.pool.forget(this));
    this.connectTimer = setTimeout(onConnectTimeout, connectTimeoutMs, this, connectTimeoutMs);
    p.stats.upstreamCxTotal.inc(p.label);
    p.stats.upstreamCxActive.inc(p.label);
  }

  get usable(): boolean {
    return !this.session.closed && !this.session.destroyed && this.failure === undefined;
  }

  private onConnected(socket: net.Socket): void {
    this.connected = true;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    if (this.pool.tlsOptions) {
      const t = socket as tls.TLSSocket;
      if (t.alpnProtocol !== 'h2' && t.alpnProtocol !== false) {
        // The peer chose another protocol: speaking HTTP/2 anyway would only get a protocol
        // error. No ALPN at all is prior knowledge, as Envoy does for an http2 cluster.
        return this.fail('connect-failure', `TLS error: the upstream did not negotiate ALPN h2 (got ${JSON.stringify(t.alpnProtocol)})`);
      }
      this.peerId = upstreamPeerSpiffeId(t);
    }
    const w = this.waiting;
    this.waiting = [];
    for (const a of w) a.start(this);
  }

  /** Starts `a` now, or once the connection is up. */
  assign(a: H2Attempt): void {
    this.active++;
    if (this.connected) a.start(this);
    else this.waiting.push(a);
  }

  unassign(a: H2Attempt): void {
    const i = this.waiting.indexOf(a);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  streamDone(): void {
    this.active--;
    if (this.active === 0) {
      this.idleSince = performance.now();
      this.pool.owner.watchIdle();
    }
  }

  private fail(kind: 'connect-failure' | 'reset', detail: string): void {
    this.failure = detail;
    this.pool.forget(this);
    const w = this.waiting;
    this.waiting = [];
    for (const a of w) a.failed(kind, detail);
    this.session.destroy();
  }

  private onError(e: NodeJS.ErrnoException): void {
    if (!this.connected) {
      this.pool.stats.upstreamCxConnectFail.inc(this.pool.label);
      return this.fail('connect-failure', connectErrorDetail(e));
    }
    this.fail('reset', `${e.code ?? 'error'}: ${e.message}`);
  }

  private onClose(): void {
    clearTimeout(this.connectTimer);
    this.pool.stats.upstreamCxActive.dec(this.pool.label);
    this.pool.forget(this);
    if (this.waiting.length) this.fail(this.connected ? 'reset' : 'connect-failure', this.failure ?? 'connection closed before it was established');
    this.pool.owner.poolEmptied(this.pool);
  }
}

function onConnectTimeout(c: H2Conn, ms: number): void {
  if (!c.connected) c.session.destroy(Object.assign(new Error(`connect timeout after ${ms} ms`), { code: 'ISLE_CONNECT_TIMEOUT' }));
}

/** The HTTP/2 connections of one cluster for one TLS configuration. */
export class H2ClusterPool extends ClusterPoolBase<H2PoolOwner> {
  readonly conns = new Map<string, H2Conn>();
  /** The HTTP/1.1 pool's queue; HTTP/2 never queues (streams multiplex). */
  readonly waiters: { settle(o: AttemptOutcome): void }[] = [];

  get total(): number {
    return this.conns.size;
  }

  /** Makes one attempt on the endpoint's connection (opened on first use). */
  send(req: UpstreamRequest, cluster: ClusterModel, endpoint: EndpointModel): Promise<AttemptOutcome> {
    return new H2Attempt(this, req, cluster, endpoint).run();
  }

  connFor(endpoint: EndpointModel, connectTimeoutMs: number): H2Conn {
    let c = this.conns.get(endpoint.key);
    if (!c || !c.usable) {
      c = new H2Conn(this, endpoint.key, endpoint, connectTimeoutMs);
      this.conns.set(endpoint.key, c);
    }
    return c;
  }

  /** A connection that must take no new streams (GOAWAY, error, closed). */
  forget(c: H2Conn): void {
    if (this.conns.get(c.key) === c) this.conns.delete(c.key);
    if (this.retired && c.active === 0) c.session.close();
  }

  counts(): { connections: number; idle: number } {
    let idle = 0;
    for (const c of this.conns.values()) if (c.active === 0) idle++;
    return { connections: this.conns.size, idle };
  }

  /** Closes connections without streams for longer than idleTimeoutMs; returns how many are left. */
  sweep(now: number): number {
    let left = 0;
    for (const c of [...this.conns.values()]) {
      if (c.active === 0 && now - c.idleSince > this.idleTimeoutMs) {
        this.conns.delete(c.key);
        c.session.close();
      } else left++;
    }
    return left;
  }

  closeIdle(): void {
    for (const c of [...this.conns.values()]) {
      if (c.active > 0) continue;
      this.conns.delete(c.key);
      c.session.close();
    }
  }
}

const enum St {
  Waiting,
  Sent,
  Response,
  Done,
}

/** One request attempt on an HTTP/2 stream: also the UpstreamResponse handed to the caller. */
class H2Attempt extends AttemptBase implements UpstreamResponse {
  status = 0;
  statusMessage = '';
  headers: Headers = {};
  framing: Framing = { kind: 'none' };
  peerId: string | undefined | null = undefined;
  private st = St.Waiting;
  private conn: H2Conn | null = null;
  private stream: ClientHttp2Stream | null = null;
  private refusedRetried = false;

  constructor(
    readonly pool: H2ClusterPool,
    readonly req: UpstreamRequest,
    readonly cluster: ClusterModel,
    readonly endpoint: EndpointModel,
  ) {
    super();
  }

  get secure(): boolean {
    return this.pool.secure;
  }

  run(): Promise<AttemptOutcome> {
    const p = this.begin();
    if (this.settled) return p;
    this.conn = this.pool.connFor(this.endpoint, this.cluster.connectTimeoutMs);
    this.conn.assign(this);
    return p;
  }

  /** The connection is up: open the stream and send the request. */
  start(conn: H2Conn): void {
    if (this.settled) return;
    const req = this.req;
    const h = h2Fields(req.headers, {
      ':method': req.method,
      ':path': req.path,
      ':scheme': this.pool.secure ? 'https' : 'http',
      ':authority': String(req.headers['host'] ?? `${this.endpoint.address}:${this.endpoint.port}`),
    });
    const body = req.body;
    const endStream = body === null || (Buffer.isBuffer(body) && body.length === 0);
    if (Buffer.isBuffer(body) && h['content-length'] === undefined && body.length > 0) h['content-length'] = body.length;
    let stream: ClientHttp2Stream;
    try {
      stream = conn.session.request(h, { endStream });
    } catch (e) {
      this.failed('reset', `cannot open an HTTP/2 stream: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    this.stream = stream;
    this.st = St.Sent;
    stream.on('response', (headers: IncomingHttpHeaders, flags: number) => this.onResponse(headers, flags));
    stream.on('data', (c: Buffer) => this.bodyData(c));
    stream.on('trailers', (t: IncomingHttpHeaders) => (this.trailers = plainHeaders(t)));
    stream.once('end', () => this.bodyEnd());
    stream.once('close', () => this.onStreamClose(stream));
    stream.on('error', () => undefined);
    if (!endStream) {
      if (Buffer.isBuffer(body)) stream.end(body);
      else pipeBody(body as Readable, stream);
    }
  }

  private onResponse(headers: IncomingHttpHeaders, flags: number): void {
    const status = Number(headers[':status']);
    if (status >= 100 && status < 200) return;
    this.status = status;
    this.headers = plainHeaders(headers);
    const cl = headers['content-length'];
    const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    // `none` tells the downstream codec that nothing follows: a gRPC trailers-only response
    // must stay a single HEADERS frame with END_STREAM.
    this.framing = endStream ? { kind: 'none' } : typeof cl === 'string' && /^\d+$/.test(cl) ? { kind: 'length', length: Number(cl) } : { kind: 'chunked' };
    this.peerId = this.conn?.peerId;
    this.st = St.Response;
    if (this.settled) return;
    this.pool.counters.response(status);
    this.settle({ kind: 'response', status, response: this });
  }

  private bodyData(chunk: Buffer): void {
    if (this.sink) {
      if (!this.sink.data(chunk)) this.stream?.pause();
    } else (this.early ??= []).push(chunk);
  }

  private bodyEnd(): void {
    if (this.st !== St.Response || this.ended) return;
    this.ended = true;
    this.done();
    if (this.sink) this.sink.end(this.trailers);
  }

  private onStreamClose(stream: ClientHttp2Stream): void {
    const conn = this.conn;
    if (conn) {
      this.conn = null;
      conn.streamDone();
    }
    if (this.st === St.Response) {
      if (this.ended) return;
      // The body never completed ('close' follows 'end' otherwise): an RST_STREAM, or the
      // connection went away mid-body.
      this.broken = `upstream reset the stream mid-body (code ${stream.rstCode ?? 'unknown'})`;
      this.pool.owner.release(this.cluster.name);
      this.st = St.Done;
      if (this.sink) this.sink.abort(this.broken);
      return;
    }
    if (this.settled) return;
    if (stream.rstCode === NGHTTP2_REFUSED_STREAM && !this.refusedRetried && (this.req.body === null || Buffer.isBuffer(this.req.body))) {
      // The server did not process it (GOAWAY race, stream limit): one more try on a fresh connection.
      this.refusedRetried = true;
      this.st = St.Waiting;
      this.conn = this.pool.connFor(this.endpoint, this.cluster.connectTimeoutMs);
      this.conn.assign(this);
      return;
    }
    this.failed('reset', `upstream reset the stream before response headers (code ${stream.rstCode ?? 'unknown'})`);
  }

  private done(): void {
    if (this.st === St.Done) return;
    this.st = St.Done;
    this.pool.owner.release(this.cluster.name);
  }

  protected pauseBody(): void {
    this.stream?.pause();
  }

  flow(): void {
    this.stream?.resume();
  }

  protected dropped(live: boolean): void {
    if (!live) return;
    const s = this.stream;
    if (s && !s.destroyed) s.close(NGHTTP2_CANCEL);
    if (this.st !== St.Done) {
      this.st = St.Done;
      this.pool.owner.release(this.cluster.name);
    }
  }

  failed(kind: 'connect-failure' | 'reset', detail: string): void {
    this.settle(kind === 'connect-failure' ? { kind, detail } : { kind: 'reset', detail });
  }

  settle(o: AttemptOutcome): void {
    if (!this.beginSettle()) return;
    if (o.kind !== 'response') {
      const body = this.req.body;
      if (body && !Buffer.isBuffer(body)) body.pause();
      const s = this.stream;
      if (s && !s.destroyed) s.close(NGHTTP2_CANCEL);
      const c = this.conn;
      if (c && this.st === St.Waiting) {
        // Never got a stream: give the slot back now (a stream's 'close' does it otherwise).
        c.unassign(this);
        this.conn = null;
        c.streamDone();
      }
      this.done();
    }
    this.pool.owner.report(this.cluster, this.endpoint, o);
    this.resolve(o);
  }
}

/** node:http2 headers without pseudo-headers, in the codec-neutral shape. */
function plainHeaders(h: IncomingHttpHeaders): Headers {
  const out: Headers = {};
  for (const k in h) {
    if (k.charCodeAt(0) === 58) continue;
    const v = h[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function pipeBody(body: Readable, stream: ClientHttp2Stream): void {
  // Streaming request bodies (client-streaming gRPC): closures are fine off the hot path.
  const onData = (c: Buffer): void => {
    if (!stream.write(c)) body.pause();
  };
  const onEnd = (): void => {
    cleanup();
    stream.end();
  };
  const onDrain = (): void => void body.resume();
  const onError = (): void => {
    cleanup();
    if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
  };
  const cleanup = (): void => {
    body.off('data', onData);
    body.off('end', onEnd);
    body.off('error', onError);
    stream.off('drain', onDrain);
  };
  body.on('data', onData);
  body.once('end', onEnd);
  body.once('error', onError);
  stream.on('drain', onDrain);
  stream.once('close', cleanup);
}

