/**
 * What both ends of an `isle-mux/1` connection share (ADR 0138): the writes of one event-loop
 * turn gathered into one socket write (one TLS record, one syscall — the measured gain, ADR 0130
 * §2), and per-stream flow control: a sender may have at most the granted credit of DATA in
 * flight per stream; a receiver grants more as the bytes are consumed downstream, so one slow
 * stream holds at most its window in memory and never stalls its siblings.
 */
import type { Socket } from 'node:net';
import { CONNECTION_CREDIT, FLAG_END, FrameReader, FrameType, HEADER_BYTES, headerAt, writeTextDataFrames, writeTextFrame, INITIAL_WINDOW, MAX_PAYLOAD, MAX_STREAM_WINDOW, parsePreface, WINDOW_UPDATE_AT, type FrameSink } from './frame.js';

/** Gathered bytes above this are written as separate buffers under cork instead of copied into one. */
const COPY_LIMIT = 64 * 1024;
/** Frames are written into arenas of this size (ADR 0143); smaller frames built elsewhere are copied in. */
const ARENA_BYTES = 16 * 1024;
const COPY_SMALL = 1024;
const EMPTY = Buffer.alloc(0);

export abstract class MuxSession implements FrameSink {
  readonly reader: FrameReader;
  /** The peer's preface arrived (nothing else is accepted before it). */
  gotPreface = false;
  /** The credit the peer grants each new stream (from its preface). */
  peerWindow = INITIAL_WINDOW;
  /** The last socket write returned false: senders hold back until 'drain'. */
  blocked = false;
  /** DATA received on this connection's streams whose credit was not returned yet (ADR 0138). */
  held = 0;
  /** The sum of this connection's open receive windows: credit granted and not yet consumed. */
  granted = 0;
  /** Its cap: at it receive windows stop growing. */
  creditCap = CONNECTION_CREDIT;
  private out: Buffer[] = [];
  private outBytes = 0;
  private scheduled = false;
  /**
   * Senders that were told "full" and want to hear when they may write again. An array emptied
   * in place, not a Set: clearing a Set that sits in old space leaves an obsolete table there
   * that keeps its streams alive across scavenges (ADR 0150).
   */
  private readonly waitingDrain: OutStream[] = [];

  constructor(readonly socket: Socket) {
    this.reader = new FrameReader(this);
    socket.on('drain', this.onDrainBound);
  }

  private readonly onDrainBound = (): void => this.onSocketDrain();

  /** The first frame from the peer, which must be its preface: the error if it is not one. */
  protected takePreface(type: number, payload: Buffer): string | undefined {
    if (type !== FrameType.Preface) return 'isle-mux: the peer did not start with a preface';
    const w = parsePreface(payload);
    if (w === undefined) return 'isle-mux: bad preface';
    this.gotPreface = true;
    this.peerWindow = w;
    return undefined;
  }

  /** The socket goes to another codec: stop listening to it. */
  detach(): void {
    this.socket.off('drain', this.onDrainBound);
  }

  abstract frame(type: number, flags: number, id: number, payload: Buffer): string | undefined;

  /**
   * Frames are written into this arena where they can be (heads, small frames): one buffer for a
   * turn's frames instead of one per frame plus their concatenation (ADR 0143). What was handed to
   * the socket is never written again: the next frames go after it, or into a fresh arena.
   */
  private arena: Buffer = EMPTY;
  private arenaAt = 0;
  /** Where this turn's bytes in the arena start. */
  private arenaStart = 0;

  /** Makes room for `n` bytes at `arenaAt`. */
  private room(n: number): void {
    if (this.arena.length - this.arenaAt >= n) return;
    this.cutArena();
    this.arena = Buffer.allocUnsafe(Math.max(ARENA_BYTES, n));
    this.arenaAt = this.arenaStart = 0;
  }

  /** This turn's arena bytes become an entry of `out` (before a frame that is not copied, or the write). */
  private cutArena(): void {
    if (this.arenaAt === this.arenaStart) return;
    this.out.push(this.arena.subarray(this.arenaStart, this.arenaAt));
    this.arenaStart = this.arenaAt;
  }

  /** Queues a frame for this turn's write. */
  send(b: Buffer): void {
    if (b.length <= COPY_SMALL) {
      this.room(b.length);
      b.copy(this.arena, this.arenaAt);
      this.arenaAt += b.length;
    } else {
      this.cutArena();
      this.out.push(b);
    }
    this.queued(b.length);
  }

  /** Queues a frame of latin1 text (a head), written straight into the arena. */
  sendText(type: FrameType, flags: number, id: number, text: string): void {
    const n = HEADER_BYTES + text.length;
    this.room(n);
    this.arenaAt = writeTextFrame(this.arena, this.arenaAt, type, flags, id, text);
    this.queued(n);
  }

  /** Queues a head frame and a small body's DATA frame, written straight into the arena. */
  sendTextData(type: FrameType, id: number, text: string, body: Buffer, end: boolean): void {
    const n = 2 * HEADER_BYTES + text.length + body.length;
    this.room(n);
    this.arenaAt = writeTextDataFrames(this.arena, this.arenaAt, type, id, text, body, end);
    this.queued(n);
  }

  /** Queues a DATA frame's header (its payload follows with `send`), written straight into the arena. */
  sendDataHeader(id: number, length: number, end: boolean): void {
    this.room(HEADER_BYTES);
    headerAt(this.arena, this.arenaAt, length, FrameType.Data, end ? FLAG_END : 0, id);
    this.arenaAt += HEADER_BYTES;
    this.queued(HEADER_BYTES);
  }

  /** Queues a WINDOW frame granting `n` more bytes on stream `id`, written straight into the arena. */
  sendWindow(id: number, n: number): void {
    const size = HEADER_BYTES + 4;
    this.room(size);
    headerAt(this.arena, this.arenaAt, 4, FrameType.Window, 0, id);
    this.arena.writeUInt32BE(n, this.arenaAt + HEADER_BYTES);
    this.arenaAt += size;
    this.queued(size);
  }

  private queued(n: number): void {
    this.outBytes += n;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(flushSession, this);
    }
  }

  flush(): void {
    this.scheduled = false;
    this.cutArena();
    const out = this.out;
    const bytes = this.outBytes;
    this.out = [];
    this.outBytes = 0;
    const s = this.socket;
    // After our end (GOAWAY sent, last stream done) late frames have nowhere to go.
    if (out.length === 0 || s.destroyed || s.writableEnded) return;
    let ok: boolean;
    if (out.length === 1) ok = s.write(out[0]!);
    else if (bytes <= COPY_LIMIT) ok = s.write(Buffer.concat(out, bytes));
    else {
      s.cork();
      for (let i = 0; i < out.length - 1; i++) s.write(out[i]!);
      ok = s.write(out[out.length - 1]!);
      s.uncork();
    }
    if (!ok) this.blocked = true;
  }

  /** Writes what is queued, then closes our side (the queued frames must not come after the end). */
  end(): void {
    this.flush();
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.end();
  }

  /** Writes what is queued (it may still leave in time), then destroys the socket. */
  destroy(): void {
    this.flush();
    this.socket.destroy();
  }

  waitDrain(o: OutStream): void {
    if (!this.waitingDrain.includes(o)) this.waitingDrain.push(o);
  }

  forgetDrain(o: OutStream): void {
    const w = this.waitingDrain;
    if (w.length === 0) return;
    const i = w.indexOf(o);
    if (i >= 0) w.splice(i, 1);
  }

  private onSocketDrain(): void {
    this.blocked = false;
    const w = this.waitingDrain;
    if (w.length === 0) return;
    const now = w.slice();
    w.length = 0;
    for (const o of now) o.socketDrained();
  }
}

function flushSession(s: MuxSession): void {
  s.flush();
}


/** Who hears that a sender that was full may write again. */
export interface DrainListener {
  sendDrained(): void;
}

/** The sending half of a stream: DATA within the peer's credit, the rest queued. */
export class OutStream {
  window: number;
  private queue: Buffer[] | null = null;
  private queuedEnd = false;
  /** A frame that ends the stream (trailers) and must follow the queued data. */
  private tail: Buffer | null = null;
  /** The END flag went out (or is queued behind the data). */
  ended = false;
  private wantDrain = false;

  constructor(
    private readonly session: MuxSession,
    readonly id: number,
    private readonly listener: DrainListener,
  ) {
    this.window = session.peerWindow;
  }

  /**
   * Sends body bytes (END with the last); false: hold back until `sendDrained`. While the socket
   * is full nothing more is handed to it: the bytes wait here, in the sender's stream, where the
   * writer was told to stop (a writer that ignores "full" is bounded by its own source).
   */
  data(chunk: Buffer, end: boolean): boolean {
    if (this.ended) return true;
    if (end) this.ended = true;
    if (this.queue === null && this.session.blocked) {
      this.queue = [];
      this.session.waitDrain(this);
    }
    if (this.queue !== null) {
      if (chunk.length) this.queue.push(chunk);
      if (end) this.queuedEnd = true;
      this.wantDrain = true;
      return false;
    }
    const n = chunk.length;
    if (n <= this.window) {
      this.window -= n;
      this.emit(chunk, end);
    } else {
      const now = chunk.subarray(0, this.window);
      this.queue = [chunk.subarray(this.window)];
      this.queuedEnd = end;
      if (now.length) this.emit(now, false);
      this.window = 0;
      this.wantDrain = true;
      return false;
    }
    if (this.session.blocked) {
      this.wantDrain = true;
      this.session.waitDrain(this);
      return false;
    }
    return true;
  }

  /**
   * The caller sent `n` body bytes itself (in one buffer with the head frame): they come off the
   * window like any DATA; false (and a `sendDrained` later) when the socket is full.
   */
  sentWithHead(n: number, end: boolean): boolean {
    this.window -= n;
    if (end) this.ended = true;
    if (this.session.blocked) {
      this.wantDrain = true;
      this.session.waitDrain(this);
      return false;
    }
    return true;
  }

  private emit(chunk: Buffer, end: boolean): void {
    const s = this.session;
    // A grown window (up to 16 MiB) may let a large chunk go at once: no frame above MAX_PAYLOAD.
    let at = 0;
    while (chunk.length - at > MAX_PAYLOAD) {
      s.sendDataHeader(this.id, MAX_PAYLOAD, false);
      s.send(chunk.subarray(at, (at += MAX_PAYLOAD)));
    }
    const rest = at === 0 ? chunk : chunk.subarray(at);
    s.sendDataHeader(this.id, rest.length, end);
    if (rest.length) s.send(rest);
  }

  /** Ends the stream with `frame` (trailers) once the queued data is out. */
  endWith(frame: Buffer): void {
    if (this.ended) return;
    this.ended = true;
    if (this.queue === null) this.session.send(frame);
    else this.tail = frame;
  }

  /** The peer granted `n` more bytes. */
  credit(n: number): void {
    this.window += n;
    this.pump();
  }

  /** The socket took its buffered bytes: what waited for it may go. */
  socketDrained(): void {
    if (this.queue !== null) this.pump();
    else this.maybeDrained();
  }

  /** Sends what is queued, within the credit, unless the socket is full. */
  private pump(): void {
    const q = this.queue;
    if (!q) return;
    if (this.session.blocked) return this.session.waitDrain(this);
    let sentEnd = false;
    while (q.length && this.window > 0) {
      const c = q[0]!;
      if (c.length <= this.window) {
        q.shift();
        this.window -= c.length;
        sentEnd = q.length === 0 && this.queuedEnd;
        this.emit(c, sentEnd);
      } else {
        this.emit(c.subarray(0, this.window), false);
        q[0] = c.subarray(this.window);
        this.window = 0;
      }
    }
    if (q.length === 0) {
      // An END queued on its own (no bytes with it) still has to go out.
      if (this.queuedEnd && !sentEnd) this.emit(EMPTY, true);
      this.queue = null;
      const t = this.tail;
      this.tail = null;
      if (t) this.session.send(t);
      this.maybeDrained();
    }
  }

  /** Nothing queued and the socket takes writes: tell the writer it may go on. */
  maybeDrained(): void {
    if (!this.wantDrain || this.queue !== null) return;
    if (this.session.blocked) return this.session.waitDrain(this);
    this.wantDrain = false;
    this.listener.sendDrained();
  }

  /** The stream is gone: drop what is queued. */
  drop(): void {
    this.queue = null;
    this.tail = null;
    this.ended = true;
    this.wantDrain = false;
    this.session.forgetDrain(this);
  }

  get idle(): boolean {
    return this.queue === null;
  }

  /** Whether an END was queued behind data when the window ran out and still has to go out. */
  get endPending(): boolean {
    return this.queue !== null && this.queuedEnd;
  }
}

/**
 * The receiving half of a stream's flow control: counts what the peer may still send and returns
 * credit as bytes are consumed, unless the consumer paused (then the credit waits for resume).
 * Auto-tuning: once a whole window was consumed with no pause in between, the window, not the
 * consumer, limited the stream (one window per round trip); the window doubles, the extra credit
 * riding on the next WINDOW frame, up to MAX_STREAM_WINDOW and while the connection's granted
 * credit stays within its cap. A window never shrinks: the peer may already be using the credit.
 */
export class InStream {
  /** How many more DATA bytes the peer may send now. */
  allowed = INITIAL_WINDOW;
  /** The stream's window: credit granted and not yet consumed (allowed + received unreturned). */
  window = INITIAL_WINDOW;
  private unacked = 0;
  /** Consumed since the window last grew or the consumer last paused. */
  private run = 0;
  paused = false;
  private done = false;

  constructor(
    private readonly session: MuxSession,
    readonly id: number,
  ) {
    session.granted += INITIAL_WINDOW;
  }

  /** DATA of `n` bytes arrived; false: more than the credit (a flow-control error). */
  received(n: number): boolean {
    this.allowed -= n;
    if (!this.done) this.session.held += n;
    return this.allowed >= 0;
  }

  /** The stream is gone: what it held and was granted no longer counts against the connection. */
  close(): void {
    if (this.done) return;
    this.done = true;
    this.session.held -= this.window - this.allowed;
    this.session.granted -= this.window;
    this.unacked = 0;
  }

  /** `n` bytes left for the consumer. */
  consumed(n: number): void {
    this.unacked += n;
    if (this.paused) return;
    this.run += n;
    if (this.unacked >= WINDOW_UPDATE_AT) this.grant();
  }

  pause(): void {
    this.paused = true;
    this.run = 0;
  }

  resume(): void {
    this.paused = false;
    if (this.unacked > 0) this.grant();
  }

  private grant(): void {
    if (this.done) return;
    const n = this.unacked;
    this.unacked = 0;
    this.allowed += n;
    this.session.held -= n;
    this.session.sendWindow(this.id, n + this.grow());
  }

  /** Extra credit when the window was the bottleneck (see the class comment); 0 otherwise. */
  private grow(): number {
    if (this.run < this.window) return 0;
    this.run = 0;
    const s = this.session;
    const extra = Math.min(this.window, MAX_STREAM_WINDOW - this.window, s.creditCap - s.granted);
    if (extra <= 0) return 0;
    this.window += extra;
    this.allowed += extra;
    s.granted += extra;
    return extra;
  }
}
