import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import {
  answerResponse,
  buildQuery,
  errorResponse,
  ipv4Bytes,
  ipv6Bytes,
  parseQuery,
  parseResponse,
  RCODE_FORMERR,
  RCODE_NOTIMP,
  RCODE_SERVFAIL,
  readName,
  TYPE_A,
  TYPE_AAAA,
  UDP_MAX,
} from '../../../src/proxy/dns/packet.js';

function query(name: string, qtype = TYPE_A) {
  const p = parseQuery(buildQuery(0x1234, name, qtype));
  assert.equal(p.kind, 'query');
  return (p as Extract<typeof p, { kind: 'query' }>).query;
}

test('a query reads back: id, RD, lower-cased name without the trailing dot, type, class; the question bytes keep the case', () => {
  const q = query('HelloWorld.Hello.Global.', TYPE_AAAA);
  assert.equal(q.id, 0x1234);
  assert.equal(q.question.name, 'helloworld.hello.global');
  assert.equal(q.question.qtype, TYPE_AAAA);
  assert.equal(q.question.qclass, 1);
  assert.ok(q.questionBytes.includes(Buffer.from('HelloWorld')));
});

test('an answer has the question echoed, AA, RD copied, one record per address with a pointer name', () => {
  const q = query('a.b.global');
  const r = parseResponse(answerResponse(q, [ipv4Bytes('127.255.0.8')!, ipv4Bytes('10.0.0.1')!], 30, true))!;
  assert.equal(r.id, 0x1234);
  assert.equal(r.rcode, 0);
  assert.equal(r.authoritative, true);
  assert.deepEqual(r.answers.map((a) => [a.name, a.type, a.ttl, a.address]), [
    ['a.b.global', TYPE_A, 30, '127.255.0.8'],
    ['a.b.global', TYPE_A, 30, '10.0.0.1'],
  ]);
});

test('an answer too big for 512 bytes of UDP is sent empty with TC; over TCP it is whole', () => {
  const q = query('many.example');
  const ips = Array.from({ length: 40 }, (_, i) => ipv4Bytes(`10.0.0.${i}`)!);
  const udp = answerResponse(q, ips, 30, true);
  assert.ok(udp.length <= UDP_MAX);
  const u = parseResponse(udp)!;
  assert.equal(u.truncated, true);
  assert.equal(u.answers.length, 0);
  const t = parseResponse(answerResponse(q, ips, 30, false))!;
  assert.equal(t.truncated, false);
  assert.equal(t.answers.length, 40);
});

test('what is not a query is dropped: shorter than a header, or a response', () => {
  assert.equal(parseQuery(Buffer.alloc(11)).kind, 'drop');
  const resp = errorResponse(1, 0, RCODE_SERVFAIL);
  assert.equal(parseQuery(resp).kind, 'drop');
});

test('bad queries get FORMERR or NOTIMP with their id', () => {
  const two = buildQuery(7, 'a.b', TYPE_A);
  two.writeUInt16BE(2, 4);
  assert.deepEqual(pick(parseQuery(two)), { kind: 'error', id: 7, rcode: RCODE_FORMERR });
  const notify = buildQuery(8, 'a.b', TYPE_A);
  notify.writeUInt16BE(notify.readUInt16BE(2) | (4 << 11), 2);
  assert.deepEqual(pick(parseQuery(notify)), { kind: 'error', id: 8, rcode: RCODE_NOTIMP });
  const cut = buildQuery(9, 'helloworld.hello.global', TYPE_A).subarray(0, 20);
  assert.deepEqual(pick(parseQuery(cut)), { kind: 'error', id: 9, rcode: RCODE_FORMERR });
  const noType = buildQuery(10, 'a.b', TYPE_A);
  assert.deepEqual(pick(parseQuery(noType.subarray(0, noType.length - 2))), { kind: 'error', id: 10, rcode: RCODE_FORMERR });
});

function pick(p: ReturnType<typeof parseQuery>) {
  return p.kind === 'error' ? { kind: p.kind, id: p.id, rcode: p.rcode } : { kind: p.kind };
}

test('compression pointers: followed backwards, refused forwards and in loops, bounded in number', () => {
  // "x" then a pointer back to offset 12 ("a.b"): a.b at 12, x.<ptr> at 17.
  const buf = Buffer.from([...Buffer.alloc(12), 1, 0x61, 1, 0x62, 0, 1, 0x78, 0xc0, 12]);
  const ok = readName(buf, 17);
  assert.deepEqual(ok, { labels: ['x', 'a', 'b'], end: 21 });
  // A pointer to itself, and one forwards.
  assert.match((readName(Buffer.from([...Buffer.alloc(12), 0xc0, 12]), 12) as { error: string }).error, /backwards/);
  assert.match((readName(Buffer.from([...Buffer.alloc(12), 0xc0, 14, 0]), 12) as { error: string }).error, /backwards/);
  // Extended label types (0x40, 0x80) are refused.
  assert.match((readName(Buffer.from([...Buffer.alloc(12), 0x41, 0]), 12) as { error: string }).error, /label type/);
  // A name over 255 octets.
  const long = Buffer.concat([Buffer.alloc(12), ...Array.from({ length: 5 }, () => Buffer.from([63, ...Buffer.alloc(63, 0x61)])), Buffer.from([0])]);
  assert.match((readName(long, 12) as { error: string }).error, /255/);
});

test('a label with a dot or a control byte is no name of ours (forwarded as is, never matched)', () => {
  const buf = buildQuery(1, 'ab.c', TYPE_A);
  buf[13] = 0x2e; // "a.b" … the first label now holds a dot
  const p = parseQuery(buf);
  assert.equal(p.kind, 'query');
  assert.equal((p as Extract<typeof p, { kind: 'query' }>).query.question.name, undefined);
});

test('IP text to bytes, strictly', () => {
  assert.deepEqual([...ipv4Bytes('240.240.1.2')!], [240, 240, 1, 2]);
  for (const bad of ['256.1.1.1', '1.2.3', '1.2.3.4.5', 'a.b.c.d', '01234.1.1.1']) assert.equal(ipv4Bytes(bad), undefined, bad);
  assert.equal(ipv6Bytes('::1')!.toString('hex'), '00000000000000000000000000000001');
  assert.equal(ipv6Bytes('fd00::a:1')!.toString('hex'), 'fd0000000000000000000000000a0001');
  assert.equal(ipv6Bytes('::ffff:10.1.2.3')!.toString('hex'), '00000000000000000000ffff0a010203');
  assert.equal(ipv6Bytes('1:2:3:4:5:6:7:8')!.toString('hex'), '00010002000300040005000600070008');
  for (const bad of ['1::2::3', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', 'g::1', '1:2:3:4:5:6:7:8::']) assert.equal(ipv6Bytes(bad), undefined, bad);
});

test('fuzz: random and mutated packets never throw out of the parsers', () => {
  const seeds = [buildQuery(1, 'helloworld.hello.global', TYPE_A), buildQuery(2, 'a.b.c.d.e', TYPE_AAAA)];
  for (let i = 0; i < 20_000; i++) {
    let b: Buffer;
    if (i % 2 === 0) b = randomBytes(i % 600);
    else {
      b = Buffer.from(seeds[i % seeds.length]!);
      for (let k = 0; k < 1 + (i % 5); k++) b[(i * 7 + k * 13) % b.length] = (i * 31 + k) & 0xff;
      if (i % 3 === 0) b = b.subarray(0, i % b.length);
    }
    const p = parseQuery(b);
    assert.ok(p.kind === 'query' || p.kind === 'error' || p.kind === 'drop');
    parseResponse(b);
  }
});
