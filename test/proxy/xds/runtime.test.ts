/**
 * ProxyRuntime in process: one apply is one switch (graph, clusters, listener models); listeners
 * are started, updated, replaced and drained by name; outlier state survives an EDS update for
 * the endpoints that stay.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ConfigGraph, OutlierDetectionModel } from '../../../src/proxy/model.js';
import { ProxyRuntime } from '../../../src/proxy/runtime.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { cluster, emptyGraph, endpoint, endpoints, forward, outboundListener, route, routeConfig, vhost } from '../net/fixtures.js';

const OUTLIER: OutlierDetectionModel = {
  consecutive5xx: 1,
  consecutiveGatewayFailure: 5,
  consecutiveLocalOriginFailure: 5,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 100,
  enforcingConsecutive5xx: 100,
  enforcingConsecutiveGatewayFailure: 0,
  enforcingConsecutiveLocalOriginFailure: 100,
  enforcingSuccessRate: 100,
  successRateMinimumHosts: 5,
  successRateRequestVolume: 100,
  successRateStdevFactor: 1900,
  splitExternalLocalOriginErrors: false,
  alwaysEjectOneHost: false,
};

function graph(eps: [string, number][], listenerAddress?: string): ConfigGraph {
  const g = emptyGraph();
  const c = cluster('c', { outlierDetection: OUTLIER });
  g.clusters.set('c', c);
  g.endpoints.set('c', endpoints('c', eps.map(([a, p]) => endpoint(a, p))));
  g.routes.set('15001', routeConfig('15001', [vhost('c', ['c'], [route('/', forward('c'))])]));
  if (listenerAddress) g.listeners.set('virtualOutbound', outboundListener(listenerAddress, 0));
  return g;
}

const pickAll = (rt: ProxyRuntime, g: ConfigGraph, n = 20): Set<string> => {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const ep = rt.pick(g.clusters.get('c')!, g.endpoints.get('c'), { previous: new Set(), avoidPrevious: false, attempt: 1 });
    if (ep) seen.add(ep.key);
  }
  return seen;
};

describe('ProxyRuntime', () => {
  test('outlier ejections survive an EDS update for endpoints that stay', async () => {
    const rt = new ProxyRuntime({ stats: new ProxyStats(), now: () => 1000 });
    const g1 = graph([['127.0.0.1', 1], ['127.0.0.1', 2]]);
    await rt.apply(g1);
    assert.deepEqual([...pickAll(rt, g1)].sort(), ['127.0.0.1:1', '127.0.0.1:2']);
    rt.reportResult('c', '127.0.0.1:1', { kind: 'http', status: 500 });
    assert.deepEqual([...pickAll(rt, g1)], ['127.0.0.1:2']);
    assert.match(rt.clustersText(), /c::127\.0\.0\.1:1::health_flags::\/failed_outlier_check/);

    const g2 = graph([['127.0.0.1', 1], ['127.0.0.1', 3]]);
    await rt.apply(g2);
    assert.equal(rt.config, g2);
    assert.deepEqual([...pickAll(rt, g2)], ['127.0.0.1:3'], 'still ejected after the update');
    assert.match(rt.clustersText(), /c::127\.0\.0\.1:1::outlier::ejected=true,ejections=1/);
    assert.doesNotMatch(rt.clustersText(), /127\.0\.0\.1:2/);
    await rt.drain(100);
  });

  test('listeners by name: started, updated in place, replaced when the address moves, drained when gone', async () => {
    const bound: string[] = [];
    const rt = new ProxyRuntime({ stats: new ProxyStats(), onListener: (n, role, a) => bound.push(`${n} ${role} ${a.address}`) });
    const r1 = await rt.apply(graph([['127.0.0.1', 1]], '127.1.82.1'));
    assert.deepEqual(r1.started, ['virtualOutbound']);
    assert.deepEqual(bound, ['virtualOutbound outbound 127.1.82.1']);
    const r2 = await rt.apply(graph([['127.0.0.1', 1]], '127.1.82.1'));
    assert.deepEqual(r2.updated, ['virtualOutbound']);
    assert.deepEqual(r2.started, []);
    const r3 = await rt.apply(graph([['127.0.0.1', 1]], '127.1.82.2'));
    assert.deepEqual(r3.replaced, ['virtualOutbound']);
    assert.deepEqual(r3.started, ['virtualOutbound']);
    assert.equal(rt.listenerInfo()[0]!.address.split(':')[0], '127.1.82.2');
    const r4 = await rt.apply(graph([['127.0.0.1', 1]]));
    assert.deepEqual(r4.stopped, ['virtualOutbound']);
    assert.deepEqual(rt.listenerInfo(), []);
    const d = await rt.drain(100);
    assert.equal(d.clean, true);
  });

  test('a listener that cannot bind is reported, the rest of the graph applies', async () => {
    const a = new ProxyRuntime({ stats: new ProxyStats(), outboundPort: 0 });
    await a.apply(graph([['127.0.0.1', 1]], '127.1.82.3'));
    const port = Number(a.listenerInfo()[0]!.address.split(':')[1]);
    const b = new ProxyRuntime({ stats: new ProxyStats(), outboundPort: port });
    const g = graph([['127.0.0.1', 1]], '127.1.82.3');
    const r = await b.apply(g);
    assert.deepEqual(r.failed, [{ name: 'virtualOutbound', address: `127.1.82.3:${port}`, error: 'address already in use' }]);
    assert.equal(b.config, g);
    await Promise.all([a.drain(100), b.drain(100)]);
  });
});
