/**
 * The sidecar's CPU scheduling policy (issue 12, ADR 0152). A request crosses four processes on
 * the same cores (client, two sidecars, app), and every write to a loopback socket wakes the
 * reader. Under Linux's default policy (SCHED_OTHER) the woken reader may preempt the writer in
 * the middle of its event-loop turn: the rest of the writer's batch waits, and both pay a context
 * switch. SCHED_BATCH tells the scheduler a task is throughput work: its wakeups do not preempt
 * the running task (it runs when that one blocks or its slice ends). At the maximum rate that
 * lets each process finish its turn, which raised the sidecar pair's throughput by ~10 %; but on
 * cores kept busy by other work, a batch sidecar woken for a request waits out the other task's
 * slice: in the first seconds after idle at 1,000 req/s next to two CPU hogs, p99 was +6–10 ms
 * with batch against +5–7 without.
 *
 * So `auto` (the default) is SCHED_BATCH only while the sidecar itself is busy: a period that
 * used at least `busyShare` of a core switches to batch, `quietPeriods` periods under
 * `quietShare` switch back. `batch` and `normal` fix the policy. It is the event-loop thread's
 * policy: helper threads V8 and libuv started before a switch keep theirs, threads started after
 * it inherit it. A sidecar started under another policy (`chrt -b isle proxy …`) is left alone.
 *
 * Pure logic with injected clock, readings and action; the real action is `chrtPolicy`.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Timers } from '../mesh/timers.js';

export type CpuPolicy = 'normal' | 'batch';
export type CpuSchedulingMode = 'auto' | CpuPolicy;

export const CPU_SCHEDULING_MODES: readonly CpuSchedulingMode[] = ['auto', 'normal', 'batch'];

export interface CpuSchedulingOptions {
  mode: CpuSchedulingMode;
  timers: Timers;
  /** Process CPU time so far, in microseconds (user + system). */
  cpuMicros: () => number;
  /**
   * Sets the policy. A rejection with a `CpuPolicyError` whose `permanent` is set (no chrt, not
   * permitted, not Linux) stops the controller where it is; any other is retried next period.
   */
  apply: (policy: CpuPolicy) => Promise<void>;
  periodMs?: number;
  /** A period at or above this share of one core (0..1) is busy: batch. */
  busyShare?: number;
  /** A period below this share is quiet; `quietPeriods` of them in a row: back to normal. */
  quietShare?: number;
  quietPeriods?: number;
  onChange?: (policy: CpuPolicy) => void;
  onError?: (e: unknown) => void;
}

/** Why a policy could not be set; `permanent`: trying again cannot help. */
export class CpuPolicyError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

export interface CpuScheduling {
  /** The policy last applied (normal until a change succeeded). */
  readonly policy: CpuPolicy;
  stop(): void;
}

export function startCpuScheduling(o: CpuSchedulingOptions): CpuScheduling {
  const period = o.periodMs ?? 1000;
  const busy = (o.busyShare ?? 0.3) * period * 1000;
  const quiet = (o.quietShare ?? 0.1) * period * 1000;
  const quietPeriods = Math.max(1, o.quietPeriods ?? 3);
  let policy: CpuPolicy = 'normal';
  let stopped = false;
  let handle: unknown;
  let quietRun = 0;
  let lastCpu = o.cpuMicros();
  /** A transient failure was reported and none has succeeded since: do not report every period. */
  let failing = false;

  const set = async (p: CpuPolicy): Promise<void> => {
    try {
      await o.apply(p);
    } catch (e) {
      const permanent = e instanceof CpuPolicyError && e.permanent;
      const report = !stopped && (permanent || !failing);
      if (permanent) stopped = true;
      failing = !permanent;
      if (report) notify(() => o.onError?.(e));
      return;
    }
    failing = false;
    policy = p;
    // A switch that was under way when the proxy stopped is not news.
    if (!stopped) notify(() => o.onChange?.(p));
  };
  // A throwing callback (a logger) must not leave a rejected promise or the periods unscheduled.
  const notify = (f: () => void): void => {
    try {
      f();
    } catch {
      // nothing to do: the controller's state is already updated
    }
  };
  const schedule = (): void => {
    if (!stopped) handle = o.timers.setTimeout(tick, period);
  };
  const tick = (): void => {
    const cpu = o.cpuMicros();
    const used = cpu - lastCpu;
    lastCpu = cpu;
    quietRun = used < quiet ? quietRun + 1 : 0;
    let want: CpuPolicy = policy;
    if (o.mode === 'batch' || (policy === 'normal' && used >= busy)) want = 'batch';
    else if (policy === 'batch' && quietRun >= quietPeriods) want = 'normal';
    if (want === policy) return o.mode === 'batch' ? undefined : schedule();
    void set(want).then(() => {
      // The spawn that applied it is not the sidecar's traffic.
      lastCpu = o.cpuMicros();
      // `batch` is done once it holds; a failed attempt is tried again next period.
      if (o.mode === 'auto' || policy !== 'batch') schedule();
    });
  };

  if (o.mode === 'batch') tick();
  else if (o.mode === 'auto') schedule();
  return {
    get policy() {
      return policy;
    },
    stop: () => {
      stopped = true;
      o.timers.clearTimeout(handle);
    },
  };
}

const CHRT = ['/usr/bin/chrt', '/bin/chrt', '/usr/sbin/chrt', '/sbin/chrt'];
/** Spawn errors that mean chrt cannot be run here at all. */
const CANNOT_RUN = new Set(['ENOENT', 'EACCES', 'ENOEXEC', 'EPERM']);

/**
 * Sets the policy of thread `pid` (the main thread's id is the process id) with util-linux's
 * `chrt`: Node has no sched_setscheduler, and an FFI library would map more memory (1.4 MB) than
 * a sidecar should pay for a call made a few times in its life. Lowering SCHED_OTHER to
 * SCHED_BATCH and back needs no privilege.
 */
export function chrtPolicy(pid: number, candidates: readonly string[] = CHRT): (policy: CpuPolicy) => Promise<void> {
  const chrt = candidates.find((p) => existsSync(p));
  return async (policy) => {
    if (process.platform !== 'linux') throw new CpuPolicyError(`CPU scheduling policies are Linux's (this is ${process.platform})`, true);
    if (!chrt) throw new CpuPolicyError(`chrt (util-linux) not found in ${candidates.join(', ')}`, true);
    // Loaded on the first switch: a sidecar that never gets busy never maps child_process.
    const { execFile } = await import('node:child_process');
    return new Promise((resolve, reject) => {
      // Short options: BusyBox's chrt has no long ones.
      execFile(chrt, [policy === 'batch' ? '-b' : '-o', '-p', '0', String(pid)], { timeout: 5000 }, (err, _out, stderr) => {
        if (!err) return resolve();
        // chrt ran and refused (an exit status: not permitted, no such thread), or cannot be run
        // at all (gone, not executable), is for good; a spawn that failed for want of resources
        // (EAGAIN, EMFILE, ENOMEM) or a chrt that timed out may work next time.
        const code = (err as { code?: unknown }).code;
        const permanent = (typeof code === 'number' && !err.killed) || (typeof code === 'string' && CANNOT_RUN.has(code));
        reject(new CpuPolicyError(`chrt ${policy}: ${stderr.trim() || err.message}`, permanent));
      });
    });
  };
}

/** The scheduling policy of thread `pid` from /proc (SCHED_OTHER 0, SCHED_BATCH 3, ...); undefined if unreadable. */
export function policyOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Field 41; the command name (field 2) may hold spaces, so count from its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(fields[41 - 3]);
    return Number.isInteger(v) ? v : undefined;
  } catch {
    return undefined;
  }
}
