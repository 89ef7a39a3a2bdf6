/**
 * "Peering works against any replica": cluster-1 adds cluster-2 with both replicas' addresses
 * (`a:p,b:p`). When the replica it reads from dies, the subscription moves to the other and
 * cluster-2's services never leave cluster-1's registry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterMeshYaml } from '../helpers/config.js';
import { clusterCaDir, HELLOWORLD_YAML, startPlane, tempDir, waitUntil, workloadEntryYaml, type Plane } from './helpers.js';

const HELLO = 'helloworld.default.svc.cluster.local';

test('a RemoteCluster with two replica addresses moves to the live replica; the peer never disappears', async () => {
  const ca2Dir = await clusterCaDir('cluster-2');
  const dir2 = tempDir('isle-cluster-2-');
  writeFileSync(join(dir2, 'mesh.yaml'), clusterMeshYaml('cluster-2', 'network2'));
  writeFileSync(join(dir2, 'helloworld.yaml'), HELLOWORLD_YAML);
  writeFileSync(join(dir2, 'helloworld-v2.yaml'), workloadEntryYaml('helloworld-v2', '127.2.0.11'));
  const replicas: Plane[] = [];
  for (let i = 0; i < 2; i++) replicas.push(await startPlane({ configDir: dir2, caDir: ca2Dir, eastWestGateways: ['127.2.255.1:15443'] }));
  const [a, b] = replicas as [Plane, Plane];

  const dir1 = tempDir('isle-cluster-1-');
  writeFileSync(join(dir1, 'mesh.yaml'), clusterMeshYaml('cluster-1', 'network1'));
  writeFileSync(
    join(dir1, 'cluster-2.yaml'),
    `apiVersion: mesh.isle.dev/v1alpha1\nkind: RemoteCluster\nmetadata: {name: cluster-2}\nspec: {address: "${a.cp.addresses.grpc},${b.cp.addresses.grpc}", network: network2}\n`,
  );
  const p1 = await startPlane({ configDir: dir1, peerBackoff: () => 100 });
  const peer = () => p1.cp.peering!.status().find((s) => s.name === 'cluster-2');
  const has = () => p1.cp.registry.endpoints(HELLO, 5000).some((e) => e.address === '127.2.0.11');
  await waitUntil(() => peer()?.state === 'synced' && has(), 'cluster-2 synced through one replica');
  const firstSince = peer()!.connectedSince;
  const connectedTo = (p: Plane) => (p.cp.peeringExport?.subscribers() ?? []).some((s) => s.cluster === 'cluster-1');
  await waitUntil(() => connectedTo(a) || connectedTo(b), 'a replica serves the subscription');
  const [serving, other] = connectedTo(a) ? [a, b] : [b, a];

  let lost = false;
  const off = p1.cp.registry.subscribe(() => (lost ||= !has()));
  await serving.cp.stop();
  await waitUntil(() => peer()?.state === 'synced' && peer()!.connectedSince !== firstSince && connectedTo(other), 'resubscribed at the other replica', 15_000);
  off();
  assert.equal(lost, false, "cluster-2's endpoint never left cluster-1's registry");
  assert.ok(has());
});
