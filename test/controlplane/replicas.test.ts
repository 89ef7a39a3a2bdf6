// Two replicas of cluster-1's control plane sharing state through a real etcd (loopback): a
// sidecar registered on one replica is an endpoint on the other at once; when it moves to the
// other replica (its replica stopped), the endpoint is never removed there; a single-use token id
// taken through one replica is taken for both.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENDPOINT_TYPE } from '../../src/xds/index.js';
import { channel, clusterCaDir, configDir, sidecarNode, SimProxy, startPlane, tempDir, waitUntil, inSync, workloadEntryYaml, workloadGroupYaml, type Plane } from './helpers.js';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.js';
import { runIsle } from '../helpers/cli.js';

const HW = 'helloworld.default.svc.cluster.local';

describe('replicas sharing state through etcd', () => {
  let etcd: EtcdCluster;
  let a: Plane;
  let b: Plane;
  const proxies: SimProxy[] = [];
  before(async () => {
    etcd = await startEtcd(1);
    // Sidecars register through the WorkloadGroup of their identity (ADR 0040).
    const dir = () => configDir({ 'hw-group.yaml': workloadGroupYaml('helloworld', 'helloworld', { app: 'helloworld' }) });
    [a, b] = await Promise.all([startPlane({ plaintextListen: '127.0.0.1:0', store: etcd.url, configDir: dir() }), startPlane({ plaintextListen: '127.0.0.1:0', store: etcd.url, configDir: dir() })]);
  });
  after(() => {
    for (const p of proxies) p.close();
  });

  it('a registration on one replica is an endpoint on both; moving to the other replica never removes it', async () => {
    const node = sidecarNode(90, { serviceAccount: 'helloworld', labels: { app: 'helloworld' }, ip: '127.1.0.90' });
    const has = (p: Plane) => p.cp.registry.allEndpoints(HW).some((e) => e.address === '127.1.0.90');
    const onA = new SimProxy('delta', channel(a.cp.addresses.plaintext!), node);
    proxies.push(onA);
    await waitUntil(() => has(a) && has(b), 'registered on A, seen by B through etcd');
    assert.deepEqual([...(await b.cp.state.list('registrations/cluster-1/')).keys()], ['registrations/cluster-1/default/helloworld-127-1-0-90']);
    // Watch B's view while the proxy moves: A goes away, the proxy reconnects to B.
    let lost = false;
    const off = b.cp.registry.subscribe(() => (lost ||= !has(b)));
    await a.cp.stop();
    onA.close();
    const onB = new SimProxy('delta', channel(b.cp.addresses.plaintext!), node);
    proxies.push(onB);
    await waitUntil(() => inSync(b.cp, onB.id), 'in sync on B');
    off();
    assert.equal(lost, false, 'B never removed the endpoint');
    assert.ok(has(b));
  });

  it('isle config push: config in etcd reaches every replica and its proxies live; a bad push writes nothing', async () => {
    const hw = `outbound|5000||${HW}`;
    const watcher = new SimProxy('sotw', channel(b.cp.addresses.plaintext!), sidecarNode(91));
    proxies.push(watcher);
    await waitUntil(() => inSync(b.cp, watcher.id), 'watcher in sync');
    const dir = tempDir('isle-push-');
    mkdirSync(join(dir, 'workloads'));
    writeFileSync(join(dir, 'workloads', 'v9.yaml'), workloadEntryYaml('helloworld-v9', '127.1.0.99'));
    const pushed = await runIsle(['config', 'push', dir, '--store', etcd.url]);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stdout, /^pushed 1 file to etcd:\/\/\S+: 1 written, 0 unchanged, 0 removed$/m);
    const addrs = () => {
      const cla = watcher.sotw!.state.get(ENDPOINT_TYPE)?.get(hw) as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string } } } }[] }[] } | undefined;
      return (cla?.endpoints ?? []).flatMap((e) => e.lb_endpoints.map((l) => l.endpoint.address.socket_address.address));
    };
    await waitUntil(() => addrs().includes('127.1.0.99') && inSync(b.cp, watcher.id), 'the WorkloadEntry from etcd reached the proxy');
    assert.equal(b.cp.store.get('WorkloadEntry', 'default', 'helloworld-v9')?.source.file, 'workloads/v9.yaml');

    writeFileSync(join(dir, 'broken.yaml'), 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad}\nspec:\n  hosts: [helloworld]\n  http: [{route: [{destination: {host: helloworld, port: {number: 99999}}}]}]\n');
    const bad = await runIsle(['config', 'push', dir, '--store', etcd.url]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /nothing pushed: 1 error in .*\n\s+broken\.yaml:\d+ VirtualService default\/bad: /);
    assert.deepEqual([...(await b.cp.state.list('config/')).keys()], ['config/workloads/v9.yaml']);

    writeFileSync(join(dir, 'broken.yaml'), '');
    writeFileSync(join(dir, 'workloads', 'v9.yaml'), '');
    const emptied = await runIsle(['config', 'push', dir, '--store', etcd.url]);
    assert.equal(emptied.code, 0, emptied.stderr);
    await waitUntil(() => !addrs().includes('127.1.0.99') && inSync(b.cp, watcher.id), 'removed again');
  });

  it('a token id taken through one replica is taken for the other', async () => {
    assert.equal(await b.cp.state.putIfAbsent('tokens/jti-1', 'used', { expiresAt: Date.now() + 60_000 }), true);
    const c = await startPlane({ plaintextListen: '127.0.0.1:0', store: etcd.url });
    assert.equal(await c.cp.state.putIfAbsent('tokens/jti-1', 'again'), false);
  });

  it("a control plane of another cluster on this cluster's key space is refused before it serves; with a key space of its own it starts", async () => {
    const caDir = await clusterCaDir('cluster-2');
    await assert.rejects(startPlane({ plaintextListen: '127.0.0.1:0', store: etcd.url, caDir, cluster: 'cluster-2' }), (e: Error) => {
      assert.match(e.message, /holds the state of cluster cluster-1, and this control plane is cluster cluster-2/);
      assert.match(e.message, /--store etcd:\/\/.+\/cluster-2$/);
      return true;
    });
    const own = await startPlane({ plaintextListen: '127.0.0.1:0', store: `${etcd.url}/cluster-2`, caDir, cluster: 'cluster-2' });
    assert.equal(own.cp.cluster, 'cluster-2');
    assert.equal(await own.cp.state.get('tokens/jti-1'), undefined, "cluster-1's records are not in cluster-2's key space");
  });
});
