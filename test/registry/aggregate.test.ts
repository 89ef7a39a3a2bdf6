import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry, type RegistryChange } from '../../src/registry/aggregate.js';
import { registryz } from '../../src/registry/debug.js';
import { buildShard } from '../../src/registry/shard.js';
import { helloworld, svc, we } from './helpers.js';
import type { Resource } from '../../src/config/types.js';

const HW = 'helloworld.default.svc.cluster.local';

function shard(cluster: string, network: string, resources: Resource[]) {
  return buildShard(cluster, { network, locality: { region: cluster === 'cluster-1' ? 'us-east' : 'us-west', zone: '', subzone: '' } }, { resources }, {
    origin: cluster === 'cluster-1' ? 'local' : 'peer',
  });
}

function newRegistry(local = 'cluster-1') {
  const logs: string[] = [];
  const changes: RegistryChange[] = [];
  const registry = new Registry({ localCluster: local, log: (l) => logs.push(l) });
  registry.subscribe((c) => changes.push(c));
  return { registry, logs, changes };
}

const summary = (c: RegistryChange | undefined) => c && { services: [...c.services], endpoints: [...c.endpoints] };

describe('Registry: namespace sameness', () => {
  it('merges helloworld.default from two clusters into one service with endpoints from both', () => {
    const { registry, logs } = newRegistry();
    registry.setShard('cluster-1', shard('cluster-1', 'network1', [helloworld(), we('hw-v1', { address: '127.1.0.2', labels: { app: 'helloworld', version: 'v1' } })]));
    registry.setShard('cluster-2', shard('cluster-2', 'network2', [helloworld(), we('hw-v2', { address: '127.2.0.2', labels: { app: 'helloworld', version: 'v2' } })]));
    assert.equal(registry.services().length, 1);
    const s = registry.service(HW)!;
    assert.deepEqual(s.clusters, ['cluster-1', 'cluster-2']);
    assert.deepEqual(s.ports.map((p) => p.port), [5000]);
    const eps = registry.endpoints(HW, 'http');
    assert.deepEqual(eps.map((e) => `${e.address}:${e.port} ${e.cluster} ${e.network} ${e.locality.region} ${e.source}`), [
      '127.1.0.2:5000 cluster-1 network1 us-east WorkloadEntry',
      '127.2.0.2:5000 cluster-2 network2 us-west peer',
    ]);
    assert.deepEqual(registry.endpoints(HW, 5000), eps);
    assert.deepEqual(registry.endpoints(HW, 'http', { version: 'v2' }).map((e) => e.cluster), ['cluster-2']);
    assert.deepEqual(registry.endpoints(HW, 'http', { 'topology.istio.io/cluster': 'cluster-1' }).map((e) => e.address), ['127.1.0.2']);
    assert.deepEqual(registry.endpoints(HW, 'nope'), []);
    assert.deepEqual(registry.conflicts(), []);
    assert.deepEqual(logs, []);
  });

  it('keeps a service in another namespace apart', () => {
    const { registry } = newRegistry();
    registry.setShard('cluster-1', shard('cluster-1', 'n1', [helloworld()]));
    registry.setShard('cluster-2', shard('cluster-2', 'n2', [svc('helloworld', { selector: { app: 'helloworld' }, ports: [{ name: 'http', port: 5000 }] }, 'prod')]));
    assert.deepEqual(registry.services().map((s) => s.hostname), [HW, 'helloworld.prod.svc.cluster.local']);
  });
});

describe('Registry: conflicts', () => {
  const c1 = () => shard('cluster-1', 'n1', [helloworld([{ name: 'http', port: 5000 }, { name: 'metrics', port: 9100 }]), we('a', { address: '127.1.0.2', labels: { app: 'helloworld' } })]);
  const c2 = () => shard('cluster-2', 'n2', [helloworld([{ name: 'tcp-legacy', port: 5000 }, { name: 'admin', port: 8080 }]), we('b', { address: '127.2.0.2', labels: { app: 'helloworld' } })]);
  const c3 = () => shard('cluster-3', 'n3', [helloworld([{ name: 'http', port: 5001 }]), we('c', { address: '127.3.0.2', labels: { app: 'helloworld' } })]);

  it('reports a port defined differently and resolves it for the local cluster, whatever the order', () => {
    const results = [['cluster-1', 'cluster-2'], ['cluster-2', 'cluster-1']].map((order) => {
      const { registry, logs } = newRegistry();
      for (const c of order) registry.setShard(c, c === 'cluster-1' ? c1() : c2());
      return { registry, logs };
    });
    for (const { registry, logs } of results) {
      const s = registry.service(HW)!;
      assert.deepEqual(s.ports.map((p) => `${p.name} ${p.port} ${p.protocol}`), ['http 5000 HTTP', 'admin 8080 TCP', 'metrics 9100 TCP']);
      assert.deepEqual(registry.conflicts(), [
        {
          hostname: HW,
          clusters: ['cluster-1', 'cluster-2'],
          field: 'port',
          detail: 'port 5000: cluster-1: http HTTP targetPort 5000; cluster-2: tcp-legacy TCP targetPort 5000',
          winner: 'cluster-1',
        },
      ]);
      // cluster-2's endpoints still serve port 5000, under the winning name.
      assert.deepEqual(registry.endpoints(HW, 'http').map((e) => e.cluster), ['cluster-1', 'cluster-2']);
      assert.equal(logs.filter((l) => l.startsWith('registry conflict: ')).length, 1);
      assert.match(logs.find((l) => l.startsWith('registry conflict: '))!, /helloworld\.default\.svc\.cluster\.local port: port 5000/);
    }
    assert.deepEqual(registryz(results[0]!.registry).conflicts, registryz(results[1]!.registry).conflicts);
  });

  it('without the local cluster, the lexicographically first cluster wins', () => {
    const { registry } = newRegistry('cluster-9');
    registry.setShard('cluster-2', c2());
    registry.setShard('cluster-1', c1());
    assert.equal(registry.service(HW)!.ports.find((p) => p.port === 5000)!.name, 'http');
    assert.equal(registry.conflicts()[0]!.winner, 'cluster-1');
  });

  it('a port name used for two numbers keeps the winner and drops the other port with its endpoints', () => {
    const { registry } = newRegistry();
    registry.setShard('cluster-1', c1());
    registry.setShard('cluster-3', c3());
    assert.deepEqual(registry.service(HW)!.ports.map((p) => p.port), [5000, 9100]);
    assert.deepEqual(registry.conflicts().map((c) => `${c.field} ${c.clusters.join(',')}`), ['portName cluster-1,cluster-3']);
    assert.deepEqual(registry.allEndpoints(HW).map((e) => e.cluster), ['cluster-1', 'cluster-1']);
  });

  it('reports other fields that differ, and clears the report when fixed', () => {
    const { registry, logs } = newRegistry();
    registry.setShard('cluster-1', shard('cluster-1', 'n1', [helloworld()]));
    registry.setShard('cluster-2', shard('cluster-2', 'n2', [svc('helloworld', { clusterIP: 'None', selector: { app: 'helloworld' }, ports: [{ name: 'http', port: 5000 }] })]));
    assert.deepEqual(registry.conflicts().map((c) => c.field), ['resolution']);
    assert.equal(registry.service(HW)!.resolution, 'STATIC');
    registry.setShard('cluster-2', shard('cluster-2', 'n2', [helloworld()]));
    assert.deepEqual(registry.conflicts(), []);
    assert.deepEqual(logs.map((l) => l.split(':')[0]), ['registry conflict', 'registry conflict resolved']);
  });
});

describe('Registry: change classification', () => {
  it('adding a WorkloadEntry changes only endpoints; changing ports changes the service', () => {
    const { registry, changes } = newRegistry();
    const base = [helloworld(), we('a', { address: '127.1.0.2', labels: { app: 'helloworld' } })];
    assert.deepEqual(summary(registry.setShard('cluster-1', shard('cluster-1', 'n1', base))), { services: [HW], endpoints: [] });
    assert.equal(registry.version, 1);

    const withB = [...base, we('b', { address: '127.1.0.3', labels: { app: 'helloworld' } })];
    const c = registry.setShard('cluster-1', shard('cluster-1', 'n1', withB));
    assert.deepEqual(summary(c), { services: [], endpoints: [HW] });
    assert.deepEqual([...c!.workloads], ['cluster-1/default/b']);
    assert.equal(registry.version, 2);

    // Same content again: nothing changed, no version bump, no notification.
    assert.equal(registry.setShard('cluster-1', shard('cluster-1', 'n1', withB)), undefined);
    assert.equal(registry.version, 2);

    const ported = [helloworld([{ name: 'http', port: 5000 }, { name: 'grpc', port: 7000 }]), ...withB.slice(1)];
    assert.deepEqual(summary(registry.setShard('cluster-1', shard('cluster-1', 'n1', ported))), { services: [HW], endpoints: [] });

    // A workload no service selects: a workload change only.
    const c2 = registry.setShard('cluster-1', shard('cluster-1', 'n1', [...ported, we('lonely', { address: '127.1.0.9', labels: { app: 'x' } })]));
    assert.deepEqual(summary(c2), { services: [], endpoints: [] });
    assert.deepEqual([...c2!.workloads], ['cluster-1/default/lonely']);

    assert.deepEqual(changes.map((x) => x.version), [1, 2, 3, 4]);
  });

  it('a peer adding endpoints to an existing service is an endpoint change; a new peer defining it is a service change', () => {
    const { registry } = newRegistry();
    registry.setShard('cluster-1', shard('cluster-1', 'n1', [helloworld()]));
    assert.deepEqual(summary(registry.setShard('cluster-2', shard('cluster-2', 'n2', [helloworld()]))), { services: [HW], endpoints: [] });
    assert.deepEqual(summary(registry.setShard('cluster-2', shard('cluster-2', 'n2', [helloworld(), we('b', { address: '127.2.0.2', labels: { app: 'helloworld' } })]))), {
      services: [],
      endpoints: [HW],
    });
    assert.deepEqual(summary(registry.removeShard('cluster-2')), { services: [HW], endpoints: [] });
    assert.deepEqual(registry.service(HW)!.clusters, ['cluster-1']);
    assert.equal(registry.removeShard('cluster-2'), undefined);
  });
});

describe('Registry: stale shards and lookups', () => {
  it('keeps a stale peer serving, flags it, and clears the flag on fresh data', () => {
    const { registry, changes } = newRegistry();
    registry.setShard('cluster-1', shard('cluster-1', 'n1', [helloworld()]));
    const peer = shard('cluster-2', 'n2', [helloworld(), we('b', { address: '127.2.0.2', labels: { app: 'helloworld' } })]);
    registry.setShard('cluster-2', peer);
    const before = changes.length;
    registry.markStale('cluster-2', true);
    assert.equal(registry.isStale('cluster-2'), true);
    assert.equal(changes.length, before, 'no notification: the view is unchanged');
    assert.deepEqual(registry.endpoints(HW, 'http').map((e) => e.cluster), ['cluster-2']);
    const z = registryz(registry);
    assert.deepEqual(z.shards.map((s) => [s.cluster, s.stale, s.local, s.origin]), [['cluster-1', false, true, 'local'], ['cluster-2', true, false, 'peer']]);
    assert.equal(z.shards[1]!.endpoints.length, 1);
    assert.equal(z.shards[1]!.endpoints[0]!.serviceAccount, 'default/default');
    assert.equal(z.services[0]!.endpoints[0]!.locality, 'us-west');
    JSON.parse(JSON.stringify(z));

    registry.setShard('cluster-2', peer);
    assert.equal(registry.isStale('cluster-2'), false);
    registry.markStale('cluster-2', true);
    registry.markStale('cluster-2', false);
    assert.equal(registry.isStale('cluster-2'), false);
  });

  it('finds workloads by address across shards, narrowed by network', () => {
    const { registry } = newRegistry();
    registry.setShard('cluster-1', shard('cluster-1', 'network1', [we('a', { address: '10.0.0.1' })]));
    registry.setShard('cluster-2', shard('cluster-2', 'network2', [we('b', { address: '10.0.0.1' })]));
    assert.deepEqual(registry.workloadsByAddress('10.0.0.1').map((w) => `${w.cluster}/${w.name}`), ['cluster-1/a', 'cluster-2/b']);
    assert.deepEqual(registry.workloadsByAddress('10.0.0.1', 'network2').map((w) => w.name), ['b']);
    registry.setShard('cluster-2', shard('cluster-2', 'network2', []));
    assert.deepEqual(registry.workloadsByAddress('10.0.0.1').map((w) => w.name), ['a']);
  });
});
