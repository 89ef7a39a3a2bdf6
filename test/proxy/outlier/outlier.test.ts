import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCluster } from '../../../src/proxy/decode/index.js';
import { seededRandom } from '../../../src/proxy/lb/index.js';
import type { OutlierDetectionModel } from '../../../src/proxy/model.js';
import { OutlierDetector } from '../../../src/proxy/outlier/index.js';

function config(od: object): OutlierDetectionModel {
  const c = decodeCluster({ name: 'c', type: 'STATIC', load_assignment: { cluster_name: 'c' }, outlier_detection: od });
  if ('errors' in c) assert.fail(c.errors.join('\n'));
  return c.ok.outlierDetection!;
}

function setup(od: object, hosts = 20) {
  const clock = { now: 0 };
  const events: string[] = [];
  const d = new OutlierDetector(config(od), {
    now: () => clock.now,
    random: seededRandom(1),
    onEject: (k, why) => events.push(`eject ${k} ${why}`),
    onUneject: (k) => events.push(`uneject ${k}`),
  });
  const keys = Array.from({ length: hosts }, (_, i) => `10.0.0.${i + 1}:80`);
  d.setHosts(keys);
  const at = (ms: number) => {
    clock.now = ms;
    d.advance();
  };
  const fail = (k: string, n: number, status = 500) => {
    for (let i = 0; i < n; i++) d.report(k, { kind: 'http', status });
  };
  return { d, keys, at, fail, events, clock };
}

test('ejects after consecutive_5xx (default 5) consecutive errors; a success resets the count', () => {
  const { d, keys, fail, events } = setup({});
  fail(keys[0]!, 4);
  d.report(keys[0]!, { kind: 'http', status: 200 });
  fail(keys[0]!, 4);
  assert.ok(!d.isEjected(keys[0]!));
  fail(keys[0]!, 1);
  assert.ok(d.isEjected(keys[0]!));
  assert.deepEqual(events, ['eject 10.0.0.1:80 consecutive_5xx']);
  const s = d.snapshot().find((h) => h.key === keys[0])!;
  assert.equal(s.ejected, true);
  assert.equal(s.ejectedUntil, 30_000);
  assert.equal(s.ejectionMultiplier, 1);
  assert.equal(s.lastEjectionReason, 'consecutive_5xx');
});

test('un-ejects at the first interval sweep after base_ejection_time; the time grows with each ejection', () => {
  const { d, keys, at, fail } = setup({ consecutive_5xx: 1 });
  const k = keys[0]!;
  fail(k, 1); // t=0, × 1 → 30 s
  at(29_999);
  assert.ok(d.isEjected(k));
  at(30_000);
  assert.ok(!d.isEjected(k));
  fail(k, 1); // t=30 s, × 2 → 60 s
  assert.equal(d.snapshot()[0]!.ejectionMultiplier, 2);
  at(89_999);
  assert.ok(d.isEjected(k));
  at(90_000);
  assert.ok(!d.isEjected(k));
  fail(k, 1); // t=90 s, × 3 → 90 s
  at(179_999);
  assert.ok(d.isEjected(k));
  at(180_000);
  assert.ok(!d.isEjected(k));
  // Healthy sweeps decay the multiplier by one each.
  at(200_000);
  assert.equal(d.snapshot()[0]!.ejectionMultiplier, 1);
  at(300_000);
  assert.equal(d.snapshot()[0]!.ejectionMultiplier, 0);
});

test('ejection time is capped at max_ejection_time', () => {
  const { d, keys, at, fail } = setup({ consecutive_5xx: 1, base_ejection_time: '10s', max_ejection_time: '25s', interval: '1s' });
  const k = keys[0]!;
  let t = 0;
  for (const expected of [10_000, 20_000, 25_000, 25_000]) {
    fail(k, 1);
    const s = d.snapshot()[0]!;
    assert.equal(s.ejectedUntil! - s.ejectedAt!, expected);
    t += expected;
    at(t);
    assert.ok(!d.isEjected(k));
  }
});

test('max_ejection_percent is respected (default 10 %); always_eject_one_host overrides it for the first', () => {
  const ten = setup({ consecutive_5xx: 1 }, 10);
  ten.fail(ten.keys[0]!, 1);
  ten.fail(ten.keys[1]!, 1);
  assert.deepEqual([ten.d.isEjected(ten.keys[0]!), ten.d.isEjected(ten.keys[1]!)], [true, false]);
  assert.equal(ten.d.ejected, 1);

  const five = setup({ consecutive_5xx: 1 }, 5);
  five.fail(five.keys[0]!, 1);
  assert.equal(five.d.ejected, 0, '1 of 5 would be 20 % > 10 %');

  const one = setup({ consecutive_5xx: 1, always_eject_one_host: true }, 5);
  one.fail(one.keys[0]!, 1);
  one.fail(one.keys[1]!, 1);
  assert.equal(one.d.ejected, 1);

  const half = setup({ consecutive_5xx: 1, max_ejection_percent: 50 }, 4);
  for (const k of half.keys) half.fail(k, 1);
  assert.equal(half.d.ejected, 2);
});

test('gateway failures: not enforced by default; enforced when enabled; local-origin errors count as 503', () => {
  const dflt = setup({ consecutive_5xx: 100, consecutive_gateway_failure: 3 });
  dflt.fail(dflt.keys[0]!, 3, 503);
  assert.ok(!dflt.d.isEjected(dflt.keys[0]!), 'enforcing_consecutive_gateway_failure defaults to 0');

  const on = setup({ consecutive_5xx: 100, consecutive_gateway_failure: 3, enforcing_consecutive_gateway_failure: 100 });
  on.fail(on.keys[0]!, 2, 502);
  on.fail(on.keys[0]!, 1, 500); // a non-gateway 5xx breaks the gateway streak
  on.fail(on.keys[0]!, 2, 504);
  assert.ok(!on.d.isEjected(on.keys[0]!));
  on.d.report(on.keys[0]!, { kind: 'connect-failure' });
  assert.ok(on.d.isEjected(on.keys[0]!));
  assert.equal(on.events[0], 'eject 10.0.0.1:80 consecutive_gateway_failure');

  const split = setup({ split_external_local_origin_errors: true, consecutive_local_origin_failure: 2 });
  split.d.report(split.keys[0]!, { kind: 'connect-failure' });
  split.d.report(split.keys[0]!, { kind: 'connect-success' });
  split.d.report(split.keys[0]!, { kind: 'timeout' });
  assert.ok(!split.d.isEjected(split.keys[0]!));
  split.d.report(split.keys[0]!, { kind: 'timeout' });
  assert.ok(split.d.isEjected(split.keys[0]!));
});

test('enforcing_consecutive_5xx: 0 detects but never ejects; removed hosts are forgotten', () => {
  const s = setup({ consecutive_5xx: 1, enforcing_consecutive_5xx: 0 });
  s.fail(s.keys[0]!, 3);
  assert.equal(s.d.ejected, 0);
  const t = setup({ consecutive_5xx: 1 });
  t.fail(t.keys[0]!, 1);
  const g = t.d.generation;
  t.d.setHosts(t.keys.slice(1));
  assert.equal(t.d.ejected, 0);
  assert.ok(t.d.generation > g);
});
