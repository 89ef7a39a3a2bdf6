/**
 * The downstream side of the HTTP/1.1 codec: takes over accepted connections (plain or TLS) and
 * turns their bytes into exchanges, one request at a time per connection (pipelined requests
 * wait in the buffer). The head is parsed once; the body is handed on as slices of the received
 * buffers; the response head is serialized once and written together with the first body bytes.
 *
 * Why not node:http: its server and client were most of a sidecar's CPU (ADR 0025). This codec
 * does only what a proxy needs and nothing per request that can be done per connection.
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { BodyDecoder, chunkHeader, CRLF, LAST_CHUNK, type BodyData } from './body.js';
import { RequestBody } from './requestbody.js';
import { DEFAULT_HEAD_LIMITS, foreignProtocol, hasToken, parseRequestHead, requestFraming, serializeFields, type Framing, type HeadError, type HeadLimits, type Headers, type RequestHead } from './head.js';

export interface Http1ServerOptions {
  /** Called once per request, synchronously from the socket's data event. */
  onExchange: (ex: ServerExchange) => void;
  /** A request that could not be parsed (400) or whose head is over the limits (431). */
  onProtocolError?: (socket: Socket, err: HeadError) => void;
  /**
   * Who takes a connection that starts with the HTTP/2 preface (h2c with prior knowledge): the
   * socket is handed over with the bytes read so far unshifted back into it. Undefined (or no
   * hook) answers 400, as an HTTP/1-only port does.
   */
  http2Taker?: (socket: Socket) => ((socket: Socket) => void) | undefined;
  limits?: HeadLimits;
  /** Idle keep-alive connections are closed after this long (Node's server used 60 s here). */
  idleTimeoutMs?: number;
}

const REASONS: Record<number, string> = {
  100: 'Continue',
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  304: 'Not Modified',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  418: "I'm a Teapot",
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Unknown';
}

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
const CONNECT_BODY = 'isle: CONNECT is not supported by this proxy; send plain HTTP requests (absolute-form)\n';
const CONNECT_REPLY = `HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(CONNECT_BODY)}\r\nconnection: close\r\n\r\n${CONNECT_BODY}`;
const EMPTY = Buffer.alloc(0);
/** Buffered pipelined request bytes above this pause the socket. */
const HIGH_WATER = 64 * 1024;

/** What an exchange tells the code answering it. */
export interface ExchangeOwner {
  /** A write that returned false has drained. */
  downstreamDrained(): void;
  /** The connection closed before the response was complete. */
  downstreamClosed(): void;
  /** The response is complete (its last byte is with the socket). */
  responseFinished(): void;
}

/** How the response body will be delimited. */
export type ResponseFraming = { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'none' };

/** What `respondWhole` needs of a downstream exchange (HTTP/1.1, HTTP/2 or isle-mux). */
export interface WholeResponder {
  readonly headersSent: boolean;
  writeHead(status: number, reason: string | undefined, headers: Headers, framing: ResponseFraming): void;
  end(chunk?: Buffer, trailers?: Headers): void;
  reset(): void;
}

/** A complete response from memory (local replies). Resets the exchange if a response already started. */
export function respondWhole(x: WholeResponder, status: number, headers: Headers, body: string | Buffer): void {
  if (x.headersSent) return x.reset();
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  x.writeHead(status, undefined, headers, { kind: 'length', length: buf.length });
  x.end(buf);
}

/** One request on a connection and its response. */
export class ServerExchange implements BodyData {
  readonly head: RequestHead;
  readonly socket: Socket;
  /** Set when the connection closed before the response was complete. */
  gone = false;
  headersSent = false;
  finished = false;
  /** Whether the whole request body has been received. */
  requestComplete: boolean;
  /** Who hears about drain, close and finish (one object per request, no closures). */
  owner: ExchangeOwner | null = null;

  /** Created when the body is first used: a request without one (GET) never makes it. */
  private body: RequestBody | null = null;
  private headText: string | null = null;
  private chunked = false;
  private noBody = false;

  constructor(
    private readonly conn: ServerConnection,
    head: RequestHead,
    readonly framing: Framing,
  ) {
    this.head = head;
    this.socket = conn.socket;
    this.requestComplete = framing.kind === 'none';
  }

  get method(): string {
    return this.head.method;
  }

  get protocol(): string {
    return this.head.minor === 0 ? 'HTTP/1.0' : 'HTTP/1.1';
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  /** Content-Length of the request body, if it has one. */
  get contentLength(): number | undefined {
    return this.framing.kind === 'length' ? this.framing.length : this.framing.kind === 'none' ? 0 : undefined;
  }

  // --- request body ---------------------------------------------------------------------------

  private requestBody(): RequestBody {
    let b = this.body;
    if (!b) {
      b = this.body = new RequestBody(this.conn);
      b.complete = this.requestComplete;
    }
    return b;
  }

  /** The whole request body (the caller checked its size). */
  readBody(): Promise<Buffer> {
    return this.requestBody().read();
  }

  /** The request body as a stream (read once). */
  bodyStream(): Readable {
    return this.requestBody().stream();
  }

  /** The body will not be used: read and drop the rest so the connection can carry the next request. */
  discardBody(): void {
    this.requestBody().discard();
  }

  /** From the connection's decoder. */
  bodyData(chunk: Buffer): void {
    this.requestBody().data(chunk);
  }

  /** From the connection: the request body is complete. */
  bodyEnd(): void {
    this.requestComplete = true;
    this.body?.end();
  }

  /** From the connection: it closed. */
  closed(): void {
    this.body?.closed('downstream closed');
    if (!this.finished) {
      this.gone = true;
      const o = this.owner;
      this.owner = null;
      o?.downstreamClosed();
    }
  }

  // --- response -------------------------------------------------------------------------------

  /**
   * Starts the response. The head is written with the first body bytes (or at `end`), so a small
   * response leaves in one write. Hop-by-hop headers must already be gone from `headers`.
   */
  writeHead(status: number, reason: string | undefined, headers: Headers, framing: ResponseFraming): void {
    if (this.headersSent) throw new Error('response already started');
    this.headersSent = true;
    const http10 = this.head.minor === 0;
    const isHead = this.head.method === 'HEAD';
    const bodiless = status === 204 || status === 304 || status < 200;
    this.noBody = isHead || bodiless || framing.kind === 'none';
    let framingLine = '';
    if (framing.kind === 'length') {
      if (!bodiless) framingLine = `content-length: ${framing.length}\r\n`;
    } else if (framing.kind === 'chunked') {
      // An HTTP/1.0 client cannot read chunked: the body ends when the connection does.
      if (isHead || bodiless) {
        // no body, no framing line
      } else if (http10) this.conn.keepAlive = false;
      else {
        framingLine = 'transfer-encoding: chunked\r\n';
        this.chunked = true;
      }
    } else if (!isHead && !bodiless) framingLine = 'content-length: 0\r\n';
    const conn = this.conn;
    const connLine = !conn.keepAlive || conn.server.closing ? 'connection: close\r\n' : http10 ? 'connection: keep-alive\r\n' : '';
    if (conn.server.closing) conn.keepAlive = false;
    this.headText = `HTTP/1.1 ${status} ${reason || reasonPhrase(status)}\r\n${serializeFields(headers)}${framingLine}${connLine}\r\n`;
  }

  /** Writes body bytes; false means the socket is full (wait for onDrain). */
  write(chunk: Buffer): boolean {
    if (this.finished || this.gone) return true;
    const socket = this.socket;
    if (this.noBody || chunk.length === 0) {
      if (this.headText !== null) return this.flushHead();
      return true;
    }
    const head = this.headText;
    this.headText = null;
    if (this.chunked) {
      socket.cork();
      if (head !== null) socket.write(head, 'latin1');
      socket.write(chunkHeader(chunk.length), 'latin1');
      socket.write(chunk);
      const ok = socket.write(CRLF);
      socket.uncork();
      return ok;
    }
    if (head === null) return socket.write(chunk);
    if (chunk.length <= 16 * 1024) {
      // One buffer, one write, one TLS record: the common small response.
      const hl = Buffer.byteLength(head, 'latin1');
      const out = Buffer.allocUnsafe(hl + chunk.length);
      out.write(head, 0, 'latin1');
      chunk.copy(out, hl);
      return socket.write(out);
    }
    socket.cork();
    socket.write(head, 'latin1');
    const ok = socket.write(chunk);
    socket.uncork();
    return ok;
  }

  private flushHead(): boolean {
    const head = this.headText!;
    this.headText = null;
    return this.socket.write(head, 'latin1');
  }

  /** Ends the response (optionally with a last chunk); trailers only fit a chunked body. */
  end(chunk?: Buffer, trailers?: Headers): void {
    if (this.finished || this.gone) return;
    if (chunk && chunk.length) this.write(chunk);
    if (this.headText !== null) this.flushHead();
    if (this.chunked) this.socket.write(trailers ? `0\r\n${serializeFields(trailers)}\r\n` : LAST_CHUNK, 'latin1');
    this.finished = true;
    const o = this.owner;
    this.owner = null;
    o?.responseFinished();
    this.conn.exchangeDone(this);
  }

  respond(status: number, headers: Headers, body: string | Buffer): void {
    respondWhole(this, status, headers, body);
  }

  /** The response cannot be completed honestly: close the connection. */
  reset(): void {
    if (this.finished) return;
    this.finished = true;
    this.owner = null;
    this.gone = true;
    this.socket.destroy();
  }
}

/** Per-connection state: the read buffer, the current exchange, keep-alive. */
class ServerConnection {
  private buf: Buffer = EMPTY;
  private scanned = 0;
  private current: ServerExchange | null = null;
  private decoder: BodyDecoder | null = null;
  private paused = false;
  keepAlive = true;
  /** When the last exchange ended (or the connection opened). */
  lastActive: number;

  constructor(
    readonly server: Http1Server,
    readonly socket: Socket,
  ) {
    this.attach();
    // Idle keep-alive connections are closed by the server's sweep, not a socket timeout: a
    // socket timeout is re-armed on every read and write (a timer-list insert each time).
    this.lastActive = performance.now();
  }

  private readonly onDataBound = (d: Buffer): void => this.onData(d);
  private readonly onCloseBound = (): void => this.onClose();
  private readonly onDrainBound = (): void => this.current?.owner?.downstreamDrained();
  /** Requests this connection has started. */
  private served = 0;

  private attach(): void {
    this.socket.on('data', this.onDataBound);
    this.socket.once('close', this.onCloseBound);
    this.socket.on('drain', this.onDrainBound);
  }

  get idle(): boolean {
    return this.current === null;
  }

  pauseReading(): void {
    if (!this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  resumeReading(): void {
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private onData(d: Buffer): void {
    if (this.current && this.decoder) {
      const at = this.decoder.feed(d, 0, this.current);
      if (at < 0) return this.protocolError({ error: 400, reason: this.decoder.error ?? 'bad body' });
      if (this.decoder.done) {
        this.decoder = null;
        this.current.bodyEnd();
        if (at < d.length) this.append(d.subarray(at));
        if (this.doneWhenBodyEnds) this.next();
      }
      return;
    }
    this.append(d);
    if (!this.current) this.parse();
    else if (this.buf.length > HIGH_WATER) this.pauseReading();
  }

  private append(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
  }

  /** Parses as many requests as are buffered, up to the first one still being answered. */
  private parse(): void {
    while (!this.current && this.buf.length > 0 && !this.socket.destroyed) {
      // Empty lines before a request are tolerated (RFC 9112 §2.2).
      let skip = 0;
      while (this.buf[skip] === 13 && this.buf[skip + 1] === 10) skip += 2;
      if (skip) {
        this.buf = this.buf.subarray(skip);
        this.scanned = 0;
        continue;
      }
      // Until the first 24 bytes (the HTTP/2 preface's length) are known, look again.
      if (this.scanned < 24) {
        const foreign = foreignProtocol(this.buf);
        if (foreign) {
          if (foreign.http2 && this.handOver()) return;
          return this.protocolError(foreign);
        }
      }
      const r = parseRequestHead(this.buf, this.server.limits, this.scanned);
      if (r === undefined) {
        this.scanned = this.buf.length;
        return;
      }
      if ('error' in r) return this.protocolError(r);
      const head = r.head;
      let rest = this.buf.subarray(r.length);
      this.buf = EMPTY;
      this.scanned = 0;
      if (head.method === 'CONNECT') {
        // No CONNECT upgrade (as Istio's sidecar): say so rather than leaving the client hanging.
        this.keepAlive = false;
        this.socket.end(CONNECT_REPLY);
        return;
      }
      const framing = requestFraming(head.headers);
      if ('error' in framing) return this.protocolError(framing);
      const conn = head.headers['connection'];
      this.keepAlive = head.minor === 1 ? !hasToken(conn, 'close') : hasToken(conn, 'keep-alive');
      const ex = new ServerExchange(this, head, framing);
      this.current = ex;
      this.served++;
      if (framing.kind !== 'none') {
        if (head.minor === 1 && hasToken(head.headers['expect'], '100-continue')) this.socket.write(CONTINUE, 'latin1');
        const decoder = new BodyDecoder(framing);
        const at = rest.length ? decoder.feed(rest, 0, ex) : 0;
        if (at < 0) return this.protocolError({ error: 400, reason: decoder.error ?? 'bad body' });
        if (decoder.done) {
          ex.bodyEnd();
          rest = rest.subarray(at);
        } else {
          this.decoder = decoder;
          rest = EMPTY;
        }
      }
      this.buf = rest;
      this.server.opts.onExchange(ex);
    }
  }

  /** Gives an HTTP/2 connection to the HTTP/2 engine, with the bytes read so far. */
  private handOver(): boolean {
    // Only at the start of a connection: a preface after HTTP/1.1 requests is a protocol error.
    if (this.served > 0) return false;
    const socket = this.socket;
    const take = this.server.opts.http2Taker?.(socket);
    if (!take) return false;
    socket.pause();
    socket.removeListener('data', this.onDataBound);
    socket.removeListener('close', this.onCloseBound);
    socket.removeListener('drain', this.onDrainBound);
    this.server.connections.delete(this);
    const buf = this.buf;
    this.buf = EMPTY;
    socket.unshift(buf);
    take(socket);
    return true;
  }

  private protocolError(err: HeadError): void {
    this.server.opts.onProtocolError?.(this.socket, err);
    const cur = this.current;
    if (cur && cur.headersSent) return void this.socket.destroy();
    const status = err.error === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
    const body = err.tell ? `isle: ${err.reason}` : status;
    this.keepAlive = false;
    this.buf = EMPTY;
    if (cur) cur.finished = true;
    this.socket.end(`HTTP/1.1 ${err.error} ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body) + 1}\r\nconnection: close\r\n\r\n${body}\n`);
  }

  /** The response of `ex` is complete: next request, or close. */
  exchangeDone(ex: ServerExchange): void {
    if (this.current !== ex) return;
    if (!this.keepAlive) {
      this.socket.end();
      return;
    }
    if (!ex.requestComplete) {
      // The rest of an unread body is skipped; only then can the next request be parsed.
      ex.discardBody();
      this.doneWhenBodyEnds = true;
      return;
    }
    this.next();
  }

  private doneWhenBodyEnds = false;

  private next(): void {
    this.current = null;
    this.lastActive = performance.now();
    this.doneWhenBodyEnds = false;
    this.resumeReading();
    if (this.buf.length) this.parse();
  }

  private onClose(): void {
    this.server.connections.delete(this);
    const cur = this.current;
    this.current = null;
    cur?.closed();
  }
}

/** Serves HTTP/1.1 on connections handed to it with `serve(socket)`; it never listens itself. */
export class Http1Server {
  readonly connections = new Set<ServerConnection>();
  readonly limits: HeadLimits;
  readonly idleTimeoutMs: number;
  /** Draining: every response says `connection: close`. */
  closing = false;

  constructor(readonly opts: Http1ServerOptions) {
    this.limits = opts.limits ?? DEFAULT_HEAD_LIMITS;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  }

  serve(socket: Socket): void {
    socket.setNoDelay(true);
    this.connections.add(new ServerConnection(this, socket));
    socket.resume();
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), Math.max(50, Math.min(1000, this.idleTimeoutMs / 4)));
      this.sweeper.unref();
    }
  }

  private sweeper: NodeJS.Timeout | undefined;

  /** Closes keep-alive connections idle for longer than idleTimeoutMs. */
  private sweep(): void {
    const cutoff = performance.now() - this.idleTimeoutMs;
    for (const c of this.connections) if (c.idle && c.lastActive < cutoff) c.socket.destroy();
    if (this.connections.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /** For drain: responses from now on close their connections. */
  close(): void {
    this.closing = true;
  }

  closeIdleConnections(): void {
    for (const c of this.connections) if (c.idle) c.socket.destroy();
  }

  closeAllConnections(): void {
    for (const c of this.connections) c.socket.destroy();
  }
}
