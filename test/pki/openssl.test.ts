// Acceptance: a third party (openssl 3) agrees with Isle's chains.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { identity, meshCa, opensslVerify, workload } from './fixtures.js';

describe('openssl verify', () => {
  it('accepts workload certs of cluster-1 and cluster-2 under one root', async () => {
    const { root, c1, c2 } = await meshCa();
    for (const ca of [c1, c2]) {
      const w = await workload(ca, identity('sample', 'helloworld'));
      assert.equal(w.rootBundlePem, root.certPem);
      const r = opensslVerify(root.certPem, w.chainPem);
      assert.equal(r.status, 0, `${ca.cluster}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /leaf\.pem: OK/);
    }
  });

  it('refuses a leaf of a foreign root against the first root', async () => {
    const { root, foreignCa } = await meshCa();
    const w = await workload(foreignCa, identity('sample', 'helloworld'));
    const r = opensslVerify(root.certPem, w.chainPem);
    assert.notEqual(r.status, 0);
    assert.match(r.stdout + r.stderr, /unable to get local issuer certificate|certificate signature failure/);
  });

  it("refuses cluster-2's leaf with cluster-1's intermediate only", async () => {
    const { root, c1, c2 } = await meshCa();
    const w = await workload(c2, identity('a', 'b'));
    const r = opensslVerify(root.certPem, c1.chainPem, w.leafPem);
    assert.notEqual(r.status, 0);
  });
});
