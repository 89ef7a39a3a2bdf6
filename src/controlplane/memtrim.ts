/**
 * Returns malloc's free memory to the system once xDS sends go quiet (src/mesh/malloc.ts): during
 * a burst of pushes the freed response buffers are reused as they are (no page faults), and
 * after it they stop counting against the control plane's RSS. A steady trickle of sends is
 * trimmed at most every `maxMs`. Buffers freed by a garbage collection after the trim would stay
 * with malloc until the next burst, so a quiet trim is followed by one more after `followUpMs`.
 */
import type { Timers } from '../mesh/timers.js';

export interface MemoryTrimmerOptions {
  trim: () => void;
  timers: Timers;
  /** Trim this long after the last send (default 2 s). */
  quietMs?: number;
  /** …but at least this often while sends continue (default 30 s). */
  maxMs?: number;
  /** One more trim this long after a quiet one, if nothing was sent meanwhile (default 30 s). */
  followUpMs?: number;
  /** Told how long each trim took (logs). */
  onTrim?: (ms: number) => void;
}

export class MemoryTrimmer {
  private readonly quietMs: number;
  private readonly maxMs: number;
  private readonly followUpMs: number;
  private followUp: unknown;
  private firstAt: number | undefined;
  private lastAt = 0;
  private timer: unknown;
  private stopped = false;
  /** Trims so far. */
  count = 0;

  constructor(private readonly o: MemoryTrimmerOptions) {
    this.quietMs = o.quietMs ?? 2_000;
    this.maxMs = o.maxMs ?? 30_000;
    this.followUpMs = o.followUpMs ?? 30_000;
  }

  /** Something was sent: cheap enough to call per response (no timer churn). */
  activity(): void {
    if (this.stopped) return;
    this.lastAt = this.o.timers.now();
    this.firstAt ??= this.lastAt;
    if (this.followUp !== undefined) {
      this.o.timers.clearTimeout(this.followUp);
      this.followUp = undefined;
    }
    if (this.timer === undefined) this.arm(this.quietMs);
  }

  stop(): void {
    this.stopped = true;
    for (const t of [this.timer, this.followUp]) if (t !== undefined) this.o.timers.clearTimeout(t);
    this.timer = this.followUp = undefined;
  }

  private arm(ms: number): void {
    this.timer = this.o.timers.setTimeout(() => this.check(), ms);
  }

  private check(): void {
    this.timer = undefined;
    if (this.stopped || this.firstAt === undefined) return;
    const now = this.o.timers.now();
    const quietFor = now - this.lastAt;
    if (quietFor < this.quietMs && now - this.firstAt < this.maxMs) {
      this.arm(Math.min(this.quietMs - quietFor, this.maxMs - (now - this.firstAt)));
      return;
    }
    this.firstAt = undefined;
    this.trimNow();
    if (quietFor >= this.quietMs) {
      this.followUp = this.o.timers.setTimeout(() => {
        this.followUp = undefined;
        if (!this.stopped) this.trimNow();
      }, this.followUpMs);
    }
  }

  /** Trims at once (the debug server's /debug/memory, after its full GC). */
  trimNow(): void {
    const t0 = performance.now();
    this.o.trim();
    this.count++;
    this.o.onTrim?.(performance.now() - t0);
  }
}
