/**
 * HTTP/2 and gRPC through two sidecars on real sockets (ADR 0080): a real @grpc/grpc-js client
 * dials the client sidecar's outbound listener with h2c (prior knowledge, `:authority` names the
 * service), the client sidecar speaks HTTP/2 over mTLS (ALPN h2, one multiplexed connection) to
 * the server sidecar's inbound listener, which speaks h2c to a real grpc-js server. Also plain
 * node:http2 (h2c) requests, an HTTP/1.1 client to an HTTP/2 upstream, and an HTTP/1-only
 * listener refusing the preface.
 */
import { h2Response } from '../../helpers/h2.js';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileTextFormat } from '../../../src/proxy/accesslog.js';
import { InboundListener } from '../../../src/proxy/listeners/inbound.js';
import { OutboundListener } from '../../../src/proxy/listeners/outbound.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { UpstreamPools } from '../../../src/proxy/upstream/pool.js';
import {
  cluster,
  emptyGraph,
  endpoint,
  endpoints,
  fetch,
  forward,
  hcm,
  inboundListener,
  istioMtls,
  listener,
  chain,
  retryPolicy,
  roundRobinPicker,
  route,
  routeConfig,
  secretsFor,
  testPki,
  vhost,
} from '../net/fixtures.js';

const CLIENT_IP = '127.80.0.9';
const SERVER_IP = '127.80.0.5';
const ECHO = 'echo.default.svc.cluster.local';
const ACCESS_LOG = join(mkdtempSync(join(tmpdir(), 'isle-h2-')), 'access.log');
const ECHO_CLUSTER = `outbound|50051||${ECHO}`;
const SNI = `outbound_.50051_._.${ECHO}`;

// A service without .proto files: messages are raw bytes.
const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const method = (name: string, responseStream = false) => ({
  path: `/test.Echo/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: raw.serialize,
  requestDeserialize: raw.deserialize,
  responseSerialize: raw.serialize,
  responseDeserialize: raw.deserialize,
});
const ECHO_SERVICE = { Say: method('Say'), Count: method('Count', true), Slow: method('Slow') };
const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');
type Unary = (req: Buffer, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => void;

let grpcServer: grpc.Server;
let appPort: number;
const calls = new Map<string, number>();
const slowCalls: { cancelled: boolean }[] = [];
const seenMetadata: grpc.Metadata[] = [];
const serverStats = new ProxyStats();
const clientStats = new ProxyStats();
const serverGraph = emptyGraph();
const clientGraph = emptyGraph();
let serverPools: UpstreamPools;
let clientPools: UpstreamPools;
let inbound: InboundListener;
let noAlpn: InboundListener;
let outbound: OutboundListener;
let http1Only: OutboundListener;
let proxyAddr: string;
let client: grpc.Client;

function say(c: grpc.Client, text: string, opts: grpc.CallOptions = {}, md = new grpc.Metadata()): Promise<{ err: grpc.ServiceError | null; value?: string }> {
  return new Promise((resolve) => (c as unknown as { Say: Unary }).Say(Buffer.from(text), md, opts, (err, r) => resolve({ err, value: r?.toString() })));
}

before(async () => {
  grpcServer = new grpc.Server();
  grpcServer.addService(ECHO_SERVICE, {
    Say: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const text = call.request.toString();
      seenMetadata.push(call.metadata);
      const n = (calls.get(text) ?? 0) + 1;
      calls.set(text, n);
      if (text.startsWith('unavailable-once') && n === 1) return cb({ code: grpc.status.UNAVAILABLE, details: 'try again' });
      if (text === 'not-found') return cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
      cb(null, Buffer.from(`hello ${text}`));
    },
    Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = Number(call.request.toString());
      for (let i = 1; i <= n; i++) call.write(Buffer.from(`item ${i}`));
      call.end();
    },
    Slow: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const rec = { cancelled: false };
      slowCalls.push(rec);
      const t = setTimeout(() => cb(null, Buffer.from('late')), 3000);
      call.on('cancelled', () => {
        rec.cancelled = true;
        clearTimeout(t);
      });
    },
  });
  appPort = await new Promise<number>((resolve, reject) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));

  const pki = await testPki();
  const [sleepW, echoW] = await Promise.all([pki.workload('default', 'sleep'), pki.workload('default', 'echo')]);

  // Server sidecar: STRICT mTLS inbound, offering h2 and http/1.1 as lds.ts generates; h2c to the app.
  serverGraph.secrets = secretsFor(echoW);
  serverGraph.clusters.set('inbound|50051||', cluster('inbound|50051||', { type: 'STATIC', service: ECHO, http2: true }));
  serverGraph.endpoints.set('inbound|50051||', endpoints('inbound|50051||', [endpoint('127.0.0.1', appPort)]));
  serverPools = new UpstreamPools({ stats: serverStats, secrets: () => serverGraph.secrets });
  const model = inboundListener(SERVER_IP, 0, 50051, 'STRICT');
  const mtlsChain = model.filterChains[0]!;
  const withAlpn = { ...model, filterChains: [{ ...mtlsChain, tls: { ...mtlsChain.tls!, alpnProtocols: ['h2', 'http/1.1'] } }] };
  inbound = new InboundListener(withAlpn, { config: () => serverGraph, stats: serverStats, pools: serverPools, pick: roundRobinPicker(), identity: { workload: 'echo-v1', namespace: 'default', serviceAccount: 'echo', labels: { app: 'echo' } }, log: (m) => console.error(m) });
  const inboundPort = (await inbound.listen()).port;
  // The same without ALPN in its TLS context (an older config): the client's h2 is prior knowledge over TLS.
  noAlpn = new InboundListener(model, { config: () => serverGraph, stats: serverStats, pools: serverPools, pick: roundRobinPicker(), log: (m) => console.error(m) });
  const noAlpnPort = (await noAlpn.listen()).port;

  // Client sidecar: the http2 cluster (a grpc- port) over mTLS.
  clientGraph.secrets = secretsFor(sleepW);
  const add = (name: string, http2Flag: boolean) => {
    clientGraph.clusters.set(name, cluster(name, { tls: istioMtls(SNI, [echoW.spiffeId]), http2: http2Flag }));
    clientGraph.endpoints.set(name, endpoints(name, [endpoint(SERVER_IP, inboundPort)]));
  };
  add(ECHO_CLUSTER, true);
  clientGraph.clusters.set('noalpn', cluster('noalpn', { tls: istioMtls(SNI, [echoW.spiffeId]), http2: true }));
  clientGraph.endpoints.set('noalpn', endpoints('noalpn', [endpoint(SERVER_IP, noAlpnPort)]));
  const grpcRetry = retryPolicy(['unavailable', 'cancelled', 'deadline-exceeded', 'resource-exhausted', 'internal'], 2);
  clientGraph.routes.set(
    '15001',
    routeConfig('15001', [
      vhost('noalpn', ['noalpn', 'noalpn:50051'], [route('/', forward('noalpn', { timeoutMs: 0 }))]),
      vhost('echo', [ECHO, `${ECHO}:50051`, 'echo', 'echo:50051'], [
        route('/test.Echo/Slow', forward(ECHO_CLUSTER, { timeoutMs: 0, grpcTimeoutHeaderMaxMs: 0 })),
        route('/capped/', forward(ECHO_CLUSTER, { timeoutMs: 100, grpcTimeoutHeaderMaxMs: 100, prefixRewrite: '/test.Echo/' })),
        route('/', forward(ECHO_CLUSTER, { timeoutMs: 0, retryPolicy: grpcRetry })),
      ]),
    ]),
  );
  clientPools = new UpstreamPools({ stats: clientStats, secrets: () => clientGraph.secrets });
  const deps = { config: () => clientGraph, stats: clientStats, pools: clientPools, pick: roundRobinPicker(), identity: { workload: 'sleep', namespace: 'default', serviceAccount: 'sleep', principal: sleepW.spiffeId, labels: { app: 'sleep' } }, log: (m: string) => console.error(m) };
  outbound = new OutboundListener(
    listener('virtualOutbound', CLIENT_IP, 0, [chain('', { kind: 'http', hcm: hcm({ kind: 'rds', routeConfigName: '15001' }, { allowAbsoluteUrl: true, accessLogs: [{ path: ACCESS_LOG, encoding: 'TEXT', format: compileTextFormat('%REQ(:PATH)% %PROTOCOL% %RESPONSE_CODE% %GRPC_STATUS% %GRPC_STATUS(NUMBER)% %TRAILER(GRPC-MESSAGE)% %RESPONSE_FLAGS%\n') }] }) })], { trafficDirection: 'OUTBOUND' }),
    deps,
  );
  const a = await outbound.listen();
  proxyAddr = `${a.address}:${a.port}`;
  http1Only = new OutboundListener(
    listener('http1only', CLIENT_IP, 0, [chain('', { kind: 'http', hcm: hcm({ kind: 'rds', routeConfigName: '15001' }, { allowAbsoluteUrl: true, codecType: 'HTTP1' }) })], { trafficDirection: 'OUTBOUND' }),
    deps,
  );
  await http1Only.listen();
  client = new EchoClient(proxyAddr, grpc.credentials.createInsecure(), { 'grpc.default_authority': `${ECHO}:50051` });
});

after(async () => {
  client?.close();
  await Promise.all([outbound.drain({ timeoutMs: 100 }), http1Only.drain({ timeoutMs: 100 }), inbound.drain({ timeoutMs: 100 }), noAlpn.drain({ timeoutMs: 100 })]);
  clientPools.close();
  serverPools.close();
  grpcServer.forceShutdown();
});

describe('gRPC through two sidecars (h2c → mTLS h2 → h2c)', () => {
  test('unary: the reply, the caller identity in XFCC, and one multiplexed upstream connection', async () => {
    const results = await Promise.all(['a', 'b', 'c', 'd'].map((t) => say(client, t)));
    assert.deepEqual(
      results.map((r) => [r.err?.message ?? null, r.value]),
      [
        [null, 'hello a'],
        [null, 'hello b'],
        [null, 'hello c'],
        [null, 'hello d'],
      ],
    );
    const md = seenMetadata.at(-1)!;
    assert.match(String(md.get('x-forwarded-client-cert')[0]), /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
    // Peer metadata is for the sidecars, never the app.
    assert.deepEqual(md.get('x-envoy-peer-metadata'), []);
    const pool = clientPools.snapshot().find((p) => p.cluster === ECHO_CLUSTER)!;
    assert.equal(pool.connections, 1, 'one HTTP/2 connection per endpoint, shared by concurrent calls');
    assert.equal(pool.tls, true);
  });

  test('server streaming: every message arrives, then OK from the trailers', async () => {
    const items: string[] = [];
    const status = await new Promise<grpc.StatusObject>((resolve, reject) => {
      const call = (client as unknown as { Count: (r: Buffer, md: grpc.Metadata) => grpc.ClientReadableStream<Buffer> }).Count(Buffer.from('50'), new grpc.Metadata());
      call.on('data', (b: Buffer) => items.push(b.toString()));
      call.on('status', resolve);
      call.on('error', reject);
    });
    assert.equal(status.code, grpc.status.OK);
    assert.equal(items.length, 50);
    assert.equal(items[49], 'item 50');
    await waitUntil(() => readFileSync(ACCESS_LOG, 'utf8').includes('/test.Echo/Count'));
    assert.match(readFileSync(ACCESS_LOG, 'utf8'), /^\/test\.Echo\/Count HTTP\/2 200 OK 0 OK -$/m, 'OK from the trailers');
  });

  test('an error status (trailers-only) reaches the client and both sidecars record grpc_response_status', async () => {
    const r = await say(client, 'not-found');
    assert.equal(r.err?.code, grpc.status.NOT_FOUND);
    assert.equal(r.err?.details, 'no such thing');
    const src = await clientStats.metrics();
    assert.match(src, /istio_requests_total\{reporter="source",[^}]*request_protocol="grpc",response_code="200",grpc_response_status="5",[^}]*\} 1/);
    assert.match(src, /istio_requests_total\{reporter="source",[^}]*request_protocol="grpc",response_code="200",grpc_response_status="0",[^}]*\} \d+/);
    await waitUntil(() => readFileSync(ACCESS_LOG, 'utf8').includes('NotFound'));
    assert.match(readFileSync(ACCESS_LOG, 'utf8'), /^\/test\.Echo\/Say HTTP\/2 200 NotFound 5 - -$/m, 'trailers-only: the status is in the headers, no trailers');
    const dst = await serverStats.metrics();
    assert.match(dst, /istio_requests_total\{reporter="destination",[^}]*request_protocol="grpc",response_code="200",grpc_response_status="5",[^}]*connection_security_policy="mutual_tls"\} 1/);
  });

  test('retryOn unavailable: a trailers-only UNAVAILABLE is retried and the client sees OK', async () => {
    const before = (await clientStats.metrics()).match(/envoy_cluster_upstream_rq_retry\{cluster_name="outbound\|50051\|\|echo\.default\.svc\.cluster\.local"\} (\d+)/)?.[1] ?? '0';
    const r = await say(client, 'unavailable-once-1');
    assert.equal(r.err, null);
    assert.equal(r.value, 'hello unavailable-once-1');
    assert.equal(calls.get('unavailable-once-1'), 2);
    const afterText = await clientStats.metrics();
    const now = afterText.match(/envoy_cluster_upstream_rq_retry\{cluster_name="outbound\|50051\|\|echo\.default\.svc\.cluster\.local"\} (\d+)/)?.[1];
    assert.equal(Number(now), Number(before) + 1);
  });

  test('grpc-timeout is the deadline: the sidecar ends the call with DEADLINE_EXCEEDED and cancels it upstream', async () => {
    // A raw HTTP/2 client with no deadline of its own: only the sidecar can end the call.
    const s = http2.connect(`http://${proxyAddr}`);
    try {
      const req = s.request({ ':method': 'POST', ':path': '/test.Echo/Slow', ':authority': `${ECHO}:50051`, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '200m' });
      req.end(Buffer.from([0, 0, 0, 0, 1, 0x78]));
      const { headers, trailers } = await h2Response(req);
      const status = trailers['grpc-status'] ?? headers['grpc-status'];
      assert.equal(status, '4', JSON.stringify({ headers, trailers }));
    await waitUntil(() => readFileSync(ACCESS_LOG, 'utf8').includes('UMSDR'));
    assert.match(readFileSync(ACCESS_LOG, 'utf8'), /^\/test\.Echo\/Slow HTTP\/2 200 DeadlineExceeded 4 - UMSDR$/m);
      assert.equal(headers[':status'], 200);
    } finally {
      s.close();
    }
    const rec = slowCalls.at(-1)!;
    await waitUntil(() => rec.cancelled);
    assert.match(await clientStats.metrics(), /istio_requests_total\{reporter="source",[^}]*grpc_response_status="4",response_flags="UMSDR"/);

    // And a grpc-js client with its own deadline sees DEADLINE_EXCEEDED.
    const slow = (client as unknown as { Slow: Unary }).Slow;
    const r = await new Promise<grpc.ServiceError | null>((resolve) => slow.call(client, Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 300 }, (e) => resolve(e)));
    assert.equal(r?.code, grpc.status.DEADLINE_EXCEEDED);
  });

  test('the route timeout caps grpc-timeout (max_stream_duration.grpc_timeout_header_max)', async () => {
    const s = http2.connect(`http://${proxyAddr}`);
    try {
      const req = s.request({ ':method': 'POST', ':path': '/capped/Slow', ':authority': `${ECHO}:50051`, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '30S' });
      req.end(Buffer.from([0, 0, 0, 0, 1, 0x78]));
      const t0 = Date.now();
      const { headers, trailers } = await h2Response(req);
      assert.equal(trailers['grpc-status'] ?? headers['grpc-status'], '4');
      assert.ok(Date.now() - t0 < 3000, 'ended by the 100 ms cap, not by the app');
    } finally {
      s.close();
    }
  });
});

describe('h2c and codec selection', () => {
  test('a plain node:http2 client (h2c prior knowledge) through both sidecars', async () => {
    const s = http2.connect(`http://${proxyAddr}`);
    try {
      const req = s.request({ ':method': 'POST', ':path': '/test.Echo/Say', ':authority': ECHO, 'content-type': 'application/grpc', te: 'trailers' });
      req.end(Buffer.concat([Buffer.from([0, 0, 0, 0, 3]), Buffer.from('h2c')]));
      const { headers, trailers, body } = await h2Response(req);
      assert.equal(headers[':status'], 200);
      assert.equal(trailers['grpc-status'], '0');
      assert.equal(body.subarray(5).toString(), 'hello h2c');
      assert.match(String(headers['x-envoy-upstream-service-time']), /^\d+$/);
    } finally {
      s.close();
    }
  });

  test('local replies over HTTP/2: unknown host 404, CONNECT 405; the connection carries on', async () => {
    const s = http2.connect(`http://${proxyAddr}`);
    try {
      const nf = await h2Response(s.request({ ':path': '/x', ':authority': 'nosuch.default.svc.cluster.local' }));
      assert.equal(nf.headers[':status'], 404);
      const connect = await h2Response(s.request({ ':method': 'CONNECT', ':authority': 'example.com:443' }, { endStream: false }));
      assert.equal(connect.headers[':status'], 405);
      // A field named __proto__ (an own key, as JSON makes it): refused, as over HTTP/1.1.
      const proto = await h2Response(s.request(JSON.parse(`{":path":"/x",":authority":"${ECHO}","__proto__":"x"}`) as http2.OutgoingHttpHeaders));
      assert.equal(proto.headers[':status'], 400);
      assert.equal(proto.body.toString(), 'header name __proto__ is not accepted\n');
      const ok = s.request({ ':method': 'POST', ':path': '/test.Echo/Say', ':authority': ECHO, 'content-type': 'application/grpc', te: 'trailers' });
      ok.end(Buffer.from([0, 0, 0, 0, 1, 0x7a]));
      assert.equal((await h2Response(ok)).trailers['grpc-status'], '0');
    } finally {
      s.close();
    }
  });

  test('an inbound TLS context without ALPN: the client sidecar speaks h2 as prior knowledge, the server sidecar finds the preface', async () => {
    const c = new EchoClient(proxyAddr, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'noalpn:50051' });
    try {
      const r = await say(c, 'no-alpn');
      assert.equal(r.err, null);
      assert.equal(r.value, 'hello no-alpn');
    } finally {
      c.close();
    }
  });

  test('an HTTP/1.1 client reaches the HTTP/2 upstream through the same filter chain', async () => {
    // Not a valid gRPC call, but a valid HTTP exchange: the grpc-js server answers it.
    const r = await fetch(`http://${ECHO}:50051/test.Echo/Say`, { proxy: { host: CLIENT_IP, port: Number(proxyAddr.split(':')[1]) }, method: 'POST', headers: { 'content-type': 'application/grpc', te: 'trailers' }, body: '\0\0\0\0\x02hi' });
    assert.equal(r.status, 200);
    assert.match(r.body, /hello hi/);
  });

  test('a listener with codec_type HTTP1 answers the HTTP/2 preface with a 400 that says why', async () => {
    const a = http1Only.address();
    const text = await new Promise<string>((resolve) => {
      const sock = net.connect(a.port, a.address, () => sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'));
      let out = '';
      sock.setEncoding('latin1').on('data', (d: string) => (out += d));
      sock.on('close', () => resolve(out));
    });
    assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*HTTP\/2 connection preface on an HTTP\/1\.1-only listener/);
  });
});

async function waitUntil(f: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
