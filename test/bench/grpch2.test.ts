/**
 * The simulated proxies' gRPC client on node:http2 (bench/lib/grpch2.ts) against a real grpc-js
 * server on loopback: messages both ways byte for byte (large ones across many HTTP/2 chunks),
 * statuses from trailers, pick-first over a target list, a lost connection.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { BufferPool, Channel, MessageReader, parseTarget, Status } from '../../bench/lib/grpch2.js';

const HOST = '127.62.0.1';
const raw = (b: Buffer): Buffer => b;
const method = (path: string): grpc.MethodDefinition<Buffer, Buffer> => ({ path, requestStream: true, responseStream: true, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw });

/** Bytes with a position-dependent pattern, so a misplaced chunk cannot go unnoticed. */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

interface Received {
  messages: Buffer[];
  ended: Promise<{ code: number; details: string }>;
}

function open(ch: Channel, path: string, onMessage?: (m: Buffer) => void): { call: ReturnType<Channel['call']>; got: Received } {
  let done!: (x: { code: number; details: string }) => void;
  const got: Received = { messages: [], ended: new Promise((r) => (done = r)) };
  const call = ch.call(path, {
    message: (b, s, e) => {
      const m = Buffer.from(b.subarray(s, e)); // the view is only valid during the call
      got.messages.push(m);
      onMessage?.(m);
    },
    end: (code, details) => done({ code, details }),
  });
  return { call, got };
}

/** One message to /t.T/Echo and the text of the first answer. */
async function exchange(ch: Channel, text: string): Promise<string> {
  const { call, got } = open(ch, '/t.T/Echo');
  call.write([Buffer.from(text)]);
  while (got.messages.length < 1) await new Promise((r) => setTimeout(r, 10));
  call.cancel();
  return got.messages[0]!.toString();
}

/** Serves /t.T/Echo answering each message with itself; resolves with the port. */
function mirror(server: grpc.Server, address: string): Promise<number> {
  server.addService({ echo: method('/t.T/Echo') }, { echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => call.on('data', (m: Buffer) => call.write(m)) });
  return new Promise<number>((res, rej) => server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
}

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.62.0.2', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('bench grpch2: gRPC over node:http2 against grpc-js', () => {
  let server: grpc.Server;
  let address = '';
  const SIZES = [0, 10, 3 * 1024 * 1024 + 7, 100_000, 16_379, 16_384];
  before(async () => {
    server = new grpc.Server();
    server.addService(
      { echo: method('/t.T/Echo'), deny: method('/t.T/Deny'), burst: method('/t.T/Burst') },
      {
        // Answers each request with the same bytes reversed.
        echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          call.on('data', (m: Buffer) => call.write(Buffer.from(m).reverse()));
          call.on('end', () => call.end());
        },
        deny: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          call.on('data', () => call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: 'not you: ünïcode %' }));
        },
        // One request, then SIZES.length messages written at once.
        burst: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          call.once('data', () => SIZES.forEach((n, i) => call.write(pattern(n, i))));
        },
      },
    );
    const port = await new Promise<number>((res, rej) => server.bindAsync(`${HOST}:0`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    address = `${HOST}:${port}`;
  });
  after(() => server.forceShutdown());

  it('sends messages made of parts and receives them whole, large ones across many chunks', async () => {
    const ch = new Channel(address);
    try {
      const { call, got } = open(ch, '/t.T/Burst');
      call.write([Buffer.from('go')]);
      while (got.messages.length < SIZES.length) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(
        got.messages.map((m) => m.length),
        SIZES,
      );
      got.messages.forEach((m, i) => assert.ok(m.equals(pattern(SIZES[i]!, i)), `message ${i} intact`));

      const echo = open(ch, '/t.T/Echo');
      const big = pattern(1_000_000, 3);
      echo.call.write([Buffer.from('ab'), Buffer.alloc(0), Buffer.from('cd')]);
      echo.call.write([big.subarray(0, 10), big.subarray(10)]);
      while (echo.got.messages.length < 2) await new Promise((r) => setTimeout(r, 10));
      assert.equal(echo.got.messages[0]!.toString(), 'dcba');
      assert.ok(echo.got.messages[1]!.equals(Buffer.from(big).reverse()));
      echo.call.cancel();
    } finally {
      ch.close();
    }
  });

  it('reports the status and message of the trailers, and UNIMPLEMENTED for an unknown method', async () => {
    const ch = new Channel(address);
    try {
      const deny = open(ch, '/t.T/Deny');
      deny.call.write([Buffer.from('x')]);
      assert.deepEqual(await deny.got.ended, { code: grpc.status.PERMISSION_DENIED, details: 'not you: ünïcode %' });
      const none = open(ch, '/t.T/Nothing');
      none.call.write([Buffer.from('x')]);
      const r = await none.got.ended;
      assert.equal(r.code, grpc.status.UNIMPLEMENTED);
    } finally {
      ch.close();
    }
  });

  it('connects to the first target of a list that accepts the connection (pick_first), and fails when none does', async () => {
    const dead = `127.62.0.2:${await closedPort()}`;
    const ch = new Channel(`ipv4:${dead},${address}`);
    try {
      assert.equal(await exchange(ch, 'xy'), 'yx');
    } finally {
      ch.close();
    }
    const nowhere = new Channel(`ipv4:${dead},${dead}`);
    const r = await open(nowhere, '/t.T/Echo').got.ended;
    nowhere.close();
    assert.equal(r.code, Status.UNAVAILABLE);
    assert.match(r.details, /No connection established.*ECONNREFUSED/);
  });

  it('ends a call with an error status when the connection is lost, and reconnects for the next call', async () => {
    const other = new grpc.Server();
    const port = await mirror(other, '127.62.0.3:0');
    const ch = new Channel(`127.62.0.3:${port}`);
    try {
      const a = open(ch, '/t.T/Echo');
      a.call.write([Buffer.from('1')]);
      while (a.got.messages.length < 1) await new Promise((r) => setTimeout(r, 10));
      other.forceShutdown();
      const r = await a.got.ended;
      assert.notEqual(r.code, Status.OK);
      const again = new grpc.Server();
      await mirror(again, `127.62.0.3:${port}`);
      try {
        assert.equal(await exchange(ch, '2'), '2');
      } finally {
        again.forceShutdown();
      }
    } finally {
      ch.close();
    }
  });
});

describe('bench grpch2: MessageReader', () => {
  const frame = (m: Buffer): Buffer => {
    const h = Buffer.alloc(5);
    h.writeUInt32BE(m.length, 1);
    return Buffer.concat([h, m]);
  };
  const msgs = [pattern(70_000, 1), Buffer.alloc(0), pattern(3, 2), pattern(200_000, 3), pattern(1, 4)];
  const stream = Buffer.concat(msgs.map(frame));

  it('gives the same messages whichever way the stream is cut into chunks', () => {
    for (const step of [1, 2, 4, 5, 6, 1000, 16_384, 65_536, stream.length]) {
      const got: Buffer[] = [];
      const pool = new BufferPool();
      const r = new MessageReader((b, s, e) => got.push(Buffer.from(b.subarray(s, e))), pool);
      for (let i = 0; i < stream.length; i += step) r.feed(stream.subarray(i, i + step));
      assert.deepEqual(
        got.map((m) => m.length),
        msgs.map((m) => m.length),
        `step ${step}`,
      );
      got.forEach((m, k) => assert.ok(m.equals(msgs[k]!), `step ${step} message ${k}`));
      if (step < 70_000) assert.ok(pool.keptBytes > 0, 'receive buffers are kept for reuse');
    }
  });

  it('reuses receive buffers and refuses compressed messages', () => {
    const pool = new BufferPool();
    const a = pool.take(100_000);
    pool.give(a);
    assert.equal(pool.take(90_000), a, 'same size class, same buffer');
    assert.notEqual(pool.take(90_000), a, 'taken once');
    const r = new MessageReader(() => undefined, pool);
    assert.throws(() => r.feed(Buffer.from([1, 0, 0, 0, 1, 9])), /compressed/);
  });

  it('parses grpc-js target syntax', () => {
    assert.deepEqual(parseTarget('127.0.0.1:80'), ['127.0.0.1:80']);
    assert.deepEqual(parseTarget('dns:///localhost:80'), ['localhost:80']);
    assert.deepEqual(parseTarget('ipv4:127.0.0.1:1,127.0.0.2:2'), ['127.0.0.1:1', '127.0.0.2:2']);
    assert.throws(() => parseTarget('unix:/tmp/x'), /unsupported target/);
  });
});
