import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  LISTENER_TYPE,
  PUSH_ORDER,
  ROUTE_TYPE,
  SECRET_TYPE,
  decodeResource,
  makeSnapshot,
  type AckEvent,
  type NackEvent,
  type SendEvent,
} from '../../src/xds/index.js';
import {
  FULL_SUBSCRIPTION,
  SotwClient,
  cluster,
  endpoints,
  fullSnapshot,
  listener,
  newChannel,
  route,
  secret,
  startServer,
  waitUntil,
} from './helpers.js';

const node = (id: string) => ({
  id,
  cluster: 'hello.default',
  metadata: { NAMESPACE: 'default', LABELS: { app: 'hello', version: 'v1' }, NETWORK: 'network1' },
  locality: { region: 'r1', zone: 'z1' },
  user_agent_name: 'envoy',
});

/** Subscribes to the five types one by one, ACKing each first response, like Envoy does. */
async function subscribeAll(c: SotwClient, version: string): Promise<void> {
  for (const [typeUrl, names] of FULL_SUBSCRIPTION) {
    c.request(typeUrl, names);
    const r = await c.next(typeUrl);
    assert.equal(r.version_info, version);
    c.ack(r);
  }
}

test('SotW: connect, receive, ACK, status, then a new version reaches the proxy', async (t) => {
  let clock = 1_000;
  const h = await startServer({ xds: { now: () => clock } });
  t.after(() => h.close());
  const acks: AckEvent[] = [];
  const connects: string[] = [];
  const disconnects: string[] = [];
  h.xds.on('ack', (e) => acks.push(e));
  h.xds.on('connect', (e) => connects.push(e.proxy.node.id));
  h.xds.on('disconnect', (e) => disconnects.push(e.proxy.node.id));
  h.cache.setSnapshot('n1', fullSnapshot('v1'));

  const c = new SotwClient(newChannel(h.address), node('n1'));
  c.request(CLUSTER_TYPE);
  const cds = await c.next(CLUSTER_TYPE);
  assert.equal(cds.version_info, 'v1');
  assert.equal(cds.type_url, CLUSTER_TYPE);
  assert.ok(cds.nonce.length > 0);
  assert.deepEqual(cds.resources.map((a) => decodeResource(a)['name']), ['c1']);
  clock = 1_250;
  c.ack(cds);
  for (const [typeUrl, names] of FULL_SUBSCRIPTION.slice(1)) {
    c.request(typeUrl, names);
    c.ack(await c.next(typeUrl));
  }
  await waitUntil(() => acks.length === 5, '5 ACKs');
  assert.deepEqual(connects, ['n1']);
  assert.equal(acks[0]!.typeUrl, CLUSTER_TYPE);
  assert.equal(acks[0]!.version, 'v1');
  assert.equal(acks[0]!.ackedAt - acks[0]!.sentAt, 250, 'ACK latency from the injected clock');

  const [st] = h.xds.status();
  assert.ok(st);
  assert.equal(st.protocol, 'sotw');
  assert.equal(st.node.id, 'n1');
  assert.equal(st.node.cluster, 'hello.default');
  assert.deepEqual(st.node.metadata, node('n1').metadata);
  assert.deepEqual(st.node.locality, { region: 'r1', zone: 'z1' });
  assert.equal(st.node.userAgent, 'envoy');
  assert.equal(st.connectedSince, 1_000);
  assert.deepEqual(st.types.map((x) => x.typeUrl), PUSH_ORDER);
  for (const ts of st.types) {
    assert.equal(ts.versionSent, 'v1');
    assert.equal(ts.versionAcked, 'v1');
    assert.ok(ts.nonce);
    assert.equal(ts.lastNack, undefined);
  }
  assert.equal(st.types[0]!.wildcard, true);
  assert.deepEqual(st.types[1]!.names, ['c1']);

  h.cache.setSnapshot('n1', fullSnapshot('v2'));
  for (const typeUrl of PUSH_ORDER) {
    const r = await c.next(typeUrl);
    assert.equal(r.version_info, 'v2');
    c.ack(r);
  }
  await waitUntil(() => h.xds.status()[0]!.types.every((x) => x.versionAcked === 'v2'), 'v2 ACKed');
  assert.equal(c.state.get(ROUTE_TYPE)?.get('r1')?.['virtual_hosts'] instanceof Array, true);

  c.close();
  await waitUntil(() => h.xds.streamCount() === 0 && h.cache.watchCount() === 0, 'stream and watches gone');
  assert.deepEqual(disconnects, ['n1']);
  assert.deepEqual(h.xds.status(), []);
});

test('SotW: all five types changing at once are sent CDS, EDS, LDS, RDS, SDS', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  h.cache.setSnapshot('n1', fullSnapshot('v1'));
  const c = new SotwClient(newChannel(h.address), node('n1'));
  await subscribeAll(c, 'v1');

  // Set in reverse order within one tick: the server must still send in push order.
  const v2 = fullSnapshot('v2');
  for (const typeUrl of [...PUSH_ORDER].reverse()) {
    h.cache.setResources('n1', typeUrl, 'v2', v2.get(typeUrl)!);
  }
  const order: string[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await c.next();
    order.push(r.type_url);
    c.ack(r);
  }
  assert.deepEqual(order, [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE]);
  c.close();
});

test('SotW: a NACK is recorded and logged, the rejected version is not resent, a newer one is', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const nacks: NackEvent[] = [];
  const sends: SendEvent[] = [];
  h.xds.on('nack', (e) => nacks.push(e));
  h.xds.on('send', (e) => sends.push(e));
  h.cache.setSnapshot('n1', fullSnapshot('v1'));
  const c = new SotwClient(newChannel(h.address), node('n1'));
  await subscribeAll(c, 'v1');

  h.cache.setResources('n1', CLUSTER_TYPE, 'v2', [cluster('c1', 'bad')]);
  const bad = await c.next(CLUSTER_TYPE);
  assert.equal(bad.version_info, 'v2');
  c.nack(bad, 'cluster c1: invalid thing');
  await waitUntil(() => nacks.length === 1, 'the NACK event');
  assert.equal(nacks[0]!.version, 'v2');
  assert.equal(nacks[0]!.versionAcked, 'v1');
  assert.equal(nacks[0]!.message, 'cluster c1: invalid thing');
  assert.equal(nacks[0]!.nodeId, 'n1');
  const cdsStatus = h.xds.status()[0]!.types[0]!;
  assert.equal(cdsStatus.versionSent, 'v2');
  assert.equal(cdsStatus.versionAcked, 'v1', 'the proxy keeps running v1');
  assert.equal(cdsStatus.lastNack?.version, 'v2');
  assert.equal(cdsStatus.lastNack?.message, 'cluster c1: invalid thing');
  const warn = h.logs.find((l) => l.level === 'warn' && /NACK/.test(l.msg));
  assert.ok(warn, 'NACK logged');
  assert.equal(warn.obj['node'], 'n1');
  assert.equal(warn.obj['type'], 'CDS');
  assert.equal(warn.obj['error'], 'cluster c1: invalid thing');

  // The proxy repeats its NACK (Envoy does on resubscription): still no resend. Then another type
  // changes; had CDS been resent, it would arrive first (push order), so getting EDS proves it was not.
  c.nack(bad, 'cluster c1: invalid thing');
  h.cache.setResources('n1', ENDPOINT_TYPE, 'v2', [endpoints('c1', ['10.0.0.9'])]);
  const next = await c.next();
  assert.equal(next.type_url, ENDPOINT_TYPE);
  c.ack(next);
  assert.equal(sends.filter((s) => s.typeUrl === CLUSTER_TYPE && s.version === 'v2').length, 1);
  assert.equal(nacks.length, 1, 'a repeated NACK of the same nonce counts once');

  h.cache.setResources('n1', CLUSTER_TYPE, 'v3', [cluster('c1', 'good')]);
  const good = await c.next(CLUSTER_TYPE);
  assert.equal(good.version_info, 'v3');
  c.ack(good);
  await waitUntil(() => h.xds.status()[0]!.types[0]!.versionAcked === 'v3', 'v3 ACKed');
  assert.equal(h.xds.status()[0]!.types[0]!.lastNack?.version, 'v2', 'the last NACK stays visible');
  assert.equal(c.pending(), 0);
  c.close();
});

test('SotW: EDS honours resource names; a wider subscription is answered at the same version with what is new (incremental EDS)', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  h.cache.setResources('n1', ENDPOINT_TYPE, 'e1', [
    endpoints('c1', ['10.0.0.1']),
    endpoints('c2', ['10.0.0.2']),
    endpoints('c3', ['10.0.0.3']),
  ]);
  const c = new SotwClient(newChannel(h.address), node('n1'));
  c.request(ENDPOINT_TYPE, ['c1']);
  const r1 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(r1.resources.map((a) => decodeResource(a)['cluster_name']), ['c1']);
  c.ack(r1);
  c.request(ENDPOINT_TYPE, ['c1', 'c2', 'missing']);
  const r2 = await c.next(ENDPOINT_TYPE);
  assert.equal(r2.version_info, 'e1');
  // c1 was sent already and has not changed: a SotW EDS response need not repeat it (Envoy keeps it).
  assert.deepEqual(r2.resources.map((a) => decodeResource(a)['cluster_name']).sort(), ['c2']);
  c.ack(r2);
  // One CLA changes: only it is sent.
  h.cache.setResources('n1', ENDPOINT_TYPE, 'e2', [endpoints('c1', ['10.0.0.9']), endpoints('c2', ['10.0.0.2']), endpoints('c3', ['10.0.0.3'])]);
  const r3 = await c.next(ENDPOINT_TYPE);
  assert.equal(r3.version_info, 'e2');
  assert.deepEqual(r3.resources.map((a) => decodeResource(a)['cluster_name']), ['c1']);
  c.ack(r3);
  assert.deepEqual([...c.state.get(ENDPOINT_TYPE)!.keys()].sort(), ['c1', 'c2'], 'the client kept c2');
  // Unsubscribed names are forgotten: subscribing again sends them again.
  c.request(ENDPOINT_TYPE, ['c1']);
  c.ack(await c.next(ENDPOINT_TYPE));
  c.request(ENDPOINT_TYPE, ['c1', 'c2']);
  const r5 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(r5.resources.map((a) => decodeResource(a)['cluster_name']), ['c2']);
  c.close();
});

test('SotW: each resource is serialized once; two proxies get the very same bytes object', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const sends: SendEvent[] = [];
  h.xds.on('send', (e) => sends.push(e));
  const shared = makeSnapshot({
    [CLUSTER_TYPE]: { version: 'v1', resources: [cluster('c1'), cluster('c2')] },
    [LISTENER_TYPE]: { version: 'v1', resources: [listener('l1', 'r1')] },
    [ROUTE_TYPE]: { version: 'v1', resources: [route('r1', 'c1')] },
    [SECRET_TYPE]: { version: 'v1', resources: [secret('root')] },
  });
  h.cache.setSnapshot('a', shared);
  h.cache.setSnapshot('b', shared);
  const ch = newChannel(h.address);
  const a = new SotwClient(ch, node('a'));
  const b = new SotwClient(ch, node('b'));
  a.request(CLUSTER_TYPE);
  b.request(CLUSTER_TYPE);
  const [ra, rb] = await Promise.all([a.next(CLUSTER_TYPE), b.next(CLUSTER_TYPE)]);
  assert.deepEqual(ra.resources, rb.resources, 'same bytes on the wire');
  const sa = sends.find((s) => s.nodeId === 'a')!.response;
  const sb = sends.find((s) => s.nodeId === 'b')!.response;
  assert.ok('version_info' in sa && 'version_info' in sb);
  assert.equal(sa.resources.length, 2);
  for (let i = 0; i < 2; i++) {
    assert.equal(sa.resources[i], sb.resources[i], 'same Any object in both responses');
    assert.equal(sa.resources[i]!.value, shared.get(CLUSTER_TYPE)!.resources.get(`c${i + 1}`)!.any.value);
  }
  a.close();
  b.close();
});
