/**
 * Issue 13, "replica killed under load", with real processes: a three-member etcd cluster on
 * loopback, two control-plane replicas of cluster-1 sharing it (`--store etcd://…`, the same
 * intermediate CA), and two sidecars given both replicas (`--control-plane A,B`). Traffic runs
 * while the replica both sidecars use is SIGKILLed: they move to the other one, which already
 * knows helloworld's registration through etcd, and not one request fails.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configDir, getText, makeMesh, startApp, startControlPlane, startProxy, waitFor, waitReconnected, xdsState, type Child, type ProxyChild } from '../proxy/helpers.js';
import { expectNoFailures, HttpLoad } from '../helpers/load.js';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.js';

const SLEEP_IP = '127.1.79.9';
const HELLO_IP = '127.1.79.10';

let etcd: EtcdCluster;
const replicas: { child: Child; address: string }[] = [];
let hello: ProxyChild;
let sleep: ProxyChild;

before(async () => {
  etcd = await startEtcd(3);
  const mesh = await makeMesh();
  const dir = configDir();
  for (let i = 0; i < 2; i++) replicas.push(await startControlPlane(mesh, dir, '127.0.0.1:0', ['--store', etcd.url]));
  const controlPlane = replicas.map((r) => r.address).join(',');
  const app = await startApp('helloworld-v1');
  [hello, sleep] = await Promise.all([
    startProxy({ mesh, controlPlane, ip: HELLO_IP, serviceAccount: 'helloworld', labels: { app: 'helloworld', version: 'v1' }, appPorts: { 5000: app.port } }),
    startProxy({ mesh, controlPlane, ip: SLEEP_IP, serviceAccount: 'sleep', labels: { app: 'sleep' } }),
  ]);
});

after(() => {
  for (const p of [hello, sleep]) p?.child.kill('SIGKILL');
  for (const r of replicas) r.child.kill('SIGKILL');
});

describe('control-plane replicas on etcd', () => {
  test('the replica every sidecar uses is SIGKILLed under load: they move to the other, zero failed requests', async () => {
    await waitFor('helloworld routable', async () => (await getText(`${sleep.admin}/clusters`)).text.includes(`::${HELLO_IP}:5000::health_flags::`), 30_000, 100);
    const load = new HttpLoad(`${SLEEP_IP}:15001`, 'http://helloworld:5000/hello');
    await waitFor('traffic flowing', () => load.result.ok >= 20);
    const before = await Promise.all([xdsState(sleep), xdsState(hello)]);
    // pick_first: both are on the first replica.
    replicas[0]!.child.kill('SIGKILL');
    await replicas[0]!.child.exited;
    await waitReconnected([sleep, hello], before);
    await expectNoFailures(load, waitFor);
    assert.ok((await getText(`${sleep.admin}/clusters`)).text.includes(`::${HELLO_IP}:5000::health_flags::`), 'helloworld still an endpoint');
  });
});
