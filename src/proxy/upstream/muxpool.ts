/**
 * The upstream side of `isle-mux/1` (ADR 0138): towards an HTTP/1.1 cluster over mTLS, one
 * multiplexed connection per endpoint that offers ALPN `isle-mux/1` before `http/1.1`. When the
 * peer is an Isle sidecar it picks `isle-mux/1`, and every request to that endpoint becomes a
 * stream on that connection, its frames written together with the other streams' of the same
 * turn. Any other peer (Envoy, an app's TLS server) picks `http/1.1` or nothing: that connection
 * is closed, the endpoint is remembered as HTTP/1.1-only for this pool's life, and its requests
 * take the HTTP/1.1 pool (`pool.ts`) exactly as without mux.
 *
 * Same contract as the other pools: `send` makes one attempt and resolves with how it went,
 * never rejects. A per-try timeout, an abort or a dropped response resets only its stream; a
 * connection that breaks fails only the attempts on it (the retry filter does the rest); a
 * GOAWAY sends new attempts to a fresh connection and those the peer refused are sent again once.
 */
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import { allowedTrailers, MAX_TRAILER_BYTES } from '../http1/body.js';
import { parseResponseHead, responseFraming, serializeFields, type Framing, type Headers } from '../http1/head.js';
import type { ClusterModel, EndpointModel } from '../model.js';
import { FLAG_END, FrameType, MAX_CONCURRENT_STREAMS, MUX_ALPN, parseU32Frame, prefaceFrame, INITIAL_WINDOW, ResetCode, u32Frame } from '../mux/frame.js';
import { InStream, MuxSession, OutStream, type DrainListener } from '../mux/session.js';
import { StreamTable } from '../mux/streamtable.js';
import { upstreamPeerSpiffeId } from '../net/tls.js';
import type { ProxyStats } from '../stats.js';
import { ClusterPoolBase, connectErrorDetail, UpstreamReads, type AttemptOutcome, type UpstreamRequest, type UpstreamResponse } from './attempt.js';
import { AttemptBase } from './attemptbody.js';

/** What the mux pool needs from `UpstreamPools`. */
export interface MuxPoolOwner {
  release(cluster: string): void;
  report(cluster: ClusterModel, endpoint: EndpointModel, o: AttemptOutcome): void;
  watchIdle(): void;
  poolEmptied(p: { retired: boolean; total: number }): void;
}

/** The HTTP/1.1 pool of the same cluster and TLS settings (peers that do not speak mux). */
export interface Http1Fallback {
  send(req: UpstreamRequest, cluster: ClusterModel, endpoint: EndpointModel): Promise<AttemptOutcome>;
  /** A connection that negotiated HTTP/1.1: kept as one of the pool's keep-alive connections. */
  adopt(socket: tls.TLSSocket, endpoint: EndpointModel, reads: UpstreamReads): void;
  readonly total: number;
  readonly waiters: { settle(o: AttemptOutcome): void }[];
  retired: boolean;
  counts(): { connections: number; idle: number };
  sweep(now: number): number;
  closeIdle(): void;
}

/** Response heads are held to the HTTP/1.1 pool's limits. */
const LIMITS = { maxHeaders: 100, maxHeadBytes: 60 * 1024 };
/** Trailer fields are parsed as the fields of a head behind this status line. */
const TRAILER_LINE = Buffer.from('HTTP/1.1 200 T\r\n', 'latin1');

const MAX_STREAM_ID = 0x7fffffff;

/** Before the connection's reader is set (nothing is read before the handshake). */
function ignoreBytes(): void {}

/** One `isle-mux/1` connection to one endpoint. */
class MuxClientConn extends MuxSession {
  connected = false;
  idleSince = performance.now();
  peerId: string | undefined | null = undefined;
  /** GOAWAY received (or sent): no new streams. */
  goneAway = false;
  /** Streams above this id were not processed by the peer (GOAWAY). */
  lastAccepted = MAX_STREAM_ID;
  /** Not a Map: see StreamTable (ADR 0150). */
  readonly streams = new StreamTable<MuxAttempt>();
  private nextId = 1;
  private waiting: MuxAttempt[] = [];
  private connectTimer: NodeJS.Timeout | undefined;
  counted = true;

  constructor(
    readonly pool: MuxClusterPool,
    readonly key: string,
    endpoint: EndpointModel,
    connectTimeoutMs: number,
  ) {
    const p = pool;
    const reads = new UpstreamReads(ignoreBytes);
    const s = tls.connect({ ...p.tlsOptions, host: endpoint.address, port: endpoint.port, session: p.session, noDelay: true, onread: reads } as tls.ConnectionOptions);
    super(s);
    this.reads = reads;
    reads.sink = this.onDataBound;
    s.setNoDelay(true);
    s.once('secureConnect', () => this.onConnected(s, endpoint));
    s.on('session', (session: Buffer) => (p.session = session));
    s.on('error', this.onErrorBound);
    s.once('close', this.onCloseBound);
    this.connectTimer = setTimeout(onConnectTimeout, connectTimeoutMs, this, connectTimeoutMs);
    p.stats.upstreamCxTotal.inc(p.label);
    p.stats.upstreamCxActive.inc(p.label);
  }

  private readonly reads: UpstreamReads;
  private readonly onDataBound = (d: Buffer): void => this.onData(d);
  private readonly onErrorBound = (e: NodeJS.ErrnoException): void => this.onError(e);
  private readonly onCloseBound = (): void => this.onClose();

  get usable(): boolean {
    return !this.goneAway && !this.socket.destroyed && this.failure === undefined;
  }

  /** At the peer's stream limit: new streams take another connection (ADR 0138). */
  get full(): boolean {
    return this.streams.size + this.waiting.length >= MAX_CONCURRENT_STREAMS;
  }

  /** Carrying streams, or still connecting for attempts that wait for it: not idle. */
  get busy(): boolean {
    return !this.connected || this.streams.size > 0 || this.waiting.length > 0;
  }

  private failure: string | undefined;

  private onConnected(s: tls.TLSSocket, endpoint: EndpointModel): void {
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    if (s.alpnProtocol !== MUX_ALPN) {
      // Not an Isle sidecar (or mux turned off there): HTTP/1.1 from now on, for this endpoint,
      // starting with this very connection, which the HTTP/1.1 pool takes over.
      const pool = this.pool;
      pool.http1Only.add(endpoint.key);
      pool.forget(this);
      pool.uncount(this);
      this.failure = 'peer does not speak isle-mux/1';
      this.goneAway = true;
      s.off('error', this.onErrorBound);
      s.off('close', this.onCloseBound);
      this.detach();
      const w = this.waiting;
      this.waiting = [];
      pool.http1.adopt(s, endpoint, this.reads);
      for (const a of w) a.fallBack();
      pool.owner.poolEmptied(pool);
      return;
    }
    this.connected = true;
    this.peerId = upstreamPeerSpiffeId(s);
    this.send(prefaceFrame(INITIAL_WINDOW));
    const w = this.waiting;
    this.waiting = [];
    for (const a of w) a.start(this);
  }

  /** Starts `a` now, or once the connection is up. */
  assign(a: MuxAttempt): void {
    if (this.connected) a.start(this);
    else this.waiting.push(a);
  }

  unassign(a: MuxAttempt): void {
    const i = this.waiting.indexOf(a);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  open(a: MuxAttempt): number {
    const id = this.nextId;
    this.nextId += 2;
    // Stream ids are u32 and never reused: near the end of the space, new streams go elsewhere.
    if (this.nextId > MAX_STREAM_ID) {
      this.goneAway = true;
      this.pool.forget(this);
    }
    this.streams.set(id, a);
    return id;
  }

  streamDone(id: number): void {
    if (!this.streams.delete(id)) return;
    if (this.streams.size === 0) {
      this.idleSince = performance.now();
      if (this.goneAway || this.pool.retired) this.end();
      else this.pool.owner.watchIdle();
    }
  }

  private onData(d: Buffer): void {
    const err = this.reader.feed(d);
    if (err === undefined) return;
    // It said isle-mux/1 in ALPN but does not speak it: HTTP/1.1 from the next try on.
    if (!this.gotPreface) this.pool.http1Only.add(this.key);
    this.fail('reset', err);
  }

  frame(type: number, flags: number, id: number, payload: Buffer): string | undefined {
    if (!this.gotPreface) return this.takePreface(type, payload);
    if (id === 0) {
      if (type === FrameType.GoAway) {
        // Read as "last 0", a truncated GOAWAY would replay every in-flight stream, including
        // requests the peer may have processed: a broken frame is a connection error instead.
        const g = parseU32Frame(payload);
        if (!g) return 'isle-mux: malformed GOAWAY';
        this.goAway(g.value);
      }
      return undefined;
    }
    // Frames of a stream we reset already are dropped.
    const a = this.streams.get(id);
    if (!a) return undefined;
    switch (type) {
      case FrameType.Response:
        return a.onResponse(flags, payload);
      case FrameType.Data:
        return a.onData(flags, payload);
      case FrameType.Trailers:
        return a.onTrailers(payload);
      case FrameType.Reset: {
        const r = parseU32Frame(payload);
        a.onReset(r?.value ?? ResetCode.Internal, r?.reason ?? '');
        return undefined;
      }
      case FrameType.Window:
        if (payload.length >= 4) a.out?.credit(payload.readUInt32BE(0));
        return undefined;
      default:
        return `isle-mux: unexpected frame type ${type} from the server`;
    }
  }

  /** No new streams here (the peer refused one): in-flight ones finish, then it closes. */
  retire(): void {
    this.goneAway = true;
    this.pool.forget(this);
  }

  private goAway(last: number): void {
    this.goneAway = true;
    this.lastAccepted = last;
    this.pool.forget(this);
    for (const [id, a] of this.streams.entries()) if (id > last) a.refused('the peer went away before taking the stream (GOAWAY)');
    if (this.streams.size === 0) this.end();
  }

  private fail(kind: 'connect-failure' | 'reset', detail: string): void {
    if (this.failure === undefined) this.failure = detail;
    this.pool.forget(this);
    this.socket.destroy();
    this.failAll(kind, detail);
  }

  private failAll(kind: 'connect-failure' | 'reset', detail: string): void {
    const w = this.waiting;
    this.waiting = [];
    for (const a of w) a.failed(kind, detail);
    for (const [id, a] of this.streams.entries()) {
      this.streams.delete(id);
      if (this.goneAway && id > this.lastAccepted) a.refused(detail);
      else a.connectionLost(detail);
    }
  }

  private onError(e: NodeJS.ErrnoException): void {
    if (!this.connected && this.failure === undefined) {
      this.pool.stats.upstreamCxConnectFail.inc(this.pool.label);
      return this.fail('connect-failure', connectErrorDetail(e));
    }
    this.fail('reset', `${e.code ?? 'error'}: ${e.message}`);
  }

  private onClose(): void {
    clearTimeout(this.connectTimer);
    this.pool.stats.upstreamCxActive.dec(this.pool.label);
    this.pool.forget(this);
    this.pool.uncount(this);
    const detail = this.failure ?? (this.connected ? 'upstream closed the connection' : 'connection closed before it was established');
    this.failAll(this.connected ? 'reset' : 'connect-failure', detail);
    this.pool.owner.poolEmptied(this.pool);
  }
}

function onConnectTimeout(c: MuxClientConn, ms: number): void {
  if (!c.connected) c.socket.destroy(Object.assign(new Error(`connect timeout after ${ms} ms`), { code: 'ISLE_CONNECT_TIMEOUT' }));
}

/** The mux connections of one cluster for one TLS configuration, and its HTTP/1.1 fallback. */
export class MuxClusterPool extends ClusterPoolBase<MuxPoolOwner> {
  readonly conns = new Map<string, MuxClientConn>();
  /** Connections not yet closed (the current one per endpoint and those going away). */
  private live = 0;
  /** Endpoints whose TLS server did not pick isle-mux/1. */
  readonly http1Only = new Set<string>();

  constructor(
    owner: MuxPoolOwner,
    stats: ProxyStats,
    clusterName: string,
    tlsId: string | undefined,
    tlsOptions: tls.ConnectionOptions,
    maxConnections: number,
    idleTimeoutMs: number,
    readonly http1: Http1Fallback,
  ) {
    super(owner, stats, clusterName, tlsId, { ...tlsOptions, ALPNProtocols: [MUX_ALPN, 'http/1.1'] }, maxConnections, idleTimeoutMs);
  }

  get total(): number {
    return this.live + this.http1.total;
  }

  get waiters(): { settle(o: AttemptOutcome): void }[] {
    return this.http1.waiters;
  }

  send(req: UpstreamRequest, cluster: ClusterModel, endpoint: EndpointModel): Promise<AttemptOutcome> {
    if (this.http1Only.has(endpoint.key)) return this.http1.send(req, cluster, endpoint);
    return new MuxAttempt(this, req, cluster, endpoint).run();
  }

  connFor(endpoint: EndpointModel, connectTimeoutMs: number): MuxClientConn {
    let c = this.conns.get(endpoint.key);
    // A full connection finishes its streams and closes; new ones go to a fresh one.
    if (c?.usable && c.full) c.retire();
    if (!c || !c.usable) {
      c = new MuxClientConn(this, endpoint.key, endpoint, connectTimeoutMs);
      this.live++;
      this.conns.set(endpoint.key, c);
    }
    return c;
  }

  /** A connection that takes no new streams. */
  forget(c: MuxClientConn): void {
    if (this.conns.get(c.key) === c) this.conns.delete(c.key);
  }

  uncount(c: MuxClientConn): void {
    if (c.counted) {
      c.counted = false;
      this.live--;
    }
  }

  counts(): { connections: number; idle: number } {
    let idle = 0;
    for (const c of this.conns.values()) if (!c.busy) idle++;
    const h = this.http1.counts();
    return { connections: this.live + h.connections, idle: idle + h.idle };
  }

  sweep(now: number): number {
    let left = this.http1.sweep(now);
    for (const c of [...this.conns.values()]) {
      if (!c.busy && now - c.idleSince > this.idleTimeoutMs) {
        this.conns.delete(c.key);
        c.end();
      } else left++;
    }
    return left;
  }

  closeIdle(): void {
    this.http1.retired = this.retired;
    this.http1.closeIdle();
    for (const c of [...this.conns.values()]) {
      if (c.busy) continue;
      this.conns.delete(c.key);
      c.end();
    }
  }
}

const enum St {
  Waiting,
  Sent,
  Response,
  Done,
}

/** One request attempt on a stream: also the UpstreamResponse handed to the caller. */
class MuxAttempt extends AttemptBase implements UpstreamResponse, DrainListener {
  status = 0;
  statusMessage = '';
  headers: Headers = {};
  framing: Framing = { kind: 'none' };
  peerId: string | undefined | null = undefined;
  out: OutStream | null = null;
  private inb: InStream | null = null;
  private st = St.Waiting;
  private conn: MuxClientConn | null = null;
  private id = 0;
  private received = 0;
  private retriedOnce = false;
  private started = 0;
  private bodyStream: Readable | null = null;

  constructor(
    readonly pool: MuxClusterPool,
    readonly req: UpstreamRequest,
    readonly cluster: ClusterModel,
    readonly endpoint: EndpointModel,
  ) {
    super();
  }

  get secure(): boolean {
    return true;
  }

  run(): Promise<AttemptOutcome> {
    const p = this.begin();
    if (this.settled) return p;
    const req = this.req;
    if (req.perTryTimeoutMs && req.perTryTimeoutMs > 0) {
      this.started = performance.now();
      this.timer = setTimeout(onPerTryTimeout, req.perTryTimeoutMs, this);
    }
    this.attach();
    return p;
  }

  private attach(): void {
    this.st = St.Waiting;
    this.conn = this.pool.connFor(this.endpoint, this.cluster.connectTimeoutMs);
    this.conn.assign(this);
  }

  /** The peer does not speak mux: this attempt goes the HTTP/1.1 way instead (nothing was sent). */
  fallBack(): void {
    if (!this.beginSettle()) return;
    this.conn = null;
    // The per-try timeout started with this attempt: the HTTP/1.1 one gets what is left of it.
    const req = this.req;
    const t = req.perTryTimeoutMs;
    const left = t && t > 0 ? Math.max(1, t - (performance.now() - this.started)) : t;
    void this.pool.http1.send(left === t ? req : { ...req, perTryTimeoutMs: left }, this.cluster, this.endpoint).then(this.resolve);
  }

  /** The connection is up: open the stream and send the request. */
  start(conn: MuxClientConn): void {
    if (this.settled) return;
    const id = (this.id = conn.open(this));
    const req = this.req;
    const body = req.body;
    let framing = '';
    if (Buffer.isBuffer(body) && req.headers['content-length'] === undefined && (body.length > 0 || req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH')) framing = `content-length: ${body.length}\r\n`;
    const head = `${req.method} ${req.path} HTTP/1.1\r\n${serializeFields(req.headers)}${framing}\r\n`;
    this.st = St.Sent;
    this.inb = new InStream(conn, id);
    const out = (this.out = new OutStream(conn, id, this));
    if (body === null || (Buffer.isBuffer(body) && body.length === 0)) {
      out.ended = true;
      conn.sendText(FrameType.Request, FLAG_END, id, head);
    } else if (Buffer.isBuffer(body) && body.length <= 16 * 1024 && body.length <= out.window) {
      conn.sendTextData(FrameType.Request, id, head, body, true);
      out.sentWithHead(body.length, true);
    } else {
      conn.sendText(FrameType.Request, 0, id, head);
      if (Buffer.isBuffer(body)) out.data(body, true);
      else this.streamBody(body!);
    }
  }

  private streamBody(body: Readable): void {
    this.bodyStream = body;
    // Streaming request bodies are off the hot path: closures are fine here.
    const onData = (c: Buffer): void => {
      if (this.out && !this.out.data(c, false)) body.pause();
    };
    const onEnd = (): void => {
      cleanup();
      this.out?.data(Buffer.alloc(0), true);
    };
    const onError = (): void => {
      cleanup();
      this.resetStream(ResetCode.Cancel, 'request body failed');
      // Before a response the attempt is over too (after one, the reset broke its body).
      this.settle({ kind: 'reset', detail: 'request body failed' });
    };
    const cleanup = (): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
  }

  /** DrainListener: the request body may flow again. */
  sendDrained(): void {
    this.bodyStream?.resume();
  }

  onResponse(flags: number, payload: Buffer): string | undefined {
    if (this.st !== St.Sent) return 'isle-mux: a second response head on a stream';
    const r = parseResponseHead(payload, LIMITS);
    if (r === undefined || 'error' in r || r.length !== payload.length) {
      this.resetStream(ResetCode.Protocol, 'bad response head');
      this.failed('reset', `upstream protocol error: ${r && 'error' in r ? r.reason : 'incomplete response head'}`);
      return undefined;
    }
    const head = r.head;
    const f = responseFraming(head.headers, head.status, this.req.method);
    if ('error' in f) {
      this.resetStream(ResetCode.Protocol, f.reason);
      this.failed('reset', `upstream protocol error: ${f.reason}`);
      return undefined;
    }
    this.status = head.status;
    this.statusMessage = head.reason;
    this.headers = head.headers;
    // The stream's END delimits the body: what HTTP/1.1 would have chunked or closed is chunked.
    this.framing = f.kind === 'close' ? { kind: 'chunked' } : f;
    this.peerId = this.conn?.peerId;
    this.st = St.Response;
    if ((flags & FLAG_END) !== 0) this.bodyEnd(undefined);
    if (this.settled) return undefined;
    this.pool.counters.response(head.status);
    this.settle({ kind: 'response', status: head.status, response: this });
    return undefined;
  }

  onData(flags: number, payload: Buffer): string | undefined {
    if (this.st !== St.Response) return 'isle-mux: DATA before the response head';
    const n = payload.length;
    if (!this.inb!.received(n)) {
      this.resetStream(ResetCode.Flow, 'more DATA than the window allowed');
      this.bodyBroken('upstream protocol error: flow-control window exceeded');
      return undefined;
    }
    this.received += n;
    if (n) {
      if (this.sink) {
        if (this.sink.data(payload)) this.inb!.consumed(n);
        else {
          this.inb!.pause();
          this.inb!.consumed(n);
        }
      } else (this.early ??= []).push(payload);
    }
    if ((flags & FLAG_END) !== 0) this.bodyEnd(undefined);
    return undefined;
  }

  onTrailers(payload: Buffer): string | undefined {
    if (this.st !== St.Response) return 'isle-mux: trailers before the response head';
    // The same rules as trailers over HTTP/1.1 (http1/body.ts): bounded, no framing or routing fields.
    if (payload.length > MAX_TRAILER_BYTES) {
      this.resetStream(ResetCode.Protocol, 'trailers too large');
      this.bodyBroken('upstream protocol error: trailers too large');
      return undefined;
    }
    const r = parseResponseHead(Buffer.concat([TRAILER_LINE, payload]), LIMITS);
    this.bodyEnd(r !== undefined && !('error' in r) ? allowedTrailers(r.head.headers) : undefined);
    return undefined;
  }

  private bodyEnd(trailers: Headers | undefined): void {
    if (this.ended || this.broken !== undefined) return;
    const f = this.framing;
    if (f.kind === 'length' && this.received !== f.length) {
      this.resetStream(ResetCode.Protocol, 'body length mismatch');
      return this.bodyBroken(`upstream protocol error: body of ${this.received} bytes, Content-Length ${f.length}`);
    }
    this.ended = true;
    this.trailers = trailers;
    this.closeStream(false);
    if (this.sink) this.sink.end(trailers);
  }

  private bodyBroken(reason: string): void {
    if (this.broken !== undefined || this.ended) return;
    this.broken = reason;
    this.closeStream(false);
    if (this.sink) this.sink.abort(reason);
  }

  /** The stream is over for us: forget it on the connection, release the circuit-breaker slot. */
  private closeStream(reset: boolean, code = ResetCode.Cancel, reason = ''): void {
    const c = this.conn;
    this.conn = null;
    this.out?.drop();
    this.inb?.close();
    if (this.bodyStream) this.bodyStream.pause();
    if (c && this.id) {
      if (reset && !c.socket.destroyed) c.send(u32Frame(FrameType.Reset, this.id, code, reason));
      c.streamDone(this.id);
    }
    if (this.st !== St.Done) {
      this.st = St.Done;
      this.pool.owner.release(this.cluster.name);
    }
  }

  private resetStream(code: ResetCode, reason: string): void {
    this.closeStream(true, code, reason);
  }

  /** The server reset the stream. */
  onReset(code: number, reason: string): void {
    const detail = `upstream reset the stream (${RESET_NAMES[code] ?? code}${reason ? `: ${reason}` : ''})`;
    if (this.st === St.Response) {
      // After a complete response a reset only says "stop sending the request body".
      if (this.ended) return;
      this.conn?.streamDone(this.id);
      this.conn = null;
      return this.bodyBroken(detail);
    }
    if (code === ResetCode.Refused) {
      // The peer will not take streams here (at its stream limit): the next try and new
      // requests go to a fresh connection.
      this.conn?.retire();
      return this.refused(detail);
    }
    this.conn?.streamDone(this.id);
    this.conn = null;
    this.failed('reset', detail);
  }

  /** The peer did not process the stream: once more on a fresh connection, if the body can be sent again. */
  refused(detail: string): void {
    const c = this.conn;
    if (c && this.id) c.streamDone(this.id);
    this.conn = null;
    this.out?.drop();
    this.out = null;
    this.inb?.close();
    this.inb = null;
    if (this.settled) return;
    if (!this.retriedOnce && (this.req.body === null || Buffer.isBuffer(this.req.body))) {
      this.retriedOnce = true;
      this.id = 0;
      this.attach();
      return;
    }
    this.failed('reset', detail);
  }

  /**
   * The connection broke under the stream: the attempt fails (the retry filter decides). Unlike
   * HTTP/1.1's stale keep-alive connection there is no silent replay here: a peer closing an
   * idle connection says GOAWAY first, and what it did not take is `refused` above.
   */
  connectionLost(detail: string): void {
    this.conn = null;
    this.inb?.close();
    if (this.st === St.Response) return this.bodyBroken(detail);
    this.failed('reset', detail);
  }

  protected pauseBody(): void {
    this.inb?.pause();
  }

  protected override replayed(bytes: number): void {
    this.inb?.consumed(bytes);
  }

  flow(): void {
    this.inb?.resume();
  }

  protected dropped(live: boolean): void {
    if (live) this.resetStream(ResetCode.Cancel, 'response dropped');
  }

  failed(kind: 'connect-failure' | 'reset', detail: string): void {
    this.settle(kind === 'connect-failure' ? { kind, detail } : { kind: 'reset', detail });
  }

  settle(o: AttemptOutcome): void {
    if (!this.beginSettle()) return;
    if (o.kind !== 'response') {
      const c = this.conn;
      if (c && this.st === St.Waiting) {
        c.unassign(this);
        this.conn = null;
      }
      this.resetStream(ResetCode.Cancel, o.kind);
    }
    this.pool.owner.report(this.cluster, this.endpoint, o);
    this.resolve(o);
  }
}

const RESET_NAMES: Record<number, string> = { 1: 'cancel', 2: 'refused', 3: 'protocol error', 4: 'internal error', 5: 'flow-control error' };

function onPerTryTimeout(a: MuxAttempt): void {
  a.pool.stats.upstreamRqPerTryTimeout.inc(a.pool.label);
  a.settle({ kind: 'timeout' });
}
