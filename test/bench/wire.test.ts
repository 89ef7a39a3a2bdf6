/**
 * The simulated proxies' ADS wire code (bench/lib/wire.ts): requests put together from parts must
 * be the very bytes grpc-js' serializer (protobufjs) writes for the same object, and the in-place
 * scans must find what protobufjs decodes in responses the control plane's encoder wrote.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adsServiceDefinition, CLUSTER_TYPE, ENDPOINT_TYPE, encodeResource, SECRET_TYPE, type NodeMsg } from '../../src/xds/index.js';
import { deltaRequest, NameTable, NamesCache, ResponseScan, scanDelta, scanSotw, sotwRequest, stringsField } from '../../bench/lib/wire.js';

const def = adsServiceDefinition();
const sotw = (m: unknown): Buffer => (def.StreamAggregatedResources.requestSerialize as (v: unknown) => Buffer)(m);
const delta = (m: unknown): Buffer => (def.DeltaAggregatedResources.requestSerialize as (v: unknown) => Buffer)(m);
const join = (parts: Uint8Array[]): Buffer => Buffer.concat(parts);

const node: NodeMsg = { id: 'sidecar~127.0.0.1~bench-0.default~default.svc.cluster.local', cluster: 'cluster-1', metadata: { NAMESPACE: 'default', LABELS: { app: 'bench-client' } } };
const many = Array.from({ length: 300 }, (_, i) => `outbound|80||svc-${i}.default.svc.cluster.local`);

describe('bench wire: requests', () => {
  it('SotW requests are the bytes protobufjs writes for the same object', () => {
    const nodeField = sotw({ node });
    const cases: [string, Buffer | undefined, string[], string, string][] = [
      ['', nodeField, [], CLUSTER_TYPE, ''],
      ['', undefined, ['ROOTCA'], SECRET_TYPE, ''],
      ['2026-12-05T03:00:00Z/17', undefined, many, ENDPOINT_TYPE, 'nonce-42'],
      ['v1', nodeField, ['ünïcode-名前', 'b'], ENDPOINT_TYPE, 'n'],
    ];
    for (const [version, nf, names, type, nonce] of cases) {
      const want = sotw({ type_url: type, resource_names: names, version_info: version, response_nonce: nonce, ...(nf ? { node } : {}) });
      assert.deepEqual(join(sotwRequest(version, nf, stringsField(3, names), type, nonce)), want, `${type} ${names.length} names`);
    }
  });

  it('delta requests are the bytes protobufjs writes for the same object', () => {
    const nodeField = delta({ node });
    assert.deepEqual(join(deltaRequest(nodeField, CLUSTER_TYPE, stringsField(3, []))), delta({ node, type_url: CLUSTER_TYPE, resource_names_subscribe: [] }));
    assert.deepEqual(join(deltaRequest(nodeField, SECRET_TYPE, stringsField(3, ['ROOTCA']))), delta({ node, type_url: SECRET_TYPE, resource_names_subscribe: ['ROOTCA'] }));
    assert.deepEqual(join(deltaRequest(undefined, ENDPOINT_TYPE, undefined, undefined, 'nonce-7')), delta({ type_url: ENDPOINT_TYPE, response_nonce: 'nonce-7' }));
    assert.deepEqual(join(deltaRequest(undefined, ENDPOINT_TYPE, undefined, undefined, '')), delta({ type_url: ENDPOINT_TYPE, response_nonce: '' }));
    assert.deepEqual(
      join(deltaRequest(undefined, ENDPOINT_TYPE, stringsField(3, many), stringsField(4, ['gone-1', 'gone-2']))),
      delta({ type_url: ENDPOINT_TYPE, resource_names_subscribe: many, resource_names_unsubscribe: ['gone-1', 'gone-2'] }),
    );
  });

  it('NamesCache shares one encoding per list of ids, in order', () => {
    const table = new NameTable();
    const ids = many.map((n) => table.idOfName(n));
    const cache = new NamesCache((id) => table.names[id]!, 4);
    const a = cache.get(3, ids);
    assert.equal(cache.get(3, [...ids]), a, 'same list, same buffer');
    assert.deepEqual(a, stringsField(3, many));
    const reversed = cache.get(3, [...ids].reverse());
    assert.notEqual(reversed, a);
    assert.deepEqual(reversed, stringsField(3, [...many].reverse()));
    assert.deepEqual(cache.get(4, ids), stringsField(4, many), 'the field number is part of the key');
    for (let k = 0; k < 10; k++) assert.deepEqual(cache.get(3, ids.slice(k)), stringsField(3, many.slice(k)), 'still right once the cache was cleared');
  });
});

describe('bench wire: responses', () => {
  const cluster = (name: string): Buffer => encodeResource(CLUSTER_TYPE, { name, type: 'EDS', eds_cluster_config: { service_name: name } });

  it('scanSotw finds version, type, nonce and each resource name and value in place', () => {
    const names = ['outbound|80||a.default.svc.cluster.local', 'outbound|80||b.default.svc.cluster.local', 'blackhole'];
    const resources = names.map((n) => ({ type_url: CLUSTER_TYPE, value: cluster(n) }));
    const body = def.StreamAggregatedResources.responseSerialize({ version_info: 'v7', resources, type_url: CLUSTER_TYPE, nonce: 'n9' } as never);
    // Inside a larger buffer, as a message is handed over when it arrived whole with others.
    const b = Buffer.concat([Buffer.from('junk!'), body, Buffer.from('more')]);
    const scan = new ResponseScan();
    scanSotw(b, 5, 5 + body.length, scan);
    assert.equal(scan.version, 'v7');
    assert.equal(scan.typeUrl, CLUSTER_TYPE);
    assert.equal(scan.nonce, 'n9');
    assert.equal(scan.count, 3);
    const table = new NameTable();
    for (let k = 0; k < 3; k++) {
      const r = scan.res;
      assert.equal(b.toString('utf8', r[4 * k]!, r[4 * k + 1]!), names[k]);
      assert.deepEqual(b.subarray(r[4 * k + 2]!, r[4 * k + 3]!), resources[k]!.value);
      const id = table.idOf(b, r[4 * k]!, r[4 * k + 1]!);
      assert.equal(table.names[id], names[k]);
      assert.equal(table.idOfName(names[k]!), id, 'the same name from a string or from bytes');
    }
  });

  it('scanDelta finds resources (with and without a body) and removed names; grows past its initial room', () => {
    const n = 600;
    const resources = Array.from({ length: n }, (_, i) => ({ name: `c-${i}`, version: `${i}`, resource: i % 100 === 0 ? null : { type_url: CLUSTER_TYPE, value: cluster(`c-${i}`) } }));
    const removed = Array.from({ length: 70 }, (_, i) => `gone-${i}`);
    const b = def.DeltaAggregatedResources.responseSerialize({ system_version_info: 's1', resources, type_url: CLUSTER_TYPE, removed_resources: removed, nonce: 'n1' } as never);
    const scan = new ResponseScan();
    scanDelta(b, 0, b.length, scan);
    assert.equal(scan.version, 's1');
    assert.equal(scan.nonce, 'n1');
    assert.equal(scan.typeUrl, CLUSTER_TYPE);
    assert.equal(scan.count, n);
    for (let i = 0; i < n; i++) {
      assert.equal(b.toString('utf8', scan.res[4 * i]!, scan.res[4 * i + 1]!), `c-${i}`);
      if (i % 100 === 0) assert.equal(scan.res[4 * i + 2], -1, 'no resource body');
      else assert.deepEqual(b.subarray(scan.res[4 * i + 2]!, scan.res[4 * i + 3]!), cluster(`c-${i}`));
    }
    assert.equal(scan.removedCount, removed.length);
    for (let i = 0; i < removed.length; i++) assert.equal(b.toString('utf8', scan.removed[2 * i]!, scan.removed[2 * i + 1]!), removed[i]);
    // Reused for the next response: nothing left over.
    const small = def.DeltaAggregatedResources.responseSerialize({ system_version_info: '', resources: [], type_url: ENDPOINT_TYPE, removed_resources: [], nonce: 'n2' } as never);
    scanDelta(small, 0, small.length, scan);
    assert.equal(scan.count, 0);
    assert.equal(scan.removedCount, 0);
    assert.equal(scan.typeUrl, ENDPOINT_TYPE);
  });

  it('a truncated response is an error, not a wrong answer', () => {
    const body = def.StreamAggregatedResources.responseSerialize({ version_info: 'v', resources: [{ type_url: CLUSTER_TYPE, value: cluster('x') }], type_url: CLUSTER_TYPE, nonce: 'n' } as never);
    assert.throws(() => scanSotw(body, 0, body.length - 20, new ResponseScan()), /overruns|truncated/);
  });

  it('NameTable keeps names with the same hash bucket apart', () => {
    const table = new NameTable();
    const ids = new Set<number>();
    for (let i = 0; i < 20_000; i++) ids.add(table.idOfName(`svc-${i}`));
    assert.equal(ids.size, 20_000);
    assert.equal(table.idOfName('svc-12345'), table.idOf(Buffer.from('xsvc-12345'), 1, 10));
  });
});
