// The StateStore contract on a real etcd (loopback): the same rules as the memory and file engines,
// a putIfAbsent race between two replicas' stores, and a three-member cluster losing a member.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { EtcdStateStore, parseEtcdUrl } from '../../src/mesh/state-etcd.js';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.js';

const stores: EtcdStateStore[] = [];
after(async () => {
  for (const s of stores) await s.close();
});
async function open(url: string, now?: () => number): Promise<EtcdStateStore> {
  const s = await EtcdStateStore.open(url, now ? { now } : {});
  stores.push(s);
  return s;
}

describe('etcd state store, one member', () => {
  let etcd: EtcdCluster;
  before(async () => {
    etcd = await startEtcd(1);
  });

  it('get/put/delete/list by prefix, sorted; putIfAbsent admits a key once, again only after it expires', async () => {
    let now = Date.now();
    const s = await open(etcd.url, () => now);
    await s.put('reg/b', 'B');
    await s.put('reg/a', 'A');
    await s.put('reg/c', 'C', { expiresAt: now + 1_000 });
    await s.put('tokens/x', 'X');
    assert.deepEqual([...(await s.list('reg/'))], [['reg/a', 'A'], ['reg/b', 'B'], ['reg/c', 'C']]);
    assert.equal(await s.putIfAbsent('tokens/j', '1', { expiresAt: now + 60_000 }), true);
    assert.equal(await s.putIfAbsent('tokens/j', '2'), false);
    assert.equal(await s.get('tokens/j'), '1');
    now += 1_000;
    assert.equal(await s.get('reg/c'), undefined, 'expired exactly at expiresAt, before etcd drops the lease');
    assert.deepEqual([...(await s.list('reg/')).keys()], ['reg/a', 'reg/b']);
    now += 60_000;
    assert.equal(await s.putIfAbsent('tokens/j', '3'), true, 'an expired record can be taken again');
    await s.delete('reg/a');
    assert.equal(await s.get('reg/a'), undefined);
  });

  it('etcd itself drops an expired record (lease), so a store that outlives every replica stays clean', async () => {
    const s = await open(etcd.url);
    await s.put('leases/short', 'x', { expiresAt: Date.now() + 1_000 });
    const raw = await EtcdStateStore.open(etcd.url, { now: () => 0 });
    stores.push(raw);
    assert.equal(await raw.get('leases/short'), 'x');
    const deadline = Date.now() + 15_000;
    while ((await raw.get('leases/short')) !== undefined) {
      assert.ok(Date.now() < deadline, 'lease never expired');
      await new Promise((r) => setTimeout(r, 250));
    }
  });

  it('key spaces: two clusters on one etcd see only their own records; a key space is bound to the first cluster that claims it', async () => {
    const c1 = await open(`${etcd.url}/ks-one`);
    const c2 = await open(`${etcd.url}/ks-two`);
    await c1.put('registrations/x', 'one');
    assert.equal(await c2.get('registrations/x'), undefined);
    assert.deepEqual([...(await c1.list('registrations/'))], [['registrations/x', 'one']]);
    await c1.claimCluster('cluster-1');
    await c1.claimCluster('cluster-1');
    const replica = await open(`${etcd.url}/ks-one`);
    await replica.claimCluster('cluster-1');
    const stray = await open(`${etcd.url}/ks-one`);
    await assert.rejects(stray.claimCluster('cluster-2'), (e: Error) => {
      assert.match(e.message, /holds the state of cluster cluster-1, and this control plane is cluster cluster-2/);
      assert.match(e.message, new RegExp(`--store ${etcd.url}/cluster-2$`));
      return true;
    });
    await c2.claimCluster('cluster-2');
  });

  it('two replicas racing putIfAbsent on one token id: exactly one wins', async () => {
    const [a, b] = [await open(etcd.url), await open(etcd.url)];
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).putIfAbsent('tokens/race', `r${i}`, { expiresAt: Date.now() + 60_000 })));
    assert.equal(results.filter(Boolean).length, 1);
  });

  it('a lost session lease: its ephemeral records are written again under a new lease, deleted ones are not', async () => {
    const events: string[] = [];
    const s = await EtcdStateStore.open(etcd.url, { sessionTtlSeconds: 2, reannounceRetryMs: 200, onSession: (e, d) => events.push(`${e}: ${d}`) });
    stores.push(s);
    await s.put('registrations/c1/default/kept', 'K', { ephemeral: true });
    await s.put('registrations/c1/default/gone', 'G', { ephemeral: true });
    await s.put('registrations/c1/default/durable', 'D');
    await s.delete('registrations/c1/default/gone');
    // Another client revokes every lease: etcd drops the records at once, and the keep-alive says so.
    const other = new Etcd3({ hosts: parseEtcdUrl(etcd.url).hosts });
    try {
      const { leases } = await other.leaseClient.leaseLeases();
      for (const l of leases) await other.leaseClient.leaseRevoke({ ID: l.ID });
      const raw = async () => [...(await s.list('registrations/c1/')).keys()];
      const deadline = Date.now() + 15_000;
      while (!events.some((e) => e.startsWith('reannounced'))) {
        assert.ok(Date.now() < deadline, `never written again: ${events.join(' | ')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(events[0]!, /^lost: .*1 registration record\(s\) to write again/);
      assert.deepEqual(await raw(), ['registrations/c1/default/durable', 'registrations/c1/default/kept']);
      const kv = (await other.get('/isle/state/registrations/c1/default/kept').exec()).kvs[0];
      assert.notEqual(kv?.lease, '0', 'attached to the new session lease');
    } finally {
      other.close();
    }
  });

  it('a bad URL or an unreachable etcd is a one-line error', async () => {
    assert.throws(() => parseEtcdUrl('http://x:1'), /not an etcd address/);
    assert.throws(() => parseEtcdUrl('etcd://a:1,b'), /invalid etcd member "b"/);
    assert.deepEqual(parseEtcdUrl('etcd://127.0.0.1:2379,[::1]:2380').hosts, ['http://127.0.0.1:2379', 'http://[::1]:2380']);
    assert.equal(parseEtcdUrl('etcd://127.0.0.1:2379').prefix, '/isle/state/');
    assert.equal(parseEtcdUrl('etcd://127.0.0.1:2379/').prefix, '/isle/state/');
    assert.equal(parseEtcdUrl('etcd://a:1,b:2/cluster-2').prefix, '/isle/cluster-2/state/');
    assert.throws(() => parseEtcdUrl('etcd://a:1/Cluster_2'), /key space "Cluster_2" .* must be a DNS label/);
    assert.throws(() => parseEtcdUrl('etcd://a:1/x/y'), /not an etcd address/);
    await assert.rejects(EtcdStateStore.open('etcd://127.0.0.1:9', { timeoutMs: 1_000 }), /etcd etcd:\/\/127\.0\.0\.1:9: /);
  });
});

describe('etcd state store, three members', () => {
  it('keeps serving reads and writes when one member is killed', async () => {
    const etcd = await startEtcd(3);
    const s = await open(etcd.url);
    await s.put('registrations/c1/default/a', '{"spec":{}}');
    await etcd.members[0]!.kill();
    assert.equal(await s.get('registrations/c1/default/a'), '{"spec":{}}');
    await s.put('registrations/c1/default/b', '{"spec":{}}');
    assert.equal(await s.putIfAbsent('tokens/after-kill', '1'), true);
    assert.deepEqual([...(await s.list('registrations/c1/')).keys()], ['registrations/c1/default/a', 'registrations/c1/default/b']);
  });
});
