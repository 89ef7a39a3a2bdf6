// The push pipeline's rules, through a real control plane (plaintext loopback listener): the fast
// path's CDS exception for new service accounts, kinds that push nobody, auto-registration and
// unregistration, and a NACK that is counted and not resent.
import assert from 'node:assert/strict';
import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, type SendEvent } from '../../src/xds/index.js';
import type { ControlPlaneOptions } from '../../src/controlplane/index.js';
import { channel, configDir, HELLOWORLD_YAML, inSync, sidecarNode, SimProxy, startPlane, waitUntil, workloadEntryYaml, workloadGroupYaml, type Plane } from './helpers.js';
import { meshYaml } from '../helpers/config.js';
import { SotwClient } from '../xds/helpers.js';
import { carryOver } from '../../src/controlplane/snapshots.js';

const HW = 'outbound|5000||helloworld.default.svc.cluster.local';

describe('push pipeline', () => {
  let plane: Plane;
  const proxies: SimProxy[] = [];
  const open = (i: number, protocol: 'sotw' | 'delta' = 'delta', node = sidecarNode(i)) => {
    const p = new SimProxy(protocol, channel(plane.cp.addresses.plaintext!), node);
    proxies.push(p);
    return p;
  };
  before(async () => {
    plane = await startPlane({ plaintextListen: '127.0.0.1:0', graceMs: 0 });
  });
  after(() => {
    for (const p of proxies) p.close();
  });

  it('an endpoint change that adds a service account regenerates CDS (expected SANs) and EDS, not LDS/RDS', async () => {
    const a = open(1, 'sotw');
    const b = open(2, 'delta');
    await waitUntil(() => inSync(plane.cp, a.id) && inSync(plane.cp, b.id), 'in sync');
    const before = new Map([CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE].map((t) => [t, plane.cp.cache.get(a.id, t)!.version]));
    const marks = [a.received.length, b.received.length];
    writeFileSync(join(plane.configDir, 'hw-v3.yaml'), workloadEntryYaml('helloworld-v3', '127.1.0.12', 'helloworld-v3'));
    await waitUntil(() => plane.cp.cache.get(a.id, ENDPOINT_TYPE)!.version !== before.get(ENDPOINT_TYPE) && inSync(plane.cp, a.id) && inSync(plane.cp, b.id), 'EDS pushed');
    assert.notEqual(plane.cp.cache.get(a.id, CLUSTER_TYPE)!.version, before.get(CLUSTER_TYPE), 'CDS changed: a new SAN');
    assert.equal(plane.cp.cache.get(a.id, LISTENER_TYPE)!.version, before.get(LISTENER_TYPE));
    assert.equal(plane.cp.cache.get(a.id, ROUTE_TYPE)!.version, before.get(ROUTE_TYPE));
    assert.equal(plane.cp.pusher.recentPushes().at(-1)!.kind, 'eds');
    const cluster = a.sotw!.state.get(CLUSTER_TYPE)!.get(HW)!;
    assert.match(JSON.stringify(cluster), /spiffe:\/\/cluster\.local\/ns\/default\/sa\/helloworld-v3/);
    for (const [p, m] of [[a, marks[0]!], [b, marks[1]!]] as const) {
      assert.deepEqual([...new Set(p.since(m).map((r) => r.type))].sort(), [CLUSTER_TYPE, ENDPOINT_TYPE].sort());
    }
    unlinkSync(join(plane.configDir, 'hw-v3.yaml'));
    await waitUntil(() => !plane.cp.registry.allEndpoints('helloworld.default.svc.cluster.local').some((e) => e.workload === 'helloworld-v3') && !plane.cp.pusher.busy, 'v3 gone');
  });

  it("an endpoint at a new address reaches a capturing sidecar's LDS too (its outbound chains match endpoint addresses); a sidecar without capture gets EDS only", async () => {
    const capNode = sidecarNode(5);
    const cap = open(5, 'sotw', { ...capNode, metadata: { ...capNode.metadata, INTERCEPTION_MODE: 'REDIRECT' } });
    const plain = open(6, 'delta');
    await waitUntil(() => inSync(plane.cp, cap.id) && inSync(plane.cp, plain.id), 'in sync');
    const lds = plane.cp.cache.get(cap.id, LISTENER_TYPE)!.version;
    const eds = plane.cp.cache.get(cap.id, ENDPOINT_TYPE)!.version;
    const marks = [cap.received.length, plain.received.length];
    // Same service account as the v1 endpoint: no CDS change, only a new address.
    writeFileSync(join(plane.configDir, 'hw-v1b.yaml'), workloadEntryYaml('helloworld-v1b', '127.1.0.13', 'helloworld'));
    await waitUntil(() => plane.cp.cache.get(cap.id, ENDPOINT_TYPE)!.version !== eds && inSync(plane.cp, cap.id) && inSync(plane.cp, plain.id), 'EDS pushed');
    await waitUntil(() => plane.cp.cache.get(cap.id, LISTENER_TYPE)!.version !== lds, 'LDS of the capturing sidecar');
    assert.equal(plane.cp.pusher.recentPushes().at(-1)!.kind, 'eds');
    await waitUntil(() => inSync(plane.cp, cap.id), 'LDS acked');
    const listeners = JSON.stringify([...cap.sotw!.state.get(LISTENER_TYPE)!.values()]);
    assert.match(listeners, /127\.1\.0\.13/, 'the new address is in a captured outbound chain');
    assert.deepEqual([...new Set(cap.since(marks[0]!).map((r) => r.type))].sort(), [ENDPOINT_TYPE, LISTENER_TYPE].sort());
    assert.deepEqual([...new Set(plain.since(marks[1]!).map((r) => r.type))], [ENDPOINT_TYPE]);
    unlinkSync(join(plane.configDir, 'hw-v1b.yaml'));
    await waitUntil(() => !plane.cp.registry.allEndpoints('helloworld.default.svc.cluster.local').some((e) => e.workload === 'helloworld-v1b') && !plane.cp.pusher.busy, 'v1b gone');
    // Gone before the next test counts per-proxy work.
    cap.close();
    plain.close();
    await waitUntil(() => plane.cp.cache.getSnapshot(cap.id) === undefined && plane.cp.cache.getSnapshot(plain.id) === undefined, 'both disconnected');
  });

  it('a VirtualService change (exportTo its namespace) sends RDS only, and only to that namespace (ADR 0120)', async () => {
    const mine = open(20, 'sotw', sidecarNode(20, { ip: '127.120.0.20' }));
    const mineDelta = open(21, 'delta', sidecarNode(21, { ip: '127.120.0.21' }));
    const other = open(22, 'delta', sidecarNode(22, { namespace: 'other', ip: '127.120.0.22' }));
    const all = [mine, mineDelta, other];
    await waitUntil(() => all.every((p) => inSync(plane.cp, p.id)) && !plane.cp.pusher.busy, 'in sync');
    const types = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE];
    const held = (p: SimProxy) => types.map((t) => plane.cp.cache.get(p.id, t));
    const before = all.map(held);
    const marks = all.map((p) => p.received.length);
    const memo = { hits: carryOver.hits, misses: carryOver.misses, pushes: plane.cp.pusher.pushCount };
    const vs = (timeout: string) =>
      `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: hw-timeout\n  namespace: default\nspec:\n  hosts: [helloworld]\n  exportTo: ["."]\n  http:\n  - timeout: ${timeout}\n    route:\n    - destination:\n        host: helloworld\n`;
    writeFileSync(join(plane.configDir, 'hw-vs.yaml'), vs('7s'));
    await waitUntil(() => plane.cp.cache.get(mine.id, ROUTE_TYPE) !== before[0]![3] && all.every((p) => inSync(plane.cp, p.id)) && !plane.cp.pusher.busy, 'RDS pushed');
    for (const [i, p] of [mine, mineDelta].entries()) {
      assert.deepEqual([...new Set(p.since(marks[i]!).map((r) => r.type))], [ROUTE_TYPE], `${p.id}: RDS only`);
      // CDS, EDS and LDS were not regenerated into new snapshots: the very same objects.
      assert.deepEqual(held(p).slice(0, 3), before[i]!.slice(0, 3));
      for (const [k, ts] of held(p).slice(0, 3).entries()) assert.equal(ts, before[i]![k]);
    }
    // Work: per push, RDS is generated once per namespace scope (default, other) and nothing else
    // per proxy; the one resource encoded anew is default's route config.
    const pushes = plane.cp.pusher.pushCount - memo.pushes;
    assert.equal(carryOver.misses - memo.misses, 1);
    assert.ok(carryOver.hits - memo.hits + carryOver.misses - memo.misses <= 2 * pushes, `${carryOver.hits - memo.hits} reused over ${pushes} pushes`);
    const rc = mine.sotw!.state.get(ROUTE_TYPE)!.get('15001')! as { virtual_hosts: { name: string; routes: { route?: { timeout?: string } }[] }[] };
    assert.equal(rc.virtual_hosts.find((v) => v.name === 'helloworld.default.svc.cluster.local:5000')!.routes[0]!.route!.timeout, '7s');
    // Namespace "other" does not see the VirtualService: no response of any type, snapshots untouched.
    assert.deepEqual(other.since(marks[2]!), []);
    for (const [k, ts] of held(other).entries()) assert.equal(ts, before[2]![k]);
    unlinkSync(join(plane.configDir, 'hw-vs.yaml'));
    await waitUntil(() => plane.cp.store.get('VirtualService', 'default', 'hw-timeout') === undefined && !plane.cp.pusher.busy && all.every((p) => inSync(plane.cp, p.id)), 'VirtualService gone');
  });

  it('kinds no generator reads (ServiceAccount) push nobody', async () => {
    const pushes = plane.cp.pusher.pushCount;
    writeFileSync(join(plane.configDir, 'sa.yaml'), 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: extra\n  namespace: default\n');
    await waitUntil(() => plane.cp.store.get('ServiceAccount', 'default', 'extra') !== undefined, 'service account loaded', 10_000);
    assert.equal(plane.cp.pusher.busy, false, 'nothing debounced');
    assert.equal(plane.cp.pusher.pushCount, pushes);
  });

  it('an AuthorizationPolicy change pushes (inbound RBAC filters follow it)', async () => {
    const pushes = plane.cp.pusher.pushCount;
    writeFileSync(
      join(plane.configDir, 'authz.yaml'),
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: allow\n  namespace: istio-system\nspec:\n  action: ALLOW\n',
    );
    await waitUntil(() => plane.cp.pusher.pushCount > pushes && !plane.cp.pusher.busy, 'pushed after the AuthorizationPolicy', 10_000);
    unlinkSync(join(plane.configDir, 'authz.yaml'));
    await waitUntil(() => plane.cp.store.get('AuthorizationPolicy', 'istio-system', 'allow') === undefined && !plane.cp.pusher.busy, 'policy gone', 10_000);
  });

  it('a PeerAuthentication change pushes (inbound listeners follow it)', async () => {
    const pushes = plane.cp.pusher.pushCount;
    writeFileSync(
      join(plane.configDir, 'pa.yaml'),
      'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: istio-system\nspec:\n  mtls:\n    mode: STRICT\n',
    );
    await waitUntil(() => plane.cp.pusher.pushCount > pushes && !plane.cp.pusher.busy, 'pushed after the PeerAuthentication', 10_000);
  });

  it('a sidecar is auto-registered on connect (its endpoint reaches the others) and removed on disconnect', async () => {
    const watcher = proxies[1]!;
    await waitUntil(() => inSync(plane.cp, watcher.id), 'watcher in sync');
    // Labels come from the WorkloadGroup of the proxy's identity, not from what it claims.
    writeFileSync(join(plane.configDir, 'hw-group.yaml'), workloadGroupYaml('helloworld-v9', 'helloworld', { app: 'helloworld', version: 'v9' }));
    await waitUntil(() => plane.cp.store.get('WorkloadGroup', 'default', 'helloworld-v9') !== undefined, 'group loaded');
    const hw = open(50, 'sotw', sidecarNode(50, { serviceAccount: 'helloworld', labels: { app: 'helloworld', version: 'claimed' }, ip: '127.1.0.50' }));
    const has50 = () => plane.cp.registry.allEndpoints('helloworld.default.svc.cluster.local').some((e) => e.address === '127.1.0.50');
    await waitUntil(() => has50() && inSync(plane.cp, hw.id) && inSync(plane.cp, watcher.id) && !plane.cp.pusher.busy, 'registered and pushed');
    const ep = plane.cp.registry.allEndpoints('helloworld.default.svc.cluster.local').find((e) => e.address === '127.1.0.50')!;
    assert.equal(ep.source, 'auto');
    assert.equal(ep.labels['version'], 'v9');
    assert.equal(ep.cluster, 'cluster-1');
    assert.equal(ep.network, 'network1');
    // Its own inbound listener follows (a full regeneration for that proxy, fast path for the rest).
    assert.ok(hw.sotw!.state.get(LISTENER_TYPE)!.has('127.1.0.50_5000'), [...hw.sotw!.state.get(LISTENER_TYPE)!.keys()].join());
    hw.close();
    await waitUntil(() => !has50(), 'unregistered (grace 0)');
    await waitUntil(() => !plane.cp.pusher.busy && inSync(plane.cp, watcher.id), 'pushed');
    assert.equal(plane.cp.cache.getSnapshot(hw.id), undefined, 'its snapshot is forgotten');
  });

  it('a NACK is counted, the proxy keeps its config and the same version is not resent', async () => {
    const c = new SotwClient(channel(plane.cp.addresses.plaintext!), sidecarNode(60));
    c.request(CLUSTER_TYPE);
    const r = await c.next(CLUSTER_TYPE);
    c.nack(r, 'cluster rejected for the test');
    await waitUntil(() => plane.cp.xdsServers[1]!.status().some((s) => s.node.id === c.node.id && s.types[0]?.lastNack), 'NACK recorded');
    const metrics = await plane.cp.metrics.text();
    assert.match(metrics, /^pilot_total_xds_rejects\{type="cds"\} 1$/m);
    assert.equal(c.pending(), 0, 'not resent');
    c.close();
  });

  it('after a failed build, the next endpoint push rebuilds every assignment: the failed push\'s hosts are not left stale', async () => {
    const ECHO = 'outbound|6000||echo.default.svc.cluster.local';
    writeFileSync(join(plane.configDir, 'echo.yaml'), HELLOWORLD_YAML.replaceAll('helloworld', 'echo').replace('port: 5000', 'port: 6000'));
    writeFileSync(join(plane.configDir, 'echo-a.yaml'), workloadEntryYaml('echo-a', '127.1.0.90', 'echo', { app: 'echo' }));
    const p = open(90, 'sotw');
    const cla = (cluster: string) => JSON.stringify(p.sotw!.state.get(ENDPOINT_TYPE)?.get(cluster) ?? null);
    await waitUntil(() => cla(ECHO).includes('127.1.0.90') && inSync(plane.cp, p.id) && !plane.cp.pusher.busy, 'echo pushed');
    const pusher = plane.cp.pusher as unknown as { build: () => unknown };
    const build = pusher.build;
    let failed = 0;
    pusher.build = () => {
      failed++;
      throw new Error('build failed for the test');
    };
    try {
      // helloworld's endpoints move; the build for that change fails.
      writeFileSync(join(plane.configDir, 'hw-lost.yaml'), workloadEntryYaml('helloworld-lost', '127.1.0.91', 'helloworld'));
      await waitUntil(() => failed > 0 && !plane.cp.pusher.busy, 'the failed build');
    } finally {
      pusher.build = build;
    }
    assert.ok(!cla(HW).includes('127.1.0.91'), 'not pushed by the failed build');
    // Only echo's endpoints move next.
    writeFileSync(join(plane.configDir, 'echo-b.yaml'), workloadEntryYaml('echo-b', '127.1.0.92', 'echo', { app: 'echo' }));
    await waitUntil(() => cla(ECHO).includes('127.1.0.92') && inSync(plane.cp, p.id), 'echo-b pushed');
    assert.equal(plane.cp.pusher.recentPushes().at(-1)!.kind, 'eds');
    assert.match(cla(HW), /127\.1\.0\.91/, "helloworld's endpoint from the failed push is there too");
    for (const f of ['echo.yaml', 'echo-a.yaml', 'echo-b.yaml', 'hw-lost.yaml']) unlinkSync(join(plane.configDir, f));
    p.close();
    await waitUntil(() => !plane.cp.pusher.busy, 'cleaned up');
  });
});

describe('mesh settings are re-read live', () => {
  it('a MeshConfig edit moves the registry defaults, the PushContext network, new proxies and the debounce, without a restart', async () => {
    const plane = await startPlane({ plaintextListen: '127.0.0.1:0' });
    const hwEndpoint = () => plane.cp.registry.allEndpoints('helloworld.default.svc.cluster.local').find((e) => e.workload === 'helloworld-v1');
    assert.equal(hwEndpoint()?.network, 'network1');
    assert.equal(plane.cp.pusher.pushContext.mesh.network, 'network1');
    writeFileSync(join(plane.configDir, 'mesh.yaml'), meshYaml({ quiet: '30ms', max: '1s' }).replace('network: network1', 'network: network2'));
    await waitUntil(() => hwEndpoint()?.network === 'network2' && plane.cp.pusher.pushContext.mesh.network === 'network2', 'network2 everywhere', 10_000);
    assert.deepEqual(plane.cp.mesh.current().debounce, { quietMs: 30, maxMs: 1000 });
    const p = new SimProxy('delta', channel(plane.cp.addresses.plaintext!), sidecarNode(70, { serviceAccount: 'sleep', labels: { app: 'sleep' }, ip: '127.1.0.70' }));
    await waitUntil(() => inSync(plane.cp, p.id), 'new proxy in sync');
    assert.ok(plane.logs.some((l) => l.msg === 'mesh settings changed' && l['network'] === 'network2'));
    p.close();
  });
});

describe('after a start, config waits for the registry to settle', () => {
  const PEER = 'apiVersion: mesh.isle.dev/v1alpha1\nkind: RemoteCluster\nmetadata:\n  name: cluster-2\nspec:\n  address: 127.0.0.1:9\n  discoveryOnly: true\n';

  it('a proxy connecting while a peer has not synced is registered but gets no config; it gets all of it once the registry settles', async () => {
    // The sidecar registers through the WorkloadGroup of its identity (ADR 0040).
    const dir = configDir({ 'peer.yaml': PEER, 'hw-group.yaml': workloadGroupYaml('helloworld', 'helloworld', { app: 'helloworld' }) });
    const plane = await startPlane({ configDir: dir, plaintextListen: '127.0.0.1:0', settleTimeoutMs: 600_000, peerBackoff: () => 60_000 });
    assert.equal(plane.cp.pusher.settled, false);
    const p = new SimProxy('delta', channel(plane.cp.addresses.plaintext!), sidecarNode(80, { serviceAccount: 'helloworld', labels: { app: 'helloworld' }, ip: '127.1.0.80' }));
    await waitUntil(() => plane.cp.registry.allEndpoints('helloworld.default.svc.cluster.local').some((e) => e.address === '127.1.0.80'), 'registered while held');
    await waitUntil(() => plane.cp.xdsServers[1]!.status().some((s) => s.node.id === p.id), 'stream open');
    assert.equal(plane.cp.cache.getSnapshot(p.id), undefined, 'no config while held');
    assert.equal(p.received.length, 0);
    // The peer goes away from config: nothing left to wait for.
    unlinkSync(join(dir, 'peer.yaml'));
    await waitUntil(() => plane.cp.pusher.settled && inSync(plane.cp, p.id), 'settled and in sync', 15_000);
    assert.ok(plane.logs.some((l) => l.msg === 'registry settled: pushing held proxies' && l['proxies'] === 1));
    p.close();
  });
});

describe('the push queue bounds pushes in flight', () => {
  /**
   * Six proxies (delta and SotW) in sync, then one endpoint change: the most proxies that had a
   * response unanswered at once, and every send event of the push.
   */
  async function endpointPushToSix(opts: Partial<ControlPlaneOptions>, firstNode: number, entry: string, ip: string): Promise<{ most: number; sends: SendEvent[] }> {
    const plane = await startPlane({ plaintextListen: '127.0.0.1:0', pushChunkSize: 1, ...opts });
    const ps = Array.from({ length: 6 }, (_, i) => new SimProxy(i % 2 ? 'sotw' : 'delta', channel(plane.cp.addresses.plaintext!), sidecarNode(firstNode + i)));
    await waitUntil(() => ps.every((p) => inSync(plane.cp, p.id)) && !plane.cp.pusher.busy, 'all in sync');
    const xds = plane.cp.xdsServers[1]!;
    const outstanding = new Map<string, Map<string, string>>();
    const sends: SendEvent[] = [];
    let most = 0;
    const offs = [
      xds.on('send', (e) => {
        sends.push(e);
        const m = outstanding.get(e.nodeId) ?? new Map<string, string>();
        m.set(e.typeUrl, e.nonce);
        outstanding.set(e.nodeId, m);
        most = Math.max(most, [...outstanding.values()].filter((x) => x.size > 0).length);
      }),
      xds.on('ack', (e) => {
        const m = outstanding.get(e.nodeId);
        if (m?.get(e.typeUrl) === e.nonce) m.delete(e.typeUrl);
      }),
    ];
    const before = new Map(ps.map((p) => [p.id, plane.cp.cache.get(p.id, ENDPOINT_TYPE)!.version]));
    writeFileSync(join(plane.configDir, `${entry}.yaml`), workloadEntryYaml(entry, ip));
    await waitUntil(() => ps.every((p) => plane.cp.cache.get(p.id, ENDPOINT_TYPE)!.version !== before.get(p.id) && inSync(plane.cp, p.id)) && !plane.cp.pusher.busy, 'all 6 pushed and in sync');
    for (const off of offs) off();
    for (const p of ps) p.close();
    return { most, sends };
  }

  it('with room for 2, an endpoint push to 6 proxies never has more than 2 (+1 of the current chunk) unanswered; all 6 get it', async () => {
    const { most } = await endpointPushToSix({ pushMaxInFlight: 2, pushMaxInFlightIncremental: 2 }, 100, 'helloworld-q', '127.1.0.77');
    assert.ok(most >= 1 && most <= 3, `at most 3 proxies had unanswered responses at once (saw ${most})`);
  });

  it('with a byte budget of 1, an endpoint push goes out one proxy at a time (+1 of the current chunk); all 6 get it', async () => {
    const { most, sends } = await endpointPushToSix({ pushMaxInFlightBytesIncremental: 1 }, 200, 'helloworld-b', '127.1.0.78');
    assert.ok(sends.length >= 6 && sends.every((e) => e.bytes > 0), 'every response of an endpoint push carries resource bytes');
    assert.ok(most >= 1 && most <= 2, `at most 2 proxies had unanswered responses at once (saw ${most})`);
  });
});
