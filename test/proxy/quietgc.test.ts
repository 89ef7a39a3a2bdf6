import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualTimers } from '../../src/mesh/timers.js';
import { startQuietGc } from '../../src/proxy/quietgc.js';

const MB = 1048576;

/** A fake process: CPU and heap move only when the test says so; compaction brings the heap back to `floor`. */
function fixture(extra: { quietMs?: number } = {}) {
  const timers = new ManualTimers();
  const s = { cpu: 0, heap: 10 * MB, floor: 10 * MB, compactions: 0 };
  const q = startQuietGc({
    timers,
    cpuMicros: () => s.cpu,
    heapBytes: () => s.heap,
    compact: async () => {
      s.compactions++;
      s.heap = s.floor;
    },
    periodMs: 1000,
    quietShare: 0.02,
    slackBytes: 2 * MB,
    ...extra,
  });
  // Lets the compaction's promise settle before the next period.
  const period = async (cpuMs: number, heapMb?: number) => {
    s.cpu += cpuMs * 1000;
    if (heapMb !== undefined) s.heap = heapMb * MB;
    timers.advance(1000);
    await new Promise((r) => setImmediate(r));
  };
  return { s, q, timers, period };
}

test('compacts once when a busy period that grew the heap is followed by a quiet one', async () => {
  const { s, q, period } = fixture();
  await period(500, 25); // busy: 50 % of a core, heap grew by 15 MB
  assert.equal(s.compactions, 0, 'never while busy');
  await period(5); // quiet (0.5 %)
  assert.equal(s.compactions, 1);
  assert.equal(s.heap, 10 * MB);
  await period(5);
  await period(0);
  assert.equal(s.compactions, 1, 'nothing to give back: no more compactions while quiet');
  await period(300, 24);
  await period(1);
  assert.equal(s.compactions, 2, 'the next burst is compacted after it too');
  q.stop();
});

test('light steady traffic that does not grow the heap never compacts', async () => {
  const { s, q, period } = fixture();
  for (let i = 0; i < 10; i++) await period(i % 2 ? 30 : 5, 11); // 1 MB above the baseline: within the slack
  assert.equal(s.compactions, 0);
  q.stop();
});

test('compactNow sets the baseline; stop ends the periods', async () => {
  const { s, q, timers, period } = fixture();
  s.floor = 30 * MB;
  s.heap = 40 * MB;
  await q.compactNow();
  assert.equal(s.compactions, 1);
  await period(0, 31); // within 2 MB of the new baseline (30)
  assert.equal(s.compactions, 1);
  q.stop();
  assert.equal(timers.size, 0);
});

test('with quietMs it waits for that long a quiet stretch; activity starts the wait again', async () => {
  const { s, q, period } = fixture({ quietMs: 3000 });
  await period(500, 25);
  await period(0);
  await period(0);
  assert.equal(s.compactions, 0, 'two quiet periods are not three seconds');
  await period(200); // a burst a few seconds after the last one
  await period(0);
  await period(0);
  assert.equal(s.compactions, 0, 'the burst started the wait again');
  await period(0);
  assert.equal(s.compactions, 1, 'three quiet periods in a row');
  q.stop();
});
