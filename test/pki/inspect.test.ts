import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  caFiles,
  createCsr,
  formatInspectReport,
  inspectPath,
  rootFiles,
  workloadFiles,
  writeFilesAtomic,
  type CertificateInfo,
  type DirReport,
} from '../../src/pki/index.js';
import { badCaDirs, identity, meshCa, openssl, pemFile, tempDir, workload } from './fixtures.js';

describe('inspectPath on files', () => {
  it('describes a certificate the way openssl sees it', async () => {
    const { c1 } = await meshCa();
    const path = pemFile(c1.certPem, 'ca-cert.pem');
    const report = await inspectPath(path);
    assert.equal(report.kind, 'file');
    const [cert] = report.items as CertificateInfo[];
    assert.equal(cert!.kind, 'certificate');
    assert.equal(cert!.subject, 'O=cluster.local, L=cluster-1, CN=Isle Intermediate CA cluster-1');
    assert.equal(cert!.issuer, 'O=cluster.local, CN=Isle Root CA');
    assert.equal(cert!.keyType, 'EC P-256');
    assert.equal(cert!.ca, true);
    assert.equal(cert!.pathLen, 0);
    assert.deepEqual(cert!.keyUsage, ['digitalSignature', 'keyCertSign', 'cRLSign']);
    assert.deepEqual(cert!.sans, ['URI:spiffe://cluster.local']);
    assert.equal(cert!.expired, false);
    const fp = openssl(['x509', '-noout', '-fingerprint', '-sha256', '-in', path]).stdout.trim().split('=')[1];
    assert.equal(cert!.sha256, fp);
    const serial = openssl(['x509', '-noout', '-serial', '-in', path]).stdout.trim().split('=')[1];
    assert.equal(cert!.serial, serial);
    const text = formatInspectReport(report);
    assert.match(text, /CA: +yes, pathLen 0/);
    assert.match(text, /key: +EC P-256/);
  });

  it('describes a chain, an RSA key, a CSR; refuses a corrupt file', async () => {
    const { c1 } = await meshCa();
    const chain = await inspectPath(pemFile(c1.chainPem));
    assert.equal(chain.kind === 'file' && chain.items.length, 2);
    const key = openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']).stdout;
    const k = await inspectPath(pemFile(key));
    assert.equal(k.kind === 'file' && k.items[0]!.kind === 'private-key' && k.items[0]!.keyType, 'RSA 2048');
    assert.doesNotMatch(JSON.stringify(k), /MII/, 'no key material in the report');
    const { csrPem } = await createCsr({ identity: identity('a', 'b') });
    const c = await inspectPath(pemFile(csrPem));
    assert.deepEqual(c.kind === 'file' && c.items[0], { kind: 'csr', subject: '(empty subject)', sans: ['URI:spiffe://cluster.local/ns/a/sa/b'], keyType: 'EC P-256', signatureValid: true });
    await assert.rejects(inspectPath(pemFile(c1.certPem.replace(/\n[A-Za-z0-9+/]{64}\n/, '\n'))), { code: 'ERR_PEM_INVALID' });
    await assert.rejects(inspectPath(join(tempDir(), 'absent.pem')), { code: 'ERR_FILE_MISSING' });
  });
});

describe('inspectPath on directories', () => {
  it('finds root, cacerts and workload layouts consistent', async () => {
    const { root, c1 } = await meshCa();
    const base = tempDir();
    await writeFilesAtomic(join(base, 'root'), rootFiles(root));
    await writeFilesAtomic(join(base, 'c1'), caFiles(c1));
    await writeFilesAtomic(join(base, 'w'), workloadFiles(await workload(c1, identity('a', 'b'))));
    const expected: Array<[string, string, RegExp]> = [
      ['root', 'root', /^consistent root CA \(trust domain cluster\.local\)$/],
      ['c1', 'cacerts', /^consistent CA \(trust domain cluster\.local, cluster cluster-1\)$/],
      ['w', 'workload', /^consistent workload identity \(spiffe:\/\/cluster\.local\/ns\/a\/sa\/b\)$/],
    ];
    for (const [name, layout, verdict] of expected) {
      const r = (await inspectPath(join(base, name))) as DirReport;
      assert.equal(r.kind, 'directory');
      assert.equal(r.layout, layout);
      assert.equal(r.consistent, true, JSON.stringify(r.checks));
      assert.match(r.verdict, verdict);
      assert.ok(r.checks.every((c) => c.level === 'ok'), name);
      assert.ok(r.checks.some((c) => /matches/.test(c.text)), `${name}: key/cert check`);
      const text = formatInspectReport(r);
      assert.match(text, /✓/);
      assert.doesNotMatch(text, /✗/);
    }
  });

  it('marks every broken layout inconsistent, naming the file', async () => {
    for (const c of await badCaDirs()) {
      const r = (await inspectPath(c.dir)) as DirReport;
      assert.equal(r.consistent, false, c.name);
      assert.equal(r.error?.code, c.code, c.name);
      assert.ok(r.error?.message.startsWith(`${c.file}:`), `${c.name}: ${r.error?.message}`);
      assert.match(r.verdict, /^NOT a consistent CA/);
      assert.match(formatInspectReport(r), /✗ .*/);
    }
  });

  it('reports the other checks too when one fails', async () => {
    const cases = await badCaDirs();
    const r = (await inspectPath(cases.find((c) => c.name === 'key-mismatch')!.dir)) as DirReport;
    assert.ok(r.checks.some((c) => c.level === 'ok' && /verifies to/.test(c.text)), 'chain still checked');
    assert.equal(r.checks.filter((c) => c.level === 'fail').length, 1);
  });
});
