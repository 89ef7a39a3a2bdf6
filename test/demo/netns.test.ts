/**
 * `isle demo --netns` end to end, with real namespaces, iptables, sidecars and curl: each workload
 * in its own namespace with a capturing sidecar, each cluster in its own, joined only through the
 * control planes and east-west gateways. The seed's verification is plain
 * `curl -s http://helloworld:5000/hello` inside sleep's namespace: the name resolves through the
 * sidecar's DNS proxy, the connection is captured, and both versions answer from both clusters.
 *
 * Names are prefixed `isle-nd-` and the host bridge is 10.251.0.0/24 (not the demo's defaults), so
 * another demo on the machine is not disturbed. Root only (CI runs as root); skipped otherwise.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runIsle } from '../helpers/cli.js';
import { cliEntry } from '../helpers/paths.js';
import { netnsSupported, setupNetns, teardownNetns } from '../../src/demo/netns.js';
import { netnsTopology, SEED_000 } from '../../src/demo/topology.js';

const run = promisify(execFile);
const PREFIX = 'isle-nd-';
const LAYOUT = { prefix: PREFIX, bridgeNet: '10.251.0' };
const LAYOUT_FLAGS = ['--netns-prefix', PREFIX, '--netns-subnet', '10.251.0.0/24'];

const why = await netnsSupported();
if (why) process.stdout.write(`# skipping isle demo --netns tests: ${why}\n`);

/** What of ours is left on the machine: namespaces, host links, /etc/netns directories. */
async function leftovers(): Promise<string[]> {
  const ns = (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(PREFIX));
  const links = (await run('ip', ['-o', 'link', 'show'])).stdout.split('\n').map((l) => l.split(': ')[1]?.split('@')[0] ?? '').filter((n) => n.startsWith(PREFIX));
  const etc = existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((n) => n.startsWith(PREFIX)).map((n) => `/etc/netns/${n}`) : [];
  return [...ns.map((n) => `netns ${n}`), ...links.map((l) => `link ${l}`), ...etc];
}

test('isle demo --netns --check: plain curl http://helloworld:5000/hello in the sleep namespace reaches v1 and v2 from both clusters', { skip: why, timeout: 120_000 }, async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'isle-demo-nd-'));
  // A crashed run's leftovers: the sleep pod's namespace with a process still in it, its
  // resolv.conf directory, and the bridge. The demo must clear them and start clean.
  const staleNs = `${PREFIX}cluster-1-sleep`;
  await run('ip', ['netns', 'add', staleNs]);
  mkdirSync(`/etc/netns/${staleNs}`, { recursive: true });
  writeFileSync(`/etc/netns/${staleNs}/resolv.conf`, 'nameserver 192.0.2.1\n');
  await run('ip', ['link', 'add', `${PREFIX}br0`, 'type', 'bridge']);
  const stale = spawn('ip', ['netns', 'exec', staleNs, 'sleep', '300'], { stdio: 'ignore' });
  const staleExit = new Promise<NodeJS.Signals | null>((r) => stale.once('exit', (_c, s) => r(s)));
  t.after(async () => {
    if (stale.exitCode === null && stale.signalCode === null) stale.kill('SIGKILL');
    await teardownNetns(netnsTopology(SEED_000, LAYOUT));
    rmSync(cwd, { recursive: true, force: true });
  });

  const started = Date.now();
  const r = await runIsle(['demo', '--netns', '--check', ...LAYOUT_FLAGS, '--dir', join(cwd, 'demo')], { cwd });
  process.stdout.write(`# isle demo --netns --check took ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  const out = r.stdout;
  assert.equal(r.code, 0, `demo failed:\n${out}\n${r.stderr}`);
  assert.match(out, /demo check passed/);
  assert.match(out, /removed what an earlier run left: .*1 process\(es\) in isle-nd-cluster-1-sleep.*namespace isle-nd-cluster-1-sleep/);
  assert.equal(await staleExit, 'SIGKILL', "the crashed run's process was killed");

  // Each sleep ran plain curl in its own namespace, and saw both versions.
  const blocks = out.split(/\nFrom cluster-/).slice(1);
  assert.equal(blocks.length, 2, out);
  for (const [i, b] of blocks.entries()) {
    const header = b.split('\n')[0]!;
    assert.ok(header.startsWith(`${i + 1}: ip netns exec isle-nd-cluster-${i + 1}-sleep curl -s http://helloworld:5000/hello `), header);
    assert.doesNotMatch(header, / -x |15001/);
    assert.match(b, /^Hello version: v1, instance: helloworld-v1-[0-9a-f]+-[0-9a-f]+$/m);
    assert.match(b, /^Hello version: v2, instance: helloworld-v2-[0-9a-f]+-[0-9a-f]+$/m);
  }
  // Pods have their own addresses; cross-network requests went through both gateways.
  assert.match(out, /sidecar~10\.251\.1\.\d+~sleep\.default/);
  for (const c of ['cluster-1', 'cluster-2']) {
    const m = new RegExp(`${c}\\s+east-west gateway \\S+   (\\d+) connections passed through`).exec(out);
    assert.ok(m && Number(m[1]) > 0, `${c}'s gateway carried traffic:\n${out}`);
  }
  assert.doesNotMatch(out, /STALE|NACKED|exited unexpectedly/);
  // And nothing is left behind.
  assert.deepEqual(await leftovers(), []);
});

test('isle demo --netns: pods reach the other network only through its east-west gateway; DNS comes from the sidecar', { skip: why, timeout: 120_000 }, async (t) => {
  const { startDemo } = await import('../../src/demo/demo.js');
  const cwd = mkdtempSync(join(tmpdir(), 'isle-demo-nd-'));
  const log: string[] = [];
  const prevCwd = process.cwd();
  process.chdir(cwd);
  const { running, ok, stop } = await startDemo({ dir: join(cwd, 'demo'), netns: true, netnsLayout: LAYOUT, out: (s) => void log.push(s) });
  let stopped = false;
  t.after(async () => {
    if (!stopped) await stop();
    process.chdir(prevCwd);
    rmSync(cwd, { recursive: true, force: true });
  });
  assert.ok(ok, log.join(''));
  const sleep1 = running.topo.workloads.find((w) => w.cluster === 'cluster-1' && w.app === 'sleep')!;
  const v1 = running.topo.workloads.find((w) => w.version === 'v1')!;
  const v2 = running.topo.workloads.find((w) => w.version === 'v2')!;
  const [c1, c2] = running.topo.clusters as [(typeof running.topo.clusters)[0], (typeof running.topo.clusters)[0]];
  const inSleep = (cmd: string, args: string[]) => run('ip', ['netns', 'exec', sleep1.netns!, cmd, ...args], { timeout: 15_000 });

  // The name resolves, inside the pod, to the service's VIP (auto-allocated: the Service has no
  // clusterIP), answered by the sidecar's DNS proxy.
  const hosts = (await inSleep('getent', ['hosts', 'helloworld'])).stdout;
  assert.match(hosts, /^240\.240\.\d+\.\d+\s+helloworld\.default\.svc\.cluster\.local/m);
  const stats = (await inSleep('curl', ['-s', `http://${sleep1.ip}:15000/stats/prometheus`])).stdout;
  assert.match(stats, /^istio_dns_requests_total \d*[1-9]/m);
  // The pod's sidecar installed capture rules in the pod's namespace.
  assert.match((await inSleep('iptables', ['-t', 'nat', '-S', 'OUTPUT'])).stdout, /-j ISLE_OUTPUT/);

  // Reachability at the network level, bypassing capture (the proxy's gid): the pod reaches its
  // own cluster's pods and the other network's gateway, never the other network's pods or control plane.
  const connects = async (host: string, port: number): Promise<boolean> => {
    const script = `process.setegid(1337);const s=require('net').connect(${port},'${host}');s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(1),2000)`;
    return inSleep(process.execPath, ['-e', script]).then(
      () => true,
      () => false,
    );
  };
  assert.equal(await connects(v1.ip, 5000), true, 'same cluster: pod to pod');
  assert.equal(await connects(c2.gatewayIp, 15443), true, "the other network's east-west gateway");
  assert.equal(await connects(v2.ip, 5000), false, "no route to the other network's pods");
  assert.equal(await connects(c2.gatewayIp, 15012), false, "the other cluster's control plane is not reachable from a pod");
  assert.equal(await connects(c1.gatewayIp, 15012), true, "the pod's own control plane is");

  await stop();
  stopped = true;
  assert.deepEqual(await leftovers(), []);
});

test('isle demo --netns: a setup failing part way leaves nothing behind', { skip: why, timeout: 30_000 }, async () => {
  const topo = netnsTopology(SEED_000, LAYOUT);
  // The last pod gets an address `ip` refuses: the namespaces, bridge and files made before go.
  const bad = { ...topo, workloads: topo.workloads.map((w, i) => (i === topo.workloads.length - 1 ? { ...w, ip: '10.251.2.300' } : w)) };
  await assert.rejects(setupNetns(bad), /ip -n isle-nd-cluster-2-sleep addr add 10\.251\.2\.300\/24/);
  assert.deepEqual(await leftovers(), []);
  await teardownNetns(topo);
});

test('isle demo --netns without root, or without iptables: a clear error naming what is missing, nothing made', { skip: why, timeout: 30_000 }, async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'isle-demo-nd-'));
  t.after(() => rmSync(cwd, { recursive: true, force: true }));
  // As nobody, when nobody can run the CLI here (a checkout under a private home cannot be read).
  const asNobody = (args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [cliEntry(), ...args], { uid: 65534, gid: 65534, cwd: '/' });
      let stderr = '';
      c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      c.on('error', (e) => resolve({ code: null, stderr: e.message }));
      c.on('close', (code) => resolve({ code, stderr }));
    });
  const probe = await asNobody(['--version']);
  if (probe.code === 0) {
    const r = await asNobody(['demo', '--netns', '--check', ...LAYOUT_FLAGS, '--dir', join(cwd, 'demo')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--netns: .*need root/);
  } else {
    t.diagnostic(`not checked as nobody: uid 65534 cannot run ${cliEntry()} here (${probe.stderr.trim().split('\n')[0]})`);
  }
  // With a PATH that has ip and curl but no iptables.
  const bin = join(cwd, 'bin');
  mkdirSync(bin);
  for (const tool of ['ip', 'curl']) {
    const where = (await run('sh', ['-c', `command -v ${tool}`])).stdout.trim();
    await run('ln', ['-s', where, join(bin, tool)]);
  }
  const r = await runIsle(['demo', '--netns', '--check', ...LAYOUT_FLAGS, '--dir', join(cwd, 'demo')], { cwd, env: { PATH: bin } });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--netns: not installed: `iptables` \(apt-get install iptables\), `iptables-restore` \(apt-get install iptables\)/);
  assert.equal(existsSync(join(cwd, 'demo')), false, 'nothing written');
  assert.deepEqual(await leftovers(), []);
});
