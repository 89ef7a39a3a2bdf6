/**
 * virtualOutbound's capture chains (generate/outbound.ts), decoded by the proxy's own decoder and
 * matched with its filter-chain selection: which chain a captured connection gets for a given
 * original destination, SNI and sniffed protocol.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Resource } from '../../src/config/types.js';
import type { VirtualServiceSpec } from '../../src/config/kinds/networking.js';
import { generateClusters, generateListeners } from '../../src/generate/index.js';
import { decodeCluster, decodeListener } from '../../src/proxy/decode/index.js';
import { selectFilterChain, type ConnectionFacts } from '../../src/proxy/listeners/chains.js';
import type { ListenerModel } from '../../src/proxy/model.js';
import { ep, push, sleepSidecar, svc } from './fixtures.js';

const src = { file: 'test.yaml', line: 1 };
const vs = (name: string, spec: VirtualServiceSpec): Resource<VirtualServiceSpec> => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: 'sample' }, spec, source: src });

const db = svc('db', 'sample', [{ name: 'tcp', port: 3306, targetPort: 3306, protocol: 'TCP' }], { addresses: ['10.96.0.33'] });
const web = svc('web', 'sample', [{ name: 'http', port: 8080, targetPort: 8080, protocol: 'HTTP' }, { name: 'tls', port: 443, targetPort: 443, protocol: 'TLS' }], { addresses: ['10.96.0.44'] });
const services = [db, web];
const endpoints = [
  ep(db, { address: '10.1.0.5', port: 3306, servicePort: 3306, portName: 'tcp', workload: 'db-0' }),
  ep(web, { address: '10.1.0.6', port: 8080, servicePort: 8080, portName: 'http', workload: 'web-0' }),
];

function outbound(over: Parameters<typeof push>[0] = {}): ListenerModel {
  const p = push({ services, endpoints, destinationRules: [], ...over });
  const raw = generateListeners(p, sleepSidecar(p, { INTERCEPTION_MODE: 'REDIRECT' })).find((l) => l['name'] === 'virtualOutbound');
  const r = decodeListener(raw);
  if ('errors' in r) assert.fail(`virtualOutbound does not decode: ${r.errors.join('; ')}`);
  return r.ok;
}

const facts = (ip: string, port: number, more: Partial<ConnectionFacts> = {}): ConnectionFacts => ({ destinationIp: ip, destinationPort: port, transportProtocol: 'raw_buffer', serverName: undefined, alpn: [], ...more });
const tcpTarget = (l: ListenerModel, f: ConnectionFacts): unknown => {
  const c = selectFilterChain(l, f);
  if (c?.filter.kind !== 'tcp') return c?.filter.kind;
  const spec = c.filter.tcpProxy.cluster;
  return spec.kind === 'weighted' ? { kind: 'weighted', clusters: spec.clusters.map((x) => ({ name: x.name, weight: x.weight })), totalWeight: spec.totalWeight } : spec;
};

test('captured TCP goes by original address and port; HTTP by protocol; the rest to the passthrough', () => {
  const l = outbound();
  assert.deepEqual(tcpTarget(l, facts('10.96.0.33', 3306)), { kind: 'cluster', name: 'outbound|3306||db.sample.svc.cluster.local' });
  // An endpoint's own address works too.
  assert.deepEqual(tcpTarget(l, facts('10.1.0.5', 3306)), { kind: 'cluster', name: 'outbound|3306||db.sample.svc.cluster.local' });
  assert.equal(tcpTarget(l, facts('10.96.0.44', 8080, { alpn: ['http/1.1'] })), 'http');
  assert.equal(tcpTarget(l, facts('10.96.0.44', 8080, { alpn: ['h2c'] })), 'http');
  // TLS to the HTTP port: passed through to the service, not left hanging.
  assert.deepEqual(tcpTarget(l, facts('10.96.0.44', 8080, { transportProtocol: 'tls', serverName: 'x' })), { kind: 'cluster', name: 'outbound|8080||web.sample.svc.cluster.local' });
  // HTTP to an address the mesh does not know, on a port a service serves over HTTP: by Host.
  assert.equal(tcpTarget(l, facts('192.0.2.9', 8080, { alpn: ['http/1.1'] })), 'http');
  // The explicit proxy.
  assert.equal(tcpTarget(l, facts('127.1.0.20', 15001, { alpn: ['http/1.1'] })), 'http');
  assert.deepEqual(tcpTarget(l, facts('192.0.2.9', 5432)), { kind: 'cluster', name: 'PassthroughCluster' });
});

test('REGISTRY_ONLY sends unknown destinations to the black hole; both policy clusters decode', () => {
  const l = outbound({ mesh: { trustDomain: 'cluster.local', clusterName: 'cluster-1', network: 'network1', rootNamespace: 'istio-system', outboundTrafficPolicy: 'REGISTRY_ONLY' } });
  assert.deepEqual(tcpTarget(l, facts('192.0.2.9', 5432)), { kind: 'cluster', name: 'BlackHoleCluster' });
  const p = push({ services, endpoints, destinationRules: [] });
  for (const name of ['PassthroughCluster', 'BlackHoleCluster']) {
    const c = generateClusters(p, sleepSidecar(p)).find((x) => x['name'] === name);
    const d = decodeCluster(c);
    assert.ok('ok' in d, `${name}: ${'errors' in d ? d.errors.join('; ') : ''}`);
  }
});

test('VirtualService tcp routes (weighted) and tls routes (SNI) become chains', () => {
  const l = outbound({
    virtualServices: [
      vs('db-split', { hosts: ['db'], tcp: [{ match: [{ port: 3306 }], route: [{ destination: { host: 'db', subset: 'a' }, weight: 80 }, { destination: { host: 'db', subset: 'b' }, weight: 20 }] }] }),
      vs('web-tls', { hosts: ['web'], tls: [{ match: [{ port: 443, sniHosts: ['api.example.com'] }], route: [{ destination: { host: 'db', port: { number: 3306 } } }] }] }),
    ],
  });
  assert.deepEqual(tcpTarget(l, facts('10.96.0.33', 3306)), {
    kind: 'weighted',
    clusters: [{ name: 'outbound|3306|a|db.sample.svc.cluster.local', weight: 80 }, { name: 'outbound|3306|b|db.sample.svc.cluster.local', weight: 20 }],
    totalWeight: 100,
  });
  assert.deepEqual(tcpTarget(l, facts('10.96.0.44', 443, { transportProtocol: 'tls', serverName: 'api.example.com' })), { kind: 'cluster', name: 'outbound|3306||db.sample.svc.cluster.local' });
  // Another SNI on the same address and port: the service's own cluster (pass-through).
  assert.deepEqual(tcpTarget(l, facts('10.96.0.44', 443, { transportProtocol: 'tls', serverName: 'other.example.com' })), { kind: 'cluster', name: 'outbound|443||web.sample.svc.cluster.local' });
});

test('tcp destinationSubnets: a subnet route takes the service addresses inside it, the next route the rest (Istio order)', () => {
  const l = outbound({
    virtualServices: [
      vs('db-subnets', {
        hosts: ['db'],
        tcp: [
          // Fits nothing of db's: no chain, and no other destination is taken over.
          { match: [{ port: 3306, destinationSubnets: ['192.0.2.0/24'] }], route: [{ destination: { host: 'db', subset: 'x' } }] },
          { match: [{ port: 3306, destinationSubnets: ['10.96.0.0/16'] }], route: [{ destination: { host: 'db', subset: 'vip' } }] },
          { route: [{ destination: { host: 'db', subset: 'rest' } }] },
        ],
      }),
    ],
  });
  assert.deepEqual(tcpTarget(l, facts('10.96.0.33', 3306)), { kind: 'cluster', name: 'outbound|3306|vip|db.sample.svc.cluster.local' });
  // The endpoint's own address is not in 10.96/16: the catch-all route.
  assert.deepEqual(tcpTarget(l, facts('10.1.0.5', 3306)), { kind: 'cluster', name: 'outbound|3306|rest|db.sample.svc.cluster.local' });
  assert.deepEqual(tcpTarget(l, facts('192.0.2.7', 3306)), { kind: 'cluster', name: 'PassthroughCluster' });
  assert.deepEqual(tcpTarget(l, facts('10.96.0.99', 3306)), { kind: 'cluster', name: 'PassthroughCluster' });
});

test('tcp destinationSubnets: only subnet routes → the service cluster keeps the other addresses; a match for other labels does not apply', () => {
  const l = outbound({
    virtualServices: [
      vs('db', {
        hosts: ['db'],
        tcp: [
          { match: [{ destinationSubnets: ['10.1.0.0/24'] }], route: [{ destination: { host: 'db', subset: 'pods' } }] },
          { match: [{ destinationSubnets: ['10.96.0.33'], sourceLabels: { app: 'not-sleep' } }], route: [{ destination: { host: 'db', subset: 'other' } }] },
        ],
      }),
    ],
  });
  assert.deepEqual(tcpTarget(l, facts('10.1.0.5', 3306)), { kind: 'cluster', name: 'outbound|3306|pods|db.sample.svc.cluster.local' });
  assert.deepEqual(tcpTarget(l, facts('10.96.0.33', 3306)), { kind: 'cluster', name: 'outbound|3306||db.sample.svc.cluster.local' });
});

test('tcp destinationSubnets inside a CIDR service address: carved out; HTTP and other addresses keep their chains', () => {
  const net = svc('net', 'sample', [{ name: 'http', port: 7000, targetPort: 7000, protocol: 'HTTP' }], { addresses: ['10.50.0.0/16'] });
  const l = outbound({
    services: [...services, net],
    virtualServices: [vs('net', { hosts: ['net'], tcp: [{ match: [{ destinationSubnets: ['10.50.1.0/24'] }], route: [{ destination: { host: 'db', port: { number: 3306 } } }] }] })],
  });
  assert.deepEqual(tcpTarget(l, facts('10.50.1.7', 7000)), { kind: 'cluster', name: 'outbound|3306||db.sample.svc.cluster.local' });
  assert.deepEqual(tcpTarget(l, facts('10.50.2.7', 7000)), { kind: 'cluster', name: 'outbound|7000||net.sample.svc.cluster.local' });
  assert.equal(tcpTarget(l, facts('10.50.1.7', 7000, { alpn: ['http/1.1'] })), 'http');
});

test('subnets outside every address of the service (here its auto-allocated VIP) take nothing over', () => {
  const ext = svc('ext', 'sample', [{ name: 'tcp', port: 6000, targetPort: 6000, protocol: 'TCP' }]);
  const l = outbound({
    services: [...services, ext],
    virtualServices: [vs('ext', { hosts: ['ext'], tcp: [{ match: [{ destinationSubnets: ['203.0.113.0/24'] }], route: [{ destination: { host: 'db', port: { number: 3306 } } }] }] })],
  });
  assert.deepEqual(tcpTarget(l, facts('203.0.113.9', 6000)), { kind: 'cluster', name: 'PassthroughCluster' });
  assert.deepEqual(l.filterChains.filter((c) => c.name.startsWith('ext.')).map((c) => c.name), ['ext.sample.svc.cluster.local:6000|tcp']);
});

test('tls destinationSubnets: the SNI route applies only to addresses in the subnets', () => {
  const l = outbound({
    virtualServices: [
      vs('web-tls', {
        hosts: ['web'],
        tls: [
          { match: [{ port: 443, sniHosts: ['api.example.com'], destinationSubnets: ['10.96.0.0/24'] }], route: [{ destination: { host: 'db', port: { number: 3306 } } }] },
          { match: [{ port: 443, sniHosts: ['api.example.com'], destinationSubnets: ['10.200.0.0/16'] }], route: [{ destination: { host: 'db', subset: 'never' } }] },
        ],
      }),
    ],
  });
  const tls = (ip: string, sni: string) => facts(ip, 443, { transportProtocol: 'tls', serverName: sni });
  assert.deepEqual(tcpTarget(l, tls('10.96.0.44', 'api.example.com')), { kind: 'cluster', name: 'outbound|3306||db.sample.svc.cluster.local' });
  assert.deepEqual(tcpTarget(l, tls('10.96.0.44', 'other.example.com')), { kind: 'cluster', name: 'outbound|443||web.sample.svc.cluster.local' });
  // The second route's subnet holds none of web's addresses: it makes no chain at all.
  const raw = l.filterChains.map((c) => c.name).filter((n) => n.includes('web-tls[1]'));
  assert.deepEqual(raw, []);
});

test('an explicit proxy (INTERCEPTION_MODE absent or NONE) gets only the 15001 chain; TPROXY is refused', () => {
  const p = push({ services, endpoints, destinationRules: [] });
  for (const extra of [{}, { INTERCEPTION_MODE: 'NONE' }]) {
    const raw = generateListeners(p, sleepSidecar(p, extra)).find((l) => l['name'] === 'virtualOutbound') as { filter_chains: { name: string }[] };
    assert.deepEqual(raw.filter_chains.map((c) => c.name), ['http-proxy']);
  }
  assert.throws(() => sleepSidecar(p, { INTERCEPTION_MODE: 'TPROXY' }), /metadata\.INTERCEPTION_MODE: unsupported "TPROXY"/);
});
