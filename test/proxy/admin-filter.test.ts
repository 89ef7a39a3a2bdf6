/** `/stats/prometheus?filter=` (Envoy's): only the metrics whose name the regex matches (what the mesh page reads). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { filterExposition, startAdmin } from '../../src/proxy/admin.js';
import { ProxyStats } from '../../src/proxy/stats.js';
import { fetch } from './net/fixtures.js';

test('admin /stats/prometheus?filter=regex: only matching metrics, extra lines included; a bad regex is a 400', async () => {
  const stats = new ProxyStats({ defaultLabels: { pod: 'p' } });
  stats.recordRequest({ reporter: 'source', responseCode: 200, responseFlags: '-', durationMs: 3 });
  stats.upstreamCxTotal.inc({ cluster_name: 'c' });
  const extra = '# HELP isle_extra_total x\n# TYPE isle_extra_total counter\nisle_extra_total 3\nistio_requests_total{reporter="destination"} 4\n';
  const admin = await startAdmin({ host: '127.95.3.1', port: 0, stats, ready: () => true, extraMetrics: () => extra });
  const base = `http://127.95.3.1:${admin.address.port}`;
  try {
    const all = (await fetch(`${base}/stats/prometheus`)).body;
    assert.match(all, /envoy_cluster_upstream_cx_total/);
    assert.match(all, /isle_extra_total 3/);
    const f = await fetch(`${base}/stats/prometheus?filter=${encodeURIComponent('^istio_requests_total$')}`);
    assert.equal(f.status, 200);
    assert.match(f.body, /^# HELP istio_requests_total /m);
    assert.match(f.body, /istio_requests_total\{reporter="source",[^}]*pod="p"\} 1/);
    assert.match(f.body, /istio_requests_total\{reporter="destination"\} 4/);
    assert.doesNotMatch(f.body, /envoy_cluster|istio_request_duration|isle_extra/);
    const bad = await fetch(`${base}/stats/prometheus?filter=${encodeURIComponent('(')}`);
    assert.equal(bad.status, 400);
    assert.match(bad.body, /invalid filter regex/);
  } finally {
    await admin.close();
  }
  // Histogram series match by their metric's name.
  assert.equal(filterExposition('h_bucket{le="1"} 1\nh_sum 2\nother 3\n', /^h$/), 'h_bucket{le="1"} 1\nh_sum 2\n');
});
