/**
 * Shared pieces of the benchmarks: the machine description, a shared clock, percentiles, process
 * statistics from /proc, markdown tables, spawning `isle` subcommands as real child processes, and
 * a throw-away mesh PKI. Nothing here asserts on numbers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { caFiles, createIntermediate, createRoot, writeFilesAtomic, type IssuingCa, type RootCa } from '../../src/pki/index.js';
import { createToken } from '../../src/mesh/token.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The compiled CLI entry point (dist/src/cli/bin.js beside dist/bench/). */
export const ISLE_CLI = resolve(here, '..', '..', 'src', 'cli', 'bin.js');

/** Milliseconds since the epoch with sub-millisecond resolution: comparable across processes of one machine. */
export function clock(): number {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGb: number;
  freeMemoryGb: number;
  node: string;
  platform: string;
  loadAverage: number[];
}

export function machine(): Machine {
  const c = cpus();
  return {
    cpuModel: c[0]?.model.trim() ?? 'unknown',
    cores: c.length,
    memoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    freeMemoryGb: Math.round((freemem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

export function describeMachine(m: Machine): string {
  return `${m.cores} × ${m.cpuModel}, ${m.memoryGb} GB RAM, node ${m.node}, ${m.platform}, load average ${m.loadAverage.join(' ')}`;
}

/** Nearest-rank percentile (p in 0..100) of the finite values; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const rank = Math.min(v.length, Math.max(1, Math.ceil((p / 100) * v.length)));
  return v[rank - 1]!;
}

export function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtBytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  if (n >= 1 << 20) return `${(n / 2 ** 20).toFixed(2)} MB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${Math.round(n)} B`;
}

/** A markdown table. */
export function table(head: string[], rows: (string | number)[][]): string {
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.map(String).join(' | ')} |`);
  return lines.join('\n');
}

/** Resident set size of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** User + system CPU seconds a process has used (Linux /proc, clock ticks of 10 ms). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name.
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

export interface Child {
  proc: ChildProcess;
  /** Everything the process printed on stdout so far. */
  out: () => string;
  /** The last 64 KB of stderr. */
  err: () => string;
  stop: () => Promise<void>;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

/**
 * Spawns `node [nodeArgs] isle <args>` and resolves once stdout matches `until`. With
 * ISLE_BENCH_PROF=<dir> every isle process writes a CPU profile there when it exits.
 */
export function startIsle(args: string[], until: RegExp, opts: { nodeArgs?: string[]; timeoutMs?: number } = {}): Promise<Child> {
  const prof = process.env['ISLE_BENCH_PROF'] ? ['--cpu-prof', `--cpu-prof-dir=${resolve(process.env['ISLE_BENCH_PROF'])}`] : [];
  return startProcess(process.execPath, [...(opts.nodeArgs ?? []), ...prof, ISLE_CLI, ...args], until, opts.timeoutMs);
}

/** ISLE_BENCH_SIDECAR_NODE_ARGS: node flags for the benches' sidecars only (space-separated). */
export function sidecarNodeArgs(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env['ISLE_BENCH_SIDECAR_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
}

export function startProcess(cmd: string, args: string[], until: RegExp, timeoutMs = 60_000): Promise<Child> {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    if (err.length > 65536) err = err.slice(-65536);
  });
  const child: Child = {
    proc,
    out: () => out,
    err: () => err,
    stop: () =>
      new Promise<void>((res) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return res();
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        proc.once('exit', () => (clearTimeout(t), children.delete(proc), res()));
        proc.kill('SIGTERM');
      }),
  };
  return new Promise((res, rej) => {
    const deadline = Date.now() + timeoutMs;
    const t = setInterval(() => {
      if (until.test(out)) {
        clearInterval(t);
        res(child);
      } else if (proc.exitCode !== null || Date.now() > deadline) {
        clearInterval(t);
        if (proc.exitCode === null) proc.kill('SIGKILL');
        rej(new Error(`${cmd} ${args.slice(-4).join(' ')}: ${proc.exitCode !== null ? `exited ${proc.exitCode}` : 'not ready in time'}: ${err.slice(-2000)}`));
      }
    }, 20);
  });
}

/** Starts `isle control-plane` with the plaintext xDS port; parses its bound addresses. */
export async function startControlPlane(opts: { configDir: string; caDir: string; exposeGc?: boolean; extra?: string[]; logLevel?: string }): Promise<{ child: Child; mtls: string; plaintext: string; debug: string }> {
  const child = await startIsle(
    ['control-plane', '--config', opts.configDir, '--ca', opts.caDir, '--listen', '127.0.0.1:0', '--plaintext-listen', '127.0.0.1:0', '--debug-listen', '127.0.0.1:0', '--log-level', opts.logLevel ?? 'warn', ...(opts.extra ?? [])],
    /debug (http:\S+)/,
    { nodeArgs: [...(opts.exposeGc ? ['--expose-gc'] : []), ...(process.env['ISLE_BENCH_CP_NODE_ARGS'] ?? '').split(' ').filter(Boolean)], timeoutMs: 180_000 },
  );
  // ISLE_BENCH_CP_NODE_ARGS='--trace-gc' with ISLE_BENCH_CP_STDOUT=<file>: the control plane's stdout (V8 traces) kept for reading.
  const keep = process.env['ISLE_BENCH_CP_STDOUT'];
  if (keep) child.proc.once('exit', () => appendFileSync(keep, child.out()));
  const o = child.out();
  return { child, mtls: /xds\+ca mtls (\S+)/.exec(o)![1]!, plaintext: /xds plaintext (\S+)/.exec(o)![1]!, debug: /debug (http:\S+)/.exec(o)![1]! };
}

export interface Memory {
  gcRan: boolean;
  streams: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

export async function cpMemory(debug: string): Promise<Memory> {
  const r = await fetch(`${debug}/debug/memory?pretty=false`);
  return (await r.json()) as Memory;
}

export interface Mesh {
  root: RootCa;
  cas: Map<string, IssuingCa>;
  caDirs: Map<string, string>;
}

/** One root and an intermediate per cluster, written as cacerts directories under `dir`. */
export async function meshPki(dir: string, clusters: string[]): Promise<Mesh> {
  const root = await createRoot({ trustDomain: 'cluster.local' });
  const cas = new Map<string, IssuingCa>();
  const caDirs = new Map<string, string>();
  for (const c of clusters) {
    const ca = await createIntermediate({ root, cluster: c });
    const d = join(dir, `ca-${c}`);
    await writeFilesAtomic(d, caFiles(ca), { force: true });
    cas.set(c, ca);
    caDirs.set(c, d);
  }
  return { root, cas, caDirs };
}

const HELLOWORLD_SERVICE = 'apiVersion: v1\nkind: Service\nmetadata:\n  name: helloworld\n  namespace: default\nspec:\n  selector:\n    app: helloworld\n  ports:\n  - name: http\n    port: 5000\n';

/**
 * What a benchmark with a real sidecar pair needs: cluster-1's CA under `dir`, a config directory
 * holding the helloworld Service (the caller adds the rest), and bootstrap token files.
 */
export async function sidecarPairSetup(dir: string, workloadAddresses: string): Promise<{ caDir: string; cfg: string; token: (serviceAccount: string) => string }> {
  const mesh = await meshPki(dir, ['cluster-1']);
  const ca = mesh.cas.get('cluster-1')!;
  const cfg = join(dir, 'config');
  mkdirSync(cfg);
  writeFileSync(join(cfg, 'svc.yaml'), HELLOWORLD_SERVICE);
  // Sidecars join through WorkloadGroups (ADR 0040); they dial the control plane from 127.0.0.1,
  // so the addresses they register (--ip) are listed in the group.
  const group = (name: string) =>
    `apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata:\n  name: ${name}\n  namespace: default\n  annotations:\n    isle.dev/workload-addresses: "${workloadAddresses}"\nspec:\n  metadata:\n    labels:\n      app: ${name}\n  template:\n    serviceAccount: ${name}\n`;
  writeFileSync(join(cfg, 'groups.yaml'), [group('helloworld'), group('sleep')].join('---\n'));
  let n = 0;
  const token = (sa: string) => {
    const f = join(dir, `token-${sa}-${++n}`);
    writeFileSync(f, createToken({ ca, namespace: 'default', serviceAccount: sa, cluster: 'cluster-1' }).token);
    return f;
  };
  return { caDir: mesh.caDirs.get('cluster-1')!, cfg, token };
}

export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const base = join(tmpdir(), 'isle-bench');
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A loopback address for index i inside 127.<a>.0.0/16 (skips .0 and .255). */
export function loopbackIp(a: number, i: number): string {
  const j = i % (254 * 254);
  return `127.${a}.${Math.floor(j / 254) + 1}.${(j % 254) + 1}`;
}

/** Every benchmark part returns this: rows for the tables, raw data for the JSON. */
export interface PartResult {
  name: string;
  /** Markdown (tables and notes) for the terminal, latest.md and the README. */
  markdown: string;
  data: unknown;
  notes: string[];
}

export interface CommonOptions {
  smoke: boolean;
  log: (line: string) => void;
}
