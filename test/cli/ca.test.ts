// `isle ca` end to end: the compiled CLI in a child process, checked with the real openssl.
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runIsle, type CliResult } from '../helpers/cli.js';
import { badCaDirs, firstPem, opensslVerify, snapshot, tempDir } from '../pki/fixtures.js';
import { parseCertPem, spiffeIdFromCert } from '../../src/pki/index.js';

const HOUR = 3600 * 1000;

function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** A usage or input error: exit 2 and exactly one `isle: …` line on stderr. */
function refused(r: CliResult, pattern: RegExp): void {
  assert.equal(r.code, 2, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.match(r.stderr, /^isle: [^\n]+\n$/, `one line: ${JSON.stringify(r.stderr)}`);
  assert.match(r.stderr, pattern);
}

function read(dir: string, name: string): string {
  return readFileSync(join(dir, name), 'utf8');
}

function mode(dir: string, name: string): number {
  return statSync(join(dir, name)).mode & 0o777;
}

/** root → cluster-1, cluster-2 via the CLI, made once for the file. */
let meshDirs: Promise<{ base: string; root: string; c1: string; c2: string }> | undefined;
function cliMesh() {
  meshDirs ??= (async () => {
    const base = tempDir('isle-cli-');
    const root = join(base, 'root');
    ok(await runIsle(['ca', 'root', '--out', root]));
    const [c1, c2] = [join(base, 'cluster-1'), join(base, 'cluster-2')];
    await Promise.all([
      runIsle(['ca', 'intermediate', '--root', root, '--cluster', 'cluster-1', '--out', c1]).then(ok),
      runIsle(['ca', 'intermediate', '--root', root, '--cluster', 'cluster-2', '--out', c2]).then(ok),
    ]);
    return { base, root, c1, c2 };
  })();
  return meshDirs;
}

describe('isle ca: happy paths', { concurrency: true }, () => {
  it('root, two intermediates and workloads verify with openssl; a foreign root does not', async () => {
    const { base, root, c1, c2 } = await cliMesh();
    assert.deepEqual(Object.keys(snapshot(root)!), ['root-cert.pem', 'root-key.pem']);
    assert.equal(mode(root, 'root-key.pem'), 0o600);
    assert.equal(mode(root, 'root-cert.pem'), 0o644);
    assert.deepEqual(Object.keys(snapshot(c1)!), ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem']);
    assert.equal(mode(c1, 'ca-key.pem'), 0o600);
    assert.equal(read(c1, 'cert-chain.pem'), read(c1, 'ca-cert.pem') + read(root, 'root-cert.pem'));

    for (const [ca, ns] of [[c1, 'one'], [c2, 'two']] as const) {
      const out = join(base, `w-${ns}`);
      const r = ok(await runIsle(['ca', 'workload', '--ca', ca, '--namespace', ns, '--service-account', 'sleep', '--out', out]));
      assert.match(r.stdout, new RegExp(`spiffe://cluster.local/ns/${ns}/sa/sleep`));
      for (const f of ['key.pem', 'cert-chain.pem', 'root-cert.pem']) assert.match(r.stdout, new RegExp(`wrote ${join(out, f)}`));
      assert.equal(mode(out, 'key.pem'), 0o600);
      const v = opensslVerify(read(out, 'root-cert.pem'), read(out, 'cert-chain.pem'));
      assert.equal(v.status, 0, v.stdout + v.stderr);
      assert.equal(spiffeIdFromCert(firstPem(read(out, 'cert-chain.pem'))), `spiffe://cluster.local/ns/${ns}/sa/sleep`);
    }

    const foreign = join(base, 'foreign');
    ok(await runIsle(['ca', 'root', '--out', join(foreign, 'root')]));
    ok(await runIsle(['ca', 'intermediate', '--root', join(foreign, 'root'), '--cluster', 'cluster-1', '--out', join(foreign, 'c1')]));
    ok(await runIsle(['ca', 'workload', '--ca', join(foreign, 'c1'), '--namespace', 'one', '--service-account', 'sleep', '--out', join(foreign, 'w')]));
    const v = opensslVerify(read(root, 'root-cert.pem'), read(join(foreign, 'w'), 'cert-chain.pem'));
    assert.notEqual(v.status, 0);
  });

  it('TTL defaults to 24 h and is capped at the intermediate expiry', async () => {
    const { base, root } = await cliMesh();
    const w = join(base, 'ttl-default');
    const start = Date.now();
    const { c1 } = await cliMesh();
    ok(await runIsle(['ca', 'workload', '--ca', c1, '--namespace', 'a', '--service-account', 'b', '--out', w]));
    const end = Date.now();
    const leaf = parseCertPem(firstPem(read(w, 'cert-chain.pem')));
    const notAfter = leaf.px.notAfter.getTime();
    assert.ok(notAfter >= Math.floor(start / 1000) * 1000 + 24 * HOUR && notAfter <= end + 24 * HOUR, `${leaf.px.notAfter.toISOString()}`);

    const shortCa = join(base, 'short-ca');
    ok(await runIsle(['ca', 'intermediate', '--root', root, '--cluster', 'short', '--days', '1', '--out', shortCa]));
    const capped = join(base, 'ttl-capped');
    const r = ok(await runIsle(['ca', 'workload', '--ca', shortCa, '--namespace', 'a', '--service-account', 'b', '--ttl', '48h', '--out', capped]));
    assert.match(r.stdout, /capped at the CA's expiry/);
    const caNotAfter = parseCertPem(read(shortCa, 'ca-cert.pem')).px.notAfter.getTime();
    assert.equal(parseCertPem(firstPem(read(capped, 'cert-chain.pem'))).px.notAfter.getTime(), caNotAfter);
  });

  it('rsa-2048 works end to end through the CLI', async () => {
    const base = tempDir('isle-cli-rsa-');
    ok(await runIsle(['ca', 'root', '--out', join(base, 'root'), '--key', 'rsa-2048', '--trust-domain', 'rsa.example', '--days', '30']));
    ok(await runIsle(['ca', 'intermediate', '--root', join(base, 'root'), '--cluster', 'c', '--out', join(base, 'c')]));
    ok(await runIsle(['ca', 'workload', '--ca', join(base, 'c'), '--namespace', 'n', '--service-account', 's', '--key', 'rsa-2048', '--ttl', '1h', '--out', join(base, 'w')]));
    const v = opensslVerify(read(join(base, 'w'), 'root-cert.pem'), read(join(base, 'w'), 'cert-chain.pem'));
    assert.equal(v.status, 0, v.stderr);
    const r = ok(await runIsle(['ca', 'inspect', join(base, 'c', 'ca-cert.pem')]));
    assert.match(r.stdout, /key: +RSA 2048/);
    const w = ok(await runIsle(['ca', 'inspect', join(base, 'w')]));
    assert.match(w.stdout, /verdict: consistent workload identity \(spiffe:\/\/rsa\.example\/ns\/n\/sa\/s\)/);
  });

  it('refuses to overwrite without --force (nothing changes) and replaces with it', async () => {
    const dir = join(tempDir(), 'root');
    ok(await runIsle(['ca', 'root', '--out', dir]));
    const before = snapshot(dir);
    const r = await runIsle(['ca', 'root', '--out', dir]);
    refused(r, new RegExp(`${join(dir, 'root-cert.pem')}: already exists \\(use --force`));
    assert.deepEqual(snapshot(dir), before);
    const f = ok(await runIsle(['ca', 'root', '--out', dir, '--force']));
    assert.match(f.stdout, /wrote .*root-key\.pem \(private key, mode 0600\)/);
    const after = snapshot(dir)!;
    assert.notEqual(after['root-cert.pem']!.content, before!['root-cert.pem']!.content);
    assert.notEqual(after['root-key.pem']!.content, before!['root-key.pem']!.content);
    assert.equal(after['root-key.pem']!.mode, 0o600);
  });

  it('inspect: a file exits 0, a good directory exits 0 with ✓ lines, --json parses', async () => {
    const { c1 } = await cliMesh();
    const f = ok(await runIsle(['ca', 'inspect', join(c1, 'cert-chain.pem')]));
    assert.match(f.stdout, /certificate #1\n {2}subject: +O=cluster\.local, L=cluster-1, CN=Isle Intermediate CA cluster-1/);
    assert.match(f.stdout, /certificate #2\n {2}subject: +O=cluster\.local, CN=Isle Root CA/);
    assert.match(f.stdout, /SHA-256: +([0-9A-F]{2}:){31}[0-9A-F]{2}/);
    const d = ok(await runIsle(['ca', 'inspect', c1]));
    assert.match(d.stdout, /✓ .*ca-key\.pem matches .*ca-cert\.pem/);
    assert.match(d.stdout, /✓ .*cert-chain\.pem verifies to .*root-cert\.pem/);
    assert.match(d.stdout, /verdict: consistent CA \(trust domain cluster\.local, cluster cluster-1\)/);
    assert.doesNotMatch(d.stdout, /✗/);
    const j = ok(await runIsle(['ca', 'inspect', '--json', c1]));
    const report = JSON.parse(j.stdout) as { kind: string; consistent: boolean; layout: string };
    assert.deepEqual([report.kind, report.layout, report.consistent], ['directory', 'cacerts', true]);
  });
});

describe('isle ca: broken inputs', { concurrency: true }, () => {
  it('workload and inspect refuse each broken CA dir: one line naming the file, exit 2, output unchanged', async () => {
    const { c1 } = await cliMesh();
    const cases = await badCaDirs();
    const base = tempDir('isle-cli-bad-');
    // A previous good output that --force would replace: it must survive a failed run.
    const seed = join(base, 'seed');
    ok(await runIsle(['ca', 'workload', '--ca', c1, '--namespace', 'a', '--service-account', 'b', '--out', seed]));
    await Promise.all(
      cases.map(async (c) => {
        const out = join(base, c.name);
        cpSync(seed, out, { recursive: true });
        const fresh = join(base, `${c.name}-fresh`);
        const before = snapshot(c.dir);
        const outBefore = snapshot(out);
        const r = await runIsle(['ca', 'workload', '--ca', c.dir, '--namespace', 'a', '--service-account', 'b', '--out', out, '--force']);
        refused(r, new RegExp(`^isle: ${c.file}: `));
        assert.match(r.stderr, c.message, c.name);
        assert.deepEqual(snapshot(out), outBefore, `${c.name}: output unchanged`);
        if (c.name === 'expired') {
          // Once is enough (each spawn costs ~0.4 s): a refused run creates no output directory.
          const r2 = await runIsle(['ca', 'workload', '--ca', c.dir, '--namespace', 'a', '--service-account', 'b', '--out', fresh]);
          assert.equal(r2.code, 2);
          assert.equal(existsSync(fresh), false, `${c.name}: no output directory created`);
        }
        const i = await runIsle(['ca', 'inspect', c.dir]);
        refused(i, new RegExp(`^isle: ${c.file}: `));
        assert.match(i.stdout, /✗ /, `${c.name}: report printed`);
        assert.match(i.stdout, /verdict: NOT a consistent CA/);
        assert.deepEqual(snapshot(c.dir), before, `${c.name}: CA dir untouched`);
      }),
    );
  });

  it('intermediate refuses a root whose key does not match; nothing is written', async () => {
    const { base, root, c1 } = await cliMesh();
    const bad = join(base, 'bad-root');
    cpSync(root, bad, { recursive: true });
    cpSync(join(c1, 'ca-key.pem'), join(bad, 'root-key.pem'));
    const out = join(base, 'never');
    const r = await runIsle(['ca', 'intermediate', '--root', bad, '--cluster', 'x', '--out', out]);
    refused(r, new RegExp(`^isle: ${join(bad, 'root-key.pem')}: private key does not match ${join(bad, 'root-cert.pem')}\n$`));
    assert.equal(existsSync(out), false);
  });

  it('bad flags get a clear message and exit 2, writing nothing', async () => {
    const base = tempDir();
    const out = join(base, 'out');
    const { c1 } = await cliMesh();
    const cases: Array<[string[], RegExp]> = [
      [['ca', 'root', '--out', out, '--key', 'dsa'], /'dsa' is invalid.*ec-p256, rsa-2048, rsa-4096/],
      [['ca', 'root', '--out', out, '--days', '0'], /--days.*'0' is invalid/],
      [['ca', 'root', '--out', out, '--trust-domain', 'Bad Domain'], /^isle: invalid trust domain "Bad Domain"/],
      [['ca', 'intermediate', '--root', out, '--out', out], /required option '--cluster <name>' not specified/],
      [['ca', 'workload', '--ca', c1, '--namespace', 'a', '--service-account', 'b', '--ttl', '5x', '--out', out], /--ttl.*'5x' is invalid.*24h/],
      [['ca', 'workload', '--ca', c1, '--namespace', 'a/b', '--service-account', 'b', '--out', out], /^isle: invalid namespace "a\/b"/],
    ];
    await Promise.all(
      cases.map(async ([args, pattern]) => {
        const r = await runIsle(args);
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, pattern, args.join(' '));
      }),
    );
    assert.equal(existsSync(out), false);
  });
});
