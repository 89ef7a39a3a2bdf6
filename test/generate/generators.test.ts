import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, it } from 'node:test';
import { endpointsFor, pushContextFromRegistry } from '../../src/model/pushcontext.js';
import {
  eastWestListener,
  gatewayClusters,
  gatewayLoadAssignments,
  generateClusters,
  generateEndpoints,
  generateListeners,
  generateRoutes,
  generateSecrets,
  httpProxyRouteConfig,
  routeConfigForPort,
  secretsFor,
} from '../../src/generate/index.js';
import { generateAll, generateResources, generateSnapshot } from '../../src/controlplane/snapshots.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE } from '../../src/mesh/typeurls.js';
import { eastWestGateway, endpoints, helloworldDr, helloworldSidecar, push, reviews, ROOT_PEM, sleepSidecar } from './fixtures.js';
import { assertGolden, assertRoundTrip, goldenPath } from './golden.js';

const byName = (rs: Record<string, unknown>[], n: string) => rs.find((r) => r['name'] === n || r['cluster_name'] === n);

describe('sidecar goldens', () => {
  const p = push();
  const hw = helloworldSidecar(p);

  it('CDS: outbound (services, subsets, ServiceEntries) and inbound clusters', () => {
    assertGolden('cds-sidecar', CLUSTER_TYPE, generateClusters(p, hw));
  });

  it('EDS: network1 sidecar (cluster-2 endpoints left for the gateway seam)', () => {
    assertGolden('eds-sidecar', ENDPOINT_TYPE, generateEndpoints(p, hw));
  });

  it('EDS: three regions, zones, weights, health', () => {
    const cla = byName(generateEndpoints(p, hw), 'outbound|9080||reviews.bookinfo.svc.cluster.local');
    assert.ok(cla);
    assertGolden('eds-multi-locality', ENDPOINT_TYPE, [cla]);
  });

  it('LDS: explicit HTTP proxy on 15001 and two STRICT mTLS inbound listeners', () => {
    const ls = generateListeners(p, hw);
    assert.deepEqual(ls.map((l) => l['name']), ['virtualOutbound', '127.1.0.10_5000', '127.1.0.10_9090']);
    assertGolden('lds-sidecar', LISTENER_TYPE, ls);
  });

  it('LDS: PERMISSIVE adds a plaintext chain', () => {
    const pp = push({ inboundMtlsMode: 'PERMISSIVE' });
    assertGolden('lds-inbound-permissive', LISTENER_TYPE, generateListeners(pp, helloworldSidecar(pp)).slice(1, 2));
  });

  it('RDS: 15001 for a client in namespace sample', () => {
    assertGolden('rds-sidecar', ROUTE_TYPE, generateRoutes(p, hw));
  });

  it('RDS: Istio per-port shape ("9080"), not referenced by a listener yet', () => {
    assertGolden('rds-port-9080', ROUTE_TYPE, [routeConfigForPort(p, 'sample', 9080)]);
  });

  it('SDS: the control plane sends ROOTCA only; secretsFor builds default from caller-held material', () => {
    assert.deepEqual(generateSecrets(p, hw).map((s) => s['name']), ['ROOTCA']);
    const secrets = secretsFor({
      certChainPem: '-----BEGIN CERTIFICATE-----\nd29ya2xvYWQ=\n-----END CERTIFICATE-----\n',
      keyPem: '-----BEGIN PRIVATE KEY-----\na2V5\n-----END PRIVATE KEY-----\n',
      rootBundlePem: ROOT_PEM,
    });
    assertGolden('sds', SECRET_TYPE, secrets);
    assert.deepEqual(secretsFor({ certChainPem: 'x', rootBundlePem: ROOT_PEM }).map((s) => s['name']), ['ROOTCA']);
  });
});

describe('east-west gateway goldens', () => {
  const p = push();
  const gw = eastWestGateway(p);

  it('LDS: 15443, TLS inspector, one chain per local SNI', () => {
    const ls = generateListeners(p, gw);
    assert.equal(ls.length, 1);
    assertGolden('gateway-lds', LISTENER_TYPE, ls);
  });

  it('CDS: passthrough clusters without TLS', () => {
    const cs = generateClusters(p, gw);
    for (const c of cs) assert.equal(c['transport_socket'], undefined);
    assert.deepEqual(cs, gatewayClusters(p, gw));
    assertGolden('gateway-cds', CLUSTER_TYPE, cs);
  });

  it('EDS: only endpoints on network1', () => {
    const es = generateEndpoints(p, gw);
    assert.deepEqual(es, gatewayLoadAssignments(p, gw));
    assert.ok(!JSON.stringify(es).includes('127.2.'));
    assertGolden('gateway-eds', ENDPOINT_TYPE, es);
  });

  it('no RDS or SDS; no listener when nothing is local', () => {
    assert.deepEqual(generateRoutes(p, gw), []);
    assert.deepEqual(generateSecrets(p, gw), []);
    const empty = push({ services: [] });
    assert.equal(eastWestListener(empty, eastWestGateway(empty)), undefined);
  });
});

describe('generator semantics', () => {
  const p = push();

  it('every golden file on disk round-trips through the Envoy protos', () => {
    const dir = dirname(goldenPath('x'));
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    assert.ok(files.length >= 11, `expected the goldens in ${dir}`);
    for (const f of files) {
      const g = JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')) as { type_url: string; resources: Record<string, unknown>[] };
      assertRoundTrip(g.type_url, g.resources);
    }
  });

  it('outbound clusters: mTLS SNI and the SPIFFE ids of the endpoints', () => {
    const cs = generateClusters(p, helloworldSidecar(p));
    const v1 = byName(cs, 'outbound|5000|v1|helloworld.sample.svc.cluster.local')!;
    const tls = (v1['transport_socket'] as { typed_config: Record<string, unknown> }).typed_config;
    assert.equal(tls['sni'], 'outbound_.5000_.v1_.helloworld.sample.svc.cluster.local');
    assert.match(JSON.stringify(tls), /spiffe:\/\/cluster\.local\/ns\/sample\/sa\/helloworld/);
    const ext = byName(cs, 'outbound|80||httpbin.org')!;
    assert.equal(ext['type'], 'STRICT_DNS');
    assert.equal(ext['transport_socket'], undefined);
    assert.equal(byName(cs, 'outbound|80||ip-api.com')!['type'], 'LOGICAL_DNS');
    assert.equal(byName(cs, 'inbound|9090||')!['type'], 'STATIC');
  });

  it('a PushContext over a registry view equals one over lists', () => {
    const view = { services: () => p.services, allEndpoints: (h: string) => endpoints.filter((e) => e.hostname === h) };
    const q = pushContextFromRegistry(view, { version: 'v1', mesh: p.mesh, destinationRules: [helloworldDr], trustBundlePem: ROOT_PEM });
    assert.deepEqual(generateClusters(q, helloworldSidecar(q)), generateClusters(p, helloworldSidecar(p)));
    assert.deepEqual(generateEndpoints(q, helloworldSidecar(q)), generateEndpoints(p, helloworldSidecar(p)));
  });

  it('subset endpoints follow the subset labels; an unknown subset selects nothing', () => {
    assert.deepEqual(endpointsFor(p, 'helloworld.sample.svc.cluster.local', 5000, 'v2').map((e) => e.workload), ['helloworld-v2']);
    assert.deepEqual(endpointsFor(p, 'helloworld.sample.svc.cluster.local', 5000, 'v3'), []);
  });

  it('RDS: unique domains; short names only in the client namespace; bare name → one port', () => {
    const rc = httpProxyRouteConfig(p, 'sample') as { virtual_hosts: { name: string; domains: string[] }[] };
    const all = rc.virtual_hosts.flatMap((v) => v.domains);
    assert.equal(new Set(all).size, all.length);
    const hw5000 = rc.virtual_hosts.find((v) => v.name === 'helloworld.sample.svc.cluster.local:5000')!;
    for (const d of ['helloworld', 'helloworld:5000', 'helloworld.sample', 'helloworld.sample.svc:5000', 'helloworld.sample.svc.cluster.local']) {
      assert.ok(hw5000.domains.includes(d), d);
    }
    assert.ok(!all.includes('reviews'), 'short name of another namespace');
    assert.ok(all.includes('reviews.bookinfo:9080'));
    const other = httpProxyRouteConfig(p, 'bookinfo') as { virtual_hosts: { domains: string[] }[] };
    assert.ok(other.virtual_hosts.flatMap((v) => v.domains).includes('reviews'));
  });

  it('multi-locality: weights are sums of endpoint weights', () => {
    const cla = byName(generateEndpoints(p, helloworldSidecar(p)), `outbound|9080||${reviews.hostname}`) as {
      endpoints: { locality: { region: string; zone: string }; load_balancing_weight: number }[];
    };
    assert.deepEqual(
      cla.endpoints.map((e) => [e.locality.region, e.locality.zone, e.load_balancing_weight]),
      [['ap-south', 'ap-south-1a', 2], ['eu-west', 'eu-west-1a', 1], ['us-east', 'us-east-1a', 4], ['us-east', 'us-east-1b', 1]],
    );
  });
});

describe('serialize once', () => {
  it('two sidecars get the very same CDS/EDS/SDS XdsResource objects for one push', () => {
    const p = push();
    const a = helloworldSidecar(p);
    const b = sleepSidecar(p);
    for (const t of [CLUSTER_TYPE, ENDPOINT_TYPE, SECRET_TYPE, ROUTE_TYPE]) {
      const ra = new Map(generateResources(p, a, t).map((r) => [r.name, r]));
      const rb = new Map(generateResources(p, b, t).map((r) => [r.name, r]));
      let shared = 0;
      for (const [n, r] of ra) {
        if (n.startsWith('inbound|')) continue;
        assert.equal(rb.get(n), r, `${n} is one object`);
        assert.equal(rb.get(n)!.any.value, r.any.value);
        shared++;
      }
      assert.ok(shared > 0);
    }
    // Per proxy: inbound clusters and listeners.
    const ca = generateResources(p, a, CLUSTER_TYPE).find((r) => r.name === 'inbound|5000||');
    assert.ok(ca);
    assert.notEqual(
      generateResources(p, a, LISTENER_TYPE).find((r) => r.name === 'virtualOutbound'),
      generateResources(p, b, LISTENER_TYPE).find((r) => r.name === 'virtualOutbound'),
    );
  });

  it('a new push carries unchanged resources over: the same objects, so the same versions (ADR 0120)', () => {
    const p1 = push();
    const p2 = push({ version: 'v2' });
    const r1 = generateResources(p1, helloworldSidecar(p1), CLUSTER_TYPE);
    const r2 = generateResources(p2, helloworldSidecar(p2), CLUSTER_TYPE);
    assert.deepEqual(r1.map((r) => r.name), r2.map((r) => r.name));
    // Shared and the proxy's own (inbound|…) alike: same content, same object.
    for (let i = 0; i < r1.length; i++) assert.equal(r1[i], r2[i], `${r1[i]!.name}: same content, same object`);
    assert.deepEqual(r1.map((r) => r.version), r2.map((r) => r.version));
    const s1 = generateSnapshot(p1, helloworldSidecar(p1));
    const s2 = generateSnapshot(p2, helloworldSidecar(p2));
    for (const [t, ts] of s1) assert.equal(s2.get(t)!.version, ts.version);
    assert.equal(generateAll(p1, eastWestGateway(p1)).get(ROUTE_TYPE)!.length, 0);
  });
});
