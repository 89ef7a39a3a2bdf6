/** `isle ratelimit` as a user runs it: bad flags and configs are one-line errors with exit code 2. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runIsle } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'isle-rl-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const good = join(dir, 'good.yaml');
writeFileSync(good, 'domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 1}\n');
const bad = join(dir, 'bad.yaml');
writeFileSync(bad, 'domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: -1}\n');

describe('isle ratelimit', () => {
  it('refuses plaintext off loopback, a missing store, half the TLS flags and a bad config', async () => {
    const offLoopback = await runIsle(['ratelimit', '--redis', 'redis://127.90.6.1:1', '--config', good, '--listen', '0.0.0.0:8081']);
    assert.equal(offLoopback.code, 2);
    assert.match(offLoopback.stderr, /plaintext rate limit service may only listen on loopback, not 0\.0\.0\.0/);
    const noStore = await runIsle(['ratelimit', '--config', good]);
    assert.equal(noStore.code, 2);
    assert.match(noStore.stderr, /give exactly one of --redis/);
    const halfTls = await runIsle(['ratelimit', '--redis', 'redis://127.90.6.1:1', '--config', good, '--tls-cert', good]);
    assert.equal(halfTls.code, 2);
    assert.match(halfTls.stderr, /--tls-cert, --tls-key and --tls-ca go together/);
    const badConfig = await runIsle(['ratelimit', '--redis', 'redis://127.90.6.1:1', '--config', bad]);
    assert.equal(badConfig.code, 2);
    assert.match(badConfig.stderr, /bad\.yaml: descriptors\[0\]\.rate_limit\.requests_per_unit: expected an integer >= 0/);
    const noName = await runIsle(['ratelimit', '--sentinel', '127.90.6.1:26379', '--config', good]);
    assert.equal(noName.code, 2);
    assert.match(noName.stderr, /--sentinel needs --sentinel-name/);
  });
});
