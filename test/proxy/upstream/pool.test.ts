import assert from 'node:assert/strict';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { Readable } from 'node:stream';
import type tls from 'node:tls';
import { after, before, test } from 'node:test';
import type { SecretModel } from '../../../src/proxy/model.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { UpstreamPools, type AttemptOutcome, type UpstreamResult } from '../../../src/proxy/upstream/pool.js';
import { cluster, deadPort, endpoint, foreignWorkload, istioMtls, secretsFor, startApp, testPki, type Pki, type TestApp, type Workload } from '../net/fixtures.js';

let pki: Pki;
let client: Workload;
let server: Workload;
let mtlsServer: https.Server;
let mtlsPort: number;
const seenPeers: string[] = [];

before(async () => {
  pki = await testPki();
  [client, server] = await Promise.all([pki.workload('default', 'sleep'), pki.workload('default', 'helloworld')]);
  mtlsServer = https.createServer({ cert: server.certChainPem, key: server.keyPem, ca: pki.rootPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const peer = (req.socket as tls.TLSSocket).getPeerCertificate();
    seenPeers.push(peer.subjectaltname ?? '');
    res.end(`hello ${(req.socket as tls.TLSSocket).servername}`);
  });
  mtlsServer.listen(0, '127.0.0.1');
  await once(mtlsServer, 'listening');
  mtlsPort = (mtlsServer.address() as AddressInfo).port;
});

after(() => {
  mtlsServer.close();
  mtlsServer.closeAllConnections();
});

async function body(o: AttemptOutcome): Promise<string> {
  assert.equal(o.kind, 'response', JSON.stringify(o.kind === 'response' ? o.status : o));
  if (o.kind !== 'response') return '';
  const chunks: Buffer[] = [];
  for await (const c of o.response) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

const GET = { method: 'GET', path: '/hello', headers: { host: 'helloworld:5000' }, body: null };
const SNI = 'outbound_.5000_._.helloworld.default.svc.cluster.local';

test('mTLS origination: SNI, client certificate, expected SAN; keep-alive reuses the connection', async () => {
  const stats = new ProxyStats();
  let secrets: ReadonlyMap<string, SecretModel> = secretsFor(client);
  const results: UpstreamResult[] = [];
  const pools = new UpstreamPools({ stats, secrets: () => secrets, onResult: (_c, _e, r) => results.push(r) });
  const c = cluster('outbound|5000||helloworld.default.svc.cluster.local', { tls: istioMtls(SNI, [server.spiffeId]) });
  const ep = endpoint('127.0.0.1', mtlsPort);
  assert.equal(await body(await pools.send(GET, c, ep)), `hello ${SNI}`);
  assert.equal(await body(await pools.send(GET, c, ep)), `hello ${SNI}`);
  assert.match(seenPeers.at(-1)!, /spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
  const text = await stats.metrics();
  assert.match(text, /envoy_cluster_upstream_cx_total\{cluster_name="outbound\|5000\|\|helloworld.default.svc.cluster.local"\} 1\n/);
  assert.match(text, /envoy_cluster_upstream_cx_active\{[^}]*\} 1\n/);
  assert.deepEqual(results, [{ kind: 'http', status: 200 }, { kind: 'http', status: 200 }]);

  // Rotation: a new client certificate is used for new connections; the old pool is retired.
  const rotated = await pki.workload('default', 'sleep-v2');
  secrets = secretsFor(rotated);
  assert.equal(await body(await pools.send(GET, c, ep)), `hello ${SNI}`);
  assert.match(seenPeers.at(-1)!, /sa\/sleep-v2/);
  assert.equal(pools.snapshot()[0]!.connections, 1);
  pools.close();
});

test('TLS session resumption: a new connection resumes, and the server still sees the client certificate', async () => {
  const stats = new ProxyStats();
  const reused: boolean[] = [];
  const onSecure = (t: tls.TLSSocket) => reused.push(t.isSessionReused());
  mtlsServer.on('secureConnection', onSecure);
  // Idle connections are swept after ~25 ms, so each request below opens a new one.
  const pools = new UpstreamPools({ stats, secrets: () => secretsFor(client), freeSocketTimeoutMs: 20 });
  const c = cluster('resume', { tls: istioMtls(SNI, [server.spiffeId]) });
  const ep = endpoint('127.0.0.1', mtlsPort);
  for (let i = 0; i < 3; i++) {
    assert.equal(await body(await pools.send(GET, c, ep)), `hello ${SNI}`);
    assert.match(seenPeers.at(-1)!, /spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
    await new Promise((r) => setTimeout(r, 120));
  }
  mtlsServer.off('secureConnection', onSecure);
  pools.close();
  assert.equal(reused.length, 3, 'three connections');
  assert.equal(reused[0], false);
  assert.ok(reused.slice(1).some((r) => r), `a later connection resumed (${reused.join(',')})`);
  assert.match(await stats.metrics(), /envoy_cluster_upstream_cx_total\{cluster_name="resume"\} 3/);
});

test('rotation does not cut a request in flight on the old connection', async () => {
  const stats = new ProxyStats();
  let secrets: ReadonlyMap<string, SecretModel> = secretsFor(client);
  const slow = https.createServer({ cert: server.certChainPem, key: server.keyPem, ca: pki.rootPem, requestCert: true }, (req, res) => {
    const who = (req.socket as tls.TLSSocket).getPeerCertificate().subjectaltname ?? '';
    res.write('part1 ');
    setTimeout(() => res.end(`end ${who}`), req.url === '/slow' ? 300 : 0);
  });
  slow.listen(0, '127.0.0.1');
  await once(slow, 'listening');
  const pools = new UpstreamPools({ stats, secrets: () => secrets });
  const c = cluster('c', { tls: istioMtls(SNI, []) });
  const ep = endpoint('127.0.0.1', (slow.address() as AddressInfo).port);
  const first = await pools.send({ ...GET, path: '/slow' }, c, ep);
  secrets = secretsFor(await pki.workload('default', 'rotated'));
  const second = await pools.send(GET, c, ep);
  const [b1, b2] = await Promise.all([body(first), body(second)]);
  assert.match(b1, /^part1 end .*sa\/sleep$/);
  assert.match(b2, /sa\/rotated$/);
  pools.close();
  slow.close();
  slow.closeAllConnections();
});

test('expected SAN mismatch and a foreign CA are connect failures (TLS), counted', async () => {
  const stats = new ProxyStats();
  const results: UpstreamResult[] = [];
  const pools = new UpstreamPools({ stats, secrets: () => secretsFor(client), onResult: (_c, _e, r) => results.push(r) });
  const ep = endpoint('127.0.0.1', mtlsPort);
  const wrongSan = cluster('wrong', { tls: istioMtls(SNI, ['spiffe://cluster.local/ns/default/sa/other']) });
  const o = await pools.send(GET, wrongSan, ep);
  assert.equal(o.kind, 'connect-failure');
  assert.match(o.kind === 'connect-failure' ? o.detail : '', /TLS error: .*does not match the expected SANs/);

  // The server presents a certificate from another root: the chain does not verify.
  const evil = await foreignWorkload();
  const evilServer = https.createServer({ cert: evil.certChainPem, key: evil.keyPem }, (_q, r) => r.end('no'));
  evilServer.listen(0, '127.0.0.1');
  await once(evilServer, 'listening');
  const o2 = await pools.send(GET, cluster('any', { tls: istioMtls(SNI, []) }), endpoint('127.0.0.1', (evilServer.address() as AddressInfo).port));
  assert.equal(o2.kind, 'connect-failure');
  assert.deepEqual(results, [{ kind: 'connect-failure' }, { kind: 'connect-failure' }]);
  assert.match(await stats.metrics(), /envoy_cluster_upstream_cx_connect_fail\{cluster_name="wrong"\} 1/);
  // A missing SDS secret is a connect failure too, not a crash.
  const none = new UpstreamPools({ stats, secrets: () => new Map() });
  const o3 = await none.send(GET, wrongSan, ep);
  assert.equal(o3.kind, 'connect-failure');
  pools.close();
  evilServer.close();
});

test('connect refused, reset before headers, per-try timeout, overflow, abort', async () => {
  const stats = new ProxyStats();
  const pools = new UpstreamPools({ stats, secrets: () => new Map() });
  const refused = await pools.send(GET, cluster('plain'), endpoint('127.0.0.1', await deadPort()));
  assert.equal(refused.kind, 'connect-failure');

  const resetter = net.createServer((s) => s.once('data', () => s.destroy()));
  resetter.listen(0, '127.0.0.1');
  await once(resetter, 'listening');
  const reset = await pools.send(GET, cluster('plain'), endpoint('127.0.0.1', (resetter.address() as AddressInfo).port));
  assert.equal(reset.kind, 'reset');

  const hang: TestApp = await startApp('hang', '127.0.0.1', () => true);
  const t0 = Date.now();
  const timeout = await pools.send({ ...GET, perTryTimeoutMs: 100 }, cluster('plain'), endpoint('127.0.0.1', hang.port));
  assert.equal(timeout.kind, 'timeout');
  assert.ok(Date.now() - t0 < 1000);

  const tiny = cluster('tiny', { circuitBreakers: { maxConnections: 1, maxPendingRequests: 0, maxRequests: 1, maxRetries: 3 } });
  const ac = new AbortController();
  const pending = pools.send({ ...GET, signal: ac.signal }, tiny, endpoint('127.0.0.1', hang.port));
  assert.equal((await pools.send(GET, tiny, endpoint('127.0.0.1', hang.port))).kind, 'overflow');
  ac.abort();
  assert.equal((await pending).kind, 'aborted');
  assert.equal(pools.snapshot().find((s) => s.cluster === 'tiny')!.inflight, 0);
  const text = await stats.metrics();
  assert.match(text, /envoy_cluster_upstream_rq_pending_overflow\{cluster_name="tiny"\} 1/);
  assert.match(text, /envoy_cluster_upstream_rq_per_try_timeout\{cluster_name="plain"\} 1/);
  pools.close();
  resetter.close();
  await hang.close();
});

test('plain HTTP keep-alive: a connection the app closed while idle is replaced transparently', async () => {
  const stats = new ProxyStats();
  const app = await startApp('ka');
  app.server.keepAliveTimeout = 50;
  const pools = new UpstreamPools({ stats, secrets: () => new Map(), freeSocketTimeoutMs: 10_000 });
  const c = cluster('ka');
  const ep = endpoint('127.0.0.1', app.port);
  for (let i = 0; i < 3; i++) {
    const o = await pools.send({ method: 'POST', path: '/p', headers: { host: 'ka', 'content-length': '2' }, body: Buffer.from('hi') }, c, ep);
    assert.match(await body(o), /"body":"hi"/);
    await new Promise((r) => setTimeout(r, i === 1 ? 120 : 0));
  }
  pools.close();
  await app.close();
});

test('a Content-Length never goes out with a body of another length (no second request behind it)', async () => {
  // A raw server that records every byte: what an app behind the pool would parse.
  let seen = Buffer.alloc(0);
  const raw = net.createServer((s) => {
    s.on('data', (d: Buffer) => {
      seen = Buffer.concat([seen, d]);
      if (seen.includes('\r\n\r\n')) s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.65.20', r));
  const pools = new UpstreamPools({ stats: new ProxyStats(), secrets: () => new Map() });
  const ep = endpoint('127.0.65.20', (raw.address() as AddressInfo).port);
  const c = cluster('raw', { type: 'STATIC' });
  const smuggled = 'GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n';
  try {
    // A streamed body longer than its declared Content-Length: the extra bytes never leave.
    const o = await pools.send({ method: 'POST', path: '/a', headers: { host: 'x', 'content-length': '0' }, body: Readable.from([Buffer.from(smuggled)]) }, c, ep);
    if (o.kind === 'response') await body(o);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(!seen.includes('/smuggled'), seen.toString());
    // A buffered body: the Content-Length sent is the body's.
    seen = Buffer.alloc(0);
    await body(await pools.send({ method: 'POST', path: '/b', headers: { host: 'x', 'content-length': '0' }, body: Buffer.from(smuggled) }, c, ep));
    assert.match(seen.toString('latin1'), new RegExp(`content-length: ${smuggled.length}\\r\\n`));
    assert.doesNotMatch(seen.toString('latin1'), /content-length: 0/);
  } finally {
    pools.close();
    raw.close();
  }
});
