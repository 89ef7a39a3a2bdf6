/**
 * What one peer can make an isle-mux/1 sidecar hold (ADR 0138, review of issue 12): at most 256
 * streams at once, no new stream while 8 MiB of received DATA is held across the connection's
 * streams, and a sender that hands nothing to a full socket. The server engine runs on plain TCP
 * here (the TLS in front of it changes nothing about framing); the client is written by hand.
 */
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { CONNECTION_BUDGET, dataHeader, FLAG_END, FrameReader, FrameType, INITIAL_WINDOW, MAX_CONCURRENT_STREAMS, prefaceFrame, ResetCode, textFrame, u32Frame } from '../../../src/proxy/mux/frame.js';
import { MuxEngine, type MuxExchange } from '../../../src/proxy/mux/server.js';
import { MuxSession, OutStream } from '../../../src/proxy/mux/session.js';

const IP = '127.0.65.10';
let engine: MuxEngine;
let server: net.Server;
const open: MuxExchange[] = [];

before(async () => {
  engine = new MuxEngine({
    onStream: (ex) => {
      // Nobody reads the body or answers: every stream holds what it was sent.
      ex.pauseReading();
      open.push(ex);
    },
  });
  server = net.createServer((s) => engine.serve(s));
  await new Promise<void>((r) => server.listen(0, IP, r));
});

after(() => {
  engine.closeAllConnections();
  server.close();
});

/** A hand-written client: sends frames, collects the RESETs it gets back. */
interface Client {
  socket: net.Socket;
  resets: Map<number, string>;
  /** The next stream id (odd, increasing). */
  id: () => number;
  /** Everything written before has been read by the server: it answers a bad head in order. */
  settled: () => Promise<void>;
}

async function client(): Promise<Client> {
  const socket = net.connect({ host: IP, port: (server.address() as AddressInfo).port });
  await new Promise<void>((r) => socket.once('connect', r));
  const resets = new Map<number, string>();
  const pings = new Set<number>();
  let pong: (() => void) | undefined;
  let next = 1;
  const reader = new FrameReader({
    frame: (type, _flags, id, payload) => {
      if (pings.has(id)) {
        pings.delete(id);
        pong?.();
      } else if (type === FrameType.Reset) resets.set(id, `${payload.readUInt32BE(0)} ${payload.toString('utf8', 4)}`);
      return undefined;
    },
  });
  socket.on('data', (d: Buffer) => reader.feed(d));
  socket.write(prefaceFrame(INITIAL_WINDOW));
  const id = (): number => ((next += 2), next - 2);
  const settled = async (): Promise<void> => {
    const ping = id();
    pings.add(ping);
    const done = new Promise<void>((r) => (pong = r));
    socket.write(textFrame(FrameType.Request, FLAG_END, ping, 'BAD\r\n\r\n'));
    await done;
  };
  return { socket, resets, id, settled };
}

const get = (id: number): Buffer => textFrame(FrameType.Request, FLAG_END, id, 'GET /x HTTP/1.1\r\nhost: x\r\n\r\n');

test(`at most ${MAX_CONCURRENT_STREAMS} streams at once; one more is refused, and taken once one ends`, async () => {
  const c = await client();
  try {
    open.length = 0;
    const frames: Buffer[] = [];
    for (let i = 0; i < MAX_CONCURRENT_STREAMS + 1; i++) frames.push(get(c.id()));
    c.socket.write(Buffer.concat(frames));
    await c.settled();
    assert.equal(open.length, MAX_CONCURRENT_STREAMS);
    const last = 2 * MAX_CONCURRENT_STREAMS + 1;
    assert.deepEqual([...c.resets.keys()], [last]);
    assert.match(c.resets.get(last)!, new RegExp(`^${ResetCode.Refused} too many concurrent streams`));
    // One stream ends (the client cancels it): the next new one is taken.
    const after = c.id();
    c.socket.write(Buffer.concat([u32Frame(FrameType.Reset, 1, ResetCode.Cancel), get(after)]));
    await c.settled();
    assert.equal(open.length, MAX_CONCURRENT_STREAMS + 1);
    assert.equal(c.resets.has(after), false);
  } finally {
    c.socket.destroy();
  }
});

test('no new stream while the connection holds its budget of received DATA', async () => {
  const c = await client();
  try {
    open.length = 0;
    const n = CONNECTION_BUDGET / INITIAL_WINDOW;
    const body = Buffer.alloc(INITIAL_WINDOW, 1);
    for (let i = 0; i < n; i++) {
      const id = c.id();
      c.socket.write(Buffer.concat([textFrame(FrameType.Request, 0, id, 'POST /up HTTP/1.1\r\nhost: x\r\n\r\n'), dataHeader(id, body.length, false), body]));
    }
    await c.settled();
    assert.equal(open.length, n, 'all taken while under the budget');
    assert.equal(c.resets.size, 0);
    const next = c.id();
    c.socket.write(get(next));
    await c.settled();
    assert.match(c.resets.get(next) ?? '', new RegExp(`^${ResetCode.Refused} too much buffered`));
    // One stream reset by the client: what it held is freed, new streams are taken again.
    const after = c.id();
    c.socket.write(Buffer.concat([u32Frame(FrameType.Reset, 1, ResetCode.Cancel), get(after)]));
    await c.settled();
    assert.equal(c.resets.has(after), false);
    assert.equal(open.length, n + 1);
  } finally {
    c.socket.destroy();
  }
});

/** A session whose frames are recorded instead of written. */
class Recording extends MuxSession {
  readonly sent: Buffer[] = [];
  frame(): undefined {
    return undefined;
  }
  override send(b: Buffer): void {
    this.sent.push(b);
  }
  // The frames the session writes straight into its arena, as the bytes they are on the wire.
  override sendDataHeader(id: number, length: number, end: boolean): void {
    this.send(dataHeader(id, length, end));
  }
  override sendWindow(id: number, n: number): void {
    this.send(u32Frame(FrameType.Window, id, n));
  }
}

test('while the socket is full a sender hands nothing more to it; the data leaves on drain', () => {
  const socket = new net.Socket();
  const s = new Recording(socket);
  let drained = 0;
  const out = new OutStream(s, 1, { sendDrained: () => drained++ });
  s.blocked = true;
  assert.equal(out.data(Buffer.from('abc'), false), false);
  assert.equal(out.data(Buffer.alloc(0), true), false);
  assert.equal(s.sent.length, 0, 'nothing handed to a full socket');
  assert.equal(out.idle, false);
  s.blocked = false;
  socket.emit('drain');
  const all = Buffer.concat(s.sent);
  assert.equal(all.readUInt32BE(0), 3);
  assert.equal(all[4], FrameType.Data);
  assert.equal(all[5], FLAG_END, 'the END goes with the last bytes');
  assert.equal(all.subarray(10).toString(), 'abc');
  assert.equal(out.idle, true);
  assert.equal(drained, 1, 'the writer hears it may go on');

  // An END alone, queued while full, still goes out.
  const out2 = new OutStream(s, 3, { sendDrained: () => drained++ });
  s.sent.length = 0;
  s.blocked = true;
  assert.equal(out2.data(Buffer.alloc(0), true), false);
  s.blocked = false;
  socket.emit('drain');
  const end = Buffer.concat(s.sent);
  assert.deepEqual([end.readUInt32BE(0), end[4], end[5], end.readUInt32BE(6)], [0, FrameType.Data, FLAG_END, 3]);
  socket.destroy();
});
