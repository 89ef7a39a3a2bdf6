import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deriveProtocol, localityString } from '../../src/registry/model.js';
import { buildShard, meshDefaultsFrom } from '../../src/registry/shard.js';
import { helloworld, se, svc, we } from './helpers.js';

const defaults = { network: 'network1', locality: { region: 'us-east', zone: 'us-east-1a', subzone: '' } };

describe('buildShard: Kubernetes Services', () => {
  it('selects WorkloadEntries in the namespace and makes one endpoint per service port', () => {
    const shard = buildShard('cluster-1', defaults, {
      resources: [
        helloworld([{ name: 'http', port: 5000 }, { name: 'grpc-api', port: 9000, targetPort: 9090 }]),
        we('hw-v1', { address: '127.1.0.2', labels: { app: 'helloworld', version: 'v1' }, serviceAccount: 'hw', locality: 'eu-west/eu-west-1b/rack7', network: 'net-a', weight: 3 }),
        we('hw-v2', { address: '127.1.0.3', labels: { app: 'helloworld', version: 'v2' } }),
        we('other', { address: '127.1.0.4', labels: { app: 'sleep' } }),
        we('elsewhere', { address: '127.1.0.5', labels: { app: 'helloworld' } }, 'prod'),
      ],
    });
    const s = shard.services.get('helloworld.default.svc.cluster.local')!;
    assert.equal(s.name, 'helloworld');
    assert.equal(s.namespace, 'default');
    assert.equal(s.kind, 'Service');
    assert.equal(s.resolution, 'STATIC');
    assert.equal(s.location, 'MESH_INTERNAL');
    assert.deepEqual(s.clusters, ['cluster-1']);
    assert.deepEqual(s.ports, [
      { name: 'http', port: 5000, targetPort: 5000, protocol: 'HTTP' },
      { name: 'grpc-api', port: 9000, targetPort: 9090, protocol: 'GRPC' },
    ]);
    const eps = shard.endpoints.get(s.hostname)!;
    assert.deepEqual(eps.map((e) => `${e.workload} ${e.portName} ${e.address}:${e.port}`), [
      'hw-v1 http 127.1.0.2:5000',
      'hw-v1 grpc-api 127.1.0.2:9090',
      'hw-v2 http 127.1.0.3:5000',
      'hw-v2 grpc-api 127.1.0.3:9090',
    ]);
    const v1 = eps[0]!;
    assert.equal(v1.cluster, 'cluster-1');
    assert.equal(v1.network, 'net-a');
    assert.deepEqual(v1.locality, { region: 'eu-west', zone: 'eu-west-1b', subzone: 'rack7' });
    assert.deepEqual(v1.serviceAccount, { namespace: 'default', name: 'hw' });
    assert.equal(v1.health, 'HEALTHY');
    assert.equal(v1.weight, 3);
    assert.equal(v1.source, 'WorkloadEntry');
    assert.equal(v1.servicePort, 5000);
    assert.equal(v1.labels.version, 'v1');
    assert.equal(v1.labels['topology.istio.io/cluster'], 'cluster-1');
    assert.equal(v1.labels['topology.istio.io/network'], 'net-a');
    const v2 = eps[2]!;
    assert.equal(v2.network, 'network1', 'MeshConfig default network');
    assert.equal(localityString(v2.locality), 'us-east/us-east-1a');
    assert.deepEqual(v2.serviceAccount, { namespace: 'default', name: 'default' });
    assert.equal(shard.problems.length, 0);
  });

  it('resolves a named targetPort in the workload ports map and skips (and reports) a workload without it', () => {
    const shard = buildShard('cluster-1', {}, {
      resources: [
        helloworld([{ name: 'http', port: 80, targetPort: 'web' }]),
        we('a', { address: '127.1.0.2', labels: { app: 'helloworld' }, ports: { web: 8080 } }),
        we('b', { address: '127.1.0.3', labels: { app: 'helloworld' } }),
      ],
    });
    const eps = shard.endpoints.get('helloworld.default.svc.cluster.local')!;
    assert.deepEqual(eps.map((e) => `${e.workload} ${e.address}:${e.port}`), ['a 127.1.0.2:8080']);
    assert.equal(shard.problems.length, 1);
    assert.match(shard.problems[0]!.message, /default\/b has no port named "web"/);
  });

  it('gives a Service without a selector no endpoints, and marks headless Services NONE', () => {
    const shard = buildShard('c', {}, {
      resources: [
        svc('manual', { ports: [{ port: 80 }] }),
        svc('headless', { clusterIP: 'None', selector: { app: 'x' }, ports: [{ name: 'tcp', port: 5432 }] }),
        svc('vip', { clusterIP: '10.0.0.7', selector: { app: 'x' }, ports: [{ name: 'tcp', port: 5432 }] }, 'default', { 'networking.istio.io/exportTo': '., istio-system' }),
        we('x', { address: '127.1.0.9', labels: { app: 'x' } }),
      ],
    });
    assert.deepEqual(shard.endpoints.get('manual.default.svc.cluster.local'), []);
    assert.equal(shard.services.get('headless.default.svc.cluster.local')!.resolution, 'NONE');
    assert.equal(shard.endpoints.get('headless.default.svc.cluster.local')!.length, 1);
    const vip = shard.services.get('vip.default.svc.cluster.local')!;
    assert.deepEqual(vip.addresses, ['10.0.0.7']);
    assert.deepEqual(vip.exportTo, ['.', 'istio-system']);
  });
});

describe('buildShard: ServiceEntries', () => {
  it('STATIC with inline endpoints and per-endpoint port maps', () => {
    const shard = buildShard('cluster-1', defaults, {
      resources: [
        se('hw-global', {
          hosts: ['helloworld.default.global'],
          location: 'MESH_INTERNAL',
          resolution: 'STATIC',
          addresses: ['240.0.0.2'],
          ports: [{ name: 'http1', number: 5000, protocol: 'http' }, { name: 'tcp', number: 6000, targetPort: 6001 }],
          endpoints: [
            { address: '127.2.0.1', ports: { http1: 15443, tcp: 15443 }, network: 'network2', locality: 'us-west/us-west-2a', labels: { cluster: 'cluster-2' } },
            { address: '127.1.0.9' },
          ],
        }),
      ],
    });
    const s = shard.services.get('helloworld.default.global')!;
    assert.equal(s.kind, 'ServiceEntry');
    assert.equal(s.resolution, 'STATIC');
    assert.equal(s.location, 'MESH_INTERNAL');
    assert.deepEqual(s.addresses, ['240.0.0.2']);
    assert.deepEqual(s.ports.map((p) => `${p.name} ${p.port} ${p.protocol} ${p.targetPort}`), ['http1 5000 HTTP 5000', 'tcp 6000 TCP 6001']);
    const eps = shard.endpoints.get(s.hostname)!;
    assert.deepEqual(eps.map((e) => `${e.portName} ${e.address}:${e.port} ${e.network} ${localityString(e.locality)}`), [
      'http1 127.2.0.1:15443 network2 us-west/us-west-2a',
      'tcp 127.2.0.1:15443 network2 us-west/us-west-2a',
      'http1 127.1.0.9:5000 network1 us-east/us-east-1a',
      'tcp 127.1.0.9:6001 network1 us-east/us-east-1a',
    ]);
    assert.equal(eps[0]!.source, 'ServiceEntry');
    assert.equal(eps[0]!.labels.cluster, 'cluster-2');
  });

  it('workloadSelector selects WorkloadEntries of its namespace', () => {
    const shard = buildShard('cluster-1', {}, {
      resources: [
        se('vm', { hosts: ['vm.example.com'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ name: 'http', number: 80, targetPort: 8080 }, { name: 'metrics', number: 9100 }], workloadSelector: { labels: { app: 'vm' } } }),
        we('vm-1', { address: '10.1.0.1', labels: { app: 'vm' }, ports: { metrics: 9200 } }),
        we('vm-2', { address: '10.1.0.2', labels: { app: 'vm' } }),
        we('vm-other-ns', { address: '10.1.0.3', labels: { app: 'vm' } }, 'other'),
      ],
    });
    const eps = shard.endpoints.get('vm.example.com')!;
    assert.deepEqual(eps.map((e) => `${e.workload} ${e.portName} ${e.address}:${e.port} ${e.source}`), [
      'vm-1 http 10.1.0.1:8080 WorkloadEntry',
      'vm-1 metrics 10.1.0.1:9200 WorkloadEntry',
      'vm-2 http 10.1.0.2:8080 WorkloadEntry',
      'vm-2 metrics 10.1.0.2:9100 WorkloadEntry',
    ]);
    assert.deepEqual(shard.services.get('vm.example.com')!.selector, { app: 'vm' });
  });

  it('DNS without endpoints resolves by host; NONE has no endpoints; a host defined twice is reported', () => {
    const shard = buildShard('c', {}, {
      resources: [
        se('ext', { hosts: ['api.example.com', '*.wild.example.com'], resolution: 'DNS', ports: [{ name: 'https', number: 443 }] }),
        se('passthrough', { hosts: ['db.example.com'], ports: [{ name: 'tcp', number: 5432 }] }),
        se('zz-dup', { hosts: ['api.example.com'], resolution: 'STATIC', endpoints: [{ address: '1.2.3.4' }] }),
      ],
    });
    assert.deepEqual(shard.endpoints.get('api.example.com')!.map((e) => `${e.address}:${e.port}`), ['api.example.com:443']);
    assert.equal(shard.services.get('api.example.com')!.location, 'MESH_EXTERNAL');
    assert.equal(shard.services.get('api.example.com')!.ports[0]!.protocol, 'HTTPS');
    assert.deepEqual(shard.endpoints.get('*.wild.example.com'), []);
    assert.deepEqual(shard.endpoints.get('db.example.com'), []);
    assert.equal(shard.services.get('db.example.com')!.resolution, 'NONE');
    assert.equal(shard.problems.length, 1);
    assert.match(shard.problems[0]!.message, /already defined by ServiceEntry default\/ext/);
  });
});

describe('topology: own fields, then topology labels, then MeshConfig defaults', () => {
  it('fills each missing part from the next layer', () => {
    const meshDefaults = meshDefaultsFrom({ network: 'network1', defaultLocality: { region: 'r-default', zone: 'z-default', subZone: 's-default' } });
    const shard = buildShard('cluster-1', meshDefaults, {
      resources: [
        helloworld(),
        we('labels', {
          address: '127.1.0.2',
          labels: { app: 'helloworld', 'topology.kubernetes.io/region': 'r-label', 'topology.kubernetes.io/zone': 'z-label', 'topology.istio.io/network': 'n-label' },
        }),
        we('partial', { address: '127.1.0.3', locality: 'r-own', labels: { app: 'helloworld', 'topology.kubernetes.io/zone': 'z-label' } }),
        we('own', { address: '127.1.0.4', locality: 'r-own/z-own', network: 'n-own', labels: { app: 'helloworld', 'topology.istio.io/network': 'n-label' } }),
        we('bare', { address: '127.1.0.5', labels: { app: 'helloworld' } }),
      ],
    });
    const eps = shard.endpoints.get('helloworld.default.svc.cluster.local')!;
    assert.deepEqual(Object.fromEntries(eps.map((e) => [e.workload, `${localityString(e.locality)} ${e.network} ${e.cluster}`])), {
      bare: 'r-default/z-default/s-default network1 cluster-1',
      labels: 'r-label/z-label/s-default n-label cluster-1',
      own: 'r-own/z-own/s-default n-own cluster-1',
      partial: 'r-own/z-label/s-default network1 cluster-1',
    });
  });

  it('takes the cluster from the topology label, reporting a mismatch with the shard', () => {
    const shard = buildShard('cluster-1', {}, {
      resources: [helloworld(), we('vm', { address: '127.1.0.2', labels: { app: 'helloworld', 'topology.istio.io/cluster': 'cluster-9' } })],
    });
    assert.equal(shard.endpoints.get('helloworld.default.svc.cluster.local')![0]!.cluster, 'cluster-9');
    assert.match(shard.problems[0]!.message, /says it is in cluster cluster-9/);
  });
});

describe('protocol derivation', () => {
  it('follows appProtocol, then the port name prefix, then the L4 protocol', () => {
    assert.equal(deriveProtocol({ name: 'http' }), 'HTTP');
    assert.equal(deriveProtocol({ name: 'http-web' }), 'HTTP');
    assert.equal(deriveProtocol({ name: 'http2-x' }), 'HTTP2');
    assert.equal(deriveProtocol({ name: 'grpc-web' }), 'GRPC-WEB');
    assert.equal(deriveProtocol({ name: 'grpc' }), 'GRPC');
    assert.equal(deriveProtocol({ name: 'tls-db' }), 'TLS');
    assert.equal(deriveProtocol({ name: 'web', appProtocol: 'kubernetes.io/h2c' }), 'HTTP2');
    assert.equal(deriveProtocol({ name: 'http', appProtocol: 'tcp' }), 'TCP');
    assert.equal(deriveProtocol({ name: 'httpx' }), 'TCP');
    assert.equal(deriveProtocol({ name: 'dns', protocol: 'UDP' }), 'UDP');
    assert.equal(deriveProtocol({}), 'TCP');
  });
});

describe('buildShard: determinism and peers', () => {
  it('gives the same shard for the same input in any order, and tags peer endpoints', () => {
    const rs = [helloworld(), we('b', { address: '127.2.0.3', labels: { app: 'helloworld' } }), we('a', { address: '127.2.0.2', labels: { app: 'helloworld' } })];
    const a = buildShard('cluster-2', {}, { resources: rs }, { origin: 'peer' });
    const b = buildShard('cluster-2', {}, { resources: [...rs].reverse() }, { origin: 'peer' });
    assert.deepEqual(a, b);
    assert.deepEqual([...a.endpoints.values()].flat().map((e) => `${e.workload} ${e.source}`), ['a peer', 'b peer']);
  });
});
