// The grpc generator set (GENERATOR=grpc): API listeners and route configs named host:port,
// clusters without the SDS socket, mTLS by certificate provider only on an explicit ISTIO_MUTUAL,
// and every resource accepted by the codec (what Envoy's schema allows).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE } from '../../src/mesh/typeurls.js';
import { generateAll } from '../../src/controlplane/snapshots.js';
import { decodeResource } from '../../src/xds/index.js';
import { helloworldDr, push, sidecar, sleepSidecar } from './fixtures.js';

const grpcClient = (p = push()) => sidecar(p, '127.1.0.40', 'client', 'sample', { GENERATOR: 'grpc', SERVICE_ACCOUNT: 'client' });
const HW9000 = 'helloworld.sample.svc.cluster.local:9000';

function decoded(p: ReturnType<typeof push>, proxy: ReturnType<typeof grpcClient>): Map<string, Map<string, Record<string, unknown>>> {
  const out = new Map<string, Map<string, Record<string, unknown>>>();
  for (const [t, rs] of generateAll(p, proxy)) out.set(t, new Map(rs.map((r) => [r.name, decodeResource(r.any) as Record<string, unknown>])));
  return out;
}

describe('grpc generator', () => {
  it('a GENERATOR=grpc node is a grpc proxy with no inbound ports; anything else unknown is refused', () => {
    const p = push();
    assert.equal(grpcClient(p).generator, 'grpc');
    assert.equal(sleepSidecar(p).generator, 'envoy');
    assert.throws(() => sidecar(p, '127.1.0.41', 'x', 'sample', { GENERATOR: 'ztunnel' }), /GENERATOR: unsupported "ztunnel"/);
    // Even at an endpoint's address, a proxyless client gets no inbound listeners.
    const atHello = sidecar(p, '127.1.0.10', 'helloworld-v1', 'sample', { GENERATOR: 'grpc' });
    assert.deepEqual(atHello.inbound, []);
  });

  it('serves API listeners and route configs named host:port, RDS over ADS, fault then router', () => {
    const p = push();
    const r = decoded(p, grpcClient(p));
    const l = r.get(LISTENER_TYPE)!.get(HW9000)!;
    assert.ok(l, [...r.get(LISTENER_TYPE)!.keys()].join());
    assert.equal(l['address'], undefined);
    const hcm = (l['api_listener'] as { api_listener: Record<string, unknown> }).api_listener;
    assert.deepEqual((hcm['rds'] as Record<string, unknown>)['route_config_name'], HW9000);
    assert.deepEqual((hcm['http_filters'] as { name: string }[]).map((f) => f.name), ['envoy.filters.http.fault', 'envoy.filters.http.router']);
    const rc = r.get(ROUTE_TYPE)!.get(HW9000)!;
    const vh = (rc['virtual_hosts'] as Record<string, unknown>[])[0]!;
    assert.deepEqual(vh['domains'], ['helloworld.sample.svc.cluster.local', HW9000]);
    assert.equal(r.get(SECRET_TYPE)!.size, 0, 'no SDS');
    // No sidecar listener shapes.
    assert.ok(![...r.get(LISTENER_TYPE)!.keys()].includes('virtualOutbound'));
  });

  it('clusters carry no SDS transport socket even where sidecars get auto mTLS', () => {
    const p = push();
    const sc = decoded(p, sleepSidecar(p)).get(CLUSTER_TYPE)!.get('outbound|9000||helloworld.sample.svc.cluster.local')!;
    assert.ok(sc['transport_socket'], 'the sidecar gets auto mTLS');
    const r = decoded(p, grpcClient(p));
    for (const [name, c] of r.get(CLUSTER_TYPE)!) {
      assert.equal(c['transport_socket'], undefined, name);
      assert.notEqual(c['type'], 'STRICT_DNS', name);
    }
    // EDS as the sidecars of the network get it, with every locality named.
    assert.ok(r.get(ENDPOINT_TYPE)!.has('outbound|8080||api.partner.example'), 'a group with no locality is in the fixture');
    // gRPC rejects a locality group without a locality; Envoy's shape leaves an empty one out.
    for (const cla of r.get(ENDPOINT_TYPE)!.values()) {
      for (const g of (cla['endpoints'] as Record<string, unknown>[] | undefined) ?? []) assert.ok(g['locality'] !== undefined, JSON.stringify(g));
    }
  });

  it('EDS leaves out endpoints on other networks (their east-west gateway needs mTLS with SNI)', () => {
    // Network-aware: the proxies' own network is listed, so sidecars reach network2 by its gateway.
    const p = push({ networkGateways: { network1: [], network2: [{ address: '127.2.0.100', port: 15443, cluster: 'cluster-2' }] } });
    const key = 'outbound|5000||helloworld.sample.svc.cluster.local';
    const addrs = (proxy: ReturnType<typeof grpcClient>): string => JSON.stringify(decoded(p, proxy).get(ENDPOINT_TYPE)!.get(key));
    assert.match(addrs(sleepSidecar(p)), /127\.2\.0\.100/, 'a sidecar goes through the gateway');
    assert.doesNotMatch(addrs(grpcClient(p)), /127\.2\.0\.(100|10)\b/);
    assert.match(addrs(grpcClient(p)), /127\.1\.0\.10/);
  });

  it('ISTIO_MUTUAL in a DestinationRule: certificate_provider_instance default, SANs of the service', () => {
    const dr = { ...helloworldDr, spec: { ...helloworldDr.spec, trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' as const } } } };
    const p = push({ destinationRules: [dr] });
    const c = decoded(p, grpcClient(p)).get(CLUSTER_TYPE)!.get('outbound|9000|v1|helloworld.sample.svc.cluster.local')!;
    const ts = JSON.stringify(c['transport_socket']);
    assert.match(ts, /"tls_certificate_provider_instance":\{"instance_name":"default","certificate_name":"default"\}/);
    assert.match(ts, /"ca_certificate_provider_instance":\{"instance_name":"default","certificate_name":"ROOTCA"\}/);
    assert.match(ts, /spiffe:\/\/cluster\.local\/ns\/sample\/sa\/helloworld/);
    assert.doesNotMatch(ts, /sds/);
  });
});
