import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startAdmin, startHealth } from '../../src/proxy/admin.js';
import { OutboundListener } from '../../src/proxy/listeners/outbound.js';
import { ProxyStats } from '../../src/proxy/stats.js';
import { UpstreamPools } from '../../src/proxy/upstream/pool.js';
import { cluster, emptyGraph, endpoint, endpoints, fetch, forward, outboundListener, roundRobinPicker, route, routeConfig, startApp, vhost } from './net/fixtures.js';

test('admin: /stats/prometheus, /ready, /clusters, /config_dump, drain; health /healthz/ready', async () => {
  const stats = new ProxyStats();
  stats.recordRequest({ reporter: 'source', responseCode: 200, responseFlags: '-', durationMs: 3, upstreamCluster: 'c' });
  let ready = false;
  let drained = 0;
  const admin = await startAdmin({
    port: 0,
    stats,
    ready: () => ready,
    clusters: () => 'c::127.0.0.1:80::health_flags::healthy\n',
    configDump: () => ({ clusters: new Map([['c', { hosts: new Set(['a']) }]]), re: /x+/ }),
    drainListeners: async () => void drained++,
  });
  const health = await startHealth({ port: 0, ready: () => ready });
  const base = `http://127.0.0.1:${admin.address.port}`;
  try {
    const m = await fetch(`${base}/stats/prometheus`);
    assert.equal(m.status, 200);
    assert.match(m.headers['content-type']!, /text\/plain/);
    assert.match(m.body, /istio_requests_total\{reporter="source",[^}]*request_protocol="http",response_code="200",grpc_response_status="",response_flags="-"[^}]*\} 1/);
    assert.match(m.body, /istio_request_duration_milliseconds_bucket\{le="5",[^}]*\} 1/);
    assert.equal((await fetch(`${base}/ready`)).status, 503);
    assert.equal((await fetch(`http://127.0.0.1:${health.address.port}/healthz/ready`)).status, 503);
    ready = true;
    const r = await fetch(`${base}/ready`);
    assert.deepEqual([r.status, r.body], [200, 'LIVE\n']);
    assert.equal((await fetch(`http://127.0.0.1:${health.address.port}/healthz/ready`)).status, 200);
    assert.equal((await fetch(`${base}/clusters`)).body, 'c::127.0.0.1:80::health_flags::healthy\n');
    assert.deepEqual(JSON.parse((await fetch(`${base}/config_dump`)).body), { clusters: { c: { hosts: ['a'] } }, re: 'x+' });
    assert.equal((await fetch(`${base}/drain_listeners`)).status, 405);
    assert.equal((await fetch(`${base}/drain_listeners`, { method: 'POST' })).status, 200);
    assert.equal(drained, 1);
    const nf = await fetch(`${base}/nope`);
    assert.equal(nf.status, 404);
    assert.match(nf.body, /stats\/prometheus/);
    // Two proxies in one process do not share series.
    assert.doesNotMatch(await new ProxyStats().metrics(), /istio_requests_total\{/);
  } finally {
    await admin.close();
    await health.close();
  }
});

test('graceful drain: stop accepting, let the in-flight request finish, then close', async () => {
  let release: () => void = () => {};
  const app = await startApp('slow', '127.0.0.1', (_req, res) => {
    release = () => res.end('done');
    return true;
  });
  const g = emptyGraph();
  g.clusters.set('c', cluster('c'));
  g.endpoints.set('c', endpoints('c', [endpoint('127.0.0.1', app.port)]));
  g.routes.set('15001', routeConfig('15001', [vhost('v', ['*'], [route('/', forward('c'))])]));
  const stats = new ProxyStats();
  const pools = new UpstreamPools({ stats, secrets: () => g.secrets });
  const l = new OutboundListener(outboundListener('127.0.0.1'), { config: () => g, stats, pools, pick: roundRobinPicker() });
  const a = await l.listen();
  const proxy = { host: '127.0.0.1', port: a.port };
  const inflight = fetch('http://svc/slow', { proxy });
  await new Promise((r) => setTimeout(r, 100));
  const draining = l.drain({ timeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 50));
  // No new connections once draining started.
  await assert.rejects(fetch('http://svc/new', { proxy }));
  release();
  const res = await inflight;
  assert.deepEqual([res.status, res.body], [200, 'done']);
  assert.deepEqual(await draining, { clean: true, cutOff: 0 });

  // A request that does not finish in time is cut off at the deadline.
  const l2 = new OutboundListener(outboundListener('127.0.0.1'), { config: () => g, stats, pools, pick: roundRobinPicker() });
  const a2 = await l2.listen();
  const stuck = fetch('http://svc/stuck', { proxy: { host: '127.0.0.1', port: a2.port } }).catch((e: Error) => e);
  await new Promise((r) => setTimeout(r, 100));
  const t0 = Date.now();
  assert.deepEqual(await l2.drain({ timeoutMs: 200 }), { clean: false, cutOff: 1 });
  assert.ok(Date.now() - t0 < 2000);
  assert.ok((await stuck) instanceof Error);
  release();
  pools.close();
  await app.close();
});
