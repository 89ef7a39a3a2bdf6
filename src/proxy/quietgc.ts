/**
 * Memory back after a burst (issue 12, ADR 0125). Under load a sidecar's young generation grows
 * to its cap and its old space fills with promoted garbage; once traffic stops nothing
 * allocates, so V8 never runs the collection that would give those pages back, and the sidecar
 * sits ~15 MB above its idle size for as long as it stays quiet. This watches the process's own
 * CPU time and V8's committed heap: when it has been quiet for `quietMs` and the heap has grown by
 * more than `slackBytes` since the last compaction, it compacts once (a memory-reducing GC). A quiet
 * sidecar costs two cheap reads per period; a busy one is never collected from here (V8 runs its
 * own GCs while allocation goes on), and light steady traffic that does not grow the heap never
 * triggers it.
 *
 * Pure logic with injected clock, readings and action, so tests drive it without sleeping.
 */
import type { Timers } from '../mesh/timers.js';

export interface QuietGcOptions {
  timers: Timers;
  /** Process CPU time so far, in microseconds (user + system). */
  cpuMicros: () => number;
  /** V8's committed heap, bytes. */
  heapBytes: () => number;
  /** The memory-reducing collection; resolves when it is over. */
  compact: () => Promise<void>;
  /** Sampling period. */
  periodMs?: number;
  /** A period is quiet below this share of one core (0..1). */
  quietShare?: number;
  /** Heap growth since the last compaction that is worth one. */
  slackBytes?: number;
  /**
   * How long the process must have been quiet (consecutive quiet periods) before it compacts;
   * at least one period. The compaction costs the next burst CPU (ADR 0141), so a sidecar
   * between bursts a few seconds apart must not pay it.
   */
  quietMs?: number;
  /** Called after each compaction with what it took (ms) and the heap before and after. */
  onCompact?: (e: { tookMs: number; before: number; after: number }) => void;
}

export interface QuietGc {
  /** Compacts now (start-up is over) and takes the result as the new baseline. */
  compactNow(): Promise<void>;
  stop(): void;
}

export function startQuietGc(o: QuietGcOptions): QuietGc {
  const period = o.periodMs ?? 2000;
  const quiet = (o.quietShare ?? 0.02) * period * 1000;
  const slack = o.slackBytes ?? 2 * 1048576;
  const quietPeriods = Math.max(1, Math.ceil((o.quietMs ?? period) / period));
  let quietRun = 0;
  let lastCpu = o.cpuMicros();
  let baseline = o.heapBytes();
  let stopped = false;
  let running: Promise<void> | undefined;
  let handle: unknown;

  const compact = (): Promise<void> => {
    running ??= (async () => {
      const before = o.heapBytes();
      const t0 = o.timers.now();
      await o.compact();
      baseline = o.heapBytes();
      // The compaction's own CPU time is not activity.
      lastCpu = o.cpuMicros();
      o.onCompact?.({ tookMs: o.timers.now() - t0, before, after: baseline });
    })().finally(() => (running = undefined));
    return running;
  };
  const schedule = (): void => {
    if (!stopped) handle = o.timers.setTimeout(tick, period);
  };
  const tick = (): void => {
    const cpu = o.cpuMicros();
    quietRun = cpu - lastCpu < quiet ? quietRun + 1 : 0;
    lastCpu = cpu;
    if (quietRun >= quietPeriods && o.heapBytes() > baseline + slack) void compact().then(schedule, schedule);
    else schedule();
  };
  schedule();
  return {
    compactNow: compact,
    stop: () => {
      stopped = true;
      o.timers.clearTimeout(handle);
    },
  };
}
