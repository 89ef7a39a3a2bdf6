// pilot_proxy_convergence_time is observed once per ACK; UnlabelledHistogram records it without
// prom-client's per-call label handling. What /metrics shows must be exactly what a prom-client
// Histogram fed the same values shows.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { ControlPlaneMetrics, UnlabelledHistogram } from '../../src/controlplane/metrics.js';

const BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 30];

function pair() {
  const a = new Registry();
  const b = new Registry();
  const config = { name: 'conv_seconds', help: 'h', buckets: BUCKETS };
  return { a, b, real: new Histogram({ ...config, registers: [a] }), mine: new UnlabelledHistogram({ ...config, registers: [b] }) };
}

describe('UnlabelledHistogram', () => {
  it('exports the same text and JSON as a prom-client Histogram fed the same values (edges, overflow, sums)', async () => {
    const { a, b, real, mine } = pair();
    assert.equal(await b.metrics(), await a.metrics(), 'empty');
    // Bucket edges (le is inclusive), zero, values above every bound, sums that round.
    const values = [0, 0.01, 0.010000001, 0.05, 0.1, 0.1 + 0.2, 0.5, 1, 1.0000001, 29.99, 30, 31, 1e6, 0.123456789, 0.7];
    for (let k = 0; k < 3; k++) {
      for (const v of values) {
        real.observe(v);
        mine.observe(v);
      }
      assert.equal(await b.metrics(), await a.metrics(), `round ${k}`);
    }
    assert.deepEqual(await b.getMetricsAsJSON(), await a.getMetricsAsJSON());
    assert.match(await b.metrics(), /^conv_seconds_bucket\{le="30"\} 39$/m, 'cumulative: all but 31 and 1e6, three times');
    assert.match(await b.metrics(), /^conv_seconds_count 45$/m);
  });

  it('startTimer, reset and bad values behave as prom-client does', async () => {
    const { a, b, real, mine } = pair();
    real.observe(0.2);
    mine.observe(0.2);
    real.reset();
    mine.reset();
    assert.equal(await b.metrics(), await a.metrics());
    assert.doesNotMatch(await b.metrics(), /_count [1-9]/);
    mine.startTimer()();
    assert.match(await b.metrics(), /^conv_seconds_count 1$/m);
    // Reset, then plain observations: the series comes back with them.
    for (const h of [real, mine]) {
      h.reset();
      h.observe(0.3);
      h.observe(0.04);
    }
    assert.equal(await b.metrics(), await a.metrics());
    assert.match(await b.metrics(), /^conv_seconds_count 2$/m);
    for (const h of [real, mine]) {
      h.remove({});
      h.observe(2);
    }
    assert.equal(await b.metrics(), await a.metrics());
    assert.match(await b.metrics(), /^conv_seconds_count 1$/m);
    assert.throws(() => mine.observe(Number.NaN), /not a valid number/);
    assert.throws(() => real.observe(Number.NaN), /not a valid number/);
  });

  it('is what the control plane reports as pilot_proxy_convergence_time', async () => {
    const m = new ControlPlaneMetrics();
    assert.ok(m.convergence instanceof UnlabelledHistogram);
    m.convergence.observe(0.12);
    m.convergence.observe(3);
    const text = await m.text();
    assert.match(text, /^pilot_proxy_convergence_time_bucket\{le="0.15"\} 1$/m);
    assert.match(text, /^pilot_proxy_convergence_time_bucket\{le="5"\} 2$/m);
    assert.match(text, /^pilot_proxy_convergence_time_sum 3.12$/m);
    assert.match(text, /^pilot_proxy_convergence_time_count 2$/m);
  });
});
