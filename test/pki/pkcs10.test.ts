import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { parseCsr } from '../../src/pki/csr.js';
import { createCsrNative } from '../../src/pki/pkcs10.js';

const identity = { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'sleep' };

for (const keyType of ['ec-p256', 'rsa-2048'] as const) {
  test(`native CSR (${keyType}): the CA side parses it, the self-signature verifies, the SPIFFE id is a critical URI SAN`, async () => {
    const { csrPem, keyPem } = createCsrNative({ identity, keyType });
    assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----/);
    const parsed = await parseCsr(csrPem);
    assert.deepEqual(parsed.requestedSans, ['URI:spiffe://cluster.local/ns/default/sa/sleep']);
    const text = execFileSync('openssl', ['req', '-noout', '-verify', '-text'], { input: csrPem, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    assert.match(text, /X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
  });
}
