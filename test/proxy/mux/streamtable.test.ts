/**
 * The mux connections' stream table (ADR 0150): the same answers as a Map for the way a
 * connection uses it (odd ids, mostly increasing, finishing out of order, colliding homes), and
 * what it is for: a finished stream is not kept alive by it across scavenges once the table sits
 * in old space, which a long-lived `Map` with an insert and a delete per request does (V8 rebuilds
 * its table every few requests and the obsolete tables keep the streams that were in flight).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { StreamTable } from '../../../src/proxy/mux/streamtable.js';

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sameAs(t: StreamTable<string>, m: Map<number, string>): void {
  assert.equal(t.size, m.size);
  assert.deepEqual(
    t.entries(),
    [...m].sort((a, b) => a[0] - b[0]),
  );
}

describe('StreamTable', () => {
  test('answers as a Map would, for a connection’s pattern of streams', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const r = rng(seed);
      const t = new StreamTable<string>();
      const m = new Map<number, string>();
      let next = 1;
      for (let op = 0; op < 5000; op++) {
        const x = r();
        if (x < 0.45 || m.size === 0) {
          // New streams; now and then far ahead, so homes collide and probe runs wrap around.
          const id = x < 0.05 ? next + 32 * Math.floor(r() * 8) : next;
          next = id + 2;
          t.set(id, `s${id}`);
          m.set(id, `s${id}`);
        } else if (x < 0.9) {
          const ids = [...m.keys()];
          const id = ids[Math.floor(r() * ids.length)]!;
          assert.equal(t.delete(id), true);
          m.delete(id);
        } else {
          const id = 1 + 2 * Math.floor(r() * (next / 2 + 4));
          assert.equal(t.get(id), m.get(id), `get(${id})`);
          assert.equal(t.delete(id + 1), false, 'an even id was never set');
        }
        if (op % 97 === 0) sameAs(t, m);
      }
      sameAs(t, m);
      for (const id of [...m.keys()]) assert.equal(m.get(id), t.get(id));
    }
  });

  test('grows past any number of open streams, and clears', () => {
    const t = new StreamTable<number>();
    for (let id = 1; id < 2 * 1000; id += 2) t.set(id, id);
    assert.equal(t.size, 1000);
    for (let id = 1; id < 2 * 1000; id += 2) assert.equal(t.get(id), id);
    assert.equal(t.delete(0x7fffffff), false);
    t.set(0xffffffff, 7);
    assert.equal(t.get(0xffffffff), 7);
    t.set(1, 9);
    assert.equal(t.size, 1001, 'setting an open id replaces its value');
    assert.equal(t.get(1), 9);
    t.clear();
    assert.equal(t.size, 0);
    assert.equal(t.get(1), undefined);
    assert.throws(() => t.set(0, 1), /not a stream/);
    // 0 marks an empty slot: it is never found, and deleting it changes nothing.
    t.set(3, 3);
    assert.equal(t.get(0), undefined);
    assert.equal(t.delete(0), false);
    assert.equal(t.size, 1);
    assert.equal(t.get(3), 3);
  });

  test('entries() is a copy: deleting while going through it', () => {
    const t = new StreamTable<string>();
    for (const id of [7, 3, 5, 1]) t.set(id, `s${id}`);
    for (const [id] of t.entries()) t.delete(id);
    assert.equal(t.size, 0);
    assert.deepEqual(t.values(), []);
  });

  test('in old space, it keeps no finished stream alive across scavenges (a Map does)', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as (o?: { type: 'minor' | 'major' }) => void;
    const oldUsed = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_used_size;
    // A request's state, as a stream's value holds it (≈ 10 KB of small objects).
    const request = (id: number): { id: number; parts: { i: number; s: string }[] } => {
      const o = { id, parts: [] as { i: number; s: string }[] };
      for (let i = 0; i < 100; i++) o.parts.push({ i, s: `x-request-id-${id}-${i}` });
      return o;
    };
    /** Old-space bytes gained over 6,000 requests, two in flight at a time, and only scavenges. */
    const promoted = (t: { set(id: number, v: unknown): unknown; delete(id: number): boolean }): number => {
      gc();
      gc(); // the table into old space, like a connection's that has lived a while
      const before = oldUsed();
      let id = 1;
      const live: number[] = [];
      for (let round = 0; round < 3; round++) {
        for (let k = 0; k < 2000; k++) {
          t.set(id, request(id));
          live.push(id);
          if (live.length > 2) t.delete(live.shift()!);
          id += 2;
        }
        gc({ type: 'minor' });
      }
      for (const i of live) t.delete(i);
      gc({ type: 'minor' });
      gc({ type: 'minor' });
      return oldUsed() - before;
    };
    // The table first: the Map's survivors make V8 pretenure these allocation sites afterwards.
    const table = promoted(new StreamTable<unknown>());
    const map = promoted(new Map<number, unknown>());
    // ≈ 60 MB of request state went through each; what the table's scavenges promoted is noise.
    assert.ok(table < 4 * 1024 * 1024, `the table promoted ${table} bytes (a Map: ${map})`);
  });
});
