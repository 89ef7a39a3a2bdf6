/**
 * Sidecar memory only (issue 12): the data-plane bench's sidecar pair (control plane, app, server
 * and client `isle proxy`, mTLS between them) without its other paths, and each sidecar's memory
 * from /proc at four moments: when the pair first answers (what `npm run bench -- dataplane` calls
 * idle), 5 s later, right after 10 s at 1,000 requests/s (hey) plus 10 s at the maximum rate (wrk
 * -c16), and 5 s after that. Prints one JSON line per moment and sidecar (VmRSS, RssAnon, RssFile,
 * Pss in MB) and the load average.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/sidecar-memory.js [seconds]
 *
 * ISLE_BENCH_CLI=<dist/src/cli/bin.js of another build> measures that build instead (to alternate
 * base and branch with everything else equal); ISLE_BENCH_SIDECAR_NODE_ARGS adds node flags to both
 * sidecars (space-separated); ISLE_BENCH_MEM_LOG_LEVEL=debug also prints the sidecars' compaction log lines; ISLE_BENCH_MEM_HOLD=<seconds> keeps the pair running that long at the
 * end (pids printed) for a look at /proc or a heap snapshot. Needs hey and wrk (Debian packages). Nothing here asserts on numbers.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { loadavg } from 'node:os';
import { ISLE_CLI, sidecarNodeArgs, sidecarPairSetup, sleep, startProcess, tempDir, type Child } from './lib/common.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const NET = `127.125.${1 + Math.floor(Math.random() * 250)}`;

/** VmRSS, RssAnon, RssFile (status) and Pss (smaps_rollup) of a process, in MB. */
export function memoryOf(pid: number): Record<'rss' | 'anon' | 'file' | 'pss', number> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (text: string, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  let pss = NaN;
  try {
    pss = kb(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
  } catch {
    // smaps_rollup needs Linux 4.14+.
  }
  const mb = (k: number) => Math.round((k / 1024) * 10) / 10;
  return { rss: mb(kb(status, 'VmRSS')), anon: mb(kb(status, 'RssAnon')), file: mb(kb(status, 'RssFile')), pss: mb(pss) };
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((res, rej) => execFile(cmd, args, { maxBuffer: 1 << 24 }, (e, out) => (e ? rej(e) : res(out))));
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 10);
  const cli = process.env['ISLE_BENCH_CLI'] ?? ISLE_CLI;
  const nodeArgs = sidecarNodeArgs();
  const { dir, remove } = tempDir('sidecar-mem-');
  const procs: Child[] = [];
  try {
    const { caDir, cfg, token } = await sidecarPairSetup(dir, `${NET}.0/24`);
    const app = await startProcess(process.execPath, [join(here, 'lib', 'app.js'), '127.0.0.1'], /listening (\S+)/);
    procs.push(app);
    const appPort = /listening \S+:(\d+)/.exec(app.out())![1]!;
    const cp = await startProcess(process.execPath, [cli, 'control-plane', '--config', cfg, '--ca', caDir, '--listen', '127.0.0.1:0', '--log-level', 'error'], /xds\+ca mtls (\S+)/, 180_000);
    procs.push(cp);
    const mtls = /xds\+ca mtls (\S+)/.exec(cp.out())![1]!;
    const common = ['proxy', '--control-plane', mtls, '--ca-bundle', join(caDir, 'root-cert.pem'), '--namespace', 'default', '--admin', '127.0.0.1:0', '--health', '127.0.0.1:0', '--log-level', process.env['ISLE_BENCH_MEM_LOG_LEVEL'] ?? 'error'];
    const server = await startProcess(process.execPath, [...nodeArgs, cli, ...common, '--ip', `${NET}.10`, '--service-account', 'helloworld', '--labels', 'app=helloworld', '--token', token('helloworld'), '--app-port', `5000=${appPort}`], /listener \S+ inbound /);
    procs.push(server);
    const client = await startProcess(process.execPath, [...nodeArgs, cli, ...common, '--ip', `${NET}.9`, '--service-account', 'sleep', '--labels', 'app=sleep', '--token', token('sleep'), '--outbound-port', '0'], /ready/);
    procs.push(client);
    const url = `http://${/listener virtualOutbound outbound (\S+)/.exec(client.out())![1]!}/`;
    for (let i = 0; ; i++) {
      const ok = await new Promise<boolean>((r) => {
        http.get(url, { headers: { host: 'helloworld:5000' }, agent: false }, (res) => (res.resume(), r(res.statusCode === 200))).on('error', () => r(false));
      });
      if (ok) break;
      if (i > 200) throw new Error(`${url} never answered 200`);
      await sleep(50);
    }
    const report = (moment: string) => {
      for (const [name, c] of [['client', client], ['server', server]] as const) {
        console.log(JSON.stringify({ moment, sidecar: name, ...memoryOf(c.proc.pid!), load: loadavg()[0]!.toFixed(2) }));
      }
    };
    report('ready');
    await sleep(5000);
    report('idle 5 s');
    await run('hey', ['-z', `${seconds}s`, '-c', '10', '-q', '100', '-host', 'helloworld:5000', url]);
    const wrk = await run('wrk', ['-t', '1', '-c', '16', '-d', `${seconds}s`, '-H', 'Host: helloworld:5000', url]);
    await sleep(300);
    report('after load');
    console.log(JSON.stringify({ wrkRps: Number(/Requests\/sec:\s+([\d.]+)/.exec(wrk)?.[1] ?? NaN) }));
    await sleep(5000);
    report('after load 5 s');
    for (const [name, c] of [['client', client], ['server', server]] as const) {
      for (const line of c.err().split('\n').filter((l) => l.includes('heap compacted'))) console.log(JSON.stringify({ sidecar: name, log: JSON.parse(line) as unknown }));
    }
    const hold = Number(process.env['ISLE_BENCH_MEM_HOLD'] ?? 0);
    if (hold > 0) {
      console.log(JSON.stringify({ holding: hold, client: client.proc.pid, server: server.proc.pid }));
      await sleep(hold * 1000);
    }
  } finally {
    for (const p of procs.reverse()) await p.stop();
    remove();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
