import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  basicConstraintsOf,
  createCsr,
  createIntermediate,
  createRoot,
  parseCertPem,
  parseCertsPem,
  signWorkloadCsr,
  subjectAltNames,
  trustDomainOf,
  verifyChain,
} from '../../src/pki/index.js';
import { firstPem, identity, meshCa, openssl, opensslVerify, pemFile, workload } from './fixtures.js';

const DAY = 24 * 60 * 60 * 1000;

function opensslText(pem: string): string {
  const r = openssl(['x509', '-noout', '-text', '-in', pemFile(pem)]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

describe('createRoot', () => {
  it('makes a self-signed root with CA:true (critical), keyCertSign+cRLSign and the trust domain', async () => {
    const now = new Date('2026-03-01T12:00:00.000Z');
    const root = await createRoot({ trustDomain: 'mesh.example', now });
    const text = opensslText(root.certPem);
    assert.match(text, /Subject: O = mesh\.example, CN = Isle Root CA/);
    assert.match(text, /Issuer: O = mesh\.example, CN = Isle Root CA/);
    assert.match(text, /Basic Constraints: critical\s+CA:TRUE, pathlen:1/);
    assert.match(text, /Key Usage: critical\s+Certificate Sign, CRL Sign/);
    assert.match(text, /URI:spiffe:\/\/mesh\.example/);
    assert.match(text, /ASN1 OID: prime256v1/);
    const cert = parseCertPem(root.certPem);
    assert.equal(trustDomainOf(cert), 'mesh.example');
    assert.equal(root.trustDomain, 'mesh.example');
    assert.equal(root.notAfter.getTime(), now.getTime() + 3650 * DAY);
    assert.ok(root.notBefore < now, 'backdated for clock skew');
    assert.match(root.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.equal(openssl(['verify', '-x509_strict', '-CAfile', pemFile(root.certPem), pemFile(root.certPem)]).status, 0);
  });

  it('refuses a bad trust domain and bad days', async () => {
    await assert.rejects(createRoot({ trustDomain: 'Not A Domain' }), { code: 'ERR_IDENTITY' });
    await assert.rejects(createRoot({ days: 0 }), { code: 'ERR_USAGE' });
    await assert.rejects(createRoot({ keyType: 'dsa' as never }), { code: 'ERR_USAGE' });
  });
});

describe('createIntermediate', () => {
  it('makes a pathLen-0 CA for a cluster in the Istio cacerts shape', async () => {
    const { root, c1 } = await meshCa();
    const text = opensslText(c1.certPem);
    assert.match(text, /Subject: O = cluster\.local, L = cluster-1, CN = Isle Intermediate CA cluster-1/);
    assert.match(text, /Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    assert.match(text, /Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
    assert.equal(c1.trustDomain, 'cluster.local');
    assert.equal(c1.cluster, 'cluster-1');
    // cert-chain.pem = ca-cert.pem followed by root-cert.pem, as in Istio's samples/certs.
    assert.equal(c1.chainPem, c1.certPem + root.certPem);
    assert.equal(c1.rootBundlePem, root.certPem);
    const r = openssl(['verify', '-x509_strict', '-CAfile', pemFile(root.certPem), pemFile(c1.certPem)]);
    assert.equal(r.status, 0, r.stderr);
  });

  it("reads the trust domain back from the root and never outlives it", async () => {
    const now = new Date('2026-01-01T00:00:00.000Z');
    const root = await createRoot({ trustDomain: 'other.td', days: 10, now });
    const inter = await createIntermediate({ root: { certPem: root.certPem, keyPem: root.keyPem }, cluster: 'east', days: 365, now });
    assert.equal(inter.trustDomain, 'other.td');
    assert.equal(inter.capped, true);
    assert.equal(inter.notAfter.getTime(), root.notAfter.getTime());
    const short = await createIntermediate({ root, cluster: 'west', days: 2, now });
    assert.equal(short.capped, false);
    assert.equal(short.notAfter.getTime(), now.getTime() + 2 * DAY);
  });

  it('refuses a root that is not usable', async () => {
    const { root, c1, foreignRoot } = await meshCa();
    await assert.rejects(createIntermediate({ root: { certPem: root.certPem, keyPem: foreignRoot.keyPem }, cluster: 'x' }), { code: 'ERR_KEY_MISMATCH' });
    await assert.rejects(createIntermediate({ root, cluster: 'bad name' }), { code: 'ERR_USAGE' });
    const past = new Date(Date.now() - 5000 * DAY);
    const old = await createRoot({ days: 30, now: past });
    await assert.rejects(createIntermediate({ root: old, cluster: 'x' }), { code: 'ERR_CERT_EXPIRED' });
    // An intermediate is a CA but not self-signed: it cannot act as a root.
    await assert.rejects(createIntermediate({ root: { certPem: c1.certPem, keyPem: c1.keyPem }, cluster: 'x' }), { code: 'ERR_CHAIN_INVALID' });
  });
});

describe('key types', () => {
  it('rsa-2048 works end to end (root, intermediate inherits it, RSA leaf)', async () => {
    const root = await createRoot({ keyType: 'rsa-2048' });
    const inter = await createIntermediate({ root, cluster: 'rsa' });
    assert.match(opensslText(inter.certPem), /Public-Key: \(2048 bit\)[\s\S]*sha256WithRSAEncryption/);
    const w = await workload(inter, identity('ns', 'sa'), { keyType: 'rsa-2048' });
    const r = opensslVerify(w.rootBundlePem, w.chainPem);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(verifyChain(w.chainPem, '', w.rootBundlePem).path.length, 3);
  });

  it('rsa-4096 root signs an EC intermediate (the one slow key of the suite)', async () => {
    const root = await createRoot({ keyType: 'rsa-4096' });
    assert.match(opensslText(root.certPem), /Public-Key: \(4096 bit\)/);
    const inter = await createIntermediate({ root, cluster: 'big', keyType: 'ec-p256' });
    const { csrPem, keyPem } = await createCsr({ identity: identity('a', 'b') });
    const signed = await signWorkloadCsr({ ca: inter, csrPem, identity: identity('a', 'b') });
    assert.ok(keyPem.includes('PRIVATE KEY'));
    const r = opensslVerify(signed.rootBundlePem, signed.chainPem);
    assert.equal(r.status, 0, r.stderr);
  });
});

describe('leaf shape', () => {
  it('has the SPIFFE URI SAN (critical), EKU server+client, CA:false, no subject', async () => {
    const { c1 } = await meshCa();
    const w = await workload(c1, identity('bookinfo', 'ratings'));
    const text = opensslText(w.leafPem);
    assert.match(text, /Subject: *\n/);
    assert.match(text, /Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/bookinfo\/sa\/ratings\n/);
    assert.match(text, /Extended Key Usage: *\n\s+TLS Web Server Authentication, TLS Web Client Authentication/);
    assert.match(text, /Key Usage: critical\s+Digital Signature, Key Encipherment/);
    assert.match(text, /Basic Constraints: critical\s+CA:FALSE/);
    const leaf = parseCertPem(w.leafPem);
    assert.deepEqual(subjectAltNames(leaf), ['URI:spiffe://cluster.local/ns/bookinfo/sa/ratings']);
    assert.equal(basicConstraintsOf(leaf)?.ca, false);
    // chainPem = leaf + intermediate, no root.
    const chain = parseCertsPem(w.chainPem);
    assert.equal(chain.length, 2);
    assert.equal(firstPem(w.chainPem), w.leafPem);
    assert.equal(chain[1]!.pem, c1.certPem);
    assert.equal(new X509Certificate(w.leafPem).checkIssued(new X509Certificate(c1.certPem)), true);
  });
});
