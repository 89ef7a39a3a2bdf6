/**
 * The client side of isle-mux/1 against a scripted server (real TLS, real frames): a stream the
 * server refuses, or leaves above its GOAWAY, is sent once more on a fresh connection; a server
 * that breaks the framing fails the attempt as a reset (ADR 0138).
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import type { Headers } from '../../../src/proxy/http1/head.js';
import { FLAG_END, FrameReader, FrameType, MAX_CONCURRENT_STREAMS, MUX_ALPN, prefaceFrame, INITIAL_WINDOW, ResetCode, textDataFrames, textFrame, u32Frame } from '../../../src/proxy/mux/frame.js';
import type { UpstreamRequest } from '../../../src/proxy/upstream/attempt.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { UpstreamPools } from '../../../src/proxy/upstream/pool.js';
import { cluster, endpoint, istioMtls, secretsFor, testPki, type Workload } from '../net/fixtures.js';

const IP = '127.0.62.20';
/** A TLS server that says isle-mux/1 in ALPN but speaks HTTP/1.1 (what an ALPN echo produced). */
const ECHO_IP = '127.0.65.21';
let echo: https.Server;
type Script = (socket: tls.TLSSocket, id: number, conn: number) => void;

let helloW: Workload;
let sleepW: Workload;
let server: tls.Server;
let script: Script = () => undefined;
let conns = 0;
const requests: Array<{ conn: number; id: number }> = [];

before(async () => {
  const pki = await testPki();
  [helloW, sleepW] = await Promise.all([pki.workload('default', 'helloworld'), pki.workload('default', 'sleep')]);
  server = tls.createServer({ cert: helloW.certChainPem, key: helloW.keyPem, ca: pki.rootPem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: [MUX_ALPN] }, (s) => {
    const conn = ++conns;
    s.write(prefaceFrame(INITIAL_WINDOW));
    const reader = new FrameReader({
      frame: (type, _flags, id) => {
        if (type === FrameType.Request) {
          requests.push({ conn, id });
          script(s, id, conn);
        }
        return undefined;
      },
    });
    s.on('data', (d: Buffer) => reader.feed(d));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, IP, r));
  echo = https.createServer({ cert: helloW.certChainPem, key: helloW.keyPem, ca: pki.rootPem, requestCert: true, rejectUnauthorized: true, ALPNCallback: ({ protocols }) => protocols[0] }, (_req, res) => void res.end('h1'));
  await new Promise<void>((r) => echo.listen(0, ECHO_IP, r));
});

after(() => {
  server.close();
  echo.closeAllConnections();
  echo.close();
});

const ok = (s: tls.TLSSocket, id: number): void => void s.write(textDataFrames(FrameType.Response, id, 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n', Buffer.from('ok'), true));

const newPools = (): UpstreamPools => new UpstreamPools({ stats: new ProxyStats(), secrets: () => secretsFor(sleepW), mux: true });
const scripted = (): ReturnType<typeof cluster> => cluster('scripted', { tls: istioMtls('sni', [helloW.spiffeId]) });
const GET: UpstreamRequest = { method: 'GET', path: '/x', headers: { host: 'x' }, body: null };

/** One request through `pools` (its own pools when not given); `then` runs right after `send`. */
async function send(opts: { pools?: UpstreamPools; req?: UpstreamRequest; ip?: string; then?: (p: UpstreamPools) => void } = {}): Promise<{ kind: string; body?: string; detail?: string; trailers?: Headers }> {
  const pools = opts.pools ?? newPools();
  const ep = endpoint(opts.ip ?? IP, ((opts.ip === ECHO_IP ? echo : server).address() as AddressInfo).port);
  try {
    const pending = pools.send(opts.req ?? GET, scripted(), ep);
    opts.then?.(pools);
    const o = await pending;
    if (o.kind !== 'response') return { kind: o.kind, ...('detail' in o ? { detail: o.detail } : {}) };
    const chunks: Buffer[] = [];
    return await new Promise((resolve) =>
      o.response.pipe({
        data: (b) => (chunks.push(b), true),
        end: (trailers) => resolve({ kind: 'response', body: Buffer.concat(chunks).toString(), ...(trailers ? { trailers } : {}) }),
        abort: (reason) => resolve({ kind: 'broken', detail: reason }),
      }),
    );
  } finally {
    if (!opts.pools) pools.close();
  }
}

test('a refused stream is sent once more on a fresh connection', async () => {
  requests.length = 0;
  script = (s, id, conn) => (conn === conns && requests.length === 1 ? void s.write(u32Frame(FrameType.Reset, id, ResetCode.Refused, 'busy')) : ok(s, id));
  assert.deepEqual(await send(), { kind: 'response', body: 'ok' });
  assert.equal(requests.length, 2);
  assert.notEqual(requests[0]!.conn, requests[1]!.conn, 'the second try used another connection');
});

test('a stream above the GOAWAY last id is sent again; one the server took is not', async () => {
  requests.length = 0;
  script = (s, id) => {
    if (requests.length === 1) {
      s.write(u32Frame(FrameType.GoAway, 0, Math.max(0, id - 2), 'going away'));
      s.end();
    } else ok(s, id);
  };
  assert.deepEqual(await send(), { kind: 'response', body: 'ok' });
  assert.equal(requests.length, 2);

  requests.length = 0;
  script = (s, id) => {
    // Took it (last id = this stream), then went away without answering: a reset, not replayed.
    s.write(u32Frame(FrameType.GoAway, 0, id, 'going away'));
    s.end();
  };
  const r = await send();
  assert.equal(r.kind, 'reset');
  assert.equal(requests.length, 1);
});

test('a refused stream is replayed only once; broken framing fails the attempt as a reset', async () => {
  requests.length = 0;
  script = (s, id) => void s.write(u32Frame(FrameType.Reset, id, ResetCode.Refused, 'busy'));
  const r = await send();
  assert.equal(r.kind, 'reset');
  assert.match(r.detail ?? '', /refused/);
  assert.equal(requests.length, 2);

  script = (s, id) => void s.write(Buffer.concat([u32Frame(FrameType.Data, id, 0), Buffer.from([0xff, 0xff, 0xff, 0xff, 2, FLAG_END, 0, 0, 0, 1])]));
  const bad = await send();
  assert.equal(bad.kind, 'reset');
  assert.match(bad.detail ?? '', /isle-mux/);
});

test('a truncated GOAWAY is a connection error: the stream fails once, nothing is replayed', { timeout: 10_000 }, async () => {
  requests.length = 0;
  // A GOAWAY with a 2-byte payload: no last stream id in it.
  script = (s) => void s.write(Buffer.from([0, 0, 0, 2, FrameType.GoAway, 0, 0, 0, 0, 0, 0, 0]));
  const r = await send();
  assert.equal(r.kind, 'reset');
  assert.match(r.detail ?? '', /malformed GOAWAY/);
  assert.equal(requests.length, 1, 'not replayed');
});

test('trailers over mux get the HTTP/1.1 rules: no framing or routing fields, at most 16 KiB', { timeout: 10_000 }, async () => {
  requests.length = 0;
  const chunked = (s: tls.TLSSocket, id: number, trailer: string): void =>
    void s.write(Buffer.concat([textDataFrames(FrameType.Response, id, 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n', Buffer.from('ok'), false), textFrame(FrameType.Trailers, FLAG_END, id, `${trailer}\r\n`)]));
  script = (s, id) => chunked(s, id, 'content-length: 99\r\nhost: evil\r\nx-checksum: abc\r\n');
  assert.deepEqual(await send(), { kind: 'response', body: 'ok', trailers: { 'x-checksum': 'abc' } });
  script = (s, id) => chunked(s, id, `x-big: ${'a'.repeat(17 * 1024)}\r\n`);
  const big = await send();
  assert.equal(big.kind, 'broken');
  assert.match(big.detail ?? '', /trailers too large/);
});

test('a request body that fails settles the attempt', { timeout: 10_000 }, async () => {
  requests.length = 0;
  const body = new PassThrough();
  script = () => body.destroy(new Error('downstream went away'));
  body.write('some');
  const r = await send({ req: { method: 'POST', path: '/up', headers: { host: 'x' }, body } });
  assert.equal(r.kind, 'reset');
  assert.match(r.detail ?? '', /request body failed/);
});

test('a connection still connecting is not idle: retiring the pool does not cut its waiting attempt', { timeout: 10_000 }, async () => {
  requests.length = 0;
  script = ok;
  // The cluster goes away while the first connection is in its handshake (the pool is retired).
  assert.deepEqual(await send({ then: (p) => p.retain(new Map()) }), { kind: 'response', body: 'ok' });
});

test('a server that says isle-mux/1 but does not speak it: the try fails, the endpoint takes HTTP/1.1 from then on', { timeout: 10_000 }, async () => {
  const pools = newPools();
  try {
    const first = await send({ pools, ip: ECHO_IP });
    assert.equal(first.kind, 'reset');
    assert.deepEqual(await send({ pools, ip: ECHO_IP }), { kind: 'response', body: 'h1' });
    assert.equal(pools.snapshot()[0]?.mux?.http1Endpoints, 1);
  } finally {
    pools.close();
  }
});

test(`above ${MAX_CONCURRENT_STREAMS} requests in flight to one endpoint the client opens another connection instead of being refused`, { timeout: 20_000 }, async () => {
  requests.length = 0;
  const n = MAX_CONCURRENT_STREAMS + 44;
  const held: Array<() => void> = [];
  // Nothing is answered until all have arrived: they are all in flight at once.
  script = (s, id) => {
    held.push(() => ok(s, id));
    if (held.length === n) for (const f of held) f();
  };
  const pools = newPools();
  try {
    const all = await Promise.all(Array.from({ length: n }, () => send({ pools })));
    assert.ok(all.every((r) => r.kind === 'response' && r.body === 'ok'), 'every request answered');
    const perConn = new Map<number, number>();
    for (const r of requests) perConn.set(r.conn, (perConn.get(r.conn) ?? 0) + 1);
    assert.equal(requests.length, n, 'nothing refused or replayed');
    assert.deepEqual([...perConn.values()].sort((a, b) => b - a), [MAX_CONCURRENT_STREAMS, n - MAX_CONCURRENT_STREAMS]);
  } finally {
    pools.close();
  }
});
