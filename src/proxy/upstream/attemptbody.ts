/**
 * What the three upstream attempts (HTTP/1.1, HTTP/2, isle-mux) share: settling once, and handing
 * the response body to whoever pipes it, with the chunks that came before the pipe replayed first.
 * A base class rather than callbacks so that a request allocates nothing more than before.
 */
import type { Headers } from '../http1/head.js';
import { bodyChunks, DROP, type AttemptOutcome, type ResponseSink, type UpstreamRequest } from './attempt.js';

export abstract class AttemptBase {
  protected settled = false;
  protected timer: NodeJS.Timeout | undefined;
  protected sink: ResponseSink | null = null;
  /** Body chunks that arrived before `pipe`. */
  protected early: Buffer[] | null = null;
  protected ended = false;
  protected trailers: Headers | undefined;
  protected broken: string | undefined;
  protected readonly onAbort = (): void => this.settle({ kind: 'aborted' });
  /** Settles the attempt's promise (set by `begin`). */
  protected resolve!: (o: AttemptOutcome) => void;

  abstract readonly req: UpstreamRequest;
  abstract settle(o: AttemptOutcome): void;
  /** Stops reading the body (the sink is full). */
  protected abstract pauseBody(): void;
  /**
   * The sink let go of the body: `live` when it had neither ended nor broken (it is now broken
   * as 'destroyed' and the transfer must be cancelled).
   */
  protected abstract dropped(live: boolean): void;
  /** An early chunk reached the sink (isle-mux returns its flow-control credit here). */
  protected replayed(_bytes: number): void {}

  /** Marks the attempt settled, false if it was already: stops its timer and abort listener. */
  protected beginSettle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    if (this.timer) clearTimeout(this.timer);
    this.req.signal?.removeEventListener('abort', this.onAbort);
    return true;
  }

  /**
   * The attempt's promise, and the request's cancellation followed; when the request was
   * cancelled already, the attempt is settled ('aborted') before this returns.
   */
  protected begin(): Promise<AttemptOutcome> {
    const p = new Promise<AttemptOutcome>((r) => (this.resolve = r));
    const signal = this.req.signal;
    if (signal?.aborted) this.settle({ kind: 'aborted' });
    else signal?.addEventListener('abort', this.onAbort);
    return p;
  }

  pipe(sink: ResponseSink): void {
    this.sink = sink;
    const early = this.early;
    this.early = null;
    if (early) {
      for (const c of early) {
        if (!sink.data(c)) this.pauseBody();
        this.replayed(c.length);
      }
    }
    if (this.broken !== undefined) sink.abort(this.broken);
    else if (this.ended) sink.end(this.trailers);
  }

  resume(): void {
    this.pipe(DROP);
  }

  destroy(): void {
    this.sink = null;
    if (this.ended || this.broken !== undefined) return this.dropped(false);
    this.broken = 'destroyed';
    this.dropped(true);
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return bodyChunks(this);
  }
}
