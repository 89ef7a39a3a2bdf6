// A control plane on Istio's own cacerts (tools/certs Makefiles: O=Istio, no SPIFFE URI SAN):
// refused without a trust domain with a message that says how to give one, then run from the CLI
// with --trust-domain, issuing a workload certificate that openssl verifies against Istio's root.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { certServiceClientConstructor, requestCertificate } from '../../src/mesh/caclient.js';
import { createToken } from '../../src/mesh/token.js';
import { createCsr, loadCaDir, spiffeIdFromCert } from '../../src/pki/index.js';
import { runIsle } from '../helpers/cli.js';
import { opensslVerify } from '../pki/fixtures.js';
import { istioCacerts } from '../pki/istio-certs.js';
import { configDir, tempDir } from './helpers.js';
import { spawnIsle } from '../helpers/spawn.js';

const stops: (() => Promise<void>)[] = [];
after(async () => {
  for (const s of stops) await s();
});

describe("control plane on Istio's tools/certs cacerts", () => {
  it('without a trust domain (no flag, no MeshConfig): exit 2, naming the CA file and --trust-domain', async () => {
    const { dir } = istioCacerts('cluster1');
    const r = await runIsle(['control-plane', '--ca', dir, '--config', tempDir(), '--cluster', 'cluster1', '--listen', '127.0.0.1:0', '--debug-listen', '127.0.0.1:0']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /ca-cert\.pem: no trust domain.*--trust-domain/);
  });

  for (const how of ['--trust-domain', 'MeshConfig trustDomain'] as const) {
    it(`with ${how}: serves certificates that chain to the Istio root`, async () => {
      const { dir, rootPem } = istioCacerts('cluster1');
      const flags = how === '--trust-domain' ? ['--config', tempDir(), '--trust-domain', 'cluster.local'] : ['--config', configDir()];
      const cp = spawnIsle(['control-plane', '--ca', dir, ...flags, '--cluster', 'cluster1', '--listen', '127.0.0.1:0', '--debug-listen', '127.0.0.1:0']);
      stops.push(() => cp.stop());
      const line = await cp.waitForLine(/^xds\+ca mtls (\S+)/);
      const address = /^xds\+ca mtls (\S+)/.exec(line)![1]!;
      const ca = await loadCaDir(dir, { trustDomain: 'cluster.local' });
      const { token } = createToken({ ca, namespace: 'default', serviceAccount: 'sleep', cluster: 'cluster1', ttlSeconds: 600 });
      const Ctor = certServiceClientConstructor();
      const client = new Ctor(address, grpc.credentials.createSsl(Buffer.from(rootPem)), { 'grpc.ssl_target_name_override': 'isle-control-plane.cluster1' });
      stops.push(async () => client.close());
      const { csrPem } = await createCsr({ identity: { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'sleep' } });
      const chain = await requestCertificate(client, { csrPem, token });
      assert.equal(spiffeIdFromCert(chain[0]!), 'spiffe://cluster.local/ns/default/sa/sleep');
      const r = opensslVerify(rootPem, chain.slice(0, -1).join(''));
      assert.equal(r.status, 0, r.stderr);
    });
  }
});
