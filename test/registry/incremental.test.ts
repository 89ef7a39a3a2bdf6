// Cost proportional to the change: the local shard patched for changed workloads must equal the
// shard buildShard makes from scratch, after every step of a long random sequence of
// registrations, WorkloadEntry edits, label moves, health flips and removals.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemorySource } from '../../src/config/sources/memory.js';
import { ConfigStore } from '../../src/config/store.js';
import type { Resource } from '../../src/config/types.js';
import { Registry, type RegistryChange } from '../../src/registry/aggregate.js';
import { AutoRegistry, type RegistrationHandle } from '../../src/registry/autoregister.js';
import { watchLocalShard } from '../../src/registry/local.js';
import { buildShard, patchShardWorkloads, type Shard, type WorkloadInputs, type WorkloadSpec } from '../../src/registry/shard.js';
import { FakeTimers, se, svc, we } from './helpers.js';

function comparable(s: Shard): unknown {
  return {
    services: [...s.services],
    endpoints: [...s.endpoints].sort(([a], [b]) => (a < b ? -1 : 1)),
    workloads: s.workloads,
    problems: s.problems.map((p) => JSON.stringify(p)).sort(),
  };
}

/** A small deterministic PRNG, so a failure replays. */
function rng(seed: number): () => number {
  let x = seed;
  return () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

const SERVICES: Resource[] = [
  svc('a', { selector: { app: 'a' }, ports: [{ name: 'http', port: 80, targetPort: 'web' }, { name: 'grpc', port: 90 }] }),
  svc('b', { selector: { app: 'b', tier: 'x' }, ports: [{ name: 'http', port: 80 }] }),
  svc('headless', { selector: { app: 'a' }, clusterIP: 'None', ports: [{ name: 'http', port: 81 }] }),
  svc('noselector', { ports: [{ name: 'http', port: 82 }] }),
  svc('a', { selector: { app: 'a' }, ports: [{ name: 'http', port: 80 }] }, 'other'),
  se('ext', { hosts: ['ext.example.com'], ports: [{ name: 'http', number: 8080, protocol: 'HTTP' }], workloadSelector: { labels: { app: 'b' } }, resolution: 'STATIC' }),
];

describe('incremental local shard', () => {
  it('patchShardWorkloads equals buildShard after each of 400 random workload changes', () => {
    const next = rng(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
    const auto = new Map<string, WorkloadSpec>();
    const wles = new Map<string, Resource>();
    const defaults = { network: 'n1' };
    let shard = buildShard('c1', defaults, { resources: SERVICES, workloads: [] });
    for (let step = 0; step < 400; step++) {
      const ns = pick(['default', 'default', 'other']);
      const name = `w${Math.floor(next() * 12)}`;
      const key = `${ns}/${name}`;
      const labels: Record<string, string> = { app: pick(['a', 'b', 'c']) };
      if (next() < 0.5) labels['tier'] = pick(['x', 'y']);
      const spec: WorkloadSpec = {
        name,
        namespace: ns,
        address: `10.0.${Math.floor(next() * 3)}.${Math.floor(next() * 250) + 1}`,
        labels,
        serviceAccount: pick(['sa1', 'sa2']),
        ports: next() < 0.5 ? { web: 8080 } : {},
        health: pick(['HEALTHY', 'UNHEALTHY'] as const),
        ...(next() < 0.2 ? { cluster: 'elsewhere' } : {}),
      };
      const op = next();
      if (op < 0.45) auto.set(key, spec);
      else if (op < 0.6) auto.delete(key);
      else if (op < 0.85) wles.set(key, we(name, { ...spec, name: undefined, namespace: undefined, cluster: undefined }, ns));
      else wles.delete(key);
      const inputs: WorkloadInputs = { ...(wles.get(key) ? { wle: wles.get(key) as Resource<never> } : {}), ...(auto.get(key) ? { auto: auto.get(key)! } : {}) };
      shard = patchShardWorkloads(shard, defaults, new Map([[key, inputs]])).shard;
      const full = buildShard('c1', defaults, { resources: [...SERVICES, ...wles.values()], workloads: [...auto.values()] });
      assert.deepEqual(comparable(shard), comparable(full), `step ${step}: ${key}`);
    }
  });

  it('the watcher patches on registrations and WorkloadEntry edits, rebuilds on a Service change; the registry reports the same changes', async () => {
    const settle = async () => {
      for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
    };
    const src = new MemorySource('m', [SERVICES[0]!, SERVICES[1]!]);
    const store = new ConfigStore();
    store.addSource(src);
    await store.start();
    const registry = new Registry({ localCluster: 'c1', log: () => {} });
    const changes: RegistryChange[] = [];
    registry.subscribe((c) => changes.push(c));
    const auto = new AutoRegistry({ timers: new FakeTimers(), graceMs: 0 });
    const watch = watchLocalShard({ cluster: 'c1', store, registry, autoRegistry: auto });
    const patch = registry.patchShard.bind(registry);
    let patches = 0;
    registry.patchShard = (...a) => (patches++, patch(...a));
    const h: RegistrationHandle = auto.register({ namespace: 'default', serviceAccount: 'sa', address: '10.1.0.1', labels: { app: 'a' }, ports: { web: 8080 } });
    await settle();
    assert.equal(patches, 1);
    assert.deepEqual([...changes.at(-1)!.endpoints], ['a.default.svc.cluster.local']);
    assert.deepEqual(registry.allEndpoints('a.default.svc.cluster.local').map((e) => `${e.address}:${e.port}`), ['10.1.0.1:8080', '10.1.0.1:90']);
    src.apply(we('wle1', { address: '10.1.0.2', labels: { app: 'b', tier: 'x' } }));
    await settle();
    assert.equal(patches, 2);
    assert.deepEqual([...changes.at(-1)!.endpoints], ['b.default.svc.cluster.local']);
    src.apply(svc('b', { selector: { app: 'b' }, ports: [{ name: 'http', port: 81 }] }));
    await settle();
    assert.equal(patches, 2, 'a Service change rebuilds');
    assert.deepEqual([...changes.at(-1)!.services], ['b.default.svc.cluster.local']);
    auto.unregister(h);
    await settle();
    assert.equal(patches, 3);
    assert.deepEqual(registry.allEndpoints('a.default.svc.cluster.local'), []);
    watch.stop();
    await store.stop();
  });
});
