// What a push derives from a host's endpoint list (sort, per-port lists, SPIFFE ids) is kept per
// list: the registry replaces a host's list when it changes, so an endpoint push redoes one host.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildPushContext, type PushContextInput } from '../../src/model/pushcontext.js';
import type { Endpoint } from '../../src/registry/model.js';
import { endpoints, helloworld, sleep } from '../generate/fixtures.js';

const byHost = (eps: readonly Endpoint[]) => {
  const m = new Map<string, readonly Endpoint[]>();
  for (const e of eps) m.set(e.hostname, Object.freeze([...(m.get(e.hostname) ?? []), e]));
  return m;
};

function build(lists: Map<string, readonly Endpoint[]>, trustDomain = 'cluster.local') {
  const input: PushContextInput = {
    version: 'v',
    mesh: { trustDomain, clusterName: 'cluster-1' },
    services: [helloworld, sleep],
    endpoints: (h) => lists.get(h) ?? [],
  };
  return buildPushContext(input);
}

describe('buildPushContext per endpoint list', () => {
  it('reuses the derived lists of hosts whose list is the same array; a replaced list is derived anew', () => {
    // Reversed, so the sort has work to do.
    const lists = byHost([...endpoints].reverse());
    const p1 = build(lists);
    const hw = p1.endpointsByHostPort.get(`${helloworld.hostname}|5000`)!;
    assert.deepEqual(hw.map((e) => e.address), ['127.1.0.10', '127.2.0.10'], 'sorted by address');
    assert.ok(Object.isFrozen(hw));

    const moved = lists.get(sleep.hostname)!.map((e) => ({ ...e, address: '127.1.0.29', serviceAccount: { namespace: 'sample', name: 'sleep-2' } }));
    const lists2 = new Map(lists).set(sleep.hostname, Object.freeze(moved));
    const p2 = build(lists2);
    assert.equal(p2.endpointsByHostPort.get(`${helloworld.hostname}|5000`), hw, 'helloworld: the same list');
    assert.equal(p2.identitiesByHost.get(helloworld.hostname)?.join(), p1.identitiesByHost.get(helloworld.hostname)?.join());
    assert.deepEqual(p2.endpointsByHostPort.get(`${sleep.hostname}|80`)!.map((e) => e.address), ['127.1.0.29']);
    assert.deepEqual(p2.identitiesByHost.get(sleep.hostname), ['spiffe://cluster.local/ns/sample/sa/sleep-2']);
    assert.deepEqual(p2.endpointsByAddress.get('127.1.0.29')?.map((e) => e.hostname), [sleep.hostname]);
    assert.equal(p2.endpointsByAddress.get('127.1.0.20'), undefined);
  });

  it('derives the identities again for another trust domain', () => {
    const lists = byHost(endpoints);
    assert.deepEqual(build(lists).identitiesByHost.get(sleep.hostname), ['spiffe://cluster.local/ns/sample/sa/sleep']);
    assert.deepEqual(build(lists, 'other.example').identitiesByHost.get(sleep.hostname), ['spiffe://other.example/ns/sample/sa/sleep']);
  });

  it('a service without an address is the same auto-VIP object in every push while it stays the same object', () => {
    const bare = Object.freeze({ ...sleep, addresses: [] as string[] });
    const make = (svcs: typeof bare[]) => buildPushContext({ version: 'v', mesh: { trustDomain: 'cluster.local', clusterName: 'cluster-1' }, services: svcs, endpoints: [] });
    const a = make([bare]).services[0]!;
    assert.match(a.addresses[0] ?? '', /^240\.240\./);
    assert.equal(make([bare]).services[0], a);
    const other = make([{ ...bare }]).services[0]!;
    assert.notEqual(other, a, 'another object: another copy');
    assert.deepEqual(other, a);
  });
});
