/**
 * The client side of isle-mux/1 against a scripted server (real TLS, real frames): a stream the
 * server refuses, or leaves above its GOAWAY, is sent once more on a fresh connection; a server
 * that breaks the framing fails the attempt as a reset (ADR 0138).
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { FLAG_END, FrameReader, FrameType, MUX_ALPN, prefaceFrame, INITIAL_WINDOW, ResetCode, textDataFrames, u32Frame } from '../../../src/proxy/mux/frame.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { bodyChunks } from '../../../src/proxy/upstream/attempt.js';
import { UpstreamPools } from '../../../src/proxy/upstream/pool.js';
import { cluster, endpoint, istioMtls, secretsFor, testPki, type Workload } from '../net/fixtures.js';

const IP = '127.0.62.20';
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
});

after(() => {
  server.close();
});

const ok = (s: tls.TLSSocket, id: number): void => void s.write(textDataFrames(FrameType.Response, id, 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n', Buffer.from('ok'), true));

async function send(): Promise<{ kind: string; body?: string; detail?: string }> {
  const pools = new UpstreamPools({ stats: new ProxyStats(), secrets: () => secretsFor(sleepW), mux: true });
  const c = cluster('scripted', { tls: istioMtls('sni', [helloW.spiffeId]) });
  const ep = endpoint(IP, (server.address() as AddressInfo).port);
  try {
    const o = await pools.send({ method: 'GET', path: '/x', headers: { host: 'x' }, body: null }, c, ep);
    if (o.kind !== 'response') return { kind: o.kind, ...('detail' in o ? { detail: o.detail } : {}) };
    const chunks: Buffer[] = [];
    for await (const b of bodyChunks(o.response)) chunks.push(b);
    return { kind: 'response', body: Buffer.concat(chunks).toString() };
  } finally {
    pools.close();
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
