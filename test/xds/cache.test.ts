import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  SnapshotCache,
  makeSnapshot,
  resourceName,
  type TypeSnapshot,
} from '../../src/xds/index.js';
import { cluster, endpoints } from './helpers.js';

test('makeResource serializes once and names resources per type', () => {
  const c = cluster('c1');
  assert.equal(c.name, 'c1');
  assert.equal(c.any.type_url, CLUSTER_TYPE);
  assert.equal(cluster('c1').version, c.version, 'same content, same resource version');
  assert.notEqual(cluster('c1', '', { connect_timeout: '2s' }).version, c.version);
  assert.equal(endpoints('c1', ['10.0.0.1']).name, 'c1', 'EDS resources are named by cluster_name');
  assert.throws(() => resourceName(CLUSTER_TYPE, {}), /has no name/);
});

test('watches wake on a new version of their node and type only, and cancel cleanly', () => {
  const cache = new SnapshotCache();
  const seen: string[] = [];
  const cancelA = cache.watch('a', CLUSTER_TYPE, (s) => seen.push(`a:${s.version}`));
  const cancelB = cache.watch('b', CLUSTER_TYPE, (s) => seen.push(`b:${s.version}`));
  cache.watch('a', ENDPOINT_TYPE, (s) => seen.push(`a-eds:${s.version}`))();
  assert.equal(cache.watchCount(), 2);

  const v1 = makeSnapshot({ [CLUSTER_TYPE]: { version: 'v1', resources: [cluster('c1')] } });
  cache.setSnapshot('a', v1);
  cache.setSnapshot('a', v1); // same version: nobody wakes
  cache.setResources('a', ENDPOINT_TYPE, 'e1', [endpoints('c1', ['10.0.0.1'])]);
  cache.setResources('b', CLUSTER_TYPE, 'v2', [cluster('c2')]);
  assert.deepEqual(seen, ['a:v1', 'b:v2']);
  assert.equal(cache.get('a', CLUSTER_TYPE)?.version, 'v1');
  assert.equal(cache.get('a', ENDPOINT_TYPE)?.version, 'e1');

  cancelA();
  cancelA();
  cancelB();
  assert.equal(cache.watchCount(), 0);
  assert.equal(cache.watchCount('a'), 0);
  cache.setResources('a', CLUSTER_TYPE, 'v3', []);
  assert.deepEqual(seen, ['a:v1', 'b:v2']);
});

test('one snapshot object can serve many nodes with the same resource bytes', () => {
  const cache = new SnapshotCache();
  const snap = makeSnapshot({ [CLUSTER_TYPE]: { version: 'v1', resources: [cluster('c1')] } });
  cache.setSnapshot('a', snap);
  cache.setSnapshot('b', snap);
  assert.equal(cache.get('a', CLUSTER_TYPE)?.resources.get('c1')?.any.value, cache.get('b', CLUSTER_TYPE)?.resources.get('c1')?.any.value);
});

test('a throwing listener does not stop the others, and the error reaches the setter', () => {
  const cache = new SnapshotCache();
  const seen: TypeSnapshot[] = [];
  const c1 = cache.watch('a', CLUSTER_TYPE, () => {
    throw new Error('boom');
  });
  const c2 = cache.watch('a', CLUSTER_TYPE, (s) => seen.push(s));
  assert.throws(() => cache.setResources('a', CLUSTER_TYPE, 'v1', [cluster('c1')]), /boom/);
  assert.equal(seen.length, 1);
  c1();
  c2();
  assert.throws(
    () => makeSnapshot({ [CLUSTER_TYPE]: { version: 'v1', resources: [cluster('c1'), cluster('c1')] } }),
    /duplicate resource name/,
  );
});
