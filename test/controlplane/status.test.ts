import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatStatus, syncState, type PlaneStatus } from '../../src/controlplane/status.js';
import { runIsle } from '../helpers/cli.js';
import { channel, inSync, sidecarNode, SimProxy, startPlane, waitUntil } from '../controlplane/helpers.js';

test('syncState uses istioctl proxy-status words', () => {
  assert.equal(syncState(undefined), 'NOT SENT');
  assert.equal(syncState({ sent: '3', acked: '3' }), 'SYNCED');
  assert.equal(syncState({ sent: '4', acked: '3' }), 'STALE');
  assert.equal(syncState({ sent: '4', acked: '3', lastNack: { version: '4', message: 'bad regex' } }), 'NACKED');
  assert.equal(syncState({ sent: '5', acked: '5', lastNack: { version: '4', message: 'bad regex' } }), 'SYNCED');
});

test('formatStatus: proxies per type, remote clusters, NACKs and unreachable planes', () => {
  const planes: PlaneStatus[] = [
    {
      url: 'http://127.0.0.1:15014',
      proxies: [{ id: 'sidecar~127.1.0.2~sleep.default~default.svc.cluster.local', cluster: 'cluster-1', protocol: 'delta', types: { CDS: { sent: '1', acked: '1' }, EDS: { sent: '2', acked: '1', lastNack: { version: '2', message: 'boom' } } } }],
      remote: { cluster: 'cluster-1', network: 'network1', gateways: [], subscribers: [], remoteClusters: [{ name: 'cluster-2', address: '127.0.0.1:25012', network: 'network2', state: 'stale', lastError: 'connect ECONNREFUSED', lastSyncTime: 1000, services: 1, endpoints: 2 }] },
    },
    { url: 'http://127.0.0.1:25014', proxies: [], error: 'ECONNREFUSED' },
  ];
  const text = formatStatus(planes, 61_000);
  assert.match(text, /^NAME\s+CLUSTER\s+CDS\s+LDS\s+EDS\s+RDS\s+SDS\s+XDS\s+CONTROL PLANE$/m);
  assert.match(text, /sidecar~127\.1\.0\.2~sleep\.default~default\.svc\.cluster\.local\s+cluster-1\s+SYNCED\s+NOT SENT\s+NACKED\s+NOT SENT\s+NOT SENT\s+delta\s+cluster-1/);
  assert.match(text, /EDS v2: boom/);
  assert.match(text, /cluster-1\s+cluster-2\s+127\.0\.0\.1:25012\s+network2\s+stale \(connect ECONNREFUSED\)\s+1m ago\s+1\s+2/);
  assert.match(text, /unreachable: http:\/\/127\.0\.0\.1:25014: ECONNREFUSED/);
});

test('isle status against a real control plane shows a connected proxy as SYNCED', async (t) => {
  const p = await startPlane({ plaintextListen: '127.0.0.1:0' });
  const proxy = new SimProxy('delta', channel(p.cp.addresses.plaintext!), sidecarNode(7));
  t.after(() => proxy.close());
  await waitUntil(() => inSync(p.cp, proxy.id), 'proxy in sync');
  const r = await runIsle(['status', '--control-plane', p.debugUrl]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${proxy.id.replace(/[.~]/g, (c) => `\\${c}`)}\\s+cluster-1\\s+SYNCED\\s+SYNCED\\s+SYNCED\\s+SYNCED\\s+SYNCED\\s+delta\\s+cluster-1`));
  assert.match(r.stdout, /no remote clusters/);
  const down = await runIsle(['status', '--control-plane', 'http://127.0.0.1:1']);
  assert.equal(down.code, 1);
  assert.match(down.stdout, /unreachable: http:\/\/127\.0\.0\.1:1/);
});
