import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  PUSH_ORDER,
  decodeResource,
  type NackEvent,
  type SendEvent,
} from '../../src/xds/index.js';
import { DeltaClient, FULL_SUBSCRIPTION, cluster, endpoints, fullSnapshot, newChannel, startServer, waitUntil } from './helpers.js';

const node = (id: string) => ({ id, metadata: { NAMESPACE: 'default' } });

test('delta: wildcard CDS gets everything, then only the changed resource and the removals', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  h.cache.setResources('n1', CLUSTER_TYPE, 'v1', [cluster('c1'), cluster('c2'), cluster('c3')]);
  const c = new DeltaClient(newChannel(h.address), node('n1'));
  c.subscribe(CLUSTER_TYPE);
  const r1 = await c.next(CLUSTER_TYPE);
  assert.equal(r1.system_version_info, 'v1');
  assert.deepEqual(r1.resources.map((r) => r.name).sort(), ['c1', 'c2', 'c3']);
  assert.deepEqual(r1.removed_resources, []);
  assert.equal(decodeResource(r1.resources[0]!.resource!)['name'], r1.resources[0]!.name);
  c.ack(r1);
  await waitUntil(() => h.xds.status()[0]?.types[0]?.versionAcked === 'v1', 'v1 ACKed');
  assert.equal(h.xds.status()[0]!.protocol, 'delta');

  // c1 changes, c2 stays byte-identical, c3 goes away.
  h.cache.setResources('n1', CLUSTER_TYPE, 'v2', [cluster('c1', 'changed'), cluster('c2')]);
  const r2 = await c.next(CLUSTER_TYPE);
  assert.equal(r2.system_version_info, 'v2');
  assert.deepEqual(r2.resources.map((r) => r.name), ['c1']);
  assert.equal(decodeResource(r2.resources[0]!.resource!)['alt_stat_name'], 'c1changed');
  assert.deepEqual(r2.removed_resources, ['c3']);
  c.ack(r2);
  await waitUntil(() => h.xds.status()[0]?.types[0]?.versionAcked === 'v2', 'v2 ACKed');

  // A new version that changes nothing for this proxy sends nothing.
  h.cache.setResources('n1', CLUSTER_TYPE, 'v3', [cluster('c1', 'changed'), cluster('c2')]);
  h.cache.setResources('n1', CLUSTER_TYPE, 'v4', [cluster('c1', 'changed'), cluster('c2'), cluster('c4')]);
  const r4 = await c.next(CLUSTER_TYPE);
  assert.equal(r4.system_version_info, 'v4');
  assert.deepEqual(r4.resources.map((r) => r.name), ['c4']);
  assert.deepEqual(r4.removed_resources, []);
  c.close();
});

test('delta: initial_resource_versions on reconnect skip what the proxy already has', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const c1 = cluster('c1');
  h.cache.setResources('n1', CLUSTER_TYPE, 'v1', [c1, cluster('c2'), cluster('c3')]);
  const c = new DeltaClient(newChannel(h.address), node('n1'));
  c.subscribe(CLUSTER_TYPE, [], { c1: c1.version, c2: 'outdated', gone: 'whatever' });
  const r = await c.next(CLUSTER_TYPE);
  assert.deepEqual(r.resources.map((x) => x.name).sort(), ['c2', 'c3']);
  assert.deepEqual(r.removed_resources, ['gone']);
  c.ack(r);
  c.close();
});

test('delta: named EDS subscriptions, subscribe and unsubscribe', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const sends: SendEvent[] = [];
  h.xds.on('send', (e) => sends.push(e));
  h.cache.setResources('n1', ENDPOINT_TYPE, 'e1', [endpoints('a', ['10.0.0.1']), endpoints('b', ['10.0.0.2'])]);
  const c = new DeltaClient(newChannel(h.address), node('n1'));
  c.subscribe(ENDPOINT_TYPE, ['a']);
  const r1 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(r1.resources.map((x) => x.name), ['a']);
  c.ack(r1);
  c.subscribe(ENDPOINT_TYPE, ['b']);
  const r2 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(r2.resources.map((x) => x.name), ['b']);
  c.ack(r2);
  c.unsubscribe(ENDPOINT_TYPE, ['a']);
  await waitUntil(() => h.xds.status()[0]!.types[0]!.names.join() === 'b', 'the unsubscription processed');
  // Both change; only b is still wanted.
  h.cache.setResources('n1', ENDPOINT_TYPE, 'e2', [endpoints('a', ['10.0.1.1']), endpoints('b', ['10.0.1.2'])]);
  const r3 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(r3.resources.map((x) => x.name), ['b']);
  assert.deepEqual(r3.removed_resources, []);
  c.ack(r3);
  // b is deleted: the proxy is told.
  h.cache.setResources('n1', ENDPOINT_TYPE, 'e3', [endpoints('a', ['10.0.1.1'])]);
  const r4 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(r4.resources, []);
  assert.deepEqual(r4.removed_resources, ['b']);
  c.ack(r4);
  assert.equal(sends.length, 4);
  c.close();
});

test('delta: NACK is recorded, the rejected resource is not resent, a newer version is', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const nacks: NackEvent[] = [];
  h.xds.on('nack', (e) => nacks.push(e));
  h.cache.setResources('n1', CLUSTER_TYPE, 'v1', [cluster('c1')]);
  h.cache.setResources('n1', ENDPOINT_TYPE, 'e1', [endpoints('c1', ['10.0.0.1'])]);
  const c = new DeltaClient(newChannel(h.address), node('n1'));
  c.subscribe(CLUSTER_TYPE);
  c.ack(await c.next(CLUSTER_TYPE));
  c.subscribe(ENDPOINT_TYPE, ['c1']);
  c.ack(await c.next(ENDPOINT_TYPE));

  h.cache.setResources('n1', CLUSTER_TYPE, 'v2', [cluster('c1', 'bad')]);
  const bad = await c.next(CLUSTER_TYPE);
  c.nack(bad, 'bad cluster');
  await waitUntil(() => nacks.length === 1, 'the NACK');
  assert.equal(nacks[0]!.version, 'v2');
  assert.equal(nacks[0]!.versionAcked, 'v1');
  const st = h.xds.status()[0]!.types[0]!;
  assert.equal(st.versionAcked, 'v1');
  assert.equal(st.lastNack?.message, 'bad cluster');

  h.cache.setResources('n1', ENDPOINT_TYPE, 'e2', [endpoints('c1', ['10.0.0.2'])]);
  const next = await c.next();
  assert.equal(next.type_url, ENDPOINT_TYPE, 'no CDS resend before the EDS push');
  c.ack(next);

  h.cache.setResources('n1', CLUSTER_TYPE, 'v3', [cluster('c1', 'fixed')]);
  const good = await c.next(CLUSTER_TYPE);
  assert.equal(good.system_version_info, 'v3');
  assert.equal(decodeResource(good.resources[0]!.resource!)['alt_stat_name'], 'c1fixed');
  c.ack(good);
  await waitUntil(() => h.xds.status()[0]!.types[0]!.versionAcked === 'v3', 'v3 ACKed');
  c.close();
});

test('delta: a NACKed removal is not lost; the next version carries it again (and the unchanged resource the proxy still lacks)', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const nacks: NackEvent[] = [];
  h.xds.on('nack', (e) => nacks.push(e));
  h.cache.setResources('n1', CLUSTER_TYPE, 'v1', [cluster('c1'), cluster('c2')]);
  const c = new DeltaClient(newChannel(h.address), node('n1'));
  c.subscribe(CLUSTER_TYPE);
  c.ack(await c.next(CLUSTER_TYPE));

  // v2 changes c1 and removes c2; the proxy rejects the whole response and keeps c1 (old) and c2.
  h.cache.setResources('n1', CLUSTER_TYPE, 'v2', [cluster('c1', 'new')]);
  const rejected = await c.next(CLUSTER_TYPE);
  assert.deepEqual([rejected.resources.map((r) => r.name), rejected.removed_resources], [['c1'], ['c2']]);
  c.nack(rejected, 'rejected');
  await waitUntil(() => nacks.length === 1, 'the NACK');

  // An unrelated addition: the response repeats the removal and c1, which the proxy never took.
  h.cache.setResources('n1', CLUSTER_TYPE, 'v3', [cluster('c1', 'new'), cluster('c3')]);
  const next = await c.next(CLUSTER_TYPE);
  assert.equal(next.system_version_info, 'v3');
  assert.deepEqual(next.resources.map((r) => r.name).sort(), ['c1', 'c3']);
  assert.deepEqual(next.removed_resources, ['c2']);
  c.ack(next);
  await waitUntil(() => h.xds.status()[0]!.types[0]!.versionAcked === 'v3', 'v3 ACKed');
  c.close();
});

test('delta: all five types changing at once arrive in push order', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  h.cache.setSnapshot('n1', fullSnapshot('v1'));
  const c = new DeltaClient(newChannel(h.address), node('n1'));
  for (const [typeUrl, names] of FULL_SUBSCRIPTION) {
    c.subscribe(typeUrl, names);
    c.ack(await c.next(typeUrl));
  }
  h.cache.setSnapshot('n1', fullSnapshot('v2'));
  const order: string[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await c.next();
    assert.equal(r.resources.length, 1);
    order.push(r.type_url);
    c.ack(r);
  }
  assert.deepEqual(order, PUSH_ORDER);
  c.close();
});

test('delta: names added to a subscription the proxy holds are sent with what changed meanwhile, and a NACK of them is undone', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const names = Array.from({ length: 200 }, (_, i) => `c${i}`);
  const eps = (over: Record<string, string> = {}) => [...names, 'x', 'y'].map((n) => endpoints(n, [over[n] ?? '10.0.0.1']));
  h.cache.setResources('n1', ENDPOINT_TYPE, 'e1', eps());
  const c = new DeltaClient(newChannel(h.address), node('n1'));
  t.after(() => c.close());
  c.subscribe(ENDPOINT_TYPE, names);
  const r1 = await c.next(ENDPOINT_TYPE);
  assert.equal(r1.resources.length, 200);
  c.ack(r1);
  // x exists in the snapshot the proxy was last sent, yet the proxy never had it; c3 changes too.
  h.cache.setResources('n1', ENDPOINT_TYPE, 'e2', eps({ c3: '10.0.0.3' }));
  const r2 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(r2.resources.map((r) => r.name), ['c3']);
  c.ack(r2);
  c.subscribe(ENDPOINT_TYPE, ['x', 'c5']);
  h.cache.setResources('n1', ENDPOINT_TYPE, 'e3', eps({ c3: '10.0.0.3', c4: '10.0.0.4' }));
  const got = new Set<string>();
  let nacked: string[] = [];
  while (!got.has('x') || !got.has('c4')) {
    const r = await c.next(ENDPOINT_TYPE);
    for (const x of r.resources) got.add(x.name);
    assert.deepEqual(r.removed_resources, []);
    if (got.has('x') && got.has('c4')) {
      // The proxy rejects the response that completed the set: what it carried is sent again with the next version.
      nacked = r.resources.map((x) => x.name).sort();
      c.nack(r, 'rejected');
    } else c.ack(r);
  }
  assert.deepEqual([...got].sort(), ['c4', 'x'], 'the added name and the changed one; c5 was already held');
  await waitUntil(() => (h.xds.status()[0]!.types[0]!.lastNack?.message ?? '') === 'rejected', 'the NACK');
  h.cache.setResources('n1', ENDPOINT_TYPE, 'e4', eps({ c3: '10.0.0.3', c4: '10.0.0.4', y: '10.0.0.9' }));
  const r4 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(r4.resources.map((r) => r.name).sort(), nacked, 'what the NACK undid, not y (unsubscribed) nor the rest');
  c.ack(r4);
  // Dropped, then wanted again at the same version: sent again, since the proxy dropped it.
  c.unsubscribe(ENDPOINT_TYPE, ['x']);
  await waitUntil(() => !h.xds.status()[0]!.types[0]!.names.includes('x'), 'x unsubscribed');
  c.subscribe(ENDPOINT_TYPE, ['x']);
  const r5 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(r5.resources.map((r) => r.name), ['x']);
  assert.equal(r5.system_version_info, 'e4');
  c.ack(r5);
});

test('delta: a name whose change was NACKed, then dropped and wanted again, is sent with the next version', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const c = new DeltaClient(newChannel(h.address), node('n1'));
  t.after(() => c.close());
  const st = () => h.xds.status()[0]!.types[0]!;
  h.cache.setResources('n1', ENDPOINT_TYPE, 'e1', [endpoints('a', ['10.0.0.1']), endpoints('b', ['10.0.0.1'])]);
  c.subscribe(ENDPOINT_TYPE, ['a', 'b']);
  c.ack(await c.next(ENDPOINT_TYPE));
  await waitUntil(() => st().versionAcked === 'e1', 'e1 ACKed');
  h.cache.setResources('n1', ENDPOINT_TYPE, 'e2', [endpoints('a', ['10.0.0.1']), endpoints('b', ['10.0.0.2'])]);
  c.nack(await c.next(ENDPOINT_TYPE), 'bad b');
  await waitUntil(() => st().lastNack?.message === 'bad b', 'the NACK');
  c.unsubscribe(ENDPOINT_TYPE, ['b']);
  await waitUntil(() => !st().names.includes('b'), 'b dropped');
  c.subscribe(ENDPOINT_TYPE, ['b']);
  await waitUntil(() => st().names.includes('b'), 'b wanted again');
  // b is unchanged at e3, but the proxy holds no b at all (it rejected b@e2 and dropped b@e1).
  h.cache.setResources('n1', ENDPOINT_TYPE, 'e3', [endpoints('a', ['10.0.0.3']), endpoints('b', ['10.0.0.2'])]);
  const r3 = await c.next(ENDPOINT_TYPE);
  assert.equal(r3.system_version_info, 'e3');
  assert.deepEqual(r3.resources.map((r) => r.name).sort(), ['a', 'b']);
});
