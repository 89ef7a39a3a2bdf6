/**
 * The sidecar's DNS proxy end to end (issue 14, ADR 0075), real processes: a control plane, the
 * helloworld sidecar and app, and a sleep sidecar whose DNS proxy (15053 on its own address)
 * answers mesh names from the control plane's NDS table and forwards the rest to a tiny resolver
 * started here. A Service without a cluster IP and a ServiceEntry without addresses get auto VIPs
 * (240.240.0.0/16), and a request through the sidecar to such a VIP reaches the service.
 * Loopback range 127.75.0.0/16.
 */
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { after, before, describe, test } from 'node:test';
import { configDir, curlProxy, makeMesh, startApp, startControlPlane, startProxy, waitFor, type App, type Child, type Mesh, type ProxyChild } from './helpers.js';
import { startFakeUpstream, type FakeUpstream } from './dns/fakeupstream.js';
import { runIsle } from '../helpers/cli.js';

const HELLO_IP = '127.75.3.10';
const SLEEP_IP = '127.75.3.20';
const UPSTREAM_IP = '127.75.3.53';

function serviceEntryYaml(appPort: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ext
  namespace: default
spec:
  hosts:
  - ext.example.test
  location: MESH_EXTERNAL
  ports:
  - name: http
    number: 8080
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: ${appPort}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: helloworld-global
  namespace: default
spec:
  hosts:
  - helloworld.hello.global
  location: MESH_INTERNAL
  ports:
  - name: http1
    number: 5000
    protocol: http
  resolution: DNS
  addresses:
  - 127.255.0.8
  endpoints:
  - address: 127.75.3.99
    ports:
      http1: 15443
`;
}

let mesh: Mesh;
let cp: Child;
let helloApp: App;
let extApp: App;
let hello: ProxyChild;
let sleep: ProxyChild;
let upstream: FakeUpstream;

before(async () => {
  mesh = await makeMesh();
  [helloApp, extApp, upstream] = await Promise.all([startApp('helloworld-v1'), startApp('ext'), startFakeUpstream(UPSTREAM_IP, { 'example.test': '192.0.2.7' })]);
  const dir = configDir({ 'ext.yaml': serviceEntryYaml(extApp.port) });
  const { child, address } = await startControlPlane(mesh, dir);
  cp = child;
  [hello, sleep] = await Promise.all([
    startProxy({ mesh, controlPlane: address, ip: HELLO_IP, serviceAccount: 'helloworld', labels: { app: 'helloworld', version: 'v1' }, appPorts: { 5000: helloApp.port } }),
    startProxy({ mesh, controlPlane: address, ip: SLEEP_IP, serviceAccount: 'sleep', labels: { app: 'sleep' }, extra: ['--dns-upstream', `${UPSTREAM_IP}:${upstream.port}`] }),
  ]);
});

after(async () => {
  for (const p of [hello, sleep]) p?.child.kill('SIGKILL');
  cp?.kill('SIGKILL');
  await upstream?.close();
});

function resolver(): Resolver {
  const r = new Resolver({ timeout: 2000, tries: 1 });
  r.setServers([`${SLEEP_IP}:15053`]);
  return r;
}

describe('sidecar DNS proxy', () => {
  test('the sidecar prints its DNS listener on its own address', () => {
    assert.equal(sleep.listeners.get('dns'), `${SLEEP_IP}:15053`);
  });

  test('mesh names resolve: short and long forms of a Service (auto VIP), a ServiceEntry without addresses (auto VIP), a .global host', async () => {
    const r = resolver();
    const vip = await waitFor('helloworld resolves', () => r.resolve4('helloworld.default.svc.cluster.local').catch(() => undefined));
    assert.equal(vip.length, 1);
    assert.match(vip[0]!, /^240\.240\.\d+\.\d+$/);
    for (const n of ['helloworld', 'helloworld.default', 'helloworld.default.svc']) assert.deepEqual(await r.resolve4(n), vip, n);
    const ext = await r.resolve4('ext.example.test');
    assert.match(ext[0]!, /^240\.240\.\d+\.\d+$/);
    assert.notEqual(ext[0], vip[0]);
    assert.deepEqual(await r.resolve4('helloworld.hello.global'), ['127.255.0.8']);
  });

  test('a request to an auto VIP through the sidecar is routed to that service (mTLS to helloworld; the ServiceEntry endpoint for ext)', async () => {
    const r = resolver();
    const [hw] = await r.resolve4('helloworld');
    const res = await waitFor('200 via the VIP', async () => {
      const x = await curlProxy(`${SLEEP_IP}:15001`, `http://${hw}:5000/hello`);
      return x.status === 200 ? x : undefined;
    });
    assert.equal(JSON.parse(res.body).app, 'helloworld-v1');
    assert.match(String(JSON.parse(res.body).xfcc), /spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
    const [ext] = await r.resolve4('ext.example.test');
    const e = await curlProxy(`${SLEEP_IP}:15001`, `http://${ext}:8080/x`);
    assert.equal(e.status, 200, e.stderr);
    assert.equal(JSON.parse(e.body).app, 'ext');
  });

  test('other names go to the upstream resolver (--dns-upstream); its NXDOMAIN comes back', async () => {
    const r = resolver();
    assert.deepEqual(await r.resolve4('example.test'), ['192.0.2.7']);
    await assert.rejects(r.resolve4('nothing.example.test'), { code: 'ENOTFOUND' });
    assert.ok(upstream.seen.udp.includes('example.test'));
    const metrics = await (await fetch(`${sleep.admin}/stats/prometheus`)).text();
    const count = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'm').exec(metrics)?.[1] ?? NaN);
    assert.ok(count('istio_dns_requests_total') >= 8, metrics);
    assert.ok(count('istio_dns_upstream_requests_total') >= 2, metrics);
  });

  test('--dns-port asked for explicitly on a port in use is an error naming the address', async () => {
    const r = await runIsle(['proxy', '--control-plane', '127.0.0.1:1', '--token', mesh.token('default', 'sleep'), '--ca-bundle', mesh.rootFile, '--ip', SLEEP_IP, '--namespace', 'default', '--service-account', 'sleep', '--admin', '127.0.0.1:0', '--health', '127.0.0.1:0', '--dns-port', '15053']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /cannot listen on 127\.75\.3\.20:15053 \(--dns-port\): address already in use/);
  });
});
