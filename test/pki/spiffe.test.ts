import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  buildSpiffeId,
  parseSpiffeId,
  parseSubjectAltName,
  parseTrustDomainId,
  spiffeIdFromCert,
  trustDomainId,
  validateTrustDomain,
} from '../../src/pki/index.js';
import { identity, meshCa, workload } from './fixtures.js';

describe('SPIFFE IDs', () => {
  it('builds and parses the Istio workload form', () => {
    const id = buildSpiffeId(identity('bookinfo', 'reviews'));
    assert.equal(id, 'spiffe://cluster.local/ns/bookinfo/sa/reviews');
    assert.deepEqual(parseSpiffeId(id), identity('bookinfo', 'reviews'));
    assert.equal(trustDomainId('example.org'), 'spiffe://example.org');
    assert.equal(parseTrustDomainId('spiffe://example.org'), 'example.org');
    assert.equal(parseTrustDomainId('spiffe://example.org/ns/a/sa/b'), undefined);
  });

  it('refuses malformed IDs and parts with ERR_IDENTITY', () => {
    for (const bad of [
      'spiffe://cluster.local/ns/a/sa/b/extra',
      'spiffe://cluster.local/ns/a',
      'https://cluster.local/ns/a/sa/b',
      'spiffe://Cluster.Local/ns/a/sa/b',
      'spiffe://cluster.local/ns/../sa/b',
      'spiffe://cluster.local/ns/a%2F/sa/b',
      'spiffe://cluster.local:8080/ns/a/sa/b',
      '',
    ]) {
      assert.throws(() => parseSpiffeId(bad), { code: 'ERR_IDENTITY' }, bad);
    }
    assert.throws(() => buildSpiffeId(identity('a/b', 'c')), { code: 'ERR_IDENTITY' });
    assert.throws(() => buildSpiffeId(identity('a', '')), { code: 'ERR_IDENTITY' });
    assert.throws(() => validateTrustDomain('has space'), { code: 'ERR_IDENTITY' });
    assert.throws(() => validateTrustDomain('UPPER.case'), { code: 'ERR_IDENTITY' });
  });

  it("splits Node's subjectaltname, including JSON-quoted values", () => {
    assert.deepEqual(parseSubjectAltName('URI:spiffe://td/ns/a/sa/b, DNS:example.com'), [
      { type: 'URI', value: 'spiffe://td/ns/a/sa/b' },
      { type: 'DNS', value: 'example.com' },
    ]);
    // A name containing ", URI:" must not turn into a second entry.
    assert.deepEqual(parseSubjectAltName('DNS:"evil.com, URI:spiffe://td/ns/x/sa/y", DNS:ok'), [
      { type: 'DNS', value: 'evil.com, URI:spiffe://td/ns/x/sa/y' },
      { type: 'DNS', value: 'ok' },
    ]);
    assert.equal(spiffeIdFromCert({ subjectaltname: 'DNS:"evil.com, URI:spiffe://td/ns/x/sa/y"' }), undefined);
  });

  it('reads the ID from a PEM, a node X509Certificate and a PeerCertificate-like object', async () => {
    const { c1 } = await meshCa();
    const w = await workload(c1, identity('ns1', 'sa1'));
    assert.equal(spiffeIdFromCert(w.leafPem), 'spiffe://cluster.local/ns/ns1/sa/sa1');
    assert.equal(spiffeIdFromCert(new X509Certificate(w.leafPem)), 'spiffe://cluster.local/ns/ns1/sa/sa1');
    assert.equal(spiffeIdFromCert({ subjectaltname: 'URI:spiffe://cluster.local/ns/ns1/sa/sa1' }), 'spiffe://cluster.local/ns/ns1/sa/sa1');
    assert.equal(spiffeIdFromCert('URI:spiffe://a/ns/b/sa/c'), 'spiffe://a/ns/b/sa/c');
    assert.equal(spiffeIdFromCert({}), undefined);
    assert.throws(() => spiffeIdFromCert('URI:spiffe://a/ns/b/sa/c, URI:spiffe://a/ns/b/sa/d'), { code: 'ERR_IDENTITY' });
  });
});
