/**
 * Data plane (issue 7, part 2): 1 KB keep-alive HTTP responses from a node:http app (its own
 * process) over three paths —
 *
 *   direct          load generator → app
 *   nginx           load generator → nginx (plain reverse proxy, one worker, upstream keep-alive) → app
 *   node:http pair  load generator → node:http proxy → node:http proxy → app (no TLS; the smallest
 *                   proxy node:http allows, bench/lib/refproxy.ts)
 *   piped pair      load generator → TCP splice → TCP splice → app (no TLS, no HTTP parsing: the
 *                   ceiling of two Node hops)
 *   piped mTLS pair load generator → TCP splice → mutual TLS 1.3 (verify required both ways) → TCP
 *                   splice → app (no HTTP parsing: the Node floor of two sidecars with mTLS, ADR 0130)
 *   piped mux pair  (only with ISLE_BENCH_DP_PATHS containing `mux`) the same over one multiplexed
 *                   mTLS connection with writes coalesced per event-loop turn (ADR 0130's experiment)
 *   haproxy pair    load generator → haproxy → mutual TLS (`verify required` both ways) → haproxy
 *                   → app (one thread each: the native two-sidecars-with-mTLS reference)
 *   sidecar pair    load generator → client `isle proxy` (outbound HTTP proxy) → mTLS →
 *                   server `isle proxy` (inbound) → app          (both real processes, real control plane)
 *
 * — at a fixed 1,000 requests/s (`hey -q`, open-loop Node generator when hey is missing) and at
 * the maximum rate (`wrk`, one thread, 16 connections): requests/s, p50/p90/p99 latency, and each
 * proxy's RSS and CPU (from /proc, over the run). Added latency = path − direct.
 *
 * wrk, hey, nginx and haproxy are installed from Debian when missing and running as root (printed);
 * else their rows or columns are skipped. Flags (env): ISLE_BENCH_DP_SECONDS (10), ISLE_BENCH_DP_RATE (1000),
 * ISLE_BENCH_DP_CONNECTIONS (16), ISLE_BENCH_DP_PATHS (only the paths whose names contain one of these
 * comma-separated words, e.g. `direct,isle`; `grpc` for the gRPC rows, bench/dataplane-grpc.ts), ISLE_BENCH_DP_LOADS (`fixed`, `max` or both;
 * repeated, e.g. `fixed,fixed,fixed` with ISLE_BENCH_DP_WARMUP=0, runs that many rows back to back: the
 * sidecars' warm-up, ADR 0146). ISLE_BENCH_SIDECAR_NODE_ARGS adds node flags to both sidecars only
 * (space-separated, e.g. `--import /abs/path/scripts/v8-timeline.mjs --trace-opt --redirect-code-traces`);
 * ISLE_BENCH_SIDECAR_OUT=<dir> writes each sidecar's stdout there at the end (what V8's trace flags printed).
 * ISLE_BENCH_DP_RBAC_RULES (0: an AuthorizationPolicy of that many rules on the server sidecar, all
 * evaluated per request). ISLE_BENCH_DP_WARMUP (5: seconds of the same load right before each row,
 * reported separately for the fixed rate — ADR 0149). ISLE_BENCH_DP_TRACING (e.g. `off,0.01,1`): after the other rows, the sidecar
 * pair again at the fixed rate with MeshConfig tracing at each sampling (spans exported over
 * OTLP/HTTP to a local receiver), and each sidecar's CPU per request. `--smoke`: 1 s runs at 200 rps.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, fmt, rssBytes, sidecarNodeArgs, sidecarPairSetup, sleep, startControlPlane, startIsle, startProcess, table, tempDir, type Child, type CommonOptions, type PartResult } from './lib/common.js';
import { haproxyCerts, haproxyClientConf, haproxyServerConf, startHaproxy } from './lib/haproxy.js';
import { ensureTools, has, version } from './lib/tools.js';
import { grpcMarkdown, runGrpcRows, writeGrpcConfig, type GrpcRow } from './dataplane-grpc.js';

const here = dirname(fileURLToPath(import.meta.url));

export interface DataplaneOptions extends CommonOptions {
  seconds: number;
  rate: number;
  connections: number;
  /** Install missing tools with apt-get when root. */
  install: boolean;
  /** AuthorizationPolicy rules on the server sidecar (ISLE_BENCH_DP_RBAC_RULES; 0 = none): the per-request cost of RBAC. */
  rbacRules: number;
  /**
   * Seconds of the same load right before each measured row (ISLE_BENCH_DP_WARMUP; 0 = none), so
   * a row measures the steady state rather than the JIT and heap warming up after the path sat
   * idle through the other rows (ADR 0149). The fixed-rate warm-up is reported too: it is what
   * the first seconds after an idle stretch cost.
   */
  warmup: number;
}

/**
 * An ALLOW policy of `n` rules on helloworld where only the last one matches the bench's client
 * (so every request evaluates all of them): the worst case of n rules.
 */
export function rbacPolicy(n: number): string {
  const rules: string[] = [];
  for (let i = 0; i < n - 1; i++) {
    rules.push(`  - from:\n    - source:\n        principals: ["cluster.local/ns/default/sa/other-${i}"]\n    to:\n    - operation:\n        methods: ["POST"]\n        paths: ["/api/${i}/*"]`);
  }
  rules.push('  - from:\n    - source:\n        principals: ["cluster.local/ns/default/sa/sleep"]\n    to:\n    - operation:\n        methods: ["GET"]');
  return `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: bench-allow\n  namespace: default\nspec:\n  selector:\n    matchLabels:\n      app: helloworld\n  action: ALLOW\n  rules:\n${rules.join('\n')}\n`;
}

export function dataplaneDefaults(smoke: boolean, env: NodeJS.ProcessEnv = process.env): Omit<DataplaneOptions, keyof CommonOptions> {
  const num = (k: string, d: number) => (env[k] ? Number(env[k]) : d);
  return {
    seconds: num('ISLE_BENCH_DP_SECONDS', smoke ? 1 : 10),
    rate: num('ISLE_BENCH_DP_RATE', smoke ? 200 : 1000),
    connections: num('ISLE_BENCH_DP_CONNECTIONS', 16),
    install: !smoke && env['ISLE_BENCH_NO_INSTALL'] === undefined,
    rbacRules: num('ISLE_BENCH_DP_RBAC_RULES', 0),
    warmup: num('ISLE_BENCH_DP_WARMUP', smoke ? 0 : 5),
  };
}

// Random loopback addresses: the sidecars bind <ip>:15001, <ip>:5000… and another run may be live.
const NET = `127.${91 + Math.floor(Math.random() * 8)}.${1 + Math.floor(Math.random() * 250)}`;
const CLIENT_IP = `${NET}.9`;
const SERVER_IP = `${NET}.10`;
const HOST = 'helloworld:5000';

export interface LoadResult {
  tool: string;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  errors: number;
}

interface ProxyUsage {
  /** CPU seconds per second of the run (1 = one core busy). */
  cpu: number;
  rssMb: number;
}

export interface PathRow {
  path: string;
  load: 'fixed' | 'max';
  result?: LoadResult;
  skipped?: string;
  proxies: Record<string, ProxyUsage>;
  /** The same load for `warmup` seconds right before the row, after the path sat idle. */
  warmup?: { seconds: number; result?: LoadResult; proxies: Record<string, ProxyUsage> };
}

/** `0.0012 secs` → ms; hey prints 4 decimals (0.1 ms resolution). */
function heyMs(out: string, pct: string): number {
  const m = new RegExp(`\\s${pct}% in ([\\d.]+) secs`).exec(out);
  return m ? Number(m[1]) * 1000 : NaN;
}

/** `1.23ms`, `456.00us`, `1.2s` → ms. */
function wrkMs(s: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s ?? '');
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(t);
      if (code === 0) res(out);
      else rej(new Error(`${cmd} exited ${code}: ${err.slice(-500)}`));
    });
  });
}

async function fixedRate(url: string, host: string | undefined, o: DataplaneOptions, useHey: boolean): Promise<LoadResult> {
  if (useHey) {
    // hey: -c workers each limited to -q requests/s; 10 workers × rate/10 = rate. Keep-alive by default.
    const c = 10;
    const out = await run('hey', ['-z', `${o.seconds}s`, '-c', String(c), '-q', String(o.rate / c), ...(host ? ['-host', host] : []), url], (o.seconds + 30) * 1000);
    const codes = [...out.matchAll(/\[(\d{3})\]\s+(\d+) responses/g)];
    const bad = codes.filter((m) => m[1] !== '200').reduce((n, m) => n + Number(m[2]), 0);
    const errs = /Error distribution:([\s\S]*)$/.exec(out)?.[1]?.match(/\[(\d+)\]/g)?.reduce((n, x) => n + Number(x.slice(1, -1)), 0) ?? 0;
    return { tool: 'hey', rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN), p50: heyMs(out, '50'), p90: heyMs(out, '90'), p99: heyMs(out, '99'), errors: bad + errs };
  }
  const out = await run(process.execPath, [join(here, 'lib', 'loadgen.js'), url, String(o.rate), String(o.seconds), String(o.connections), ...(host ? [host] : [])], (o.seconds + 30) * 1000);
  const r = JSON.parse(out.trim().split('\n').pop()!) as { rps: number; errors: number; latenciesMs: { p50: number; p90: number; p99: number } };
  return { tool: 'node open-loop', rps: r.rps, p50: r.latenciesMs.p50, p90: r.latenciesMs.p90, p99: r.latenciesMs.p99, errors: r.errors };
}

async function maxRate(url: string, host: string | undefined, o: DataplaneOptions): Promise<LoadResult> {
  const out = await run('wrk', ['-t', '1', '-c', String(o.connections), '-d', `${o.seconds}s`, '--latency', ...(host ? ['-H', `Host: ${host}`] : []), url], (o.seconds + 30) * 1000);
  const pct = (p: string) => wrkMs(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const sockErr = sock ? sock.slice(1).reduce((n, x) => n + Number(x), 0) : 0;
  return { tool: 'wrk', rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN), p50: pct('50'), p90: pct('90'), p99: pct('99'), errors: non2xx + sockErr };
}

function nginxConf(prefix: string, listenPort: number, upstream: string): string {
  return `worker_processes 1;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp;
  proxy_temp_path ${prefix}/tmp;
  fastcgi_temp_path ${prefix}/tmp;
  uwsgi_temp_path ${prefix}/tmp;
  scgi_temp_path ${prefix}/tmp;
  upstream app { server ${upstream}; keepalive 64; }
  server {
    listen 127.0.0.1:${listenPort};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

async function waitHttp(url: string, host: string | undefined, tries = 300): Promise<void> {
  const http = await import('node:http');
  const u = new URL(url);
  for (let i = 0; i < tries; i++) {
    const ok = await new Promise<boolean>((r) => {
      http
        .get({ host: u.hostname, port: u.port, path: '/', headers: host ? { host } : {}, agent: false }, (res) => (res.resume(), r(res.statusCode === 200)))
        .on('error', () => r(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${url} never answered 200`);
}

export async function runDataplane(o: DataplaneOptions): Promise<PartResult> {
  const log = o.log;
  const notes: string[] = [];
  const tools = ensureTools(['wrk', 'hey', 'nginx', 'haproxy'], log, o.install);
  if (!tools['hey']) notes.push('Fixed rate: `hey` is not installed, so an open-loop Node generator (bench/lib/loadgen.ts) drove the fixed-rate runs; it shares the 2 cores with the proxies.');
  else notes.push(`Fixed rate: hey (${o.rate / 10} requests/s × 10 keep-alive workers; hey reports latency with 0.1 ms resolution; wrk2 is not in Debian).`);
  if (!tools['wrk']) notes.push('Maximum rate: `wrk` is not installed: column skipped.');
  if (!tools['nginx']) notes.push('nginx is not installed: its rows are skipped.');
  if (!tools['haproxy']) notes.push('haproxy is not installed: its rows are skipped.');
  const { dir, remove } = tempDir('dataplane-');
  const procs: Child[] = [];
  const rows: PathRow[] = [];
  const sidecars: Record<string, Child> = {};
  try {
    const { caDir, cfg, token } = await sidecarPairSetup(dir, `${NET}.0/24`);
    writeGrpcConfig(cfg, `${NET}.0/24`);
    writeFileSync(join(cfg, 'mesh.yaml'), 'apiVersion: mesh.isle.dev/v1alpha1\nkind: MeshConfig\nmetadata:\n  name: mesh\nspec:\n  clusterName: cluster-1\n');
    if (o.rbacRules > 0) {
      writeFileSync(join(cfg, 'authz.yaml'), rbacPolicy(o.rbacRules));
      notes.push(`the server sidecar enforces an ALLOW AuthorizationPolicy of ${o.rbacRules} rules (only the last matches: all are evaluated per request)`);
    }
    const app = await startProcess(process.execPath, [join(here, 'lib', 'app.js'), '127.0.0.1'], /listening (\S+)/);
    procs.push(app);
    const appAddr = /listening (\S+)/.exec(app.out())![1]!;
    const appPort = appAddr.split(':')[1]!;
    const cp = await startControlPlane({ configDir: cfg, caDir, logLevel: 'error' });
    procs.push(cp.child);
    const common = ['--control-plane', cp.mtls, '--ca-bundle', join(caDir, 'root-cert.pem'), '--namespace', 'default', '--admin', '127.0.0.1:0', '--health', '127.0.0.1:0', '--log-level', 'error'];
    const nodeArgs = sidecarNodeArgs();
    const server = await startIsle(['proxy', ...common, '--ip', SERVER_IP, '--service-account', 'helloworld', '--labels', 'app=helloworld', '--token', token('helloworld'), '--app-port', `5000=${appPort}`], /listener \S+ inbound /, { nodeArgs });
    procs.push(server);
    const client = await startIsle(['proxy', ...common, '--ip', CLIENT_IP, '--service-account', 'sleep', '--labels', 'app=sleep', '--token', token('sleep'), '--outbound-port', '0'], /ready/, { nodeArgs });
    procs.push(client);
    sidecars.client = client;
    sidecars.server = server;
    const outbound = /listener virtualOutbound outbound (\S+)/.exec(client.out())![1]!;
    const sidecarUrl = `http://${outbound}/`;
    await waitHttp(sidecarUrl, HOST);
    const idle = { client: rssBytes(client.proc.pid!) / 2 ** 20, server: rssBytes(server.proc.pid!) / 2 ** 20 };

    let nginxUrl: string | undefined;
    let nginx: Child | undefined;
    if (tools['nginx']) {
      const prefix = join(dir, 'nginx');
      mkdirSync(join(prefix, 'tmp'), { recursive: true });
      const port = await freePort();
      writeFileSync(join(prefix, 'nginx.conf'), nginxConf(prefix, port, appAddr));
      const nginxBin = has('nginx') ? 'nginx' : '/usr/sbin/nginx';
      try {
        // nginx prints nothing when it starts: wait for its port instead.
        const p = spawn(nginxBin, ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log')], { stdio: 'ignore' });
        nginx = { proc: p, out: () => '', err: () => '', stop: () => new Promise((r) => (p.exitCode !== null ? r() : (p.once('exit', () => r()), p.kill('SIGQUIT')))) };
        procs.push(nginx);
        nginxUrl = `http://127.0.0.1:${port}/`;
        await waitHttp(nginxUrl, undefined, 100);
      } catch (e) {
        notes.push(`nginx did not start: ${e instanceof Error ? e.message : String(e)}`);
        nginxUrl = undefined;
      }
    }

    // The Node reference pairs: second hop first, so the first can point at it.
    const refPair = async (kind: string, secondKind = kind, ...extra: string[]): Promise<{ url: string; pids: Record<string, number> }> => {
      const start = (k: string, up: string) => startProcess(process.execPath, [join(here, 'lib', 'refproxy.js'), k, '127.0.0.1', up, ...extra], /listening (\S+)/);
      const second = await start(secondKind, appAddr);
      procs.push(second);
      const first = await start(kind, /listening (\S+)/.exec(second.out())![1]!);
      procs.push(first);
      const url = `http://${/listening (\S+)/.exec(first.out())![1]!}/`;
      await waitHttp(url, undefined);
      return { url, pids: { app: app.proc.pid!, 'proxy 1': first.proc.pid!, 'proxy 2': second.proc.pid! } };
    };
    const nodeHttp = await refPair('node-http');
    const piped = await refPair('pipe');
    // Mesh-style certificates (throwaway CA, one leaf per side) for the piped mTLS pair and haproxy.
    const hdir = join(dir, 'haproxy');
    mkdirSync(hdir);
    let certs: ReturnType<typeof haproxyCerts> | undefined;
    try {
      certs = haproxyCerts(hdir);
    } catch (e) {
      notes.push(`openssl could not make the reference certificates (${e instanceof Error ? e.message.split('\n')[0] : String(e)}): the piped mTLS and haproxy rows are skipped`);
    }
    const pipedTls = certs ? await refPair('pipe-mtls-client', 'pipe-mtls-server', hdir) : undefined;
    // Only on request (ISLE_BENCH_DP_PATHS=…,mux): an experiment, not a reference anyone could run.
    const onlyPaths = (process.env['ISLE_BENCH_DP_PATHS'] ?? '').split(',');
    const mux = certs && onlyPaths.includes('mux') ? await refPair('mux-mtls-client', 'mux-mtls-server', hdir) : undefined;
    let haproxy: { url: string; pids: Record<string, number> } | undefined;
    if (tools['haproxy'] && certs) {
      try {
        const [pc, ps] = [await freePort(), await freePort()];
        writeFileSync(join(hdir, 'server.cfg'), haproxyServerConf(`127.0.0.1:${ps}`, appAddr, certs));
        writeFileSync(join(hdir, 'client.cfg'), haproxyClientConf(`127.0.0.1:${pc}`, `127.0.0.1:${ps}`, certs));
        const hs = startHaproxy(join(hdir, 'server.cfg'));
        procs.push(hs);
        const hc = startHaproxy(join(hdir, 'client.cfg'));
        procs.push(hc);
        const url = `http://127.0.0.1:${pc}/`;
        await waitHttp(url, undefined, 100).catch((e: unknown) => {
          throw new Error(`${e instanceof Error ? e.message : String(e)}; haproxy said: ${hc.err().slice(-300)} ${hs.err().slice(-300)}`);
        });
        haproxy = { url, pids: { app: app.proc.pid!, 'haproxy client': hc.proc.pid!, 'haproxy server': hs.proc.pid! } };
      } catch (e) {
        notes.push(`haproxy did not start: ${e instanceof Error ? e.message : String(e)}`);
      }
    }

    const paths: { path: string; url: string; host?: string; pids: Record<string, number> }[] = [
      { path: 'direct', url: `http://${appAddr}/`, pids: { app: app.proc.pid! } },
      ...(nginxUrl ? [{ path: 'nginx reverse proxy', url: nginxUrl, pids: { app: app.proc.pid!, nginx: nginxWorkerPid(nginx!.proc.pid!) } }] : []),
      { path: 'node:http proxy pair, no TLS', ...nodeHttp },
      { path: 'piped TCP pair, no TLS', ...piped },
      ...(pipedTls ? [{ path: 'piped TCP pair, mTLS', ...pipedTls }] : []),
      ...(mux ? [{ path: 'piped mux pair, mTLS, one connection, writes coalesced per turn', ...mux }] : []),
      ...(haproxy ? [{ path: 'haproxy pair, mTLS', ...haproxy }] : []),
      { path: 'isle sidecar pair, mTLS', url: sidecarUrl, host: HOST, pids: { app: app.proc.pid!, 'client sidecar': client.proc.pid!, 'server sidecar': server.proc.pid! } },
    ];
    // Warm-up: JIT and connection pools of every path.
    if (!o.smoke) for (const p of paths) await fixedRate(p.url, p.host, { ...o, seconds: 1, rate: Math.min(o.rate, 500) }, tools['hey'] === true).catch(() => undefined);
    const only = (process.env['ISLE_BENCH_DP_PATHS'] ?? '').split(',').filter(Boolean);
    const loads = (process.env['ISLE_BENCH_DP_LOADS'] ?? 'fixed,max').split(',') as Array<'fixed' | 'max'>;
    for (const load of loads) {
      for (const p of paths.filter((x) => only.length === 0 || only.some((w) => x.path.includes(w)))) {
        if (load === 'max' && !tools['wrk']) {
          rows.push({ path: p.path, load, skipped: 'wrk missing', proxies: {} });
          continue;
        }
        const measure = async (seconds: number): Promise<{ result?: LoadResult; skipped?: string; proxies: Record<string, ProxyUsage> }> => {
          const before = Object.fromEntries(Object.entries(p.pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
          const t0 = performance.now();
          let result: LoadResult | undefined;
          let skipped: string | undefined;
          try {
            result = load === 'fixed' ? await fixedRate(p.url, p.host, { ...o, seconds }, tools['hey'] === true) : await maxRate(p.url, p.host, { ...o, seconds });
          } catch (e) {
            skipped = e instanceof Error ? e.message.split('\n')[0] : String(e);
          }
          const secs = (performance.now() - t0) / 1000;
          const proxies = Object.fromEntries(Object.entries(p.pids).map(([k, pid]) => [k, { cpu: (cpuSeconds(pid) - before[k]!) / secs, rssMb: rssBytes(pid) / 2 ** 20 }]));
          return { ...(result ? { result } : {}), ...(skipped ? { skipped } : {}), proxies };
        };
        const warmSecs = load === 'fixed' ? o.warmup : maxRateWarmup(o.warmup);
        log(`  ${p.path}, ${load === 'fixed' ? `${o.rate} requests/s` : 'maximum rate'}, ${warmSecs > 0 ? `${warmSecs} s warm-up + ` : ''}${o.seconds} s`);
        const warm = warmSecs > 0 ? await measure(warmSecs) : undefined;
        const m = await measure(o.seconds);
        rows.push({ path: p.path, load, ...(m.result ? { result: m.result } : {}), ...(m.skipped ? { skipped: m.skipped } : {}), proxies: m.proxies, ...(warm ? { warmup: { seconds: warmSecs, ...(warm.result ? { result: warm.result } : {}), proxies: warm.proxies } } : {}) });
        await sleep(300);
      }
    }
    const tracingModes = (process.env['ISLE_BENCH_DP_TRACING'] ?? '').split(',').filter(Boolean);
    if (tracingModes.length > 0) {
      const sidecar = paths.find((p) => p.path.startsWith('isle'))!;
      rows.push(...(await tracingRows(tracingModes, cfg, sidecar, o, tools['hey'] === true, notes)));
    }
    const after = { client: rssBytes(client.proc.pid!) / 2 ** 20, server: rssBytes(server.proc.pid!) / 2 ** 20 };
    // Once quiet, a sidecar compacts its heap (ADR 0125): what it holds 5 s after the load.
    if (!o.smoke) await sleep(5000);
    const quiet = { client: rssBytes(client.proc.pid!) / 2 ** 20, server: rssBytes(server.proc.pid!) / 2 ** 20 };
    // gRPC rows (issue 14): ISLE_BENCH_DP_PATHS selects them with `grpc`.
    let grpc: GrpcRow[] = [];
    if (only.length === 0 || only.includes('grpc')) grpc = await runGrpcRows({ seconds: o.seconds, ip: `${NET}.11`, common, token, client, outbound, log });
    const versions = { wrk: tools['wrk'] ? version('wrk', ['-v']) : 'missing', hey: tools['hey'] ? 'hey (Debian)' : 'missing', nginx: tools['nginx'] ? version('nginx', ['-v']) : 'missing', haproxy: tools['haproxy'] ? version('haproxy', ['-v']) : 'missing' };
    const markdown = dataplaneMarkdown(rows, o, idle, { ...after, quiet }, versions, notes) + (grpc.length ? `\n\n${grpcMarkdown(grpc, o.seconds)}` : '');
    return { name: 'dataplane', markdown, data: { options: { ...o, log: undefined }, rows, grpc, sidecarRssMb: { idle, after, quiet }, versions }, notes };
  } finally {
    for (const p of procs.reverse()) await p.stop();
    // What V8 trace flags (ISLE_BENCH_SIDECAR_NODE_ARGS) printed, for a look after the run.
    const outDir = process.env['ISLE_BENCH_SIDECAR_OUT'];
    if (outDir) for (const [name, c] of Object.entries(sidecars)) writeFileSync(join(outDir, `${name}-sidecar.out`), c.out());
    remove();
  }
}

/**
 * The sidecar pair with tracing off / at each sampling (ADR 0085): MeshConfig's short form pointed
 * at a local OTLP/HTTP receiver (counts export requests and bytes; no decoding, so it costs the
 * shared cores little), applied live, then the fixed-rate load.
 */
async function tracingRows(modes: string[], cfg: string, p: { path: string; url: string; host?: string; pids: Record<string, number> }, o: DataplaneOptions, useHey: boolean, notes: string[]): Promise<PathRow[]> {
  const http = await import('node:http');
  let exports = 0;
  let bytes = 0;
  const receiver = http.createServer((req, res) => {
    exports++;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
  const rows: PathRow[] = [];
  try {
    for (const mode of modes) {
      const tracing = mode === 'off' ? '' : `  tracing:\n    otlp: {endpoint: "${endpoint}"}\n    sampling: ${Number(mode)}\n`;
      writeFileSync(join(cfg, 'mesh.yaml'), `apiVersion: mesh.isle.dev/v1alpha1\nkind: MeshConfig\nmetadata:\n  name: mesh\nspec:\n  clusterName: cluster-1\n${tracing}`);
      // The file watcher, the debounce (100 ms) and the push: generous, the run is long anyway.
      await sleep(3000);
      await fixedRate(p.url, p.host, { ...o, seconds: 1, rate: Math.min(o.rate, 500) }, useHey).catch(() => undefined);
      const [e0, b0] = [exports, bytes];
      const before = Object.fromEntries(Object.entries(p.pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
      const t0 = performance.now();
      const path = `${p.path}, tracing ${mode === 'off' ? 'off' : `sampling ${mode}`}`;
      o.log(`  ${path}, ${o.rate} requests/s, ${o.seconds} s`);
      let result: LoadResult | undefined;
      let skipped: string | undefined;
      try {
        result = await fixedRate(p.url, p.host, o, useHey);
      } catch (e) {
        skipped = e instanceof Error ? e.message.split('\n')[0] : String(e);
      }
      // Let the last batch (5 s timer) arrive before counting.
      await sleep(5500);
      const secs = (performance.now() - t0) / 1000;
      const proxies = Object.fromEntries(Object.entries(p.pids).map(([k, pid]) => [k, { cpu: (cpuSeconds(pid) - before[k]!) / secs, rssMb: rssBytes(pid) / 2 ** 20 }]));
      const cpuSecs = Object.fromEntries(Object.entries(p.pids).map(([k, pid]) => [k, cpuSeconds(pid) - before[k]!]));
      const requests = result ? result.rps * o.seconds : 0;
      const perReq = (k: string) => (requests > 0 ? `${fmt((cpuSecs[k]! / requests) * 1e6, 0)} µs` : '—');
      notes.push(`${path}: CPU per request — client sidecar ${perReq('client sidecar')}, server sidecar ${perReq('server sidecar')}; ${exports - e0} OTLP exports, ${fmt((bytes - b0) / 1024)} KiB received`);
      rows.push({ path, load: 'fixed', ...(result ? { result } : {}), ...(skipped ? { skipped } : {}), proxies });
    }
  } finally {
    await new Promise((r) => receiver.close(r));
  }
  return rows;
}

/** nginx's single worker (the process doing the work); the master otherwise. */
function nginxWorkerPid(master: number): number {
  try {
    const out = execFileSync('sh', ['-c', `cat /proc/${master}/task/${master}/children 2>/dev/null`], { encoding: 'utf8' }).trim();
    const pid = Number(out.split(/\s+/)[0]);
    return Number.isFinite(pid) && pid > 0 ? pid : master;
  } catch {
    return master;
  }
}

/** The maximum rate warms any path within its first second: a short warm-up is enough there. */
function maxRateWarmup(warmup: number): number {
  return Math.min(warmup, 2);
}

export function dataplaneMarkdown(rows: PathRow[], o: Pick<DataplaneOptions, 'rate' | 'seconds' | 'connections'> & { warmup?: number }, idle: { client: number; server: number }, after: { client: number; server: number; quiet?: { client: number; server: number } }, versions: Record<string, string>, notes: string[]): string {
  const direct = (load: string) => rows.find((r) => r.path === 'direct' && r.load === load)?.result;
  const cell = (r: PathRow, k: 'p50' | 'p90' | 'p99') => (r.result ? fmt(r.result[k], 2) : '—');
  const added = (r: PathRow, k: 'p50' | 'p99') => {
    const d = direct(r.load);
    if (!r.result || !d || r.path === 'direct') return '';
    return ` (+${fmt(r.result[k] - d[k], 2)})`;
  };
  const usage = (r: Pick<PathRow, 'proxies' | 'result'>) =>
    Object.entries(r.proxies)
      .filter(([k]) => k !== 'app')
      // CPU per request (ADR 0128): steadier than the rate when the machine is shared.
      .map(([k, u]) => `${k} ${fmt(u.cpu * 100)} % CPU${r.result && r.result.rps > 0 ? ` (${fmt((u.cpu / r.result.rps) * 1e6)} µs/request)` : ''}, ${fmt(u.rssMb)} MB`)
      .join('; ') || '—';
  const head = ['path', 'load', 'requests/s', 'p50 ms', 'p90 ms', 'p99 ms', 'errors', 'proxy CPU and RSS'];
  const body = rows.map((r) => [
    r.path,
    r.load === 'fixed' ? `${fmt(o.rate)}/s (${r.result?.tool ?? '—'})` : `max (wrk, ${o.connections} conns)`,
    r.result ? fmt(r.result.rps) + (r.load === 'max' && r.path !== 'direct' && direct('max') ? ` (${fmt((r.result.rps / direct('max')!.rps) * 100)} % of direct)` : '') : (r.skipped ?? '—'),
    cell(r, 'p50') + added(r, 'p50'),
    cell(r, 'p90'),
    cell(r, 'p99') + added(r, 'p99'),
    r.result ? fmt(r.result.errors) : '—',
    usage(r),
  ]);
  // The fixed-rate warm-up windows: what each path costs in its first seconds after sitting idle.
  const warmRows = rows.filter((r) => r.load === 'fixed' && r.warmup);
  const directWarm = warmRows.find((r) => r.path === 'direct')?.warmup?.result;
  const warmAdded = (r: LoadResult | undefined, k: 'p50' | 'p99') => (r && directWarm && r !== directWarm ? ` (+${fmt(r[k] - directWarm[k], 2)})` : '');
  const warmBody = warmRows.map((r) => {
    const w = r.warmup!;
    return [r.path, w.result ? fmt(w.result.rps) : '—', w.result ? fmt(w.result.p50, 2) + warmAdded(w.result, 'p50') : '—', w.result ? fmt(w.result.p99, 2) + warmAdded(w.result, 'p99') : '—', w.result ? fmt(w.result.errors) : '—', usage({ proxies: w.proxies, ...(w.result ? { result: w.result } : {}) })];
  });
  const fixedSidecarRow = rows.find((r) => r.load === 'fixed' && r.path.startsWith('isle'));
  const fixedSidecar = fixedSidecarRow?.result;
  const coldSidecar = fixedSidecarRow?.warmup?.result;
  const cold = (k: 'p50' | 'p99') => (coldSidecar && directWarm ? ` (first ${fmt(fixedSidecarRow!.warmup!.seconds)} s after idle: ${fmt(coldSidecar[k] - directWarm[k], 2)} ms)` : '');
  const maxSidecar = rows.find((r) => r.load === 'max' && r.path.startsWith('isle'))?.result;
  const d1 = direct('fixed');
  const dmax = direct('max');
  const rss = (k: 'client' | 'server') => `${fmt(idle[k])} idle / ${fmt(after[k])} right after load${after.quiet ? ` / ${fmt(after.quiet[k])} 5 s later` : ''}`;
  const vs = [
    ['two-sidecar added latency at 1,000 rps, p50', '≤ 1.0 ms (§8: 0.5)', fixedSidecar && d1 ? `${fmt(fixedSidecar.p50 - d1.p50, 2)} ms${cold('p50')}` : '—'],
    ['two-sidecar added latency at 1,000 rps, p99', '≤ 3.0 ms (§8: 2)', fixedSidecar && d1 ? `${fmt(fixedSidecar.p99 - d1.p99, 2)} ms${cold('p99')}` : '—'],
    ['sidecar pair throughput vs direct (max rate)', '≥ 25 % (§8: 60)', maxSidecar && dmax ? `${fmt((maxSidecar.rps / dmax.rps) * 100)} %` : '—'],
    ['sidecar memory (RSS)', '≤ 50 MB idle, ≤ 60 MB after load', `client ${rss('client')}, server ${rss('server')} MB`],
    ['errors in every row', '0', fmt(rows.reduce((n, r) => n + (r.result?.errors ?? 0), 0))],
  ];
  const short = rows.filter((r) => r.load === 'fixed' && r.result && r.result.rps < o.rate * 0.95);
  const allNotes = [
    ...notes,
    ...short.map((r) => `${r.path} did not sustain ${fmt(o.rate)} requests/s (${fmt(r.result!.rps)}): hey's workers wait for each response, so latency above ${fmt(10_000 / o.rate, 0)} ms caps the rate and the percentiles understate the queueing an open-loop client would see.`),
  ];
  const warmNote = o.warmup ? ` Each row follows ${fmt(o.warmup)} s of the same load (${fmt(maxRateWarmup(o.warmup))} s at the maximum rate) on the same path: the rows are the steady state; the path's first ${fmt(o.warmup)} s at ${fmt(o.rate)}/s after sitting idle through the other rows are the second table.` : '';
  return [
    `1 KB responses, keep-alive, ${o.seconds} s per run; the app, nginx (1 worker), each proxy of every pair and both sidecars are separate processes on the same 2 cores as the load generator.${warmNote} The sidecars' CPU scheduling is ${process.env['ISLE_PROXY_CPU_SCHEDULING'] ?? 'auto'} (--cpu-scheduling; auto: SCHED_BATCH while a sidecar uses ≥ 30 % of a core, ADR 0152); every other process keeps the default policy. ${Object.entries(versions).map(([k, v]) => `${k}: ${v}`).join('; ')}.`,
    '',
    table(head, body),
    '',
    ...(warmBody.length ? [`First ${fmt(o.warmup ?? 0)} s at ${fmt(o.rate)}/s after sitting idle (the warm-up before each fixed-rate row; added latency against direct's warm-up):`, '', table(['path', 'requests/s', 'p50 ms', 'p99 ms', 'errors', 'proxy CPU and RSS'], warmBody), ''] : []),
    table(['issue 12 target', 'target', 'measured'], vs),
    ...(allNotes.length ? ['', ...allNotes.map((n) => `- ${n}`)] : []),
  ].join('\n');
}

