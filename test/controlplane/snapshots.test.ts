// Compute once per distinct proxy scope (issue 13): proxies with the same share keys get the very
// same TypeSnapshot (map, version and resource objects); a proxy's own resources are layered over
// the shared map instead of copying it; a change in one namespace leaves the other namespaces'
// versions alone, so their proxies are not pushed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { endpointOnlyPush, generateResources, generateTypeSnapshot, typeVersion } from '../../src/controlplane/snapshots.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE } from '../../src/mesh/typeurls.js';
import { diffTypeSnapshots, layeredTypeSnapshot, layersOf, makeResource, typeSnapshot } from '../../src/xds/cache.js';
import type { Resource } from '../../src/config/types.js';
import type { VirtualServiceSpec } from '../../src/config/kinds/networking.js';
import { endpoints, helloworld, helloworldDr, helloworldSidecar, push, sidecar, sleep, sleepSidecar } from '../generate/fixtures.js';
import { generateEndpoints } from '../../src/generate/eds.js';
import { cluster } from '../xds/helpers.js';

function vs(namespace: string, timeout: string): Resource<VirtualServiceSpec> {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'sleep-timeout', namespace },
    spec: { hosts: ['sleep.sample.svc.cluster.local'], exportTo: ['.'], http: [{ timeout, route: [{ destination: { host: 'sleep.sample.svc.cluster.local' } }] }] },
    source: { file: 'vs.yaml', line: 1 },
  } as Resource<VirtualServiceSpec>;
}

describe('snapshots per proxy scope', () => {
  it('two sidecars of one namespace share the TypeSnapshot of every fully shared type', () => {
    const p = push();
    const a = sidecar(p, '127.100.0.1', 'client-a', 'sample');
    const b = sidecar(p, '127.100.0.2', 'client-b', 'sample');
    for (const t of [CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE, SECRET_TYPE]) {
      assert.equal(generateTypeSnapshot(p, a, t), generateTypeSnapshot(p, b, t), `${t}: one object for both`);
    }
    // Listeners bind each proxy's own address: per proxy.
    assert.notEqual(generateTypeSnapshot(p, a, LISTENER_TYPE), generateTypeSnapshot(p, b, LISTENER_TYPE));
  });

  it("a sidecar's inbound clusters are layered over the shared outbound map, not copied into one of their own", () => {
    const p = push();
    const hw = helloworldSidecar(p);
    const sl = sleepSidecar(p);
    const client = sidecar(p, '127.100.0.3', 'client', 'sample');
    const shared = generateTypeSnapshot(p, client, CLUSTER_TYPE);
    const h = generateTypeSnapshot(p, hw, CLUSTER_TYPE);
    const s = generateTypeSnapshot(p, sl, CLUSTER_TYPE);
    const lh = layersOf(h);
    const ls = layersOf(s);
    assert.ok(lh && ls, 'both have inbound clusters of their own');
    assert.equal(lh.base, shared.resources, 'the shared map itself, no copy');
    assert.equal(ls.base, shared.resources);
    assert.deepEqual([...lh.own.keys()].sort(), ['inbound|5000||', 'inbound|9090||']);
    // Same resources as generating the whole list, and every outbound one the same object.
    const all = generateResources(p, hw, CLUSTER_TYPE);
    assert.deepEqual([...h.resources.keys()].sort(), all.map((r) => r.name).sort());
    for (const [name, r] of shared.resources) assert.equal(h.resources.get(name), r);
    assert.equal(h.resources.size, shared.resources.size + lh.own.size);
    assert.notEqual(h.version, shared.version);
    assert.notEqual(h.version, s.version, 'different inbound ports, different versions');
    assert.equal(generateTypeSnapshot(p, helloworldSidecar(p), CLUSTER_TYPE).version, h.version, 'deterministic');
  });

  it("a VirtualService change in one namespace moves that namespace's RDS only; other namespaces keep their version", () => {
    const p1 = push({ virtualServices: [vs('sample', '1s')] });
    const p2 = push({ version: 'v2', virtualServices: [vs('sample', '2s')] });
    const inSample = (p: typeof p1) => sidecar(p, '127.100.0.4', 'client', 'sample');
    const inOther = (p: typeof p1) => sidecar(p, '127.100.0.5', 'client', 'bookinfo');
    const s1 = generateTypeSnapshot(p1, inSample(p1), ROUTE_TYPE);
    const s2 = generateTypeSnapshot(p2, inSample(p2), ROUTE_TYPE);
    const o1 = generateTypeSnapshot(p1, inOther(p1), ROUTE_TYPE);
    const o2 = generateTypeSnapshot(p2, inOther(p2), ROUTE_TYPE);
    assert.notEqual(s1.version, s2.version, 'sample sees its VirtualService');
    assert.equal(o1.version, o2.version, 'bookinfo does not (exportTo "."): its proxies get nothing');
    assert.notEqual(s1, o1, 'one RDS per namespace');
    for (const t of [CLUSTER_TYPE, ENDPOINT_TYPE]) assert.equal(generateTypeSnapshot(p2, inSample(p2), t).version, generateTypeSnapshot(p1, inSample(p1), t).version, `${t} unchanged`);
  });

  it('layered snapshots reject duplicate names and diff layer by layer', () => {
    const base = typeSnapshot('b1', [cluster('a'), cluster('b')]);
    assert.throws(() => layeredTypeSnapshot(base, [cluster('a', 'x')]), /duplicate resource name "a"/);
    assert.equal(layeredTypeSnapshot(base, []), base, 'nothing of its own: the shared snapshot itself');
    const l1 = layeredTypeSnapshot(base, [cluster('own')]);
    const base2 = typeSnapshot('b2', [cluster('a', 'changed'), cluster('c')]);
    const l2 = layeredTypeSnapshot(base2, [cluster('own'), cluster('own2')]);
    const d = diffTypeSnapshots(l1, l2);
    assert.deepEqual([...d.changed].sort(), ['a', 'c', 'own2']);
    assert.deepEqual(d.removed, ['b']);
    assert.equal(diffTypeSnapshots(l1, l2), d, 'memoized per pair');
    assert.notEqual(layeredTypeSnapshot(base, [cluster('own')]).version, layeredTypeSnapshot(base, [cluster('own', 'x')]).version);
    assert.equal(typeVersion([...l1.resources.values()]).length, 16);
  });

  it('across pushes, an endpoint change re-encodes only the assignments it moved; the rest keep their objects', () => {
    const p1 = push({ version: 'v1' });
    const moved = endpoints.map((e) => (e.address === '127.1.0.20' ? { ...e, address: '127.1.0.21' } : e));
    const p2 = push({ version: 'v2', endpoints: moved });
    const e1 = generateTypeSnapshot(p1, sleepSidecar(p1), ENDPOINT_TYPE).resources;
    const e2 = generateTypeSnapshot(p2, sleepSidecar(p2), ENDPOINT_TYPE).resources;
    assert.deepEqual([...e2.keys()].sort(), [...e1.keys()].sort());
    const changed = [...e2].filter(([name, r]) => e1.get(name) !== r).map(([name]) => name);
    assert.deepEqual(changed, ['outbound|80||sleep.sample.svc.cluster.local'], 'only the sleep assignment is new');
    assert.notEqual(e2.get(changed[0]!)!.version, e1.get(changed[0]!)!.version);
    // The reused objects are what a fresh encoding gives: same bytes.
    const fresh = generateEndpoints(p2, sleepSidecar(p2)).map((o) => makeResource(ENDPOINT_TYPE, o));
    assert.equal(fresh.length, e2.size);
    for (const r of fresh) assert.deepEqual(e2.get(r.name)!.any.value, r.any.value, r.name);
  });

  describe('incremental EDS (an endpoint-only push builds only the hosts it names)', () => {
    const HW = helloworld.hostname;
    const movedHw = endpoints.map((e) => (e.hostname === HW && e.address === '127.1.0.10' ? { ...e, address: '127.1.0.11' } : e));
    // Not sleep's own sidecar: its locality follows the endpoints at its address.
    const client = (p: ReturnType<typeof push>) => sidecar(p, '127.100.0.9', 'client', 'sample');
    const eds = (p: ReturnType<typeof push>) => generateTypeSnapshot(p, client(p), ENDPOINT_TYPE);

    it('rebuilds the named hosts, reuses every other assignment object, and equals a whole build byte for byte, in order', () => {
      const p1 = push({ version: 'i1' });
      const e1 = eds(p1);
      const p2 = push({ version: 'i2', endpoints: movedHw });
      endpointOnlyPush(p1, p2, new Set([HW]));
      const e2 = eds(p2);
      const hwNames = [...e1.resources.keys()].filter((n) => n.endsWith(`|${HW}`));
      assert.ok(hwNames.length >= 4, 'two ports, two subsets');
      for (const [name, r] of e2.resources) {
        if (hwNames.includes(name)) continue;
        assert.equal(r, e1.resources.get(name), `${name}: the previous object`);
      }
      assert.ok(hwNames.some((n) => e2.resources.get(n) !== e1.resources.get(n)), 'helloworld moved');
      const whole = generateEndpoints(p2, client(p2)).map((o) => makeResource(ENDPOINT_TYPE, o));
      assert.deepEqual([...e2.resources.keys()], whole.map((r) => r.name), 'same names, same order');
      for (const r of whole) assert.deepEqual(e2.resources.get(r.name)!.any.value, r.any.value, r.name);
      assert.equal(e2.version, typeVersion(whole));
    });

    it('builds nothing but the named hosts: a host it was not told about keeps the previous assignment', () => {
      const p1 = push({ version: 'j1' });
      const e1 = eds(p1);
      const p2 = push({ version: 'j2', endpoints: movedHw });
      // The registry names the hosts whose endpoints moved; told "sleep", helloworld is not rebuilt.
      endpointOnlyPush(p1, p2, new Set([sleep.hostname]));
      const e2 = eds(p2);
      for (const [name, r] of e2.resources) assert.equal(r, e1.resources.get(name), name);
    });

    it('builds the group whole when rules, services, mesh or gateways differ, or the previous push never built it', () => {
      const cases: [string, Parameters<typeof push>[0], boolean][] = [
        ['a new DestinationRule object', { destinationRules: [{ ...helloworldDr }] }, true],
        ['other east-west gateways', { networkGateways: { network2: [{ address: '127.2.0.101', port: 15443, cluster: 'cluster-2' }] } }, true],
        ['another mesh network name', { mesh: { trustDomain: 'cluster.local', clusterName: 'cluster-1', network: 'network1', rootNamespace: 'other' } }, true],
        ['the previous push built no EDS', {}, false],
      ];
      for (const [what, over, buildFirst] of cases) {
        const p1 = push({ version: `k1 ${what}` });
        if (buildFirst) eds(p1);
        const p2 = push({ version: `k2 ${what}`, endpoints: movedHw, ...over });
        endpointOnlyPush(p1, p2, new Set([sleep.hostname]));
        const e2 = eds(p2);
        const whole = generateEndpoints(p2, client(p2)).map((o) => makeResource(ENDPOINT_TYPE, o));
        for (const r of whole) assert.deepEqual(e2.resources.get(r.name)!.any.value, r.any.value, `${what}: ${r.name}`);
      }
    });
  });
});
