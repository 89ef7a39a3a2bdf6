import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { test } from 'node:test';
import { looksLikeTls, parseClientHello, peekClientHello } from '../../../src/proxy/net/clienthello.js';

/** A real ClientHello, as node's TLS stack (OpenSSL) writes it. */
async function captureClientHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const got = new Promise<Buffer>((resolve) => {
    server.once('connection', (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        const all = Buffer.concat(chunks);
        if (parseClientHello(all).kind !== 'need-more') {
          resolve(all);
          s.destroy();
        }
      });
    });
  });
  const client = tls.connect({ host: '127.0.0.1', port, ...opts });
  client.on('error', () => {});
  const hello = await got;
  client.destroy();
  server.close();
  return hello;
}

test('parses SNI and ALPN from a real ClientHello, also fed one byte at a time', async () => {
  const sni = 'outbound_.5000_._.helloworld.default.svc.cluster.local';
  const hello = await captureClientHello({ servername: sni, ALPNProtocols: ['istio-peer-exchange', 'h2', 'http/1.1'] });
  const r = parseClientHello(hello);
  assert.equal(r.kind, 'tls');
  assert.ok(r.kind === 'tls');
  assert.equal(r.serverName, sni);
  assert.deepEqual(r.alpn, ['istio-peer-exchange', 'h2', 'http/1.1']);
  for (let i = 0; i < hello.length; i++) {
    assert.equal(parseClientHello(hello.subarray(0, i)).kind, 'need-more', `prefix of ${i} bytes`);
  }
  assert.equal(looksLikeTls(hello), true);
});

test('no SNI (connect to an IP) gives serverName undefined', async () => {
  const hello = await captureClientHello({});
  const r = parseClientHello(hello);
  assert.ok(r.kind === 'tls');
  assert.equal(r.serverName, undefined);
  assert.deepEqual(r.alpn, []);
});

test('a ClientHello split over two TLS records is reassembled', async () => {
  const hello = await captureClientHello({ servername: 'a.example', ALPNProtocols: ['h2'] });
  const body = hello.subarray(5);
  const cut = 40;
  const rec = (b: Buffer): Buffer => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, b.length >> 8, b.length & 0xff]), b]);
  const split = Buffer.concat([rec(body.subarray(0, cut)), rec(body.subarray(cut))]);
  const r = parseClientHello(split);
  assert.ok(r.kind === 'tls', JSON.stringify(r));
  assert.equal(r.serverName, 'a.example');
  assert.equal(parseClientHello(split.subarray(0, 5 + cut + 3)).kind, 'need-more');
});

test('plaintext, garbage and oversized input are classified, not thrown', () => {
  assert.deepEqual(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')), { kind: 'not-tls' });
  assert.equal(looksLikeTls(Buffer.from('G')), false);
  assert.equal(looksLikeTls(Buffer.alloc(0)), undefined);
  assert.equal(parseClientHello(Buffer.from([0x16, 0x02, 0x00, 0x00, 0x10])).kind, 'invalid');
  // A handshake record that is a ServerHello (type 2), not a ClientHello.
  assert.equal(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00])).kind, 'invalid');
  // Announces a 1 MB ClientHello: refused at once rather than buffered.
  const huge = Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x0f, 0xff, 0xff]);
  const r = parseClientHello(huge, 4096);
  assert.equal(r.kind, 'invalid');
  // Random bytes after a valid header must not throw.
  for (let i = 0; i < 200; i++) {
    const junk = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c]), Buffer.from(Array.from({ length: 64 }, () => Math.floor(Math.random() * 256)))]);
    assert.ok(['invalid', 'tls', 'need-more'].includes(parseClientHello(junk).kind));
  }
});

test('peekClientHello over a real socket: segments arriving apart, bytes handed back', async () => {
  const hello = await captureClientHello({ servername: 'split.example', ALPNProtocols: ['http/1.1'] });
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const peeked = new Promise<Awaited<ReturnType<typeof peekClientHello>>>((resolve) => {
    server.once('connection', (s) => {
      s.on('error', () => {});
      void peekClientHello(s, { timeoutMs: 5000 }).then(resolve);
    });
  });
  const c = net.connect(port, '127.0.0.1');
  c.setNoDelay(true);
  await once(c, 'connect');
  const pieces = [hello.subarray(0, 3), hello.subarray(3, 60), hello.subarray(60)];
  for (const p of pieces) {
    c.write(p);
    await new Promise((r) => setTimeout(r, 20));
  }
  const { result, consumed } = await peeked;
  assert.ok(result.kind === 'tls');
  assert.equal(result.serverName, 'split.example');
  assert.deepEqual(consumed, hello);
  c.destroy();
  server.close();
});

test('peekClientHello: plaintext decided on the first byte; timeout and close reported', async () => {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const results: Array<Awaited<ReturnType<typeof peekClientHello>>> = [];
  const want = 3;
  const all = new Promise<void>((resolve) => {
    server.on('connection', (s) => {
      s.on('error', () => {});
      void peekClientHello(s, { timeoutMs: 150 }).then((r) => {
        results.push(r);
        s.destroy();
        if (results.length === want) resolve();
      });
    });
  });
  const a = net.connect(port, '127.0.0.1', () => a.write('GET / HTTP/1.1\r\n\r\n'));
  const b = net.connect(port, '127.0.0.1', () => b.write(Buffer.from([0x16, 0x03])));
  const c = net.connect(port, '127.0.0.1', () => c.end());
  for (const s of [a, b, c]) s.on('error', () => {});
  await all;
  const kinds = results.map((r) => (r.result.kind === 'invalid' ? `invalid:${r.result.reason}` : r.result.kind)).sort();
  assert.deepEqual(kinds, ['closed', 'invalid:timeout', 'not-tls']);
  const plain = results.find((r) => r.result.kind === 'not-tls')!;
  assert.ok(plain.consumed.toString().startsWith('GET /'));
  for (const s of [a, b, c]) s.destroy();
  server.close();
});
