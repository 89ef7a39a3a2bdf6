import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Debouncer, type FlushInfo } from '../../src/controlplane/debounce.js';
import { ManualTimers } from '../../src/mesh/timers.js';

function setup(quietMs = 100, maxMs = 10_000) {
  const timers = new ManualTimers();
  const flushed: Array<{ items: string[]; info: FlushInfo }> = [];
  const d = new Debouncer<string[]>({
    quietMs,
    maxMs,
    timers,
    merge: (a, b) => [...a, ...b],
    flush: (items, info) => flushed.push({ items, info }),
  });
  return { timers, flushed, d };
}

test('a burst is pushed once, 100 ms after it goes quiet', () => {
  const { timers, flushed, d } = setup();
  d.add(['a']);
  timers.advance(50);
  d.add(['b']);
  timers.advance(99);
  assert.equal(flushed.length, 0, 'still inside the quiet period of the last change');
  timers.advance(1);
  assert.deepEqual(flushed, [{ items: ['a', 'b'], info: { changes: 2, waitedMs: 150, cause: 'quiet' } }]);
  timers.advance(1000);
  assert.equal(flushed.length, 1, 'nothing more without changes');
});

test('a steady trickle is capped by the max delay', () => {
  const { timers, flushed, d } = setup(100, 1000);
  for (let i = 0; i < 30; i++) {
    d.add([String(i)]);
    timers.advance(50);
  }
  assert.ok(flushed.length >= 1);
  assert.equal(flushed[0]!.info.cause, 'max');
  assert.equal(flushed[0]!.info.waitedMs, 1000);
  assert.equal(flushed[0]!.items.length, 20);
});

test('flushNow pushes at once; stop drops what is pending and ignores later changes', () => {
  const { timers, flushed, d } = setup();
  d.add(['x']);
  d.flushNow();
  assert.equal(flushed.length, 1);
  assert.equal(flushed[0]!.info.cause, 'now');
  d.add(['y']);
  d.stop();
  d.add(['z']);
  timers.advance(10_000);
  assert.equal(flushed.length, 1);
  assert.equal(timers.size, 0, 'no timer left behind');
});

test('quiet greater than max is refused', () => {
  assert.throws(() => setup(200, 100), /quiet/);
});

test('a change debounced upstream (peer, central) skips the quiet period and never extends a pending one', () => {
  const { timers, flushed, d } = setup();
  d.add(['peer'], true);
  timers.advance(0);
  assert.deepEqual(flushed.map((f) => f.items), [['peer']], 'flushed on the next timer turn');
  d.add(['local']);
  timers.advance(60);
  d.add(['peer2'], true);
  timers.advance(39);
  assert.equal(flushed.length, 1, 'the local change still waits its quiet period');
  timers.advance(1);
  assert.deepEqual(flushed[1]!.items, ['local', 'peer2']);
  d.add(['peer3'], true);
  timers.advance(10);
  d.add(['local2']);
  timers.advance(99);
  assert.equal(flushed.length, 3, 'the settled change went at once; the local one after it waits its own quiet period');
  assert.deepEqual(flushed[2]!.items, ['peer3']);
});
