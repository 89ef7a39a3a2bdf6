import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemorySource, type MemoryResource } from '../../src/config/sources/memory.js';
import { ConfigStore, canonical } from '../../src/config/store.js';
import type { ConfigEvent, Resource } from '../../src/config/types.js';

/** Lets queued microtasks (MemorySource deliveries) run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

const we = (name: string, address: string, extra: Partial<MemoryResource> = {}): MemoryResource => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'WorkloadEntry',
  metadata: { name, namespace: 'default' },
  spec: { address, labels: { app: 'helloworld' } },
  ...extra,
});
const K = (name: string) => `WorkloadEntry/default/${name}`;
const addr = (r: Resource | undefined) => (r?.spec as { address: string } | undefined)?.address;

function recorder(store: ConfigStore) {
  const batches: { events: readonly ConfigEvent[]; version: number }[] = [];
  store.subscribe((events, version) => batches.push({ events, version }));
  return {
    batches,
    summary: () => batches.map((b) => `${b.version}: ${b.events.map((e) => `${e.type} ${e.key}`).join(', ')}`),
  };
}

describe('MemorySource', () => {
  it('delivers a run of synchronous changes as one snapshot on a microtask', async () => {
    const src = new MemorySource('t');
    const seen: number[] = [];
    src.subscribe((s) => seen.push(s.resources.size));
    src.apply(we('a', '127.1.0.2'));
    src.apply([we('b', '127.1.0.3'), we('c', '127.1.0.4')]);
    src.delete(K('c'));
    assert.deepEqual(seen, []);
    await settle();
    assert.deepEqual(seen, [2]);
    assert.equal(src.name, 'memory:t');
  });

  it('parses YAML text; a text with errors applies nothing and reports them; fixing the text clears them', async () => {
    const src = new MemorySource('t');
    const ok = src.apply(
      'apiVersion: v1\nkind: Service\nmetadata: {name: helloworld}\nspec: {selector: {app: helloworld}, ports: [{name: http, port: 5000}]}\n',
      'peer/services.yaml',
    );
    assert.deepEqual(ok.errors.filter((e) => e.severity === 'error'), []);
    const bad = src.apply('apiVersion: v1\nkind: Service\nmetadata: {name: other\n', 'peer/services.yaml');
    assert.ok(bad.errors.some((e) => e.severity === 'error'));
    const snap = src.snapshot();
    assert.deepEqual([...snap.resources.keys()], ['Service/default/helloworld']);
    assert.ok(snap.errors.some((e) => e.file === 'peer/services.yaml' && e.severity === 'error'));
    src.apply('', 'peer/services.yaml');
    assert.deepEqual(src.snapshot().errors, []);
  });

  it('copies and freezes objects it is given', () => {
    const mine = we('a', '127.1.0.2') as Resource;
    const src = new MemorySource('t', mine);
    (mine.spec as { address: string }).address = '10.0.0.1';
    const held = src.snapshot().resources.get(K('a'))!;
    assert.equal(addr(held), '127.1.0.2');
    assert.ok(Object.isFrozen(held.spec));
    assert.deepEqual(held.source, { file: 'memory:t.yaml', line: 1 });
  });
});

describe('ConfigStore', () => {
  it('emits batches with increasing versions and keeps per-resource versions', async () => {
    const src = new MemorySource('m');
    const store = new ConfigStore();
    const rec = recorder(store);
    store.addSource(src);
    await store.start();
    assert.equal(store.version, 0);

    src.apply([we('a', '127.1.0.2'), we('b', '127.1.0.3')]);
    await settle();
    src.apply(we('a', '127.1.0.9'));
    await settle();
    src.delete(K('b'));
    await settle();
    src.replaceAll([we('a', '127.1.0.9'), we('c', '127.1.0.4')]);
    await settle();

    assert.deepEqual(rec.summary(), [
      `1: added ${K('a')}, added ${K('b')}`,
      `2: updated ${K('a')}`,
      `3: deleted ${K('b')}`,
      `4: added ${K('c')}`,
    ]);
    assert.equal(store.version, 4);
    for (const b of rec.batches) for (const e of b.events) assert.equal(e.version, b.version);
    assert.equal(store.getWithVersion(K('a'))?.resourceVersion, 2);
    assert.equal(store.getWithVersion(K('c'))?.resourceVersion, 4);
    assert.equal(store.getWithVersion(K('b')), undefined);

    const upd = rec.batches[1]!.events[0]!;
    assert.ok(upd.type === 'updated');
    assert.equal(addr(upd.previous), '127.1.0.2');
    assert.equal(addr(upd.resource), '127.1.0.9');
    const del = rec.batches[2]!.events[0]!;
    assert.ok(del.type === 'deleted');
    assert.equal(addr(del.previous), '127.1.0.3');
  });

  it('a change of one kind leaves the cached lists of other kinds alone; its own kind and the whole list follow', async () => {
    const src = new MemorySource('m');
    const store = new ConfigStore();
    store.addSource(src);
    await store.start();
    const dr = (host: string): MemoryResource => ({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'dr', namespace: 'default' }, spec: { host } });
    src.apply([we('a', '127.1.0.2'), dr('a')]);
    await settle();
    const drs = store.list('DestinationRule');
    const all = store.list();
    assert.equal(all.length, 2);
    src.apply(we('a', '127.1.0.9'));
    await settle();
    assert.equal(store.list('DestinationRule')[0], drs[0], 'the same rule object');
    assert.equal(addr(store.list('WorkloadEntry')[0]), '127.1.0.9');
    assert.equal(addr(store.list().find((r) => r.kind === 'WorkloadEntry')), '127.1.0.9');
    src.apply(dr('b'));
    await settle();
    assert.equal((store.list('DestinationRule')[0]!.spec as { host: string }).host, 'b');
    assert.equal((store.list().find((r) => r.kind === 'DestinationRule')!.spec as { host: string }).host, 'b');
    src.delete('DestinationRule/default/dr');
    await settle();
    assert.deepEqual(store.list('DestinationRule'), []);
    assert.equal(store.list().length, 1);
  });

  it('ignores changes of source position, key order and empty label maps', async () => {
    const src = new MemorySource('m');
    const store = new ConfigStore();
    store.addSource(src);
    src.apply(we('a', '127.1.0.2', { source: { file: 'one.yaml', line: 1 } }));
    await settle();
    const rec = recorder(store);
    src.apply({
      spec: { labels: { app: 'helloworld' }, address: '127.1.0.2' },
      metadata: { namespace: 'default', name: 'a', labels: {} },
      kind: 'WorkloadEntry',
      apiVersion: 'networking.istio.io/v1',
      source: { file: 'two.yaml', line: 40 },
    });
    await settle();
    assert.deepEqual(rec.batches, []);
    assert.equal(store.version, 1);
    assert.deepEqual(store.get('WorkloadEntry', 'default', 'a')?.source, { file: 'two.yaml', line: 40 });

    src.apply(we('a', '127.1.0.2', { metadata: { name: 'a', namespace: 'default', labels: { team: 'x' } } }));
    await settle();
    assert.deepEqual(rec.summary(), [`2: updated ${K('a')}`]);
  });

  it('canonical() covers content and nothing else', () => {
    const a = { ...we('a', '1.1.1.1'), source: { file: 'x', line: 1 } } as Resource;
    const b = { ...we('a', '1.1.1.1'), source: { file: 'y', line: 9 } } as Resource;
    assert.equal(canonical(a), canonical(b));
    const c = { ...b, metadata: { ...b.metadata, annotations: { note: 'n' } } } as Resource;
    assert.notEqual(canonical(a), canonical(c));
  });

  it('merges sources: an earlier source wins; the conflict names both; the loser takes over when the winner drops it', async () => {
    const local = new MemorySource('local');
    const peer = new MemorySource('peer');
    const store = new ConfigStore();
    store.addSource(local);
    store.addSource(peer);
    const rec = recorder(store);
    const errorBatches: number[] = [];
    store.subscribeErrors((errs) => errorBatches.push(errs.length));

    local.apply(we('shared', '127.1.0.2', { source: { file: 'local.yaml', line: 3 } }));
    peer.apply([we('shared', '127.1.0.99', { source: { file: 'peer.yaml', line: 7 } }), we('p', '127.1.0.5')]);
    await settle();
    assert.equal(addr(store.get('WorkloadEntry', 'default', 'shared')), '127.1.0.2');
    assert.equal(store.list('WorkloadEntry').length, 2);
    assert.deepEqual(store.list('Service'), []);
    const [conflict] = store.errors();
    assert.ok(conflict);
    assert.equal(conflict.severity, 'error');
    assert.equal(conflict.file, 'peer.yaml');
    assert.equal(conflict.line, 7);
    assert.match(conflict.message, /memory:local/);
    assert.match(conflict.message, /memory:peer/);
    assert.match(conflict.message, /local\.yaml:3/);
    assert.deepEqual(errorBatches, [1]);

    // The peer changing its losing copy is not a change of the store.
    peer.apply(we('shared', '127.1.0.100', { source: { file: 'peer.yaml', line: 7 } }));
    await settle();
    const before = rec.batches.length;
    assert.equal(addr(store.get('WorkloadEntry', 'default', 'shared')), '127.1.0.2');

    local.delete(K('shared'));
    await settle();
    assert.equal(rec.batches.length, before + 1);
    const ev = rec.batches.at(-1)!.events[0]!;
    assert.equal(ev.type, 'updated');
    assert.equal(addr(store.get('WorkloadEntry', 'default', 'shared')), '127.1.0.100');
    assert.deepEqual(store.errors(), []);
    assert.deepEqual(errorBatches, [1, 0]);

    store.removeSource(peer);
    assert.deepEqual(store.list(), []);
    assert.deepEqual(
      rec.batches.at(-1)!.events.map((e) => e.type),
      ['deleted', 'deleted'],
    );
  });

  it('reports errors of all sources', async () => {
    const a = new MemorySource('a');
    const b = new MemorySource('b');
    const store = new ConfigStore();
    store.addSource(a);
    store.addSource(b);
    a.apply('kind: [\n', 'a.yaml');
    b.apply('kind: [\n', 'b.yaml');
    await settle();
    const files = store.errors().map((e) => e.file);
    assert.ok(files.includes('a.yaml') && files.includes('b.yaml'));
  });

  it('hands out frozen events and resources, and later subscribers see the current state via list()', async () => {
    const src = new MemorySource('m', [we('a', '127.1.0.2')]);
    const store = new ConfigStore();
    const rec = recorder(store);
    store.addSource(src);
    const [batch] = rec.batches;
    assert.ok(batch);
    assert.ok(Object.isFrozen(batch.events));
    const e = batch.events[0]!;
    assert.ok(Object.isFrozen(e));
    assert.throws(() => {
      (e as { version: number }).version = 99;
    }, TypeError);
    assert.ok(e.type === 'added');
    assert.throws(() => {
      (e.resource.spec as { address: string }).address = 'x';
    }, TypeError);
    assert.equal(store.list().length, 1);
    assert.throws(() => store.addSource(src));
  });

  it('one throwing listener does not keep the others from their events', async () => {
    const src = new MemorySource('m');
    const caught: unknown[] = [];
    const store = new ConfigStore({ onListenerError: (err) => caught.push(err) });
    store.addSource(src);
    const seen: number[] = [];
    store.subscribe(() => {
      throw new Error('listener bug');
    });
    store.subscribe((_e, v) => seen.push(v));
    src.apply(we('a', '127.1.0.2'));
    await settle();
    assert.deepEqual(seen, [1]);
    assert.equal(caught.length, 1);
    assert.match(String(caught[0]), /listener bug/);
    assert.equal(store.version, 1);
  });

  it('unsubscribe stops delivery', async () => {
    const src = new MemorySource('m');
    const store = new ConfigStore();
    store.addSource(src);
    let n = 0;
    const off = store.subscribe(() => n++);
    src.apply(we('a', '127.1.0.2'));
    await settle();
    off();
    src.apply(we('b', '127.1.0.3'));
    await settle();
    assert.equal(n, 1);
    assert.equal(store.version, 2);
  });
});
