/**
 * A minimal gRPC client for bidirectional streams, on node:http2 directly, for the simulated
 * proxies of the control-plane benchmarks (xdsworker.ts).
 *
 * grpc-js costs a simulated proxy far more than the bytes it receives: each message is gathered
 * from its 16 KB HTTP/2 chunks and concatenated into a fresh Buffer (StreamDecoder), then passes
 * through interceptors, object-mode streams and microtasks. With hundreds of proxies per worker
 * receiving 0.5–1.5 MB each, those short-lived ArrayBuffers (their JS objects promoted while the
 * message is still incomplete) made V8 run full mark-compacts over and over, and the workers spent
 * about three times the control plane's CPU (ADR 0134). Here a message is handed over as a view:
 * into the chunk itself when it arrived whole, else into a receive buffer copied into at once from
 * each chunk and reused for later messages (a worker-wide pool), so chunks die young and the
 * large buffers are not reallocated.
 *
 * It speaks the same gRPC as grpc-js (5-byte message prefix, `content-type: application/grpc`,
 * `te: trailers`, status in trailers); one HTTP/2 connection per channel, its targets tried in
 * order like grpc-js' pick_first (`host:port` or `ipv4:a:p,b:p`). Windows are Envoy's defaults
 * (256 MiB for the stream and the connection), not node's 64 KB. No compression is offered.
 */
import http2 from 'node:http2';

/**
 * Envoy's default initial stream and connection window (http2_protocol_options);
 * ISLE_BENCH_XDS_WINDOW=<bytes> sets another (65535: node's and grpc-js' default).
 */
export const WINDOW = Number(process.env['ISLE_BENCH_XDS_WINDOW'] || 256 * 1024 * 1024);
/** Like grpc.max_receive_message_length as the workers set it. */
const MAX_MESSAGE = 256 * 1024 * 1024;
export const Status = { OK: 0, UNKNOWN: 2, INTERNAL: 13, UNAVAILABLE: 14 } as const;
const STATUS_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? String(code);
}

/**
 * Receive buffers of whole messages, by power-of-two size, kept for reuse up to `limit` bytes in
 * all: a worker holds as many as messages are partly received at once, instead of allocating one
 * per message.
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private kept = 0;
  constructor(private readonly limit = 512 * 1024 * 1024) {}

  take(n: number): Buffer {
    const size = Math.max(65_536, 2 ** Math.ceil(Math.log2(n)));
    const b = this.free.get(size)?.pop();
    if (b) {
      this.kept -= size;
      return b;
    }
    return Buffer.allocUnsafeSlow(size);
  }

  give(b: Buffer): void {
    if (this.kept + b.length > this.limit) return;
    let l = this.free.get(b.length);
    if (!l) this.free.set(b.length, (l = []));
    l.push(b);
    this.kept += b.length;
  }

  get keptBytes(): number {
    return this.kept;
  }
}

const sharedPool = new BufferPool();

/**
 * Splits gRPC's length-prefixed messages out of HTTP/2 DATA chunks. `onMessage` gets b[start, end),
 * valid only during the call.
 */
export class MessageReader {
  private readonly head = Buffer.alloc(5);
  private headFill = 0;
  private body: Buffer | undefined;
  private bodyLen = 0;
  private bodyFill = 0;

  constructor(
    private readonly onMessage: (b: Buffer, start: number, end: number) => void,
    private readonly pool: BufferPool = sharedPool,
  ) {}

  /** Throws on a compressed or oversized message (the caller ends the call). */
  feed(c: Buffer): void {
    let i = 0;
    const n = c.length;
    while (i < n) {
      if (this.headFill < 5) {
        if (this.headFill === 0 && n - i >= 5) {
          const len = this.start(c[i]!, c.readUInt32BE(i + 1));
          i += 5;
          if (n - i >= len) {
            this.headFill = 0;
            this.onMessage(c, i, i + len);
            i += len;
          } else this.begin(len);
          continue;
        }
        this.head[this.headFill++] = c[i++]!;
        if (this.headFill === 5) {
          const len = this.start(this.head[0]!, this.head.readUInt32BE(1));
          if (len === 0) {
            this.headFill = 0;
            this.onMessage(c, i, i);
          } else this.begin(len);
        }
        continue;
      }
      const take = Math.min(n - i, this.bodyLen - this.bodyFill);
      c.copy(this.body!, this.bodyFill, i, i + take);
      this.bodyFill += take;
      i += take;
      if (this.bodyFill === this.bodyLen) {
        const b = this.body!;
        this.body = undefined;
        this.headFill = 0;
        try {
          this.onMessage(b, 0, this.bodyLen);
        } finally {
          this.pool.give(b);
        }
      }
    }
  }

  private start(flag: number, len: number): number {
    if (flag !== 0) throw new Error('compressed message received (none was offered)');
    if (len > MAX_MESSAGE) throw new Error(`message of ${len} bytes exceeds the limit of ${MAX_MESSAGE}`);
    return len;
  }

  private begin(len: number): void {
    this.headFill = 5;
    this.body = this.pool.take(len);
    this.bodyLen = len;
    this.bodyFill = 0;
  }

  /** Returns a partly received message's buffer to the pool (the call ended). */
  release(): void {
    if (this.body) this.pool.give(this.body);
    this.body = undefined;
  }
}

export interface CallHandlers {
  /** One whole response message: b[start, end), valid only during the call (its buffer is reused). */
  message(b: Buffer, start: number, end: number): void;
  /** The call ended (trailers, reset or lost connection); never called after cancel(). */
  end(code: number, details: string): void;
}

/** One bidirectional streaming call. Messages written before the connection is up are queued. */
export class Call {
  private stream: http2.ClientHttp2Stream | undefined;
  private queued: (readonly Uint8Array[])[] = [];
  private done = false;
  private readonly reader: MessageReader;

  constructor(private readonly handlers: CallHandlers) {
    this.reader = new MessageReader((b, s, e) => handlers.message(b, s, e));
  }

  /** Writes one message made of `parts` (their concatenation is the serialized message). */
  write(parts: readonly Uint8Array[]): void {
    if (this.done) return;
    if (!this.stream) {
      this.queued.push(parts);
      return;
    }
    let len = 0;
    for (const p of parts) len += p.length;
    const prefix = Buffer.allocUnsafe(5);
    prefix[0] = 0;
    prefix.writeUInt32BE(len, 1);
    const st = this.stream;
    st.cork();
    st.write(prefix);
    for (const p of parts) if (p.length > 0) st.write(p);
    st.uncork();
  }

  /** Cancels the call (RST_STREAM CANCEL); `end` is not reported. */
  cancel(): void {
    if (this.done) return;
    this.done = true;
    this.reader.release();
    this.stream?.close(http2.constants.NGHTTP2_CANCEL);
  }

  /** @internal */
  attach(session: http2.ClientHttp2Session, path: string): void {
    if (this.done) return;
    let st: http2.ClientHttp2Stream;
    try {
      st = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', 'user-agent': 'isle-bench-xds' }, { endStream: false });
    } catch (e) {
      this.fail(Status.UNAVAILABLE, (e as Error).message);
      return;
    }
    this.stream = st;
    let code: number | undefined;
    let details = '';
    const status = (h: http2.IncomingHttpHeaders): void => {
      const s = h['grpc-status'];
      if (s === undefined) return;
      code = Number(s);
      const m = h['grpc-message'];
      details = typeof m === 'string' ? decodeURIComponent(m) : '';
    };
    st.on('response', (h) => {
      if (h[':status'] !== 200) {
        code = Status.UNKNOWN;
        details = `received HTTP status code ${h[':status']}`;
      }
      status(h); // trailers-only response
    });
    st.on('trailers', status);
    st.on('data', (c: Buffer) => {
      if (this.done) return;
      try {
        this.reader.feed(c);
      } catch (e) {
        this.fail(Status.INTERNAL, `response message parsing error: ${(e as Error).message}`);
        st.close(http2.constants.NGHTTP2_CANCEL);
      }
    });
    let streamError = '';
    st.on('error', (e: Error) => {
      // Reported by 'close', with this message.
      streamError = e.message;
    });
    // The response ended (after its trailers, or a trailers-only response): the call is over, and
    // our half of the stream is closed as grpc-js closes it.
    st.on('end', () => {
      if (code === undefined) this.fail(Status.UNKNOWN, 'No status received');
      else this.fail(code, details);
      st.close(code === Status.OK ? http2.constants.NGHTTP2_NO_ERROR : http2.constants.NGHTTP2_CANCEL);
    });
    st.on('close', () => {
      if (code !== undefined) this.fail(code, details);
      else this.fail(Status.UNAVAILABLE, `${st.rstCode ? `stream reset with code ${st.rstCode}` : 'Connection dropped'}${streamError ? ` (${streamError})` : ''}`);
    });
    for (const q of this.queued) this.write(q);
    this.queued = [];
  }

  /** @internal */
  fail(code: number, details: string): void {
    if (this.done) return;
    this.done = true;
    this.reader.release();
    this.handlers.end(code, details);
  }
}

/** `host:port`, `dns:host:port` or `ipv4:a:p,b:p` (grpc-js target syntax, as the benchmarks use it). */
export function parseTarget(target: string): string[] {
  const t = target.replace(/^dns:(\/\/\/)?/, '');
  const list = t.startsWith('ipv4:') ? t.slice(5).split(',') : [t];
  if (list.some((a) => !/^[^:/\s]+:\d+$/.test(a))) throw new Error(`grpch2: unsupported target ${target}`);
  return list;
}

/**
 * One HTTP/2 connection to the first of its targets that accepts it, opened when a call needs it
 * and again after it was lost (as a grpc-js channel with its own subchannel).
 */
export class Channel {
  private readonly targets: string[];
  private session: http2.ClientHttp2Session | undefined;
  private connecting = false;
  private pending: { call: Call; path: string }[] = [];
  private closed = false;

  constructor(target: string) {
    this.targets = parseTarget(target);
  }

  call(path: string, handlers: CallHandlers): Call {
    const call = new Call(handlers);
    if (this.closed) {
      call.fail(Status.UNAVAILABLE, 'channel closed');
      return call;
    }
    if (this.session && (this.session.destroyed || this.session.closed)) this.session = undefined;
    if (this.session) call.attach(this.session, path);
    else {
      this.pending.push({ call, path });
      this.connect(0, '');
    }
    return call;
  }

  private connect(k: number, lastError: string): void {
    if (this.connecting && k === 0) return;
    if (k >= this.targets.length) {
      this.connecting = false;
      const p = this.pending;
      this.pending = [];
      for (const x of p) x.call.fail(Status.UNAVAILABLE, `No connection established. Last error: ${lastError}`);
      return;
    }
    this.connecting = true;
    let up = false;
    const s = http2.connect(`http://${this.targets[k]}`, { settings: { initialWindowSize: WINDOW, enablePush: false }, maxSessionMemory: 64 });
    s.once('connect', () => {
      up = true;
      this.connecting = false;
      if (this.closed) return void s.destroy();
      if (WINDOW > 65_535) s.setLocalWindowSize(WINDOW);
      this.session = s;
      const p = this.pending;
      this.pending = [];
      for (const x of p) x.call.attach(s, x.path);
    });
    s.on('error', (e: Error) => {
      if (up) return; // the streams report it
      s.destroy();
      this.connect(k + 1, e.message);
    });
    // After a GOAWAY the session only finishes its streams: new calls need a new connection.
    const gone = (): void => {
      if (this.session === s) this.session = undefined;
    };
    s.once('goaway', gone);
    s.once('close', gone);
  }

  close(): void {
    this.closed = true;
    const p = this.pending;
    this.pending = [];
    for (const x of p) x.call.cancel();
    this.session?.close();
    this.session = undefined;
  }
}
