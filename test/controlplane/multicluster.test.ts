/**
 * Two real control planes peered "for service discovery only" (seed 000): each adds the other
 * with a RemoteCluster, and helloworld.default — defined in both — becomes one service whose
 * cross-network endpoints a sidecar reaches through the other network's east-west gateway.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { caFiles, createIntermediate, writeFilesAtomic } from '../../src/pki/index.js';
import { decodeResource, ENDPOINT_TYPE } from '../../src/xds/index.js';
import { outboundClusterName } from '../../src/mesh/names.js';
import { clusterMeshYaml } from '../helpers/config.js';
import {
  channel,
  getJson,
  HELLOWORLD_YAML,
  inSync,
  meshPki,
  sidecarNode,
  SimProxy,
  startPlane,
  tempDir,
  waitUntil,
  workloadCert,
  workloadEntryYaml,
  type Plane,
} from './helpers.js';

const HELLO = outboundClusterName(5000, 'helloworld.default.svc.cluster.local');

function remoteClusterYaml(name: string, address: string, network: string): string {
  return `apiVersion: mesh.isle.dev/v1alpha1
kind: RemoteCluster
metadata: {name: ${name}}
spec: {address: "${address}", network: ${network}, discoveryOnly: true}
`;
}

function clusterDir(cluster: string, network: string, workload: [string, string]): string {
  const d = tempDir(`isle-${cluster}-`);
  writeFileSync(join(d, 'mesh.yaml'), clusterMeshYaml(cluster, network));
  writeFileSync(join(d, 'helloworld.yaml'), HELLOWORLD_YAML);
  writeFileSync(join(d, `${workload[0]}.yaml`), workloadEntryYaml(workload[0], workload[1]));
  return d;
}

/** `address:port` of every endpoint in the proxy's current ClusterLoadAssignment for `cluster`. */
function edsAddresses(p: Plane, proxyId: string, cluster: string): string[] {
  const res = p.cp.cache.get(proxyId, ENDPOINT_TYPE)?.resources.get(cluster);
  if (!res) return [];
  const cla = decodeResource(res.any) as { endpoints?: { lb_endpoints?: { endpoint?: { address?: { socket_address?: { address: string; port_value: number } } } }[] }[] };
  const out: string[] = [];
  for (const l of cla.endpoints ?? []) {
    for (const e of l.lb_endpoints ?? []) {
      const sa = e.endpoint?.address?.socket_address;
      if (sa) out.push(`${sa.address}:${sa.port_value}`);
    }
  }
  return out.sort();
}

test('two peered control planes: namespace sameness, east-west gateways, stale peer kept, peer back', async (t) => {
  const { root } = await meshPki();
  const ca2 = await createIntermediate({ root, cluster: 'cluster-2' });
  const ca2Dir = tempDir('isle-cacerts-2-');
  await writeFilesAtomic(ca2Dir, caFiles(ca2), { force: true });

  const dir1 = clusterDir('cluster-1', 'network1', ['helloworld-v1', '127.1.0.10']);
  const dir2 = clusterDir('cluster-2', 'network2', ['helloworld-v2', '127.2.0.10']);
  const backoff = () => 100;
  const p1 = await startPlane({ configDir: dir1, plaintextListen: '127.0.0.1:0', eastWestGateways: ['127.1.255.1:15443'], peerBackoff: backoff });
  let p2 = await startPlane({ configDir: dir2, caDir: ca2Dir, eastWestGateways: ['127.2.255.1:15443'], peerBackoff: backoff });
  const addr2 = p2.cp.addresses.grpc;

  // Each adds the other, live, for service discovery only.
  writeFileSync(join(dir1, 'cluster-2.yaml'), remoteClusterYaml('cluster-2', addr2, 'network2'));
  writeFileSync(join(dir2, 'cluster-1.yaml'), remoteClusterYaml('cluster-1', p1.cp.addresses.grpc, 'network1'));

  const sleep = new SimProxy('delta', channel(p1.cp.addresses.plaintext!), sidecarNode(1));
  t.after(() => sleep.close());

  // cluster-2's helloworld endpoint is on network2: the sidecar in network1 dials cluster-2's gateway.
  await waitUntil(() => edsAddresses(p1, sleep.id, HELLO).includes('127.2.255.1:15443'), 'cluster-2 endpoints via its gateway');
  assert.deepEqual(edsAddresses(p1, sleep.id, HELLO), ['127.1.0.10:5000', '127.2.255.1:15443'], 'local endpoint direct, remote one through the gateway');
  await waitUntil(() => inSync(p1.cp, sleep.id), 'sidecar ACKed');

  const rz = await getJson<{ services: { hostname: string; clusters: string[] }[] }>(`${p1.debugUrl}/debug/registryz`);
  const hello = rz.body.services.find((s) => s.hostname === 'helloworld.default.svc.cluster.local');
  assert.deepEqual(hello?.clusters, ['cluster-1', 'cluster-2'], 'one service, defined by both clusters');
  const rc = await getJson<{ remoteClusters: { name: string; state: string }[]; subscribers: { cluster: string }[] }>(`${p1.debugUrl}/debug/remoteclusterz`);
  assert.deepEqual(rc.body.remoteClusters.map((r) => [r.name, r.state]), [['cluster-2', 'synced']]);
  await waitUntil(() => p1.cp.peeringExport!.subscribers().some((s) => s.cluster === 'cluster-2'), 'cluster-2 subscribed to us');

  // A new workload in cluster-2 reaches the sidecar in cluster-1 (as more weight on the gateway).
  const weightOf = (): number => {
    const res = p1.cp.cache.get(sleep.id, ENDPOINT_TYPE)?.resources.get(HELLO);
    const cla = res ? (decodeResource(res.any) as { endpoints?: { load_balancing_weight?: number; lb_endpoints?: { endpoint?: { address?: { socket_address?: { address: string } } }; load_balancing_weight?: number }[] }[] }) : undefined;
    let w = 0;
    for (const l of cla?.endpoints ?? []) for (const e of l.lb_endpoints ?? []) if (e.endpoint?.address?.socket_address?.address === '127.2.255.1') w += e.load_balancing_weight ?? 1;
    return w;
  };
  assert.equal(weightOf(), 1);
  const t0 = performance.now();
  writeFileSync(join(dir2, 'helloworld-v2b.yaml'), workloadEntryYaml('helloworld-v2b', '127.2.0.11'));
  await waitUntil(() => weightOf() === 2, 'gateway weight follows the endpoints behind it');
  console.log(`peer change (file written in cluster-2) → cluster-1 sidecar snapshot: ${(performance.now() - t0).toFixed(0)} ms`);

  // A gateway proxy connecting to cluster-2's control plane is advertised to cluster-1 automatically.
  const gwCert = await workloadCert(ca2, 'istio-system', 'isle-eastwestgateway');
  const gwChannel = new grpc.Client(addr2, grpc.credentials.createSsl(Buffer.from(root.certPem), Buffer.from(gwCert.keyPem), Buffer.from(gwCert.chainPem)), {
    'grpc.ssl_target_name_override': 'isle-control-plane.cluster-2',
    'grpc.use_local_subchannel_pool': 1,
  });
  const gw = new SimProxy('delta', gwChannel, {
    id: 'router~127.2.255.2~eastwestgateway.istio-system~istio-system.svc.cluster.local',
    cluster: 'cluster-2',
    metadata: { NAMESPACE: 'istio-system', SERVICE_ACCOUNT: 'isle-eastwestgateway' },
  });
  await waitUntil(() => edsAddresses(p1, sleep.id, HELLO).includes('127.2.255.2:15443'), 'auto-detected gateway advertised');
  gw.close();
  await waitUntil(() => !edsAddresses(p1, sleep.id, HELLO).includes('127.2.255.2:15443'), 'gateway gone when its proxy leaves');

  // Peer down: its endpoints stay (stale); traffic can still be sent through its gateway.
  await p2.cp.stop();
  await waitUntil(() => p1.cp.registry.isStale('cluster-2'), 'cluster-2 marked stale');
  const stale = await getJson<{ shards: { cluster: string; stale: boolean }[] }>(`${p1.debugUrl}/debug/registryz`);
  assert.equal(stale.body.shards.find((s) => s.cluster === 'cluster-2')?.stale, true);
  assert.ok(edsAddresses(p1, sleep.id, HELLO).includes('127.2.255.1:15443'), 'last known endpoints kept');

  // Peer back on the same address: fresh again, and its changes flow.
  rmSync(join(dir2, 'helloworld-v2b.yaml'));
  p2 = await startPlane({ configDir: dir2, caDir: ca2Dir, listen: addr2, eastWestGateways: ['127.2.255.1:15443'], peerBackoff: backoff });
  await waitUntil(() => !p1.cp.registry.isStale('cluster-2') && weightOf() === 1, 'cluster-2 fresh again with its current endpoints');

  // RemoteCluster deleted: its endpoints are dropped.
  rmSync(join(dir1, 'cluster-2.yaml'));
  await waitUntil(() => edsAddresses(p1, sleep.id, HELLO).join() === '127.1.0.10:5000', 'peer dropped');
  assert.equal(p1.cp.registry.shard('cluster-2'), undefined);
});
