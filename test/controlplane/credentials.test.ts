/** Gateway credentials from `<config dir>/credentials/<ns>/<name>/` (ADR 0060). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialStore } from '../../src/controlplane/credentials.js';
import { realTimers } from '../../src/mesh/timers.js';

const CERT = '-----BEGIN CERTIFICATE-----\nTUlJ\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN EC PRIVATE KEY-----\nTUlJ\n-----END EC PRIVATE KEY-----\n';

test('credentials: Kubernetes secret key names as files; a bad file keeps the last good and names the file', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'isle-cred-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const d = join(dir, 'istio-system', 'hello');
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'tls.crt'), CERT);
  writeFileSync(join(d, 'tls.key'), KEY);
  const g = join(dir, 'istio-system', 'generic');
  mkdirSync(g, { recursive: true });
  writeFileSync(join(g, 'cert'), CERT);
  writeFileSync(join(g, 'key'), KEY);
  writeFileSync(join(g, 'cacert'), CERT);

  const store = new CredentialStore({ dir, timers: realTimers });
  assert.deepEqual([...store.get().keys()], ['istio-system/generic', 'istio-system/hello']);
  assert.equal(store.get().get('istio-system/generic')?.caPem, CERT);
  assert.equal(store.get().get('istio-system/hello')?.caPem, undefined);
  assert.equal(store.scan(), false, 'nothing moved');

  writeFileSync(join(d, 'tls.key'), 'not a key at all');
  assert.equal(store.scan(), true);
  assert.equal(store.get().get('istio-system/hello')?.keyPem, KEY, 'last good kept');
  const why = store.problems().get('istio-system/hello') ?? '';
  assert.match(why, /tls\.key: not a PEM private key/);
  assert.doesNotMatch(why, /not a key at all/, 'file content never in the message');

  rmSync(g, { recursive: true });
  assert.equal(store.scan(), true);
  assert.deepEqual([...store.get().keys()], ['istio-system/hello']);
});
