/**
 * A hostile (or broken) client sidecar against a real inbound listener serving isle-mux/1 (ADR
 * 0138, review of issue 12): real mTLS, frames written by hand. A REQUEST that declares
 * `Content-Length: 0` and then sends DATA must not reach the app as a second request; a response
 * queued behind the client's window must still be delivered after the request body ends; a
 * PREFACE with an absurd window is a connection error.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { InboundListener } from '../../../src/proxy/listeners/inbound.js';
import { FLAG_END, FrameReader, FrameType, INITIAL_WINDOW, MUX_ALPN, prefaceFrame, ResetCode, textFrame, u32Frame } from '../../../src/proxy/mux/frame.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { UpstreamPools } from '../../../src/proxy/upstream/pool.js';
import { alpnSelector } from '../../../src/proxy/net/tls.js';
import { cluster, emptyGraph, endpoint, endpoints, inboundListener, ISTIO_DOWNSTREAM_MTLS, roundRobinPicker, secretsFor, testPki, type Workload } from '../net/fixtures.js';

const SERVER_IP = '127.0.65.5';
const APP_IP = '127.0.65.6';
/** A chain with TLS but no client certificate required (one-way TLS): never mux. */
const ONEWAY_IP = '127.0.65.7';
const HELLO = 'helloworld.default.svc.cluster.local';
const SNI = `outbound_.5000_._.${HELLO}`;
const EARLY_BYTES = 4096;

interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

let sleepW: Workload;
let helloW: Workload;
let rootPem: string;
let app: http.Server;
let server: InboundListener;
let serverPort: number;
let oneWay: InboundListener;
let oneWayPort: number;
let pools: UpstreamPools;
const arrived: string[] = [];

/** A client sidecar written by hand: every frame it receives, and a way to wait for one. */
class Peer {
  readonly frames: Frame[] = [];
  closed = false;
  private wake: (() => void) | undefined;

  private constructor(readonly socket: tls.TLSSocket) {
    const reader = new FrameReader({
      frame: (type, flags, id, payload) => {
        this.frames.push({ type, flags, id, payload: Buffer.from(payload) });
        this.wake?.();
        return undefined;
      },
    });
    socket.on('data', (d: Buffer) => reader.feed(d));
    socket.on('error', () => undefined);
    socket.once('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  static async open(window = INITIAL_WINDOW): Promise<Peer> {
    const s = await connect(SERVER_IP, serverPort);
    assert.equal(s.alpnProtocol, MUX_ALPN);
    s.write(prefaceFrame(window));
    return new Peer(s);
  }

  write(...frames: Buffer[]): void {
    this.socket.write(Buffer.concat(frames));
  }

  /** Resolves with what `pick` finds in the frames so far; fails after `ms` without it. */
  async until<T>(what: string, pick: (frames: Frame[], closed: boolean) => T | undefined, ms = 5000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = pick(this.frames, this.closed);
      if (v !== undefined) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${ms} ms; frames: ${this.frames.map((f) => `${f.type}/${f.id}/${f.payload.length}`).join(' ')}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => (clearTimeout(t), r());
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

async function connect(host: string, port: number): Promise<tls.TLSSocket> {
  const s = tls.connect({ host, port, servername: SNI, cert: sleepW.certChainPem, key: sleepW.keyPem, ca: rootPem, ALPNProtocols: [MUX_ALPN, 'http/1.1'], checkServerIdentity: () => undefined });
  await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
  return s;
}

const request = (flags: number, id: number, head: string): Buffer => textFrame(FrameType.Request, flags, id, `${head}\r\n\r\n`);
const dataBytes = (frames: Frame[], id: number): number => frames.filter((f) => f.id === id && f.type === FrameType.Data).reduce((n, f) => n + f.payload.length, 0);
const ended = (frames: Frame[], id: number): Frame | undefined =>
  frames.find((f) => f.id === id && (f.type === FrameType.Reset || f.type === FrameType.Trailers || ((f.type === FrameType.Data || f.type === FrameType.Response) && (f.flags & FLAG_END) !== 0)));

before(async () => {
  const pki = await testPki();
  rootPem = pki.rootPem;
  [sleepW, helloW] = await Promise.all([pki.workload('default', 'sleep'), pki.workload('default', 'helloworld')]);
  app = http.createServer((req, res) => {
    arrived.push(req.url ?? '');
    if (req.url === '/early') {
      // Answers before reading the request body, with more than the client's window.
      res.writeHead(200, { 'content-length': String(EARLY_BYTES) }).end(Buffer.alloc(EARLY_BYTES, 7));
      return;
    }
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok ${req.url}`));
  });
  await new Promise<void>((r) => app.listen(0, APP_IP, r));
  const graph = emptyGraph();
  graph.secrets = secretsFor(helloW);
  graph.clusters.set('inbound|5000||', cluster('inbound|5000||', { type: 'STATIC', service: HELLO }));
  graph.endpoints.set('inbound|5000||', endpoints('inbound|5000||', [endpoint(APP_IP, (app.address() as AddressInfo).port)]));
  const stats = new ProxyStats();
  pools = new UpstreamPools({ stats, secrets: () => graph.secrets, mux: true });
  const deps = {
    config: () => graph,
    stats,
    pools,
    pick: roundRobinPicker(),
    identity: { workload: 'helloworld-v1', namespace: 'default', serviceAccount: 'helloworld', cluster: 'cluster-2', labels: { app: 'helloworld' } },
    log: (m: string) => console.error(m),
    mux: true,
  };
  server = new InboundListener(inboundListener(SERVER_IP, 0, 5000, 'STRICT'), deps);
  serverPort = (await server.listen()).port;
  const m = inboundListener(ONEWAY_IP, 0, 5000, 'STRICT');
  oneWay = new InboundListener({ ...m, filterChains: m.filterChains.map((c) => ({ ...c, tls: { ...ISTIO_DOWNSTREAM_MTLS, requireClientCertificate: false } })) }, deps);
  oneWayPort = (await oneWay.listen()).port;
});

after(async () => {
  await Promise.all([server.drain({ timeoutMs: 100 }), oneWay.drain({ timeoutMs: 100 })]);
  pools.close();
  await new Promise((r) => (app.close(r), app.closeAllConnections()));
});

test('Content-Length: 0 on a REQUEST without END, then DATA: the stream is reset, the app sees no second request', async () => {
  const p = await Peer.open();
  try {
    const smuggled = 'GET /smuggled HTTP/1.1\r\nhost: hello\r\n\r\n';
    p.write(request(0, 1, 'POST /front HTTP/1.1\r\nhost: hello\r\ncontent-length: 0'), textFrame(FrameType.Data, FLAG_END, 1, smuggled));
    const end = await p.until('end of stream 1', (fs) => ended(fs, 1));
    // The connection lives on: a later stream is answered (and anything smuggled would have
    // reached the app before it, on the same upstream connection).
    p.write(request(FLAG_END, 3, 'GET /after HTTP/1.1\r\nhost: hello'));
    await p.until('the response to stream 3', (fs) => ended(fs, 3));
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(!arrived.includes('/smuggled'), `the app saw: ${arrived.join(', ')}`);
    assert.ok(arrived.includes('/after'));
    assert.equal(end.type, FrameType.Reset, 'stream 1 is reset');
    assert.equal(end.payload.readUInt32BE(0), ResetCode.Protocol);
    assert.match(end.payload.toString('utf8', 4), /Content-Length/);
  } finally {
    p.close();
  }
});

test('a response queued behind the window is delivered after the request body ends', async () => {
  const p = await Peer.open(1024);
  try {
    // A streamed POST the app answers at once with 4 KiB: 1 KiB fits the window, the rest waits.
    p.write(request(0, 1, 'POST /early HTTP/1.1\r\nhost: hello'), textFrame(FrameType.Data, 0, 1, 'partial body'));
    await p.until('the first KiB of the response', (fs) => (dataBytes(fs, 1) >= 1024 ? true : undefined));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(dataBytes(p.frames, 1), 1024, 'no more than the window');
    // The request body ends, then the credit for the rest arrives.
    p.write(textFrame(FrameType.Data, FLAG_END, 1, ''), u32Frame(FrameType.Window, 1, 64 * 1024));
    const end = await p.until('the end of the response', (fs) => ended(fs, 1));
    assert.equal(end.type, FrameType.Data);
    assert.equal(dataBytes(p.frames, 1), EARLY_BYTES);
  } finally {
    p.close();
  }
});

test('a PREFACE whose window is out of range is a connection error', async () => {
  for (const window of [0, 0xffffffff]) {
    const p = await Peer.open(window);
    try {
      const g = await p.until('GOAWAY', (fs, closed) => (closed ? fs.find((f) => f.type === FrameType.GoAway) ?? null : undefined));
      assert.ok(g, `window ${window}: a GOAWAY before the close`);
      assert.match(g.payload.toString('utf8', 4), /preface/);
    } finally {
      p.close();
    }
  }
});

test('mux only on chains that require a client certificate; no other chain ever echoes isle-mux/1', async () => {
  const s = await connect(ONEWAY_IP, oneWayPort);
  try {
    assert.equal(s.alpnProtocol, 'http/1.1', 'one-way TLS: the client sidecar speaks HTTP/1.1');
  } finally {
    s.destroy();
  }
  // A chain whose protocols the client does not offer echoes the client's first one, never mux.
  const pick = alpnSelector(['h2'])!;
  assert.equal(pick({ protocols: [MUX_ALPN, 'http/1.1'] }), 'http/1.1');
  assert.equal(pick({ protocols: ['istio-peer-exchange', 'istio'] }), 'istio-peer-exchange');
});
