import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { test } from 'node:test';
import { judge, sniff } from '../../../src/proxy/net/sniff.js';

/** A server on 127.70.0.1 (this suite's range) whose next accepted socket is sniffed. */
async function sniffNext(send: (c: net.Socket) => void, timeoutMs = 100): Promise<Awaited<ReturnType<typeof sniff>>> {
  const server = net.createServer();
  server.listen(0, '127.70.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const result = new Promise<Awaited<ReturnType<typeof sniff>>>((resolve) => server.once('connection', (s) => void sniff(s, timeoutMs).then((r) => (s.destroy(), resolve(r)))));
  const c = net.connect(port, '127.70.0.1', () => send(c));
  c.on('error', () => {});
  const r = await result;
  c.destroy();
  server.close();
  return r;
}

test('judge: HTTP/1 request lines, the HTTP/2 preface, partial input and opaque bytes', () => {
  assert.deepEqual(judge(Buffer.from('GET /hello HTTP/1.1\r\nHost: x\r\n\r\n')), { kind: 'http', protocol: 'http/1.1' });
  assert.deepEqual(judge(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), { kind: 'http', protocol: 'h2c' });
  assert.equal(judge(Buffer.from('PRI * HT')), undefined);
  assert.equal(judge(Buffer.from('POS')), undefined);
  assert.equal(judge(Buffer.from('GET /a-long-path')), undefined);
  assert.deepEqual(judge(Buffer.from('ping')), { kind: 'tcp' });
  assert.deepEqual(judge(Buffer.from([0, 1, 2, 3])), { kind: 'tcp' });
  assert.deepEqual(judge(Buffer.from('GET / SPDY/3\r\n')), { kind: 'tcp' });
  // A first byte of 0x16 that is no ClientHello is opaque TCP, not an error.
  assert.deepEqual(judge(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x01, 0x02])), { kind: 'tcp' });
});

test('sniff: a real ClientHello gives SNI and ALPN; the bytes are kept for replay', async () => {
  const r = await sniffNext((c) => {
    const t = tls.connect({ socket: c, servername: 'echo.example.com', ALPNProtocols: ['h2', 'http/1.1'] });
    t.on('error', () => {});
  });
  assert.equal(r.result.kind, 'tls');
  assert.deepEqual(r.result.kind === 'tls' && [r.result.serverName, r.result.alpn], ['echo.example.com', ['h2', 'http/1.1']]);
  assert.equal(r.consumed[0], 0x16);
});

test('sniff: a silent client (server-first protocol) is judged TCP after the timeout, never held', async () => {
  const r = await sniffNext(() => undefined, 50);
  assert.deepEqual(r.result, { kind: 'tcp' });
  assert.equal(r.consumed.length, 0);
  const http = await sniffNext((c) => c.write('GET / HTTP/1.1\r\n'));
  assert.deepEqual(http.result, { kind: 'http', protocol: 'http/1.1' });
});
