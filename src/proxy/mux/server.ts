/**
 * The downstream side of `isle-mux/1` (ADR 0138): an inbound mTLS connection on which the peer
 * sidecar negotiated ALPN `isle-mux/1` carries many requests at once, each a stream. Every stream
 * becomes a `MuxExchange`, the same `Downstream` the HTTP/1.1 and HTTP/2 codecs give the filter
 * chain, so routing, RBAC, XFCC, stats and the rest run unchanged; the connection's facts
 * (verified peer certificate, listener, chain) are those of its socket, as for HTTP/1.1.
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { DEFAULT_HEAD_LIMITS, parseRequestHead, requestFraming, serializeFields, type Framing, type HeadError, type HeadLimits, type Headers, type RequestHead } from '../http1/head.js';
import { RequestBody, type BodySource } from '../http1/requestbody.js';
import { reasonPhrase, respondWhole, type ExchangeOwner, type ResponseFraming } from '../http1/server.js';
import { CONNECTION_BUDGET, FLAG_END, FrameType, INITIAL_WINDOW, MAX_CONCURRENT_STREAMS, parseU32Frame, prefaceFrame, ResetCode, textFrame, u32Frame } from './frame.js';
import { InStream, MuxSession, OutStream, type DrainListener } from './session.js';
import { StreamTable } from './streamtable.js';

export interface MuxEngineOptions {
  /** One stream: the codec-neutral exchange and the socket it arrived on (for ConnInfo). */
  onStream: (ex: MuxExchange, socket: Socket) => void;
  /** A request head that could not be parsed (400) or is over the limits (431). */
  onProtocolError?: (socket: Socket, err: HeadError) => void;
  limits?: HeadLimits;
  /** Connections without streams are closed (GOAWAY) after this long. */
  idleTimeoutMs?: number;
}

const NONE: Framing = { kind: 'none' };
const UNKNOWN_LENGTH: Framing = { kind: 'chunked' };
/**
 * `Content-Length: 0` on a REQUEST without END: the body is declared empty, so any DATA byte on
 * the stream is a protocol error (reset). As "unknown length" it would be streamed to the app
 * behind a `content-length: 0` head: a second request no filter saw (ADR 0138, review finding 1).
 */
const ZERO_LENGTH: Framing = { kind: 'length', length: 0 };

/** One stream as the filter chain's Downstream. */
export class MuxExchange implements BodySource, DrainListener {
  readonly protocol = 'HTTP/1.1';
  headersSent = false;
  gone = false;
  finished = false;
  requestComplete: boolean;
  owner: ExchangeOwner | null = null;
  readonly contentLength: number | undefined;
  readonly remoteAddress: string | undefined;
  readonly out: OutStream;
  private readonly inb: InStream;
  private body: RequestBody | null = null;
  private headText: string | null = null;
  private noBody = false;
  private trailersAllowed = false;
  private received = 0;
  /** Left the connection's stream table. */
  private closed = false;

  constructor(
    private readonly conn: MuxServerConn,
    readonly id: number,
    readonly head: RequestHead,
    readonly framing: Framing,
  ) {
    this.requestComplete = framing.kind === 'none';
    this.contentLength = framing.kind === 'length' ? framing.length : framing.kind === 'none' ? 0 : undefined;
    this.remoteAddress = conn.socket.remoteAddress;
    this.out = new OutStream(conn, id, this);
    this.inb = new InStream(conn, id);
  }

  get method(): string {
    return this.head.method;
  }

  // --- request body ---------------------------------------------------------------------------

  private requestBody(): RequestBody {
    let b = this.body;
    if (!b) {
      b = this.body = new RequestBody(this);
      b.complete = this.requestComplete;
    }
    return b;
  }

  pauseReading(): void {
    this.inb.pause();
  }

  resumeReading(): void {
    this.inb.resume();
  }

  readBody(): Promise<Buffer> {
    return this.requestBody().read();
  }

  bodyStream(): Readable {
    return this.requestBody().stream();
  }

  discardBody(): void {
    this.requestBody().discard();
  }

  /** DATA from the peer; a string is why the stream must be reset. */
  onData(flags: number, payload: Buffer): string | undefined {
    if (this.requestComplete) return 'DATA after the end of the request';
    const n = payload.length;
    if (!this.inb.received(n)) return 'more DATA than the window allowed';
    this.received += n;
    const f = this.framing;
    if (f.kind === 'length' && this.received > f.length) return 'request body longer than its Content-Length';
    if (n) {
      this.requestBody().data(payload);
      this.inb.consumed(n);
    }
    if ((flags & FLAG_END) !== 0) {
      if (f.kind === 'length' && this.received !== f.length) return 'request body shorter than its Content-Length';
      this.requestComplete = true;
      this.body?.end();
      // A response still queued behind the peer's window leaves when it is out (sendDrained).
      if (this.finished && this.out.idle) this.leave();
    }
    return undefined;
  }

  /** The peer reset the stream, or the connection went away. */
  peerGone(why: string): void {
    this.body?.closed(why);
    this.out.drop();
    if (!this.finished) {
      this.gone = true;
      const o = this.owner;
      this.owner = null;
      o?.downstreamClosed();
    }
    this.leave();
  }

  // --- response -------------------------------------------------------------------------------

  /** As the HTTP/1.1 codec's, minus what the stream itself says (chunking, Connection). */
  writeHead(status: number, reason: string | undefined, headers: Headers, framing: ResponseFraming): void {
    if (this.headersSent) throw new Error('response already started');
    this.headersSent = true;
    const isHead = this.head.method === 'HEAD';
    const bodiless = status === 204 || status === 304 || status < 200;
    this.noBody = isHead || bodiless || framing.kind === 'none';
    let framingLine = '';
    if (framing.kind === 'length') {
      if (!bodiless) framingLine = `content-length: ${framing.length}\r\n`;
    } else if (framing.kind === 'chunked') this.trailersAllowed = !isHead && !bodiless;
    else if (!isHead && !bodiless) framingLine = 'content-length: 0\r\n';
    this.headText = `HTTP/1.1 ${status} ${reason || reasonPhrase(status)}\r\n${serializeFields(headers)}${framingLine}\r\n`;
  }

  write(chunk: Buffer): boolean {
    if (this.finished || this.gone) return true;
    const head = this.headText;
    if (this.noBody || chunk.length === 0) {
      if (head !== null) {
        this.headText = null;
        this.conn.sendText(FrameType.Response, 0, this.id, head);
      }
      return true;
    }
    if (head !== null) {
      this.headText = null;
      const out = this.out;
      if (chunk.length <= 16 * 1024 && chunk.length <= out.window) {
        this.conn.sendTextData(FrameType.Response, this.id, head, chunk, false);
        return out.sentWithHead(chunk.length, false);
      }
      this.conn.sendText(FrameType.Response, 0, this.id, head);
    }
    return this.out.data(chunk, false);
  }

  end(chunk?: Buffer, trailers?: Headers): void {
    if (this.finished || this.gone) return;
    const body = chunk && chunk.length && !this.noBody ? chunk : undefined;
    const tail = trailers && this.trailersAllowed ? serializeFields(trailers) : '';
    const head = this.headText;
    const out = this.out;
    if (head !== null && tail === '' && body === undefined) {
      this.headText = null;
      out.ended = true;
      this.conn.sendText(FrameType.Response, FLAG_END, this.id, head);
    } else if (head !== null && tail === '' && body !== undefined && body.length <= 16 * 1024 && body.length <= out.window) {
      this.headText = null;
      this.conn.sendTextData(FrameType.Response, this.id, head, body, true);
      out.sentWithHead(body.length, true);
    } else {
      if (body) this.write(body);
      else if (this.headText !== null) this.write(Buffer.alloc(0));
      if (tail !== '') out.endWith(textFrame(FrameType.Trailers, FLAG_END, this.id, `${tail}\r\n`));
      else out.data(Buffer.alloc(0), true);
    }
    this.finished = true;
    const o = this.owner;
    this.owner = null;
    o?.responseFinished();
    if (out.idle) this.responseOut();
  }

  /** The whole response is with the connection. */
  private responseOut(): void {
    if (this.closed) return;
    // The rest of an unread request body is not wanted: the peer stops sending it.
    if (!this.requestComplete) this.conn.send(u32Frame(FrameType.Reset, this.id, ResetCode.Cancel, 'response complete'));
    this.leave();
  }

  /** DrainListener: credit arrived or the socket drained. */
  sendDrained(): void {
    if (this.finished) {
      if (!this.gone) this.responseOut();
      return;
    }
    this.owner?.downstreamDrained();
  }

  respond(status: number, headers: Headers, body: string | Buffer): void {
    respondWhole(this, status, headers, body);
  }

  /** The response cannot be completed honestly: reset this stream (its siblings live on). */
  reset(): void {
    if (this.closed) return;
    this.finished = true;
    this.owner = null;
    this.gone = true;
    this.out.drop();
    this.body?.closed('stream reset');
    this.conn.send(u32Frame(FrameType.Reset, this.id, ResetCode.Internal, 'the response could not be completed'));
    this.leave();
  }

  private leave(): void {
    if (this.closed) return;
    this.closed = true;
    this.inb.close();
    this.conn.streamDone(this.id);
  }
}

/** One `isle-mux/1` connection from a peer sidecar. */
export class MuxServerConn extends MuxSession {
  /** Not a Map: see StreamTable (ADR 0150). */
  readonly streams = new StreamTable<MuxExchange>();
  private lastId = 0;
  goneAway = false;
  lastActive = performance.now();

  constructor(
    readonly engine: MuxEngine,
    socket: Socket,
  ) {
    super(socket);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.once('close', () => this.onClose());
    this.send(prefaceFrame(INITIAL_WINDOW));
    if (engine.closing) this.goAway('draining');
  }

  private onData(d: Buffer): void {
    const err = this.reader.feed(d);
    if (err !== undefined) {
      this.send(u32Frame(FrameType.GoAway, 0, this.lastId, err));
      this.destroy();
    }
  }

  frame(type: number, flags: number, id: number, payload: Buffer): string | undefined {
    if (!this.gotPreface) return this.takePreface(type, payload);
    if (id === 0) {
      // The client's GOAWAY: it opens nothing more; what is in flight finishes.
      if (type === FrameType.GoAway && this.streams.size === 0) this.end();
      return undefined;
    }
    if (type === FrameType.Request) return this.onRequest(flags, id, payload);
    const ex = this.streams.get(id);
    if (!ex) return id > this.lastId ? `isle-mux: frame for stream ${id}, never opened` : undefined;
    switch (type) {
      case FrameType.Data: {
        const bad = ex.onData(flags, payload);
        if (bad !== undefined) {
          this.send(u32Frame(FrameType.Reset, id, bad.includes('window') ? ResetCode.Flow : ResetCode.Protocol, bad));
          ex.peerGone(`downstream protocol error: ${bad}`);
        }
        return undefined;
      }
      case FrameType.Reset:
        ex.peerGone(`downstream reset the stream (${parseU32Frame(payload)?.reason ?? ''})`);
        return undefined;
      case FrameType.Window:
        if (payload.length >= 4) ex.out.credit(payload.readUInt32BE(0));
        return undefined;
      default:
        return `isle-mux: unexpected frame type ${type} from the client`;
    }
  }

  private onRequest(flags: number, id: number, payload: Buffer): string | undefined {
    if ((id & 1) === 0 || id <= this.lastId) return `isle-mux: stream id ${id} out of order`;
    this.lastId = id;
    const busy = this.goneAway ? 'draining' : this.streams.size >= MAX_CONCURRENT_STREAMS ? 'too many concurrent streams' : this.held >= CONNECTION_BUDGET ? 'too much buffered on this connection' : undefined;
    if (busy !== undefined) {
      this.send(u32Frame(FrameType.Reset, id, ResetCode.Refused, busy));
      return undefined;
    }
    const end = (flags & FLAG_END) !== 0;
    const r = parseRequestHead(payload, this.engine.limits);
    let err: HeadError | undefined;
    let framing: Framing = NONE;
    if (r === undefined || ('head' in r && r.length !== payload.length)) err = { error: 400, reason: 'incomplete request head' };
    else if ('error' in r) err = r;
    else {
      const f = requestFraming(r.head.headers);
      if ('error' in f) err = f;
      else if (f.kind === 'chunked') err = { error: 400, reason: 'Transfer-Encoding on an isle-mux stream' };
      else if (end && f.kind === 'length') err = { error: 400, reason: 'request ended before its Content-Length' };
      else framing = end ? NONE : f.kind === 'length' ? f : r.head.headers['content-length'] !== undefined ? ZERO_LENGTH : UNKNOWN_LENGTH;
    }
    if (err !== undefined || r === undefined || 'error' in r) return this.refuseHead(id, end, err!);
    const ex = new MuxExchange(this, id, r.head, framing);
    this.streams.set(id, ex);
    this.engine.opts.onStream(ex, this.socket);
    return undefined;
  }

  /** A head the HTTP/1.1 codec would refuse: the same status, on this stream only. */
  private refuseHead(id: number, end: boolean, err: HeadError): undefined {
    this.engine.opts.onProtocolError?.(this.socket, err);
    const status = err.error === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
    const body = `${err.tell ? `isle: ${err.reason}` : status}\n`;
    this.send(textFrame(FrameType.Response, 0, id, `HTTP/1.1 ${err.error} ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`));
    this.send(textFrame(FrameType.Data, FLAG_END, id, body));
    if (!end) this.send(u32Frame(FrameType.Reset, id, ResetCode.Cancel, 'request refused'));
    return undefined;
  }

  streamDone(id: number): void {
    if (!this.streams.delete(id)) return;
    if (this.streams.size === 0) {
      this.lastActive = performance.now();
      if (this.goneAway) this.end();
    }
  }

  /** No new streams; those in flight finish, then the connection closes. */
  goAway(reason: string): void {
    if (this.goneAway) return;
    this.goneAway = true;
    this.send(u32Frame(FrameType.GoAway, 0, this.lastId, reason));
    if (this.streams.size === 0) this.end();
  }

  private onClose(): void {
    this.engine.conns.delete(this);
    for (const ex of this.streams.values()) ex.peerGone('downstream closed');
    this.streams.clear();
  }
}

/** Serves isle-mux/1 on connections handed to it with `serve(socket)`; it never listens itself. */
export class MuxEngine {
  readonly conns = new Set<MuxServerConn>();
  readonly limits: HeadLimits;
  closing = false;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(readonly opts: MuxEngineOptions) {
    this.limits = opts.limits ?? DEFAULT_HEAD_LIMITS;
  }

  serve(socket: Socket): void {
    socket.setNoDelay(true);
    this.conns.add(new MuxServerConn(this, socket));
    socket.resume();
    if (!this.sweeper) {
      const idle = this.opts.idleTimeoutMs ?? 60_000;
      this.sweeper = setInterval(() => this.sweep(idle), Math.max(50, Math.min(1000, idle / 4)));
      this.sweeper.unref();
    }
  }

  private sweep(idleMs: number): void {
    const cutoff = performance.now() - idleMs;
    for (const c of this.conns) if (c.streams.size === 0 && c.lastActive < cutoff) c.goAway('idle');
    if (this.conns.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /** For drain: GOAWAY on every connection; streams in flight finish. */
  close(): void {
    this.closing = true;
    for (const c of this.conns) c.goAway('draining');
  }

  closeIdleConnections(): void {
    for (const c of this.conns) if (c.streams.size === 0) c.destroy();
  }

  closeAllConnections(): void {
    for (const c of this.conns) c.destroy();
  }
}
