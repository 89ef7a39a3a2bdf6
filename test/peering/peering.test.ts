import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { pushContextFromRegistry } from '../../src/model/pushcontext.js';
import { PEERING_TYPES, PeerSubscriber, type PeerStatus } from '../../src/peering/index.js';
import { Registry } from '../../src/registry/index.js';
import { outboundLoadAssignments } from '../../src/generate/index.js';
import type { SendEvent } from '../../src/xds/server.js';
import {
  meshPki,
  remoteCluster,
  service,
  serviceEntry,
  startCluster,
  waitFor,
  waitForLog,
  waitForPeer,
  waitForRegistry,
  workloadCert,
  workloadEntry,
  type TestCluster,
} from './helpers.js';

const HW = 'helloworld.default.svc.cluster.local';
const GW1 = { address: '127.1.0.100', port: 15443 };
const GW2 = { address: '127.2.0.100', port: 15443 };

const cluster1Resources = () => [
  service('helloworld'),
  workloadEntry('helloworld-v1', 'helloworld', '127.1.0.10', { version: 'v1' }),
  service('sleep', 'default', 80),
  workloadEntry('sleep', 'sleep', '127.1.0.20'),
];
const cluster2Resources = (extra: ReturnType<typeof workloadEntry>[] = []) => [
  service('helloworld'),
  workloadEntry('helloworld-v2', 'helloworld', '127.2.0.10', { version: 'v2', locality: 'region-2/zone-2' }),
  // Not exportToPeers: stays in cluster-2.
  serviceEntry('api.partner.example'),
  ...extra,
];

const synced = (s: PeerStatus) => s.state === 'synced';

describe('peering: two control planes under one root, each adding the other for discovery only', () => {
  let c1: TestCluster;
  let c2: TestCluster;
  const sends2: SendEvent[] = [];

  before(async () => {
    const pki = await meshPki();
    c1 = await startCluster({ name: 'cluster-1', network: 'network1', ca: pki.cas['cluster-1']!, gateways: [GW1], resources: cluster1Resources() });
    c2 = await startCluster({ name: 'cluster-2', network: 'network2', ca: pki.cas['cluster-2']!, gateways: [GW2], resources: cluster2Resources() });
    c2.exporter.xds.on('send', (e) => sends2.push(e));
    c1.config.apply(remoteCluster('cluster-2', c2.address, 'network2'));
    c2.config.apply(remoteCluster('cluster-1', c1.address, 'network1'));
    await Promise.all([waitForPeer(c1, 'cluster-2', synced, 'cluster-2 synced'), waitForPeer(c2, 'cluster-1', synced, 'cluster-1 synced')]);
  });

  after(async () => {
    await c1?.close();
    await c2?.close();
  });

  it('namespace sameness: helloworld.default is one service with endpoints from both clusters, tagged by cluster and network', () => {
    for (const [c, other] of [[c1, 'cluster-2'], [c2, 'cluster-1']] as const) {
      const svc = c.registry.service(HW);
      assert.ok(svc, `${c.name} knows ${HW}`);
      assert.deepEqual(svc.clusters, ['cluster-1', 'cluster-2']);
      const eps = c.registry.endpoints(HW, 5000);
      assert.deepEqual(
        eps.map((e) => [e.cluster, e.network, e.address, e.labels['version'], `${e.serviceAccount.namespace}/${e.serviceAccount.name}`]).sort(),
        [['cluster-1', 'network1', '127.1.0.10', 'v1', 'default/helloworld'], ['cluster-2', 'network2', '127.2.0.10', 'v2', 'default/helloworld']],
      );
      const remote = eps.find((e) => e.cluster === other)!;
      assert.equal(remote.source, 'peer');
      assert.equal(remote.health, 'HEALTHY');
      assert.equal(remote.labels['topology.istio.io/cluster'], other);
      assert.equal(c.registry.shard(other)?.origin, 'peer');
    }
    const remoteLocality = c1.registry.endpoints(HW, 5000).find((e) => e.cluster === 'cluster-2')!.locality;
    assert.deepEqual(remoteLocality, { region: 'region-2', zone: 'zone-2', subzone: '' });
    // A peer's ServiceEntry is not exported; the peer's workloads are.
    assert.equal(c1.registry.service('api.partner.example'), undefined);
    assert.deepEqual(c1.registry.workloadsByAddress('127.2.0.10').map((w) => `${w.cluster}/${w.namespace}/${w.name}`), ['cluster-2/default/helloworld-v2']);
    // sleep exists only in cluster-1, and is seen by cluster-2.
    assert.deepEqual(c2.registry.service('sleep.default.svc.cluster.local')?.clusters, ['cluster-1']);
  });

  it('never re-exports: cluster-2 exports only its own endpoints, not what it learned from cluster-1', () => {
    const s = c1.registry.shard('cluster-2')!;
    assert.ok([...s.endpoints.values()].flat().every((e) => e.cluster === 'cluster-2'));
    assert.ok(s.workloads.every((w) => w.cluster === 'cluster-2'));
    assert.equal(s.services.has('sleep.default.svc.cluster.local'), false);
  });

  it('the peer network\'s gateways reach networkGateways, and a network1 sidecar reaches cluster-2 through 127.2.0.100:15443', () => {
    assert.deepEqual(c1.manager.networkGateways(), {
      network1: [{ ...GW1, cluster: 'cluster-1' }],
      network2: [{ ...GW2, cluster: 'cluster-2' }],
    });
    const push = pushContextFromRegistry(c1.registry, {
      version: 'p',
      mesh: { trustDomain: 'cluster.local', clusterName: 'cluster-1', network: 'network1' },
      networkGateways: c1.manager.networkGateways(),
    });
    const cla = outboundLoadAssignments(push, 'network1').find((x) => x['cluster_name'] === `outbound|5000||${HW}`)!;
    const addrs = JSON.stringify(cla);
    assert.match(addrs, /127\.1\.0\.10/);
    assert.match(addrs, /"address":"127\.2\.0\.100","port_value":15443/);
    assert.doesNotMatch(addrs, /127\.2\.0\.10"/);
  });

  it('status reports each remote cluster (like istioctl remote-clusters)', () => {
    const [s] = c1.manager.status();
    assert.equal(s!.name, 'cluster-2');
    assert.equal(s!.address, c2.address);
    assert.equal(s!.network, 'network2');
    assert.equal(s!.state, 'synced');
    assert.equal(s!.lastError, undefined);
    assert.ok(s!.lastSyncTime! > 0);
    assert.equal(s!.services, 1);
    assert.equal(s!.endpoints, 1);
    assert.equal(s!.workloads, 1);
  });

  it('the export side logs who subscribed', async () => {
    await waitForLog(c2, /peer control plane cluster-1 subscribed to the export feed of cluster-2/);
    const subs = c2.exporter.subscribers();
    assert.deepEqual(subs.map((s) => s.cluster), ['cluster-1']);
  });

  it('discovery only: the subscriber sends only subscriptions and ACKs, and receives only the types it asked for', () => {
    const sub = c1.manager.peer('cluster-2')!;
    assert.equal(sub.sent.nack, 0);
    assert.equal(sub.sent.subscribe, PEERING_TYPES.length);
    assert.ok(sub.sent.ack >= PEERING_TYPES.length);
    // Everything the export of cluster-2 wrote went to cluster-1's subscription, of the types it subscribed to ('*').
    assert.ok(sends2.length >= PEERING_TYPES.length);
    const [status] = c2.exporter.xds.status();
    assert.equal(status!.node.cluster, 'cluster-1');
    const asked = new Set(status!.types.filter((t) => t.wildcard).map((t) => t.typeUrl));
    assert.deepEqual([...asked].sort(), [...PEERING_TYPES].sort());
    for (const e of sends2) {
      assert.equal(e.nodeId, 'isle-control-plane.cluster-1');
      assert.ok(asked.has(e.typeUrl), `sent ${e.typeUrl}`);
    }
    // And nothing of ours lands in the peer: cluster-2's registry holds cluster-1 data only as a peer shard it pulled.
    assert.deepEqual(c2.registry.clusters(), ['cluster-2', 'cluster-1']);
    assert.equal(c2.registry.shard('cluster-1')!.origin, 'peer');
  });

  it('a change in cluster-2 reaches cluster-1\'s registry (measured)', async () => {
    const has3 = () => c1.registry.endpoints(HW, 5000).length === 3;
    const t0 = performance.now();
    c2.setLocal(cluster2Resources([workloadEntry('helloworld-v2-b', 'helloworld', '127.2.0.11', { version: 'v2' })]));
    await waitForRegistry(c1, has3, 'the new cluster-2 endpoint');
    const ms = performance.now() - t0;
    console.log(`# peer change → remote registry: ${ms.toFixed(1)} ms (cluster-2 setShard → cluster-1 Registry change)`);
    assert.ok(c1.registry.endpoints(HW, 5000).some((e) => e.address === '127.2.0.11' && e.cluster === 'cluster-2'));
  });

  it('peer stopped → stale, last known endpoints kept; peer restarted → fresh, with what changed meanwhile', async () => {
    c2.stopServer();
    await waitForPeer(c1, 'cluster-2', (s) => s.state === 'stale', 'cluster-2 stale');
    assert.equal(c1.registry.isStale('cluster-2'), true);
    assert.equal(c1.registry.endpoints(HW, 5000).length, 3, 'endpoints kept while the peer is away');
    const st = c1.manager.status()[0]!;
    assert.match(st.lastError ?? '', /peer cluster-2 at 127\.0\.0\.1:\d+/);

    // While it is away cluster-2 loses a workload; after the restart cluster-1 must see that.
    c2.setLocal(cluster2Resources());
    await c2.startServer();
    await waitForPeer(c1, 'cluster-2', synced, 'cluster-2 synced again');
    await waitForRegistry(c1, () => c1.registry.endpoints(HW, 5000).length === 2, 'the removal made while away');
    assert.equal(c1.registry.isStale('cluster-2'), false);
    assert.equal(c1.manager.status()[0]!.lastError, undefined);
  });

  it('RemoteCluster deleted → subscription closed, shard and gateways dropped', async () => {
    assert.equal(c1.config.delete('RemoteCluster//cluster-2'), true);
    await waitForRegistry(c1, () => c1.registry.shard('cluster-2') === undefined, 'cluster-2 shard removed');
    assert.deepEqual(c1.registry.endpoints(HW, 5000).map((e) => e.cluster), ['cluster-1']);
    assert.deepEqual(c1.manager.status(), []);
    assert.deepEqual(Object.keys(c1.manager.networkGateways()), ['network1']);
    await waitFor((l) => c2.exporter.xds.on('disconnect', l), () => c2.exporter.subscribers().every((s) => s.cluster !== 'cluster-1'), 'cluster-1 left cluster-2\'s feed');
  });
});

describe('peering: refusals', () => {
  const clusters: TestCluster[] = [];
  after(async () => {
    for (const c of clusters) await c.close();
  });

  it('a peer from a foreign root is refused on both sides, with clear errors', async () => {
    const pki = await meshPki();
    const c1 = await startCluster({ name: 'cluster-1', network: 'network1', ca: pki.cas['cluster-1']!, resources: cluster1Resources() });
    const foreign = await startCluster({ name: 'cluster-2', network: 'network2', ca: pki.foreignCa, resources: cluster2Resources() });
    clusters.push(c1, foreign);
    c1.config.apply(remoteCluster('cluster-2', foreign.address, 'network2'));
    foreign.config.apply(remoteCluster('cluster-1', c1.address, 'network1'));
    await waitForPeer(c1, 'cluster-2', (s) => s.state === 'error', 'cluster-2 refused');
    await waitForPeer(foreign, 'cluster-1', (s) => s.state === 'error', 'cluster-1 refused');
    const e1 = c1.manager.status()[0]!.lastError!;
    const e2 = foreign.manager.status()[0]!.lastError!;
    console.log(`# cluster-1 says: ${e1}\n# foreign cluster-2 says: ${e2}`);
    assert.match(e1, new RegExp(`^peer cluster-2 at ${foreign.address.replace(/\./g, '\\.')} presented a certificate not signed by our root`));
    assert.match(e2, new RegExp(`^peer cluster-1 at ${c1.address.replace(/\./g, '\\.')} presented a certificate not signed by our root`));
    // Each server saw the other's client give up on the handshake, and says why.
    const l1 = await waitForLog(c1, /TLS handshake from 127\.0\.0\.1:\d+ failed/);
    const l2 = await waitForLog(foreign, /TLS handshake from 127\.0\.0\.1:\d+ failed/);
    console.log(`# cluster-1 server log: ${l1.msg}\n# foreign cluster-2 server log: ${l2.msg}`);
    assert.match(l1.msg, /another root CA/);
    assert.equal(c1.registry.shard('cluster-2'), undefined);
    assert.equal(foreign.registry.shard('cluster-1'), undefined);
  });

  it('a subscriber presenting a workload certificate is refused (PERMISSION_DENIED, logged by the export)', async () => {
    const pki = await meshPki();
    const c2 = await startCluster({ name: 'cluster-2', network: 'network2', ca: pki.cas['cluster-2']!, resources: cluster2Resources() });
    clusters.push(c2);
    const ca1 = pki.cas['cluster-1']!;
    const wl = await workloadCert(ca1, 'default', 'sleep');
    const registry = new Registry({ localCluster: 'cluster-1', log: () => {} });
    const states: PeerStatus[] = [];
    const sub = new PeerSubscriber({
      remote: { name: 'cluster-2', address: c2.address },
      localCluster: 'cluster-1',
      registry,
      tls: { rootBundlePem: ca1.rootBundlePem, certChainPem: wl.chainPem, keyPem: wl.keyPem, trustDomain: ca1.trustDomain },
      backoff: () => 60_000,
      onStatus: (s) => states.push(s),
    });
    sub.start();
    await waitFor((l) => { const i = setInterval(l, 10); return () => clearInterval(i); }, () => sub.status().state === 'error', 'refusal');
    const err = sub.status().lastError!;
    console.log(`# workload-cert subscriber: ${err}`);
    assert.match(err, /^peer cluster-2 at .* refused our subscription: export feed of cluster cluster-2: certificate spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep is not a control plane's/);
    await waitForLog(c2, /peering subscription refused: certificate spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
    assert.equal(registry.shard('cluster-2'), undefined);
    sub.close();
  });

  it('a RemoteCluster whose name does not match the peer\'s certificate is refused by the subscriber', async () => {
    const pki = await meshPki();
    const c2 = await startCluster({ name: 'cluster-2', network: 'network2', ca: pki.cas['cluster-2']!, resources: cluster2Resources() });
    const c3 = await startCluster({ name: 'cluster-3', network: 'network3', ca: pki.cas['cluster-3']!, resources: [] });
    clusters.push(c2, c3);
    // cluster-3 believes cluster-2's address is "cluster-1".
    c3.config.apply(remoteCluster('cluster-1', c2.address));
    await waitForPeer(c3, 'cluster-1', (s) => s.state === 'error', 'mismatch refused');
    const err = c3.manager.status()[0]!.lastError!;
    assert.match(err, /is not who the RemoteCluster says: it is the control plane of cluster cluster-2, not of cluster-1/);
    assert.equal(c3.registry.shard('cluster-1'), undefined);
  });
});

describe('peering: one direction only', () => {
  it('a discovery-only peer is never dialled back and never fed: nothing reaches the subscribing side\'s export', async () => {
    const pki = await meshPki();
    const c1 = await startCluster({ name: 'cluster-1', network: 'network1', ca: pki.cas['cluster-1']!, resources: cluster1Resources() });
    const c2 = await startCluster({ name: 'cluster-2', network: 'network2', ca: pki.cas['cluster-2']!, gateways: [GW2], resources: cluster2Resources() });
    try {
      let connects1 = 0;
      let sends1 = 0;
      c1.exporter.xds.on('connect', () => connects1++);
      c1.exporter.xds.on('send', () => sends1++);
      c1.config.apply(remoteCluster('cluster-2', c2.address, 'network2'));
      await waitForPeer(c1, 'cluster-2', synced, 'cluster-2 synced');
      assert.equal(c1.registry.endpoints(HW, 5000).length, 2);
      // cluster-2 added nobody: it has no peer shard, and cluster-1's export never had a stream.
      assert.deepEqual(c2.registry.clusters(), ['cluster-2']);
      assert.equal(connects1, 0);
      assert.equal(sends1, 0);
      assert.equal(c1.exporter.xds.streamCount(), 0);
      const sub = c1.manager.peer('cluster-2')!;
      assert.deepEqual({ ...sub.sent, ack: sub.sent.ack >= 4 }, { subscribe: 4, ack: true, nack: 0 });
    } finally {
      await c1.close();
      await c2.close();
    }
  });
});

describe('peering: a peer is checked, not trusted blindly', () => {
  it('a malformed update is NACKed and the last good state kept; endpoints claiming another cluster are dropped', async () => {
    const { EXPORT_KEY, PEER_ENDPOINTS_TYPE, toWireAny } = await import('../../src/peering/index.js');
    const { resourceFromAny } = await import('../../src/xds/cache.js');
    const pki = await meshPki();
    const c1 = await startCluster({ name: 'cluster-1', network: 'network1', ca: pki.cas['cluster-1']!, resources: cluster1Resources() });
    const c2 = await startCluster({ name: 'cluster-2', network: 'network2', ca: pki.cas['cluster-2']!, resources: cluster2Resources() });
    try {
      c1.config.apply(remoteCluster('cluster-2', c2.address, 'network2'));
      await waitForPeer(c1, 'cluster-2', synced, 'cluster-2 synced');
      const nacks: string[] = [];
      c2.exporter.xds.on('nack', (e) => nacks.push(e.message));

      const bad = resourceFromAny(HW, toWireAny(PEER_ENDPOINTS_TYPE, { hostname: HW, endpoints: [{ portName: 'http', servicePort: 'five thousand' }] }));
      c2.exporter.cache.setResources(EXPORT_KEY, PEER_ENDPOINTS_TYPE, 'bad-1', [bad]);
      await waitFor((l) => c2.exporter.xds.on('nack', l), () => nacks.length > 0, 'the NACK');
      assert.match(nacks[0]!, /endpoints\[0\]\.servicePort: expected a port number/);
      assert.equal(c1.registry.endpoints(HW, 5000).length, 2, 'last good endpoints kept');
      assert.equal(c1.manager.peer('cluster-2')!.sent.nack, 1);

      const ep = (cluster: string, address: string) => ({
        portName: 'http', servicePort: 5000, address, port: 5000, cluster, network: 'network2', locality: 'region-2/zone-2',
        serviceAccount: 'default/helloworld', labels: { app: 'helloworld' }, health: 'HEALTHY', workload: `w-${address}`,
      });
      const forged = resourceFromAny(HW, toWireAny(PEER_ENDPOINTS_TYPE, { hostname: HW, endpoints: [ep('cluster-2', '127.2.0.50'), ep('cluster-1', '127.1.0.66')] }));
      c2.exporter.cache.setResources(EXPORT_KEY, PEER_ENDPOINTS_TYPE, 'forged-1', [forged]);
      await waitForRegistry(c1, () => c1.registry.endpoints(HW, 5000).some((e) => e.address === '127.2.0.50'), 'the valid endpoint');
      assert.ok(!c1.registry.endpoints(HW, 5000).some((e) => e.address === '127.1.0.66'));
      assert.match(c1.registry.problems().map((p) => p.message).join('\n'), /peer cluster-2 exported an endpoint of .* in cluster cluster-1; ignored/);
    } finally {
      await c1.close();
      await c2.close();
    }
  });
});
