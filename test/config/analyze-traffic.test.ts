/**
 * `isle analyze` checks of issue 6: conflicting VirtualServices for one host, locality settings
 * without outlier detection, failover to a region no workload is in (and route weights, which
 * validation already refuses).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { analyze } from '../../src/config/analyze.js';
import { parseConfigText } from '../../src/config/parse.js';
import { formatConfigError, type Resource } from '../../src/config/types.js';

function parse(files: Record<string, string>): { resources: Resource[]; errors: string[] } {
  const resources: Resource[] = [];
  const errors: string[] = [];
  for (const [f, text] of Object.entries(files)) {
    const r = parseConfigText(f, text);
    errors.push(...r.errors.map(formatConfigError));
    resources.push(...r.resources);
  }
  return { resources, errors };
}

/** Analysis of valid files, only the analyzers named. */
function run(files: Record<string, string>, only: string[]): string[] {
  const { resources, errors } = parse(files);
  assert.deepEqual(errors.filter((e) => !e.includes('warning')), []);
  return analyze(resources).filter((e) => only.some((o) => e.message.includes(o))).map(formatConfigError);
}

const SVC = `apiVersion: v1
kind: Service
metadata: {name: helloworld, namespace: sample}
spec:
  ports: [{port: 5000, name: http}]
`;
const DR_SUBSETS = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: hw-subsets, namespace: sample}
spec:
  host: helloworld
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
`;

const vs = (name: string, http: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: sample}
spec:
  hosts: [helloworld]
  http:
${http}`;

describe('analyze: VirtualServices for one host', () => {
  const jasonV2 = `  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: helloworld, subset: v2}}]
`;
  const catchAllV1 = `  - route: [{destination: {host: helloworld, subset: v1}}]
`;

  it('merged without conflict: different matches, one catch-all', () => {
    assert.deepEqual(run({ 's.yaml': SVC, 'd.yaml': DR_SUBSETS, 'a.yaml': vs('a', jasonV2), 'b.yaml': vs('b', catchAllV1) }, ['host helloworld']), []);
  });

  it('both have a catch-all route', () => {
    assert.deepEqual(run({ 's.yaml': SVC, 'd.yaml': DR_SUBSETS, 'a.yaml': vs('a', catchAllV1), 'b.yaml': vs('b', `  - route: [{destination: {host: helloworld, subset: v2}}]\n`) }, ['host helloworld']), [
      'b.yaml:7 VirtualService sample/b: warning: spec.http[0]: host helloworld.sample.svc.cluster.local: VirtualService sample/a (a.yaml:1) also has a catch-all route, which comes first when they are merged; this route never matches [IST0109]',
    ]);
  });

  it('the same match with different destinations; the same match and destination is fine', () => {
    const jasonV1 = jasonV2.replace('subset: v2', 'subset: v1');
    assert.deepEqual(run({ 's.yaml': SVC, 'd.yaml': DR_SUBSETS, 'a.yaml': vs('a', jasonV2), 'b.yaml': vs('b', jasonV1) }, ['host helloworld']), [
      'b.yaml:7 VirtualService sample/b: warning: spec.http[0].match: host helloworld.sample.svc.cluster.local: VirtualService sample/a (a.yaml:1) has the same match with other destinations (helloworld.sample.svc.cluster.local/v2); it comes first when they are merged, so this route never matches [IST0109]',
    ]);
    assert.deepEqual(run({ 's.yaml': SVC, 'd.yaml': DR_SUBSETS, 'a.yaml': vs('a', jasonV2), 'b.yaml': vs('b', jasonV2) }, ['host helloworld']), []);
  });
});

describe('analyze: route weights', () => {
  it('weights not summing to 100 are a validation error (isle analyze prints it)', () => {
    const { errors } = parse({ 'a.yaml': vs('a', `  - route:\n    - {destination: {host: helloworld, subset: v1}, weight: 70}\n    - {destination: {host: helloworld, subset: v2}, weight: 20}\n`) });
    assert.ok(errors.some((e) => e.includes('weights must sum to 100 (got 90)')), errors.join('\n'));
  });
});

const dr = (tp: string, extra = '') => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: global, namespace: istio-system}
spec:
  host: "*.cluster.local"
  trafficPolicy:
${tp}${extra}`;

const FAILOVER = `    loadBalancer:
      localityLbSetting:
        enabled: true
        failover:
        - {from: region1, to: region2}
`;
const DISTRIBUTE = `    loadBalancer:
      localityLbSetting:
        enabled: true
        distribute:
        - from: region1/*
          to: {"region1/*": 70, "region2/*": 20, "region3/*": 10}
`;
const OUTLIER = `    outlierDetection: {consecutive5xxErrors: 1, interval: 10s, baseEjectionTime: 600s, maxEjectionPercent: 100}
`;

describe('analyze: locality load balancing without outlier detection', () => {
  it('failover without outlierDetection is a warning (validation), and with it nothing is said', () => {
    const { errors } = parse({ 'dr.yaml': dr(FAILOVER) });
    assert.ok(errors.some((e) => e.includes('warning') && e.includes('locality failover has no effect without outlierDetection')), errors.join('\n'));
    assert.deepEqual(run({ 'dr.yaml': dr(FAILOVER, OUTLIER) }, ['outlierDetection']), []);
  });

  it('distribute without outlierDetection (seed 002 with the outlier block forgotten)', () => {
    assert.deepEqual(run({ 'dr.yaml': dr(DISTRIBUTE) }, ['outlierDetection']), [
      'dr.yaml:8 DestinationRule istio-system/global: warning: spec.trafficPolicy.loadBalancer.localityLbSetting: locality distribute without outlierDetection: unhealthy endpoints are never detected, so each locality keeps its share of traffic even when its endpoints fail (add outlierDetection)',
    ]);
    assert.deepEqual(run({ 'dr.yaml': dr(DISTRIBUTE, OUTLIER) }, ['outlierDetection']), []);
  });

  it('a subset inherits the rule-level outlierDetection; without one anywhere it warns', () => {
    const sub = `  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        localityLbSetting:
          failover: [{from: region1, to: region2}]
`;
    const withTop = dr(OUTLIER) + sub;
    assert.deepEqual(run({ 'dr.yaml': withTop }, ['outlierDetection']), []);
    const without = dr(`    connectionPool: {tcp: {maxConnections: 10}}\n`) + sub;
    assert.deepEqual(run({ 'dr.yaml': without }, ['outlierDetection (neither']), [
      'dr.yaml:13 DestinationRule istio-system/global: warning: spec.subsets[0].trafficPolicy.loadBalancer.localityLbSetting: locality failover without outlierDetection (neither the subset nor the rule has one): traffic never fails over to another locality',
    ]);
  });
});

describe('analyze: failover to a region no workload is in', () => {
  const we = (name: string, locality: string) => `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ${name}, namespace: sample}
spec: {address: 127.1.0.${name.length}, locality: ${locality}, labels: {app: helloworld}}
`;
  const mesh = `apiVersion: mesh.isle.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {clusterName: cluster-1, defaultLocality: region3/zone3}
`;

  it('warns about the unknown side, naming the known regions', () => {
    const failover = FAILOVER.replace('to: region2', 'to: regoin2');
    assert.deepEqual(run({ 'dr.yaml': dr(failover, OUTLIER), 'we.yaml': we('a', 'region1/zone1'), 'mesh.yaml': mesh }, ['no workload is in region']), [
      'dr.yaml:11 DestinationRule istio-system/global: warning: spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0].to: no workload is in region "regoin2" (known regions: region1, region3)',
    ]);
  });

  it('regions from WorkloadEntries, ServiceEntry endpoints (locality or labels) and MeshConfig count', () => {
    const se = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: remote, namespace: sample}
spec:
  hosts: [helloworld.sample.global]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{name: http, number: 5000, protocol: HTTP}]
  endpoints: [{address: 127.2.0.100, labels: {topology.kubernetes.io/region: region2}}]
`;
    assert.deepEqual(run({ 'dr.yaml': dr(FAILOVER, OUTLIER), 'we.yaml': we('a', 'region1/zone1'), 'se.yaml': se }, ['no workload is in region']), []);
  });

  it('says nothing when the config knows no locality at all (workloads register themselves)', () => {
    assert.deepEqual(run({ 'dr.yaml': dr(FAILOVER, OUTLIER) }, ['no workload is in region']), []);
  });
});
