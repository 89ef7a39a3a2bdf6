/** ServiceEntry parts of the registry shard (issue 6): identity, subjectAltNames, workloadSelector, network/locality. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildShard } from '../../src/registry/shard.js';
import { se, we } from './helpers.js';

describe('ServiceEntry in the shard', () => {
  it('inline endpoints carry no identity unless they name a service account; subjectAltNames are kept', () => {
    const shard = buildShard('cluster-1', { network: 'network1' }, {
      resources: [
        se('hw', {
          hosts: ['helloworld.hello.global'], location: 'MESH_INTERNAL', resolution: 'DNS', ports: [{ name: 'http1', number: 5000, protocol: 'http' }],
          subjectAltNames: ['spiffe://cluster.local/ns/hello/sa/helloworld'],
          endpoints: [{ address: '127.2.0.100', ports: { http1: 15443 } }, { address: '127.2.0.101', serviceAccount: 'gw', network: 'network2', locality: 'region2/zone2', labels: { a: 'b' } }],
        }, 'hello'),
      ],
    });
    const [a, b] = shard.endpoints.get('helloworld.hello.global')!;
    assert.deepEqual(a!.serviceAccount, { namespace: 'hello', name: '' });
    assert.equal(a!.port, 15443);
    assert.deepEqual(b!.serviceAccount, { namespace: 'hello', name: 'gw' });
    assert.equal(b!.port, 5000);
    assert.equal(b!.network, 'network2');
    assert.deepEqual(b!.locality, { region: 'region2', zone: 'zone2', subzone: '' });
    assert.equal(b!.labels['a'], 'b');
    assert.equal(b!.labels['topology.kubernetes.io/region'], 'region2');
    assert.deepEqual(shard.services.get('helloworld.hello.global')!.subjectAltNames, ['spiffe://cluster.local/ns/hello/sa/helloworld']);
  });

  it('workloadSelector selects WorkloadEntries and auto-registered workloads of its namespace, with their identity', () => {
    const shard = buildShard('cluster-1', {}, {
      resources: [
        se('vm', { hosts: ['vm.example.internal'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ name: 'http', number: 80, targetPort: 8080 }], workloadSelector: { labels: { app: 'vm' } } }, 'apps'),
        we('vm-1', { address: '10.0.0.1', labels: { app: 'vm' }, serviceAccount: 'vm', ports: { http: 9090 } }, 'apps'),
        we('vm-other-ns', { address: '10.0.0.2', labels: { app: 'vm' } }, 'other'),
      ],
      workloads: [{ name: 'vm-auto', namespace: 'apps', address: '10.0.0.3', labels: { app: 'vm' }, serviceAccount: 'vm' }],
    });
    const eps = shard.endpoints.get('vm.example.internal')!;
    assert.deepEqual(eps.map((e) => [e.address, e.port, e.serviceAccount.name, e.source]), [
      ['10.0.0.1', 9090, 'vm', 'WorkloadEntry'],
      ['10.0.0.3', 8080, 'vm', 'auto'],
    ]);
  });

  it('resolution NONE has no endpoints; DNS without endpoints resolves the host itself', () => {
    const shard = buildShard('cluster-1', {}, {
      resources: [
        se('none', { hosts: ['none.example.com'], resolution: 'NONE', ports: [{ name: 'tls', number: 443 }], endpoints: [{ address: '1.2.3.4' }] }),
        se('dns', { hosts: ['dns.example.com'], resolution: 'DNS', ports: [{ name: 'http', number: 80 }] }),
      ],
    });
    assert.deepEqual(shard.endpoints.get('none.example.com'), []);
    assert.deepEqual(shard.endpoints.get('dns.example.com')!.map((e) => [e.address, e.port, e.serviceAccount.name]), [['dns.example.com', 80, '']]);
  });
});
