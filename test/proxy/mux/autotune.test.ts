/**
 * Receive-window auto-tuning in isle-mux/1 (ADR 0138, issue 12): a stream whose consumer keeps up
 * gets more credit than the initial window (a fixed window caps one stream at window / RTT across
 * clusters), never more than MAX_STREAM_WINDOW, none beyond the connection's credit cap, and a
 * paused consumer never grows its window. The peer is scripted: it sends whatever credit allows.
 */
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { dataHeader, FLAG_END, FrameReader, FrameType, INITIAL_WINDOW, MAX_PAYLOAD, MAX_STREAM_WINDOW, prefaceFrame, textFrame, u32Frame, WINDOW_UPDATE_AT } from '../../../src/proxy/mux/frame.js';
import { MuxEngine } from '../../../src/proxy/mux/server.js';
import { InStream, MuxSession, OutStream } from '../../../src/proxy/mux/session.js';

const IP = '127.0.66.10';
const KiB = 1024;
const MiB = 1024 * KiB;

/** A session whose frames are parsed instead of written: the credit each stream was sent. */
class Recording extends MuxSession {
  /** Credit sent per stream id (the sum of its WINDOW frames). */
  readonly credited = new Map<number, number>();
  private readonly parser = new FrameReader({
    frame: (type, flags, id, payload) => {
      if (type === FrameType.Data) this.data.push({ id, n: payload.length, end: (flags & FLAG_END) !== 0 });
      if (type === FrameType.Window) this.credited.set(id, (this.credited.get(id) ?? 0) + payload.readUInt32BE(0));
      return undefined;
    },
  });
  /** DATA frames sent: stream id, payload length, END. */
  readonly data: { id: number; n: number; end: boolean }[] = [];
  constructor() {
    super(new net.Socket());
  }
  frame(): undefined {
    return undefined;
  }
  override send(b: Buffer): void {
    assert.equal(this.parser.feed(b), undefined);
  }
  // The frames the session writes straight into its arena, as the bytes they are on the wire.
  override sendDataHeader(id: number, length: number, end: boolean): void {
    this.send(dataHeader(id, length, end));
  }
  override sendWindow(id: number, n: number): void {
    this.send(u32Frame(FrameType.Window, id, n));
  }
}

/** The scripted peer: what it may still send on a stream (initial window + credit − sent). */
function peerCredit(s: Recording, id: number, sent: number): number {
  return INITIAL_WINDOW + (s.credited.get(id) ?? 0) - sent;
}

/** The peer sends `total` bytes in 16 KiB DATA frames within its credit; each is consumed at once. */
function stream(s: Recording, inb: InStream, total: number, seen: number[] = []): number {
  let sent = 0;
  while (sent < total) {
    const credit = peerCredit(s, inb.id, sent);
    assert.ok(credit > 0, 'the peer always has credit while the consumer keeps up');
    const n = Math.min(WINDOW_UPDATE_AT, credit, total - sent);
    assert.equal(inb.received(n), true);
    sent += n;
    inb.consumed(n);
    seen.push(peerCredit(s, inb.id, sent) + (sent % WINDOW_UPDATE_AT));
  }
  return sent;
}

test('a stream consumed steadily gets more credit than the initial window, doubling up to the per-stream maximum', () => {
  const s = new Recording();
  const inb = new InStream(s, 1);
  const windows: number[] = [];
  const sent = stream(s, inb, 64 * MiB, windows);
  // What the peer may have in flight, seen after each frame (the window as the sender sees it).
  const distinct = [...new Set(windows)];
  assert.deepEqual(distinct, [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384].map((k) => k * KiB));
  assert.ok(Math.max(...windows) <= MAX_STREAM_WINDOW);
  assert.equal(inb.window, MAX_STREAM_WINDOW);
  assert.equal(peerCredit(s, 1, sent), MAX_STREAM_WINDOW, 'every consumed byte was returned, plus the growth');
  assert.equal(s.granted, MAX_STREAM_WINDOW);
  assert.equal(s.held, 0);
  inb.close();
  assert.equal(s.granted, 0);
});

test('windows stop growing at the connection credit cap, never shrink, and grow again once credit is freed', () => {
  const s = new Recording();
  s.creditCap = 1 * MiB;
  const a = new InStream(s, 1);
  const b = new InStream(s, 3);
  stream(s, a, 8 * MiB);
  // a: 64 → 128 → 256 → 512 → 960 KiB (the last step only what the cap left beside b's 64 KiB).
  assert.equal(a.window, s.creditCap - INITIAL_WINDOW);
  assert.equal(s.granted, s.creditCap);
  const sentB = stream(s, b, 4 * MiB);
  assert.equal(b.window, INITIAL_WINDOW, 'no growth at the cap');
  assert.equal(peerCredit(s, 3, sentB), INITIAL_WINDOW, 'nor any shrinking: consumed credit is all returned');
  assert.equal(a.window, s.creditCap - INITIAL_WINDOW);
  a.close();
  assert.equal(s.granted, INITIAL_WINDOW);
  stream(s, b, 4 * MiB);
  assert.ok(b.window > INITIAL_WINDOW, 'grows again once a closed stream freed its credit');
  assert.ok(s.granted <= s.creditCap);
});

test('a consumer that pauses never grows its window', () => {
  const s = new Recording();
  const inb = new InStream(s, 1);
  let sent = 0;
  for (let round = 0; round < 200; round++) {
    // The consumer takes half a window, then pushes back; it resumes once the peer stopped.
    for (let i = 0; i < INITIAL_WINDOW / 2; i += WINDOW_UPDATE_AT) {
      assert.equal(inb.received(WINDOW_UPDATE_AT), true);
      inb.consumed(WINDOW_UPDATE_AT);
      sent += WINDOW_UPDATE_AT;
    }
    inb.pause();
    const rest = peerCredit(s, 1, sent);
    assert.equal(inb.received(rest), true);
    inb.consumed(rest);
    sent += rest;
    assert.equal(peerCredit(s, 1, sent), 0, 'nothing granted while paused');
    inb.resume();
  }
  assert.equal(inb.window, INITIAL_WINDOW);
  assert.equal(peerCredit(s, 1, sent), INITIAL_WINDOW);
  assert.equal(s.granted, INITIAL_WINDOW);
});

test('with a grown window a large chunk leaves in DATA frames no larger than MAX_PAYLOAD', () => {
  const s = new Recording();
  const out = new OutStream(s, 1, { sendDrained: () => undefined });
  out.credit(4 * MiB);
  const chunk = Buffer.alloc(3 * MiB + 5);
  assert.equal(out.data(chunk, true), true);
  assert.deepEqual(s.data, [
    { id: 1, n: MAX_PAYLOAD, end: false },
    { id: 1, n: MAX_PAYLOAD, end: false },
    { id: 1, n: MAX_PAYLOAD, end: false },
    { id: 1, n: 5, end: true },
  ]);
});

let engine: MuxEngine;
let server: net.Server;

before(async () => {
  engine = new MuxEngine({
    onStream: (ex) => {
      void ex.readBody().then((b) => {
        ex.respond(200, { 'content-type': 'text/plain' }, String(b.length));
      });
    },
  });
  server = net.createServer((sock) => engine.serve(sock));
  await new Promise<void>((r) => server.listen(0, IP, r));
});

after(() => {
  engine.closeAllConnections();
  server.close();
});

test('a request body read steadily by the server sidecar: the client is granted more than the initial window', async () => {
  const total = 8 * MiB;
  const socket = net.connect({ host: IP, port: (server.address() as AddressInfo).port });
  await new Promise<void>((r) => socket.once('connect', r));
  let credit = 0;
  let sent = 0;
  let peak = 0;
  const chunk = Buffer.alloc(WINDOW_UPDATE_AT, 7);
  let done: (status: string) => void = () => undefined;
  const answered = new Promise<string>((r) => (done = r));
  const pump = (): void => {
    const parts: Buffer[] = [];
    while (sent < total && INITIAL_WINDOW + credit - sent > 0) {
      const n = Math.min(chunk.length, INITIAL_WINDOW + credit - sent, total - sent);
      sent += n;
      parts.push(dataHeader(1, n, sent === total), chunk.subarray(0, n));
    }
    if (parts.length) socket.write(Buffer.concat(parts));
  };
  const reader = new FrameReader({
    frame: (type, _flags, id, payload) => {
      if (id !== 1) return undefined;
      if (type === FrameType.Window) {
        credit += payload.readUInt32BE(0);
        peak = Math.max(peak, INITIAL_WINDOW + credit - sent);
        pump();
      } else if (type === FrameType.Response) done(payload.toString('latin1').split('\r\n')[0]!);
      else if (type === FrameType.Reset) done(`reset ${payload.toString('utf8', 4)}`);
      return undefined;
    },
  });
  socket.on('data', (d: Buffer) => reader.feed(d));
  try {
    socket.write(Buffer.concat([prefaceFrame(INITIAL_WINDOW), textFrame(FrameType.Request, 0, 1, `POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: ${total}\r\n\r\n`)]));
    pump();
    assert.match(await answered, /^HTTP\/1\.1 200/);
    assert.equal(sent, total);
    assert.ok(peak > INITIAL_WINDOW, `credit in hand peaked at ${peak} bytes, above the initial ${INITIAL_WINDOW}`);
    assert.ok(peak <= MAX_STREAM_WINDOW);
    // Every byte was returned with the growth on top: the window the client ends with is the grown one.
    assert.ok(INITIAL_WINDOW + credit - sent > INITIAL_WINDOW);
  } finally {
    socket.destroy();
  }
});
