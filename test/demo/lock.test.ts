/**
 * Demo rough edges (issue 16 part 4.1): one demo per directory (a lock with its pid), scenario
 * directories of their own, `isle status --dir` naming the demo it talks to.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireDemoLock, clearDemoState, defaultDemoDir, readDemoState, restoreFiles, userFiles, writeDemoState } from '../../src/demo/lock.js';
import { runIsle } from '../helpers/cli.js';

function liveChild(): { pid: number; kill: () => void } {
  const c = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  return { pid: c.pid!, kill: () => void c.kill('SIGKILL') };
}

test('scenarios get their own directories', () => {
  assert.equal(defaultDemoDir('seed-000'), '.isle/demo');
  assert.equal(defaultDemoDir('strict-mtls'), '.isle/demo-strict-mtls');
});

test('lock: a live demo keeps its directory; a stale lock is taken over; release removes only our lock', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'isle-lock-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const dir = join(base, 'demo');
  const other = liveChild();
  t.after(other.kill);
  writeFileSync(`${dir}.lock`, JSON.stringify({ pid: other.pid, scenario: 'seed-000', startedAt: 'then' }));
  await assert.rejects(acquireDemoLock(dir, 'strict-mtls'), new RegExp(`a demo \\(scenario seed-000, pid ${other.pid}, started then\\) is running in .*demo; its files are left alone`));

  writeFileSync(`${dir}.lock`, JSON.stringify({ pid: 2 ** 22 + 12345, scenario: 'seed-000', startedAt: 'long ago' }));
  const release = await acquireDemoLock(dir, 'routing');
  assert.equal(JSON.parse(readFileSync(`${dir}.lock`, 'utf8')).pid, process.pid);
  await release();
  assert.ok(!existsSync(`${dir}.lock`));
});

test('a second `isle demo` on a running demo directory refuses and touches nothing', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'isle-lock-cli-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const dir = join(base, 'demo');
  mkdirSync(join(dir, 'cluster-1'), { recursive: true });
  writeFileSync(join(dir, 'cluster-1', 'mesh.yaml'), 'the running demo\'s file');
  const other = liveChild();
  t.after(other.kill);
  writeFileSync(`${dir}.lock`, JSON.stringify({ pid: other.pid, scenario: 'seed-000', startedAt: 'then' }));
  const r = await runIsle(['demo', '--scenario', 'strict-mtls', '--check', '--dir', dir], { cwd: base });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /is running in .*demo; its files are left alone/);
  assert.equal(readFileSync(join(dir, 'cluster-1', 'mesh.yaml'), 'utf8'), 'the running demo\'s file');
});

test('state: per directory, the shared pointer is not taken from a live demo; status --dir names the demo', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'isle-state-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const pointer = join(base, '.isle', 'demo.json');
  const a = join(base, 'a');
  const b = join(base, 'b');
  mkdirSync(a);
  mkdirSync(b);
  const other = liveChild();
  t.after(other.kill);
  await writeDemoState({ dir: a, scenario: 'seed-000', pid: other.pid, startedAt: 't', controlPlanes: [{ cluster: 'cluster-1', grpc: '127.0.0.1:1', debug: 'http://127.0.0.1:1' }] }, pointer);
  await writeDemoState({ dir: b, scenario: 'routing', pid: process.pid, startedAt: 't', controlPlanes: [] }, pointer);
  assert.equal((await readDemoState({ pointer }))?.dir, a, 'the live demo keeps the pointer');
  assert.equal((await readDemoState({ dir: b, pointer }))?.scenario, 'routing');
  await clearDemoState(b, pointer);
  assert.ok(existsSync(pointer), "b does not remove a's pointer");

  const st = await runIsle(['status', '--dir', a], { cwd: base });
  assert.match(st.stdout, new RegExp(`^Demo seed-000 in ${a.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(pid ${other.pid}\\)$`, 'm'));
  const none = await runIsle(['status', '--dir', join(base, 'nowhere')], { cwd: base });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no demo state in .*nowhere/);
});

test('user files: collected except the generated ones, restored byte for byte', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'isle-keep-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'cluster-1', 'credentials', 'istio-system', 'c'), { recursive: true });
  writeFileSync(join(dir, 'cluster-1', 'mesh.yaml'), 'generated');
  writeFileSync(join(dir, 'cluster-1', 'vs.yaml'), 'mine');
  writeFileSync(join(dir, 'cluster-1', 'credentials', 'istio-system', 'c', 'tls.key'), 'key', { mode: 0o600 });
  const kept = await userFiles(dir, ['cluster-1', 'cluster-2'], new Set(['cluster-1/mesh.yaml']));
  assert.deepEqual(kept.map((k) => k.path), ['cluster-1/credentials/istio-system/c/tls.key', 'cluster-1/vs.yaml']);
  rmSync(join(dir, 'cluster-1'), { recursive: true });
  await restoreFiles(dir, kept);
  assert.equal(readFileSync(join(dir, 'cluster-1', 'vs.yaml'), 'utf8'), 'mine');
  assert.equal(readFileSync(join(dir, 'cluster-1', 'credentials', 'istio-system', 'c', 'tls.key'), 'utf8'), 'key');
});
