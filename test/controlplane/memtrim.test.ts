// The trimmer returns malloc's free memory after xDS sends go quiet, and at most every maxMs while
// they continue; the real malloc_trim is callable on this platform.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryTrimmer } from '../../src/controlplane/memtrim.js';
import { mallocTrimmer } from '../../src/mesh/malloc.js';
import { ManualTimers } from '../../src/mesh/timers.js';

test('trims once after a burst goes quiet, and during a long burst every maxMs', () => {
  const timers = new ManualTimers();
  let trims = 0;
  const t = new MemoryTrimmer({ trim: () => trims++, timers, quietMs: 100, maxMs: 1_000, followUpMs: 10_000 });
  for (let i = 0; i < 5; i++) {
    t.activity();
    timers.advance(50);
  }
  assert.equal(trims, 0, 'still busy');
  timers.advance(100);
  assert.equal(trims, 1, 'quiet: trimmed once');
  timers.advance(1_000);
  assert.equal(trims, 1, 'nothing sent since: no more trims yet');
  timers.advance(9_000);
  assert.equal(trims, 2, 'one follow-up trim for buffers collected after the first');
  timers.advance(60_000);
  assert.equal(trims, 2, 'and no more');
  for (let i = 0; i < 30; i++) {
    t.activity();
    timers.advance(50);
  }
  assert.equal(trims, 3, 'a steady trickle is trimmed at most every maxMs (1,500 ms of sends → one trim)');
  t.stop();
  t.activity();
  timers.advance(50_000);
  assert.equal(trims, 3, 'stopped');
});

test('malloc_trim is found on Linux with glibc', { skip: process.platform !== 'linux' }, () => {
  const trim = mallocTrimmer();
  assert.ok(trim, 'koffi loads libc.so.6 and finds malloc_trim');
  trim();
});
