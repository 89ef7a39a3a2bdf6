import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterLoadBalancer, computePriorityLoad, seededRandom, type LbSettings } from '../../../src/proxy/lb/index.js';
import type { EndpointModel, EndpointsModel, HealthStatus, LocalityModel } from '../../../src/proxy/model.js';
import { OutlierDetector } from '../../../src/proxy/outlier/index.js';
import { decodeCluster } from '../../../src/proxy/decode/index.js';

let nextIp = 1;
function eps(n: number, healthy: number, weight = 1): EndpointModel[] {
  return Array.from({ length: n }, (_, i) => {
    const address = `10.0.${nextIp >> 8}.${nextIp++ & 255}`;
    const health: HealthStatus = i < healthy ? 'HEALTHY' : 'UNHEALTHY';
    return { key: `${address}:80`, address, port: 80, health, weight, hostname: undefined };
  });
}
function loc(zone: string, endpoints: EndpointModel[], weight = 1): LocalityModel {
  return { region: 'r', zone, subZone: '', weight, endpoints };
}
function assignment(...priorities: LocalityModel[][]): EndpointsModel {
  return { clusterName: 'c', overprovisioningFactor: 140, priorities: priorities.map((localities, priority) => ({ priority, localities })) };
}
const RR: LbSettings = { lbPolicy: 'ROUND_ROBIN', localityWeightedLb: false, healthyPanicThreshold: 50, leastRequestChoiceCount: 2 };

function tally(lb: ClusterLoadBalancer, n: number, by: (r: { priority: number; zone: string; key: string }) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = lb.pick();
    const k = r.kind === 'endpoint' ? by({ priority: r.priority, zone: r.locality.zone, key: r.endpoint.key }) : 'none';
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}
function near(actual: number, expected: number, tol = 0.03): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${actual} not within ${tol} of ${expected}`);
}

test("priority load matches Envoy's table (overprovisioning 1.4, P1 fully healthy)", () => {
  const rows: [number, number, number][] = [
    [100, 100, 0],
    [72, 100, 0],
    [71, 99, 1],
    [50, 70, 30],
    [25, 35, 65],
    [0, 0, 100],
  ];
  for (const [p0, l0, l1] of rows) {
    const load = computePriorityLoad([{ total: 100, healthy: p0, degraded: 0 }, { total: 100, healthy: 100, degraded: 0 }], 140, 50);
    assert.deepEqual(load.healthy, [l0, l1], `P0 ${p0}% healthy`);
    assert.deepEqual(load.panic, [false, false]);
  }
  // Not enough health anywhere: loads are normalised to 100 and sick levels go into panic.
  const low = computePriorityLoad([{ total: 10, healthy: 2, degraded: 0 }, { total: 10, healthy: 5, degraded: 0 }], 140, 50);
  assert.equal(low.totalAvailability, 98);
  assert.deepEqual(low.healthy, [29, 71]);
  assert.deepEqual(low.panic, [true, false]);
});

test('P0 with 50 % healthy endpoints gets 70 % of the traffic, P1 the rest', () => {
  const lb = new ClusterLoadBalancer(RR, assignment([loc('a', eps(4, 2))], [loc('b', eps(2, 2))]), { random: seededRandom(7) });
  const t = tally(lb, 10_000, (r) => `P${r.priority}`);
  near(t.get('P0')! / 10_000, 0.7);
  near(t.get('P1')! / 10_000, 0.3);
  assert.equal(t.get('none'), undefined);
});

test('locality weights 70/20/10, and a half-healthy locality loses weight (× min(1, 1.4 × 0.5))', () => {
  const s: LbSettings = { ...RR, localityWeightedLb: true };
  const lb = new ClusterLoadBalancer(s, assignment([loc('a', eps(2, 2), 70), loc('b', eps(2, 2), 20), loc('c', eps(2, 2), 10)]), { random: seededRandom(3) });
  const t = tally(lb, 10_000, (r) => r.zone);
  near(t.get('a')! / 10_000, 0.7);
  near(t.get('b')! / 10_000, 0.2);
  near(t.get('c')! / 10_000, 0.1);

  // a: 70 × 0.7 = 49; b 20; c 10. (P0 availability: 5/6 × 1.4 > 1, so no spill-over.)
  const lb2 = new ClusterLoadBalancer(s, assignment([loc('a', eps(2, 1), 70), loc('b', eps(2, 2), 20), loc('c', eps(2, 2), 10)]), { random: seededRandom(3) });
  const t2 = tally(lb2, 10_000, (r) => r.zone);
  near(t2.get('a')! / 10_000, 49 / 79);
  near(t2.get('b')! / 10_000, 20 / 79);

  // A locality without weight gets nothing under locality-weighted LB.
  const lb3 = new ClusterLoadBalancer(s, assignment([loc('a', eps(1, 1), 1), loc('z', eps(1, 1), 0)]), { random: seededRandom(3) });
  assert.equal(tally(lb3, 1000, (r) => r.zone).get('z'), undefined);
});

test('weighted round robin follows endpoint weights exactly', () => {
  const [a] = eps(1, 1, 1);
  const [b] = eps(1, 1, 3);
  const lb = new ClusterLoadBalancer(RR, assignment([loc('a', [a!, b!])]), { random: seededRandom(1) });
  const t = tally(lb, 400, (r) => r.key);
  assert.equal(t.get(a!.key), 100);
  assert.equal(t.get(b!.key), 300);
});

test('least request (power of two choices) avoids the busy host', () => {
  const hosts = eps(3, 3);
  const lb = new ClusterLoadBalancer({ ...RR, lbPolicy: 'LEAST_REQUEST' }, assignment([loc('a', hosts)]), { random: seededRandom(11) });
  for (let i = 0; i < 5; i++) lb.requestStarted(hosts[0]!.key);
  const t = tally(lb, 9_000, (r) => r.key);
  // The busy host wins only when both choices are it: 1/9.
  near(t.get(hosts[0]!.key)! / 9_000, 1 / 9);
  for (let i = 0; i < 5; i++) lb.requestFinished(hosts[0]!.key);
  near(tally(lb, 9_000, (r) => r.key).get(hosts[0]!.key)! / 9_000, 1 / 3);
});

test('all unhealthy: no healthy upstream with panic disabled; panic (all hosts) at the default 50 %', () => {
  const a = assignment([loc('a', eps(3, 0))]);
  const off = new ClusterLoadBalancer({ ...RR, healthyPanicThreshold: 0 }, a, { random: seededRandom(1) });
  assert.deepEqual(off.pick(), { kind: 'no-healthy-upstream' });
  const on = new ClusterLoadBalancer(RR, a, { random: seededRandom(1) });
  const r = on.pick();
  assert.ok(r.kind === 'endpoint' && r.panic);
  const empty = new ClusterLoadBalancer(RR, assignment(), { random: seededRandom(1) });
  assert.deepEqual(empty.pick(), { kind: 'no-healthy-upstream' });
});

test('total panic across priorities spreads load by host count', () => {
  const lb = new ClusterLoadBalancer(RR, assignment([loc('a', eps(4, 1))], [loc('b', eps(4, 1))]), { random: seededRandom(5) });
  assert.deepEqual(lb.priorityLoad.healthy, [50, 50]);
  assert.deepEqual(lb.priorityLoad.panic, [true, true]);
});

test('outlier ejections make hosts unhealthy for the LB; retries can avoid previous hosts', () => {
  const hosts = eps(10, 10);
  const cluster = decodeCluster({ name: 'c', type: 'STATIC', load_assignment: { cluster_name: 'c' }, outlier_detection: { consecutive_5xx: 2 } });
  assert.ok('ok' in cluster);
  if (!('ok' in cluster)) return;
  let now = 0;
  const od = new OutlierDetector(cluster.ok.outlierDetection!, { now: () => now, random: seededRandom(2) });
  od.setHosts(hosts.map((h) => h.key));
  const lb = new ClusterLoadBalancer(RR, assignment([loc('a', hosts)]), { random: seededRandom(9), ejections: od });
  od.report(hosts[0]!.key, { kind: 'http', status: 500 });
  od.report(hosts[0]!.key, { kind: 'http', status: 500 });
  assert.ok(od.isEjected(hosts[0]!.key));
  assert.equal(tally(lb, 1000, (r) => r.key).get(hosts[0]!.key), undefined);
  now = 40_000;
  od.advance();
  assert.ok(!od.isEjected(hosts[0]!.key));
  assert.ok((tally(lb, 1000, (r) => r.key).get(hosts[0]!.key) ?? 0) > 0);

  const two = eps(2, 2);
  const lb2 = new ClusterLoadBalancer(RR, assignment([loc('a', two)]), { random: seededRandom(4) });
  for (let i = 0; i < 20; i++) {
    const r = lb2.pick({ avoid: new Set([two[0]!.key]), maxAttempts: 5 });
    assert.ok(r.kind === 'endpoint' && r.endpoint.key === two[1]!.key);
  }
});
