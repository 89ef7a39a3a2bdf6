/**
 * Locality load balancing in EDS (src/generate/locality.ts): goldens for failover,
 * failoverPriority, distribute and "no outlier detection", sharing per locality class, and the
 * proxy's real load balancer running the generated failover assignment.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildPushContext, type PushContext } from '../../src/model/pushcontext.js';
import { formatProxyId, proxyFromNode, withInbound, type Proxy } from '../../src/model/proxy.js';
import type { DestinationRuleSpec, LocalityLbSetting, OutlierDetection } from '../../src/config/kinds/networking.js';
import type { Resource } from '../../src/config/types.js';
import type { Endpoint, Health } from '../../src/registry/model.js';
import { decodeEndpoints } from '../../src/proxy/decode/endpoints.js';
import { ClusterLoadBalancer, seededRandom } from '../../src/proxy/lb/index.js';
import { generateEndpoints } from '../../src/generate/index.js';
import { generateResources } from '../../src/controlplane/snapshots.js';
import { lbPriority, localityClassOf, localityMatch } from '../../src/generate/locality.js';
import { ENDPOINT_TYPE } from '../../src/mesh/typeurls.js';
import { ep, loc, svc } from './fixtures.js';
import { assertGolden } from './golden.js';

const src = { file: 'test.yaml', line: 1 };
const HW = 'helloworld.sample.svc.cluster.local';
const CLUSTER = `outbound|5000||${HW}`;

const hw = svc('helloworld', 'sample', [{ name: 'http', port: 5000, targetPort: 5000, protocol: 'HTTP' }], { clusters: ['cluster-1', 'cluster-2', 'cluster-3'] });

/** One helloworld per region (seed 002: three clusters, three regions), plus region1's second zone when asked. */
function endpoints(o: { zone2?: boolean; health?: Partial<Record<string, Health>>; network2?: boolean } = {}): Endpoint[] {
  const h = (a: string) => o.health?.[a] ?? 'HEALTHY';
  const mk = (address: string, region: string, zone: string, version: string, cluster: string, network = 'network1') =>
    ep(hw, {
      address, port: 5000, servicePort: 5000, portName: 'http', cluster, network, locality: loc(region, zone), sa: 'helloworld',
      labels: { app: 'helloworld', version }, health: h(address), workload: `helloworld-${address}`,
    });
  return [
    mk('127.1.0.10', 'region1', 'zone1', 'v1', 'cluster-1'),
    mk('127.1.0.11', 'region1', 'zone1', 'v2', 'cluster-1'),
    ...(o.zone2 ? [mk('127.1.0.12', 'region1', 'zone2', 'v1', 'cluster-1')] : []),
    mk('127.2.0.10', 'region2', 'zone2', 'v1', 'cluster-2', o.network2 ? 'network2' : 'network1'),
    mk('127.3.0.10', 'region3', 'zone3', 'v1', 'cluster-3'),
  ];
}

const OUTLIER: OutlierDetection = { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '1m', maxEjectionPercent: 100 };

function dr(localityLbSetting: LocalityLbSetting | undefined, outlier: OutlierDetection | null = OUTLIER, host = 'helloworld', namespace = 'sample'): Resource<DestinationRuleSpec> {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name: 'helloworld', namespace },
    spec: {
      host,
      trafficPolicy: {
        ...(localityLbSetting ? { loadBalancer: { localityLbSetting } } : {}),
        ...(outlier ? { outlierDetection: outlier } : {}),
      },
    },
    source: src,
  };
}

function push(drs: Resource<DestinationRuleSpec>[], eps = endpoints(), networkGateways?: Record<string, { address: string; port: number }[]>): PushContext {
  return buildPushContext({
    version: 'loc',
    mesh: { trustDomain: 'cluster.local', clusterName: 'cluster-1', network: 'network1', rootNamespace: 'istio-system' },
    services: [hw],
    endpoints: eps,
    destinationRules: drs,
    ...(networkGateways ? { networkGateways } : {}),
  });
}

/** A sleep sidecar in `region/zone` (node locality), with optional labels. */
function client(p: PushContext, ip: string, region: string, zone: string, labels: Record<string, string> = {}, locality = true): Proxy {
  return withInbound(
    proxyFromNode(
      {
        id: formatProxyId('sidecar', ip, `sleep-${ip}`, 'sample'),
        metadata: { NAMESPACE: 'sample', NETWORK: 'network1', CLUSTER_ID: 'cluster-1', LABELS: { app: 'sleep', ...labels } },
        ...(locality ? { locality: { region, zone } } : {}),
      },
      { cluster: 'cluster-1' },
    ),
    p,
  );
}

type Lle = { locality?: { region?: string; zone?: string }; priority?: number; load_balancing_weight: number; lb_endpoints: { endpoint: { address: { socket_address: { address: string } } } }[] };
const cla = (p: PushContext, proxy: Proxy) => generateEndpoints(p, proxy).find((c) => c['cluster_name'] === CLUSTER)!;
const summary = (c: Record<string, unknown>) =>
  ((c['endpoints'] ?? []) as Lle[]).map((l) => [l.priority ?? 0, `${l.locality?.region ?? ''}/${l.locality?.zone ?? ''}`, l.load_balancing_weight, l.lb_endpoints.map((e) => e.endpoint.address.socket_address.address).join(',')]);

describe('locality load balancing (EDS)', () => {
  it('Istio helpers: LbPriority and LocalityMatch', () => {
    assert.equal(lbPriority(loc('r1', 'z1', 's1'), loc('r1', 'z1', 's1')), 0);
    assert.equal(lbPriority(loc('r1', 'z1', 's1'), loc('r1', 'z1', 's2')), 1);
    assert.equal(lbPriority(loc('r1', 'z1'), loc('r1', 'z2')), 2);
    assert.equal(lbPriority(loc('r1', 'z1'), loc('r2', 'z1')), 3);
    assert.ok(localityMatch(loc('region1', 'zone1'), 'region1/*'));
    assert.ok(localityMatch(loc('region1', 'zone1'), 'region1'));
    assert.ok(localityMatch(loc('region1', 'zone1'), '*'));
    assert.ok(!localityMatch(loc('region1', 'zone1'), 'region1/zone2'));
  });

  it('failover region1 → region2: region1 P0, region2 P1, region3 P2 (golden)', () => {
    const p = push([dr({ enabled: true, failover: [{ from: 'region1', to: 'region2' }, { from: 'region2', to: 'region3' }] })]);
    const c = cla(p, client(p, '127.1.0.50', 'region1', 'zone1'));
    assertGolden('eds-locality-failover', ENDPOINT_TYPE, [c]);
    assert.deepEqual(summary(c).map(([pr, l]) => [pr, l]), [[0, 'region1/zone1'], [1, 'region2/zone2'], [2, 'region3/zone3']]);
    // From region2 the chain is region2 → region3 → the rest.
    const c2 = cla(p, client(p, '127.2.0.50', 'region2', 'zone2'));
    assert.deepEqual(summary(c2).map(([pr, l]) => [pr, l]), [[0, 'region2/zone2'], [1, 'region3/zone3'], [2, 'region1/zone1']]);
  });

  it('default priorities by proximity (no failover list): same zone, same region, then every other region together', () => {
    const p = push([dr(undefined)], endpoints({ zone2: true }));
    const c = cla(p, client(p, '127.1.0.50', 'region1', 'zone1'));
    assert.deepEqual(summary(c).map(([pr, l]) => [pr, l]), [[0, 'region1/zone1'], [1, 'region1/zone2'], [2, 'region2/zone2'], [2, 'region3/zone3']]);
  });

  it('failoverPriority splits localities by matching labels (golden)', () => {
    const p = push([dr({ failoverPriority: ['version', 'topology.kubernetes.io/region'] })]);
    const c = cla(p, client(p, '127.1.0.50', 'region1', 'zone1', { version: 'v1' }));
    assertGolden('eds-locality-failover-priority', ENDPOINT_TYPE, [c]);
    // v1 in region1 → 0; v1 elsewhere → 1; v2 (first label differs) → 2.
    assert.deepEqual(summary(c).map(([pr, l, , a]) => [pr, l, a]), [
      [0, 'region1/zone1', '127.1.0.10'],
      [1, 'region2/zone2', '127.2.0.10'],
      [1, 'region3/zone3', '127.3.0.10'],
      [2, 'region1/zone1', '127.1.0.11'],
    ]);
    // `label=value` compares with the value, not the proxy's label.
    const pv = push([dr({ failoverPriority: ['version=v2'] })]);
    assert.deepEqual(summary(cla(pv, client(pv, '127.1.0.50', 'region1', 'zone1', { version: 'v1' }))).map(([pr, , , a]) => [pr, a]), [
      [0, '127.1.0.11'],
      [1, '127.1.0.10'],
      [1, '127.2.0.10'],
      [1, '127.3.0.10'],
    ]);
  });

  it('distribute 70/20/10 from region1: locality weights, all priority 0, region1 split by its endpoints (golden)', () => {
    const setting: LocalityLbSetting = { enabled: true, distribute: [{ from: 'region1/*', to: { 'region1/*': 70, 'region2/*': 20, 'region3/*': 10 } }] };
    const p = push([dr(setting)], endpoints({ zone2: true }));
    const c = cla(p, client(p, '127.1.0.50', 'region1', 'zone1'));
    assertGolden('eds-locality-distribute', ENDPOINT_TYPE, [c]);
    // region1 has 3 endpoints: zone1 2 of them → ceil(70×2/3) = 47, zone2 → ceil(70/3) = 24.
    assert.deepEqual(summary(c).map(([pr, l, w]) => [pr, l, w]), [[0, 'region1/zone1', 47], [0, 'region1/zone2', 24], [0, 'region2/zone2', 20], [0, 'region3/zone3', 10]]);
    // A proxy outside every `from` gets the flat assignment; distribute needs no outlier detection (Istio).
    const p2 = push([dr(setting, null)], endpoints({ zone2: true }));
    assert.deepEqual(summary(cla(p2, client(p2, '127.1.0.50', 'region1', 'zone1'))).map(([, , w]) => w), [47, 24, 20, 10]);
    assert.deepEqual(summary(cla(p2, client(p2, '127.3.0.50', 'region3', 'zone3'))).map(([pr, , w]) => [pr, w]), [[0, 2], [0, 1], [0, 1], [0, 1]]);
  });

  it('without outlier detection, failover does nothing: one priority (golden)', () => {
    const p = push([dr({ enabled: true, failover: [{ from: 'region1', to: 'region2' }] }, null)]);
    const proxy = client(p, '127.1.0.50', 'region1', 'zone1');
    const c = cla(p, proxy);
    assertGolden('eds-locality-no-outlier', ENDPOINT_TYPE, [c]);
    assert.ok(summary(c).every(([pr]) => pr === 0));
    assert.equal(localityClassOf(p, proxy).key, '', 'no locality-dependent rule: EDS stays shared per network');
    // enabled: false turns it off even with outlier detection.
    const off = push([dr({ enabled: false, failover: [{ from: 'region1', to: 'region2' }] })]);
    assert.ok(summary(cla(off, client(off, '127.1.0.50', 'region1', 'zone1'))).every(([pr]) => pr === 0));
  });

  it("the root namespace's *.cluster.local rule applies (seed 002)", () => {
    const p = push([dr({ enabled: true, failover: [{ from: 'region1', to: 'region2' }] }, OUTLIER, '*.cluster.local', 'istio-system')]);
    assert.deepEqual(summary(cla(p, client(p, '127.1.0.50', 'region1', 'zone1'))).map(([pr]) => pr), [0, 1, 2]);
  });

  it("endpoints behind another network's gateway keep their locality and priority", () => {
    const p = push([dr({ failover: [{ from: 'region1', to: 'region2' }] })], endpoints({ network2: true }), { network1: [], network2: [{ address: '127.2.0.100', port: 15443 }] });
    assert.deepEqual(summary(cla(p, client(p, '127.1.0.50', 'region1', 'zone1'))), [
      [0, 'region1/zone1', 2, '127.1.0.10,127.1.0.11'],
      [1, 'region2/zone2', 1, '127.2.0.100'],
      [2, 'region3/zone3', 1, '127.3.0.10'],
    ]);
  });

  it('the proxy locality falls back to its own workload; EDS is serialized once per locality class', () => {
    const p = push([dr({ failover: [{ from: 'region1', to: 'region2' }] })]);
    // 127.2.0.10 is helloworld's region2 workload: a sidecar there without node locality is in region2.
    const own = client(p, '127.2.0.10', '', '', {}, false);
    assert.deepEqual(summary(cla(p, own)).map(([pr, l]) => [pr, l]), [[0, 'region2/zone2'], [1, 'region1/zone1'], [1, 'region3/zone3']]);
    const a = generateResources(p, client(p, '127.1.0.50', 'region1', 'zone1'), ENDPOINT_TYPE);
    const b = generateResources(p, client(p, '127.1.0.51', 'region1', 'zone1'), ENDPOINT_TYPE);
    const c = generateResources(p, client(p, '127.3.0.51', 'region3', 'zone3'), ENDPOINT_TYPE);
    assert.equal(a[0], b[0], 'same locality: the very same serialized resources');
    assert.notEqual(a[0], c[0]);
  });
});

describe('the proxy load balancer on the generated failover EDS', () => {
  const setting: LocalityLbSetting = { failover: [{ from: 'region1', to: 'region2' }] };
  const settings = { lbPolicy: 'ROUND_ROBIN' as const, localityWeightedLb: true, healthyPanicThreshold: 50, leastRequestChoiceCount: 2 };

  function balancer(health: Partial<Record<string, Health>>): ClusterLoadBalancer {
    const p = push([dr(setting)], endpoints({ health }));
    const decoded = decodeEndpoints(cla(p, client(p, '127.1.0.50', 'region1', 'zone1')));
    if ('errors' in decoded) assert.fail(decoded.errors.join('\n'));
    return new ClusterLoadBalancer(settings, decoded.ok, { random: seededRandom(7) });
  }

  function spread(lb: ClusterLoadBalancer, n = 1000): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = lb.pick();
      assert.equal(r.kind, 'endpoint');
      if (r.kind === 'endpoint') out[r.endpoint.address] = (out[r.endpoint.address] ?? 0) + 1;
    }
    return out;
  }

  it('100 % to P0 (region1) while healthy', () => {
    const lb = balancer({});
    assert.deepEqual(lb.priorityLoad.healthy, [100, 0, 0]);
    const s = spread(lb);
    assert.deepEqual(Object.keys(s).sort(), ['127.1.0.10', '127.1.0.11']);
  });

  it("moves to P1 (region2) when P0's endpoints are unhealthy, then P2 (region3)", () => {
    const lb = balancer({ '127.1.0.10': 'UNHEALTHY', '127.1.0.11': 'UNHEALTHY' });
    assert.deepEqual(lb.priorityLoad.healthy, [0, 100, 0]);
    assert.deepEqual(spread(lb), { '127.2.0.10': 1000 });
    const lb2 = balancer({ '127.1.0.10': 'UNHEALTHY', '127.1.0.11': 'UNHEALTHY', '127.2.0.10': 'UNHEALTHY' });
    assert.deepEqual(spread(lb2), { '127.3.0.10': 1000 });
  });

  it('half of P0 unhealthy: P0 keeps 70 % (overprovisioning 1.4), P1 takes the rest', () => {
    const lb = balancer({ '127.1.0.11': 'UNHEALTHY' });
    assert.deepEqual(lb.priorityLoad.healthy, [70, 30, 0]);
  });

  it('outlier ejection of P0 hosts moves traffic the same way', () => {
    const p = push([dr(setting)]);
    const decoded = decodeEndpoints(cla(p, client(p, '127.1.0.50', 'region1', 'zone1')));
    if ('errors' in decoded) assert.fail(decoded.errors.join('\n'));
    const ejected = new Set(['127.1.0.10:5000', '127.1.0.11:5000']);
    const lb = new ClusterLoadBalancer(settings, decoded.ok, { random: seededRandom(3), ejections: { isEjected: (k) => ejected.has(k), generation: 1 } });
    assert.deepEqual(spread(lb, 200), { '127.2.0.10': 200 });
  });
});
