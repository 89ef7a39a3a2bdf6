// Auto-registrations in the state store: what a restart brings back, for how long, and what a
// disconnected workload's record says about the rest of its grace period.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileStateStore, MemoryStateStore } from '../../src/mesh/state.js';
import { AutoRegistry } from '../../src/registry/autoregister.js';
import { persistRegistrations, restoreRegistrations } from '../../src/registry/persist.js';
import { FakeTimers } from './helpers.js';

const meta = (address: string, serviceAccount = 'helloworld') => ({ namespace: 'default', serviceAccount, address, labels: { app: serviceAccount } });
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('registration persistence', () => {
  it('a restart restores every registration in its grace period; a proxy that reconnects keeps it, the others expire', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'isle-reg-'));
    dirs.push(dir);
    let wall = 1_000_000;
    // Before the "crash": two proxies connected.
    const store1 = new FileStateStore(dir, () => wall);
    const auto1 = new AutoRegistry({ timers: new FakeTimers(), graceMs: 10_000 });
    const p1 = persistRegistrations({ store: store1, cluster: 'cluster-1', auto: auto1, graceMs: () => 10_000, now: () => wall });
    auto1.register(meta('127.1.0.1'));
    auto1.register(meta('127.1.0.2', 'sleep'));
    await p1.flush();
    assert.deepEqual([...(await store1.list('registrations/cluster-1/')).keys()], ['registrations/cluster-1/default/helloworld-127-1-0-1', 'registrations/cluster-1/default/sleep-127-1-0-2']);
    // SIGKILL: nothing more is written. A new process opens the same directory.
    wall += 3_000;
    const timers = new FakeTimers();
    const auto2 = new AutoRegistry({ timers, graceMs: 10_000 });
    const views: number[] = [];
    auto2.subscribe((ws) => views.push(ws.length));
    const store2 = new FileStateStore(dir, () => wall);
    const opts = { store: store2, cluster: 'cluster-1', auto: auto2, graceMs: () => 10_000, now: () => wall };
    assert.equal(await restoreRegistrations(opts), 2);
    assert.deepEqual(views, [2], 'one view change for the whole batch');
    const p2 = persistRegistrations(opts);
    // helloworld's proxy comes back: same workload, no view change.
    auto2.register(meta('127.1.0.1'));
    assert.deepEqual(views, [2]);
    timers.advance(10_000);
    assert.deepEqual(auto2.workloads().map((w) => w.name), ['helloworld-127-1-0-1'], 'sleep never came back: gone after the grace period');
    await p2.flush();
    assert.deepEqual([...(await store2.list('registrations/')).keys()], ['registrations/cluster-1/default/helloworld-127-1-0-1']);
    p1.stop();
    p2.stop();
  });

  it('a disconnected workload is stored with the end of its grace period; a restart gives it only what is left', async () => {
    let wall = 50_000;
    const store = new MemoryStateStore(() => wall);
    const auto = new AutoRegistry({ timers: new FakeTimers(), graceMs: 10_000 });
    const p = persistRegistrations({ store, cluster: 'c', auto, graceMs: () => 10_000, now: () => wall });
    const h = auto.register(meta('127.1.0.3'));
    auto.unregister(h);
    await p.flush();
    const rec = JSON.parse((await store.get('registrations/c/default/helloworld-127-1-0-3'))!) as { disconnectedAt: number };
    assert.equal(rec.disconnectedAt, 50_000);
    wall = 56_000;
    const timers = new FakeTimers();
    const again = new AutoRegistry({ timers });
    assert.equal(await restoreRegistrations({ store, cluster: 'c', auto: again, graceMs: () => 10_000, now: () => wall }), 1);
    timers.advance(3_999);
    assert.equal(again.workloads().length, 1);
    timers.advance(1);
    assert.equal(again.workloads().length, 0, '4 s were left of its grace period');
    wall = 60_000;
    assert.equal(await store.get('registrations/c/default/helloworld-127-1-0-3'), undefined, 'the record expired with the grace period');
    p.stop();
  });

  it('bad records are reported and skipped; other clusters are not read', async () => {
    const store = new MemoryStateStore();
    await store.put('registrations/c/default/x', '{not json');
    await store.put('registrations/c/default/y', '{"spec":{"name":"y"}}');
    await store.put('registrations/other/default/z', JSON.stringify({ spec: { name: 'z', namespace: 'default', address: '127.1.0.9' } }));
    const bad: string[] = [];
    const auto = new AutoRegistry({ timers: new FakeTimers() });
    assert.equal(await restoreRegistrations({ store, cluster: 'c', auto, graceMs: () => 10_000, onBadRecord: (k, why) => bad.push(`${k}: ${why}`) }), 0);
    assert.equal(bad.length, 2);
    assert.match(bad[0]!, /registrations\/c\/default\/x: not JSON/);
    assert.match(bad[1]!, /needs name, namespace and address/);
  });
});
