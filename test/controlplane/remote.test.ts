/**
 * Seed 001 with real control planes over real mTLS: a central control plane (cluster-1) and two
 * remote replicas of cluster-2 started with `central`. Central config wins and local conflicts
 * are reported; cluster-2's services reach the central over the replicas' own connections;
 * discovery is asymmetric until the central enables it; a malformed central resource is NACKed
 * with the last good kept; the remote keeps serving while the central is down and resumes with
 * only what changed; control planes claiming a cluster name that is taken are refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { caFiles, createIntermediate, writeFilesAtomic } from '../../src/pki/index.js';
import { CENTRAL_CONFIG_TYPE, toWireAny } from '../../src/peering/index.js';
import { resourceFromAny, typeSnapshot, type SendEvent } from '../../src/xds/index.js';
import { clusterMeshYaml } from '../helpers/config.js';
import { fetchPlane, formatStatus } from '../../src/controlplane/status.js';
import { clusterCaDir, getJson, HELLOWORLD_YAML, meshPki, startPlane, tempDir, waitUntil, workloadEntryYaml, type Plane } from './helpers.js';

const HTTPBIN = 'httpbin.default.svc.cluster.local';
const HELLO = 'helloworld.default.svc.cluster.local';

const vsYaml = (name: string, host: string, subset: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${host}]
  http:
  - route:
    - destination: {host: ${host}, subset: ${subset}}
`;

const HTTPBIN_YAML = `apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: default}
spec:
  selector: {app: httpbin}
  ports:
  - {name: http, port: 8000}
`;

test('remote control plane: central config wins, services pushed back, asymmetric discovery, NACK, outage and reconnect, refusals', async (t) => {
  const { root } = await meshPki();
  const ca2Dir = await clusterCaDir('cluster-2', root);

  const dir1 = tempDir('isle-central-');
  writeFileSync(join(dir1, 'mesh.yaml'), clusterMeshYaml('cluster-1', 'network1'));
  writeFileSync(join(dir1, 'helloworld.yaml'), HELLOWORLD_YAML);
  writeFileSync(join(dir1, 'helloworld-v1.yaml'), workloadEntryYaml('helloworld-v1', '127.1.0.10'));
  writeFileSync(join(dir1, 'vs-httpbin.yaml'), vsYaml('httpbin', 'httpbin', 'v1'));

  const dir2 = tempDir('isle-remote-');
  writeFileSync(join(dir2, 'mesh.yaml'), clusterMeshYaml('cluster-2', 'network2'));
  writeFileSync(join(dir2, 'httpbin.yaml'), HTTPBIN_YAML);
  writeFileSync(join(dir2, 'httpbin-1.yaml'), workloadEntryYaml('httpbin-1', '127.2.0.20', 'httpbin', { app: 'httpbin' }));
  // Authored locally under a name the central also uses: reported, not applied.
  writeFileSync(join(dir2, 'local-vs.yaml'), vsYaml('httpbin', 'httpbin', 'local'));

  const backoff = () => 100;
  let p1 = await startPlane({ configDir: dir1, eastWestGateways: ['127.1.255.1:15443'], peerBackoff: backoff });
  const central = p1.cp.addresses.grpc;
  const replicas: Plane[] = [];
  for (let i = 0; i < 2; i++) {
    replicas.push(await startPlane({ configDir: dir2, caDir: ca2Dir, central, eastWestGateways: ['127.2.255.1:15443'], peerBackoff: backoff }));
  }
  const [a, b] = replicas as [Plane, Plane];

  // Central config arrives and wins over the local object of the same name.
  for (const r of replicas) {
    await waitUntil(() => (r.cp.store.get('VirtualService', 'default', 'httpbin')?.source.file ?? '').startsWith('central:'), 'central VirtualService in use');
  }
  const vs = a.cp.store.get('VirtualService', 'default', 'httpbin')!.spec as { http: { route: { destination: { subset: string } }[] }[] };
  assert.equal(vs.http[0]!.route[0]!.destination.subset, 'v1', 'the central definition, not the local one');
  const configz = await getJson<{ problems: { file: string; text: string }[] }>(`${a.debugUrl}/debug/configz`);
  const conflict = configz.body.problems.find((p) => p.file.endsWith('local-vs.yaml'));
  assert.ok(conflict, JSON.stringify(configz.body.problems));
  assert.match(conflict.text, /VirtualService default\/httpbin: also defined by source central:/);

  // cluster-2's services reach the central over the replicas' connections (both push).
  await waitUntil(() => p1.cp.registry.shard('cluster-2')?.services.has(HTTPBIN) === true, 'httpbin of cluster-2 at the central');
  await waitUntil(() => p1.cp.central!.status().find((s) => s.cluster === 'cluster-2')?.pushStreams === 2, 'two replicas pushing');
  assert.deepEqual(
    p1.cp.registry.endpoints(HTTPBIN, 8000).map((e) => [e.address, e.cluster, e.network]),
    [['127.2.0.20', 'cluster-2', 'network2']],
  );
  await waitUntil(() => (p1.cp.peering!.networkGateways()['network2'] ?? []).some((g) => g.address === '127.2.255.1'), 'cluster-2 gateway known at the central');
  // A proxy auto-registered at one replica only: the central's view is the union of the replicas'.
  const onlyA = a.cp.autoRegistry.register({ namespace: 'default', serviceAccount: 'httpbin', address: '127.2.0.21', labels: { app: 'httpbin' } });
  await waitUntil(() => a.cp.registry.endpoints(HTTPBIN, 8000).length === 2, 'replica A registered it');
  await waitUntil(() => p1.cp.registry.endpoints(HTTPBIN, 8000).length === 2, `replica A's own workload at the central`);
  assert.equal(b.cp.registry.endpoints(HTTPBIN, 8000).length, 1, 'replica B does not know it');
  a.cp.autoRegistry.unregister(onlyA);

  // Asymmetric by default: cluster-2 does not see cluster-1's helloworld…
  assert.equal(a.cp.registry.shard('cluster-1'), undefined);
  const rz = await getJson<{ central: { remoteClustersSeeCentral: boolean; connected: boolean; centralCluster: string } }>(`${a.debugUrl}/debug/remoteclusterz`);
  assert.deepEqual([rz.body.central.connected, rz.body.central.centralCluster, rz.body.central.remoteClustersSeeCentral], [true, 'cluster-1', false]);
  // `isle status` shows the roles, the direction and the overridden local object.
  const text = formatStatus([await fetchPlane(p1.debugUrl), await fetchPlane(a.debugUrl)]);
  assert.match(text, /cluster-1\s+central\s+cluster-2\s+connected\s+2 pushing, 2 subscribed\s+1\s+\S+ ago\s+cluster-1 sees cluster-2 only/);
  assert.match(text, /cluster-2\s+remote\s+cluster-1 at \S+\s+connected\s+-\s+1 resources\s+-\s+does not see central \(asymmetric\)/);
  assert.match(text, /cluster-2: not applied, central config wins: .*local-vs\.yaml:1 VirtualService default\/httpbin/);
  // …until the central enables it: first for another namespace only (cluster-1 is discovered, helloworld of default is not)…
  writeFileSync(join(dir1, 'helloworld-ops.yaml'), HELLOWORLD_YAML.replace(/namespace: default/g, 'namespace: ops'));
  writeFileSync(join(dir1, 'mesh.yaml'), clusterMeshYaml('cluster-1', 'network1', '  remoteClustersSeeCentral: true\n  remoteClustersSeeCentralNamespaces: [ops]\n'));
  const opsHello = HELLO.replace('.default.', '.ops.');
  for (const r of replicas) await waitUntil(() => r.cp.registry.shard('cluster-1')?.services.has(opsHello) === true, 'cluster-1 ops services seen from cluster-2', 10_000);
  assert.equal(a.cp.registry.shard('cluster-1')!.services.has(HELLO), false, 'namespace default is not discovered');
  const only = formatStatus([await fetchPlane(p1.debugUrl), await fetchPlane(a.debugUrl)]);
  assert.match(only, /cluster-1\s+central\s+cluster-2\s.*both ways \(namespaces ops\)/);
  assert.match(only, /cluster-2\s+remote\s.*sees central \(namespaces ops\)/);
  // …then for every namespace.
  writeFileSync(join(dir1, 'mesh.yaml'), clusterMeshYaml('cluster-1', 'network1', '  remoteClustersSeeCentral: true\n'));
  for (const r of replicas) await waitUntil(() => r.cp.registry.shard('cluster-1')?.services.has(HELLO) === true, 'cluster-1 services seen from cluster-2', 10_000);
  await waitUntil(() => (a.cp.peering!.networkGateways()['network1'] ?? []).some((g) => g.address === '127.1.255.1'), 'cluster-1 gateway known in cluster-2');

  // A change authored centrally reaches both replicas.
  writeFileSync(join(dir1, 'vs-httpbin.yaml'), vsYaml('httpbin', 'httpbin', 'v2'));
  for (const r of replicas) {
    await waitUntil(() => (r.cp.store.get('VirtualService', 'default', 'httpbin')?.spec as typeof vs | undefined)?.http[0]?.route[0]?.destination.subset === 'v2', 'central edit applied');
  }

  // Malformed central resource: NACKed with the reason, the last good set kept.
  const good = p1.cp.central!.cache.get('central-config', CENTRAL_CONFIG_TYPE)!;
  const bad = resourceFromAny('VirtualService/default/broken', toWireAny(CENTRAL_CONFIG_TYPE, { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'broken', namespace: 'default' }, spec: { hosts: ['x'], http: [{ route: [{ destination: { host: 'x' }, weight: 70 }, { destination: { host: 'x' }, weight: 60 }] }] } }));
  p1.cp.central!.cache.setResources('central-config', CENTRAL_CONFIG_TYPE, 'bad-1', typeSnapshot('bad-1', [...good.resources.values(), bad]));
  await waitUntil(() => a.cp.centralLink!.status().lastRejected?.version === 'bad-1', 'NACK recorded');
  assert.match(a.cp.centralLink!.status().lastRejected!.errors.join('\n'), /VirtualService default\/broken: .*weight/);
  assert.equal(a.cp.store.get('VirtualService', 'default', 'broken'), undefined);
  assert.ok(a.cp.store.get('VirtualService', 'default', 'httpbin'), 'last good kept');
  await waitUntil(() => p1.cp.central!.xds.status().some((s) => s.types.some((x) => x.lastNack && /weight/.test(x.lastNack.message))), 'the central sees the reason');
  p1.cp.central!.refresh();

  // Central down: the remotes keep their config and keep serving.
  const pushesBefore = a.cp.pusher.pushCount;
  await p1.cp.stop();
  await waitUntil(() => !a.cp.centralLink!.status().connected, 'link down');
  assert.ok(a.cp.store.get('VirtualService', 'default', 'httpbin'), 'central config kept while the central is down');
  assert.equal(a.cp.isReady, true);

  // Central back on the same address: reconnect with versions, nothing resent, no push.
  p1 = await startPlane({ configDir: dir1, listen: central, eastWestGateways: ['127.1.255.1:15443'], peerBackoff: backoff });
  const sends: SendEvent[] = [];
  p1.cp.central!.xds.on('send', (e) => sends.push(e));
  for (const r of replicas) await waitUntil(() => r.cp.centralLink!.status().connected, 'link back');
  await waitUntil(() => p1.cp.registry.shard('cluster-2')?.services.has(HTTPBIN) === true, 'cluster-2 pushed again to the restarted central');
  await new Promise((r) => setTimeout(r, 300));
  const configSends = sends.filter((s) => s.typeUrl === CENTRAL_CONFIG_TYPE);
  assert.ok(configSends.every((s) => s.resources === 0), `config resent after reconnect: ${JSON.stringify(configSends.map((s) => s.resources))}`);
  assert.equal(a.cp.pusher.pushCount - pushesBefore <= 1, true, 'no push storm on reconnect');

  // Refusals: a control plane claiming cluster-2 with another intermediate, and one claiming the central's own cluster.
  const imposterCa = await createIntermediate({ root, cluster: 'cluster-2' });
  const imposterDir = tempDir('isle-cacerts-imposter-');
  await writeFilesAtomic(imposterDir, caFiles(imposterCa), { force: true });
  const imposter = await startPlane({ configDir: dir2, caDir: imposterDir, central, peerBackoff: () => 60_000 });
  await waitUntil(() => /a second control plane cannot claim the same cluster name/.test(imposter.cp.centralLink!.status().lastError ?? ''), 'imposter refused');
  await imposter.cp.stop();
  // An intermediate under another root: refused by the TLS of both sides, each saying why.
  const { foreignRoot } = await meshPki();
  const foreignCa = await createIntermediate({ root: foreignRoot, cluster: 'cluster-3' });
  const foreignDir = tempDir('isle-cacerts-foreign-');
  await writeFilesAtomic(foreignDir, caFiles(foreignCa), { force: true });
  const dir3 = tempDir('isle-foreign-');
  writeFileSync(join(dir3, 'mesh.yaml'), clusterMeshYaml('cluster-3', 'network3'));
  const foreign = await startPlane({ configDir: dir3, caDir: foreignDir, central, peerBackoff: () => 60_000 });
  await waitUntil(() => /presented a certificate not signed by our root/.test(foreign.cp.centralLink!.status().lastError ?? ''), 'foreign root refused by the remote');
  await waitUntil(() => p1.logs.some((l) => /TLS handshake from .* failed/.test(l.msg)), 'the central logged the refused handshake');
  assert.equal(p1.cp.registry.shard('cluster-3'), undefined);
  await foreign.cp.stop();
  const dirSelf = tempDir('isle-self-');
  writeFileSync(join(dirSelf, 'mesh.yaml'), clusterMeshYaml('cluster-1', 'network1'));
  const self = await startPlane({ configDir: dirSelf, central, peerBackoff: () => 60_000 });
  await waitUntil(() => /this cluster itself/.test(self.cp.centralLink!.status().lastError ?? ''), 'own cluster refused');
  await self.cp.stop();

  // One replica gone: the central keeps cluster-2 fresh through the other.
  await b.cp.stop();
  await waitUntil(() => p1.cp.central!.status().find((s) => s.cluster === 'cluster-2')?.pushStreams === 1, 'one replica left');
  assert.equal(p1.cp.registry.isStale('cluster-2'), false);
  t.diagnostic(`central status: ${JSON.stringify(p1.cp.central!.status())}`);
});
