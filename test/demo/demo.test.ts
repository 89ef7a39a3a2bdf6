/**
 * Seed 000 end to end, as a user runs it: `isle demo --check` starts real processes on loopback
 * (two control planes, two gateways, four sidecars, two apps) and runs the seed's verification
 * from both clusters. Passing means v1 and v2 both answered within 10 requests from each side
 * and the east-west gateways carried the cross-network requests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIsle } from '../helpers/cli.js';

test('isle demo --check: seed 000 verification from both clusters, through the east-west gateways', { timeout: 120_000 }, async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'isle-demo-'));
  t.after(() => rmSync(cwd, { recursive: true, force: true }));
  const r = await runIsle(['demo', '--check', '--dir', join(cwd, 'demo')], { cwd });
  assert.equal(r.code, 0, `demo failed:\n${r.stdout}\n${r.stderr}`);
  const out = r.stdout;
  assert.match(out, /demo check passed/);
  // Both clusters' sleep saw both versions, answering like the seed's sample.
  const blocks = out.split(/\nFrom cluster-/).slice(1);
  assert.equal(blocks.length, 2, out);
  for (const b of blocks) {
    assert.match(b, /^Hello version: v1, instance: helloworld-v1-[0-9a-f]+-[0-9a-f]+$/m);
    assert.match(b, /^Hello version: v2, instance: helloworld-v2-[0-9a-f]+-[0-9a-f]+$/m);
  }
  // Cross-network requests passed through both gateways.
  for (const c of ['cluster-1', 'cluster-2']) {
    const m = new RegExp(`${c}\\s+east-west gateway \\S+   (\\d+) connections passed through`).exec(out);
    assert.ok(m, `gateway line for ${c} in:\n${out}`);
    assert.ok(Number(m[1]) > 0, `${c} gateway carried traffic`);
  }
  // Every proxy is in sync with its control plane, and each control plane sees the other.
  assert.doesNotMatch(out, /STALE|NACKED/);
  assert.match(out, /cluster-1\s+cluster-2\s+127\.2\.0\.1:15012\s+network2\s+synced/);
  assert.match(out, /cluster-2\s+cluster-1\s+127\.1\.0\.1:15012\s+network1\s+synced/);
});

test('fault tolerance (seed 000): cluster-1 control plane down — its proxies serve, cluster-2 carries on; back — reconverges', { timeout: 180_000 }, async (t) => {
  const { startDemo, startControlPlane, startWorkload } = await import('../../src/demo/demo.js');
  const { helloLoop, versionsOf } = await import('../../src/demo/verify.js');
  const cwd = mkdtempSync(join(tmpdir(), 'isle-demo-ft-'));
  const log: string[] = [];
  const prevCwd = process.cwd();
  process.chdir(cwd);
  const { running, ok, stop } = await startDemo({ dir: join(cwd, 'demo'), out: (s) => void log.push(s) });
  t.after(async () => {
    await stop();
    process.chdir(prevCwd);
    rmSync(cwd, { recursive: true, force: true });
  });
  assert.ok(ok, log.join(''));
  const [c1, c2] = running.topo.clusters as [typeof running.topo.clusters[0], typeof running.topo.clusters[0]];
  const seenFrom = async (sleepIp: string, n = 12) => versionsOf(await helloLoop(sleepIp, 15001, n));
  const until = async (what: string, pred: () => Promise<boolean>, ms = 30_000) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (await pred()) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.fail(`timed out: ${what}`);
  };

  // 1. Stop cluster-1's control plane.
  const cp1 = running.sup.processes.find((m) => m.spec.name === 'cluster-1-control-plane' && !m.exited)!;
  await running.sup.stopOne(cp1);

  // cluster-1's proxies keep serving on their last config: v1 locally, v2 through the gateways.
  const during = await seenFrom('127.1.0.20');
  assert.ok(during.has('v1') && during.has('v2'), `cluster-1 still reaches v1 and v2: ${[...during.keys()]}`);

  // cluster-2 keeps working: a new workload there gets its certificate and config and serves.
  const v3 = { cluster: c2.name, name: 'helloworld-v3', app: 'helloworld' as const, version: 'v3', namespace: 'default', serviceAccount: 'helloworld', ip: '127.2.0.11', port: 5000 };
  await startWorkload(running, v3);
  await until('cluster-2 sleep reaches the new v3', async () => (await seenFrom('127.2.0.20')).has('v3'));
  const c2view = await seenFrom('127.2.0.20', 30);
  assert.ok(c2view.has('v1'), 'cluster-2 still reaches v1 in cluster-1 (stale but serving)');

  // 2. Start cluster-1's control plane again: everything reconverges, v3 included.
  await startControlPlane(running, c1);
  // cluster-1's sleep learns that two endpoints now stand behind cluster-2's gateway. (Which
  // instance answers depends on the pooled mTLS connection through the gateway, as with Envoy.)
  await until('cluster-1 sleep sidecar converged: weight 2 behind cluster-2 gateway', async () => {
    const text = await fetch('http://127.1.0.20:15000/clusters').then((x) => x.text());
    // Proxies reconnect to the restarted control plane one by one (each with its own backoff),
    // so the local v1 endpoint comes back when its sidecar has re-registered.
    return text.includes(`outbound|5000||helloworld.default.svc.cluster.local::${c2.gatewayIp}:15443::weight::2`) && text.includes('outbound|5000||helloworld.default.svc.cluster.local::127.1.0.10:5000::health_flags::healthy');
  });
  const after = await seenFrom('127.1.0.20');
  assert.ok(after.has('v1') && (after.has('v2') || after.has('v3')), `cluster-1 serves after reconvergence: ${[...after.keys()]}`);
  await until('cluster-2 sees cluster-1 synced again', async () => {
    const r = await fetch(`http://${c2.debug}/debug/remoteclusterz`).then((x) => x.json() as Promise<{ remoteClusters: { name: string; state: string }[] }>);
    return r.remoteClusters.some((x) => x.name === 'cluster-1' && x.state === 'synced');
  });
});
