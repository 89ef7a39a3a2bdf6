/**
 * Per-cluster upstream connection pools over the HTTP/1.1 codec (`../http1`): keep-alive
 * connections per endpoint (LIFO), sized by the cluster's circuit breakers, and `send`, which
 * makes one attempt to one endpoint and classifies how it went. Retries, endpoint choice and the
 * route timeout belong to the caller (the filter chain in listeners/filters); this file reports
 * every attempt's outcome to stats and to the outlier detector.
 *
 * Certificate rotation: the TLS settings are derived from the current secrets on each send; when
 * they change, the cluster gets a fresh pool and the old one is retired: requests already on it
 * finish on their connections, its idle connections are closed, and it is never used again.
 *
 * Per request there are no closures, listeners or AbortControllers: one Attempt object, its
 * timer, and the socket's per-connection listeners (ADR 0025). TLS sessions are resumed.
 */
import net from 'node:net';
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import { BodyDecoder, chunkHeader, CRLF, LAST_CHUNK, type BodyData } from '../http1/body.js';
import { hasToken, parseResponseHead, responseFraming, serializeFields, type Framing, type Headers } from '../http1/head.js';
import type { ClusterModel, EndpointModel } from '../model.js';
import { cachedUpstreamTlsSettings, TlsMaterialError, upstreamPeerSpiffeId, type Secrets } from '../net/tls.js';
import type { ProxyStats } from '../stats.js';
import { H2ClusterPool } from './h2pool.js';
import { MuxClusterPool } from './muxpool.js';
import { muxFromEnv } from '../mux/frame.js';
import { ClusterPoolBase, connectErrorDetail, UpstreamReads, type AttemptOutcome, type ResultSink, type UpstreamRequest, type UpstreamResponse } from './attempt.js';
import { AttemptBase } from './attemptbody.js';

export { Cancellation, type AttemptOutcome, type CancelSignal, type ResponseSink, type UpstreamRequest, type UpstreamResponse, type ResultSink, type UpstreamResult } from './attempt.js';

export interface PoolOptions {
  stats: ProxyStats;
  /** The secrets of the config in use now (SDS): read on each send so rotation is picked up. */
  secrets: () => Secrets;
  onResult?: ResultSink;
  /**
   * Idle keep-alive connections are closed after this long. Below Node's default server
   * keepAliveTimeout (5 s) so we rarely reuse a connection the app is just closing.
   */
  freeSocketTimeoutMs?: number;
  /** Offer isle-mux/1 on mTLS HTTP/1.1 clusters (ADR 0138); peers that do not pick it get HTTP/1.1. Default: `muxFromEnv()`. */
  mux?: boolean;
}


const EMPTY = Buffer.alloc(0);

/** One connection to one endpoint. */
class UpstreamConn implements BodyData {
  readonly socket: net.Socket;
  connected = false;
  /** Requests this connection has carried (0 while the first is in flight). */
  uses = 0;
  attempt: Attempt | null = null;
  /** Still counted in the pool's total (max_connections). */
  counted = true;
  /** When it last went back to the idle list (the pools' sweep closes it after idleTimeoutMs). */
  idleSince = 0;
  peerId: string | undefined | null = undefined;
  private buf: Buffer = EMPTY;
  private decoder: BodyDecoder | null = null;
  private reusable = true;
  private connectTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly pool: ClusterPool,
    readonly key: string,
    endpoint: EndpointModel,
    connectTimeoutMs: number,
    adopted?: { socket: tls.TLSSocket; reads: UpstreamReads },
  ) {
    const p = pool;
    if (adopted) {
      // A connection the mux pool opened to a peer that chose HTTP/1.1 (ADR 0138): already up
      // and counted; its reads (onread can only be given at connect) come here from now on.
      const s = adopted.socket;
      this.socket = s;
      adopted.reads.sink = (d: Buffer) => this.onData(d);
      s.on('error', (e: NodeJS.ErrnoException) => this.onError(e));
      s.once('close', () => this.onClose());
      this.connected = true;
      this.peerId = upstreamPeerSpiffeId(s);
      return;
    }
    const onread = new UpstreamReads((d: Buffer) => this.onData(d));
    if (p.tlsOptions) {
      const s = tls.connect({ ...p.tlsOptions, host: endpoint.address, port: endpoint.port, session: p.session, noDelay: true, onread } as tls.ConnectionOptions);
      s.once('secureConnect', () => this.onConnected());
      s.on('session', (session: Buffer) => (p.session = session));
      this.socket = s;
    } else {
      const s = net.connect({ host: endpoint.address, port: endpoint.port, noDelay: true, onread });
      s.once('connect', () => this.onConnected());
      this.socket = s;
    }
    const s = this.socket;
    s.setNoDelay(true);
    s.on('error', (e: NodeJS.ErrnoException) => this.onError(e));
    s.once('close', () => this.onClose());
    this.connectTimer = setTimeout(onConnectTimeout, connectTimeoutMs, this, connectTimeoutMs);
    p.stats.upstreamCxTotal.inc(p.label);
    p.stats.upstreamCxActive.inc(p.label);
  }

  private onConnected(): void {
    this.connected = true;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    if (this.pool.tlsOptions) this.peerId = upstreamPeerSpiffeId(this.socket as tls.TLSSocket);
  }

  /** Starts `a` on this connection (it may still be connecting: bytes are queued). */
  assign(a: Attempt): void {
    this.attempt = a;
    this.buf = EMPTY;
    a.conn = this;
    a.writeRequest(this.socket);
  }

  private onData(d: Buffer): void {
    const a = this.attempt;
    if (!a) {
      // Bytes with no request outstanding: the connection cannot be trusted any more.
      this.socket.destroy();
      return;
    }
    if (this.decoder) return this.feedBody(d, 0);
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      const r = parseResponseHead(this.buf, this.pool.limits);
      if (r === undefined) return;
      if ('error' in r) {
        a.failed('reset', `upstream protocol error: ${r.reason}`);
        this.socket.destroy();
        return;
      }
      const head = r.head;
      const rest = this.buf.subarray(r.length);
      this.buf = EMPTY;
      if (head.status >= 100 && head.status < 200 && head.status !== 101) {
        // 100 Continue and friends: wait for the real response.
        if (rest.length === 0) return;
        this.buf = rest;
        continue;
      }
      const framing = responseFraming(head.headers, head.status, a.req.method);
      if ('error' in framing) {
        a.failed('reset', `upstream protocol error: ${framing.reason}`);
        this.socket.destroy();
        return;
      }
      if (head.minor === 0 ? !hasToken(head.headers['connection'], 'keep-alive') : hasToken(head.headers['connection'], 'close')) this.reusable = false;
      if (framing.kind === 'close') this.reusable = false;
      this.decoder = new BodyDecoder(framing);
      a.gotHead(head.status, head.reason, head.headers, framing);
      if (this.decoder.done) return this.bodyComplete(rest);
      if (rest.length) this.feedBody(rest, 0);
      return;
    }
  }

  private feedBody(d: Buffer, start: number): void {
    const dec = this.decoder!;
    const at = dec.feed(d, start, this);
    if (at < 0) {
      this.attempt?.bodyBroken(`upstream protocol error: ${dec.error ?? 'bad body'}`);
      this.socket.destroy();
      return;
    }
    if (dec.done) this.bodyComplete(d.subarray(at));
  }

  bodyData(chunk: Buffer): void {
    this.attempt?.bodyData(chunk);
  }

  private bodyComplete(rest: Buffer): void {
    const trailers = this.decoder?.trailers;
    this.decoder = null;
    const a = this.attempt!;
    this.attempt = null;
    this.uses++;
    // Extra bytes after a complete response: the server is confused; do not reuse.
    if (rest.length) this.reusable = false;
    a.conn = null;
    this.pool.release(this, this.reusable && a.requestSent);
    a.bodyEnd(trailers);
  }

  private onError(e: NodeJS.ErrnoException): void {
    const a = this.attempt;
    if (!a) return;
    if (this.decoder) {
      this.attempt = null;
      a.bodyBroken(`${e.code ?? 'error'}: ${e.message}`);
      return;
    }
    if (!this.connected) {
      this.pool.stats.upstreamCxConnectFail.inc(this.pool.label);
      a.failed('connect-failure', connectErrorDetail(e));
    } else a.failed(this.uses > 0 && e.code === 'ECONNRESET' ? 'stale' : 'reset', `${e.code ?? 'error'}: ${e.message}`);
  }

  private onClose(): void {
    clearTimeout(this.connectTimer);
    this.pool.stats.upstreamCxActive.dec(this.pool.label);
    this.pool.closed(this);
    const a = this.attempt;
    this.attempt = null;
    if (!a) return;
    if (this.decoder) {
      // A close-delimited body ends here; any other is cut short.
      if (this.decoder.eof()) {
        this.decoder = null;
        a.conn = null;
        a.bodyEnd();
      } else a.bodyBroken('upstream closed the connection mid-body');
      return;
    }
    if (!this.connected) a.failed('connect-failure', 'connection closed before it was established');
    else a.failed(this.uses > 0 ? 'stale' : 'reset', 'upstream closed the connection before response headers');
  }

  /** The attempt gave up on this connection (timeout, abort): it cannot carry another request. */
  abandon(): void {
    this.attempt = null;
    this.socket.destroy();
  }
}

function onConnectTimeout(c: UpstreamConn, ms: number): void {
  if (!c.connected) c.socket.destroy(Object.assign(new Error(`connect timeout after ${ms} ms`), { code: 'ISLE_CONNECT_TIMEOUT' }));
}

/** The connections of one cluster for one TLS configuration. */
class ClusterPool extends ClusterPoolBase<UpstreamPools> {
  readonly idle = new Map<string, UpstreamConn[]>();
  readonly waiters: Attempt[] = [];
  total = 0;
  readonly limits = { maxHeaders: 100, maxHeadBytes: 60 * 1024 };

  /**
   * Takes over a TLS connection that negotiated HTTP/1.1 for the mux pool (ADR 0138): it becomes
   * an idle keep-alive connection of this pool (or serves a waiter).
   */
  adopt(socket: tls.TLSSocket, endpoint: EndpointModel, reads: UpstreamReads): void {
    this.total++;
    const c = new UpstreamConn(this, endpoint.key, endpoint, 0, { socket, reads });
    this.release(c, true);
  }

  /** One attempt on this pool (the mux pool's fallback; `UpstreamPools.send` does the bookkeeping first). */
  send(req: UpstreamRequest, cluster: ClusterModel, endpoint: EndpointModel): Promise<AttemptOutcome> {
    return new Attempt(this.owner, this, req, cluster, endpoint).run();
  }

  acquire(a: Attempt): void {
    const key = a.endpointKey;
    const list = this.idle.get(key);
    if (list) {
      let conn: UpstreamConn | undefined;
      while ((conn = list.pop()) && conn.socket.destroyed) this.uncount(conn);
      if (list.length === 0) this.idle.delete(key);
      if (conn) return conn.assign(a);
    }
    if (this.total < this.maxConnections) return this.open(a);
    // At max_connections: take another endpoint's idle connection's slot, or wait.
    for (const [k, l] of this.idle) {
      const victim = l.pop();
      if (l.length === 0) this.idle.delete(k);
      if (victim) {
        this.uncount(victim);
        victim.socket.destroy();
        return this.open(a);
      }
    }
    this.waiters.push(a);
  }

  open(a: Attempt): void {
    this.total++;
    new UpstreamConn(this, a.endpointKey, a.endpoint, a.cluster.connectTimeoutMs).assign(a);
  }

  /** A connection stops counting against max_connections (once). */
  private uncount(c: UpstreamConn): void {
    if (c.counted) {
      c.counted = false;
      this.total--;
    }
  }

  /** A response ended: keep the connection for the next request, or close it. */
  release(c: UpstreamConn, reusable: boolean): void {
    if (!reusable || this.retired || c.socket.destroyed) {
      c.socket.destroy();
      return;
    }
    c.socket.resume();
    const w = this.waiters.shift();
    if (w) {
      if (w.endpointKey === c.key) return c.assign(w);
      this.uncount(c);
      c.socket.destroy();
      return this.open(w);
    }
    c.idleSince = performance.now();
    // A body that ended while the downstream was full left the socket paused: an idle connection
    // must read, to see the server close it (and the next response).
    c.socket.resume();
    const list = this.idle.get(c.key);
    if (list) list.push(c);
    else this.idle.set(c.key, [c]);
    this.owner.watchIdle();
  }

  /** A socket closed (by us or the peer). */
  closed(c: UpstreamConn): void {
    const list = this.idle.get(c.key);
    if (list) {
      const i = list.indexOf(c);
      if (i >= 0) {
        list.splice(i, 1);
        if (list.length === 0) this.idle.delete(c.key);
      }
    }
    this.uncount(c);
    const w = this.waiters.length && this.total < this.maxConnections ? this.waiters.shift() : undefined;
    if (w) this.open(w);
    this.owner.poolEmptied(this);
  }

  dropWaiter(a: Attempt): void {
    const i = this.waiters.indexOf(a);
    if (i >= 0) this.waiters.splice(i, 1);
  }

  counts(): { connections: number; idle: number } {
    let idle = 0;
    for (const l of this.idle.values()) idle += l.length;
    return { connections: this.total, idle };
  }

  /** Closes connections idle for longer than idleTimeoutMs (a sweep, not a timer per socket). */
  sweep(now: number): number {
    let left = 0;
    for (const l of [...this.idle.values()]) {
      for (const c of [...l]) {
        if (now - c.idleSince > this.idleTimeoutMs) c.socket.destroy();
        else left++;
      }
    }
    return left;
  }

  closeIdle(): void {
    for (const l of [...this.idle.values()]) for (const c of [...l]) c.socket.destroy();
  }
}

/** One request attempt: also the UpstreamResponse handed to the caller. */
class Attempt extends AttemptBase implements UpstreamResponse {
  conn: UpstreamConn | null = null;
  status = 0;
  statusMessage = '';
  headers: Headers = {};
  framing: Framing = { kind: 'none' };
  peerId: string | undefined | null = undefined;
  requestSent = false;
  private staleRetried = false;
  readonly endpointKey: string;

  constructor(
    readonly pools: UpstreamPools,
    readonly pool: ClusterPool,
    readonly req: UpstreamRequest,
    readonly cluster: ClusterModel,
    readonly endpoint: EndpointModel,
  ) {
    super();
    this.endpointKey = endpoint.key;
  }

  get secure(): boolean {
    return this.pool.secure;
  }

  run(): Promise<AttemptOutcome> {
    const p = this.begin();
    if (this.settled) return p;
    const req = this.req;
    if (req.perTryTimeoutMs && req.perTryTimeoutMs > 0) this.timer = setTimeout(onPerTryTimeout, req.perTryTimeoutMs, this);
    this.pool.acquire(this);
    return p;
  }

  /** Serializes the request onto the socket: one write for the head and a buffered body. */
  writeRequest(socket: net.Socket): void {
    const req = this.req;
    const body = req.body;
    let framing = '';
    let chunked = false;
    let headers = req.headers;
    const declared = headers['content-length'];
    if (body === null || Buffer.isBuffer(body)) {
      const n = body === null ? 0 : body.length;
      // A Content-Length must say what follows; anything else would let the next bytes on the
      // connection be read as another request (ADR 0138, review finding 1): the body wins.
      if (declared !== undefined && declared !== String(n)) headers = { ...headers, 'content-length': String(n) };
      else if (declared === undefined && body !== null && (n > 0 || req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH')) framing = `content-length: ${n}\r\n`;
    } else if (declared === undefined || !/^\d{1,15}$/.test(String(declared))) {
      if (declared !== undefined) {
        headers = { ...headers };
        delete headers['content-length'];
      }
      framing = 'transfer-encoding: chunked\r\n';
      chunked = true;
    }
    const head = `${req.method} ${req.path} HTTP/1.1\r\n${serializeFields(headers)}${framing}\r\n`;
    if (body === null || Buffer.isBuffer(body)) {
      if (!body || body.length === 0) socket.write(head, 'latin1');
      else {
        const hl = Buffer.byteLength(head, 'latin1');
        const out = Buffer.allocUnsafe(hl + body.length);
        out.write(head, 0, 'latin1');
        body.copy(out, hl);
        socket.write(out);
      }
      this.requestSent = true;
      return;
    }
    socket.write(head, 'latin1');
    this.streamBody(socket, body, chunked ? -1 : Number(declared));
  }

  /** `length`: the Content-Length sent (never more is written), or -1: chunked. */
  private streamBody(socket: net.Socket, body: Readable, length: number): void {
    const chunked = length < 0;
    let left = length;
    // Streaming request bodies are rare on the hot path; closures are fine here.
    const onData = (c: Buffer): void => {
      if (this.settled && !this.status) return;
      if (!chunked && (left -= c.length) < 0) {
        // More than the Content-Length: the rest would be read as another request.
        cleanup();
        body.pause();
        return this.bodyFailed('request body longer than its Content-Length');
      }
      let ok: boolean;
      if (chunked) {
        socket.cork();
        socket.write(chunkHeader(c.length), 'latin1');
        socket.write(c);
        ok = socket.write(CRLF);
        socket.uncork();
      } else ok = socket.write(c);
      if (!ok) body.pause();
    };
    const onEnd = (): void => {
      if (chunked) socket.write(LAST_CHUNK);
      this.requestSent = true;
      cleanup();
    };
    const onDrain = (): void => void body.resume();
    // The downstream went away mid-body: the upstream request cannot be completed.
    const onError = (): void => {
      cleanup();
      this.bodyFailed('request body failed');
    };
    const cleanup = (): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      socket.off('drain', onDrain);
      // The socket is kept alive for other requests: leave no listener of this one behind.
      socket.off('close', cleanup);
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    socket.on('drain', onDrain);
    socket.once('close', cleanup);
  }

  /** The request body cannot be sent whole: the attempt fails, or the connection is abandoned. */
  private bodyFailed(reason: string): void {
    if (!this.settled) return this.settle({ kind: 'reset', detail: reason });
    const c = this.conn;
    if (this.ended || this.broken !== undefined) return c?.abandon();
    this.bodyBroken(reason);
    c?.abandon();
  }

  gotHead(status: number, reason: string, headers: Headers, framing: Framing): void {
    this.status = status;
    this.statusMessage = reason;
    this.headers = headers;
    this.framing = framing;
    this.peerId = this.conn?.peerId;
    if (this.settled) {
      // Timed out or aborted meanwhile: the connection was abandoned already.
      return;
    }
    this.pool.counters.response(status);
    this.settle({ kind: 'response', status, response: this });
  }

  bodyData(chunk: Buffer): void {
    if (this.sink) {
      if (!this.sink.data(chunk)) this.conn?.socket.pause();
    } else (this.early ??= []).push(chunk);
  }

  bodyEnd(trailers?: Headers): void {
    this.ended = true;
    this.trailers = trailers;
    this.pools.release(this.cluster.name);
    if (this.sink) this.sink.end(trailers);
  }

  bodyBroken(reason: string): void {
    this.broken = reason;
    this.conn = null;
    this.pools.release(this.cluster.name);
    if (this.sink) this.sink.abort(reason);
  }

  protected pauseBody(): void {
    this.conn?.socket.pause();
  }

  flow(): void {
    this.conn?.socket.resume();
  }

  protected dropped(live: boolean): void {
    // Even after the body ended the connection is no longer this attempt's (a later flow() must not touch it).
    const c = this.conn;
    this.conn = null;
    if (!live) return;
    c?.abandon();
    this.pools.release(this.cluster.name);
  }

  /** How an attempt ended before a response (or the stale-connection case). */
  failed(kind: 'connect-failure' | 'reset' | 'stale', detail: string): void {
    if (this.settled) return;
    const body = this.req.body;
    if (kind === 'stale') {
      // A keep-alive connection the server closed while idle: not the endpoint's fault, and
      // nothing reached it, so one fresh connection is tried without counting an attempt.
      if (!this.staleRetried && (body === null || Buffer.isBuffer(body))) {
        this.staleRetried = true;
        const old = this.conn;
        this.conn = null;
        if (old) old.attempt = null;
        this.pool.open(this);
        return;
      }
      kind = 'reset';
    }
    this.settle(kind === 'connect-failure' ? { kind, detail } : { kind: 'reset', detail });
  }

  settle(o: AttemptOutcome): void {
    if (!this.beginSettle()) return;
    if (o.kind !== 'response') {
      const body = this.req.body;
      if (body && !Buffer.isBuffer(body)) body.pause();
      this.pool.dropWaiter(this);
      const c = this.conn;
      this.conn = null;
      if (c) {
        c.abandon();
      }
      this.pools.release(this.cluster.name);
    }
    this.pools.report(this.cluster, this.endpoint, o);
    this.resolve(o);
  }
}

function onPerTryTimeout(a: Attempt): void {
  a.pool.stats.upstreamRqPerTryTimeout.inc(a.pool.label);
  a.settle({ kind: 'timeout' });
}


type AnyPool = ClusterPool | H2ClusterPool | MuxClusterPool;

export class UpstreamPools {
  private readonly entries = new Map<string, AnyPool>();
  private readonly retired = new Set<AnyPool>();
  /** By cluster name, across pool swaps: circuit breakers count the cluster, not one pool. */
  private readonly inflight = new Map<string, number>();

  private readonly mux: boolean;

  constructor(private readonly opts: PoolOptions) {
    this.mux = opts.mux ?? muxFromEnv();
  }

  /** Drops pools of clusters that are gone; their in-flight requests finish first. */
  retain(clusters: ReadonlyMap<string, ClusterModel>): void {
    for (const [name, e] of this.entries) {
      if (!clusters.has(name)) {
        this.retire(e);
        this.entries.delete(name);
        if (!this.inflight.get(name)) this.inflight.delete(name);
      }
    }
  }

  /** Per-cluster pool state for /clusters. */
  snapshot(): Array<{ cluster: string; inflight: number; connections: number; idle: number; tls: boolean; mux?: { connections: number; http1Endpoints: number } }> {
    return [...this.entries].map(([cluster, e]) => ({
      cluster,
      inflight: this.inflight.get(cluster) ?? 0,
      ...e.counts(),
      tls: e.secure,
      ...(e instanceof MuxClusterPool ? { mux: { connections: e.conns.size, http1Endpoints: e.http1Only.size } } : {}),
    }));
  }

  close(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const e of [...this.entries.values(), ...this.retired]) {
      e.retired = true;
      for (const w of e.waiters.splice(0)) w.settle({ kind: 'aborted' });
      e.closeIdle();
    }
    this.entries.clear();
    this.retired.clear();
  }

  private retire(p: AnyPool): void {
    // Connections still carrying a request are closed when they come back to the pool.
    p.retired = true;
    p.closeIdle();
    if (p.total > 0) this.retired.add(p);
  }

  private sweeper: NodeJS.Timeout | undefined;

  /** @internal Some pool has idle connections: make sure the sweep runs. */
  watchIdle(): void {
    if (this.sweeper) return;
    let every = 1000;
    for (const p of this.entries.values()) every = Math.min(every, Math.max(25, p.idleTimeoutMs / 4));
    this.sweeper = setInterval(() => {
      const now = performance.now();
      let left = 0;
      for (const p of this.entries.values()) left += p.sweep(now);
      for (const p of this.retired) p.closeIdle();
      if (left === 0) {
        clearInterval(this.sweeper);
        this.sweeper = undefined;
      }
    }, every);
    this.sweeper.unref();
  }

  /** @internal A pool lost a connection: forget a retired pool once it is empty. */
  poolEmptied(p: AnyPool | { retired: boolean; total: number }): void {
    if (p instanceof ClusterPool) {
      // A mux pool's HTTP/1.1 fallback counts towards the mux pool's total.
      for (const r of this.retired) if (r instanceof MuxClusterPool && r.http1 === p) p = r;
    }
    if (p.retired && p.total === 0) this.retired.delete(p as AnyPool);
  }

  private pool(cluster: ClusterModel): AnyPool {
    const http2 = cluster.http2;
    const settings = cluster.tls ? cachedUpstreamTlsSettings(cluster.tls, this.opts.secrets(), http2) : undefined;
    const maxConnections = cluster.circuitBreakers.maxConnections;
    let e = this.entries.get(cluster.name);
    if (!e || e.tlsId !== settings?.id || e.maxConnections !== maxConnections || e instanceof H2ClusterPool !== http2) {
      const idleMs = Math.min(this.opts.freeSocketTimeoutMs ?? 4000, cluster.idleTimeoutMs || Infinity);
      let fresh: AnyPool;
      if (!http2 && settings && this.mux) {
        const h1 = new ClusterPool(this, this.opts.stats, cluster.name, settings.id, settings.options, maxConnections, idleMs);
        fresh = new MuxClusterPool(this, this.opts.stats, cluster.name, settings.id, settings.options, maxConnections, idleMs, h1);
      } else {
        const Pool = http2 ? H2ClusterPool : ClusterPool;
        fresh = new Pool(this, this.opts.stats, cluster.name, settings?.id, settings?.options, maxConnections, idleMs);
      }
      if (e) this.retire(e);
      e = fresh;
      this.entries.set(cluster.name, e);
    }
    return e;
  }

  /** Makes one attempt. Never rejects. */
  send(req: UpstreamRequest, cluster: ClusterModel, endpoint: EndpointModel): Promise<AttemptOutcome> {
    const stats = this.opts.stats;
    let pool: AnyPool;
    try {
      pool = this.pool(cluster);
    } catch (e) {
      if (!(e instanceof TlsMaterialError)) throw e;
      stats.upstreamCxConnectFail.inc({ cluster_name: cluster.name });
      return Promise.resolve({ kind: 'connect-failure', detail: `TLS error: ${e.message}` });
    }
    const cb = cluster.circuitBreakers;
    const inflight = this.inflight.get(cluster.name) ?? 0;
    // HTTP/2 multiplexes: only max_requests bounds it (Envoy's rule); HTTP/1.1 also queues.
    if (inflight >= (pool instanceof H2ClusterPool ? cb.maxRequests : Math.min(cb.maxRequests, cb.maxConnections + cb.maxPendingRequests))) {
      stats.upstreamRqPendingOverflow.inc(pool.label);
      return Promise.resolve({ kind: 'overflow' });
    }
    pool.counters.attempt();
    this.inflight.set(cluster.name, inflight + 1);
    return pool.send(req, cluster, endpoint);
  }

  /** @internal An attempt is over (response body done, or no response). */
  release(cluster: string): void {
    const n = (this.inflight.get(cluster) ?? 1) - 1;
    // A count of 0 stays (until the cluster goes, retain): a delete and an insert per request
    // would make V8 rebuild the Map's table every few requests, in old space (ADR 0150).
    if (n <= 0 && !this.entries.has(cluster)) this.inflight.delete(cluster);
    else this.inflight.set(cluster, Math.max(0, n));
  }

  /** @internal */
  report(cluster: ClusterModel, endpoint: EndpointModel, o: AttemptOutcome): void {
    const sink = this.opts.onResult;
    if (!sink) return;
    switch (o.kind) {
      case 'response':
        return sink(cluster, endpoint, { kind: 'http', status: o.status });
      case 'connect-failure':
      case 'reset':
      case 'timeout':
        return sink(cluster, endpoint, { kind: o.kind });
      default:
        return;
    }
  }
}
