import type { Timers } from '../mesh/timers.js';

export interface DebounceOptions<T> {
  /** Flush after this long without a new change (Istio's PILOT_DEBOUNCE_AFTER, 100 ms). */
  quietMs: number;
  /** …but never later than this after the first change of a burst (PILOT_DEBOUNCE_MAX, 10 s). */
  maxMs: number;
  /** Quiet period of a change debounced upstream (default 0: the next timer turn). */
  settledQuietMs?: number;
  timers: Timers;
  /** Folds a new change into what is pending. */
  merge: (pending: T, next: T) => T;
  flush: (merged: T, info: FlushInfo) => void;
}

export interface FlushInfo {
  /** Changes folded into this flush. */
  changes: number;
  /** From the first change of the burst to the flush. */
  waitedMs: number;
  /** 'quiet' when the burst went quiet, 'max' when the cap forced it, 'now' when flushed by hand. */
  cause: 'quiet' | 'max' | 'now';
}

/**
 * Coalesces bursts of config changes into one push. A steady trickle of changes cannot starve
 * pushes forever: the max delay caps the wait from the first change.
 */
export class Debouncer<T> {
  private pending: T | undefined;
  private changes = 0;
  private firstAt = 0;
  /** The last change of this burst that was not settled upstream, if any. */
  private lastLocalAt: number | undefined;
  /** When a burst of settled changes only is due. */
  private settledDue = 0;
  private timer: unknown;
  private stopped = false;

  private quietMs: number;
  private maxMs: number;

  constructor(private readonly opts: DebounceOptions<T>) {
    checkDelays(opts.quietMs, opts.maxMs);
    this.quietMs = opts.quietMs;
    this.maxMs = opts.maxMs;
  }

  /** New delays (MeshConfig debounce changed at run time); a pending burst is re-armed with them. */
  setDelays(quietMs: number, maxMs: number): void {
    checkDelays(quietMs, maxMs);
    this.quietMs = quietMs;
    this.maxMs = maxMs;
    if (this.pending !== undefined && !this.stopped) this.arm();
  }

  /**
   * `settled`: the change was already debounced where it came from (a peer's or the central
   * control plane's push), so it waits only `settledQuietMs` and never extends a pending wait.
   */
  add(change: T, settled = false): void {
    if (this.stopped) return;
    const now = this.opts.timers.now();
    if (this.pending === undefined) {
      this.pending = change;
      this.firstAt = now;
      this.lastLocalAt = undefined;
      this.settledDue = now + Math.min(this.quietMs, this.opts.settledQuietMs ?? 0);
    } else {
      this.pending = this.opts.merge(this.pending, change);
    }
    if (!settled) this.lastLocalAt = now;
    this.changes++;
    this.arm();
  }

  /** Pushes what is pending at once (e.g. on shutdown or in tests). */
  flushNow(): void {
    this.fire('now');
  }

  get hasPending(): boolean {
    return this.pending !== undefined;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.opts.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
  }

  private arm(): void {
    if (this.timer !== undefined) this.opts.timers.clearTimeout(this.timer);
    const now = this.opts.timers.now();
    const quietDue = this.lastLocalAt !== undefined ? this.lastLocalAt + this.quietMs : this.settledDue;
    const maxDue = this.firstAt + this.maxMs;
    const due = Math.min(quietDue, maxDue);
    this.timer = this.opts.timers.setTimeout(() => {
      this.timer = undefined;
      this.fire(quietDue <= maxDue ? 'quiet' : 'max');
    }, Math.max(0, due - now));
  }

  private fire(cause: FlushInfo['cause']): void {
    if (this.timer !== undefined) this.opts.timers.clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending === undefined) return;
    const merged = this.pending;
    const info: FlushInfo = { changes: this.changes, waitedMs: this.opts.timers.now() - this.firstAt, cause };
    this.pending = undefined;
    this.changes = 0;
    this.opts.flush(merged, info);
  }
}

function checkDelays(quietMs: number, maxMs: number): void {
  if (!(quietMs >= 0) || !(maxMs >= quietMs)) throw new RangeError(`debounce: need 0 <= quiet (${quietMs}) <= max (${maxMs})`);
}
