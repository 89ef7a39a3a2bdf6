/**
 * Bounded credentials (issue #11 §3) over real gRPC and real TLS: single-use tokens (persisted in
 * the state directory, so a restarted service still refuses them), --reusable N, CSRs that must
 * carry exactly the token's SPIFFE id, renewal only while the identity has a registration source,
 * and never past the maximum identity lifetime.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { addCertService, createCertService, type CertServiceOptions } from '../../src/controlplane/certservice.js';
import { grpcServerCredentials, issueServerCert } from '../../src/controlplane/servercert.js';
import { certServiceClientConstructor, requestCertificate } from '../../src/mesh/caclient.js';
import { FileStateStore } from '../../src/mesh/state.js';
import { createToken } from '../../src/mesh/token.js';
import { createCsr, type IssuingCa } from '../../src/pki/index.js';
import { identity, meshCa, openssl, tempDir } from '../pki/fixtures.js';

const SLEEP = identity('demo', 'sleep');
const servers: grpc.Server[] = [];
const clients: grpc.Client[] = [];
after(() => {
  for (const c of clients) c.close();
  for (const s of servers) s.forceShutdown();
});

async function serve(ca: IssuingCa, opts: Partial<CertServiceOptions> = {}): Promise<number> {
  const serverCert = await issueServerCert({ ca, cluster: 'cluster-1', listenAddresses: ['127.0.0.1'] });
  const server = new grpc.Server();
  servers.push(server);
  addCertService(server, createCertService({ ca, cluster: 'cluster-1', trustDomain: ca.trustDomain, ...opts }));
  const creds = grpcServerCredentials({ serverCert, rootBundle: ca.rootBundlePem, requireClientCert: false });
  return new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
}

function client(port: number, rootPem: string, cert?: { keyPem: string; chainPem: string }): grpc.Client {
  const creds = grpc.credentials.createSsl(Buffer.from(rootPem), cert ? Buffer.from(cert.keyPem) : null, cert ? Buffer.from(cert.chainPem) : null);
  const Ctor = certServiceClientConstructor();
  const c = new Ctor(`127.0.0.1:${port}`, creds, { 'grpc.ssl_target_name_override': 'isle-control-plane.cluster-1' });
  clients.push(c);
  return c;
}

async function refused(p: Promise<unknown>, code: grpc.status, details: RegExp): Promise<void> {
  const e = await p.then(
    () => assert.fail('expected a refusal'),
    (err: grpc.ServiceError) => err,
  );
  assert.equal(e.code, code, `${grpc.status[e.code]}: ${e.details}`);
  assert.match(e.details, details);
}

describe('bounded credentials', () => {
  it('a token mints one certificate; a reused token is refused, also by a restarted service on the same state directory', async () => {
    const { c1, root } = await meshCa();
    const dir = tempDir();
    const port = await serve(c1, { state: new FileStateStore(dir) });
    const token = createToken({ ca: c1, namespace: 'demo', serviceAccount: 'sleep', cluster: 'cluster-1' }).token;
    const { csrPem } = await createCsr({ identity: SLEEP });
    assert.equal((await requestCertificate(client(port, root.certPem), { csrPem, token })).length, 3);
    await refused(requestCertificate(client(port, root.certPem), { csrPem, token }), grpc.status.UNAUTHENTICATED, /token \S+ was already used \(tokens are single-use/);
    const restarted = await serve(c1, { state: new FileStateStore(dir) });
    await refused(requestCertificate(client(restarted, root.certPem), { csrPem, token }), grpc.status.UNAUTHENTICATED, /already used/);
  });

  it('--reusable 2: two certificates, then refused', async () => {
    const { c1, root } = await meshCa();
    const port = await serve(c1);
    const token = createToken({ ca: c1, namespace: 'demo', serviceAccount: 'sleep', cluster: 'cluster-1', uses: 2 }).token;
    const { csrPem } = await createCsr({ identity: SLEEP });
    await requestCertificate(client(port, root.certPem), { csrPem, token });
    await requestCertificate(client(port, root.certPem), { csrPem, token });
    await refused(requestCertificate(client(port, root.certPem), { csrPem, token }), grpc.status.UNAUTHENTICATED, /already used 2 times \(its limit\)/);
  });

  it('a CSR without SANs is refused with the reason, and does not use up the token', async () => {
    const { c1, root } = await meshCa();
    const port = await serve(c1);
    const token = createToken({ ca: c1, namespace: 'demo', serviceAccount: 'sleep', cluster: 'cluster-1' }).token;
    const d = tempDir();
    const r = openssl(['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', 'k.pem', '-subj', '/O=demo', '-out', 'req.pem'], d);
    assert.equal(r.status, 0, r.stderr);
    const noSan = openssl(['req', '-in', 'req.pem'], d).stdout;
    await refused(requestCertificate(client(port, root.certPem), { csrPem: noSan, token }), grpc.status.PERMISSION_DENIED, /CSR must request exactly URI:spiffe:\/\/cluster\.local\/ns\/demo\/sa\/sleep .*it requests no SAN/);
    const { csrPem } = await createCsr({ identity: SLEEP });
    assert.equal((await requestCertificate(client(port, root.certPem), { csrPem, token })).length, 3);
  });

  it('renewal needs a registration source: deleting the WorkloadGroup/Entry revokes it', async () => {
    const { c1, root } = await meshCa();
    let allowed = true;
    const port = await serve(c1, { identityAllowed: (ns, sa) => allowed && ns === 'demo' && sa === 'sleep' });
    const key = await createCsr({ identity: SLEEP });
    const token = createToken({ ca: c1, namespace: 'demo', serviceAccount: 'sleep', cluster: 'cluster-1' }).token;
    const first = await requestCertificate(client(port, root.certPem), { csrPem: key.csrPem, token });
    const mtls = client(port, root.certPem, { keyPem: key.keyPem, chainPem: first.slice(0, 2).join('') });
    assert.equal((await requestCertificate(mtls, { csrPem: key.csrPem })).length, 3, 'renews while allowed');
    allowed = false;
    await refused(requestCertificate(mtls, { csrPem: key.csrPem }), grpc.status.PERMISSION_DENIED, /no WorkloadGroup or WorkloadEntry in namespace demo any more \(revoked\)/);
  });

  it('an over-age identity cannot renew; certificates end with the identity lifetime', async () => {
    const { c1, root } = await meshCa();
    let lifetimeMs = 3600_000;
    const port = await serve(c1, { maxIdentityLifetimeMs: () => lifetimeMs });
    const key = await createCsr({ identity: SLEEP });
    const created = createToken({ ca: c1, namespace: 'demo', serviceAccount: 'sleep', cluster: 'cluster-1' });
    const first = await requestCertificate(client(port, root.certPem), { csrPem: key.csrPem, token: created.token });
    const end = (created.claims.iat + 3600) * 1000;
    assert.ok(Date.parse(new X509Certificate(first[0]!).validTo) <= end, 'capped at bootstrap + lifetime, not 24 h');
    const mtls = client(port, root.certPem, { keyPem: key.keyPem, chainPem: first.slice(0, 2).join('') });
    const renewed = await requestCertificate(mtls, { csrPem: key.csrPem });
    assert.ok(Date.parse(new X509Certificate(renewed[0]!).validTo) <= end, 'a renewal does not extend the identity');
    // The MeshConfig's lifetime is lowered below this identity's age (counted from the token's iat,
    // whole seconds, so it is ≥ 0 ms old): the next renewal is refused.
    lifetimeMs = 0;
    await refused(requestCertificate(mtls, { csrPem: key.csrPem }), grpc.status.PERMISSION_DENIED, /maximum identity lifetime ended on .*a new bootstrap token is required/);
  });
});
