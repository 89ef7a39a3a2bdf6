/**
 * Seed 001's `replicas: 2` with shared state: two remote control planes of cluster-2 on one real
 * etcd (loopback). A proxy auto-registered at one replica is an endpoint at the other replica too
 * (so every cluster-2 sidecar sees it, whichever replica serves it), and the central sees it once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterMeshYaml } from '../helpers/config.js';
import { startEtcd } from '../helpers/etcd.js';
import { channel, clusterCaDir, sidecarNode, SimProxy, startPlane, tempDir, waitUntil, workloadGroupYaml, type Plane } from './helpers.js';

const HTTPBIN = 'httpbin.default.svc.cluster.local';

test('remote replicas sharing etcd: an auto-registration at one replica is seen by the other and once by the central', async (t) => {
  const etcd = await startEtcd(1);
  const ca2Dir = await clusterCaDir('cluster-2');

  const dir1 = tempDir('isle-central-');
  writeFileSync(join(dir1, 'mesh.yaml'), clusterMeshYaml('cluster-1', 'network1'));
  // Authored centrally: cluster-2's sidecars register through this WorkloadGroup (ADR 0040).
  writeFileSync(join(dir1, 'httpbin-group.yaml'), workloadGroupYaml('httpbin', 'httpbin', { app: 'httpbin' }));
  const dir2 = tempDir('isle-remote-');
  writeFileSync(join(dir2, 'mesh.yaml'), clusterMeshYaml('cluster-2', 'network2'));
  writeFileSync(join(dir2, 'httpbin.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: httpbin, namespace: default}\nspec:\n  selector: {app: httpbin}\n  ports:\n  - {name: http, port: 8000}\n');

  const central = await startPlane({ configDir: dir1, eastWestGateways: ['127.1.255.1:15443'], peerBackoff: () => 100 });
  const replicas: Plane[] = [];
  for (let i = 0; i < 2; i++) {
    replicas.push(await startPlane({ configDir: dir2, caDir: ca2Dir, central: central.cp.addresses.grpc, store: etcd.url, plaintextListen: '127.0.0.1:0', eastWestGateways: ['127.2.255.1:15443'], peerBackoff: () => 100 }));
  }
  const [a, b] = replicas as [Plane, Plane];
  for (const r of replicas) await waitUntil(() => r.cp.store.get('WorkloadGroup', 'default', 'httpbin') !== undefined, 'central WorkloadGroup at the replica');

  const node = { ...sidecarNode(40, { serviceAccount: 'httpbin', labels: { app: 'httpbin' }, ip: '127.2.0.40' }), cluster: 'cluster-2' };
  const proxy = new SimProxy('delta', channel(a.cp.addresses.plaintext!), node);
  t.after(() => proxy.close());
  const has = (p: Plane) => p.cp.registry.endpoints(HTTPBIN, 8000).some((e) => e.address === '127.2.0.40');
  await waitUntil(() => has(a), 'registered at replica A');
  await waitUntil(() => has(b), 'replica B sees it through etcd');
  await waitUntil(() => has(central), 'the central sees it');
  assert.equal(central.cp.registry.endpoints(HTTPBIN, 8000).filter((e) => e.address === '127.2.0.40').length, 1, 'once, not once per replica');
});
