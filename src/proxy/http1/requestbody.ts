/**
 * A request body as the filter chain asks for it, for both downstream codecs: the HTTP/1.1
 * exchange (`./server.ts`) and the HTTP/2 stream (`../http2/server.ts`). Bytes that arrive before
 * anybody asked are buffered (up to HIGH_WATER, then the source is paused); then the body is
 * collected whole (`read`), streamed (`stream`) or dropped (`discard`), once.
 *
 * The exchanges create it on first use, so a request without a body (the common GET) costs no
 * object of its own (ADR 0128).
 */
import { Readable } from 'node:stream';

const EMPTY = Buffer.alloc(0);
const ignore = (): void => undefined;
/** Body bytes buffered before anybody asked for them; above this the source is paused. */
const HIGH_WATER = 64 * 1024;

const enum Mode {
  /** Nobody asked for it yet: buffered. */
  Pending,
  Collect,
  Stream,
  Discard,
}

/** Where the body's bytes come from: pausing it stops reading (the connection, or the stream). */
export interface BodySource {
  pauseReading(): void;
  resumeReading(): void;
}

export class RequestBody {
  /** Whether the whole body has been received. */
  complete = false;
  private mode = Mode.Pending;
  private pending: Buffer[] | null = null;
  private pendingBytes = 0;
  private collectResolve: ((b: Buffer) => void) | null = null;
  private readable: Readable | null = null;

  constructor(private readonly source: BodySource) {}


  /** The whole body (the caller checked its size). */
  read(): Promise<Buffer> {
    if (this.complete && this.mode === Mode.Pending) {
      this.mode = Mode.Discard;
      return Promise.resolve(this.take());
    }
    this.mode = Mode.Collect;
    this.source.resumeReading();
    return new Promise((resolve) => (this.collectResolve = resolve));
  }

  /** The whole body if it is complete and nobody asked for it yet, else undefined. */
  takeIfComplete(limit: number): Buffer | undefined {
    if (!this.complete || this.pendingBytes > limit || this.mode !== Mode.Pending) return undefined;
    this.mode = Mode.Discard;
    return this.take();
  }

  /** The body as a stream (read once). */
  stream(): Readable {
    if (this.readable) return this.readable;
    const s = new Readable({ read: () => this.source.resumeReading() });
    // Cut short (`closed`), it is destroyed with an error; whoever reads it may have finished with
    // it already (an attempt that timed out): unheard, that error would take the process down.
    s.on('error', ignore);
    this.readable = s;
    this.mode = Mode.Stream;
    for (const b of this.pending ?? []) s.push(b);
    this.pending = null;
    if (this.complete) s.push(null);
    return s;
  }

  /** The body will not be used: read and drop the rest. */
  discard(): void {
    if (this.mode === Mode.Stream || this.mode === Mode.Collect) return;
    this.mode = Mode.Discard;
    this.pending = null;
    this.source.resumeReading();
  }

  private take(): Buffer {
    const p = this.pending;
    this.pending = null;
    if (!p) return EMPTY;
    return p.length === 1 ? p[0]! : Buffer.concat(p);
  }

  /** From the codec: a slice of the body, in order. */
  data(chunk: Buffer): void {
    switch (this.mode) {
      case Mode.Pending:
      case Mode.Collect:
        (this.pending ??= []).push(chunk);
        this.pendingBytes += chunk.length;
        if (this.mode === Mode.Pending && this.pendingBytes > HIGH_WATER) this.source.pauseReading();
        return;
      case Mode.Stream:
        if (!this.readable!.push(chunk)) this.source.pauseReading();
        return;
      case Mode.Discard:
        return;
    }
  }

  /** From the codec: the body is complete. */
  end(): void {
    this.complete = true;
    if (this.mode === Mode.Collect) {
      const r = this.collectResolve;
      this.collectResolve = null;
      this.mode = Mode.Discard;
      r?.(this.take());
    } else if (this.mode === Mode.Stream) this.readable!.push(null);
  }

  /** From the codec: the connection or stream closed; an unfinished body is cut short. */
  closed(why: string): void {
    if (this.readable && !this.complete) this.readable.destroy(new Error(why));
    if (this.collectResolve) {
      const r = this.collectResolve;
      this.collectResolve = null;
      r(EMPTY);
    }
  }
}
