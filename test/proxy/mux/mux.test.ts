/**
 * isle-mux/1 between two sidecars (ADR 0138), on real sockets with real mutual TLS: a client
 * sidecar's outbound listener → mTLS → a server sidecar's inbound listener → an app. Negotiation
 * both ways and the fallbacks, many streams on one connection, a per-stream timeout that leaves
 * its siblings alone, flow control with large bodies and a slow reader, and drain.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { InboundListener } from '../../../src/proxy/listeners/inbound.js';
import { OutboundListener } from '../../../src/proxy/listeners/outbound.js';
import type { ClusterModel } from '../../../src/proxy/model.js';
import { MUX_ALPN, muxFromEnv } from '../../../src/proxy/mux/frame.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { UpstreamPools } from '../../../src/proxy/upstream/pool.js';
import {
  cluster,
  emptyGraph,
  endpoint,
  endpoints,
  fetch,
  forward,
  inboundListener,
  istioMtls,
  outboundListener,
  retryPolicy,
  roundRobinPicker,
  route,
  routeConfig,
  secretsFor,
  testPki,
  vhost,
  type Workload,
} from '../net/fixtures.js';

const CLIENT_IP = '127.0.62.9';
const SERVER_IP = '127.0.62.5';
const NOMUX_IP = '127.0.62.6';
const DRAIN_IP = '127.0.62.7';
const PLAIN_IP = '127.0.62.8';
const RELAY_IP = '127.0.62.10';
const HELLO = 'helloworld.default.svc.cluster.local';
const SNI = `outbound_.5000_._.${HELLO}`;

let sleepW: Workload;
let helloW: Workload;
let app: http.Server;
let appPort: number;
let plainMtls: https.Server;
/** A TCP relay in front of the server sidecar: cutting its sockets breaks a mux connection. */
let relay: net.Server;
const relayed = new Set<net.Socket>();
const serverGraph = emptyGraph();
const clientGraph = emptyGraph();
const serverStats = new ProxyStats();
const clientStats = new ProxyStats();
let server: InboundListener;
let noMux: InboundListener;
let draining: InboundListener;
let outbound: OutboundListener;
let proxy: { host: string; port: number };
let serverPools: UpstreamPools;
let clientPools: UpstreamPools;
const hangs: http.ServerResponse[] = [];
const hangClosed: Promise<void>[] = [];
const arrived: string[] = [];

function big(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8)) & 0xff;
  return b;
}
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** The app: echo, slow, hang, big responses. */
function appHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = req.url ?? '';
  arrived.push(url);
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    if (url.includes('/hang')) {
      hangs.push(res);
      hangClosed.push(new Promise((r) => res.once('close', () => r())));
      return;
    }
    if (url.startsWith('/slow')) {
      setTimeout(() => res.writeHead(200, { 'x-slow': 'yes' }).end(`slow ${url}`), 150);
      return;
    }
    if (url.startsWith('/echo')) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-sha': sha(body) });
      res.end(body);
      return;
    }
    if (url.startsWith('/drip')) {
      // A small first write, then more: the head leaves with the first bytes while the
      // connection may be full of the other streams' data.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(Buffer.alloc(1000, 1));
      setImmediate(() => res.end(big(300_000)));
      return;
    }
    if (url.startsWith('/big')) {
      // No Content-Length: chunked from the app, 64 KiB writes.
      const all = big(Number(new URL(url, 'http://x').searchParams.get('n')));
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      for (let i = 0; i < all.length; i += 64 * 1024) res.write(all.subarray(i, i + 64 * 1024));
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ url, method: req.method, xfcc: req.headers['x-forwarded-client-cert'] ?? null, len: body.length }));
  });
}

function addCluster(c: ClusterModel, ip: string, port: number): void {
  clientGraph.clusters.set(c.name, c);
  clientGraph.endpoints.set(c.name, endpoints(c.name, [endpoint(ip, port)]));
}

function poolOf(name: string): { connections: number; mux?: { connections: number; http1Endpoints: number } } {
  const p = clientPools.snapshot().find((s) => s.cluster === name);
  assert.ok(p, `a pool for ${name}`);
  return p;
}

before(async () => {
  const pki = await testPki();
  [sleepW, helloW] = await Promise.all([pki.workload('default', 'sleep'), pki.workload('default', 'helloworld')]);
  app = http.createServer(appHandler);
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appPort = (app.address() as AddressInfo).port;

  // Server sidecars: mux on (the default), mux off, and one to drain.
  serverGraph.secrets = secretsFor(helloW);
  serverGraph.clusters.set('inbound|5000||', cluster('inbound|5000||', { type: 'STATIC', service: HELLO }));
  serverGraph.endpoints.set('inbound|5000||', endpoints('inbound|5000||', [endpoint('127.0.0.1', appPort)]));
  serverPools = new UpstreamPools({ stats: serverStats, secrets: () => serverGraph.secrets, mux: true });
  const deps = {
    config: () => serverGraph,
    stats: serverStats,
    pools: serverPools,
    pick: roundRobinPicker(),
    identity: { workload: 'helloworld-v1', namespace: 'default', serviceAccount: 'helloworld', cluster: 'cluster-2', labels: { app: 'helloworld', version: 'v1' } },
    log: (m: string) => console.error(m),
  };
  server = new InboundListener(inboundListener(SERVER_IP, 0, 5000, 'STRICT'), { ...deps, mux: true });
  noMux = new InboundListener(inboundListener(NOMUX_IP, 0, 5000, 'STRICT'), { ...deps, mux: false });
  draining = new InboundListener(inboundListener(DRAIN_IP, 0, 5000, 'STRICT'), { ...deps, mux: true });
  const [sp, np, dp] = await Promise.all([server.listen(), noMux.listen(), draining.listen()]);

  // A TLS server that is not a sidecar: node's https, HTTP/1.1 only, client certificate required.
  plainMtls = https.createServer({ cert: helloW.certChainPem, key: helloW.keyPem, ca: pki.rootPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const s = req.socket as tls.TLSSocket;
    res.end(JSON.stringify({ alpn: s.alpnProtocol, peer: s.getPeerCertificate().subjectaltname }));
  });
  await new Promise<void>((r) => plainMtls.listen(0, PLAIN_IP, r));

  relay = net.createServer((down) => {
    const up = net.connect({ host: SERVER_IP, port: sp.port });
    relayed.add(down).add(up);
    down.pipe(up).pipe(down);
    const cut = (): void => void (down.destroy(), up.destroy());
    down.on('error', cut).on('close', cut);
    up.on('error', cut).on('close', cut);
  });
  await new Promise<void>((r) => relay.listen(0, RELAY_IP, r));

  clientGraph.secrets = secretsFor(sleepW);
  const mtls = istioMtls(SNI, [helloW.spiffeId]);
  addCluster(cluster('hello', { tls: mtls }), SERVER_IP, sp.port);
  addCluster(cluster('nomux', { tls: mtls }), NOMUX_IP, np.port);
  addCluster(cluster('drain', { tls: mtls }), DRAIN_IP, dp.port);
  addCluster(cluster('plain-mtls', { tls: mtls }), PLAIN_IP, (plainMtls.address() as AddressInfo).port);
  addCluster(cluster('relay', { tls: mtls }), RELAY_IP, (relay.address() as AddressInfo).port);
  const d = (name: string) => [name, `${name}:80`];
  clientGraph.routes.set(
    '15001',
    routeConfig('15001', [
      vhost('hello', d('hello'), [route('/timeout', forward('hello', { timeoutMs: 200 })), route('/', forward('hello'))]),
      vhost('nomux', d('nomux'), [route('/', forward('nomux'))]),
      vhost('drain', d('drain'), [route('/', forward('drain'))]),
      vhost('plain', d('plain'), [route('/', forward('plain-mtls'))]),
      vhost('relay', d('relay'), [route('/retried', forward('relay', { retryPolicy: retryPolicy(['reset'], 1) })), route('/', forward('relay'))]),
    ]),
  );
  clientPools = new UpstreamPools({ stats: clientStats, secrets: () => clientGraph.secrets, mux: true });
  outbound = new OutboundListener(outboundListener(CLIENT_IP), {
    config: () => clientGraph,
    stats: clientStats,
    pools: clientPools,
    pick: roundRobinPicker(),
    identity: { workload: 'sleep', namespace: 'default', serviceAccount: 'sleep', principal: sleepW.spiffeId, cluster: 'cluster-1', labels: { app: 'sleep' }, nodeId: 'sidecar~127.0.62.9~sleep.default~default.svc.cluster.local' },
    log: (m: string) => console.error(m),
  });
  const a = await outbound.listen();
  proxy = { host: a.address, port: a.port };
});

after(async () => {
  for (const r of hangs) r.destroy();
  await Promise.all([outbound.drain({ timeoutMs: 100 }), server.drain({ timeoutMs: 100 }), noMux.drain({ timeoutMs: 100 }), draining.drain({ timeoutMs: 100 })]);
  clientPools.close();
  serverPools.close();
  plainMtls.closeAllConnections();
  for (const s of relayed) s.destroy();
  relay.close();
  await Promise.all([new Promise((r) => plainMtls.close(r)), new Promise((r) => (app.close(r), app.closeAllConnections()))]);
});

const via = (url: string, opts: Parameters<typeof fetch>[1] = {}) => fetch(url, { proxy, ...opts });

describe('isle-mux/1 between sidecars', () => {
  test('the switch: ISLE_PROXY_MUX=off (or 0, false) turns it off, anything else leaves it on', () => {
    assert.equal(muxFromEnv({}), true);
    assert.equal(muxFromEnv({ ISLE_PROXY_MUX: 'on' }), true);
    for (const v of ['off', 'OFF', '0', 'false', ' off ']) assert.equal(muxFromEnv({ ISLE_PROXY_MUX: v }), false, v);
  });

  test('Isle ↔ Isle negotiates isle-mux/1; identity, XFCC and stats come from the verified certificate', async () => {
    const r = await via('http://hello/who', { method: 'POST', body: 'abc' });
    assert.equal(r.status, 200);
    const b = JSON.parse(r.body) as { xfcc: string; len: number; method: string };
    assert.equal(b.method, 'POST');
    assert.equal(b.len, 3);
    assert.match(b.xfcc, /By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/helloworld;.*URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
    assert.deepEqual(poolOf('hello').mux, { connections: 1, http1Endpoints: 0 });
    const metrics = await serverStats.metrics();
    assert.match(metrics, /istio_requests_total\{reporter="destination",[^}]*source_principal="spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep"[^}]*request_protocol="http",response_code="200",[^}]*connection_security_policy="mutual_tls"\}/);
    // A HEAD answer keeps its head as over HTTP/1.1.
    const [h, h1] = await Promise.all([via('http://hello/who', { method: 'HEAD' }), via('http://nomux/who', { method: 'HEAD' })]);
    assert.equal(h.status, 200);
    assert.equal(h.headers['content-length'], h1.headers['content-length']);
    assert.equal(h.headers['transfer-encoding'], h1.headers['transfer-encoding']);
  });

  test('many concurrent requests share one connection', async () => {
    const before = poolOf('hello').connections;
    const rs = await Promise.all(Array.from({ length: 64 }, (_, i) => via(`http://hello/n/${i}`, { method: 'POST', body: 'x'.repeat(i * 100) })));
    rs.forEach((r, i) => {
      assert.equal(r.status, 200);
      const b = JSON.parse(r.body) as { url: string; len: number };
      assert.equal(b.url, `/n/${i}`);
      assert.equal(b.len, i * 100);
    });
    assert.equal(before, 1);
    assert.deepEqual(poolOf('hello').mux, { connections: 1, http1Endpoints: 0 });
    assert.match(await clientStats.metrics(), /envoy_cluster_upstream_cx_total\{cluster_name="hello"\} 1\n/);
  });

  test('many concurrent streamed responses: every byte arrives while the connection is full', async () => {
    const want = sha(Buffer.concat([Buffer.alloc(1000, 1), big(300_000)]));
    const rs = await Promise.all(Array.from({ length: 32 }, (_, i) => new Promise<string>((resolve, reject) => {
      const req = http.request({ host: proxy.host, port: proxy.port, path: `http://hello/drip/${i}`, headers: { host: 'hello' }, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(sha(Buffer.concat(chunks))));
      });
      req.on('error', reject);
      req.end();
    })));
    for (const r of rs) assert.equal(r, want);
  });

  test('a timed-out request resets only its stream: the app sees the cancel, siblings finish, the connection stays', async () => {
    const n = hangClosed.length;
    const [t, s1, s2] = await Promise.all([via('http://hello/timeout/hang'), via('http://hello/slow/1'), via('http://hello/slow/2')]);
    assert.equal(t.status, 504);
    assert.equal(s1.status, 200);
    assert.equal(s1.body, 'slow /slow/1');
    assert.equal(s2.body, 'slow /slow/2');
    // The reset travelled: the server sidecar gave up its request to the app.
    await hangClosed[n];
    const after = await via('http://hello/after-reset');
    assert.equal(after.status, 200);
    assert.match(await clientStats.metrics(), /envoy_cluster_upstream_cx_total\{cluster_name="hello"\} 1\n/);
  });

  test('flow control: large bodies both ways, and a paused reader does not hold up its siblings', async () => {
    const up = big(3 * 1024 * 1024 + 17);
    const e = await new Promise<{ status: number; body: Buffer; sha: string }>((resolve, reject) => {
      const req = http.request({ host: proxy.host, port: proxy.port, method: 'POST', path: 'http://hello/echo', headers: { host: 'hello' }, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), sha: String(res.headers['x-sha']) }));
      });
      req.on('error', reject);
      req.end(up);
    });
    assert.equal(e.status, 200);
    assert.equal(e.sha, sha(up), 'the app got the whole request body');
    assert.equal(sha(e.body), sha(up), 'and the response came back whole');

    // 4 MiB down to a reader that stops reading: far more than a stream's window (256 KiB).
    const n = 4 * 1024 * 1024;
    let got = 0;
    const chunks: Buffer[] = [];
    let res!: http.IncomingMessage;
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: proxy.host, port: proxy.port, path: `http://hello/big?n=${n}`, headers: { host: 'hello' }, agent: false }, (r) => {
        res = r;
        r.once('data', (c: Buffer) => {
          chunks.push(c);
          got += c.length;
          r.pause();
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
    // While it is paused, other streams on the same connection still flow.
    const siblings = await Promise.all([via('http://hello/sib/1'), via('http://hello/sib/2', { method: 'POST', body: 'y'.repeat(100_000) })]);
    assert.deepEqual(
      siblings.map((s) => s.status),
      [200, 200],
    );
    assert.ok(got < n, 'the paused download is not complete yet');
    const done = new Promise<void>((resolve) => res.on('end', resolve));
    res.on('data', (c: Buffer) => chunks.push(c));
    res.resume();
    await done;
    assert.equal(sha(Buffer.concat(chunks)), sha(big(n)));
    assert.deepEqual(poolOf('hello').mux, { connections: 1, http1Endpoints: 0 });
  });

  test('a broken connection fails only the attempts on it; the retry filter retries, new requests get a new connection', async () => {
    assert.equal((await via('http://relay/warm')).status, 200);
    assert.equal(poolOf('relay').mux?.connections, 1);
    const n = hangs.length;
    const plain = via('http://relay/hang/a');
    const retried = via('http://relay/retried/hang/b');
    while (hangs.length < n + 2) await new Promise((r) => setTimeout(r, 5));
    for (const s of relayed) s.destroy();
    const a = await plain;
    assert.equal(a.status, 503);
    assert.match(a.body, /reset reason: connection termination/);
    // The retry (on `reset`) went out on a new connection and reached the app again.
    while (hangs.length < n + 3) await new Promise((r) => setTimeout(r, 5));
    hangs[n + 2]!.writeHead(200).end('second try');
    const b = await retried;
    assert.equal(b.status, 200);
    assert.equal(b.body, 'second try');
    assert.equal((await via('http://relay/after-cut')).status, 200);
    assert.match(await clientStats.metrics(), /envoy_cluster_upstream_cx_total\{cluster_name="relay"\} 2\n/);
  });

  test('drain: in-flight streams finish, the connection then closes, new requests do not reach the drained listener', async () => {
    assert.equal((await via('http://drain/warm')).status, 200);
    assert.equal(poolOf('drain').mux?.connections, 1);
    const slow = via('http://drain/slow/in-flight');
    while (!arrived.includes('/slow/in-flight')) await new Promise((r) => setTimeout(r, 5));
    const result = await draining.drain({ timeoutMs: 3000 });
    const r = await slow;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'slow /slow/in-flight');
    assert.equal(result.clean, true);
    // GOAWAY took the connection out of the pool; the listener is closed, so a new one is refused.
    const refused = await via('http://drain/after');
    assert.equal(refused.status, 503);
    assert.equal(arrived.includes('/after'), false);
  });
});

describe('isle-mux/1 falls back to HTTP/1.1', () => {
  test('Isle client → a TLS server that does not speak it (node https): HTTP/1.1 on the same connection', async () => {
    const a = await via('http://plain/one');
    assert.equal(a.status, 200);
    const b = JSON.parse(a.body) as { alpn: string | false; peer: string };
    assert.notEqual(b.alpn, MUX_ALPN);
    assert.match(b.peer, /URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
    const again = await via('http://plain/two');
    assert.equal(again.status, 200);
    assert.deepEqual(poolOf('plain-mtls').mux, { connections: 0, http1Endpoints: 1 });
    // The connection opened for the offer is the one HTTP/1.1 then used: no second handshake.
    assert.match(await clientStats.metrics(), /envoy_cluster_upstream_cx_total\{cluster_name="plain-mtls"\} 1\n/);
  });

  test('Isle client → an Isle sidecar with mux turned off: HTTP/1.1', async () => {
    const r = await via('http://nomux/x');
    assert.equal(r.status, 200);
    assert.match((JSON.parse(r.body) as { xfcc: string }).xfcc, /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
    assert.deepEqual(poolOf('nomux').mux, { connections: 0, http1Endpoints: 1 });
  });

  const connect = async (ip: string, port: number, offer: string[] | undefined): Promise<tls.TLSSocket> => {
    const s = tls.connect({ host: ip, port, cert: sleepW.certChainPem, key: sleepW.keyPem, ca: helloW.rootPem, servername: SNI, checkServerIdentity: () => undefined, ...(offer ? { ALPNProtocols: offer } : {}) });
    await new Promise<void>((resolve, reject) => (s.once('secureConnect', resolve), s.once('error', reject)));
    return s;
  };

  for (const offer of [['http/1.1'], ['h2', 'http/1.1'], ['foo'], undefined]) {
    test(`a non-Isle client offering ${offer ? offer.join(', ') : 'no ALPN'} gets the choice a sidecar without mux makes`, async () => {
      const withMux = await connect(SERVER_IP, server.address().port, offer);
      const without = await connect(NOMUX_IP, noMux.address().port, offer);
      assert.equal(withMux.alpnProtocol, without.alpnProtocol);
      without.destroy();
      assert.notEqual(withMux.alpnProtocol, MUX_ALPN);
      if (withMux.alpnProtocol === 'h2') return void withMux.destroy();
      withMux.write(`GET /plain-client HTTP/1.1\r\nhost: ${HELLO}\r\nconnection: close\r\n\r\n`);
      const chunks: Buffer[] = [];
      withMux.on('data', (c: Buffer) => chunks.push(c));
      await new Promise((r) => withMux.once('close', r));
      const text = Buffer.concat(chunks).toString();
      assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(text, /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
    });
  }
});
