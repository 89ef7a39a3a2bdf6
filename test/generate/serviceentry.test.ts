/**
 * ServiceEntry, from YAML through the registry shard to CDS/EDS: STATIC (MESH_INTERNAL, endpoints
 * with port maps, network, locality, labels), DNS (hostnames the proxy resolves), MESH_EXTERNAL,
 * NONE, and seed 003's `.global` entry, client and remote gateway sides.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfigText } from '../../src/config/parse.js';
import type { Resource } from '../../src/config/types.js';
import { buildPushContext, type PushContext, type PushContextInput } from '../../src/model/pushcontext.js';
import { formatProxyId, proxyFromNode, withInbound, type Proxy } from '../../src/model/proxy.js';
import { decodeCluster } from '../../src/proxy/decode/cluster.js';
import { decodeEndpoints } from '../../src/proxy/decode/endpoints.js';
import { decodeListener } from '../../src/proxy/decode/listener.js';
import { buildShard } from '../../src/registry/shard.js';
import { generateClusters, generateEndpoints, generateListeners } from '../../src/generate/index.js';
import { globalHostOf } from '../../src/generate/gateway.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE } from '../../src/mesh/typeurls.js';
import { assertGolden } from './golden.js';

type R = Record<string, unknown>;

function resources(yaml: string): Resource[] {
  const r = parseConfigText('se.yaml', yaml);
  assert.deepEqual(r.errors.filter((e) => e.severity === 'error'), []);
  return r.resources;
}

function pushOf(cluster: string, network: string, yaml: string, extra: Partial<PushContextInput> = {}): PushContext {
  const shard = buildShard(cluster, { network }, { resources: resources(yaml) });
  assert.deepEqual(shard.problems, []);
  return buildPushContext({
    version: 'se',
    mesh: { trustDomain: 'cluster.local', clusterName: cluster, network, rootNamespace: 'istio-system' },
    services: [...shard.services.values()],
    endpoints: [...shard.endpoints.values()].flat(),
    destinationRules: shard.services.size ? (resources(yaml).filter((r) => r.kind === 'DestinationRule') as PushContextInput['destinationRules']) : [],
    ...extra,
  });
}

function sleep(p: PushContext, ip = '127.1.0.41', namespace = 'sample'): Proxy {
  return withInbound(
    proxyFromNode(
      { id: formatProxyId('sidecar', ip, 'sleep', namespace), metadata: { NAMESPACE: namespace, NETWORK: 'network1', CLUSTER_ID: 'cluster-1' }, locality: { region: 'region1', zone: 'zone1' } },
      { cluster: 'cluster-1' },
    ),
    p,
  );
}

const forHost = (rs: R[], host: string) => rs.filter((r) => String(r['name'] ?? r['cluster_name']).endsWith(`|${host}`));

function decodesAll(cds: R[], eds: R[]): void {
  for (const c of cds) assert.ok(!('errors' in decodeCluster(c)), JSON.stringify(decodeCluster(c)));
  for (const e of eds) assert.ok(!('errors' in decodeEndpoints(e)), JSON.stringify(decodeEndpoints(e)));
}

const STATIC = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: sample}
spec:
  hosts: [db.internal.example]
  addresses: [240.0.0.20]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {name: tcp-db, number: 5432, protocol: TCP}
  - {name: http-admin, number: 8080, protocol: HTTP}
  endpoints:
  - address: 10.0.0.1
    ports: {tcp-db: 15432}
    labels: {role: primary, security.istio.io/tlsMode: istio}
    locality: region1/zone1
    serviceAccount: db
  - address: 10.0.0.2
    labels: {role: replica, security.istio.io/tlsMode: istio}
    locality: region2/zone2
    serviceAccount: db
  - address: 10.9.0.3
    network: network2
    labels: {security.istio.io/tlsMode: istio}
    locality: region3/zone3
    serviceAccount: db
`;

const DNS = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: sample}
spec:
  hosts: [httpbin.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {name: http, number: 80, protocol: HTTP}
  endpoints:
  - {address: us.httpbin.example.com}
  - {address: eu.httpbin.example.com, ports: {http: 8080}}
`;

const EXTERNAL_STATIC = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partner, namespace: sample}
spec:
  hosts: [api.partner.example]
  addresses: [240.0.0.10]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {name: http, number: 80, protocol: HTTP, targetPort: 8080}
  endpoints:
  - {address: 192.0.2.10}
  - {address: 192.0.2.11}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: passthrough, namespace: sample}
spec:
  hosts: ["*.partner.example"]
  location: MESH_EXTERNAL
  resolution: NONE
  ports:
  - {name: tls, number: 443, protocol: TLS}
`;

/** Seed 003, cluster-1's side, with cluster-2's gateway at 127.2.0.100 ("${CLUSTER2_GW_ADDR}"). */
const SEED003 = `apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: helloworld
  namespace: hello
spec:
  hosts:
  - helloworld.hello.global
  location: MESH_INTERNAL
  ports:
  - name: http1
    number: 5000
    protocol: http
  resolution: DNS
  addresses:
  - 127.255.0.8
  endpoints:
  - address: 127.2.0.100
    ports:
      http1: 15443
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: helloworld-global
  namespace: hello
spec:
  host: helloworld.hello.global
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
  subsets:
  - name: v2
    labels:
      version: v2
  - name: v3
    labels:
      version: v3
`;

/** Seed 003, cluster-2's side: helloworld v2 and v3 with their DestinationRule. */
const SEED003_REMOTE = `apiVersion: v1
kind: Service
metadata: {name: helloworld, namespace: hello}
spec:
  selector: {app: helloworld}
  ports: [{name: http, port: 5000}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: helloworld-v2, namespace: hello}
spec: {address: 127.2.0.10, labels: {app: helloworld, version: v2}, serviceAccount: helloworld}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: helloworld-v3, namespace: hello}
spec: {address: 127.2.0.11, labels: {app: helloworld, version: v3}, serviceAccount: helloworld}
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: helloworld, namespace: hello}
spec:
  host: helloworld.hello.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
  subsets:
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
`;

describe('ServiceEntry → CDS/EDS', () => {
  it('STATIC, MESH_INTERNAL: EDS with port maps, locality, and the other network behind its gateway (golden)', () => {
    const p = pushOf('cluster-1', 'network1', STATIC, { networkGateways: { network1: [], network2: [{ address: '127.2.0.100', port: 15443 }] } });
    const proxy = sleep(p);
    const cds = forHost(generateClusters(p, proxy), 'db.internal.example');
    const eds = forHost(generateEndpoints(p, proxy), 'db.internal.example');
    assert.deepEqual(cds.map((c) => [c['name'], c['type']]), [
      ['outbound|5432||db.internal.example', 'EDS'],
      ['outbound|8080||db.internal.example', 'EDS'],
    ]);
    assertGolden('eds-serviceentry-static', ENDPOINT_TYPE, eds);
    const db = JSON.stringify(eds[0]);
    // The port map wins for 5432 (15432), the service port otherwise; network2's endpoint is its gateway.
    assert.match(db, /"10\.0\.0\.1","port_value":15432/);
    assert.match(db, /"10\.0\.0\.2","port_value":5432/);
    assert.match(db, /"127\.2\.0\.100","port_value":15443/);
    assert.doesNotMatch(db, /10\.9\.0\.3/);
    // Mesh-internal with sidecars (tlsMode label, Istio's auto mTLS): mTLS with the entry's service account.
    assert.match(JSON.stringify(cds[0]), /spiffe:\/\/cluster\.local\/ns\/sample\/sa\/db/);
    decodesAll(cds, eds);
  });

  it('DNS, MESH_EXTERNAL: a STRICT_DNS cluster of host names the proxy resolves, plaintext (golden)', () => {
    const p = pushOf('cluster-1', 'network1', DNS);
    const proxy = sleep(p);
    const cds = forHost(generateClusters(p, proxy), 'httpbin.example.com');
    assertGolden('cds-serviceentry-dns', CLUSTER_TYPE, cds);
    const c = cds[0]!;
    assert.equal(c['type'], 'STRICT_DNS');
    assert.equal(c['transport_socket'], undefined);
    assert.match(JSON.stringify(c['load_assignment']), /"us\.httpbin\.example\.com","port_value":80.*"eu\.httpbin\.example\.com","port_value":8080|"eu\.httpbin\.example\.com","port_value":8080.*"us\.httpbin\.example\.com","port_value":80/);
    assert.deepEqual(forHost(generateEndpoints(p, proxy), 'httpbin.example.com'), [], 'inline endpoints, no EDS');
    decodesAll(cds, []);
  });

  it('STATIC MESH_EXTERNAL: plaintext EDS cluster with targetPort; resolution NONE gets no cluster (golden)', () => {
    const p = pushOf('cluster-1', 'network1', EXTERNAL_STATIC);
    const proxy = sleep(p);
    const cds = forHost(generateClusters(p, proxy), 'api.partner.example');
    const eds = forHost(generateEndpoints(p, proxy), 'api.partner.example');
    assertGolden('cds-serviceentry-external', CLUSTER_TYPE, cds);
    assertGolden('eds-serviceentry-external', ENDPOINT_TYPE, eds);
    assert.equal(cds[0]!['transport_socket'], undefined);
    assert.match(JSON.stringify(eds[0]), /"192\.0\.2\.10","port_value":8080/);
    assert.deepEqual(generateClusters(p, proxy).filter((c) => String(c['name']).includes('partner.example|') || String(c['name']).endsWith('*.partner.example')), []);
    decodesAll(cds, eds);
  });

  it("seed 003 client side: .global subsets all go to the remote gateway, SNI outbound_.5000_.<subset>_.helloworld.hello.global, no pinned identity (golden)", () => {
    const p = pushOf('cluster-1', 'network1', SEED003);
    const proxy = sleep(p, '127.1.0.41', 'hello');
    const cds = forHost(generateClusters(p, proxy), 'helloworld.hello.global');
    assertGolden('cds-serviceentry-global', CLUSTER_TYPE, cds);
    assert.deepEqual(cds.map((c) => c['name']), ['outbound|5000||helloworld.hello.global', 'outbound|5000|v2|helloworld.hello.global', 'outbound|5000|v3|helloworld.hello.global']);
    for (const c of cds) {
      const subset = String(c['name']).split('|')[2];
      assert.equal(c['type'], 'STRICT_DNS');
      assert.match(JSON.stringify(c['load_assignment']), /"127\.2\.0\.100","port_value":15443/, `${String(c['name'])} reaches the gateway`);
      const tls = (c['transport_socket'] as R)['typed_config'] as R;
      assert.equal(tls['sni'], `outbound_.5000_.${subset}_.helloworld.hello.global`);
      // The entry names no service account: any certificate of the mesh root is accepted.
      assert.doesNotMatch(JSON.stringify(tls), /sa\/default/);
    }
    decodesAll(cds, []);
  });

  it('seed 003 gateway side: the .global SNI routes to the subset cluster of helloworld.hello.svc.cluster.local', () => {
    assert.equal(globalHostOf('helloworld.hello.svc.cluster.local', 'cluster.local'), 'helloworld.hello.global');
    assert.equal(globalHostOf('api.partner.example', 'cluster.local'), undefined);
    const p = pushOf('cluster-2', 'network2', SEED003_REMOTE);
    const gw = withInbound(
      proxyFromNode(
        { id: formatProxyId('gateway', '127.2.0.100', 'istio-eastwestgateway', 'istio-system'), metadata: { NAMESPACE: 'istio-system', NETWORK: 'network2', CLUSTER_ID: 'cluster-2' } },
        { cluster: 'cluster-2' },
      ),
      p,
    );
    const [listener] = generateListeners(p, gw);
    const decoded = decodeListener(listener);
    if ('errors' in decoded) assert.fail(decoded.errors.join('\n'));
    const m = decoded.ok as unknown as { sniClusters?: Map<string, string> };
    const sni = m.sniClusters ?? new Map<string, string>();
    for (const subset of ['', 'v2', 'v3']) {
      assert.equal(sni.get(`outbound_.5000_.${subset}_.helloworld.hello.global`), `outbound_.5000_.${subset}_.helloworld.hello.svc.cluster.local`);
      assert.equal(sni.get(`outbound_.5000_.${subset}_.helloworld.hello.svc.cluster.local`), `outbound_.5000_.${subset}_.helloworld.hello.svc.cluster.local`);
    }
    // And the v2 cluster's endpoints are v2's workload only.
    const eds = generateEndpoints(p, gw).find((e) => e['cluster_name'] === 'outbound_.5000_.v2_.helloworld.hello.svc.cluster.local')!;
    assert.match(JSON.stringify(eds), /127\.2\.0\.10"/);
    assert.doesNotMatch(JSON.stringify(eds), /127\.2\.0\.11"/);
  });
});
