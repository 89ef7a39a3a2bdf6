/**
 * The traffic-policy scenarios end to end, as a user runs them: `isle demo --scenario NAME --check`
 * starts real processes on loopback and runs the scenario's verification. Their addresses
 * (127.11–127.15.x.y, control planes included) never collide with seed 000's (127.1/127.2), so
 * this file may run alongside demo.test.ts; within it, the tests run one after the other.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIsle } from '../helpers/cli.js';

async function scenario(t: { after: (fn: () => void) => void }, name: string): Promise<string> {
  const cwd = mkdtempSync(join(tmpdir(), `isle-sc-${name}-`));
  t.after(() => rmSync(cwd, { recursive: true, force: true }));
  const r = await runIsle(['demo', '--scenario', name, '--check', '--dir', join(cwd, 'demo')], { cwd });
  assert.equal(r.code, 0, `scenario ${name} failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /demo check passed/);
  assert.doesNotMatch(r.stdout, /✗|exited unexpectedly|STALE|NACKED/, r.stdout);
  return r.stdout;
}

/** The percentage the scenario printed for a version on the line matching `line`. */
function share(out: string, line: RegExp, version: string): number {
  const l = out.split('\n').find((x) => line.test(x));
  assert.ok(l, `no line ${line} in:\n${out}`);
  const m = new RegExp(`${version}: \\d+ \\(([0-9.]+) %\\)`).exec(l);
  return m ? Number(m[1]) : 0;
}

test('isle demo --scenario strict-mtls: plaintext accepted under PERMISSIVE, refused under mesh-wide and namespace STRICT; mTLS throughout', { timeout: 120_000 }, async (t) => {
  const out = await scenario(t, 'strict-mtls');
  const steps = out.split(/\n(?=\d\. )/).slice(1);
  assert.equal(steps.length, 4, out);
  const plain = (s: string, ns: string) => /plaintext curl \S+ \((\S+)\/helloworld\) → (.*?) {3}\(want/.exec(s.split('\n').find((l) => l.includes(`(${ns}/helloworld)`)) ?? '')?.[2] ?? '';
  const [permissive, meshStrict, removed, nsStrict] = steps as [string, string, string, string];
  assert.match(plain(permissive, 'default'), /^Hello version: v1/);
  assert.match(plain(meshStrict, 'default'), /^refused/);
  assert.match(plain(meshStrict, 'other'), /^refused/);
  assert.match(plain(removed, 'default'), /^Hello version: v1/);
  assert.match(plain(nsStrict, 'default'), /^refused/);
  assert.match(plain(nsStrict, 'other'), /^Hello version: other/);
  for (const s of steps) assert.match(s, /✓ mTLS through sleep's sidecar: default\/helloworld v1: 5 .*other\/helloworld other: 5/);
});

test('isle demo --scenario routing (seed 003): end-user jason → v2/v3 70/30 ± 5 % across clusters, everyone else → v1', { timeout: 120_000 }, async (t) => {
  const out = await scenario(t, 'routing');
  // The `.global` name resolved by the sleep sidecar's DNS proxy to the ServiceEntry address, and jason's requests went there.
  assert.match(out, /✓ DNS 127\.12\.1\.20:15053: helloworld\.hello\.global → 127\.255\.0\.8 /);
  assert.match(out, /-H 'end-user: jason' http:\/\/127\.255\.0\.8:5000\/hello/);
  const v2 = share(out, /end-user: jason, 1000 requests/, 'v2');
  const v3 = share(out, /end-user: jason, 1000 requests/, 'v3');
  assert.ok(Math.abs(v2 - 70) <= 5 && Math.abs(v3 - 30) <= 5, `jason: v2 ${v2} %, v3 ${v3} %`);
  assert.equal(share(out, /everyone else, 100 requests/, 'v1'), 100);
  // jason's requests crossed to cluster-2 through its east-west gateway.
  const m = /cluster-2\s+east-west gateway \S+ {3}(\d+) connections passed through/.exec(out);
  assert.ok(m && Number(m[1]) > 0, out);
});

test('isle demo --scenario distribute (seed 002): 2,000 requests from region1 land 70/20/10 ± 5 %', { timeout: 120_000 }, async (t) => {
  const out = await scenario(t, 'distribute');
  const line = /want region1 70 %/;
  for (const [v, want] of [['v1', 70], ['v2', 20], ['v3', 10]] as const) {
    const got = share(out, line, v);
    assert.ok(Math.abs(got - want) <= 5, `${v}: ${got} %, want ${want} ± 5 %`);
  }
});

test('isle demo --scenario failover (seed 002): local app down → region2, then region3; back → region1', { timeout: 120_000 }, async (t) => {
  const out = await scenario(t, 'failover');
  const steps = out.split(/\n(?=\d\. )/).slice(1);
  assert.equal(steps.length, 4, out);
  for (const [i, v] of ['v1', 'v2', 'v3', 'v1'].entries()) assert.match(steps[i]!, new RegExp(`✓ 20 requests   ${v}: 20 \\(100\\.0 %\\)`), steps[i]);
});

test('isle demo --scenario authz (seed 000, two clusters): allow-nothing → allow by principal → deny by path; the caller crosses the gateway as itself', { timeout: 180_000 }, async (t) => {
  const out = await scenario(t, 'authz');
  const steps = out.split(/\n(?=\d\. )/).slice(1);
  assert.equal(steps.length, 3, out);
  const [nothing, principal, path] = steps as [string, string, string];
  for (const c of ['cluster-1', 'cluster-2']) {
    assert.match(nothing, new RegExp(`✓ sleep in ${c} → GET /hello: failed: \\d+ \\(HTTP 403\\)`));
    // Both versions answer both sleeps: one of them is in the other cluster, behind its gateway.
    assert.match(principal, new RegExp(`✓ sleep in ${c} → GET /hello: v1: \\d+ .*v2: \\d+`));
    assert.match(path, new RegExp(`✓ sleep in ${c} → GET /admin: failed: \\d+ \\(HTTP 403\\)`));
  }
  for (const c of ['cluster-1', 'cluster-2']) {
    const m = new RegExp(`${c}\\s+east-west gateway \\S+ {3}(\\d+) connections passed through`).exec(out);
    assert.ok(m && Number(m[1]) > 0, out);
  }
});
