/**
 * VirtualService → RDS and DestinationRule → CDS goldens (issue 6 items 1, 2 and client auto
 * mTLS). Each golden holds only the resources the case is about, so a change elsewhere does not
 * churn them; every one is also decoded by Isle's proxy (test/proxy/decode/decode.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DestinationRuleSpec, VirtualServiceSpec } from '../../src/config/kinds/networking.js';
import type { Resource } from '../../src/config/types.js';
import { buildPushContext, type PushContext } from '../../src/model/pushcontext.js';
import { clusterGroups, generateClusters } from '../../src/generate/cds.js';
import { generateRoutes, routeGroups } from '../../src/generate/rds.js';
import { analyzeVirtualServices, mergeHttpRules, vsConflicts } from '../../src/generate/virtualservice.js';
import type { Endpoint } from '../../src/registry/model.js';
import { CLUSTER_TYPE, ROUTE_TYPE } from '../../src/mesh/typeurls.js';
import { endpoints, ep, helloworld, helloworldDr, push, sidecar, sleepSidecar, svc, loc } from './fixtures.js';
import { assertGolden } from './golden.js';
import { decodeRouteConfig } from '../../src/proxy/decode/index.js';

const src = { file: 'test.yaml', line: 1 };
type R = Record<string, unknown>;

function vs(name: string, namespace: string, spec: VirtualServiceSpec): Resource<VirtualServiceSpec> {
  return { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace }, spec, source: src };
}
function dr(name: string, namespace: string, spec: DestinationRuleSpec): Resource<DestinationRuleSpec> {
  return { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name, namespace }, spec, source: src };
}

/** The virtual hosts of helloworld in the sleep sidecar's RDS (namespace sample). */
function hwVhosts(p: PushContext, ns = 'sample', labels: Record<string, string> = { app: 'sleep' }): R[] {
  const rc = generateRoutes(p, sidecar(p, '127.1.0.20', 'sleep', ns, { LABELS: labels }))[0]!;
  const vhosts = (rc['virtual_hosts'] as R[]).filter((v) => String(v['name']).startsWith('helloworld.'));
  return [{ ...rc, virtual_hosts: vhosts }];
}

function hwClusters(p: PushContext, host = 'helloworld.sample.svc.cluster.local', ns = 'sample'): R[] {
  return generateClusters(p, sidecar(p, '127.1.0.20', 'sleep', ns, {})).filter((c) => String(c['name']).endsWith(`|${host}`));
}

const routesOf = (rc: R[], port: number): R[] =>
  ((rc[0]!['virtual_hosts'] as R[]).find((v) => v['name'] === `helloworld.sample.svc.cluster.local:${port}`)?.['routes'] as R[]) ?? [];

describe('VirtualService → RDS', () => {
  it('match kinds: uri exact/prefix/regex, headers, withoutHeaders, queryParams, method, port', () => {
    const p = push({
      virtualServices: [
        vs('hw', 'sample', {
          hosts: ['helloworld'],
          http: [
            { name: 'exact', match: [{ uri: { exact: '/hello' }, method: { exact: 'GET' } }], route: [{ destination: { host: 'helloworld', subset: 'v1' } }] },
            {
              name: 'hdr',
              match: [
                { name: 'a', headers: { 'End-User': { exact: 'jason' }, 'x-canary': { prefix: 'yes' }, 'x-re': { regex: 'v[0-9]+' }, 'x-present': {} } },
                { name: 'b', uri: { regex: '/api/v[12]/.*' }, ignoreUriCase: true, queryParams: { debug: { exact: '1' }, q: {} } },
              ],
              route: [{ destination: { host: 'helloworld', subset: 'v2' } }],
            },
            { match: [{ uri: { prefix: '/admin' }, withoutHeaders: { 'x-admin': {} } }], directResponse: { status: 403, body: { string: 'no' } } },
            // Only on the 9000 virtual host.
            { match: [{ port: 9000 }], route: [{ destination: { host: 'helloworld', port: { number: 9000 } } }] },
            { route: [{ destination: { host: 'helloworld' } }] },
          ],
        }),
      ],
    });
    const rc = hwVhosts(p);
    assertGolden('rds-vs-match', ROUTE_TYPE, rc);
    assert.equal(routesOf(rc, 5000).length, 5, 'the port-9000 rule is not on 5000');
    assert.deepEqual(routesOf(rc, 9000).map((r) => r['name'] ?? ''), ['exact', 'hdr.a', 'hdr.b', '', '', '']);
    // The VirtualService replaces the default route.
    assert.ok(!routesOf(rc, 5000).some((r) => r['name'] === 'default'));
  });

  it('weights, timeout, retries', () => {
    const p = push({
      virtualServices: [
        vs('hw', 'sample', {
          hosts: ['helloworld.sample.svc.cluster.local'],
          http: [
            {
              match: [{ uri: { prefix: '/slow' } }],
              timeout: '2.5s',
              retries: { attempts: 4, perTryTimeout: '500ms', retryOn: 'gateway-error,connect-failure,429' },
              route: [
                { destination: { host: 'helloworld', subset: 'v1' }, weight: 75 },
                { destination: { host: 'helloworld', subset: 'v2' }, weight: 25 },
                { destination: { host: 'helloworld', subset: 'v3' }, weight: 0 },
              ],
            },
            { match: [{ uri: { prefix: '/once' } }], retries: { attempts: 0 }, timeout: '1m', route: [{ destination: { host: 'helloworld' } }] },
            { route: [{ destination: { host: 'helloworld' } }] },
          ],
        }),
      ],
    });
    const rc = hwVhosts(p);
    assertGolden('rds-vs-weights-retries', ROUTE_TYPE, rc);
    const [w, once] = routesOf(rc, 5000) as [R, R];
    const ra = w['route'] as R;
    assert.deepEqual((ra['weighted_clusters'] as R)['clusters'], [
      { name: 'outbound|5000|v1|helloworld.sample.svc.cluster.local', weight: 75 },
      { name: 'outbound|5000|v2|helloworld.sample.svc.cluster.local', weight: 25 },
    ]);
    assert.equal((ra['retry_policy'] as R)['retry_on'], 'gateway-error,connect-failure,retriable-status-codes');
    assert.equal((once['route'] as R)['retry_policy'], undefined);
    assert.equal((once['route'] as R)['timeout'], '60s');
  });

  it('fault delay and abort as per-route config of the fault filter', () => {
    const p = push({
      virtualServices: [
        vs('hw', 'sample', {
          hosts: ['helloworld'],
          http: [
            {
              fault: { delay: { fixedDelay: '7s', percentage: { value: 12.5 } }, abort: { httpStatus: 503, percentage: { value: 100 } } },
              route: [{ destination: { host: 'helloworld' } }],
            },
          ],
        }),
      ],
    });
    assertGolden('rds-vs-fault', ROUTE_TYPE, hwVhosts(p));
  });

  it('fault abort grpcStatus: Envoy grpc_status by number; the proxy decodes it', () => {
    const p = push({
      virtualServices: [
        vs('hw', 'sample', {
          hosts: ['helloworld'],
          http: [{ fault: { abort: { grpcStatus: 'RESOURCE_EXHAUSTED', percentage: { value: 50 } } }, route: [{ destination: { host: 'helloworld' } }] }],
        }),
      ],
    });
    const rc = hwVhosts(p);
    const r = routesOf(rc, 5000)[0]!;
    const fault = (r['typed_per_filter_config'] as R)['envoy.filters.http.fault'] as R;
    assert.deepEqual(fault['abort'], { grpc_status: 8, percentage: { numerator: 500000, denominator: 'MILLION' } });
    const d = decodeRouteConfig(rc[0]);
    if ('errors' in d) assert.fail(d.errors.join('; '));
    const abort = d.ok.virtualHosts[0]!.routes[0]!.fault!.abort!;
    assert.equal(abort.grpcStatus, 8);
    assert.equal(abort.httpStatus, 200);
  });

  it('rewrite, redirect, headers, mirror', () => {
    const p = push({
      virtualServices: [
        vs('hw', 'sample', {
          hosts: ['helloworld'],
          http: [
            { match: [{ uri: { prefix: '/old' } }], redirect: { uri: '/new', authority: 'new.example.com', redirectCode: 308 } },
            { match: [{ uri: { prefix: '/v1/' } }], rewrite: { uri: '/', authority: 'helloworld-v1' }, route: [{ destination: { host: 'helloworld' } }] },
            { match: [{ uri: { regex: '/r/.*' } }], rewrite: { uri: '/r' }, route: [{ destination: { host: 'helloworld' } }] },
            {
              headers: { request: { set: { 'x-env': 'prod' }, add: { 'x-trace': 'on' }, remove: ['x-internal'] }, response: { set: { 'cache-control': 'no-store' }, remove: ['server'] } },
              mirror: { host: 'helloworld', subset: 'v2' },
              mirrorPercentage: { value: 50 },
              route: [
                { destination: { host: 'helloworld', subset: 'v1' }, weight: 90, headers: { request: { set: { 'x-subset': 'v1' } } } },
                { destination: { host: 'helloworld', subset: 'v2' }, weight: 10 },
              ],
            },
          ],
        }),
      ],
    });
    assertGolden('rds-vs-rewrite-redirect-headers-mirror', ROUTE_TYPE, hwVhosts(p));
  });

  it('two VirtualServices for one host are merged in namespace/name order; a shadowed rule is reported', () => {
    const a = vs('hw-a', 'sample', { hosts: ['helloworld'], http: [{ match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: { host: 'helloworld', subset: 'v2' } }] }, { route: [{ destination: { host: 'helloworld', subset: 'v1' } }] }] });
    const b = vs('hw-b', 'sample', { hosts: ['helloworld.sample.svc.cluster.local'], http: [{ match: [{ uri: { prefix: '/b' } }], route: [{ destination: { host: 'helloworld' } }] }] });
    const p = push({ virtualServices: [b, a] });
    const rc = hwVhosts(p);
    assertGolden('rds-vs-merge', ROUTE_TYPE, rc);
    assert.equal(routesOf(rc, 5000).length, 3);
    const host = 'helloworld.sample.svc.cluster.local';
    const conflicts = vsConflicts(host, mergeHttpRules(p.virtualServicesByHost.get(host)!));
    assert.equal(conflicts.length, 1);
    assert.match(conflicts[0]!.message, /sample\/hw-b http\[0\] is a route shadowed by the catch-all sample\/hw-a http\[1\]/);
    assert.equal(analyzeVirtualServices(p).length, 1);
    // Two catch-alls: the second is reported as such.
    const c2 = vsConflicts(host, mergeHttpRules([a, vs('z', 'sample', { hosts: ['helloworld'], http: [{ route: [{ destination: { host: 'helloworld' } }] }] })]));
    assert.match(c2[0]!.message, /a second catch-all route/);
  });

  it("exportTo '.' hides a VirtualService from other namespaces; '*' and names show it", () => {
    const p = push({
      virtualServices: [vs('hw', 'sample', { hosts: ['helloworld.sample.svc.cluster.local'], exportTo: ['.'], http: [{ timeout: '3s', route: [{ destination: { host: 'helloworld', subset: 'v1' } }] }] })],
    });
    const own = hwVhosts(p, 'sample');
    const other = hwVhosts(p, 'bookinfo');
    assertGolden('rds-vs-exportto', ROUTE_TYPE, own);
    assert.equal((routesOf(own, 5000)[0]!['route'] as R)['timeout'], '3s');
    const otherRoutes = (other[0]!['virtual_hosts'] as R[]).find((v) => v['name'] === 'helloworld.sample.svc.cluster.local:5000')!['routes'] as R[];
    assert.equal(otherRoutes[0]!['name'], 'default');
    const q = push({ virtualServices: [vs('hw', 'sample', { hosts: ['helloworld.sample.svc.cluster.local'], exportTo: ['bookinfo'], http: [{ route: [{ destination: { host: 'helloworld', subset: 'v1' } }] }] })] });
    const vis = (q2: PushContext, ns: string) => ((hwVhosts(q2, ns)[0]!['virtual_hosts'] as R[])[0]!['routes'] as R[])[0]!['name'];
    assert.equal(vis(q, 'bookinfo'), undefined);
    assert.equal(vis(q, 'sample'), 'default');
    // gateways without `mesh`: not for sidecars.
    const g = push({ virtualServices: [vs('gw', 'sample', { hosts: ['helloworld'], gateways: ['ingress'], http: [{ route: [{ destination: { host: 'helloworld', subset: 'v1' } }] }] })] });
    assert.equal(vis(g, 'sample'), 'default');
  });

  it('sourceLabels: only proxies with matching labels get the rule; RDS stays shared otherwise', () => {
    const p = push({
      virtualServices: [
        vs('hw', 'sample', {
          hosts: ['helloworld'],
          http: [
            { match: [{ sourceLabels: { app: 'sleep', version: 'canary' } }], route: [{ destination: { host: 'helloworld', subset: 'v2' } }] },
            { route: [{ destination: { host: 'helloworld', subset: 'v1' } }] },
          ],
        }),
      ],
    });
    const canary = hwVhosts(p, 'sample', { app: 'sleep', version: 'canary' });
    const plain = hwVhosts(p, 'sample', { app: 'sleep' });
    assertGolden('rds-vs-sourcelabels', ROUTE_TYPE, canary);
    assert.equal(routesOf(canary, 5000).length, 2);
    assert.equal(routesOf(plain, 5000).length, 1);
    const key = (labels: Record<string, string>) => routeGroups(p, sidecar(p, '127.1.0.21', 'x', 'sample', { LABELS: labels }))[0]!.shareKey;
    assert.notEqual(key({ app: 'sleep', version: 'canary' }), key({ app: 'sleep' }));
    assert.equal(key({ app: 'other' }), key({ app: 'sleep' }));
    // No sourceLabels anywhere: one config per namespace, as before.
    assert.equal(routeGroups(push(), sleepSidecar(push()))[0]!.shareKey, 'ns|sample');
  });
});

// ---------------------------------------------------------------------------------------------
// seed 003: helloworld.hello.global, subsets v2/v3 behind cluster-2's gateway, end-user: jason
// ---------------------------------------------------------------------------------------------

function seed003(): PushContext {
  const local = svc('helloworld', 'hello', [{ name: 'http', port: 5000, targetPort: 5000, protocol: 'HTTP' }]);
  const global = svc('helloworld-global', 'hello', [{ name: 'http1', port: 5000, targetPort: 5000, protocol: 'HTTP' }], {
    hostname: 'helloworld.hello.global',
    kind: 'ServiceEntry',
    location: 'MESH_INTERNAL',
    resolution: 'DNS',
    addresses: ['127.255.0.8'],
  });
  const eps: Endpoint[] = [
    ep(local, { address: '127.1.0.40', port: 5000, servicePort: 5000, portName: 'http', sa: 'helloworld', labels: { app: 'helloworld', version: 'v1' }, workload: 'helloworld-v1' }),
    { ...ep(global, { address: '127.2.0.100', port: 15443, servicePort: 5000, portName: 'http1', network: '', locality: loc(''), workload: 'helloworld-0' }), source: 'ServiceEntry' },
  ];
  return buildPushContext({
    version: 'v1',
    mesh: { trustDomain: 'cluster.local', clusterName: 'cluster-1', network: 'network1', rootNamespace: 'istio-system' },
    services: [local, global],
    endpoints: eps,
    destinationRules: [
      dr('helloworld-global', 'hello', { host: 'helloworld.hello.global', trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } }, subsets: [{ name: 'v2', labels: { version: 'v2' } }, { name: 'v3', labels: { version: 'v3' } }] }),
      dr('helloworld', 'hello', { host: 'helloworld.hello.svc.cluster.local', trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } }, subsets: [{ name: 'v1', labels: { version: 'v1' } }] }),
    ],
    virtualServices: [
      vs('helloworld', 'hello', {
        hosts: ['helloworld.hello.svc.cluster.local', 'helloworld.hello.global'],
        http: [
          {
            match: [{ headers: { 'end-user': { exact: 'jason' } } }],
            route: [
              { destination: { host: 'helloworld.hello.global', subset: 'v2' }, weight: 70 },
              { destination: { host: 'helloworld.hello.global', subset: 'v3' }, weight: 30 },
            ],
          },
          { route: [{ destination: { host: 'helloworld.hello.svc.cluster.local', subset: 'v1' } }] },
        ],
      }),
    ],
  });
}

describe('seed 003', () => {
  it('RDS: end-user jason → 70/30 v2/v3 of helloworld.hello.global, everyone else → v1', () => {
    const p = seed003();
    const rds = generateRoutes(p, sidecar(p, '127.1.0.41', 'sleep', 'hello', {}));
    assertGolden('rds-seed003', ROUTE_TYPE, rds);
    const vhosts = rds[0]!['virtual_hosts'] as R[];
    assert.equal(vhosts.length, 2);
    for (const v of vhosts) {
      const [jason, rest] = v['routes'] as [R, R];
      assert.deepEqual(((jason['route'] as R)['weighted_clusters'] as R)['clusters'], [
        { name: 'outbound|5000|v2|helloworld.hello.global', weight: 70 },
        { name: 'outbound|5000|v3|helloworld.hello.global', weight: 30 },
      ]);
      assert.equal((rest['route'] as R)['cluster'], 'outbound|5000|v1|helloworld.hello.svc.cluster.local');
    }
  });

  it('CDS: subset clusters of the .global entry speak ISTIO_MUTUAL with the subset SNI', () => {
    const p = seed003();
    const cds = generateClusters(p, sidecar(p, '127.1.0.41', 'sleep', 'hello', {})).filter((c) => String(c['name']).startsWith('outbound|'));
    assertGolden('cds-seed003', CLUSTER_TYPE, cds);
    const v2 = cds.find((c) => c['name'] === 'outbound|5000|v2|helloworld.hello.global')!;
    assert.equal(((v2['transport_socket'] as R)['typed_config'] as R)['sni'], 'outbound_.5000_.v2_.helloworld.hello.global');
  });
});

// ---------------------------------------------------------------------------------------------
// DestinationRule → CDS
// ---------------------------------------------------------------------------------------------

describe('DestinationRule → CDS', () => {
  it('LB, connection pool, outlier detection, port-level settings, subset override', () => {
    const p = push({
      destinationRules: [
        dr('helloworld', 'sample', {
          host: 'helloworld',
          trafficPolicy: {
            loadBalancer: { simple: 'LEAST_REQUEST' },
            connectionPool: { tcp: { maxConnections: 100, connectTimeout: '2s' }, http: { http1MaxPendingRequests: 10, maxRequestsPerConnection: 5, maxRetries: 3 } },
            outlierDetection: { consecutive5xxErrors: 1, interval: '10s', baseEjectionTime: '600s', maxEjectionPercent: 100 },
            portLevelSettings: [{ port: { number: 9000 }, loadBalancer: { simple: 'RANDOM' }, outlierDetection: { consecutiveGatewayErrors: 2 } }],
          },
          subsets: [
            { name: 'v1', labels: { version: 'v1' }, trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, connectionPool: { tcp: { maxConnections: 1 } } } },
            { name: 'v2', labels: { version: 'v2' } },
          ],
        }),
      ],
    });
    const cs = hwClusters(p);
    assertGolden('cds-dr-policies', CLUSTER_TYPE, cs);
    const by = (n: string) => cs.find((c) => c['name'] === n)!;
    assert.equal(by('outbound|5000||helloworld.sample.svc.cluster.local')['lb_policy'], 'LEAST_REQUEST');
    assert.equal(by('outbound|5000|v1|helloworld.sample.svc.cluster.local')['lb_policy'], undefined, 'the subset says ROUND_ROBIN');
    assert.equal(by('outbound|9000||helloworld.sample.svc.cluster.local')['lb_policy'], 'RANDOM');
    assert.deepEqual(by('outbound|5000||helloworld.sample.svc.cluster.local')['outlier_detection'], {
      enforcing_success_rate: 0, consecutive_5xx: 1, enforcing_consecutive_5xx: 100, interval: '10s', base_ejection_time: '600s', max_ejection_percent: 100,
    });
    assert.deepEqual((by('outbound|9000||helloworld.sample.svc.cluster.local')['outlier_detection'] as R)['enforcing_consecutive_gateway_failure'], 100);
  });

  it('tls modes: DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL with sni and subjectAltNames', () => {
    const p = push({
      destinationRules: [
        dr('helloworld', 'sample', {
          host: 'helloworld',
          trafficPolicy: {
            tls: { mode: 'DISABLE' },
            portLevelSettings: [{ port: { number: 9000 }, tls: { mode: 'ISTIO_MUTUAL', sni: 'hw.internal', subjectAltNames: ['spiffe://cluster.local/ns/sample/sa/helloworld'] } }],
          },
          subsets: [
            { name: 'simple', labels: { version: 'v1' }, trafficPolicy: { tls: { mode: 'SIMPLE', caCertificates: '/etc/certs/ca.pem', sni: 'hw.example.com', subjectAltNames: ['hw.example.com'] } } },
            { name: 'mutual', labels: { version: 'v2' }, trafficPolicy: { tls: { mode: 'MUTUAL', clientCertificate: '/etc/certs/cert.pem', privateKey: '/etc/certs/key.pem', caCertificates: '/etc/certs/ca.pem' } } },
          ],
        }),
      ],
    });
    const cs = hwClusters(p).filter((c) => String(c['name']).startsWith('outbound|5000|') || c['name'] === 'outbound|9000||helloworld.sample.svc.cluster.local');
    assertGolden('cds-dr-tls', CLUSTER_TYPE, cs);
    assert.equal(cs.find((c) => c['name'] === 'outbound|5000||helloworld.sample.svc.cluster.local')!['transport_socket'], undefined);
  });

  it("the root namespace's *.cluster.local rule applies to every service without a more specific one (seed 002)", () => {
    const global = dr('global', 'istio-system', {
      host: '*.cluster.local',
      trafficPolicy: { outlierDetection: { baseEjectionTime: '600s', consecutive5xxErrors: 1, interval: '10s', maxEjectionPercent: 100 } },
    });
    const p = push({ destinationRules: [global, helloworldDr] });
    const cds = generateClusters(p, sleepSidecar(p)).filter((c) => String(c['name']).startsWith('outbound|'));
    const reviews = cds.filter((c) => String(c['name']).endsWith('reviews.bookinfo.svc.cluster.local'));
    assertGolden('cds-dr-root-wildcard', CLUSTER_TYPE, reviews);
    assert.ok(reviews[0]!['outlier_detection']);
    // helloworld has its own rule (its namespace), which wins; ServiceEntry hosts do not match.
    assert.equal(cds.find((c) => c['name'] === 'outbound|5000||helloworld.sample.svc.cluster.local')!['outlier_detection'], undefined);
    assert.equal(cds.find((c) => c['name'] === 'outbound|80||httpbin.org')!['outlier_detection'], undefined);
  });

  it('exportTo: a rule exported only to its namespace; CDS is shared per visibility', () => {
    const hidden = dr('helloworld', 'sample', { host: 'helloworld', exportTo: ['.'], trafficPolicy: { loadBalancer: { simple: 'RANDOM' } }, subsets: helloworldDr.spec.subsets! });
    const p = push({ destinationRules: [hidden] });
    assert.equal(hwClusters(p, undefined, 'sample')[0]!['lb_policy'], 'RANDOM');
    assert.equal(hwClusters(p, undefined, 'bookinfo')[0]!['lb_policy'], undefined);
    const key = (ns: string) => clusterGroups(p, sidecar(p, '127.1.0.22', 'x', ns, {}))[0]!.shareKey;
    assert.notEqual(key('sample'), key('bookinfo'));
    assert.equal(key('bookinfo'), key('other'));
    assert.equal(clusterGroups(push(), sleepSidecar(push()))[0]!.shareKey, 'outbound');
  });

  it('auto mTLS: plaintext to ServiceEntry endpoints without a sidecar and to tlsMode: disabled workloads', () => {
    const legacy = svc('legacy', 'sample', [{ name: 'http', port: 8080, targetPort: 8080, protocol: 'HTTP' }]);
    const db = svc('db', 'sample', [{ name: 'http', port: 7000, targetPort: 7000, protocol: 'HTTP' }], { hostname: 'db.internal', kind: 'ServiceEntry', resolution: 'STATIC' });
    const meshSe = svc('api', 'sample', [{ name: 'http', port: 7001, targetPort: 7001, protocol: 'HTTP' }], { hostname: 'api.internal', kind: 'ServiceEntry', resolution: 'STATIC' });
    const p = push({
      services: [helloworld, legacy, db, meshSe],
      endpoints: [
        ...endpoints,
        ep(legacy, { address: '127.1.0.50', port: 8080, servicePort: 8080, portName: 'http', labels: { app: 'legacy', 'security.istio.io/tlsMode': 'disabled' }, workload: 'legacy' }),
        { ...ep(db, { address: '10.0.0.7', port: 7000, servicePort: 7000, portName: 'http', workload: 'db-0' }), source: 'ServiceEntry' },
        { ...ep(meshSe, { address: '10.0.0.8', port: 7001, servicePort: 7001, portName: 'http', labels: { 'security.istio.io/tlsMode': 'istio' }, workload: 'api-0' }), source: 'ServiceEntry' },
      ],
    });
    const cs = generateClusters(p, sleepSidecar(p)).filter((c) => /legacy|db\.internal|api\.internal/.test(String(c['name'])));
    assertGolden('cds-auto-mtls', CLUSTER_TYPE, cs);
    const tls = (n: string) => cs.find((c) => String(c['name']).includes(n))!['transport_socket'];
    assert.equal(tls('legacy'), undefined);
    assert.equal(tls('db.internal'), undefined);
    assert.ok(tls('api.internal'));
  });
});
