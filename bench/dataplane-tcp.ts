/**
 * Data plane, TCP (issue 14): bulk TCP throughput through a capturing sidecar pair against direct.
 * Three network namespaces (control plane, client, server) on one bridge; both sidecars run
 * `isle proxy --capture`. A client (bench/lib/tcpblast.ts) sends ISLE_BENCH_TCP_MB mebibytes
 * (default 256; `--smoke` 8) and waits for the sink's byte count:
 *
 *   direct        client → sink (the client's gid is the proxy's, so capture lets it by; the
 *                 sink's port is excluded from inbound capture)
 *   sidecar pair  client → captured to its sidecar → mTLS → server sidecar (15006) → sink
 *
 * Needs root (namespaces, iptables); skipped with a note otherwise. Runs ISLE_BENCH_TCP_RUNS (3)
 * times per path and reports the best. The machine's load average is recorded with the figures.
 */
import { execFile } from 'node:child_process';
import { loadavg } from 'node:os';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, ISLE_CLI, sidecarPairSetup, table, tempDir, type CommonOptions, type PartResult } from './lib/common.js';
import { captureUnsupported, NsProcess, Topology } from './lib/netns.js';

const here = dirname(fileURLToPath(import.meta.url));
const BLAST = join(here, 'lib', 'tcpblast.js');

export interface DataplaneTcpOptions extends CommonOptions {
  megabytes: number;
  runs: number;
}

export function dataplaneTcpDefaults(smoke: boolean, env: NodeJS.ProcessEnv = process.env): Omit<DataplaneTcpOptions, keyof CommonOptions> {
  return { megabytes: Number(env['ISLE_BENCH_TCP_MB'] ?? (smoke ? 8 : 256)), runs: Number(env['ISLE_BENCH_TCP_RUNS'] ?? (smoke ? 1 : 3)) };
}

const CP = '10.70.9.1';
const SERVER = '10.70.9.10';
const CLIENT = '10.70.9.20';
const VIP = '10.96.79.10';
const SINK_PORT = 19000;
const PROXY_GID = 1337;

const SVC = `apiVersion: v1
kind: Service
metadata: {name: sink, namespace: default}
spec:
  clusterIP: ${VIP}
  selector: {app: helloworld}
  ports: [{name: tcp-sink, port: 9000}]
`;

interface Run {
  bytes: number;
  seconds: number;
  mbps: number;
}

function blast(ns: string, host: string, port: number, mb: number, gid?: number): Promise<Run> {
  const args = ['netns', 'exec', ns, process.execPath, BLAST, 'blast', host, String(port), String(mb), ...(gid !== undefined ? [String(gid)] : [])];
  return new Promise((resolve, reject) =>
    execFile('ip', args, { timeout: 300_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message} ${stderr}`)) : resolve(JSON.parse(String(stdout).trim().split('\n').pop()!) as Run))),
  );
}

export async function runDataplaneTcp(o: DataplaneTcpOptions): Promise<PartResult> {
  const why = await captureUnsupported();
  if (why) return { name: 'dataplane-tcp', markdown: `_skipped: ${why}_`, data: { skipped: why }, notes: [why] };
  const topo = new Topology('b');
  const procs: NsProcess[] = [];
  const tmp = tempDir('dp-tcp-');
  try {
    await topo.create();
    const ns = { cp: await topo.add('cp', CP), server: await topo.add('server', SERVER), client: await topo.add('client', CLIENT) };
    const setup = await sidecarPairSetup(tmp.dir, '10.70.0.0/16');
    writeFileSync(join(setup.cfg, 'sink.yaml'), SVC);
    const start = (where: string, args: string[]): NsProcess => {
      const p = new NsProcess(where, process.execPath, args);
      procs.push(p);
      return p;
    };
    const cp = start(ns.cp, [ISLE_CLI, 'control-plane', '--config', setup.cfg, '--ca', setup.caDir, '--listen', `${CP}:15012`, '--debug-listen', '127.0.0.1:0', '--log-level', 'warn']);
    await cp.waitFor(/xds\+ca mtls/);
    const sink = start(ns.server, [BLAST, 'sink', String(SINK_PORT)]);
    await sink.waitFor(/listening/);
    const proxy = (where: string, ip: string, sa: string, extra: string[]): NsProcess =>
      start(where, [
        ISLE_CLI, 'proxy', '--control-plane', `${CP}:15012`, '--token', setup.token(sa), '--ca-bundle', join(setup.caDir, 'root-cert.pem'), '--ip', ip,
        '--namespace', 'default', '--service-account', sa, '--labels', `app=${sa}`, '--admin', '127.0.0.1:15000', '--health', '127.0.0.1:15021',
        '--log-level', 'warn', '--capture', '--proxy-gid', String(PROXY_GID), ...extra,
      ]);
    const server = proxy(ns.server, SERVER, 'helloworld', ['--app-port', `9000=${SINK_PORT}`, '--exclude-inbound-ports', String(SINK_PORT)]);
    const client = proxy(ns.client, CLIENT, 'sleep', []);
    await Promise.all([server.waitFor(/^ready$/m), client.waitFor(/^ready$/m)]);
    // Warm-up (and wait until the client sidecar has the sink's chain).
    for (let i = 0; ; i++) {
      try {
        await blast(ns.client, VIP, 9000, 1);
        break;
      } catch (e) {
        if (i > 40) throw e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    const load = loadavg().map((x) => x.toFixed(2)).join(' ');
    const paths: [string, () => Promise<Run>][] = [
      ['direct', () => blast(ns.client, SERVER, SINK_PORT, o.megabytes, PROXY_GID)],
      ['sidecar pair (capture, mTLS)', () => blast(ns.client, VIP, 9000, o.megabytes)],
    ];
    const rows: { path: string; runs: Run[]; best: number }[] = [];
    for (const [path, f] of paths) {
      const runs: Run[] = [];
      for (let i = 0; i < o.runs; i++) runs.push(await f());
      rows.push({ path, runs, best: Math.max(...runs.map((r) => r.mbps)) });
      o.log(`  tcp ${path}: ${fmt(rows.at(-1)!.best, 1)} MB/s`);
    }
    const direct = rows[0]!.best;
    const md = [
      `TCP throughput, ${o.megabytes} MiB per run, best of ${o.runs} (load average before: ${load})`,
      '',
      table(['path', 'MB/s', 'vs direct'], rows.map((r) => [r.path, fmt(r.best, 1), `${fmt((r.best / direct) * 100, 0)} %`])),
    ].join('\n');
    return { name: 'dataplane-tcp', markdown: md, data: { options: { megabytes: o.megabytes, runs: o.runs }, loadavg: load, rows }, notes: [] };
  } finally {
    for (const p of procs.reverse()) await p.stop('SIGTERM', 5000);
    await topo.destroy();
    tmp.remove();
  }
}
