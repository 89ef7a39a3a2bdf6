/**
 * The downstream side of HTTP/2: connections handed over by a listener (h2c with prior
 * knowledge, or TLS that negotiated ALPN `h2`) become node:http2 server sessions, and each
 * stream becomes an `H2Exchange`, which is the same `Downstream` the HTTP/1.1 codec gives the
 * filter chain. The filters do not know which codec a request came from (ADR 0080).
 *
 * node:http2 is used here, unlike for HTTP/1.1 (ADR 0025): framing, HPACK and flow control are
 * too much to own, and HTTP/2 is only spoken where a port says so (http2/grpc ports), so it is
 * not the hot path.
 */
import http2, { type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Headers, RequestHead } from '../http1/head.js';
import { RequestBody, type BodySource } from '../http1/requestbody.js';
import { respondWhole, type ExchangeOwner, type ResponseFraming } from '../http1/server.js';

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_FLAG_END_STREAM, NGHTTP2_NO_ERROR } = http2.constants;
/** HTTP/2 forbids these in a header block (RFC 9113 §8.2.2); node:http2 throws on them. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);

/** A request head in the codec-neutral shape the filter chain reads (`:authority` becomes Host). */
export function requestHeadOf(h: IncomingHttpHeaders): RequestHead {
  const headers: Headers = {};
  for (const k in h) {
    if (k.charCodeAt(0) === 58 /* : */) continue;
    const v = h[k];
    if (v !== undefined) headers[k] = v;
  }
  const authority = h[':authority'];
  if (typeof authority === 'string' && authority !== '') headers['host'] = authority;
  return { method: String(h[':method'] ?? ''), target: String(h[':path'] ?? ''), minor: 1, headers };
}

/** Response or trailer fields for node:http2: no connection-specific fields, no pseudo-headers from the other side. */
export function h2Fields(h: Headers, out: Record<string, string | string[] | number> = {}): Record<string, string | string[] | number> {
  for (const k in h) {
    if (CONNECTION_SPECIFIC.has(k) || k.charCodeAt(0) === 58) continue;
    const v = h[k];
    if (v === undefined || (k === 'te' && v !== 'trailers')) continue;
    out[k] = v;
  }
  return out;
}

/** One HTTP/2 stream as the filter chain's Downstream. */
export class H2Exchange implements BodySource {
  readonly head: RequestHead;
  readonly protocol = 'HTTP/2';
  headersSent = false;
  gone = false;
  finished = false;
  requestComplete: boolean;
  owner: ExchangeOwner | null = null;
  readonly contentLength: number | undefined;

  private readonly body: RequestBody;
  private resHeaders: Record<string, string | string[] | number> | null = null;
  private noBody = false;
  private responded = false;
  private trailers: Headers | undefined;

  constructor(
    readonly stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    flags: number,
    readonly remoteAddress: string | undefined,
  ) {
    this.head = requestHeadOf(headers);
    const ended = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    this.requestComplete = ended;
    this.body = new RequestBody(this);
    this.body.complete = ended;
    const cl = headers['content-length'];
    this.contentLength = ended ? 0 : typeof cl === 'string' && /^\d+$/.test(cl) ? Number(cl) : undefined;
    stream.on('data', (c: Buffer) => this.body.data(c));
    stream.once('end', () => this.bodyEnd());
    stream.on('drain', () => this.owner?.downstreamDrained());
    stream.once('close', () => this.closed());
    stream.on('error', () => undefined);
    stream.on('wantTrailers', () => this.sendTrailers());
  }

  get method(): string {
    return this.head.method;
  }

  // --- request body ---------------------------------------------------------------------------

  /** BodySource: flow control is the stream's. */
  pauseReading(): void {
    this.stream.pause();
  }

  resumeReading(): void {
    this.stream.resume();
  }

  readBody(): Promise<Buffer> {
    return this.body.read();
  }

  /**
   * The whole body when it is complete and at most `limit` bytes once the data already received
   * is read (one turn of the event loop), else undefined and the body streams. gRPC requests have
   * no Content-Length: a unary call's message arrives with its headers, so it can still be
   * buffered for retries, while a streaming call (which may wait for responses) never blocks here.
   */
  tryReadBody(limit: number): Promise<Buffer | undefined> {
    return new Promise((resolve) => setImmediate(() => resolve(this.gone ? undefined : this.body.takeIfComplete(limit))));
  }

  bodyStream(): Readable {
    return this.body.stream();
  }

  discardBody(): void {
    this.body.discard();
  }

  private bodyEnd(): void {
    this.requestComplete = true;
    this.body.end();
  }

  private closed(): void {
    this.body.closed('downstream stream closed');
    if (!this.finished) {
      this.gone = true;
      this.finished = true;
      const o = this.owner;
      this.owner = null;
      o?.downstreamClosed();
    }
  }

  // --- response -------------------------------------------------------------------------------

  /**
   * Starts the response. The HEADERS frame goes out with the first body bytes or at `end`, so a
   * response that ends without body or trailers leaves as one HEADERS frame with END_STREAM: a
   * gRPC trailers-only response stays trailers-only.
   */
  writeHead(status: number, _reason: string | undefined, headers: Headers, framing: ResponseFraming): void {
    if (this.headersSent) throw new Error('response already started');
    this.headersSent = true;
    const h = h2Fields(headers, { ':status': status });
    const bodiless = status === 204 || status === 304 || this.head.method === 'HEAD';
    if (framing.kind === 'length' && !bodiless) h['content-length'] = framing.length;
    else delete h['content-length'];
    this.noBody = bodiless || framing.kind === 'none';
    this.resHeaders = h;
  }

  private flushHead(endStream: boolean): void {
    if (this.responded) return;
    this.responded = true;
    const h = this.resHeaders!;
    this.resHeaders = null;
    try {
      this.stream.respond(h, endStream ? { endStream: true } : { waitForTrailers: true });
    } catch {
      // Invalid header (name or value node:http2 refuses): the stream cannot be answered honestly.
      this.reset();
    }
  }

  write(chunk: Buffer): boolean {
    if (this.finished || this.gone) return true;
    if (!this.responded) this.flushHead(false);
    if (this.noBody || chunk.length === 0 || this.stream.destroyed) return true;
    return this.stream.write(chunk);
  }

  /** Ends the response; trailers (gRPC's grpc-status) go in a final HEADERS frame. */
  end(chunk?: Buffer, trailers?: Headers): void {
    if (this.finished || this.gone) return;
    const hasTrailers = trailers !== undefined && Object.keys(trailers).length > 0;
    if (!this.responded) this.flushHead(!hasTrailers && !(chunk && chunk.length && !this.noBody));
    this.trailers = hasTrailers ? trailers : undefined;
    if (!this.stream.destroyed) {
      if (chunk && chunk.length && !this.noBody) this.stream.end(chunk);
      else this.stream.end();
    }
    this.finished = true;
    const o = this.owner;
    this.owner = null;
    o?.responseFinished();
  }

  private sendTrailers(): void {
    const t = this.trailers;
    this.trailers = undefined;
    try {
      // Empty trailers: node:http2 ends the stream with an empty DATA frame instead.
      this.stream.sendTrailers(t ? h2Fields(t) : {});
    } catch {
      this.stream.close(NGHTTP2_INTERNAL_ERROR);
    }
  }

  respond(status: number, headers: Headers, body: string | Buffer): void {
    respondWhole(this, status, headers, body);
  }

  /** The response cannot be completed honestly: RST_STREAM (the connection and its other streams live on). */
  reset(): void {
    if (this.finished && this.responded && this.stream.closed) return;
    this.finished = true;
    this.owner = null;
    this.gone = true;
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_INTERNAL_ERROR);
  }
}

export interface Http2EngineOptions {
  /** One stream: the codec-neutral exchange and the raw socket it arrived on (for ConnInfo). */
  onStream: (ex: H2Exchange, socket: Socket) => void;
  /** Idle sessions (no open stream) are closed after this long. */
  idleTimeoutMs?: number;
}

/** Serves HTTP/2 on connections handed to it with `serve(socket)`; it never listens itself. */
export class Http2Engine {
  private readonly server: http2.Http2Server;
  readonly sessions = new Set<Http2Session>();
  private readonly state = new WeakMap<Http2Session, { socket: Socket; active: number }>();
  closing = false;

  constructor(readonly opts: Http2EngineOptions) {
    this.server = http2.createServer({
      // A proxy relays whatever the peers send; node's 10 MB session default would refuse large gRPC streams in flight.
      maxSessionMemory: 64,
      settings: { enablePush: false },
    });
    this.server.on('session', (s: Http2Session) => this.onSession(s));
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) => {
      const st = stream.session ? this.state.get(stream.session) : undefined;
      if (!st) return void stream.close(NGHTTP2_INTERNAL_ERROR);
      // The head becomes a plain object, which cannot hold this field (assigning it sets the
      // prototype): refused as the HTTP/1.1 parser refuses it, not dropped (ADR 0151).
      if (Object.prototype.hasOwnProperty.call(headers, '__proto__')) {
        stream.respond({ ':status': 400, 'content-type': 'text/plain' });
        return void stream.end('header name __proto__ is not accepted\n');
      }
      st.active++;
      stream.once('close', () => st.active--);
      this.opts.onStream(new H2Exchange(stream, headers, flags, st.socket.remoteAddress), st.socket);
    });
    this.server.on('sessionError', () => undefined);
  }

  private pendingSocket: Socket | undefined;

  /** Takes over a connection whose next bytes are the HTTP/2 preface (already unshifted, if read). */
  serve(socket: Socket): void {
    socket.setNoDelay(true);
    // TLS without ALPN h2 but with the preface (prior knowledge over TLS, as Envoy's AUTO codec
    // accepts): node:http2 would refuse the socket as "unknown protocol" from its ALPN result.
    const t = socket as Socket & { alpnProtocol?: string | false };
    if (t.alpnProtocol !== undefined && t.alpnProtocol !== 'h2') t.alpnProtocol = 'h2';
    this.pendingSocket = socket;
    try {
      this.server.emit('connection', socket);
    } finally {
      this.pendingSocket = undefined;
    }
  }

  private onSession(s: Http2Session): void {
    // 'session' is emitted synchronously from the 'connection' handler, so the socket is known.
    const socket = this.pendingSocket;
    if (socket) this.state.set(s, { socket, active: 0 });
    this.sessions.add(s);
    s.once('close', () => this.sessions.delete(s));
    s.on('error', () => undefined);
    if (this.closing) s.close();
    const idle = this.opts.idleTimeoutMs ?? 60_000;
    // Node's session timeout counts inactivity of the whole session: an idle connection closes.
    s.setTimeout(idle, () => s.close());
  }

  /** For drain: GOAWAY on every session; streams in flight finish. */
  close(): void {
    this.closing = true;
    for (const s of this.sessions) s.close();
  }

  closeIdleConnections(): void {
    for (const s of this.sessions) if ((this.state.get(s)?.active ?? 0) === 0) s.destroy();
  }

  closeAllConnections(): void {
    for (const s of this.sessions) s.destroy(undefined, NGHTTP2_NO_ERROR);
  }
}
