/**
 * Issue #4 acceptance, end to end with real processes: a control plane (`isle control-plane`),
 * two sidecars (`isle proxy`) and an app (node:http). The client sidecar is the app's HTTP proxy
 * (`curl -x`), carries the request over mTLS to the helloworld sidecar, which forwards it to the
 * app with the caller's SPIFFE id in x-forwarded-client-cert. Then the control plane is killed
 * (traffic keeps flowing), a WorkloadEntry is written while it is down, and it is restarted on
 * the same port: the sidecars reconnect and converge. A SotW sidecar works too.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  HELLOWORLD_YAML,
  configDump,
  curlProxy,
  getText,
  startControlPlane,
  startHelloSleep,
  startProxy,
  waitFor,
  workloadEntryYaml,
  type Child,
  type Mesh,
  type ProxyChild,
} from './helpers.js';
import { runIsle } from '../helpers/cli.js';
import { policyOf } from '../../src/proxy/cpusched.js';

const SLEEP_IP = '127.1.77.9';
const SLEEP2_IP = '127.1.77.8';
const HELLO_IP = '127.1.77.10';
const NEW_IP = '127.1.77.20';
const SLOW_IP = '127.1.77.40';
const SLOW_SVC = HELLOWORLD_YAML.replace(/helloworld/g, 'slowapp').replace('port: 5000', 'port: 7000');
const HELLO_CLUSTER = 'outbound|5000||helloworld.default.svc.cluster.local';

let mesh: Mesh;
let dir: string;
let cp: Child;
let cpAddress: string;
let hello: ProxyChild;
let sleep: ProxyChild;

before(async () => {
  ({ mesh, dir, cp, cpAddress, hello, sleep } = await startHelloSleep({ hello: HELLO_IP, sleep: SLEEP_IP }));
});

after(() => {
  for (const p of [hello, sleep]) p?.child.kill('SIGKILL');
  cp?.kill('SIGKILL');
});

function cpAddressNow(): string {
  return cpAddress;
}

async function curlHello(proxy = `${SLEEP_IP}:15001`): Promise<{ status: number; body: string }> {
  return curlProxy(proxy, 'http://helloworld:5000/hello');
}

describe('isle proxy end to end', () => {
  test('curl -x through the client sidecar reaches the app over mTLS; the app sees the caller in XFCC', async () => {
    assert.equal(sleep.listeners.get('virtualOutbound'), `${SLEEP_IP}:15001`);
    // The helloworld sidecar's inbound listener appears once its own registration is pushed.
    await waitFor('helloworld inbound listener', () => /^listener \S+ inbound 127\.1\.77\.10:5000$/m.test(hello.child.stdout));
    const r = await waitFor('a 200 through the sidecars', async () => {
      const x = await curlHello();
      return x.status === 200 ? x : undefined;
    });
    const body = JSON.parse(r.body) as { app: string; path: string; xfcc: string };
    assert.equal(body.app, 'helloworld-v1');
    assert.equal(body.path, '/hello');
    assert.match(body.xfcc, /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
    assert.match(body.xfcc, /By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/helloworld/);

    // Unknown host: Envoy's 404.
    const nf = await curlProxy(`${SLEEP_IP}:15001`, 'http://nosuch.default.svc.cluster.local:5000/');
    assert.equal(nf.status, 404);

    // Admin: /clusters lists the endpoint with its health; /ready; stats count the request.
    const clusters = await getText(`${sleep.admin}/clusters`);
    assert.match(clusters.text, new RegExp(`${HELLO_CLUSTER.replace(/\|/g, '\\|')}::${HELLO_IP}:5000::health_flags::healthy`));
    // The two sidecars spoke isle-mux/1 (ADR 0138), not HTTP/1.1.
    assert.match(clusters.text, new RegExp(`${HELLO_CLUSTER.replace(/\|/g, '\\|')}::isle_mux::connections=\\d+,http1_endpoints=0`));
    assert.match(clusters.text, /::priority::0/);
    assert.equal((await getText(`${sleep.admin}/ready`)).status, 200);
    assert.equal((await getText(`${sleep.health}/healthz/ready`)).status, 200);
    const stats = await getText(`${sleep.admin}/stats/prometheus`);
    assert.match(stats.text, /istio_requests_total\{[^}]*reporter="source"[^}]*response_code="200"/);
    const dump = await configDump(sleep);
    assert.equal(dump['xds'].protocol, 'delta');
    assert.equal(dump['certificate'].spiffe_id, 'spiffe://cluster.local/ns/default/sa/sleep');
    assert.equal(dump['certificate'].private_key, '[redacted]');
    assert.ok(dump['types'].CDS.last_good.resources.some((r: { name: string }) => r.name === HELLO_CLUSTER));
    assert.equal(dump['types'].CDS.last_rejected, null);
  });

  test('SotW mode: a sidecar with --xds sotw serves the same traffic', async () => {
    const p = await startProxy({ mesh, controlPlane: cpAddress, ip: SLEEP2_IP, serviceAccount: 'sleep', labels: { app: 'sleep' }, extra: ['--xds', 'sotw', '--outbound-port', '0', '--cpu-scheduling', 'batch'] });
    try {
      // --cpu-scheduling batch: the event loop's thread runs SCHED_BATCH (3) once ready (ADR 0152).
      if (process.platform === 'linux') await waitFor('the sidecar runs SCHED_BATCH', () => policyOf(p.child.proc.pid!) === 3);
      const addr = p.listeners.get('virtualOutbound')!;
      assert.match(addr, /^127\.1\.77\.8:\d+$/);
      const r = await waitFor('a 200 through the SotW sidecar', async () => {
        const x = await curlHello(addr);
        return x.status === 200 ? x : undefined;
      });
      assert.match(r.body, /sa\/sleep/);
      const dump = await configDump(p);
      assert.equal(dump['xds'].protocol, 'sotw');
      assert.ok(dump['types'].EDS.last_good.version_info !== '');
    } finally {
      p.child.kill('SIGTERM');
      assert.deepEqual(await p.child.exited, { code: 0, signal: null });
    }
  });

  test('control plane killed: traffic keeps flowing; restarted on the same port: the proxies reconnect and converge', async () => {
    cp.kill('SIGKILL');
    await cp.exited;
    await waitFor('the sidecar to notice', async () => (await configDump(sleep))['xds'].connected === false);
    for (let i = 0; i < 3; i++) assert.equal((await curlHello()).status, 200);

    // Written while the control plane is down: only a restarted one can push it.
    writeFileSync(join(dir, 'helloworld-v2.yaml'), workloadEntryYaml('helloworld-v2', NEW_IP));
    const port = cpAddress.split(':').pop()!;
    ({ child: cp } = await startControlPlane(mesh, dir, `127.0.0.1:${port}`));
    // Converged: the endpoint written while the control plane was down, and the helloworld
    // sidecar's own registration (made again when it reconnected).
    await waitFor(
      'the new endpoint in the sidecar',
      async () => {
        const t = (await getText(`${sleep.admin}/clusters`)).text;
        return t.includes(`::${NEW_IP}:5000::health_flags::`) && t.includes(`::${HELLO_IP}:5000::health_flags::`);
      },
      30_000,
      100,
    );
    const dump = await configDump(sleep);
    assert.equal(dump['xds'].connected, true);
    assert.ok(dump['xds'].connects >= 2);
    // The new endpoint has no sidecar: the default retry policy (connect-failure, another host) hides it.
    for (let i = 0; i < 4; i++) {
      const r = await curlHello();
      assert.equal(r.status, 200, `${r.status} ${r.body}\nhello: ${hello.child.stdout}`);
    }
  });

  test('SIGTERM: stop accepting, finish the request in flight, exit 0', async () => {
    // The app holds /slow until released; the request is in flight through both sidecars.
    const held: http.ServerResponse[] = [];
    const slow = http.createServer((req, res) => {
      if (req.url === '/slow') held.push(res);
      else res.end('fast');
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const slowPort = (slow.address() as AddressInfo).port;
    const front = await startProxy({ mesh, controlPlane: cpAddressNow(), ip: SLOW_IP, serviceAccount: 'slowapp', labels: { app: 'slowapp' }, appPorts: { 7000: slowPort } });
    writeFileSync(join(dir, 'slowapp.yaml'), SLOW_SVC);
    try {
      await waitFor('slowapp routable', async () => (await curlProxy(`${SLEEP_IP}:15001`, 'http://slowapp:7000/ping')).status === 200, 30_000, 100);
      const inflight = curlProxy(`${SLEEP_IP}:15001`, 'http://slowapp:7000/slow');
      await waitFor('the app holds the request', () => held.length === 1);
      sleep.child.kill('SIGTERM');
      await waitFor('the sidecar stops being ready', async () => (await getText(`${sleep.admin}/ready`)).status === 503);
      // No new connections are accepted while draining.
      const refused = await curlProxy(`${SLEEP_IP}:15001`, 'http://helloworld:5000/hello');
      assert.equal(refused.status, 0, `a new request while draining: ${refused.status} ${refused.stderr}`);
      held[0]!.end('finished');
      const r = await inflight;
      assert.equal(r.status, 200);
      assert.equal(r.body, 'finished');
      assert.deepEqual(await sleep.child.exited, { code: 0, signal: null });
      assert.match(sleep.child.stdout, /^stopped$/m);
    } finally {
      front.child.kill('SIGKILL');
      slow.closeAllConnections();
      slow.close();
    }
  });

  test('CLI: bad flags, an unreadable token and an address in use are one-line errors with exit code 2', async () => {
    const base = ['proxy', '--control-plane', cpAddressNow(), '--ca-bundle', mesh.rootFile, '--ip', '127.1.77.30', '--namespace', 'default', '--service-account', 'sleep', '--admin', '127.0.0.1:0', '--health', '127.0.0.1:0'];
    const token = mesh.token('default', 'sleep');
    const bad = await runIsle([...base, '--token', token, '--mode', 'router']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^isle: --mode: must be sidecar, gateway or ingress/m);
    const noToken = await runIsle([...base, '--token', '/nonexistent/token']);
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /^isle: --token: cannot read \/nonexistent\/token \(ENOENT\)$/m);
    const badIp = await runIsle([...base.map((a) => (a === '127.1.77.30' ? 'not-an-ip' : a)), '--token', token]);
    assert.equal(badIp.code, 2);
    assert.match(badIp.stderr, /--ip: "not-an-ip" is not an IP address/);
    const badSched = await runIsle([...base, '--token', token, '--cpu-scheduling', 'realtime']);
    assert.equal(badSched.code, 2);
    assert.match(badSched.stderr, /^isle: --cpu-scheduling: must be auto, normal, batch \(got "realtime"\)$/m);
    const badQuiet = await runIsle([...base, '--token', token, '--compact-when-quiet', 'soon']);
    assert.equal(badQuiet.code, 2);
    assert.match(badQuiet.stderr, /^isle: --compact-when-quiet: invalid duration "soon"/m);
    // A token for another identity: the certificate service refuses it.
    const other = await runIsle([...base.map((a) => (a === 'sleep' ? 'someone-else' : a)), '--token', token]);
    assert.equal(other.code, 2);
    assert.match(other.stderr, /^isle: cannot get a certificate from 127\.0\.0\.1:\d+: PERMISSION_DENIED: /m);
    // The admin port of a running proxy.
    const inUse = await runIsle([...base.filter((a, i) => a !== '--admin' && base[i - 1] !== '--admin'), '--admin', hello.admin.replace('http://', ''), '--token', token]);
    assert.equal(inUse.code, 2);
    assert.match(inUse.stderr, /^isle: cannot listen on 127\.0\.0\.1:\d+ \(--admin\): address already in use$/m);
    assert.equal(inUse.stderr.trim().split('\n').filter((l) => l.startsWith('isle:')).length, 1);
    // The outbound listener's address (the helloworld sidecar's, same IP).
    const listenerInUse = await runIsle(['proxy', '--control-plane', cpAddressNow(), '--ca-bundle', mesh.rootFile, '--ip', HELLO_IP, '--namespace', 'default', '--service-account', 'sleep', '--admin', '127.0.0.1:0', '--health', '127.0.0.1:0', '--token', token]);
    assert.equal(listenerInUse.code, 2);
    // Both its outbound listener and the inbound one of the endpoint at that address are taken; one line names the first.
    assert.match(listenerInUse.stderr, /^isle: cannot listen on 127\.1\.77\.10:(15001 \(listener virtualOutbound\)|5000 \(listener 127\.1\.77\.10_5000\)): address already in use$/m);
    assert.equal(listenerInUse.stderr.trim().split('\n').filter((l) => l.startsWith('isle:')).length, 1);
  });
});
