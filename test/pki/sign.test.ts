import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createCsr, createIntermediate, createRoot, decodePem, encodePem, signWorkloadCsr, spiffeIdFromCert } from '../../src/pki/index.js';
import { identity, meshCa, openssl, opensslVerify, pemFile, tempDir } from './fixtures.js';

const HOUR = 60 * 60 * 1000;

/** A CSR made by the real openssl, asking for whatever SAN the test wants. */
function opensslCsr(opts: { san?: string; keyAlg?: string[] } = {}): string {
  const d = tempDir();
  const args = ['req', '-new', '-nodes', ...(opts.keyAlg ?? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']), '-keyout', 'key.pem', '-subj', '/O=ignored/CN=whoever', '-out', 'csr.pem'];
  if (opts.san) args.push('-addext', `subjectAltName=${opts.san}`);
  const r = openssl(args, d);
  assert.equal(r.status, 0, r.stderr);
  return readFileSync(join(d, 'csr.pem'), 'utf8');
}

describe('signWorkloadCsr', () => {
  it('defaults to a 24 h TTL from now', async () => {
    const { c1 } = await meshCa();
    const now = new Date(Date.now() + 2 * HOUR);
    const id = identity('default', 'sleep');
    const { csrPem } = await createCsr({ identity: id });
    const signed = await signWorkloadCsr({ ca: c1, csrPem, identity: id, now });
    const nowSec = Math.floor(now.getTime() / 1000) * 1000;
    assert.equal(signed.notAfter.getTime(), nowSec + 24 * HOUR);
    assert.ok(signed.notBefore.getTime() < nowSec && signed.notBefore.getTime() >= nowSec - 5 * 60 * 1000);
    assert.equal(signed.spiffeId, 'spiffe://cluster.local/ns/default/sa/sleep');
    assert.equal(spiffeIdFromCert(signed.leafPem), signed.spiffeId);
    assert.match(signed.serialNumber, /^[0-9a-f]+$/i);
  });

  it("caps the TTL at the intermediate's expiry", async () => {
    const now = new Date();
    const root = await createRoot({ now });
    const inter = await createIntermediate({ root, cluster: 'short', days: 1, now });
    const id = identity('ns', 'sa');
    const { csrPem } = await createCsr({ identity: id });
    const later = new Date(now.getTime() + 20 * HOUR);
    const signed = await signWorkloadCsr({ ca: inter, csrPem, identity: id, ttlSeconds: 48 * 3600, now: later });
    assert.equal(signed.notAfter.getTime(), inter.notAfter.getTime());
    const r = opensslVerify(signed.rootBundlePem, signed.chainPem, undefined, later);
    assert.equal(r.status, 0, r.stderr);
    // An expired CA signs nothing.
    await assert.rejects(signWorkloadCsr({ ca: inter, csrPem, identity: id, now: new Date(now.getTime() + 25 * HOUR) }), { code: 'ERR_CERT_EXPIRED' });
  });

  it('accepts an openssl CSR without SAN request, taking only its key', async () => {
    const { c1 } = await meshCa();
    const signed = await signWorkloadCsr({ ca: c1, csrPem: opensslCsr(), identity: identity('a', 'b'), ttlSeconds: 3600 });
    assert.equal(spiffeIdFromCert(signed.leafPem), 'spiffe://cluster.local/ns/a/sa/b');
    // The CSR's subject is not copied: identity comes from the caller, never from the request.
    const r = openssl(['x509', '-noout', '-subject', '-in', pemFile(signed.leafPem)]);
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /whoever|ignored/);
  });

  it('accepts an openssl CSR requesting exactly the identity', async () => {
    const { c1 } = await meshCa();
    const csrPem = opensslCsr({ san: 'URI:spiffe://cluster.local/ns/a/sa/b' });
    const signed = await signWorkloadCsr({ ca: c1, csrPem, identity: identity('a', 'b') });
    assert.equal(signed.spiffeId, 'spiffe://cluster.local/ns/a/sa/b');
  });

  it('refuses a CSR with an extra SAN, another identity or another trust domain', async () => {
    const { c1 } = await meshCa();
    const id = identity('a', 'b');
    const cases = [
      'URI:spiffe://cluster.local/ns/a/sa/b,DNS:evil.example.com',
      'URI:spiffe://cluster.local/ns/a/sa/b,URI:spiffe://cluster.local/ns/kube-system/sa/admin',
      'URI:spiffe://cluster.local/ns/a/sa/other',
      'URI:spiffe://evil.td/ns/a/sa/b',
      'DNS:b.a.svc.cluster.local',
    ];
    for (const san of cases) {
      await assert.rejects(signWorkloadCsr({ ca: c1, csrPem: opensslCsr({ san }), identity: id }), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'ERR_IDENTITY', `${san}: ${e.message}`);
        assert.match(e.message, /may only request URI:spiffe:\/\/cluster\.local\/ns\/a\/sa\/b/);
        return true;
      });
    }
    // Our own createCsr for someone else, signed as `id`.
    const { csrPem } = await createCsr({ identity: identity('x', 'y') });
    await assert.rejects(signWorkloadCsr({ ca: c1, csrPem, identity: id }), { code: 'ERR_IDENTITY' });
    // An identity outside the CA's trust domain, even if the CSR agrees with it.
    const foreign = identity('a', 'b', 'other.td');
    const { csrPem: foreignCsr } = await createCsr({ identity: foreign });
    await assert.rejects(signWorkloadCsr({ ca: c1, csrPem: foreignCsr, identity: foreign }), /trust domain other\.td.*cluster\.local/);
  });

  it('refuses a CSR whose signature does not verify, garbage, and weak keys', async () => {
    const { c1 } = await meshCa();
    const id = identity('a', 'b');
    const { csrPem } = await createCsr({ identity: id });
    const [block] = decodePem(csrPem);
    const der = Buffer.from(block!.der);
    der[der.length - 1] ^= 0x01;
    await assert.rejects(signWorkloadCsr({ ca: c1, csrPem: encodePem('CERTIFICATE REQUEST', der), identity: id }), {
      code: 'ERR_CSR_INVALID',
      message: /signature does not verify/,
    });
    await assert.rejects(signWorkloadCsr({ ca: c1, csrPem: 'hello', identity: id }), { code: 'ERR_CSR_INVALID' });
    await assert.rejects(signWorkloadCsr({ ca: c1, csrPem: c1.certPem, identity: id }), { code: 'ERR_CSR_INVALID' });
    const weak = opensslCsr({ keyAlg: ['-newkey', 'rsa:1024'] });
    await assert.rejects(signWorkloadCsr({ ca: c1, csrPem: weak, identity: id }), { code: 'ERR_CSR_INVALID', message: /too small/ });
  });

  it('refuses bad TTLs and bad identities', async () => {
    const { c1 } = await meshCa();
    const id = identity('a', 'b');
    const { csrPem } = await createCsr({ identity: id });
    await assert.rejects(signWorkloadCsr({ ca: c1, csrPem, identity: id, ttlSeconds: 0 }), { code: 'ERR_USAGE' });
    await assert.rejects(signWorkloadCsr({ ca: c1, csrPem, identity: identity('a/../b', 'c') }), { code: 'ERR_IDENTITY' });
  });
});
