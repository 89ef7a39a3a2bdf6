import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  caFiles,
  loadCaDir,
  loadRootDir,
  loadWorkloadDir,
  rootFiles,
  workloadFiles,
  writeFilesAtomic,
} from '../../src/pki/index.js';
import { badCaDirs, identity, meshCa, opensslVerify, snapshot, tempDir, workload } from './fixtures.js';

describe('loadCaDir', () => {
  it('loads a cacerts directory written by the library and signs with it', async () => {
    const { c1 } = await meshCa();
    const dir = join(tempDir(), 'cluster-1');
    await writeFilesAtomic(dir, caFiles(c1));
    const ca = await loadCaDir(dir);
    assert.equal(ca.trustDomain, 'cluster.local');
    assert.equal(ca.cluster, 'cluster-1');
    assert.equal(ca.certPem, c1.certPem);
    assert.equal(ca.chainPem, c1.chainPem);
    const w = await workload(ca, identity('a', 'b'));
    assert.equal(opensslVerify(ca.rootBundlePem, w.chainPem).status, 0);
  });

  it('throws one line naming the file, for every broken layout', async () => {
    for (const c of await badCaDirs()) {
      await assert.rejects(loadCaDir(c.dir), (e: Error & { code?: string; file?: string }) => {
        assert.equal(e.code, c.code, `${c.name}: ${e.message}`);
        assert.ok(e.message.startsWith(`${c.file}:`), `${c.name}: "${e.message}" should start with ${c.file}`);
        assert.match(e.message, c.message, c.name);
        assert.doesNotMatch(e.message, /\n/, `${c.name}: one line`);
        assert.doesNotMatch(e.message, /PRIVATE KEY|MIG/, `${c.name}: no key material`);
        return true;
      });
    }
  });

  it('names the example message of the issue exactly', async () => {
    const { c1, c2 } = await meshCa();
    const base = tempDir();
    await writeFilesAtomic(join(base, 'ca-1'), caFiles({ ...c1, keyPem: c2.keyPem }));
    const cwd = process.cwd();
    process.chdir(base);
    try {
      await assert.rejects(loadCaDir('ca-1'), { message: 'ca-1/ca-key.pem: private key does not match ca-1/ca-cert.pem' });
    } finally {
      process.chdir(cwd);
    }
  });

  it('reports a missing directory', async () => {
    await assert.rejects(loadCaDir(join(tempDir(), 'nope')), { code: 'ERR_FILE_MISSING', message: /nope: no such directory/ });
  });
});

describe('loadRootDir and loadWorkloadDir', () => {
  it('round-trip what the library writes', async () => {
    const { root, c1 } = await meshCa();
    const rdir = join(tempDir(), 'root');
    await writeFilesAtomic(rdir, rootFiles(root));
    const loaded = await loadRootDir(rdir);
    assert.equal(loaded.trustDomain, 'cluster.local');
    assert.equal(loaded.certPem, root.certPem);
    const w = await workload(c1, identity('a', 'b'));
    const wdir = join(tempDir(), 'w');
    await writeFilesAtomic(wdir, workloadFiles(w));
    const wl = await loadWorkloadDir(wdir);
    assert.equal(wl.spiffeId, 'spiffe://cluster.local/ns/a/sa/b');
  });

  it('refuses a root whose key does not match, or that is not self-signed', async () => {
    const { root, foreignRoot, c1 } = await meshCa();
    const dir = join(tempDir(), 'root');
    await writeFilesAtomic(dir, rootFiles({ certPem: root.certPem, keyPem: foreignRoot.keyPem }));
    await assert.rejects(loadRootDir(dir), { code: 'ERR_KEY_MISMATCH', message: `${dir}/root-key.pem: private key does not match ${dir}/root-cert.pem` });
    const dir2 = join(tempDir(), 'inter-as-root');
    await writeFilesAtomic(dir2, rootFiles({ certPem: c1.certPem, keyPem: c1.keyPem }));
    await assert.rejects(loadRootDir(dir2), { code: 'ERR_CHAIN_INVALID', message: new RegExp(`^${dir2}/root-cert.pem: not self-signed`) });
  });

  it('refuses a workload dir whose key belongs to another workload', async () => {
    const { c1 } = await meshCa();
    const a = await workload(c1, identity('a', 'a'));
    const b = await workload(c1, identity('b', 'b'));
    const dir = join(tempDir(), 'w');
    await writeFilesAtomic(dir, workloadFiles({ ...a, keyPem: b.keyPem }));
    await assert.rejects(loadWorkloadDir(dir), { code: 'ERR_KEY_MISMATCH', message: new RegExp(`^${dir}/key.pem: private key does not match`) });
  });
});

describe('writeFilesAtomic', () => {
  it('writes keys 0600 and certificates 0644 whatever the umask', async () => {
    const { c1 } = await meshCa();
    const dir = join(tempDir(), 'a', 'b');
    const old = process.umask(0o000);
    try {
      const written = await writeFilesAtomic(dir, caFiles(c1));
      assert.deepEqual(written, ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem'].map((n) => join(dir, n)));
    } finally {
      process.umask(old);
    }
    assert.equal(statSync(join(dir, 'ca-key.pem')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'ca-cert.pem')).mode & 0o777, 0o644);
    assert.equal(statSync(join(dir, 'root-cert.pem')).mode & 0o777, 0o644);
  });

  it('refuses to overwrite without force, and changes nothing', async () => {
    const { c1, c2 } = await meshCa();
    const dir = join(tempDir(), 'ca');
    await writeFilesAtomic(dir, caFiles(c1));
    const before = snapshot(dir);
    await assert.rejects(writeFilesAtomic(dir, caFiles(c2)), { code: 'ERR_FILE_EXISTS', message: /ca-cert\.pem: already exists/ });
    assert.deepEqual(snapshot(dir), before);
    await writeFilesAtomic(dir, caFiles(c2), { force: true });
    assert.equal(readFileSync(join(dir, 'ca-cert.pem'), 'utf8'), c2.certPem);
    assert.equal(statSync(join(dir, 'ca-key.pem')).mode & 0o777, 0o600);
  });

  it('puts everything back when a rename fails half-way', async () => {
    const { c1, c2 } = await meshCa();
    const dir = join(tempDir(), 'ca');
    await writeFilesAtomic(dir, caFiles(c1).filter((f) => f.name !== 'root-cert.pem'));
    // The last target is a non-empty directory: renaming a file over it fails after the others moved.
    mkdirSync(join(dir, 'root-cert.pem'));
    writeFileSync(join(dir, 'root-cert.pem', 'x'), 'x');
    const before = snapshot(dir);
    await assert.rejects(writeFilesAtomic(dir, caFiles(c2), { force: true }), /nothing was changed/);
    assert.deepEqual(snapshot(dir), before);
  });

  it('removes directories it created when writing fails', async () => {
    const base = tempDir();
    const dir = join(base, 'new', 'deeper');
    await assert.rejects(writeFilesAtomic(dir, [{ name: 'ok.pem', content: 'x', mode: 0o644 }, { name: 'no/such/dir.pem', content: 'x', mode: 0o644 }]));
    assert.equal(existsSync(join(base, 'new')), false);
  });
});
