/**
 * The parent side of the simulated proxies: forks worker processes (xdsworker.ts), spreads the
 * proxies over them, and collects their timings and byte counts. The control plane being measured
 * never shares a process with them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeMsg } from '../../src/xds/index.js';
import { clock, loopbackIp } from './common.js';

export interface ProxySpec {
  node: NodeMsg;
}

export type ToWorker =
  | { cmd: 'connect'; address: string; protocol: 'delta' | 'sotw'; proxies: ProxySpec[] }
  | { cmd: 'collect-complete' }
  | { cmd: 'watch'; id: number; type: string; name?: string; since: number }
  | { cmd: 'collect-watch' }
  | { cmd: 'close' };

export type FromWorker =
  | { ev: 'ready'; pid: number }
  | { ev: 'complete'; times: number[]; completeAt: number[]; bytes: number; errors: number; errorKinds: Record<string, number> }
  | { ev: 'watch'; id: number; final: boolean; at: number[]; bytes: number[]; responses: number };

const here = dirname(fileURLToPath(import.meta.url));

/** Worker processes still alive: killed if the benchmark exits early (one exit hook for all). */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** A sidecar's node as `isle proxy` sends it (auto-registered by the control plane; labels match no Service). */
export function sidecarNode(i: number, opts: { ipOctet?: number; namespace?: string; cluster?: string; network?: string; region?: string } = {}): NodeMsg {
  const ns = opts.namespace ?? 'default';
  const ip = loopbackIp(opts.ipOctet ?? 150, i);
  return {
    id: `sidecar~${ip}~bench-${i}.${ns}~${ns}.svc.cluster.local`,
    cluster: opts.cluster ?? 'cluster-1',
    ...(opts.region ? { locality: { region: opts.region, zone: `${opts.region}-a` } } : {}),
    metadata: {
      NAMESPACE: ns,
      SERVICE_ACCOUNT: 'bench-client',
      LABELS: { app: 'bench-client' },
      ...(opts.network ? { NETWORK: opts.network } : {}),
    },
  };
}

interface Worker {
  proc: ChildProcess;
  protocol: 'delta' | 'sotw';
  count: number;
  messages: FromWorker[];
  waiters: ((m: FromWorker) => void)[];
}

export interface WatchResult {
  /** Per proxy: ms from the change being written to the first matching response (ACK sent at once); NaN = never. */
  latency: number[];
  protocol: ('delta' | 'sotw')[];
  /** Per proxy: bytes received from the watch start until collected. */
  bytes: number[];
  missing: number;
}

export class XdsPool {
  private readonly workers: Worker[] = [];

  /** `layout`: one entry per worker process. */
  static async start(layout: { protocol: 'delta' | 'sotw'; count: number }[]): Promise<XdsPool> {
    const pool = new XdsPool();
    await Promise.all(layout.filter((l) => l.count > 0).map((l) => pool.spawn(l.protocol, l.count)));
    return pool;
  }

  private spawn(protocol: 'delta' | 'sotw', count: number): Promise<void> {
    // ISLE_BENCH_WORKER_NODE_ARGS (e.g. '--cpu-prof --cpu-prof-dir=/tmp/p --trace-gc'): profiles of the simulated proxies themselves.
    const extra = (process.env['ISLE_BENCH_WORKER_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
    const proc = fork(join(here, 'xdsworker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096', ...extra] });
    const w: Worker = { proc, protocol, count, messages: [], waiters: [] };
    proc.on('message', (m: FromWorker) => {
      const f = w.waiters.shift();
      if (f) f(m);
      else w.messages.push(m);
    });
    this.workers.push(w);
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    return this.next(w).then(() => undefined);
  }

  private next(w: Worker, timeoutMs = 600_000): Promise<FromWorker> {
    return this.maybeNext(w, timeoutMs).then((m) => m ?? Promise.reject(new Error('xds worker did not answer')));
  }

  /** The worker's next message, or undefined after `timeoutMs` (the wait is withdrawn). */
  private maybeNext(w: Worker, timeoutMs: number): Promise<FromWorker | undefined> {
    const m = w.messages.shift();
    if (m) return Promise.resolve(m);
    return new Promise((res) => {
      const f = (x: FromWorker): void => (clearTimeout(t), res(x));
      const t = setTimeout(() => {
        const i = w.waiters.indexOf(f);
        if (i >= 0) w.waiters.splice(i, 1);
        res(undefined);
      }, timeoutMs);
      w.waiters.push(f);
    });
  }

  get size(): number {
    return this.workers.reduce((n, w) => n + w.count, 0);
  }

  get pids(): number[] {
    return this.workers.map((w) => w.proc.pid!);
  }

  /**
   * Connects every proxy (node(i) names proxy i) and resolves when all have their first full
   * config or `timeoutMs` passed: per proxy, ms from its stream opening to complete (NaN = not).
   */
  async connect(address: string, node: (i: number) => NodeMsg, timeoutMs: number): Promise<{ t0: number; times: number[]; wallMs: number; bytes: number; errors: number; errorKinds: Record<string, number> }> {
    let i = 0;
    const t0 = clock();
    for (const w of this.workers) {
      const proxies: ProxySpec[] = [];
      for (let k = 0; k < w.count; k++) proxies.push({ node: node(i++) });
      w.proc.send({ cmd: 'connect', address, protocol: w.protocol, proxies } satisfies ToWorker);
    }
    const results = await Promise.all(
      this.workers.map(async (w) => {
        const t = setTimeout(() => w.proc.send({ cmd: 'collect-complete' } satisfies ToWorker), timeoutMs);
        const m = await this.next(w, timeoutMs + 60_000);
        clearTimeout(t);
        if (m.ev !== 'complete') throw new Error(`unexpected worker message ${m.ev}`);
        return m;
      }),
    );
    const completeAt = results.flatMap((r) => r.completeAt);
    return {
      t0,
      times: results.flatMap((r) => r.times),
      wallMs: Math.max(...completeAt.map((x) => (Number.isFinite(x) ? x : Infinity))) - t0,
      bytes: results.reduce((n, r) => n + r.bytes, 0),
      errors: results.reduce((n, r) => n + r.errors, 0),
      errorKinds: results.reduce<Record<string, number>>((acc, r) => {
        for (const [k, v] of Object.entries(r.errorKinds)) acc[k] = (acc[k] ?? 0) + v;
        return acc;
      }, {}),
    };
  }

  /**
   * Arms a watch (first response of `type`, naming `name` if given, per proxy), runs `change`
   * (which returns the moment the change was written), waits until every proxy saw it or
   * `timeoutMs`, lets `settleMs` pass for the responses that follow, and collects.
   */
  async watch(id: number, type: string, name: string | undefined, change: () => Promise<number>, timeoutMs: number, settleMs: number): Promise<WatchResult> {
    const since = clock();
    for (const w of this.workers) w.proc.send({ cmd: 'watch', id, type, ...(name !== undefined ? { name } : {}), since } satisfies ToWorker);
    // The IPC round trip is ordered: a no-op collect would be overkill; a short pause lets workers arm.
    await new Promise((r) => setTimeout(r, 20));
    const writtenAt = await change();
    await Promise.all(
      this.workers.map(async (w) => {
        const left = Math.max(1, writtenAt + timeoutMs - clock());
        await this.maybeNext(w, left);
      }),
    );
    await new Promise((r) => setTimeout(r, settleMs));
    const out: WatchResult = { latency: [], protocol: [], bytes: [], missing: 0 };
    for (const w of this.workers) {
      w.proc.send({ cmd: 'collect-watch' } satisfies ToWorker);
      let m: FromWorker;
      do m = await this.next(w);
      while (!(m.ev === 'watch' && m.final));
      for (let k = 0; k < m.at.length; k++) {
        const at = m.at[k]!;
        out.latency.push(Number.isFinite(at) ? at - writtenAt : NaN);
        out.protocol.push(w.protocol);
        out.bytes.push(m.bytes[k]!);
        if (!Number.isFinite(at)) out.missing++;
      }
    }
    // Early (non-final) notices of this watch may still be queued: drop them.
    for (const w of this.workers) w.messages = w.messages.filter((m) => !(m.ev === 'watch' && m.id === id));
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((res) => {
            if (w.proc.exitCode !== null) return res();
            const t = setTimeout(() => w.proc.kill('SIGKILL'), 3000);
            w.proc.once('exit', () => (clearTimeout(t), res()));
            w.proc.send({ cmd: 'close' } satisfies ToWorker);
          }),
      ),
    );
  }
}
