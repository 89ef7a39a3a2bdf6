// `isle token` end to end: the compiled CLI in a child process, on real cacerts directories.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runIsle, type CliResult } from '../helpers/cli.js';
import { meshCa, tempDir } from '../pki/fixtures.js';
import { caFiles, writeFilesAtomic } from '../../src/pki/index.js';
import { verifyToken } from '../../src/mesh/token.js';

function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

function refused(r: CliResult, pattern: RegExp): void {
  assert.equal(r.code, 2, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.match(r.stderr, /^isle: [^\n]+\n$/, `one line: ${JSON.stringify(r.stderr)}`);
  assert.match(r.stderr, pattern);
}

let dirs: Promise<{ base: string; c1: string; c2: string }> | undefined;
function caDirs() {
  dirs ??= (async () => {
    const m = await meshCa();
    const base = tempDir('isle-token-cli-');
    const [c1, c2] = [join(base, 'cluster-1'), join(base, 'cluster-2')];
    await writeFilesAtomic(c1, caFiles(m.c1));
    await writeFilesAtomic(c2, caFiles(m.c2));
    return { base, c1, c2 };
  })();
  return dirs;
}

const create = (ca: string, cluster: string, ...more: string[]) =>
  runIsle(['token', 'create', '--ca', ca, '--namespace', 'demo', '--service-account', 'sleep', '--cluster', cluster, ...more]);

describe('isle token', { concurrency: true }, () => {
  it('create prints a token the control plane accepts; inspect shows its claims but never the signature', async () => {
    const { c1 } = await caDirs();
    const r = ok(await create(c1, 'cluster-1', '--ttl', '30m'));
    const token = r.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.equal(r.stdout, `${token}\n`, 'stdout holds the token alone, so $(isle token create …) works');
    assert.match(r.stderr, /^token for spiffe:\/\/cluster.local\/ns\/demo\/sa\/sleep in cluster cluster-1, expires \d{4}-/);
    const { c1: ca } = await meshCa();
    const v = verifyToken(token, { ca, cluster: 'cluster-1' });
    assert.equal(v.spiffeId, 'spiffe://cluster.local/ns/demo/sa/sleep');
    assert.ok(Math.abs(v.exp.getTime() - Date.now() - 1800 * 1000) < 60 * 1000);

    const signature = token.split('.')[2]!;
    const i = ok(await runIsle(['token', 'inspect', token]));
    assert.match(i.stdout, /header: +alg=ES256 typ=JWT kid=[\w-]+/);
    assert.match(i.stdout, /subject: +spiffe:\/\/cluster.local\/ns\/demo\/sa\/sleep/);
    assert.match(i.stdout, /cluster: +cluster-1/);
    assert.match(i.stdout, /issuer: +isle:\/\/cluster-1/);
    assert.match(i.stdout, /audience: +"isle-ca"/);
    assert.match(i.stdout, /signature: 64 bytes, not checked \(pass --ca DIR to verify\)/);
    assert.ok(!i.stdout.includes(signature) && !i.stderr.includes(signature), 'the signature is never printed');

    const checked = ok(await runIsle(['token', 'inspect', '--ca', c1, token]));
    assert.match(checked.stdout, /signature: 64 bytes, valid for spiffe:\/\/cluster.local\/ns\/demo\/sa\/sleep in cluster cluster-1/);
    const j = ok(await runIsle(['token', 'inspect', '--json', token]));
    const parsed = JSON.parse(j.stdout) as { claims: { sub: string; aud: string }; header: { alg: string } };
    assert.equal(parsed.claims.sub, 'spiffe://cluster.local/ns/demo/sa/sleep');
    assert.ok(!j.stdout.includes(signature));
  });

  it('--out writes the token with mode 0600 and does not print it; inspect reads the file', async () => {
    const { c1 } = await caDirs();
    const file = join(tempDir(), 'sleep.token');
    const r = ok(await create(c1, 'cluster-1', '--out', file));
    const token = readFileSync(file, 'utf8').trim();
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.ok(!r.stdout.includes(token) && !r.stderr.includes(token), 'a token written to a file is not echoed');
    assert.match(r.stdout, new RegExp(`wrote ${file} \\(bearer token, mode 0600\\)`));
    const i = ok(await runIsle(['token', 'inspect', file]));
    assert.match(i.stdout, /subject: +spiffe:\/\/cluster.local\/ns\/demo\/sa\/sleep/);
    assert.match(i.stdout, /expires: +\d{4}-.*Z\n/);

    // No silent overwrite; --force replaces.
    refused(await create(c1, 'cluster-1', '--out', file), /exists \(use --force/);
    assert.equal(readFileSync(file, 'utf8').trim(), token);
    ok(await create(c1, 'cluster-1', '--out', file, '--force'));
    assert.notEqual(readFileSync(file, 'utf8').trim(), token);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  it('refuses a --cluster that is not the CA’s cluster, in one line, writing nothing', async () => {
    const { c1 } = await caDirs();
    const file = join(tempDir(), 'never.token');
    const r = await create(c1, 'cluster-2', '--out', file);
    refused(r, /--cluster cluster-2 does not match .*cluster-1, which is the intermediate of cluster cluster-1/);
    assert.equal(r.stdout, '');
    assert.equal(existsSync(file), false);
  });

  it('inspect --ca with another cluster’s CA reports the token invalid (exit 1); garbage is a one-line error', async () => {
    const { c1, c2 } = await caDirs();
    const token = ok(await create(c1, 'cluster-1')).stdout.trim();
    const r = await runIsle(['token', 'inspect', '--ca', c2, token]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /signature: 64 bytes, INVALID: token signature does not verify with cluster cluster-2's CA/);
    const junk = join(tempDir(), 'junk.token');
    writeFileSync(junk, 'not a token\n');
    refused(await runIsle(['token', 'inspect', junk]), /malformed token: expected 3 dot-separated parts/);
    refused(await runIsle(['token', 'inspect', join(tempDir(), 'missing')]), /neither a token nor a readable file \(ENOENT\)/);
    const bad = await create(c1, 'cluster-1', '--ttl', 'soon');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /expected a duration such as/);
  });
});
