// CA directories made the way Istio's tools/certs Makefiles make them (openssl, O=Istio, an
// intermediate with only a DNS SAN and L=<cluster>, no SPIFFE URI): Isle takes the trust domain
// from the caller (MeshConfig trustDomain / --trust-domain) and signs workloads that openssl
// verifies against Istio's root. Keys are RSA 2048 instead of the Makefiles' 4096 only to keep
// the test fast; nothing else differs.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { createCsr, loadCaDir, signWorkloadCsr } from '../../src/pki/index.js';
import { runIsle } from '../helpers/cli.js';
import { opensslVerify, tempDir } from './fixtures.js';
import { istioCacerts } from './istio-certs.js';

describe("Istio's own cacerts (tools/certs Makefiles)", () => {
  let made: { dir: string; rootPem: string };
  before(() => {
    made = istioCacerts();
  });

  it('without a trust domain: refused with a message that says how to give one', async () => {
    await assert.rejects(loadCaDir(made.dir), (e: Error) => /no trust domain/.test(e.message) && /--trust-domain|MeshConfig trustDomain/.test(e.message));
  });

  it('with the trust domain given: loads, keeps the cluster from L=, and signs workloads openssl verifies', async () => {
    const ca = await loadCaDir(made.dir, { trustDomain: 'cluster.local' });
    assert.equal(ca.trustDomain, 'cluster.local');
    assert.equal(ca.cluster, 'cluster1');
    const identity = { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'sleep' };
    const { csrPem } = await createCsr({ identity });
    const signed = await signWorkloadCsr({ ca, csrPem, identity });
    const r = opensslVerify(made.rootPem, signed.chainPem);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(signed.spiffeId, 'spiffe://cluster.local/ns/default/sa/sleep');
  });

  it('from the CLI: `isle ca inspect` and `isle ca workload` take --trust-domain', async () => {
    const bad = await runIsle(['ca', 'inspect', made.dir]);
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.match(bad.stdout + bad.stderr, /--trust-domain/);
    const good = await runIsle(['ca', 'inspect', made.dir, '--trust-domain', 'cluster.local']);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /trust domain cluster\.local, cluster cluster1/);
    const out = join(tempDir(), 'sleep');
    const w = await runIsle(['ca', 'workload', '--ca', made.dir, '--trust-domain', 'cluster.local', '--namespace', 'default', '--service-account', 'sleep', '--out', out]);
    assert.equal(w.code, 0, w.stdout + w.stderr);
    const chain = readFileSync(join(out, 'cert-chain.pem'), 'utf8');
    const r = opensslVerify(made.rootPem, chain);
    assert.equal(r.status, 0, r.stderr);
  });
});
