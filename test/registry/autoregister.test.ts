import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemorySource } from '../../src/config/sources/memory.js';
import { ConfigStore } from '../../src/config/store.js';
import { Registry, type RegistryChange } from '../../src/registry/aggregate.js';
import { AutoRegistry } from '../../src/registry/autoregister.js';
import { watchLocalShard } from '../../src/registry/local.js';
import { FakeTimers, helloworld, we } from './helpers.js';

/** MemorySource delivers on a microtask, the watcher rebuilds on setImmediate: let both run. */
const settle = async () => {
  for (let i = 0; i < 2; i++) await new Promise<void>((r) => setImmediate(r));
};

const HW = 'helloworld.default.svc.cluster.local';
const meta = { namespace: 'default', serviceAccount: 'helloworld', address: '127.1.0.7', labels: { app: 'helloworld', version: 'v1' }, locality: 'us-east/us-east-1a', network: 'network1', cluster: 'cluster-1' };

describe('AutoRegistry', () => {
  it('keeps a workload for the grace period after its last connection goes, then drops it', () => {
    const timers = new FakeTimers();
    const auto = new AutoRegistry({ graceMs: 10_000, timers });
    const seen: number[] = [];
    auto.subscribe((ws) => seen.push(ws.length));
    const h = auto.register(meta);
    assert.equal(h.key, 'default/helloworld-127-1-0-7');
    assert.deepEqual(seen, [1]);
    auto.unregister(h);
    assert.equal(auto.inGracePeriod(h.key), true);
    timers.advance(9_999);
    assert.equal(auto.workloads().length, 1);
    timers.advance(1);
    assert.equal(auto.workloads().length, 0);
    assert.deepEqual(seen, [1, 0]);
    auto.unregister(h); // idempotent
    assert.equal(timers.size, 0);
  });

  it('a re-registration within the grace period keeps the workload without a change', () => {
    const timers = new FakeTimers();
    const auto = new AutoRegistry({ timers });
    const seen: number[] = [];
    auto.subscribe((ws) => seen.push(ws.length));
    const h1 = auto.register(meta);
    auto.unregister(h1);
    timers.advance(5_000);
    const h2 = auto.register(meta);
    timers.advance(60_000);
    assert.equal(auto.workloads().length, 1);
    assert.deepEqual(seen, [1]);
    // Two live connections: the first going does not start the grace period.
    const h3 = auto.register(meta);
    auto.unregister(h2);
    assert.equal(auto.inGracePeriod(h3.key), false);
    auto.unregister(h3);
    timers.advance(10_000);
    assert.deepEqual(seen, [1, 0]);
  });

  it('new metadata and health replace the old; bad metadata is rejected', () => {
    const auto = new AutoRegistry({ timers: new FakeTimers() });
    const h = auto.register(meta);
    auto.register({ ...meta, labels: { ...meta.labels, version: 'v2' } });
    assert.equal(auto.workloads()[0]!.labels!.version, 'v2');
    auto.setHealth(h, 'UNHEALTHY');
    assert.equal(auto.workloads()[0]!.health, 'UNHEALTHY');
    assert.throws(() => auto.register({ ...meta, address: 'not-an-ip' }), /invalid address/);
    assert.throws(() => auto.register({ ...meta, namespace: 'Bad_NS' }), /invalid namespace/);
  });
});

describe('watchLocalShard', () => {
  it('turns ConfigStore changes and auto-registered proxies into local shard updates', async () => {
    const timers = new FakeTimers();
    const source = new MemorySource('t', [
      { apiVersion: 'mesh.isle.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'mesh' }, spec: { trustDomain: 'cluster.local', rootNamespace: 'istio-system', debounce: { quiet: '100ms', max: '10s' }, network: 'network1', defaultLocality: { region: 'us-east' } } },
      helloworld(),
    ]);
    const store = new ConfigStore();
    store.addSource(source);
    const registry = new Registry({ localCluster: 'cluster-1', log: () => {} });
    const changes: RegistryChange[] = [];
    registry.subscribe((c) => changes.push(c));
    const auto = new AutoRegistry({ timers });
    const watch = watchLocalShard({ cluster: 'cluster-1', store, registry, autoRegistry: auto });
    assert.deepEqual(registry.endpoints(HW, 'http'), []);

    source.apply(we('hw-vm', { address: '127.1.0.2', labels: { app: 'helloworld' } }));
    await settle();
    const ep = registry.endpoints(HW, 'http');
    assert.deepEqual(ep.map((e) => `${e.address} ${e.network} ${e.locality.region}`), ['127.1.0.2 network1 us-east']);
    assert.deepEqual([...changes.at(-1)!.endpoints], [HW]);

    const h = auto.register({ ...meta, ports: {} });
    const h2 = auto.register({ ...meta, name: 'second', address: '127.1.0.8' });
    const v = registry.version;
    await settle();
    assert.equal(registry.version, v + 1, 'a burst of registrations is one rebuild');
    auto.unregister(h2);
    const autoEp = registry.endpoints(HW, 'http').find((e) => e.source === 'auto')!;
    assert.equal(autoEp.address, '127.1.0.7');
    assert.deepEqual(autoEp.serviceAccount, { namespace: 'default', name: 'helloworld' });
    assert.equal(autoEp.locality.zone, 'us-east-1a');
    assert.deepEqual([...changes.at(-1)!.endpoints], [HW]);

    auto.unregister(h);
    timers.advance(10_000);
    await settle();
    assert.deepEqual(registry.endpoints(HW, 'http').map((e) => e.source), ['WorkloadEntry']);
    watch.stop();
  });
});
