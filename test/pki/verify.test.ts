import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { bundleTrustDomains, mergeBundles, parseBundle, verifyChain } from '../../src/pki/index.js';
import { identity, meshCa, openssl, opensslVerify, tempDir, workload } from './fixtures.js';

const DAY = 24 * 60 * 60 * 1000;

/** Signs a fresh EC key with `issuer` using the real openssl and the given v3 extensions. */
function opensslIssue(issuerCertPem: string, issuerKeyPem: string, ext: string, subject: string): { certPem: string; keyPem: string } {
  const d = tempDir();
  writeFileSync(join(d, 'issuer.pem'), issuerCertPem);
  writeFileSync(join(d, 'issuer-key.pem'), issuerKeyPem);
  writeFileSync(join(d, 'ext.cnf'), `[v3]\n${ext}\n`);
  let r = openssl(['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', 'key.pem', '-subj', subject, '-out', 'req.pem'], d);
  assert.equal(r.status, 0, r.stderr);
  r = openssl(['x509', '-req', '-in', 'req.pem', '-CA', 'issuer.pem', '-CAkey', 'issuer-key.pem', '-CAcreateserial', '-days', '30', '-extfile', 'ext.cnf', '-extensions', 'v3', '-out', 'cert.pem'], d);
  assert.equal(r.status, 0, r.stderr);
  return { certPem: readFileSync(join(d, 'cert.pem'), 'utf8'), keyPem: readFileSync(join(d, 'key.pem'), 'utf8') };
}

describe('verifyChain', () => {
  it('verifies leaf → intermediate → root and returns the path', async () => {
    const { root, c1 } = await meshCa();
    const w = await workload(c1, identity('a', 'b'));
    const v = verifyChain(w.leafPem, c1.chainPem, root.certPem);
    assert.equal(v.path.length, 3);
    assert.equal(v.root.pem, root.certPem);
    // The leaf may also carry its chain, as cert-chain.pem does.
    assert.equal(verifyChain(w.chainPem, '', w.rootBundlePem).path.length, 3);
  });

  it('refuses a leaf of a foreign root, even with the same names', async () => {
    const { root, foreignCa } = await meshCa();
    const w = await workload(foreignCa, identity('a', 'b'));
    assert.throws(() => verifyChain(w.chainPem, '', root.certPem), { code: 'ERR_CHAIN_INVALID' });
    // Shipping the foreign root in the chain does not help: only the bundle is trusted.
    assert.throws(() => verifyChain(w.chainPem, foreignCa.chainPem, root.certPem), { code: 'ERR_CHAIN_INVALID', message: /not in the trust bundle/ });
  });

  it('checks validity at the injected time', async () => {
    const { root, c1 } = await meshCa();
    const w = await workload(c1, identity('a', 'b'), { ttlSeconds: 3600 });
    assert.throws(() => verifyChain(w.chainPem, '', root.certPem, new Date(Date.now() + 2 * 3600 * 1000)), { code: 'ERR_CERT_EXPIRED', message: /expired/ });
    assert.throws(() => verifyChain(w.chainPem, '', root.certPem, new Date(Date.now() + 400 * DAY)), { code: 'ERR_CERT_EXPIRED' });
    assert.throws(() => verifyChain(w.chainPem, '', root.certPem, new Date(Date.now() - DAY)), { code: 'ERR_CERT_EXPIRED', message: /not valid before/ });
  });

  it('refuses a chain through a non-CA certificate (openssl agrees)', async () => {
    const { root, c1 } = await meshCa();
    const w = await workload(c1, identity('a', 'b'));
    const fake = opensslIssue(w.leafPem, w.keyPem, 'basicConstraints=critical,CA:FALSE\nsubjectAltName=critical,URI:spiffe://cluster.local/ns/x/sa/y', '/O=x');
    assert.throws(() => verifyChain(fake.certPem, [w.leafPem, c1.certPem].join(''), root.certPem), { code: 'ERR_CERT_NOT_CA' });
    assert.notEqual(opensslVerify(root.certPem, fake.certPem + w.leafPem + c1.certPem, fake.certPem).status, 0);
  });

  it('enforces pathLen: no CA below a cluster intermediate (openssl agrees)', async () => {
    const { root, c1 } = await meshCa();
    const sub = opensslIssue(c1.certPem, c1.keyPem, 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign', '/O=cluster.local/CN=rogue sub-CA');
    const leaf = opensslIssue(sub.certPem, sub.keyPem, 'basicConstraints=critical,CA:FALSE\nsubjectAltName=critical,URI:spiffe://cluster.local/ns/a/sa/b', '/O=x');
    assert.throws(() => verifyChain(leaf.certPem, sub.certPem + c1.certPem, root.certPem), { code: 'ERR_CHAIN_INVALID', message: /pathLen 0/ });
    const r = opensslVerify(root.certPem, leaf.certPem + sub.certPem + c1.certPem, leaf.certPem);
    assert.notEqual(r.status, 0);
    assert.match(r.stdout + r.stderr, /path length/);
  });
});

describe('trust bundles', () => {
  it('a bundle of two roots accepts leaves of both (root rotation)', async () => {
    const { root, c1, foreignRoot, foreignCa } = await meshCa();
    const bundle = mergeBundles(root.certPem, foreignRoot.certPem, root.certPem);
    assert.equal(parseBundle(bundle).length, 2, 'duplicates dropped');
    assert.deepEqual(bundleTrustDomains(bundle), ['cluster.local']);
    for (const ca of [c1, foreignCa]) {
      const w = await workload(ca, identity('a', 'b'));
      assert.equal(verifyChain(w.chainPem, '', bundle).path.length, 3);
      const r = opensslVerify(bundle, w.chainPem);
      assert.equal(r.status, 0, r.stderr);
    }
  });

  it('refuses anything but self-signed CA roots in a bundle', async () => {
    const { root, c1 } = await meshCa();
    assert.throws(() => parseBundle(root.certPem + c1.certPem), { code: 'ERR_CHAIN_INVALID', message: /not a self-signed root/ });
    const w = await workload(c1, identity('a', 'b'));
    assert.throws(() => parseBundle(w.leafPem), { code: 'ERR_CERT_NOT_CA' });
    assert.throws(() => parseBundle(root.keyPem), { code: 'ERR_PEM_INVALID' });
  });
});
