// The certificate service over real gRPC and real TLS on 127.0.0.1: the client verifies the
// control plane's certificate against the mesh root, certificates are checked with openssl.
import assert from 'node:assert/strict';
import { sign, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { addCertService, createCertService, type IssuedEvent, type RefusedEvent } from '../../src/controlplane/certservice.js';
import { certServiceClientConstructor, requestCertificate } from '../../src/mesh/caclient.js';
import { assertPlaintextAddress, grpcServerCredentials, issueServerCert, type ServerCert } from '../../src/controlplane/servercert.js';
import { createToken } from '../../src/mesh/token.js';
import { createCsr, spiffeIdFromCert, type IssuingCa, type WorkloadIdentity } from '../../src/pki/index.js';
import { identity, meshCa, openssl, opensslVerify, tempDir, workload } from '../pki/fixtures.js';

const SLEEP = identity('demo', 'sleep');
const SLEEP_ID = 'spiffe://cluster.local/ns/demo/sa/sleep';
const CP_ID = 'spiffe://cluster.local/ns/istio-system/sa/isle-control-plane';

interface Plane {
  server: grpc.Server;
  port: number;
  serverCert: ServerCert;
  issued: IssuedEvent[];
  refused: RefusedEvent[];
}

const servers: grpc.Server[] = [];
const clients: grpc.Client[] = [];
after(() => {
  for (const c of clients) c.close();
  for (const s of servers) s.forceShutdown();
});

async function startPlane(ca: IssuingCa, cluster: string, opts: { requireClientCert?: boolean; now?: () => Date } = {}): Promise<Plane> {
  const serverCert = await issueServerCert({ ca, cluster, listenAddresses: ['127.0.0.1'] });
  const issued: IssuedEvent[] = [];
  const refused: RefusedEvent[] = [];
  const svc = createCertService({ ca, cluster, trustDomain: ca.trustDomain, now: opts.now, onIssued: (e) => issued.push(e), onRefused: (e) => refused.push(e) });
  const server = new grpc.Server();
  servers.push(server);
  addCertService(server, svc);
  const creds = grpcServerCredentials({ serverCert, rootBundle: ca.rootBundlePem, requireClientCert: opts.requireClientCert ?? false });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
  return { server, port, serverCert, issued, refused };
}

interface ClientOpts {
  rootPem: string;
  /** Client certificate for renewal: key and leaf+intermediate chain. */
  cert?: { keyPem: string; chainPem: string };
  /** Verify the server by this DNS name (default) or by its SPIFFE ID. */
  expect?: { dns: string } | { spiffe: string };
}

function client(port: number, o: ClientOpts): grpc.Client {
  const expect = o.expect ?? { dns: 'isle-control-plane.cluster-1' };
  const checkServerIdentity =
    'spiffe' in expect
      ? (_host: string, cert: PeerCertificate) => {
          const id = spiffeIdFromCert(cert);
          return id === expect.spiffe ? undefined : new Error(`server is ${id ?? 'anonymous'}, expected ${expect.spiffe}`);
        }
      : undefined;
  const creds = grpc.credentials.createSsl(
    Buffer.from(o.rootPem),
    o.cert ? Buffer.from(o.cert.keyPem) : null,
    o.cert ? Buffer.from(o.cert.chainPem) : null,
    checkServerIdentity ? { checkServerIdentity } : {},
  );
  const Ctor = certServiceClientConstructor();
  // The address is an IP; the name checked against the certificate (and sent as SNI) is the override.
  const c = new Ctor(`127.0.0.1:${port}`, creds, { 'grpc.ssl_target_name_override': 'dns' in expect ? expect.dns : 'isle-control-plane' });
  clients.push(c);
  return c;
}

async function csrFor(id: WorkloadIdentity) {
  return createCsr({ identity: id });
}

async function refusal(p: Promise<unknown>, code: grpc.status, details: RegExp): Promise<grpc.ServiceError> {
  const e = await p.then(
    () => assert.fail('expected the call to be refused'),
    (err: grpc.ServiceError) => err,
  );
  assert.equal(e.code, code, `status ${grpc.status[e.code]} (${e.details}), expected ${grpc.status[code]}`);
  assert.match(e.details, details);
  return e;
}

/** A CSR asking for the token's SPIFFE ID plus a DNS name, made with the real openssl. */
function opensslCsr(sans: string): string {
  const d = tempDir();
  const r = openssl(['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', 'key.pem', '-subj', '/O=demo', '-addext', `subjectAltName=${sans}`, '-out', 'req.pem'], d);
  assert.equal(r.status, 0, r.stderr);
  return openssl(['req', '-in', 'req.pem'], d).stdout;
}

describe('certificate service over gRPC + TLS', { concurrency: true }, () => {
  let plane: Plane;
  let rootPem: string;
  let c1: IssuingCa;
  const token = (id: WorkloadIdentity = SLEEP, o: { ca?: IssuingCa; cluster?: string; now?: Date; ttlSeconds?: number } = {}) =>
    createToken({ ca: o.ca ?? c1, namespace: id.namespace, serviceAccount: id.serviceAccount, cluster: o.cluster ?? 'cluster-1', now: o.now, ttlSeconds: o.ttlSeconds }).token;

  before(async () => {
    const m = await meshCa();
    c1 = m.c1;
    rootPem = m.root.certPem;
    plane = await startPlane(c1, 'cluster-1');
  });

  it('server certificate: DNS, IP and SPIFFE SANs, issued by the intermediate, verifies with openssl', () => {
    const sc = plane.serverCert;
    const x = new X509Certificate(sc.certPem);
    const sans = x.subjectAltName ?? '';
    for (const n of ['DNS:isle-control-plane', 'DNS:isle-control-plane.cluster-1', 'DNS:localhost', 'IP Address:127.0.0.1', `URI:${CP_ID}`]) {
      assert.ok(sans.split(', ').includes(n), `${n} in ${sans}`);
    }
    assert.equal(x.ca, false);
    assert.ok(x.checkIssued(new X509Certificate(c1.certPem)));
    const v = opensslVerify(rootPem, sc.chainPem);
    assert.equal(v.status, 0, v.stdout + v.stderr);
    assert.ok(!sc.chainPem.includes(rootPem.trim()), 'the root is not part of the presented chain');
  });

  it('good CSR + token → leaf with the token’s identity, intermediate, root last; openssl verifies; TTL ≤ 24 h', async () => {
    const { csrPem } = await csrFor(SLEEP);
    const before = plane.issued.length;
    const chain = await requestCertificate(client(plane.port, { rootPem }), { csrPem, token: token() });
    assert.equal(chain.length, 3);
    assert.equal(spiffeIdFromCert(chain[0]!), SLEEP_ID);
    assert.equal(chain[1], c1.certPem.endsWith('\n') ? c1.certPem : `${c1.certPem}\n`);
    assert.equal(chain[2]!.trim(), rootPem.trim());
    const v = opensslVerify(chain[2]!, chain.slice(0, 2).join(''));
    assert.equal(v.status, 0, v.stdout + v.stderr);
    const leaf = new X509Certificate(chain[0]!);
    const lifetime = Date.parse(leaf.validTo) - Date.now();
    assert.ok(lifetime <= 24 * 3600 * 1000 && lifetime > 23 * 3600 * 1000, `lifetime ${lifetime} ms`);
    const ev = plane.issued.slice(before).find((e) => e.serialNumber.toLowerCase() === leaf.serialNumber.toLowerCase());
    assert.ok(ev, 'onIssued reported the certificate');
    assert.equal(ev.via, 'token');
    assert.equal(ev.spiffeId, SLEEP_ID);
    assert.match(ev.jti!, /^[A-Za-z0-9_-]+$/);
  });

  it('the server is verified by its SPIFFE ID too, and a client expecting another name refuses it', async () => {
    const { csrPem } = await csrFor(SLEEP);
    const chain = await requestCertificate(client(plane.port, { rootPem, expect: { spiffe: CP_ID } }), { csrPem, token: token() });
    assert.equal(spiffeIdFromCert(chain[0]!), SLEEP_ID);
    await refusal(requestCertificate(client(plane.port, { rootPem, expect: { dns: 'istiod.istio-system.svc' } }), { csrPem, token: token(), deadlineMs: 3000 }), grpc.status.UNAVAILABLE, /./);
    const m = await meshCa();
    // A client that trusts another root never talks to this control plane.
    await refusal(requestCertificate(client(plane.port, { rootPem: m.foreignRoot.certPem }), { csrPem, token: token(), deadlineMs: 3000 }), grpc.status.UNAVAILABLE, /./);
  });

  it('validity_duration: honoured when shorter, capped at 24 h when longer', async () => {
    const { csrPem } = await csrFor(SLEEP);
    const c = client(plane.port, { rootPem });
    const hour = new X509Certificate((await requestCertificate(c, { csrPem, token: token(), validitySeconds: 3600 }))[0]!);
    const h = Date.parse(hour.validTo) - Date.now();
    assert.ok(h <= 3600 * 1000 && h > 3500 * 1000, `${h}`);
    const week = new X509Certificate((await requestCertificate(c, { csrPem, token: token(), validitySeconds: 7 * 86400 }))[0]!);
    assert.ok(Date.parse(week.validTo) - Date.now() <= 24 * 3600 * 1000);
  });

  it('refuses a CSR for another identity than the token’s (PERMISSION_DENIED)', async () => {
    const { csrPem } = await csrFor(identity('istio-system', 'admin'));
    await refusal(
      requestCertificate(client(plane.port, { rootPem }), { csrPem, token: token() }),
      grpc.status.PERMISSION_DENIED,
      /CSR must request exactly URI:spiffe:\/\/cluster.local\/ns\/demo\/sa\/sleep \(what the token grants\); it requests URI:spiffe:\/\/cluster.local\/ns\/istio-system\/sa\/admin/,
    );
  });

  it('refuses a CSR with extra SANs (PERMISSION_DENIED)', async () => {
    const csrPem = opensslCsr(`URI:${SLEEP_ID},DNS:evil.example.com`);
    await refusal(requestCertificate(client(plane.port, { rootPem }), { csrPem, token: token() }), grpc.status.PERMISSION_DENIED, /it requests URI:spiffe:\/\/cluster.local\/ns\/demo\/sa\/sleep, DNS:evil.example.com/);
  });

  it('refuses an expired token (UNAUTHENTICATED)', async () => {
    const { csrPem } = await csrFor(SLEEP);
    const old = token(SLEEP, { now: new Date(Date.now() - 3 * 3600 * 1000), ttlSeconds: 3600 });
    await refusal(requestCertificate(client(plane.port, { rootPem }), { csrPem, token: old }), grpc.status.UNAUTHENTICATED, /token expired at/);
  });

  it('refuses forged tokens: another cluster’s CA, a look-alike CA, an altered payload, alg none (UNAUTHENTICATED)', async () => {
    const m = await meshCa();
    const { csrPem } = await csrFor(SLEEP);
    const c = client(plane.port, { rootPem });
    await refusal(requestCertificate(c, { csrPem, token: token(SLEEP, { ca: m.c2, cluster: 'cluster-2' }) }), grpc.status.UNAUTHENTICATED, /signature does not verify with cluster cluster-1's CA.*forged/);
    await refusal(requestCertificate(c, { csrPem, token: token(SLEEP, { ca: m.foreignCa }) }), grpc.status.UNAUTHENTICATED, /forged or altered/);
    const [h, p, s] = token().split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    payload.sub = 'spiffe://cluster.local/ns/istio-system/sa/admin';
    const altered = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
    await refusal(requestCertificate(c, { csrPem, token: altered }), grpc.status.UNAUTHENTICATED, /forged or altered/);
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`;
    await refusal(requestCertificate(c, { csrPem, token: none }), grpc.status.UNAUTHENTICATED, /alg "none"\) are never accepted/);
  });

  it('refuses an authentic token for another cluster (PERMISSION_DENIED)', async () => {
    const { csrPem } = await csrFor(SLEEP);
    // Signed with this cluster's own key, so only the cluster claim is wrong.
    const [h, p] = token().split('.');
    const claims = { ...(JSON.parse(Buffer.from(p!, 'base64url').toString()) as object), cluster: 'cluster-2', iss: 'isle://cluster-2' };
    const input = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    const resigned = `${input}.${sign('sha256', Buffer.from(input), { key: c1.keyPem, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    await refusal(requestCertificate(client(plane.port, { rootPem }), { csrPem, token: resigned }), grpc.status.PERMISSION_DENIED, /token is for cluster cluster-2, this control plane is cluster cluster-1/);
  });

  it('a service is refused a CA of another cluster or trust domain at construction', async () => {
    const m = await meshCa();
    assert.throws(() => createCertService({ ca: m.c2, cluster: 'cluster-1', trustDomain: 'cluster.local' }), /cluster cluster-1 is served with cluster cluster-2's intermediate/);
    assert.throws(() => createCertService({ ca: m.c1, cluster: 'cluster-1', trustDomain: 'other.td' }), /trust domain other.td differs/);
  });

  it('refuses a missing token, a malformed authorization value, a garbage CSR', async () => {
    const { csrPem } = await csrFor(SLEEP);
    const c = client(plane.port, { rootPem });
    await refusal(requestCertificate(c, { csrPem }), grpc.status.UNAUTHENTICATED, /no credential: send "authorization: Bearer <token>"/);
    const md = new grpc.Metadata();
    md.set('authorization', `Basic ${token()}`);
    const raw = new Promise((resolve, reject) =>
      (c as unknown as { CreateCertificate: (r: object, m: grpc.Metadata, cb: (e: Error | null, r?: unknown) => void) => void }).CreateCertificate({ csr: csrPem }, md, (e, r) => (e ? reject(e) : resolve(r))),
    );
    await refusal(raw, grpc.status.UNAUTHENTICATED, /must be "Bearer <token>"/);
    await refusal(requestCertificate(c, { csrPem: 'hello', token: token() }), grpc.status.INVALID_ARGUMENT, /CSR is not a valid PKCS#10 request/);
    await refusal(requestCertificate(c, { csrPem: '', token: token() }), grpc.status.INVALID_ARGUMENT, /csr is empty/);
    // A CSR whose self-signature fails: the requester does not hold the key.
    const broken = csrPem.replace(/(-----BEGIN CERTIFICATE REQUEST-----\n)([\s\S]*?)(\n-----END)/, (_m, a: string, body: string, z: string) => {
      const der = Buffer.from(body.replace(/\s/g, ''), 'base64');
      der[der.length - 5] ^= 1;
      return a + der.toString('base64').replace(/.{64}/g, '$&\n').trim() + z;
    });
    await refusal(requestCertificate(c, { csrPem: broken, token: token() }), grpc.status.INVALID_ARGUMENT, /CSR/);
    assert.ok(plane.refused.some((r) => r.reason === 'no-credential'));
    assert.ok(plane.refused.every((r) => !/eyJ/.test(r.message)), 'refusals never carry a token');
  });

  it('renewal: a valid workload certificate renews the same identity, never another', async () => {
    const { csrPem } = await csrFor(SLEEP);
    const key = await csrFor(SLEEP);
    // First certificate via the token, exactly as a proxy bootstraps.
    const first = await requestCertificate(client(plane.port, { rootPem }), { csrPem: key.csrPem, token: token() });
    const mtls = client(plane.port, { rootPem, cert: { keyPem: key.keyPem, chainPem: first.slice(0, 2).join('') } });
    const renewed = await requestCertificate(mtls, { csrPem });
    assert.equal(spiffeIdFromCert(renewed[0]!), SLEEP_ID);
    assert.notEqual(new X509Certificate(renewed[0]!).serialNumber, new X509Certificate(first[0]!).serialNumber);
    assert.ok(plane.issued.some((e) => e.via === 'certificate' && e.spiffeId === SLEEP_ID));
    const other = await csrFor(identity('demo', 'httpbin'));
    await refusal(requestCertificate(mtls, { csrPem: other.csrPem }), grpc.status.PERMISSION_DENIED, /exactly URI:spiffe:\/\/cluster.local\/ns\/demo\/sa\/sleep \(what the client certificate grants\); it requests .*\/sa\/httpbin/);
  });

  it('renewal: a certificate from a foreign root is not a credential; a sibling cluster’s (shared root) renews only where it was issued', async () => {
    const m = await meshCa();
    const { csrPem } = await csrFor(SLEEP);
    const foreign = await workload(m.foreignCa, SLEEP);
    await refusal(requestCertificate(client(plane.port, { rootPem, cert: foreign }), { csrPem }), grpc.status.UNAUTHENTICATED, /no credential/);
    // It verifies (same root), but this service did not issue it, so it knows no bootstrap token behind it.
    const sibling = await workload(m.c2, SLEEP);
    await refusal(requestCertificate(client(plane.port, { rootPem, cert: sibling }), { csrPem }), grpc.status.PERMISSION_DENIED, /was not issued by this certificate service .*new token/);
  });

  it('renewal: a client certificate that has expired by the service clock is refused', async () => {
    const m = await meshCa();
    const later = await startPlane(m.c1, 'cluster-1', { now: () => new Date(Date.now() + 2 * 86400 * 1000) });
    const w = await workload(m.c1, SLEEP);
    const { csrPem } = await csrFor(SLEEP);
    await refusal(requestCertificate(client(later.port, { rootPem, cert: w }), { csrPem }), grpc.status.UNAUTHENTICATED, /client certificate refused: not valid at/);
  });

  it('requireClientCert: true refuses a caller without a certificate at the handshake', async () => {
    const m = await meshCa();
    const strict = await startPlane(m.c1, 'cluster-1', { requireClientCert: true });
    const { csrPem } = await csrFor(SLEEP);
    await refusal(requestCertificate(client(strict.port, { rootPem }), { csrPem, token: token(), deadlineMs: 3000 }), grpc.status.UNAVAILABLE, /./);
    // With a certificate the handshake passes and the service answers (refusing a certificate it did not issue).
    const w = await workload(m.c1, SLEEP);
    await refusal(requestCertificate(client(strict.port, { rootPem, cert: w }), { csrPem }), grpc.status.PERMISSION_DENIED, /not issued by this certificate service/);
  });

  it('plaintext xDS is loopback only', () => {
    for (const ok of ['127.0.0.1', '127.1.0.5', '::1', '[::1]', 'localhost']) assert.equal(assertPlaintextAddress(ok), ok);
    for (const bad of ['0.0.0.0', '::', '10.0.0.1', 'isle-control-plane']) assert.throws(() => assertPlaintextAddress(bad), /only listen on loopback/);
  });
});

