// Acceptance of issue #3, in process with real gRPC over real TLS on 127.0.0.1: 50 proxies (half
// SotW, half delta) with workload certificates, a WorkloadEntry written into the config directory,
// a bad config file, and the debug endpoints. Timings are printed, never asserted.
import assert from 'node:assert/strict';
import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE, type SendEvent } from '../../src/xds/index.js';
import { channel, getJson, inSync, meshPki, sidecarNode, SimProxy, startPlane, waitUntil, workloadCert, workloadEntryYaml, workloadGroupYaml, configDir, type Plane } from './helpers.js';

const N = 50;
const HW = 'outbound|5000||helloworld.default.svc.cluster.local';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function memory(): { heap: number; rss: number } {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

describe('control plane: 50 proxies over mTLS, WorkloadEntry fast path, bad config, debug', () => {
  let plane: Plane;
  const proxies: SimProxy[] = [];
  const sends: SendEvent[] = [];

  before(async () => {
    // The sleep proxies below dial from 127.0.0.1 but register their own 127.1.1.x: the group lists those.
    plane = await startPlane({ configDir: configDir({ 'sleep-group.yaml': workloadGroupYaml('sleep', 'sleep', { app: 'sleep' }, { addresses: ['127.1.1.0/24'] }) }) });
    for (const x of plane.cp.xdsServers) x.on('send', (e) => sends.push(e));
  });
  after(() => {
    for (const p of proxies) p.close();
  });

  it('50 proxies (25 SotW, 25 delta) connect with workload certificates, get consistent snapshots and ACK', async () => {
    const { ca, root } = await meshPki();
    const cert = await workloadCert(ca, 'default', 'sleep');
    const before = memory();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const ch = channel(plane.cp.addresses.grpc, { rootPem: root.certPem, cert });
      proxies.push(new SimProxy(i % 2 === 0 ? 'sotw' : 'delta', ch, sidecarNode(i + 1)));
    }
    await waitUntil(() => proxies.every((p) => inSync(plane.cp, p.id)), 'all 50 proxies in sync', 30_000);
    const connectMs = performance.now() - t0;
    const afterConnect = memory();
    const perProxyHeap = (afterConnect.heap - before.heap) / N;
    const perProxyRss = (afterConnect.rss - before.rss) / N;
    console.log(
      `[measure] 50 proxies connected+ACKed in ${connectMs.toFixed(0)} ms; memory per connected proxy (control plane AND test clients in this process, so an upper bound): heap ${(perProxyHeap / 1024).toFixed(1)} KiB, RSS ${(perProxyRss / 1024).toFixed(1)} KiB`,
    );

    // Consistent: every SotW client holds the same CDS/EDS/LDS/RDS/SDS, referencing each other.
    for (const p of proxies.filter((x) => x.sotw)) {
      const s = p.sotw!.state;
      assert.ok(s.get(CLUSTER_TYPE)?.has(HW), `${p.id}: CDS has ${HW}`);
      const cla = s.get(ENDPOINT_TYPE)?.get(HW) as { endpoints: { lb_endpoints: unknown[] }[] } | undefined;
      assert.ok(cla, `${p.id}: EDS has ${HW}`);
      assert.equal(cla.endpoints.flatMap((e) => e.lb_endpoints).length, 1);
      assert.ok(s.get(LISTENER_TYPE)?.has('virtualOutbound'));
      assert.ok(s.get(ROUTE_TYPE)?.has('15001'));
      assert.deepEqual([...(s.get(SECRET_TYPE)?.keys() ?? [])], ['ROOTCA']);
    }
    for (const p of proxies.filter((x) => x.delta)) {
      for (const t of [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE]) {
        const mine = p.delta!.versions.get(t);
        const cached = plane.cp.cache.get(p.id, t)!;
        assert.deepEqual(new Map([...cached.resources].map(([n, r]) => [n, r.version])), mine, `${p.id} ${t}`);
      }
    }
    // Serialize once: the shared outbound CDS is the same object in every proxy's snapshot.
    const anys = new Set(proxies.map((p) => plane.cp.cache.get(p.id, CLUSTER_TYPE)!.resources.get(HW)!.any));
    assert.equal(anys.size, 1);
  });

  it('a WorkloadEntry written into the config dir reaches all 50 as EDS only; delta and SotW clients get only the changed ClusterLoadAssignment', async () => {
    const marks = proxies.map((p) => p.received.length);
    const edsBefore = new Map(proxies.map((p) => [p.id, plane.cp.cache.get(p.id, ENDPOINT_TYPE)!.version]));
    const sendMark = sends.length;
    const t0 = performance.now();
    writeFileSync(join(plane.configDir, 'helloworld-v2.yaml'), workloadEntryYaml('helloworld-v2', '127.1.0.11'));
    await waitUntil(
      () => proxies.every((p) => plane.cp.cache.get(p.id, ENDPOINT_TYPE)!.version !== edsBefore.get(p.id) && inSync(plane.cp, p.id)),
      'all 50 proxies ACK the new EDS version',
      20_000,
    );
    const ms = performance.now() - t0;
    const load = (await import('node:os')).loadavg();
    console.log(`[measure] WorkloadEntry file write → all ${N} proxies ACKed the EDS update: ${ms.toFixed(0)} ms (debounce quiet 50 ms, file watch debounce 50 ms; loadavg ${load.map((x) => x.toFixed(2)).join(' ')})`);

    for (const [i, p] of proxies.entries()) {
      const got = p.since(marks[i]!);
      assert.ok(got.length >= 1, `${p.id} got the update`);
      assert.deepEqual([...new Set(got.map((r) => r.type))], [ENDPOINT_TYPE], `${p.id}: only EDS was sent`);
      // SotW too (incremental EDS): a SotW EDS response need not repeat unchanged CLAs.
      for (const r of got) {
        assert.deepEqual(r.names, [HW], `${p.id} (${p.protocol}): only the changed CLA`);
        assert.deepEqual(r.removed, []);
      }
    }
    assert.deepEqual([...new Set(sends.slice(sendMark).map((e) => e.typeUrl))], [ENDPOINT_TYPE], 'the server sent nothing but EDS');
    // The new endpoint is there.
    const cla = proxies[0]!.sotw!.state.get(ENDPOINT_TYPE)!.get(HW) as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string } } } }[] }[] };
    const addrs = cla.endpoints.flatMap((e) => e.lb_endpoints.map((l) => l.endpoint.address.socket_address.address)).sort();
    assert.deepEqual(addrs, ['127.1.0.10', '127.1.0.11']);
    assert.equal(plane.cp.pusher.recentPushes().at(-1)?.kind, 'eds');
  });

  it('a bad config file (syntax error, invalid VirtualService) is rejected without disturbing proxies; fixing it pushes', async () => {
    const marks = proxies.map((p) => p.received.length);
    const pushes = plane.cp.pusher.pushCount;
    const streams = new Set(plane.cp.xdsServers.flatMap((x) => x.status()).map((s) => s.streamId));
    // A syntax error, and a VirtualService whose weights do not add up.
    writeFileSync(join(plane.configDir, 'broken.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: broken\n');
    const vs = (w1: number, w2: number) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
  namespace: default
spec:
  hosts: [helloworld]
  http:
  - route:
    - destination: {host: helloworld}
      weight: ${w1}
    - destination: {host: helloworld}
      weight: ${w2}
`;
    writeFileSync(join(plane.configDir, 'vs.yaml'), vs(70, 60));
    await waitUntil(() => plane.cp.store.errors().filter((e) => e.severity === 'error').length >= 2, 'both files rejected', 10_000);
    const configz = await getJson<{ errors: number; problems: { file: string; line?: number; text: string }[] }>(`${plane.debugUrl}/debug/configz`);
    assert.equal(configz.status, 200);
    assert.ok(configz.body.errors >= 2);
    assert.ok(configz.body.problems.some((p) => p.file.endsWith('broken.yaml')), JSON.stringify(configz.body.problems));
    assert.ok(configz.body.problems.some((p) => p.file.endsWith('vs.yaml') && /weight/.test(p.text) && p.line !== undefined), JSON.stringify(configz.body.problems));
    assert.ok(plane.logs.some((l) => /config rejected: .*vs\.yaml:\d+/.test(l.msg)), 'rejection logged with file:line');
    const metrics = (await getJson<string>(`${plane.debugUrl}/metrics`)).body;
    assert.match(metrics, /^isle_config_errors [1-9]/m);
    // No push, nothing sent, nobody disconnected.
    assert.equal(plane.cp.pusher.pushCount, pushes);
    assert.equal(plane.cp.pusher.busy, false);
    proxies.forEach((p, i) => assert.equal(p.received.length, marks[i], `${p.id} got nothing`));
    assert.deepEqual(new Set(plane.cp.xdsServers.flatMap((x) => x.status()).map((s) => s.streamId)), streams);

    // Fixing the VirtualService is a config change: a (full) push, whose new routes every proxy
    // receives and ACKs.
    writeFileSync(join(plane.configDir, 'vs.yaml'), vs(70, 30));
    unlinkSync(join(plane.configDir, 'broken.yaml'));
    await waitUntil(() => plane.cp.pusher.pushCount > pushes && !plane.cp.pusher.busy, 'a push after the fix', 10_000);
    await waitUntil(() => plane.cp.store.errors().filter((e) => e.severity === 'error').length === 0, 'errors cleared', 10_000);
    assert.equal(plane.cp.pusher.recentPushes().at(-1)?.kind, 'full');
    assert.deepEqual(plane.cp.pusher.recentPushes().at(-1)?.reasons, ['config']);
    assert.ok(plane.cp.store.get('VirtualService', 'default', 'helloworld'));
    await waitUntil(() => proxies.every((px) => inSync(plane.cp, px.id)), 'every proxy ACKed the new routes', 15_000);
  });

  it('debug endpoints: syncz ACKed versions, config_dump decodes, registryz shows the WorkloadEntry, metrics counters > 0, ready', async () => {
    const p = proxies[1]!;
    const syncz = await getJson<{ id: string; protocol: string; types: Record<string, { sent?: string; acked?: string }> }[]>(`${plane.debugUrl}/debug/syncz`);
    assert.equal(syncz.status, 200);
    assert.equal(syncz.body.length, N);
    const mine = syncz.body.find((s) => s.id === p.id)!;
    assert.equal(mine.protocol, 'delta');
    for (const t of ['CDS', 'EDS', 'LDS', 'RDS', 'SDS']) {
      assert.ok(mine.types[t]?.acked, `${t} acked`);
      assert.equal(mine.types[t]!.acked, mine.types[t]!.sent);
    }
    assert.equal(mine.types['EDS']!.acked, plane.cp.cache.get(p.id, ENDPOINT_TYPE)!.version);

    const dump = await getJson<Record<string, { version: string; resources: { name: string; resource: Record<string, unknown> }[] }>>(
      `${plane.debugUrl}/debug/config_dump?proxy=${encodeURIComponent(p.id)}`,
    );
    assert.equal(dump.status, 200);
    const cluster = dump.body['CDS']!.resources.find((r) => r.name === HW)!.resource;
    assert.equal(cluster['name'], HW);
    assert.equal(dump.body['SDS']!.resources[0]!.name, 'ROOTCA');
    assert.equal((await getJson(`${plane.debugUrl}/debug/config_dump?proxy=nobody`)).status, 404);

    const reg = await getJson<{ services: { hostname: string; endpoints: { workload: string; address: string }[] }[]; conflicts: unknown[]; shards: { cluster: string; stale: boolean; workloads: number }[] }>(
      `${plane.debugUrl}/debug/registryz`,
    );
    const hw = reg.body.services.find((s) => s.hostname === 'helloworld.default.svc.cluster.local')!;
    assert.deepEqual(hw.endpoints.map((e) => e.workload).sort(), ['helloworld-v1', 'helloworld-v2']);
    assert.deepEqual(reg.body.conflicts, []);
    // Both WorkloadEntries and the 50 auto-registered sidecars.
    assert.equal(reg.body.shards.find((s) => s.cluster === 'cluster-1')!.workloads, 2 + N);

    const metrics = (await getJson<string>(`${plane.debugUrl}/metrics`)).body;
    const value = (re: RegExp) => Number(re.exec(metrics)?.[1] ?? NaN);
    assert.equal(value(/^pilot_xds\{version="isle-0.1.0"\} (\d+)/m), N);
    assert.ok(value(/^pilot_xds_pushes\{type="eds"\} (\d+)/m) >= N);
    assert.ok(value(/^pilot_xds_pushes\{type="cds"\} (\d+)/m) >= N);
    assert.ok(value(/^isle_push_duration_seconds_count\{kind="eds"\} (\d+)/m) >= 1);
    assert.ok(value(/^pilot_proxy_convergence_time_count (\d+)/m) >= N);
    assert.match(metrics, /^# TYPE pilot_total_xds_rejects counter/m);
    assert.ok(value(/^pilot_push_triggers\{type="endpoints"\} (\d+)/m) >= 1);
    assert.ok(value(/^pilot_k8s_cfg_events\{type="VirtualService",event="add"\} (\d+)/m) >= 1);

    const ready = await fetch(`${plane.debugUrl}/ready`);
    assert.equal(ready.status, 200);
    await ready.text();
  });
});
