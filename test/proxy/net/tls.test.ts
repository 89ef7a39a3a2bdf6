import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { SecretModel, UpstreamTlsModel } from '../../../src/proxy/model.js';
import { cachedUpstreamTlsSettings, upstreamTlsSettings } from '../../../src/proxy/net/tls.js';
import { istioMtls, secretsFor, testPki } from './fixtures.js';

const SNI = 'outbound_.5000_._.helloworld.default.svc.cluster.local';

test('upstream TLS settings are memoized per (cluster TLS, secrets snapshot) and follow rotation', async () => {
  const pki = await testPki();
  const t = istioMtls(SNI, []);
  const s1 = secretsFor(await pki.workload('default', 'sleep'));
  const a = cachedUpstreamTlsSettings(t, s1);
  assert.equal(cachedUpstreamTlsSettings(t, s1), a, 'same snapshot: the same settings object');
  assert.equal(a.id, upstreamTlsSettings(t, s1).id);
  // A new snapshot with the same material keeps the id (and so the pool); a rotated one changes it.
  assert.equal(cachedUpstreamTlsSettings(t, new Map(s1)).id, a.id);
  const rotated = cachedUpstreamTlsSettings(t, secretsFor(await pki.workload('default', 'sleep')));
  assert.notEqual(rotated.id, a.id);
});

test('upstream TLS material read from files is not memoized: a rewritten file is picked up', async () => {
  const pki = await testPki();
  const w1 = await pki.workload('default', 'one');
  const w2 = await pki.workload('default', 'two');
  const dir = mkdtempSync(join(tmpdir(), 'isle-tls-'));
  try {
    const put = (w: typeof w1) => {
      writeFileSync(join(dir, 'cert.pem'), w.certChainPem);
      writeFileSync(join(dir, 'key.pem'), w.keyPem);
    };
    put(w1);
    const t: UpstreamTlsModel = {
      sni: SNI,
      certificates: [{ kind: 'inline', certificate: { certificateChain: { kind: 'file', path: join(dir, 'cert.pem') }, privateKey: { kind: 'file', path: join(dir, 'key.pem') } } }],
      validation: { kind: 'inline', validation: { trustedCa: { kind: 'inline', data: w1.rootPem }, matchSans: [] } },
      expectedSans: [],
      alpnProtocols: [],
    };
    const secrets = new Map<string, SecretModel>();
    const a = cachedUpstreamTlsSettings(t, secrets);
    put(w2);
    assert.notEqual(cachedUpstreamTlsSettings(t, secrets).id, a.id);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
