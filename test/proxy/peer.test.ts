import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalOf, localPeer, PeerDecoder, UNKNOWN_PEER } from '../../src/proxy/peer.js';
import { decodeMessage } from '../../src/xds/codec.js';

const SLEEP = 'spiffe://cluster.local/ns/default/sa/sleep';

test('the header is Istio\'s encoding: base64 of a google.protobuf.Struct', () => {
  const p = localPeer({ workload: 'sleep-v1', namespace: 'default', serviceAccount: 'sleep', cluster: 'cluster-1', labels: { app: 'sleep', version: 'v1' } });
  const s = decodeMessage('google.protobuf.Struct', Buffer.from(p.header!, 'base64'));
  assert.equal(s['NAMESPACE'], 'default');
  assert.equal(s['SERVICE_ACCOUNT'], 'sleep');
  assert.equal(s['WORKLOAD_NAME'], 'sleep-v1');
  assert.equal(s['CLUSTER_ID'], 'cluster-1');
  assert.deepEqual(s['LABELS'], { app: 'sleep', version: 'v1', 'service.istio.io/canonical-name': 'sleep', 'service.istio.io/canonical-revision': 'v1' });
});

test('decoded only when it matches the verified certificate; cached', () => {
  const d = new PeerDecoder();
  const h = localPeer({ workload: 'sleep-v1', namespace: 'default', serviceAccount: 'sleep', cluster: 'cluster-1', labels: { app: 'sleep' } }).header!;
  const ok = d.decode(h, SLEEP);
  assert.equal(ok.workload, 'sleep-v1');
  assert.equal(ok.cluster, 'cluster-1');
  assert.equal(ok.canonicalService, 'sleep');
  assert.equal(ok.canonicalRevision, 'latest');
  assert.equal(ok.principal, SLEEP);
  assert.equal(d.decode(h, SLEEP), ok, 'second decode is the cached object');
  // Another identity's certificate: only what the certificate says.
  const other = d.decode(h, 'spiffe://cluster.local/ns/prod/sa/api');
  assert.equal(other.workload, 'unknown');
  assert.equal(other.namespace, 'prod');
  assert.equal(d.mismatches, 1);
  // No verified peer (plaintext): nothing at all.
  assert.equal(d.decode(h, undefined), UNKNOWN_PEER);
  // Garbage: the certificate's facts only.
  assert.equal(d.decode('!!not base64 protobuf!!', SLEEP).workload, 'unknown');
  assert.equal(d.decode(undefined, SLEEP).namespace, 'default');
});

test('canonical service/revision fall back as Istio does', () => {
  assert.deepEqual(canonicalOf({ 'service.istio.io/canonical-name': 'c', app: 'a' }, 'w'), { service: 'c', revision: 'latest' });
  assert.deepEqual(canonicalOf({ 'app.kubernetes.io/name': 'k', version: 'v2' }, 'w'), { service: 'k', revision: 'v2' });
  assert.deepEqual(canonicalOf({}, 'w'), { service: 'w', revision: 'latest' });
});
