/**
 * The mesh page's traffic and sync data (ADR 0095): parsing istio_requests_total, edges with
 * rates and error ratios, which admin addresses are read, refresh throttling, and the sync state
 * of a type against the latest snapshot. Pure functions and injected clocks/fetch; the real thing
 * (proxies, control planes, Chromium) is test/demo/meshpage.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { edgesFrom, isError, MeshStats, parseRequestsTotal, peerIp, scrapeTargets, type Sample, type Series } from '../../src/controlplane/meshstats.js';
import { typeState } from '../../src/controlplane/meshz.js';
import type { ProxyStatus } from '../../src/xds/server.js';

function line(l: Record<string, string>, v: number): string {
  return `istio_requests_total{${Object.entries(l).map(([k, x]) => `${k}="${x}"`).join(',')}} ${v}`;
}

const SRC = { source_workload: 'sleep', source_workload_namespace: 'default', source_cluster: 'cluster-1' };
const V2 = { destination_workload: 'helloworld-v2', destination_workload_namespace: 'default', destination_cluster: 'cluster-2', destination_service: 'helloworld.default.svc.cluster.local' };

function sample(at: number, lines: Array<[Record<string, string>, number]>): Sample {
  const series = new Map<string, Series>();
  for (const s of parseRequestsTotal(lines.map(([l, v]) => line(l, v)).join('\n'))) series.set(s.key, { labels: s.labels, value: s.value });
  return { at, series };
}

test('parseRequestsTotal reads labels (escapes included) and values, and nothing else', () => {
  const text = [
    '# HELP istio_requests_total Requests',
    '# TYPE istio_requests_total counter',
    'istio_requests_total{reporter="source",source_workload="a\\"b\\\\c",response_code="200"} 12',
    'istio_requests_total_other{reporter="source"} 5',
    'istio_request_duration_milliseconds_bucket{le="1"} 3',
    'istio_requests_total{reporter="destination"} 7 1700000000000',
    'istio_requests_total{reporter="x"} NaNish',
  ].join('\n');
  const got = parseRequestsTotal(text);
  assert.equal(got.length, 2);
  assert.deepEqual(got[0]!.labels, { reporter: 'source', source_workload: 'a"b\\c', response_code: '200' });
  assert.equal(got[0]!.value, 12);
  assert.equal(got[1]!.value, 7);
});

test('edges: rate over the window, error ratio from 5xx, counter resets, source reporter preferred', () => {
  const ok = { reporter: 'source', ...SRC, ...V2, request_protocol: 'http', response_code: '200', grpc_response_status: '' };
  const bad = { ...ok, response_code: '503' };
  const seenByDest = { ...ok, reporter: 'destination' };
  const fromRemote = { ...seenByDest, source_cluster: 'cluster-3', source_workload: 'sleep' };
  const history = new Map<string, Sample[]>([
    [
      'sleep-proxy',
      [
        sample(0, [[ok, 100], [bad, 10]]),
        sample(5_000, [[ok, 110], [bad, 12]]),
        sample(10_000, [[ok, 130], [bad, 20]]),
      ],
    ],
    // The destination's view of the same edge (not added again) and of an edge whose source we do not read.
    ['hello-proxy', [sample(0, [[seenByDest, 1000], [fromRemote, 50]]), sample(10_000, [[seenByDest, 1040], [fromRemote, 3]])]],
  ]);
  const edges = edgesFrom(history);
  assert.equal(edges.length, 2, JSON.stringify(edges, null, 1));
  const e = edges.find((x) => x.source.cluster === 'cluster-1')!;
  assert.equal(e.reporter, 'source');
  assert.deepEqual(e.destination, { cluster: 'cluster-2', namespace: 'default', workload: 'helloworld-v2', service: 'helloworld.default.svc.cluster.local' });
  assert.equal(e.requests, 150);
  assert.equal(e.errors, 20);
  assert.equal(e.rps, 4); // (30 + 10) requests in 10 s
  assert.equal(e.errorRatio, 0.25);
  assert.deepEqual(e.proxies, ['sleep-proxy']);
  const r = edges.find((x) => x.source.cluster === 'cluster-3')!;
  assert.equal(r.reporter, 'destination');
  assert.equal(r.rps, 0.3, 'a counter that went down restarted from zero: 3 in 10 s');
  // One sample only: totals, no rate yet.
  const first = edgesFrom(new Map([['p', [sample(0, [[ok, 5]])]]]));
  assert.equal(first[0]!.requests, 5);
  assert.equal(first[0]!.rps, undefined);
  assert.equal(first[0]!.errorRatio, undefined);
});

test('isError: 5xx, no response, and gRPC statuses other than OK', () => {
  assert.equal(isError({ response_code: '200', grpc_response_status: '' }), false);
  assert.equal(isError({ response_code: '404' }), false);
  assert.equal(isError({ response_code: '503' }), true);
  assert.equal(isError({ response_code: '0' }), true);
  assert.equal(isError({ response_code: '200', grpc_response_status: '0' }), false);
  assert.equal(isError({ response_code: '200', grpc_response_status: '14' }), true);
});

function status(id: string, metadata: Record<string, unknown>, peer = '127.0.0.1:40000'): ProxyStatus {
  return { streamId: id, protocol: 'delta', node: { id, cluster: 'cluster-1', metadata }, key: id, peer, connectedSince: 0, types: [], ignoredTypes: [] } as ProxyStatus;
}

test('scrapeTargets: only admin addresses that are the proxy’s own', () => {
  const id = (ip: string) => `sidecar~${ip}~sleep.default~default.svc.cluster.local`;
  const t = scrapeTargets([
    status(id('10.0.0.5'), { ISLE_ADMIN_ADDRESS: '10.0.0.5:15000' }, '10.0.0.5:5555'),
    status(id('10.0.0.6'), { ISLE_ADMIN_ADDRESS: '10.9.9.9:15000', INSTANCE_IPS: '10.0.0.6' }, '10.0.0.6:5555'),
    status(id('10.0.0.7'), { ISLE_ADMIN_ADDRESS: '127.0.0.1:15000' }, '127.0.0.1:5555'),
    status(id('10.0.0.8'), { ISLE_ADMIN_ADDRESS: '127.0.0.1:15000' }, '10.0.0.8:5555'),
    status(id('10.0.0.9'), { ISLE_ADMIN_ADDRESS: '0.0.0.0:15000', INSTANCE_IPS: '10.0.0.9' }),
    status(id('10.0.0.10'), { ISLE_ADMIN_ADDRESS: 'metadata.internal:80' }),
    status(id('10.0.0.11'), {}),
    status(id('10.0.0.5'), { ISLE_ADMIN_ADDRESS: '10.0.0.5:15000' }, '10.0.0.5:5556'),
  ]);
  assert.equal(t.length, 7, 'one target per node id');
  assert.equal(t[0]!.url, 'http://10.0.0.5:15000/stats/prometheus?filter=%5Eistio_requests_total%24');
  assert.match(t[1]!.problem!, /10\.9\.9\.9:15000 is not one of the proxy's addresses/);
  assert.equal(t[2]!.url?.startsWith('http://127.0.0.1:15000/'), true, 'loopback when the proxy dialled from loopback');
  assert.match(t[3]!.problem!, /not one of the proxy's addresses/);
  assert.equal(t[4]!.url?.startsWith('http://10.0.0.9:15000/'), true, 'unspecified host → the proxy address');
  assert.match(t[5]!.problem!, /not an IP:port/);
  assert.match(t[6]!.problem!, /no admin address in node metadata/);
  assert.equal(peerIp('ipv4:10.1.2.3:80'), '10.1.2.3');
  assert.equal(peerIp('[::1]:80'), '::1');
  assert.equal(peerIp('unknown'), undefined);
});

test('MeshStats: reads at most every minIntervalMs, shares a refresh, forgets disconnected proxies, reports failures', async () => {
  let now = 0;
  const calls: string[] = [];
  const counts = new Map([['http://a/', 0]]);
  const ok = { reporter: 'source', ...SRC, ...V2, response_code: '200' };
  const stats = new MeshStats({
    now: () => now,
    minIntervalMs: 2000,
    fetchText: async (url) => {
      calls.push(url);
      if (url === 'http://b/') throw Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
      const n = counts.get(url)! + 10;
      counts.set(url, n);
      return line(ok, n);
    },
  });
  const targets = [{ id: 'a', url: 'http://a/' }, { id: 'b', url: 'http://b/' }, { id: 'c', problem: 'no admin address' }];
  await Promise.all([stats.refresh(targets), stats.refresh(targets)]);
  assert.equal(calls.length, 2, 'concurrent callers share one refresh');
  now = 1000;
  await stats.refresh(targets);
  assert.equal(calls.length, 2, 'not again within minIntervalMs');
  now = 5000;
  await stats.refresh(targets);
  const t = stats.traffic();
  assert.equal(t.edges.length, 1);
  assert.equal(t.edges[0]!.requests, 20);
  assert.equal(t.edges[0]!.rps, 2); // 10 more in 5 s
  assert.equal(t.proxies['a']!.state, 'ok');
  assert.deepEqual(t.proxies['b'], { state: 'error', error: 'ECONNREFUSED' });
  assert.deepEqual(t.proxies['c'], { state: 'not read', error: 'no admin address' });
  now = 10_000;
  await stats.refresh([{ id: 'b', url: 'http://b/' }]);
  assert.equal(stats.traffic().edges.length, 0, "a's counters left with it");
  assert.equal(stats.traffic().proxies['a'], undefined);
});

test('typeState: SYNCED only when the ACKed version is the latest in the snapshot', () => {
  assert.equal(typeState({ sent: 'v2', acked: 'v2' }, 'v2'), 'SYNCED');
  assert.equal(typeState({ sent: 'v2', acked: 'v2' }, 'v3'), 'STALE');
  assert.equal(typeState({ sent: 'v3', acked: 'v2' }, 'v3'), 'STALE');
  assert.equal(typeState({ sent: 'v3', acked: 'v2', lastNack: { version: 'v3', message: 'bad' } }, 'v3'), 'NACKED');
  assert.equal(typeState({}, 'v1'), 'NOT SENT');
});

test('MeshStats: a slow refresh stops starting reads after its budget; the next one starts with those skipped', async () => {
  let now = 0;
  const calls: string[] = [];
  const stats = new MeshStats({
    now: () => now,
    minIntervalMs: 0,
    concurrency: 1,
    budgetMs: 2500,
    fetchText: async (url) => {
      calls.push(url);
      now += 1000; // each read takes a second (an admin server that times out)
      return '';
    },
  });
  const targets = ['a', 'b', 'c', 'd', 'e'].map((id) => ({ id, url: `http://${id}/` }));
  await stats.refresh(targets);
  assert.deepEqual(calls, ['http://a/', 'http://b/', 'http://c/']);
  assert.deepEqual(stats.traffic().proxies['e'], { state: 'not read', error: 'not reached within 2500 ms of reading proxies; next time' });
  calls.length = 0;
  await stats.refresh(targets);
  assert.deepEqual(calls, ['http://d/', 'http://e/', 'http://a/']);
  assert.equal(stats.traffic().proxies['e']!.state, 'ok');
});
