/**
 * Real etcd members on loopback (Debian's etcd-server; `.ci/run` installs it), for the tests and
 * the resilience benchmark: one member or a cluster of several, each with its own data directory
 * and free ports. `stopAllEtcd()` kills and removes them all.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const procs = new Set<ChildProcess>();
const dirs: string[] = [];

export function stopAllEtcd(): void {
  for (const p of procs) p.kill('SIGKILL');
  procs.clear();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface EtcdMember {
  name: string;
  client: string;
  proc: ChildProcess;
  log: string[];
  kill(): Promise<void>;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** `etcd://a,b,c` for --store. */
  url: string;
}

/** Starts `n` members on `host` and waits until the cluster answers. */
export async function startEtcd(n = 1, host = '127.0.0.1'): Promise<EtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'isle-etcd-'));
  dirs.push(dir);
  const ports = [];
  for (let i = 0; i < n; i++) ports.push({ client: await freePort(host), peer: await freePort(host) });
  const initial = ports.map((p, i) => `m${i}=http://${host}:${p.peer}`).join(',');
  const members: EtcdMember[] = ports.map((p, i) => {
    const name = `m${i}`;
    const proc = spawn('etcd', [
      '--name', name,
      '--data-dir', join(dir, name),
      '--listen-client-urls', `http://${host}:${p.client}`,
      '--advertise-client-urls', `http://${host}:${p.client}`,
      '--listen-peer-urls', `http://${host}:${p.peer}`,
      '--initial-advertise-peer-urls', `http://${host}:${p.peer}`,
      '--initial-cluster', initial,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `isle-test-${process.pid}`,
      '--log-level', 'error',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    procs.add(proc);
    const log: string[] = [];
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => log.push(d));
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    return {
      name,
      client: `${host}:${p.client}`,
      proc,
      log,
      kill: async () => {
        proc.kill('SIGKILL');
        await exited;
      },
    };
  });
  const url = `etcd://${members.map((m) => m.client).join(',')}`;
  // Ready when every member serves a linearizable read (/health says so once the cluster has a leader).
  const deadline = Date.now() + 30_000;
  for (const m of members) {
    for (;;) {
      if (m.proc.exitCode !== null) throw new Error(`etcd ${m.name} exited: ${m.log.join('').slice(-2000)}`);
      const ok = await fetch(`http://${m.client}/health`).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`etcd ${m.name} not healthy in 30 s: ${m.log.join('').slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { members, url };
}
