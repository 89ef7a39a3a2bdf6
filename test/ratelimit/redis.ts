/**
 * Real Redis and Sentinel processes for the rate limit tests (not a test file): Debian's
 * redis-server / redis-sentinel on a 127.90.x.y loopback address and a free port, no persistence.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

const children = new Set<ChildProcess>();
const dirs: string[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export const HAVE_REDIS = existsSync('/usr/bin/redis-server');
export const HAVE_SENTINEL = existsSync('/usr/bin/redis-sentinel');

export async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export interface RedisProc {
  host: string;
  port: number;
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

async function waitListening(proc: ChildProcess, out: () => string, re: RegExp, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!re.test(out())) {
    if (proc.exitCode !== null) throw new Error(`${what} exited: ${out().slice(-1000)}`);
    if (Date.now() > deadline) throw new Error(`${what} did not start: ${out().slice(-1000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function run(bin: string, args: string[]): { proc: ChildProcess; out: () => string } {
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let text = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (text += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (text += d));
  return { proc, out: () => text };
}

const stopper = (proc: ChildProcess) => () =>
  new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('exit', () => resolve());
    proc.kill('SIGKILL');
  });

export async function startRedis(host: string, port?: number): Promise<RedisProc> {
  const p = port ?? (await freePort(host));
  const { proc, out } = run('redis-server', ['--bind', host, '--port', String(p), '--save', '', '--appendonly', 'no', '--protected-mode', 'no']);
  await waitListening(proc, out, /Ready to accept connections/, 'redis-server');
  return { host, port: p, url: `redis://${host}:${p}`, proc, stop: stopper(proc) };
}

export async function startSentinel(host: string, master: RedisProc, name = 'mymaster'): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort(host);
  const dir = mkdtempSync(join(tmpdir(), 'isle-sentinel-'));
  dirs.push(dir);
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(conf, [`bind ${host}`, `port ${port}`, 'protected-mode no', `sentinel monitor ${name} ${master.host} ${master.port} 1`, `sentinel down-after-milliseconds ${name} 5000`, ''].join('\n'));
  const { proc, out } = run('redis-sentinel', [conf]);
  await waitListening(proc, out, /\+monitor master/, 'redis-sentinel');
  return { port, stop: stopper(proc) };
}
