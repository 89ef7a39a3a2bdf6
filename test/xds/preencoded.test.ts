// Response bodies encoded once: the serializer's output with pre-encoded resources must decode to
// the same message as encoding it whole, and a shared map is encoded once for every stream.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adsServiceDefinition, layeredTypeSnapshot, typeSnapshot, type DeltaDiscoveryResponseMsg, type DiscoveryResponseMsg, type SendEvent } from '../../src/xds/index.js';
import { deltaAllBytes, deltaResourceBytes, PREENCODED, serializeResponse, sotwAllBytes, sotwResourceBytes, type Preencoded } from '../../src/xds/preencoded.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE } from '../../src/mesh/typeurls.js';
import { cluster, DeltaClient, endpoints, newChannel, SotwClient, startServer } from './helpers.js';

const ads = adsServiceDefinition();

test('SotW: pre-encoded resources decode exactly like a whole encoding', () => {
  const base = typeSnapshot('v1', [cluster('a'), cluster('b')]);
  const ts = layeredTypeSnapshot(base, [cluster('own')]);
  const resources = [...ts.resources.values()].map((r) => r.any);
  const plain: DiscoveryResponseMsg = { version_info: ts.version, resources, type_url: CLUSTER_TYPE, nonce: 'n1' };
  const pre: DiscoveryResponseMsg & Preencoded = { ...plain, [PREENCODED]: sotwAllBytes(ts) };
  const decoded = ads.StreamAggregatedResources.responseDeserialize(serializeResponse('sotw', pre));
  assert.deepEqual(decoded, ads.StreamAggregatedResources.responseDeserialize(serializeResponse('sotw', plain)));
  assert.deepEqual(decoded.resources.map((r) => Buffer.from(r.value)), resources.map((r) => Buffer.from(r.value)));
  // The shared map's bytes are one object for every layered snapshot over it.
  const other = layeredTypeSnapshot(base, [cluster('mine')]);
  assert.equal(sotwAllBytes(other)[0], sotwAllBytes(ts)[0]);
  assert.equal(sotwResourceBytes(resources[0]!), sotwResourceBytes(resources[0]!));
  const one: DiscoveryResponseMsg & Preencoded = { ...plain, resources: [resources[1]!], [PREENCODED]: [sotwResourceBytes(resources[1]!)] };
  assert.deepEqual(ads.StreamAggregatedResources.responseDeserialize(serializeResponse('sotw', one)).resources.map((r) => r.type_url), [CLUSTER_TYPE]);
});

test('delta: pre-encoded resources keep names, versions and removals', () => {
  const ts = typeSnapshot('v2', [cluster('a'), cluster('b')]);
  const rs = [...ts.resources.values()];
  const plain: DeltaDiscoveryResponseMsg = {
    system_version_info: 'v2',
    resources: rs.map((r) => ({ name: r.name, version: r.version, resource: r.any })),
    type_url: CLUSTER_TYPE,
    removed_resources: ['gone'],
    nonce: 'n2',
  };
  const whole = ads.DeltaAggregatedResources.responseDeserialize(serializeResponse('delta', plain));
  const all = ads.DeltaAggregatedResources.responseDeserialize(serializeResponse('delta', { ...plain, [PREENCODED]: deltaAllBytes(ts) } as DeltaDiscoveryResponseMsg));
  const each = ads.DeltaAggregatedResources.responseDeserialize(serializeResponse('delta', { ...plain, [PREENCODED]: rs.map(deltaResourceBytes) } as DeltaDiscoveryResponseMsg));
  assert.deepEqual(all, whole);
  assert.deepEqual(each, whole);
  assert.deepEqual(whole.removed_resources, ['gone']);
  assert.deepEqual(whole.resources.map((r) => [r.name, r.version]), rs.map((r) => [r.name, r.version]));
});

test('server: streams sharing one snapshot send the same pre-encoded bytes, and only the diff after a change', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const sends: SendEvent[] = [];
  h.xds.on('send', (e) => sends.push(e));
  const names = ['a', 'b', 'c'];
  const v1 = typeSnapshot('e1', names.map((n, i) => endpoints(n, [`10.0.0.${i + 1}`])));
  for (const id of ['s1', 's2', 'd1', 'd2']) h.cache.setResources(id, ENDPOINT_TYPE, 'e1', v1);
  const node = (id: string) => ({ id, metadata: { NAMESPACE: 'default' } });
  const sotw = ['s1', 's2'].map((id) => new SotwClient(newChannel(h.address), node(id), { autoAck: true }));
  const delta = ['d1', 'd2'].map((id) => new DeltaClient(newChannel(h.address), node(id), { autoAck: true }));
  for (const c of sotw) c.request(ENDPOINT_TYPE, names);
  for (const c of delta) c.subscribe(ENDPOINT_TYPE, names);
  for (const c of [...sotw, ...delta]) await c.next(ENDPOINT_TYPE);
  const bodies = (protocol: string) => sends.filter((e) => e.protocol === protocol).map((e) => (e.response as Preencoded)[PREENCODED]![0]);
  assert.equal(bodies('sotw').length, 2);
  assert.equal(bodies('sotw')[0], bodies('sotw')[1], 'one encoding of the whole snapshot for both SotW streams');
  assert.equal(bodies('delta')[0], bodies('delta')[1], 'and one for both delta streams');
  // One assignment changes: every stream gets just that one, encoded once.
  sends.length = 0;
  const v2 = typeSnapshot('e2', [...v1.resources.values()].map((r) => (r.name === 'b' ? endpoints('b', ['10.0.9.9']) : r)));
  for (const id of ['s1', 's2', 'd1', 'd2']) h.cache.setResources(id, ENDPOINT_TYPE, 'e2', v2);
  const next = await Promise.all([...sotw, ...delta].map((c) => c.next(ENDPOINT_TYPE)));
  for (const r of next) assert.deepEqual(r.resources.length, 1);
  assert.equal(bodies('sotw').length, 2);
  assert.equal(bodies('sotw')[0], bodies('sotw')[1], 'the changed assignment encoded once for SotW');
  assert.equal(bodies('delta')[0], bodies('delta')[1], 'and once for delta');
  // The send event tells the push queue how many resource bytes each response carries.
  for (const e of sends) assert.equal(e.bytes, (e.response as Preencoded)[PREENCODED]!.reduce((n, b) => n + b.length, 0));
  assert.equal(sends.find((e) => e.protocol === 'sotw')!.bytes, sotwResourceBytes(v2.resources.get('b')!.any).length);
  // Written as shared parts straight onto the HTTP/2 stream, not copied per stream through
  // grpc-js (directsend.ts); this fails if a grpc-js upgrade changes what directWriter relies on.
  assert.deepEqual(h.xds.writes, { direct: 8, copied: 0 });
  // And their requests were read from the HTTP/2 chunks, not through grpc-js' decoder (directrecv.ts).
  assert.deepEqual(h.xds.reads, { direct: 4, copied: 0 });
  for (const c of [...sotw, ...delta]) c.close();
});
