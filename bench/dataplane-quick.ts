/**
 * Quick data-plane measurement (not part of npm test): requests/s and p50/p99 latency of 1 KB
 * keep-alive HTTP responses, direct to the app and through one sidecar pair with mTLS
 * (client sidecar 15001 → mTLS → server sidecar → app), with `wrk`, plus each proxy's RSS.
 *
 *   npx tsc -p tsconfig.json --outDir .build-px && node .build-px/bench/dataplane-quick.js [seconds] [connections]
 *
 * Real processes: `isle control-plane`, two `isle proxy` sidecars, a node:http app. Prints a table;
 * never fails on numbers.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createToken } from '../src/controlplane/token.js';
import { caFiles, createIntermediate, createRoot, writeFilesAtomic } from '../src/pki/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const CLI = resolve(here, '..', 'src', 'cli', 'bin.js');
const SECONDS = Number(process.argv[2] ?? 8);
const CONNECTIONS = Number(process.argv[3] ?? 16);
const CLIENT_IP = '127.1.90.9';
const SERVER_IP = '127.1.90.10';

const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'isle-bench-'));
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function start(args: string[], until: RegExp): Promise<{ proc: ChildProcess; out: () => string }> {
  // ISLE_BENCH_PROF=<dir>: CPU profiles of the proxies (written when they exit on SIGTERM).
  const prof = process.env['ISLE_BENCH_PROF'] && args[0] === 'proxy' ? ['--cpu-prof', `--cpu-prof-dir=${process.env['ISLE_BENCH_PROF']}`] : [];
  const proc = spawn(process.execPath, [...prof, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  return new Promise((res, rej) => {
    const t = setInterval(() => {
      if (until.test(out)) {
        clearInterval(t);
        res({ proc, out: () => out });
      } else if (proc.exitCode !== null) {
        clearInterval(t);
        rej(new Error(`exited: ${err}`));
      }
    }, 20);
  });
}

interface WrkResult {
  rps: number;
  p50: string;
  p99: string;
  errors: string;
}

function wrkVersion(): string {
  try {
    return execFileSync('wrk', ['-v'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? 'wrk').split('\n')[0]!.trim();
  }
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function main(): Promise<void> {
  const root = await createRoot({ trustDomain: 'cluster.local' });
  const ca = await createIntermediate({ root, cluster: 'cluster-1' });
  const caDir = join(dir, 'ca');
  await writeFilesAtomic(caDir, caFiles(ca), { force: true });
  const cfg = join(dir, 'config');
  execFileSync('mkdir', ['-p', cfg]);
  writeFileSync(join(cfg, 'mesh.yaml'), 'apiVersion: mesh.isle.dev/v1alpha1\nkind: MeshConfig\nmetadata:\n  name: mesh\nspec:\n  clusterName: cluster-1\n');
  writeFileSync(join(cfg, 'svc.yaml'), 'apiVersion: v1\nkind: Service\nmetadata:\n  name: helloworld\n  namespace: default\nspec:\n  selector:\n    app: helloworld\n  ports:\n  - name: http\n    port: 5000\n');
  const token = (sa: string) => {
    const f = join(dir, `token-${sa}`);
    writeFileSync(f, createToken({ ca, namespace: 'default', serviceAccount: sa, cluster: 'cluster-1' }).token);
    return f;
  };

  const body = Buffer.alloc(1024, 'x');
  const app = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const appPort = (app.address() as AddressInfo).port;
  // The app in its own process would be fairer to the proxies; in-process keeps the script small.

  const cp = await start(['control-plane', '--config', cfg, '--ca', caDir, '--listen', '127.0.0.1:0', '--debug-listen', '127.0.0.1:0', '--log-level', 'error'], /xds\+ca mtls (\S+)/);
  const cpAddr = /xds\+ca mtls (\S+)/.exec(cp.out())![1]!;
  const common = ['--control-plane', cpAddr, '--ca-bundle', join(caDir, 'root-cert.pem'), '--namespace', 'default', '--admin', '127.0.0.1:0', '--health', '127.0.0.1:0', '--log-level', 'error'];
  const server = await start(['proxy', ...common, '--ip', SERVER_IP, '--service-account', 'helloworld', '--labels', 'app=helloworld', '--token', token('helloworld'), '--app-port', `5000=${appPort}`], /listener \S+ inbound /);
  const client = await start(['proxy', ...common, '--ip', CLIENT_IP, '--service-account', 'sleep', '--labels', 'app=sleep', '--token', token('sleep'), '--outbound-port', '0'], /ready/);
  const outbound = /listener virtualOutbound outbound (\S+)/.exec(client.out())![1]!;
  // Wait until the route works end to end.
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((r) => {
      const [h, p] = outbound.split(':');
      http.get({ host: h, port: Number(p), path: '/', headers: { host: 'helloworld:5000' } }, (res) => (res.resume(), r(res.statusCode === 200))).on('error', () => r(false));
    });
    if (ok) break;
    if (i > 200) throw new Error('route never became ready');
    await new Promise((r) => setTimeout(r, 50));
  }

  const rssBefore = { client: rssMb(client.proc.pid!), server: rssMb(server.proc.pid!) };
  const rows: [string, WrkResult][] = [];
  // The app runs in this process: wrk is a child, so the event loop stays free to serve it.
  const run = (name: string, url: string, c: number, host?: string) =>
    new Promise<void>((res) => {
      setImmediate(() => {
        const w = spawn('wrk', ['-t', String(Math.min(2, c)), '-c', String(c), '-d', `${SECONDS}s`, '--latency', ...(host ? ['-H', `Host: ${host}`] : []), url]);
        let out = '';
        w.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
        w.on('close', () => {
          const pct = (p: string) => /\s+(\S+)\s*$/.exec(out.split('\n').find((l) => l.trim().startsWith(p)) ?? '')?.[1] ?? '?';
          rows.push([name, { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0), p50: pct('50%'), p99: pct('99%'), errors: [/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1], /Socket errors: (.*)/.exec(out)?.[1]].filter(Boolean).join('; ') || '0' }]);
          res();
        });
      });
    });
  const load0 = loadavg();
  await run(`direct, c=1`, `http://127.0.0.1:${appPort}/`, 1);
  await run(`sidecar pair mTLS, c=1`, `http://${outbound}/`, 1, 'helloworld:5000');
  await run(`direct, c=${CONNECTIONS}`, `http://127.0.0.1:${appPort}/`, CONNECTIONS);
  await run(`sidecar pair mTLS, c=${CONNECTIONS}`, `http://${outbound}/`, CONNECTIONS, 'helloworld:5000');
  const rssAfter = { client: rssMb(client.proc.pid!), server: rssMb(server.proc.pid!) };

  console.log(`\nisle data plane, ${SECONDS}s per run, ${wrkVersion()}; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}); node ${process.version}`);
  console.log(`load average before: ${load0.map((x) => x.toFixed(2)).join(' ')}, after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
  console.log('| path | requests/s | p50 | p99 | errors |');
  console.log('|---|---:|---:|---:|---|');
  for (const [name, r] of rows) console.log(`| ${name} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.errors} |`);
  console.log(`\nRSS (MB) client sidecar: ${rssBefore.client} idle → ${rssAfter.client} after load; server sidecar: ${rssBefore.server} → ${rssAfter.server}`);
  app.close();
  await Promise.all(children.map((c) => new Promise((r) => (c.once('exit', r), c.kill('SIGTERM')))));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
