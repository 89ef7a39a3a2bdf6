import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ManualTimers } from '../../src/mesh/timers.js';
import { chrtPolicy, CpuPolicyError, policyOf, startCpuScheduling, type CpuPolicy, type CpuSchedulingMode } from '../../src/proxy/cpusched.js';

const SCHED_OTHER = 0;
const SCHED_BATCH = 3;

/** A fake process: CPU time moves only when the test says so; every applied policy is recorded. */
function fixture(mode: CpuSchedulingMode, fail: false | 'permanent' | 'transient' = false) {
  const timers = new ManualTimers();
  const s = { cpu: 0, applied: [] as CpuPolicy[], errors: [] as unknown[], changes: [] as CpuPolicy[], fail, hold: undefined as Promise<void> | undefined };
  const c = startCpuScheduling({
    mode,
    timers,
    cpuMicros: () => s.cpu,
    apply: async (p) => {
      if (s.hold) await s.hold;
      if (s.fail === 'permanent') throw new CpuPolicyError('not permitted', true);
      if (s.fail === 'transient') throw new CpuPolicyError('spawn EAGAIN', false);
      s.applied.push(p);
    },
    onChange: (p) => s.changes.push(p),
    periodMs: 1000,
    busyShare: 0.3,
    quietShare: 0.1,
    quietPeriods: 3,
    onError: (e) => s.errors.push(e),
  });
  const period = async (cpuMs: number) => {
    s.cpu += cpuMs * 1000;
    timers.advance(1000);
    await new Promise((r) => setImmediate(r));
  };
  return { s, c, period };
}

test('auto: batch from the first busy period, normal again after three quiet ones; in between holds', async () => {
  const { s, c, period } = fixture('auto');
  await period(50); // 5 % of a core: light traffic
  await period(290);
  assert.deepEqual(s.applied, [], 'below the busy share nothing changes');
  await period(450);
  assert.deepEqual(s.applied, ['batch']);
  assert.equal(c.policy, 'batch');
  await period(150); // neither busy nor quiet: holds
  await period(50);
  await period(50);
  await period(200); // not quiet: the quiet run starts over
  await period(20);
  await period(20);
  assert.deepEqual(s.applied, ['batch']);
  await period(20);
  assert.deepEqual(s.applied, ['batch', 'normal']);
  assert.equal(c.policy, 'normal');
  await period(600);
  assert.deepEqual(s.applied, ['batch', 'normal', 'batch'], 'the next burst switches again');
  c.stop();
  await period(0);
  await period(0);
  await period(0);
  assert.equal(s.applied.length, 3, 'stopped: no more periods');
});

test('fixed modes: batch is applied once at start, normal never touches the policy', async () => {
  const batch = fixture('batch');
  await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 5; i++) await batch.period(i % 2 ? 900 : 0);
  assert.deepEqual(batch.s.applied, ['batch']);
  batch.c.stop();
  const normal = fixture('normal');
  for (let i = 0; i < 5; i++) await normal.period(900);
  assert.deepEqual(normal.s.applied, []);
  normal.c.stop();
});

test('a policy that cannot be set for good is reported once and the controller stops where it is', async () => {
  const { s, c, period } = fixture('auto', 'permanent');
  await period(900);
  await period(900);
  await period(0);
  assert.equal(s.errors.length, 1);
  assert.match(String(s.errors[0]), /not permitted/);
  assert.equal(c.policy, 'normal');
});

test('a transient failure is reported once and retried next period, also on the way back to normal', async () => {
  const { s, c, period } = fixture('auto');
  await period(900);
  assert.deepEqual(s.applied, ['batch']);
  s.fail = 'transient';
  for (let i = 0; i < 6; i++) await period(0);
  assert.equal(c.policy, 'batch', 'could not switch back yet');
  assert.equal(s.errors.length, 1, 'one report for the streak');
  s.fail = false;
  await period(0);
  assert.deepEqual(s.applied, ['batch', 'normal']);
  assert.equal(c.policy, 'normal');
  c.stop();
  const b = fixture('batch', 'transient');
  await new Promise((r) => setImmediate(r));
  await b.period(0);
  assert.deepEqual(b.s.applied, []);
  b.s.fail = false;
  await b.period(0);
  assert.deepEqual(b.s.applied, ['batch'], 'batch retried until it holds');
  await b.period(0);
  await b.period(0);
  assert.deepEqual(b.s.applied, ['batch'], 'and then left alone');
  b.c.stop();
});

test('stop while a switch is under way: no report of it, no further periods', async () => {
  const { s, c, period } = fixture('auto');
  let release!: () => void;
  s.hold = new Promise((r) => (release = r));
  await period(900);
  c.stop();
  release();
  await new Promise((r) => setImmediate(r));
  await period(0);
  await period(0);
  assert.deepEqual(s.applied, ['batch']);
  assert.deepEqual(s.changes, [], 'nothing announced after stop');
});

test('chrt sets a real thread to SCHED_BATCH and back, as /proc reports it', { skip: process.platform !== 'linux' ? 'scheduling policies are Linux-only' : false }, async () => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  await once(child, 'spawn');
  try {
    const apply = chrtPolicy(child.pid!);
    // The child inherits the test runner's policy, whatever it is.
    assert.equal(typeof policyOf(child.pid!), 'number');
    await apply('batch');
    assert.equal(policyOf(child.pid!), SCHED_BATCH);
    await apply('normal');
    assert.equal(policyOf(child.pid!), SCHED_OTHER);
  } finally {
    child.kill('SIGKILL');
  }
  // A process that is gone: the error names chrt and the policy.
  await once(child, 'exit');
  await assert.rejects(chrtPolicy(child.pid!)('batch'), (e: unknown) => e instanceof CpuPolicyError && e.permanent && /^chrt batch: /.test(e.message));
  assert.equal(policyOf(child.pid!), undefined);
  // A chrt that cannot be run at all (not executable) is permanent too: no respawn every second.
  const dir = mkdtempSync(join(tmpdir(), 'isle-chrt-'));
  const notExec = join(dir, 'chrt');
  writeFileSync(notExec, '#!/bin/sh\n', { mode: 0o644 });
  await assert.rejects(chrtPolicy(process.pid, [notExec])('batch'), (e: unknown) => e instanceof CpuPolicyError && e.permanent && /EACCES/.test(e.message));
  await assert.rejects(chrtPolicy(process.pid, [join(dir, 'none')])('batch'), (e: unknown) => e instanceof CpuPolicyError && e.permanent && /not found/.test(e.message));
});
