// SotW requests with lazily decoded names (ADR 0123): the decoder must read every request exactly
// as the validating codec does, hand over the names' bytes for a byte-for-byte ACK comparison,
// and the ADS server must still notice every subscription change while skipping repeated ones.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeMessage, encodeMessage } from '../../src/xds/codec.js';
import { decodeSotwRequest, diffNames, keepNames, NAMES_BYTES, sharedNames, stepNames } from '../../src/xds/sotwrequest.js';
import { decodeResource, ENDPOINT_TYPE, type DiscoveryRequestMsg, type SendEvent } from '../../src/xds/index.js';
import { endpoints, newChannel, SotwClient, startServer, waitUntil } from './helpers.js';

const REQ = 'envoy.service.discovery.v3.DiscoveryRequest';
const enc = (m: DiscoveryRequestMsg): Buffer => encodeMessage(REQ, m);
const names = (n: number, prefix = 'outbound|80||svc-'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}.default.svc.cluster.local`);

test('decodes every field exactly as the validating codec does', () => {
  const cases: DiscoveryRequestMsg[] = [
    { type_url: ENDPOINT_TYPE, resource_names: names(3), response_nonce: 'n1', version_info: 'v1' },
    {
      type_url: ENDPOINT_TYPE,
      resource_names: ['*', 'a', 'ünïcödé ✓'],
      node: { id: 'sidecar~10.0.0.1~a.ns~ns.svc.cluster.local', cluster: 'a.ns', metadata: { NAMESPACE: 'ns', LABELS: { app: 'a' } }, locality: { region: 'r1' } },
      error_detail: { code: 3, message: 'bad cluster' },
    },
    { type_url: ENDPOINT_TYPE },
    {},
    // Names and fields of 128 bytes or more: lengths of two bytes (the scan's slower path).
    { type_url: ENDPOINT_TYPE, resource_names: ['x'.repeat(200), 'y', 'z'.repeat(128), 'w'.repeat(127)], version_info: 'v'.repeat(300) },
  ];
  for (const c of cases) {
    const b = enc(c);
    const lazy = decodeSotwRequest(b);
    assert.deepEqual({ ...lazy }, decodeMessage(REQ, b));
    assert.deepEqual(lazy.resource_names, c.resource_names);
  }
});

test('names split by other fields are decoded in order; their bytes are the entries alone', () => {
  // protobufjs writes fields in order; a client may interleave them (a repeated field can be split).
  const a = enc({ resource_names: ['a', 'b'] });
  const mid = enc({ type_url: ENDPOINT_TYPE, response_nonce: 'n7' });
  const c = enc({ resource_names: ['c'] });
  const split = decodeSotwRequest(Buffer.concat([a, mid, c]));
  assert.equal(split.type_url, ENDPOINT_TYPE);
  assert.equal(split.response_nonce, 'n7');
  assert.deepEqual(split.resource_names, ['a', 'b', 'c']);
  const whole = decodeSotwRequest(enc({ resource_names: ['a', 'b', 'c'], type_url: ENDPOINT_TYPE, response_nonce: 'other' }));
  assert.ok(split[NAMES_BYTES]!.equals(whole[NAMES_BYTES]!), 'the same names, whatever else the request carries');
  assert.deepEqual(decodeSotwRequest(Buffer.concat([a, mid, c])), decodeMessage(REQ, Buffer.concat([a, mid, c])));
});

test('malformed requests fail as the codec fails; other orders and lists give other bytes', () => {
  const outcome = (f: () => unknown): string => {
    try {
      return JSON.stringify(f());
    } catch (e) {
      return `throws ${(e as Error).message}`;
    }
  };
  const good = enc({ resource_names: ['abc'], type_url: ENDPOINT_TYPE });
  const inputs = [good.subarray(0, 3), good.subarray(0, good.length - 2), Buffer.from([0x1b]), Buffer.from([0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from([0x80])];
  for (const bad of inputs) {
    const got = outcome(() => ({ ...decodeSotwRequest(bad), names: decodeSotwRequest(bad).resource_names }));
    const want = outcome(() => ({ ...decodeMessage(REQ, bad), names: decodeMessage(REQ, bad)['resource_names'] }));
    assert.equal(got, want, `input ${bad.toString('hex')}`);
  }
  assert.match(outcome(() => decodeSotwRequest(Buffer.from([0x1b]))), /^throws /);
  const ab = decodeSotwRequest(enc({ resource_names: ['a', 'b'] }))[NAMES_BYTES]!;
  const ba = decodeSotwRequest(enc({ resource_names: ['b', 'a'] }))[NAMES_BYTES]!;
  const abc = decodeSotwRequest(enc({ resource_names: ['a', 'b', 'c'] }))[NAMES_BYTES]!;
  assert.ok(!ab.equals(ba));
  assert.ok(!ab.equals(abc));
});

test('keepNames: one shared copy per distinct list, never a view of the request', () => {
  const list = names(1000);
  const r1 = enc({ type_url: ENDPOINT_TYPE, resource_names: list, response_nonce: 'n1' });
  const r2 = enc({ type_url: ENDPOINT_TYPE, resource_names: list, response_nonce: 'n2', version_info: 'v2' });
  const k1 = keepNames(decodeSotwRequest(r1)[NAMES_BYTES]!);
  const k2 = keepNames(decodeSotwRequest(r2)[NAMES_BYTES]!);
  assert.equal(k1, k2, 'two streams with the same subscription hold one buffer');
  assert.notEqual(k1.buffer, r1.buffer);
  r1.fill(0);
  assert.ok(k1.equals(decodeSotwRequest(r2)[NAMES_BYTES]!), 'the kept copy does not change with the request buffer');
  assert.notEqual(keepNames(decodeSotwRequest(enc({ resource_names: list.slice(1) }))[NAMES_BYTES]!), k1);
});

test('server: ACKs repeating the names keep the subscription; a changed list (same length, other order, fewer) is followed', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const sends: SendEvent[] = [];
  h.xds.on('send', (e) => sends.push(e));
  const all = ['c1', 'c2', 'c3', 'c4'];
  const v = (ver: string, ip: string) => all.map((n) => endpoints(n, [n === 'c1' ? ip : '10.0.0.2']));
  h.cache.setResources('p', ENDPOINT_TYPE, 'e1', v('e1', '10.0.0.1'));
  const c = new SotwClient(newChannel(h.address), { id: 'p', metadata: { NAMESPACE: 'default' } });
  t.after(() => c.close());
  const cla = (r: { resources: { type_url: string; value: Uint8Array }[] }) => r.resources.map((a) => decodeResource(a)['cluster_name']).sort();
  c.request(ENDPOINT_TYPE, ['c1', 'c2']);
  const r1 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(cla(r1), ['c1', 'c2']);
  c.ack(r1);
  // Repeated ACKs with the same names: nothing is resent.
  c.ack(r1);
  c.ack(r1);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(c.pending(), 0);
  // Same length, other names: c3 replaces c2; only c3 is new to the proxy.
  c.request(ENDPOINT_TYPE, ['c1', 'c3']);
  const r2 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(cla(r2), ['c3']);
  c.ack(r2);
  // Same names, other order: the same subscription, so no response.
  c.request(ENDPOINT_TYPE, ['c3', 'c1']);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(c.pending(), 0);
  // A change of c1 and c2 reaches only what is subscribed now (c1; c2 was dropped).
  h.cache.setResources('p', ENDPOINT_TYPE, 'e2', [endpoints('c1', ['10.0.0.9']), endpoints('c2', ['10.0.0.8']), endpoints('c3', ['10.0.0.2']), endpoints('c4', ['10.0.0.2'])]);
  const r3 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(cla(r3), ['c1']);
  c.ack(r3);
  // Fewer names, then the old list again: c2 is sent again at the current version.
  c.request(ENDPOINT_TYPE, ['c1']);
  c.ack(await c.next(ENDPOINT_TYPE));
  c.request(ENDPOINT_TYPE, ['c1', 'c2']);
  const r4 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(cla(r4), ['c2']);
  assert.equal(r4.version_info, 'e2');
  await waitUntil(() => h.xds.status()[0]?.types[0]?.names.length === 2, 'the subscription of two names');
  assert.deepEqual(h.xds.status()[0]!.types[0]!.names.sort(), ['c1', 'c2']);
});

test('diffNames: the names that came and went, decoding only the differing middle', () => {
  const bytesOf = (list: string[]) => decodeSotwRequest(enc({ type_url: ENDPOINT_TYPE, resource_names: list }))[NAMES_BYTES] ?? Buffer.alloc(0);
  // A seeded generator: the same lists on every run.
  let seed = 42;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const base = names(300);
  for (let round = 0; round < 300; round++) {
    const next = [...base];
    for (let k = 1 + rnd(4); k > 0; k--) {
      const at = rnd(next.length + 1);
      const op = rnd(3);
      if (op === 0) next.splice(at, 0, `new-${round}-${k}`);
      else if (op === 1) next.splice(at, 1);
      else next.splice(at, 1, `repl-${round}-${k}`, ...(rnd(2) ? [] : [base[rnd(base.length)]!]));
    }
    const got = diffNames(bytesOf(base), bytesOf(next));
    assert.ok(got, `round ${round}: a few edits are diffed`);
    const before = new Set(base);
    const after = new Set(next);
    // A name repeated from the common part may be reported as added: the caller filters those.
    assert.deepEqual(got.added.filter((n) => !before.has(n)).sort(), [...after].filter((n) => !before.has(n)).sort(), `round ${round}: added`);
    for (const n of got.added) assert.ok(after.has(n));
    assert.deepEqual(got.removed.sort(), [...before].filter((n) => !after.has(n)).sort(), `round ${round}: removed`);
    assert.equal(got.count, next.length);
  }
  // Moved inside the middle only: nothing came or went.
  assert.deepEqual(diffNames(bytesOf(['a', 'b', 'c', 'd']), bytesOf(['a', 'c', 'b', 'd'])), { added: [], removed: [], count: 4 });
  assert.deepEqual(diffNames(bytesOf([]), bytesOf(['x'])), { added: ['x'], removed: [], count: 1 });
  assert.deepEqual(diffNames(bytesOf(['x']), bytesOf([])), { added: [], removed: ['x'], count: 0 });
  // The same step from a kept list, made by another stream: remembered, not diffed again.
  const from = keepNames(bytesOf(base));
  const one = stepNames(from, bytesOf([...base, 'extra']));
  assert.equal(stepNames(from, bytesOf([...base, 'extra'])), one);
  assert.equal(one.kept, keepNames(bytesOf([...base, 'extra'])), 'the kept copy is the shared one');
  assert.deepEqual(one.change, { added: ['extra'], removed: [], count: 301 });
  assert.deepEqual(stepNames(from, bytesOf(base.slice(1))).change, { added: [], removed: [base[0]!], count: 299 });
  // Too many differences, or bytes that are not a names list: left to a full decode.
  assert.equal(diffNames(bytesOf(names(200, 'a-')), bytesOf(names(200, 'b-'))), undefined);
  assert.equal(diffNames(bytesOf(['a']), Buffer.from([0x1a, 0x05, 0x61])), undefined);
  assert.equal(diffNames(bytesOf(['a']), Buffer.from([0x12, 0x01, 0x61])), undefined);
});

test('server: a thousand-name subscription that gains and loses a name while a resource changes gets exactly what is new', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const list = names(1000);
  const eps = (changed: Record<string, string> = {}) => list.map((n) => endpoints(n, [changed[n] ?? '10.0.0.1']));
  const extra = 'outbound|80||extra.default.svc.cluster.local';
  h.cache.setResources('p', ENDPOINT_TYPE, 'e1', [...eps(), endpoints(extra, ['10.0.0.7'])]);
  const c = new SotwClient(newChannel(h.address), { id: 'p', metadata: { NAMESPACE: 'default' } });
  t.after(() => c.close());
  const cla = (r: { resources: { type_url: string; value: Uint8Array }[] }) => r.resources.map((a) => decodeResource(a)['cluster_name']).sort();
  c.request(ENDPOINT_TYPE, list);
  const r1 = await c.next(ENDPOINT_TYPE);
  assert.equal(r1.resources.length, 1000);
  c.ack(r1);
  // svc-5 changes in the cache; the proxy then drops svc-7 and adds `extra` (inserted mid-list).
  h.cache.setResources('p', ENDPOINT_TYPE, 'e2', [...eps({ [list[5]!]: '10.5.5.5', [list[7]!]: '10.7.7.7' }), endpoints(extra, ['10.0.0.7'])]);
  const r2 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(cla(r2), [list[5]!, list[7]!].sort());
  c.ack(r2);
  const next = [...list.slice(0, 7), ...list.slice(8, 500), extra, ...list.slice(500)];
  c.request(ENDPOINT_TYPE, next);
  const r3 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(cla(r3), [extra], 'only the added name: the rest is what the proxy has');
  c.ack(r3);
  // A change of the dropped name is not sent; one of a kept name is.
  h.cache.setResources('p', ENDPOINT_TYPE, 'e3', [...eps({ [list[7]!]: '10.7.7.8', [list[9]!]: '10.9.9.9' }), endpoints(extra, ['10.0.0.7'])]);
  const r4 = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(cla(r4), [list[5]!, list[9]!].sort(), 'svc-5 went back to its first address and svc-9 changed; svc-7 is not subscribed');
  await waitUntil(() => h.xds.status()[0]?.types[0]?.names.length === 1000, 'the subscription of 1,000 names');
  assert.ok(h.xds.status()[0]!.types[0]!.names.includes(extra));
  assert.ok(!h.xds.status()[0]!.types[0]!.names.includes(list[7]!));
  // The decoded set of a list is shared: a second proxy with the same list decodes none of it,
  // gets everything, then the same changes as the first.
  const kept = keepNames(decodeSotwRequest(enc({ resource_names: next }))[NAMES_BYTES]!);
  assert.equal(sharedNames(kept)?.names.size, 1000);
  h.cache.setResources('q', ENDPOINT_TYPE, 'e3', [...eps({ [list[7]!]: '10.7.7.8', [list[9]!]: '10.9.9.9' }), endpoints(extra, ['10.0.0.7'])]);
  const d = new SotwClient(newChannel(h.address), { id: 'q', metadata: { NAMESPACE: 'default' } });
  t.after(() => d.close());
  d.request(ENDPOINT_TYPE, next);
  const q1 = await d.next(ENDPOINT_TYPE);
  assert.equal(q1.resources.length, 1000);
  d.ack(q1);
  for (const id of ['p', 'q']) h.cache.setResources(id, ENDPOINT_TYPE, 'e4', [...eps({ [list[1]!]: '10.1.1.1', [list[7]!]: '10.7.7.9' }), endpoints(extra, ['10.0.0.7'])]);
  const [p5, q5] = await Promise.all([c.next(ENDPOINT_TYPE), d.next(ENDPOINT_TYPE)]);
  assert.deepEqual(cla(p5), [list[1]!, list[9]!].sort(), 'svc-1 changed, svc-9 went back; svc-7 is not subscribed');
  assert.deepEqual(cla(q5), cla(p5));
});

test('server: a list that repeats names is read as the set it names', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  h.cache.setResources('p', ENDPOINT_TYPE, 'e1', [endpoints('r1', ['10.0.0.1']), endpoints('r2', ['10.0.0.2'])]);
  const c = new SotwClient(newChannel(h.address), { id: 'p', metadata: { NAMESPACE: 'default' } });
  t.after(() => c.close());
  c.request(ENDPOINT_TYPE, ['r1', 'r2', 'r2']);
  c.ack(await c.next(ENDPOINT_TYPE));
  // As many entries as the set has names, but r2 is gone: the subscription is {r1}.
  c.request(ENDPOINT_TYPE, ['r1', 'r1']);
  await waitUntil(() => h.xds.status()[0]?.types[0]?.names.join() === 'r1', 'the subscription of r1 alone');
});
