/**
 * The generic discovery client against the real XdsServer + SnapshotCache over real gRPC, with a
 * small decoder table of its own (not the proxy's): delta and SotW, ACK, one NACK carrying every
 * error with the last good state kept, subscriptions following accepted resources, reconnect with
 * the injected back-off and delta's initial_resource_versions. The ResourceStore is tested with
 * plain objects.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CLUSTER_TYPE, decodeResource, ENDPOINT_TYPE, makeResource, toAny, type AnyMsg, type SendEvent, type XdsResource } from '../../src/xds/index.js';
import { DiscoveryClient, ResourceStore, type Decoded, type DecoderTable, type NackEvent, type XdsProtocol } from '../../src/xds/client/index.js';
import { startServer, waitUntil, type Harness } from './helpers.js';

const NODE = { id: 'sidecar~127.1.90.1~c.default~default.svc.cluster.local', metadata: { NAMESPACE: 'default' } };

interface Cl {
  name: string;
  type: 'EDS' | 'STATIC';
}
interface Ep {
  cluster: string;
  ports: number[];
}
interface Types {
  [CLUSTER_TYPE]: Cl;
  [ENDPOINT_TYPE]: Ep;
}

/** A deliberately small validation: every problem is reported, not just the first. */
const DECODERS: DecoderTable<Types> = {
  [CLUSTER_TYPE]: {
    decode(any: AnyMsg): Decoded<Cl> {
      const raw = decodeResource(any);
      const name = String(raw['name'] ?? '');
      const errors: string[] = [];
      if (!name) errors.push('cluster: name is required');
      const type = raw['type'] ?? 'STATIC';
      if (type !== 'EDS' && type !== 'STATIC') errors.push(`cluster ${JSON.stringify(name)}: type ${JSON.stringify(type)} is not supported`);
      return errors.length ? { ok: false, name, errors, raw } : { ok: true, name, value: { name, type: type as Cl['type'] }, raw };
    },
  },
  [ENDPOINT_TYPE]: {
    decode(any: AnyMsg): Decoded<Ep> {
      const raw = decodeResource(any) as { cluster_name?: string; endpoints?: { lb_endpoints?: { endpoint?: { address?: { socket_address?: { port_value?: number } } } }[] }[] };
      const ports = (raw.endpoints ?? []).flatMap((l) => (l.lb_endpoints ?? []).map((e) => e.endpoint?.address?.socket_address?.port_value ?? 0));
      return { ok: true, name: raw.cluster_name ?? '', value: { cluster: raw.cluster_name ?? '', ports }, raw: raw as Record<string, unknown> };
    },
  },
};

const cluster = (name: string, type = 'EDS'): XdsResource => makeResource(CLUSTER_TYPE, { name, type, eds_cluster_config: { eds_config: { ads: {} }, service_name: name } });
const cla = (name: string, port: number): XdsResource =>
  makeResource(ENDPOINT_TYPE, { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] });

const harnesses: Harness[] = [];
after(async () => {
  for (const h of harnesses) await h.close();
});

/** The value `f` returns once it is there. */
async function until<T>(what: string, f: () => T | undefined | false): Promise<T> {
  let v: T | undefined | false;
  await waitUntil(() => (v = f()) !== undefined && v !== false, what);
  return v as T;
}

function newClient(address: string, protocol: XdsProtocol, backoff: (n: number) => number = () => 20) {
  const store = new ResourceStore<Types>({ decoders: DECODERS });
  const accepted: string[] = [];
  const c = new DiscoveryClient<Types>({
    channel: () => ({ address, credentials: grpc.credentials.createInsecure() }),
    protocol,
    node: NODE,
    store,
    // CDS wildcard; EDS for the EDS clusters accepted so far (nothing to ask before that).
    subscriptions: (t) => {
      if (t === CLUSTER_TYPE) return [];
      const names = [...store.values(CLUSTER_TYPE).values()].filter((x) => x.type === 'EDS').map((x) => x.name).sort();
      return names.length ? names : null;
    },
    onAccepted: (t) => {
      accepted.push(t);
      if (t === CLUSTER_TYPE) c.updateSubscriptions();
    },
    backoff,
  });
  return { c, store, accepted };
}

for (const protocol of ['delta', 'sotw'] as const) {
  describe(`DiscoveryClient (${protocol})`, () => {
    test('ACKs, follows subscriptions, NACKs a bad update with every error and keeps the last good one', async () => {
      const h = await startServer();
      harnesses.push(h);
      h.cache.setResources(NODE.id, CLUSTER_TYPE, 'c1', [cluster('a')]);
      h.cache.setResources(NODE.id, ENDPOINT_TYPE, 'e1', [cla('a', 1001), cla('b', 1002)]);
      const { c, store } = newClient(h.address, protocol);
      const nacks: NackEvent[] = [];
      c.on('nack', (n: NackEvent) => nacks.push(n));
      c.start();
      try {
        await until('EDS a', () => store.values(ENDPOINT_TYPE).get('a'));
        assert.deepEqual([...store.values(ENDPOINT_TYPE).keys()], ['a'], 'only what was subscribed');
        assert.equal(store.type(CLUSTER_TYPE).version, 'c1');
        assert.equal(c.status().connected, true);

        // Subscriptions follow CDS: b appears, EDS b is asked for and arrives.
        h.cache.setResources(NODE.id, CLUSTER_TYPE, 'c2', [cluster('a'), cluster('b')]);
        const eb = await until('EDS b', () => store.values(ENDPOINT_TYPE).get('b'));
        assert.deepEqual(eb.ports, [1002]);

        // A removed EDS cluster is unsubscribed.
        h.cache.setResources(NODE.id, CLUSTER_TYPE, 'c3', [cluster('a')]);
        await until('c3', () => store.type(CLUSTER_TYPE).version === 'c3');
        assert.deepEqual([...store.values(CLUSTER_TYPE).keys()], ['a']);
        await until('EDS b unsubscribed on the server', () => {
          const eds = h.xds.status()[0]?.types.find((t) => t.typeUrl === ENDPOINT_TYPE);
          return eds && !eds.names.includes('b') && eds.names.includes('a');
        });

        // Two bad clusters in one update: one NACK with both errors; the server sees both.
        h.cache.setResources(NODE.id, CLUSTER_TYPE, 'c4', [cluster('a', 'ORIGINAL_DST'), cluster('x', 'LOGICAL_DNS')]);
        const n = await until('NACK', () => nacks[0]);
        assert.equal(n.version, 'c4');
        assert.equal(n.errors.length, 2);
        const seen = await until('server saw the NACK', () => h.xds.status()[0]?.types.find((t) => t.typeUrl === CLUSTER_TYPE)?.lastNack);
        assert.match(seen.message, /cluster "a": type "ORIGINAL_DST" is not supported/);
        assert.match(seen.message, /cluster "x": type "LOGICAL_DNS" is not supported/);
        assert.equal(store.type(CLUSTER_TYPE).version, 'c3', 'last good kept');
        assert.deepEqual([...store.values(CLUSTER_TYPE).keys()], ['a']);
        assert.equal(store.type(CLUSTER_TYPE).lastRejected?.version, 'c4');
        assert.equal(c.status().sent.nack, 1);

        // A good update after that is accepted.
        h.cache.setResources(NODE.id, CLUSTER_TYPE, 'c5', [cluster('a'), cluster('c')]);
        await until('c5', () => store.type(CLUSTER_TYPE).version === 'c5');
        assert.deepEqual([...store.values(CLUSTER_TYPE).keys()].sort(), ['a', 'c']);
      } finally {
        c.stop();
      }
    });
  });
}

test('DiscoveryClient reconnects with the injected back-off, keeps its state, and resumes with initial_resource_versions', async () => {
  let h = await startServer();
  harnesses.push(h);
  h.cache.setResources(NODE.id, CLUSTER_TYPE, 'c1', [cluster('a')]);
  h.cache.setResources(NODE.id, ENDPOINT_TYPE, 'e1', [cla('a', 1001)]);
  const attempts: number[] = [];
  const { c, store } = newClient(h.address, 'delta', (n) => (attempts.push(n), 30));
  const downs: string[] = [];
  c.on('disconnected', (why: string) => downs.push(why));
  c.start();
  try {
    await until('EDS a', () => store.values(ENDPOINT_TYPE).get('a'));
    const port = h.address.split(':')[1];
    await h.close();
    await until('two failed attempts', () => attempts.length >= 2);
    assert.deepEqual(attempts.slice(0, 2), [1, 2]);
    assert.equal(c.status().connected, false);
    assert.ok(downs.length >= 2 && downs.every((d) => d.length > 0));
    assert.deepEqual(store.values(ENDPOINT_TYPE).get('a')?.ports, [1001], 'state kept while down');

    h = await startServer({ address: `127.0.0.1:${port}` });
    harnesses.push(h);
    const sends: SendEvent[] = [];
    h.xds.on('send', (e: SendEvent) => sends.push(e));
    h.cache.setResources(NODE.id, CLUSTER_TYPE, 'c1', [cluster('a')]);
    h.cache.setResources(NODE.id, ENDPOINT_TYPE, 'e2', [cla('a', 2002)]);
    await until('converged', () => store.values(ENDPOINT_TYPE).get('a')?.ports[0] === 2002);
    assert.equal(c.status().connected, true);
    assert.equal(c.status().failures, 0);
    assert.ok(c.status().connects >= 3);
    // The unchanged cluster was not sent again: the client told the server what it held.
    const cds = sends.filter((e) => e.typeUrl === CLUSTER_TYPE);
    assert.ok(cds.every((e) => e.resources === 0), `CDS resent: ${JSON.stringify(cds.map((e) => e.resources))}`);
  } finally {
    c.stop();
  }
});

describe('ResourceStore', () => {
  const store = () => new ResourceStore<Types>({ decoders: DECODERS });
  const delta = (version: string, rs: XdsResource[], removed: string[] = []) => ({ kind: 'delta' as const, version, resources: rs.map((r) => ({ name: r.name, version: r.version, resource: r.any })), removed });

  test('delta: adds, removes, reports what changed; a wrong type_url, a name mismatch and a throwing decoder are errors', () => {
    const s = store();
    const r1 = s.handle(CLUSTER_TYPE, delta('1', [cluster('a'), cluster('b')]), 'n1');
    assert.deepEqual({ ack: r1.ack, changed: r1.changed.sort(), removed: r1.removed }, { ack: true, changed: ['a', 'b'], removed: [] });
    const r2 = s.handle(CLUSTER_TYPE, delta('2', [], ['b', 'never']), 'n2');
    assert.deepEqual(r2.removed, ['b']);
    assert.deepEqual(s.resourceVersions(CLUSTER_TYPE), { a: cluster('a').version });
    const bad = s.handle(
      CLUSTER_TYPE,
      { kind: 'delta', version: '3', resources: [{ name: 'x', version: 'v', resource: toAny(ENDPOINT_TYPE, { cluster_name: 'x' }) }, { name: 'y', version: 'v', resource: cluster('z').any }, { name: 'q', version: 'v', resource: { type_url: CLUSTER_TYPE, value: Buffer.from([0xff, 0xff]) } }], removed: [] },
      'n3',
    );
    assert.equal(bad.ack, false);
    assert.equal(bad.errors.length, 3, bad.errors.join('\n'));
    assert.match(bad.errors[0]!, /type_url/);
    assert.match(bad.errors[1]!, /named "z"/);
    assert.match(bad.errors[2]!, /CDS "q": cannot decode/);
    assert.equal(s.type(CLUSTER_TYPE).version, '2');
    assert.deepEqual(s.type(CLUSTER_TYPE).lastRejected?.resources, ['z']);
  });

  test('SotW replaces the set; crossCheck can refuse a clean update; all() is a union discriminated by type URL', () => {
    const s = new ResourceStore<Types>({
      decoders: DECODERS,
      crossCheck: (t, cand) => (t === ENDPOINT_TYPE && cand.has('ghost') ? ['EDS "ghost": no such cluster'] : []),
    });
    assert.ok(s.handle(CLUSTER_TYPE, { kind: 'sotw', version: '1', resources: [cluster('a').any, cluster('b').any] }, 'n').ack);
    const r = s.handle(CLUSTER_TYPE, { kind: 'sotw', version: '2', resources: [cluster('b').any] }, 'n');
    assert.deepEqual(r.removed, ['a']);
    assert.equal(s.handle(ENDPOINT_TYPE, { kind: 'sotw', version: '1', resources: [cla('ghost', 1).any] }, 'n').ack, false);
    assert.ok(s.handle(ENDPOINT_TYPE, { kind: 'sotw', version: '1', resources: [cla('b', 7).any] }, 'n').ack);
    const seen: string[] = [];
    for (const x of s.all()) {
      if (x.typeUrl === CLUSTER_TYPE) seen.push(`cluster ${x.model.type}`);
      else seen.push(`endpoints ${x.model.ports.join()}`);
    }
    assert.deepEqual(seen, ['cluster EDS', 'endpoints 7']);
  });
});
