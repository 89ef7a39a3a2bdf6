import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { BodyDecoder } from '../../../src/proxy/http1/body.js';
import { parseRequestHead, parseResponseHead, requestFraming, responseFraming } from '../../../src/proxy/http1/head.js';
import { Http1Server, type ServerExchange } from '../../../src/proxy/http1/server.js';

const b = (s: string) => Buffer.from(s, 'latin1');

test('request head: parsed once, repeated fields kept in order, incomplete heads wait', () => {
  const r = parseRequestHead(b('GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\nBODY'));
  assert.ok(r && 'head' in r);
  assert.equal(r.head.method, 'GET');
  assert.equal(r.head.target, '/a?b=1');
  assert.equal(r.head.minor, 1);
  assert.deepEqual(r.head.headers, { host: 'x', 'x-a': ['1', '2'] });
  assert.equal(r.length, b('GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n').length);
  assert.equal(parseRequestHead(b('GET / HTTP/1.1\r\nHost: x\r\n')), undefined);
});

test('header limits (Envoy defaults 100 fields / 60 KiB): 431, never truncation', () => {
  const many = (n: number) => `GET / HTTP/1.1\r\n${Array.from({ length: n }, (_, i) => `x-h${i}: v\r\n`).join('')}\r\n`;
  const ok = parseRequestHead(b(many(100)));
  assert.ok(ok && 'head' in ok && Object.keys(ok.head.headers).length === 100);
  assert.deepEqual(parseRequestHead(b(many(101))), { error: 431, reason: 'more than 100 header fields' });
  const big = `GET / HTTP/1.1\r\nx-big: ${'a'.repeat(61 * 1024)}\r\n\r\n`;
  assert.equal((parseRequestHead(b(big)) as { error: number }).error, 431);
  // Still incomplete but already over the limit: refused without waiting for the rest.
  assert.equal((parseRequestHead(b(big.slice(0, 62 * 1024))) as { error: number }).error, 431);
  assert.equal((parseRequestHead(b(many(3)), { maxHeaders: 2, maxHeadBytes: 1024 }) as { error: number }).error, 431);
});

test('malformed heads are 400; smuggling-prone framing is refused', () => {
  for (const bad of ['GET /\r\n\r\n', 'GET / HTTP/2.0\r\n\r\n', 'GET / HTTP/1.1\r\nbad name: x\r\n\r\n', 'GET / HTTP/1.1\r\n folded: x\r\n\r\n', 'GET / HTTP/1.1\r\nx: a\x00b\r\n\r\n']) {
    assert.equal((parseRequestHead(b(bad)) as { error: number }).error, 400, JSON.stringify(bad));
  }
  assert.deepEqual(requestFraming({ 'transfer-encoding': 'chunked', 'content-length': '3' }), { error: 400, reason: 'both Transfer-Encoding and Content-Length' });
  assert.equal((requestFraming({ 'content-length': ['3', '4'] }) as { error: number }).error, 400);
  assert.deepEqual(requestFraming({ 'content-length': ['3', '3'] }), { kind: 'length', length: 3 });
  assert.equal((requestFraming({ 'transfer-encoding': 'gzip' }) as { error: number }).error, 400);
  assert.deepEqual(requestFraming({}), { kind: 'none' });
});

test('control characters: bare CR or LF, NUL, DEL refused anywhere in a head; HTAB and obs-text allowed', () => {
  for (const bad of ['GET / HTTP/1.1\nhost: x\r\n\r\n', 'GET / HTTP/1.1\r\nhost: x\ry\r\n\r\n', 'GET / HTTP/1.1\r\nhost: x\ny: z\r\n\r\n', 'GET / HTTP/1.1\r\nx: a\x7fb\r\n\r\n', 'GET / HTTP/1.1\r\nx: a\x1bb\r\n\r\n', 'GET /\r HTTP/1.1\r\n\r\n']) {
    assert.deepEqual(parseRequestHead(b(bad)), { error: 400, reason: 'invalid character in request head' }, JSON.stringify(bad));
  }
  assert.deepEqual(parseResponseHead(b('HTTP/1.1 200 OK\r\nx: a\nb\r\n\r\n')), { error: 400, reason: 'invalid character in response head' });
  const ok = parseRequestHead(b('GET / HTTP/1.1\r\nx: a\tb \xe9\r\n\r\n'));
  assert.ok(ok && 'head' in ok);
  assert.equal(ok.head.headers['x'], 'a\tb \xe9');
});

test('header names: a field named Error is a field; names seen before are still lower-cased and checked', () => {
  const r = parseRequestHead(b('GET / HTTP/1.1\r\nError: 500\r\nHOST: a\r\n\r\n'));
  assert.ok(r && 'head' in r);
  assert.deepEqual(r.head.headers, { error: '500', host: 'a' });
  const again = parseRequestHead(b('GET / HTTP/1.1\r\nHost: b\r\nHOST: c\r\n\r\n'));
  assert.ok(again && 'head' in again);
  assert.deepEqual(again.head.headers, { host: ['b', 'c'] });
  assert.equal((parseRequestHead(b('GET / HTTP/1.1\r\nHost : b\r\n\r\n')) as { error: number }).error, 400);
  const resp = parseResponseHead(b('HTTP/1.1 200 OK\r\nerror: x\r\n\r\n'));
  assert.ok(resp && 'head' in resp);
  assert.equal(resp.head.headers['error'], 'x');
});

test('repeated fields are found however the names are cased, and past the name table filling up or evicting', () => {
  // Pairs of each name in one head, in several heads with fresh names each: more names than the
  // table's slots and than its key cap, so later heads parse with evictions and untabled names.
  for (let round = 0; round < 14; round++) {
    const names = Array.from({ length: 50 }, (_, i) => `X-R${round}-${i}${'q'.repeat(i % 7)}`);
    const fields = [...names.map((n) => `${n}: a\r\n`), ...names.map((n, i) => `${i % 2 ? n.toLowerCase() : n}: b\r\n`)].join('');
    const r = parseRequestHead(b(`GET / HTTP/1.1\r\n${fields}\r\n`));
    assert.ok(r && 'head' in r, `round ${round}`);
    assert.equal(Object.keys(r.head.headers).length, 50);
    for (const n of names) assert.deepEqual(r.head.headers[n.toLowerCase()], ['a', 'b'], `round ${round} ${n}`);
  }
  // The same name in one head and again in the next: one value each time, never carried over.
  for (let i = 0; i < 3; i++) {
    const r = parseRequestHead(b('GET / HTTP/1.1\r\nHost: x\r\nhOST: x\r\n\r\n'));
    assert.ok(r && 'head' in r);
    assert.deepEqual(r.head.headers, { host: ['x', 'x'] });
    const one = parseRequestHead(b('GET / HTTP/1.1\r\nHOST: y\r\n\r\n'));
    assert.ok(one && 'head' in one);
    assert.deepEqual(one.head.headers, { host: 'y' });
  }
});

test('names Object.prototype has are fields; __proto__ is refused (a plain object cannot hold it)', () => {
  // Fresh spellings each time: a name not in the table yet takes the reading path.
  for (const spelling of ['Constructor', 'constructor', 'cONSTRUCTOR', 'toString', 'HasOwnProperty', 'valueOf']) {
    const r = parseRequestHead(b(`GET / HTTP/1.1\r\n${spelling}: a\r\n${spelling}: b\r\n${spelling.toUpperCase()}: c\r\n\r\n`));
    assert.ok(r && 'head' in r, spelling);
    assert.deepEqual(Object.keys(r.head.headers), [spelling.toLowerCase()]);
    assert.deepEqual(r.head.headers[spelling.toLowerCase()], ['a', 'b', 'c']);
  }
  for (const spelling of ['__proto__', '__PROTO__', '__proto__']) {
    assert.deepEqual(parseRequestHead(b(`GET / HTTP/1.1\r\n${spelling}: x\r\n\r\n`)), { error: 400, reason: 'header name __proto__ is not accepted' });
    assert.deepEqual(parseResponseHead(b(`HTTP/1.1 200 OK\r\nundefined: a\r\n${spelling}: b\r\n\r\n`)), { error: 400, reason: 'header name __proto__ is not accepted' });
  }
  const u = parseRequestHead(b('GET / HTTP/1.1\r\nundefined: a\r\nundefined: b\r\n\r\n'));
  assert.ok(u && 'head' in u);
  assert.deepEqual(u.head.headers, { undefined: ['a', 'b'] });
});

test('long header names parse like short ones (only short names are tabled, so the table stays small)', () => {
  for (let i = 0; i < 20; i++) {
    const long = `X-${String(i).padStart(4, '0')}-${'n'.repeat(2000)}`;
    const r = parseRequestHead(b(`GET / HTTP/1.1\r\n${long}: a\r\n${long.toLowerCase()}: b\r\n${long}: c\r\n\r\n`));
    assert.ok(r && 'head' in r);
    assert.deepEqual(r.head.headers, { [long.toLowerCase()]: ['a', 'b', 'c'] });
  }
});

test('request and status lines: common methods and other tokens, versions and status digits checked without slicing', () => {
  const m = (line: string) => parseRequestHead(b(`${line}\r\nHost: x\r\n\r\n`));
  for (const [line, method, minor] of [['GET / HTTP/1.1', 'GET', 1], ['OPTIONS * HTTP/1.0', 'OPTIONS', 0], ['GETS / HTTP/1.1', 'GETS', 1], ['get / HTTP/1.1', 'get', 1], ['PURGE /x HTTP/1.1', 'PURGE', 1]] as const) {
    const r = m(line);
    assert.ok(r && 'head' in r, line);
    assert.equal(r.head.method, method);
    assert.equal(r.head.minor, minor);
  }
  for (const bad of ['G(T / HTTP/1.1', 'GET / HTTP/1.2', 'GET / HTTP/1.10', 'GET / HTTP/1.', 'GET / http/1.1']) assert.equal((m(bad) as { error: number }).error, 400, bad);
  const s = (line: string) => parseResponseHead(b(`${line}\r\ncontent-length: 0\r\n\r\n`));
  const ok = s('HTTP/1.0 204 No Content');
  assert.ok(ok && 'head' in ok);
  assert.deepEqual([ok.head.status, ok.head.minor, ok.head.reason], [204, 0, 'No Content']);
  for (const bad of ['HTTP/1.1 1e2 X', 'HTTP/1.1 +20 X', 'HTTP/1.1 099 X', 'HTTP/1.1 20 X', 'HTTP/1.1 2000 X', 'HTTP/1.2 200 OK']) assert.equal((s(bad) as { error: number }).error, 400, bad);
});

test('response head and framing (HEAD, 204, 304, chunked, until close)', () => {
  const r = parseResponseHead(b('HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nabc'));
  assert.ok(r && 'head' in r);
  assert.equal(r.head.status, 404);
  assert.equal(r.head.reason, 'Not Found');
  assert.ok(parseResponseHead(b('HTTP/1.1 200\r\n\r\n')) && 'head' in parseResponseHead(b('HTTP/1.1 200\r\n\r\n'))!);
  assert.deepEqual(responseFraming({ 'content-length': '3' }, 200, 'HEAD'), { kind: 'none' });
  assert.deepEqual(responseFraming({}, 204, 'GET'), { kind: 'none' });
  assert.deepEqual(responseFraming({ 'transfer-encoding': 'chunked' }, 200, 'GET'), { kind: 'chunked' });
  assert.deepEqual(responseFraming({}, 200, 'GET'), { kind: 'close' });
});

test('chunked bodies: split anywhere, trailers dropped, the next message left in place', () => {
  const wire = b('5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\nGET /next');
  for (let cut = 1; cut < wire.length; cut++) {
    const d = new BodyDecoder({ kind: 'chunked' });
    let body = '';
    const out = { bodyData: (c: Buffer) => void (body += c.toString('latin1')) };
    const first = d.feed(wire.subarray(0, cut), 0, out);
    let next: Buffer;
    if (d.done) next = wire.subarray(first);
    else {
      assert.equal(first, cut);
      const rest = wire.subarray(cut);
      next = rest.subarray(d.feed(rest, 0, out));
    }
    assert.ok(d.done, `cut ${cut}`);
    assert.equal(body, 'hello world');
    assert.equal(next.toString(), 'GET /next');
  }
  const bad = new BodyDecoder({ kind: 'chunked' });
  assert.equal(bad.feed(b('zz\r\n'), 0, { bodyData: () => undefined }), -1);
  // Trailers named after Object.prototype members are fields; __proto__ is dropped, not a prototype.
  const t = new BodyDecoder({ kind: 'chunked' });
  t.feed(b('0\r\nconstructor: a\r\n__proto__: p\r\n__proto__: q\r\nToString: b\r\ntostring: c\r\n\r\n'), 0, { bodyData: () => undefined });
  assert.ok(t.done);
  assert.deepEqual(t.trailers, { constructor: 'a', tostring: ['b', 'c'] });
});

async function rawExchange(port: number, request: string): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  s.end(request);
  let out = '';
  s.setEncoding('latin1').on('data', (d: string) => (out += d));
  await once(s, 'close');
  return out;
}

test('a real connection: 431 for 150 headers, keep-alive and pipelining, chunked upload, CONNECT 405', async () => {
  const seen: string[] = [];
  const engine = new Http1Server({
    onExchange: (ex: ServerExchange) => {
      seen.push(`${ex.head.method} ${ex.head.target}`);
      if (ex.contentLength === 0) return ex.respond(200, { 'content-type': 'text/plain' }, `hi ${ex.head.target}`);
      void ex.readBody().then((body) => ex.respond(200, {}, `got ${body.length}`));
    },
  });
  const server = net.createServer((s) => engine.serve(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;

  const headers = Array.from({ length: 150 }, (_, i) => `x-h${i}: v\r\n`).join('');
  const tooMany = await rawExchange(port, `GET / HTTP/1.1\r\nhost: a\r\n${headers}\r\n`);
  assert.match(tooMany, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);

  const two = await rawExchange(port, 'GET /1 HTTP/1.1\r\nhost: a\r\n\r\nGET /2 HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
  assert.equal(two.match(/HTTP\/1\.1 200 OK/g)?.length, 2);
  assert.match(two, /hi \/1HTTP\/1\.1 200 OK[\s\S]*connection: close[\s\S]*hi \/2$/);

  // Content-Length 0 on the wire is none; a body needs readBody: here only chunked uploads read.
  const up = await rawExchange(port, 'POST /u HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
  assert.match(up, /got 3$/);

  const connect = await rawExchange(port, 'CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n');
  assert.match(connect, /^HTTP\/1\.1 405 Method Not Allowed/);

  // Other protocols on an HTTP/1.1 port: an answer naming the mix-up at once, never a hang.
  const hello = Buffer.from('16030100c4010000c00303', 'hex');
  const tls = await new Promise<string>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(hello));
    let out = '';
    s.setEncoding('latin1').on('data', (d: string) => (out += d)).on('close', () => resolve(out)).on('error', reject);
  });
  assert.match(tls, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*isle: TLS handshake on a plain HTTP\/1\.1 port/);
  const h2 = await rawExchange(port, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  assert.match(h2, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*isle: HTTP\/2 connection preface on an HTTP\/1\.1-only listener/);
  const post = await rawExchange(port, 'POST /p HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
  assert.match(post, /hi \/p$/, 'a method starting with P is still HTTP');

  const bad = await rawExchange(port, 'NOT A REQUEST\r\n\r\n');
  assert.match(bad, /^HTTP\/1\.1 400 Bad Request/);
  assert.deepEqual(seen, ['GET /1', 'GET /2', 'POST /u', 'POST /p']);
  engine.closeAllConnections();
  server.close();
});
