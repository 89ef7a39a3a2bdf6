/**
 * Seed 001 end to end, as a user runs it: `isle demo --scenario remote-control-plane --check`
 * (real processes on loopback, 127.31/127.32.x.y, a 50 ms WAN relay between the clusters'
 * control planes). Addresses are its own, so it may run alongside the other demo tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIsle } from '../helpers/cli.js';

test('isle demo --scenario remote-control-plane (seed 001): teapot, central VirtualService, gateways, asymmetric discovery, central down, replica killed', { timeout: 180_000 }, async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'isle-sc-rcp-'));
  t.after(() => rmSync(cwd, { recursive: true, force: true }));
  const r = await runIsle(['demo', '--scenario', 'remote-control-plane', '--check', '--dir', join(cwd, 'demo')], { cwd });
  assert.equal(r.code, 0, `scenario failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /demo check passed/);
  assert.doesNotMatch(r.stdout, /✗|exited unexpectedly|NACKED/, r.stdout);
  assert.match(r.stdout, /-=\[ teapot \]=-/);
  assert.match(r.stdout, /✓ cluster-2 routing changed: \/teapot was HTTP 404 not found, now HTTP 418/);
  assert.match(r.stdout, /✓ before: HTTP 404 .*no route for host "helloworld\.default\.svc\.cluster\.local:5000"/);
  assert.match(r.stdout, /✓ after remoteClustersSeeCentral: true .*Hello version: v1/);
  assert.match(r.stdout, /cluster-1\s+central\s+cluster-2\s+connected\s+2 pushing, 2 subscribed/);
  assert.match(r.stdout, /✓ \d+ requests during the kill, 0 failed/);
});
