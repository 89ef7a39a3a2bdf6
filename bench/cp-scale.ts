/**
 * Control-plane scale (issue 7, part 1). For each proxy count:
 *
 *   1. a fresh `isle control-plane` child process (`node --expose-gc`, plaintext xDS on loopback)
 *      on a generated config directory: S Services and E WorkloadEntries (default 1,000 / 10,000);
 *   2. baseline memory from /debug/memory (after two full GCs) with no proxy connected;
 *   3. N simulated proxies in worker child processes (xdsworker.ts), half delta and half SotW,
 *      each a real gRPC ADS stream on its own connection: time until each has its first full
 *      config (CDS, LDS, SDS, then EDS and RDS for everything they name);
 *   4. memory again → RSS and heap per connected proxy;
 *   5. changes written to the config directory, each followed until every proxy has received (and
 *      at once ACKed) it, measured on the machine's shared clock from the file write:
 *        - endpoint: a WorkloadEntry of svc-0 moves (EDS of one cluster),
 *        - VirtualService: a route timeout of svc-1 changes (RDS),
 *        - DestinationRule: svc-2 gains or loses a subset (CDS, then EDS for the new cluster);
 *      bytes each proxy received per change (delta vs SotW), and the control plane's CPU seconds
 *      from /proc around each push (write → all ACKed + settle).
 *
 * Sizes (flags of run.ts or env): --sizes=100,500,1000,2000 (ISLE_BENCH_SIZES), --services=1000,
 * --endpoints=10000, --changes=5 (per kind), --workers=4 (worker processes).
 * `--kinds=endpoint,vs,dr` (ISLE_BENCH_KINDS) picks the kinds of change measured (default all);
 * `--connect-timeout-s=N` waits longer for the first configs (a loaded machine; changes measured
 * while proxies still connect include their initial configs).
 * `--smoke`: 20 proxies, 50 services, 200 endpoints, 1 change of each kind.
 *
 * With ISLE_BENCH_PROF=<dir> (CPU profiles of the control plane), each change's window (write →
 * all ACKed + settle) is appended to <dir>/cp-scale-windows.jsonl on the monotonic clock V8's
 * profiles use, for the control plane's pid and the workers' (profiled with
 * ISLE_BENCH_WORKER_NODE_ARGS='--cpu-prof --cpu-prof-dir=<dir>'), so a profile can be cut to the
 * pushes of one kind:
 * `node scripts/cpuprofile-top.mjs PROFILE --windows=<dir>/cp-scale-windows.jsonl --kind=endpoint`.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE } from '../src/xds/index.js';
import {
  clock,
  cpMemory,
  cpuSeconds,
  fmt,
  fmtBytes,
  loopbackIp,
  meshPki,
  percentile,
  sleep,
  startControlPlane,
  table,
  tempDir,
  type CommonOptions,
  type Memory,
  type PartResult,
} from './lib/common.js';
import { sidecarNode, XdsPool, type WatchResult } from './lib/xdspool.js';

export interface CpScaleOptions extends CommonOptions {
  sizes: number[];
  services: number;
  endpoints: number;
  changes: number;
  workers: number;
  /** Longest wait for a VirtualService change (a build that does not translate them pushes nobody: "no push"). */
  vsTimeoutMs: number;
  /** Per proxy count: after this long, each kind of change is measured once more at most (keeps the full run under 20 minutes). */
  sizeBudgetMs: number;
  /** Longest wait for every proxy's first full config (default 60 s, or 60 ms per proxy above 1,000). */
  connectTimeoutMs?: number;
  /** Kinds of change measured: endpoint, vs, dr. */
  kinds: ReadonlySet<string>;
}

export function cpScaleDefaults(smoke: boolean, env: NodeJS.ProcessEnv = process.env): Omit<CpScaleOptions, keyof CommonOptions> {
  const num = (k: string, d: number) => (env[k] !== undefined && env[k] !== '' ? Number(env[k]) : d);
  const sizes = env['ISLE_BENCH_SIZES'] ? env['ISLE_BENCH_SIZES'].split(',').map(Number) : smoke ? [20] : [100, 500, 1000, 2000];
  return {
    sizes,
    services: num('ISLE_BENCH_SERVICES', smoke ? 50 : 1000),
    endpoints: num('ISLE_BENCH_ENDPOINTS', smoke ? 200 : 10_000),
    changes: num('ISLE_BENCH_CHANGES', smoke ? 1 : 5),
    workers: num('ISLE_BENCH_WORKERS', smoke ? 2 : 4),
    vsTimeoutMs: smoke ? 3000 : 30_000,
    sizeBudgetMs: num('ISLE_BENCH_SIZE_BUDGET_S', smoke ? 60 : 240) * 1000,
    ...(env['ISLE_BENCH_CONNECT_TIMEOUT_S'] ? { connectTimeoutMs: Number(env['ISLE_BENCH_CONNECT_TIMEOUT_S']) * 1000 } : {}),
    kinds: new Set(env['ISLE_BENCH_KINDS'] ? env['ISLE_BENCH_KINDS'].split(',') : ['endpoint', 'vs', 'dr']),
  };
}

const HOST = (i: number) => `svc-${i}.default.svc.cluster.local`;
const EDS_NAME = (i: number) => `outbound|80||${HOST(i)}`;

const MESH = `apiVersion: mesh.isle.dev/v1alpha1
kind: MeshConfig
metadata:
  name: mesh
spec:
  clusterName: cluster-1
  network: network1
  debounce:
    quiet: 100ms
    max: 10s
`;

export function serviceYaml(i: number): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: svc-${i}
  namespace: default
spec:
  selector:
    app: svc-${i}
  ports:
  - name: http
    port: 80
    targetPort: 8080
`;
}

export function workloadEntryYaml(name: string, address: string, svc: number, extraLabels = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: ${name}
  namespace: default
spec:
  address: ${address}
  serviceAccount: svc-${svc}
  labels:
    app: svc-${svc}${extraLabels}
`;
}

function vsYaml(iteration: number): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc-1
  namespace: default
spec:
  hosts:
  - ${HOST(1)}
  http:
  - timeout: ${iteration + 1}s
    route:
    - destination:
        host: ${HOST(1)}
`;
}

function drYaml(subsets: number): string {
  const s = Array.from({ length: subsets }, (_, k) => `  - name: v${k + 1}\n    labels:\n      version: v${k + 1}\n`).join('');
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc-2
  namespace: default
spec:
  host: ${HOST(2)}
${subsets > 0 ? `  subsets:\n${s}` : ''}`;
}

/** Writes the generated config directory: mesh, services, endpoints in files of 1,000, and the change files. */
export function writeScaleConfig(dir: string, services: number, endpoints: number, opts: { mesh?: string; firstService?: number; ipOctet?: number } = {}): void {
  const first = opts.firstService ?? 0;
  writeFileSync(join(dir, 'mesh.yaml'), opts.mesh ?? MESH);
  const svcs: string[] = [];
  for (let i = first; i < first + services; i++) svcs.push(serviceYaml(i));
  writeFileSync(join(dir, 'services.yaml'), svcs.join('---\n'));
  // The simulated sidecars auto-register through their identity's WorkloadGroup (ADR 0040), as before labels-only.
  writeFileSync(
    join(dir, 'workload-groups.yaml'),
    'apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata:\n  name: bench-client\n  namespace: default\nspec:\n  metadata:\n    labels:\n      app: bench-client\n  template:\n    serviceAccount: bench-client\n',
  );
  // One endpoint of svc-0 lives in change-endpoint.yaml: E − 1 here.
  for (let f = 0, i = 0; i < endpoints - 1; f++) {
    const chunk: string[] = [];
    for (let k = 0; k < 1000 && i < endpoints - 1; k++, i++) chunk.push(workloadEntryYaml(`ep-${first}-${i}`, loopbackIp(opts.ipOctet ?? 200, i), first + (i % services)));
    writeFileSync(join(dir, `endpoints-${String(f).padStart(3, '0')}.yaml`), chunk.join('---\n'));
  }
}

interface Latencies {
  p50: number;
  p99: number;
  max: number;
  samples: number;
  missing: number;
}

function lat(values: number[], missing: number): Latencies {
  return { p50: percentile(values, 50), p99: percentile(values, 99), max: percentile(values, 100), samples: values.filter(Number.isFinite).length, missing };
}

interface ChangeStats {
  kind: string;
  all: Latencies;
  /** Whether any proxy received anything (a kind the generators ignore pushes nobody). */
  pushed: boolean;
  bytesPerProxy: { delta: number; sotw: number };
  cpuSecondsPerPush: number;
  /** CPU the simulated proxies' worker processes spent over the same window (they share the machine with the control plane). */
  workerCpuSecondsPerPush: number;
}

export interface SizeResult {
  proxies: number;
  services: number;
  endpoints: number;
  baseline: Memory;
  connected: Memory;
  rssPerProxyKb: number;
  heapPerProxyKb: number;
  firstConfig: { p50: number; p99: number; allMs: number; complete: number; bytesPerProxy: number; streamErrors: number; errorKinds: Record<string, number>; timeoutMs: number };
  cpuSecondsConnect: number;
  /** CPU the simulated proxies' worker processes spent meanwhile (they share the machine). */
  workerCpuSecondsConnect: number;
  changes: ChangeStats[];
  error?: string;
}

/** CLOCK_MONOTONIC in µs: the clock of V8's CPU profiles (startTime, timeDeltas) on Linux. */
function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

function recordWindow(kind: string, start: number, end: number, pid: number): void {
  const dir = process.env['ISLE_BENCH_PROF'];
  if (dir) appendFileSync(join(resolve(dir), 'cp-scale-windows.jsonl'), JSON.stringify({ kind, pid, start, end }) + '\n');
}

async function runChanges(
  kind: string,
  pool: XdsPool,
  cpPid: number,
  n: number,
  type: string,
  name: string | undefined,
  write: (i: number) => void,
  timeoutMs: number,
  log: (s: string) => void,
  deadline: number,
  settleMs = 400,
): Promise<ChangeStats> {
  const all: number[] = [];
  let missing = 0;
  const bytes = { delta: [] as number[], sotw: [] as number[] };
  const cpu: number[] = [];
  const workerCpu: number[] = [];
  const workersCpu = (): number => pool.pids.reduce((a, p) => a + cpuSeconds(p), 0);
  let pushed = false;
  for (let i = 0; i < n; i++) {
    const m0 = monotonicMicros();
    const c0 = cpuSeconds(cpPid);
    const w0 = workersCpu();
    const r: WatchResult = await pool.watch(
      Date.now() + i,
      type,
      name,
      async () => {
        const at = clock();
        write(i);
        return at;
      },
      timeoutMs,
      settleMs,
    );
    cpu.push(cpuSeconds(cpPid) - c0);
    workerCpu.push(workersCpu() - w0);
    const m1 = monotonicMicros();
    for (const p of [cpPid, ...pool.pids]) recordWindow(kind, m0, m1, p);
    if (r.missing < r.latency.length) pushed = true;
    all.push(...r.latency.filter(Number.isFinite));
    missing += r.missing;
    for (let k = 0; k < r.bytes.length; k++) bytes[r.protocol[k]!].push(r.bytes[k]!);
    const byProto = (p: string) => r.latency.filter((_, k) => r.protocol[k] === p);
    log(
      `    ${kind} change ${i + 1}/${n}: p50 ${fmt(percentile(r.latency, 50))} ms, p99 ${fmt(percentile(r.latency, 99))} ms, missing ${r.missing}` +
        ` (p50 / p99 delta ${fmt(percentile(byProto('delta'), 50))} / ${fmt(percentile(byProto('delta'), 99))}, SotW ${fmt(percentile(byProto('sotw'), 50))} / ${fmt(percentile(byProto('sotw'), 99))})`,
    );
    if (!pushed && i === 0 && r.missing === r.latency.length) break; // nothing reaches proxies: do not repeat
    if (clock() > deadline && i + 1 < n) {
      log(`    (time budget of this size spent: ${i + 1} of ${n} ${kind} changes measured)`);
      break;
    }
    await sleep(200);
  }
  const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);
  return { kind, all: lat(all, missing), pushed, bytesPerProxy: { delta: mean(bytes.delta), sotw: mean(bytes.sotw) }, cpuSecondsPerPush: mean(cpu), workerCpuSecondsPerPush: mean(workerCpu) };
}

async function runSize(o: CpScaleOptions, proxies: number, caDir: string): Promise<SizeResult> {
  const { dir, remove } = tempDir('cp-scale-');
  const log = o.log;
  try {
    writeScaleConfig(dir, o.services, o.endpoints);
    let epToggle = 0;
    const writeEp = (i: number) => writeFileSync(join(dir, 'change-endpoint.yaml'), workloadEntryYaml('bench-ep', loopbackIp(201, (epToggle = i + 1)), 0));
    writeFileSync(join(dir, 'change-endpoint.yaml'), workloadEntryYaml('bench-ep', loopbackIp(201, epToggle), 0));
    writeFileSync(join(dir, 'change-vs.yaml'), vsYaml(100));
    writeFileSync(join(dir, 'change-dr.yaml'), drYaml(1));
    const t0 = clock();
    const cp = await startControlPlane({ configDir: dir, caDir, exposeGc: true });
    const pid = cp.child.proc.pid!;
    log(`  control plane up in ${fmt(clock() - t0)} ms (${o.services} services, ${o.endpoints} endpoints)`);
    let pool: XdsPool | undefined;
    try {
      await sleep(500);
      const baseline = await cpMemory(cp.debug);
      const w = Math.max(1, Math.min(o.workers, proxies));
      const layout = Array.from({ length: w }, (_, k) => ({ protocol: (k % 2 === 0 ? 'delta' : 'sotw') as 'delta' | 'sotw', count: Math.floor(proxies / w) + (k < proxies % w ? 1 : 0) }));
      pool = await XdsPool.start(layout);
      const c0 = cpuSeconds(pid);
      const w0 = pool.pids.map(cpuSeconds);
      const connectTimeout = o.connectTimeoutMs ?? Math.max(60_000, proxies * 60);
      const conn = await pool.connect(cp.plaintext, (i) => sidecarNode(i), connectTimeout);
      const cpuConnect = cpuSeconds(pid) - c0;
      const workerCpuConnect = pool.pids.map(cpuSeconds).reduce((a, b, k) => a + b - w0[k]!, 0);
      const complete = conn.times.filter(Number.isFinite).length;
      log(`  ${complete}/${proxies} proxies have their first full config after ${fmt(conn.wallMs)} ms (${fmtBytes(conn.bytes / proxies)} each, ${conn.errors} stream errors${conn.errors ? `: ${JSON.stringify(conn.errorKinds)}` : ''})`);
      // Auto-registration of the proxies settles (their own workload entries push nobody: no Service selects them).
      await sleep(o.smoke ? 300 : 1500);
      const connected = await cpMemory(cp.debug);
      const timeout = Math.max(15_000, proxies * 10);
      const deadline = t0 + o.sizeBudgetMs;
      const settle = o.smoke ? 100 : 400;
      const changes: ChangeStats[] = [];
      if (o.kinds.has('endpoint')) changes.push(await runChanges('endpoint', pool, pid, o.changes, ENDPOINT_TYPE, EDS_NAME(0), writeEp, timeout, log, deadline, settle));
      if (o.kinds.has('vs')) changes.push(await runChanges('VirtualService', pool, pid, o.changes, ROUTE_TYPE, undefined, (i) => writeFileSync(join(dir, 'change-vs.yaml'), vsYaml(i)), Math.min(timeout, o.vsTimeoutMs), log, deadline, settle));
      if (o.kinds.has('dr')) changes.push(await runChanges('DestinationRule', pool, pid, o.changes, CLUSTER_TYPE, undefined, (i) => writeFileSync(join(dir, 'change-dr.yaml'), drYaml(i % 2 === 0 ? 2 : 1)), timeout, log, deadline, settle));
      return {
        proxies,
        services: o.services,
        endpoints: o.endpoints,
        baseline,
        connected,
        rssPerProxyKb: (connected.rss - baseline.rss) / proxies / 1024,
        heapPerProxyKb: (connected.heapUsed - baseline.heapUsed) / proxies / 1024,
        firstConfig: { p50: percentile(conn.times, 50), p99: percentile(conn.times, 99), allMs: conn.wallMs, complete, bytesPerProxy: conn.bytes / proxies, streamErrors: conn.errors, errorKinds: conn.errorKinds, timeoutMs: connectTimeout },
        cpuSecondsConnect: cpuConnect,
        workerCpuSecondsConnect: workerCpuConnect,
        changes,
      };
    } finally {
      await pool?.close();
      await cp.child.stop();
    }
  } finally {
    remove();
  }
}

export async function runCpScale(o: CpScaleOptions): Promise<PartResult> {
  const { dir, remove } = tempDir('cp-scale-pki-');
  const results: SizeResult[] = [];
  const notes: string[] = [];
  try {
    const pki = await meshPki(dir, ['cluster-1']);
    for (const n of o.sizes) {
      o.log(`cp-scale: ${n} proxies`);
      try {
        results.push(await runSize(o, n, pki.caDirs.get('cluster-1')!));
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        o.log(`  failed: ${msg}`);
        notes.push(`${n} proxies: failed: ${msg.split('\n')[0]}`);
      }
    }
  } finally {
    remove();
  }
  for (const r of results) {
    if (r.firstConfig.streamErrors > 0) notes.push(`${r.proxies} proxies: ${r.firstConfig.streamErrors} ADS streams failed while connecting (${Object.entries(r.firstConfig.errorKinds).map(([k, v]) => `${v}× ${k}`).join('; ')}); the simulated proxies reopen them after 0.5–1.5 s, as Envoy would.`);
    const vs = r.changes.find((c) => c.kind === 'VirtualService');
    if (vs && !vs.pushed) notes.push(`${r.proxies} proxies: a VirtualService change reached no proxy (RDS unchanged: VirtualServices are not translated into routes yet, issue 6); the DestinationRule row is the config-change figure until then.`);
  }
  return { name: 'cp-scale', markdown: cpScaleMarkdown(results, o, [...new Set(notes)]), data: { options: { ...o, kinds: [...o.kinds], log: undefined }, results }, notes: [...new Set(notes)] };
}

function change(r: SizeResult, kind: string): ChangeStats | undefined {
  return r.changes.find((c) => c.kind === kind);
}

function latCell(c: ChangeStats | undefined): string {
  if (!c) return '—';
  if (!c.pushed) return 'no push';
  return `${fmt(c.all.p50)} / ${fmt(c.all.p99)}${c.all.missing ? ` (${c.all.missing} missed)` : ''}`;
}

export function cpScaleMarkdown(results: SizeResult[], o: Pick<CpScaleOptions, 'services' | 'endpoints'>, notes: string[]): string {
  const head = ['proxies', 'RSS / proxy (target ≤ 150 KB)', 'heap / proxy', 'CP RSS', 'first full config, all proxies', 'endpoint change p50 / p99 ms (target p99 ≤ 1,000)', 'VirtualService change p50 / p99 ms (target p99 ≤ 1,500)', 'DestinationRule change p50 / p99 ms (target p99 ≤ 1,500)'];
  const rows = results.map((r) => [
    fmt(r.proxies),
    `${fmt(r.rssPerProxyKb)} KB`,
    `${fmt(r.heapPerProxyKb)} KB`,
    `${fmt(r.connected.rss / 2 ** 20)} MB`,
    r.firstConfig.complete < r.proxies ? `${fmt(r.firstConfig.complete)} of ${fmt(r.proxies)} complete in ${fmt(r.firstConfig.timeoutMs / 1000)} s` : `${fmt(r.firstConfig.allMs)} ms`,
    latCell(change(r, 'endpoint')),
    latCell(change(r, 'VirtualService')),
    latCell(change(r, 'DestinationRule')),
  ]);
  const head2 = ['proxies', 'initial config / proxy', 'endpoint change: bytes / proxy, delta vs SotW (target ∝ change)', 'DestinationRule change: bytes / proxy, delta vs SotW', 'CPU s / push, CP / workers: endpoint, VS, DR', 'CPU s to connect all: CP / workers'];
  const rows2 = results.map((r) => {
    const ep = change(r, 'endpoint');
    const dr = change(r, 'DestinationRule');
    return [
      fmt(r.proxies),
      fmtBytes(r.firstConfig.bytesPerProxy),
      ep ? `${fmtBytes(ep.bytesPerProxy.delta)} vs ${fmtBytes(ep.bytesPerProxy.sotw)}` : '—',
      dr ? `${fmtBytes(dr.bytesPerProxy.delta)} vs ${fmtBytes(dr.bytesPerProxy.sotw)}` : '—',
      r.changes.map((c) => (c.pushed ? `${fmt(c.cpuSecondsPerPush, 2)} / ${fmt(c.workerCpuSecondsPerPush, 2)}` : '—')).join(', '),
      `${fmt(r.cpuSecondsConnect, 1)} / ${fmt(r.workerCpuSecondsConnect, 1)}`,
    ];
  });
  return [
    `Control plane: ${fmt(o.services)} services, ${fmt(o.endpoints)} endpoints; simulated proxies half delta, half SotW, in separate worker processes; latencies from the file write to each proxy's ACK.`,
    '',
    table(head, rows),
    '',
    table(head2, rows2),
    ...(notes.length ? ['', ...notes.map((n) => `- ${n}`)] : []),
  ].join('\n');
}
