import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import * as net from 'node:net';
import { after, before, test } from 'node:test';
import { DnsServer } from '../../../src/proxy/dns/server.js';
import { buildQuery, parseResponse, RCODE_FORMERR, RCODE_NOERROR, RCODE_REFUSED, RCODE_SERVFAIL, TYPE_A, TYPE_AAAA } from '../../../src/proxy/dns/packet.js';
import { frame } from '../../../src/proxy/dns/upstream.js';
import type { NameTableModel } from '../../../src/proxy/decode/nametable.js';
import { startFakeUpstream, type FakeUpstream } from './fakeupstream.js';

// Loopback range 127.75.0.0/16 is this file's (see the test plan of issue 14).
const SLEEP = '127.75.1.10';
const HELLO = '127.75.1.11';
const UPSTREAM = '127.75.1.53';
const DEAD = '127.75.1.54';

const TABLE: NameTableModel = new Map([
  ['helloworld.hello.svc.cluster.local', { ips: ['240.240.17.3'], registry: 'Kubernetes', shortname: 'helloworld', namespace: 'hello' }],
  ['helloworld.hello.global', { ips: ['127.255.0.8'], registry: 'External' }],
  ['dual.example.com', { ips: ['10.9.8.7', 'fd00::7'], registry: 'External' }],
  // An FQDN that is also the `name.ns` form of another entry wins over the derived one.
  ['sleep.hello', { ips: ['10.1.1.1'], registry: 'External' }],
  ['sleep.hello.svc.cluster.local', { ips: ['240.240.17.4'], registry: 'Kubernetes', shortname: 'sleep', namespace: 'hello' }],
]);

let upstream: FakeUpstream;
let sleepDns: DnsServer;
let helloDns: DnsServer;

before(async () => {
  upstream = await startFakeUpstream(UPSTREAM, { 'example.test': '192.0.2.7' });
  const common = { port: 15053, upstreams: [{ host: UPSTREAM, port: upstream.port }], upstreamTimeoutMs: 1000 };
  sleepDns = await DnsServer.start({ ...common, host: SLEEP, namespace: 'sleep' });
  helloDns = await DnsServer.start({ ...common, host: HELLO, namespace: 'hello' });
  sleepDns.setTable(TABLE);
  helloDns.setTable(TABLE);
});

after(async () => {
  await sleepDns?.close();
  await helloDns?.close();
  await upstream?.close();
});

function resolver(host: string, port = 15053): Resolver {
  const r = new Resolver({ timeout: 2000, tries: 1 });
  r.setServers([`${host}:${port}`]);
  return r;
}

/** One UDP exchange, resent every second up to 5 times as a stub resolver does (UDP may drop under a flood). */
async function udpQuery(host: string, port: number, packet: Buffer): Promise<Buffer> {
  const s = dgram.createSocket('udp4');
  let resend: NodeJS.Timeout | undefined;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      let tries = 0;
      const send = (): void => {
        if (++tries > 5) return reject(new Error('no UDP answer after 5 tries'));
        s.send(packet, port, host);
        resend = setTimeout(send, 1000);
      };
      s.on('message', (m) => resolve(m));
      send();
    });
  } finally {
    clearTimeout(resend);
    s.close();
  }
}

async function tcpExchange(host: string, port: number, payload: Buffer, answers: number): Promise<Buffer[]> {
  const c = net.connect({ host, port });
  const out: Buffer[] = [];
  try {
    return await new Promise<Buffer[]>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${out.length} of ${answers} TCP answers`)), 5000);
      let buf = Buffer.alloc(0);
      c.on('error', reject);
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          out.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (out.length >= answers) {
          clearTimeout(t);
          resolve(out);
        }
      });
      c.on('connect', () => c.write(payload));
    });
  } finally {
    c.destroy();
  }
}

test('node:dns resolves mesh names over UDP: the FQDN, name.ns, name.ns.svc from anywhere; `.global` hosts as sent', async () => {
  const r = resolver(SLEEP);
  assert.deepEqual(await r.resolve4('helloworld.hello.svc.cluster.local'), ['240.240.17.3']);
  assert.deepEqual(await r.resolve4('helloworld.hello'), ['240.240.17.3']);
  assert.deepEqual(await r.resolve4('helloworld.hello.svc'), ['240.240.17.3']);
  assert.deepEqual(await r.resolve4('helloworld.hello.global'), ['127.255.0.8']);
  assert.deepEqual(await r.resolve4('HelloWorld.Hello.Global.'), ['127.255.0.8']);
});

test('the short name resolves only in the same namespace; elsewhere it goes upstream (NXDOMAIN there)', async () => {
  assert.deepEqual(await resolver(HELLO).resolve4('helloworld'), ['240.240.17.3']);
  const before = upstream.seen.udp.length;
  await assert.rejects(resolver(SLEEP).resolve4('helloworld'), { code: 'ENOTFOUND' });
  assert.ok(upstream.seen.udp.slice(before).includes('helloworld'));
});

test('an FQDN entry wins over a derived name', async () => {
  assert.deepEqual(await resolver(SLEEP).resolve4('sleep.hello'), ['10.1.1.1']);
  assert.deepEqual(await resolver(HELLO).resolve4('sleep'), ['240.240.17.4']);
});

test('AAAA: the v6 addresses, or NOERROR without data for a name we own with none (never forwarded)', async () => {
  const r = resolver(SLEEP);
  assert.deepEqual(await r.resolve6('dual.example.com'), ['fd00::7']);
  assert.deepEqual(await r.resolve4('dual.example.com'), ['10.9.8.7']);
  const before = upstream.seen.udp.length;
  await assert.rejects(r.resolve6('helloworld.hello.global'), { code: 'ENODATA' });
  const raw = parseResponse(await udpQuery(SLEEP, 15053, buildQuery(77, 'helloworld.hello.global', TYPE_AAAA)))!;
  assert.deepEqual([raw.id, raw.rcode, raw.authoritative, raw.answers.length], [77, RCODE_NOERROR, true, 0]);
  assert.equal(upstream.seen.udp.length, before);
});

test('other names are forwarded to the upstream resolver over UDP, raw', async () => {
  assert.deepEqual(await resolver(SLEEP).resolve4('example.test'), ['192.0.2.7']);
  await assert.rejects(resolver(SLEEP).resolve4('nowhere.test'), { code: 'ENOTFOUND' });
  assert.ok(upstream.seen.udp.includes('example.test'));
});

test('TCP: mesh names answered, pipelined and split frames, other names forwarded over TCP', async () => {
  const a = frame(buildQuery(1, 'helloworld.hello.global', TYPE_A));
  const b = frame(buildQuery(2, 'example.test', TYPE_A));
  const both = Buffer.concat([a, b]);
  const answers = await tcpExchange(SLEEP, 15053, both, 2);
  const byId = new Map(answers.map((x) => [parseResponse(x)!.id, parseResponse(x)!]));
  assert.deepEqual(byId.get(1)!.answers.map((x) => x.address), ['127.255.0.8']);
  assert.deepEqual(byId.get(2)!.answers.map((x) => x.address), ['192.0.2.7']);
  assert.ok(upstream.seen.tcp.includes('example.test'));
  // A frame split across writes.
  const c = net.connect({ host: SLEEP, port: 15053 });
  const got = new Promise<Buffer>((resolve) => c.once('data', resolve));
  await new Promise<void>((r) => c.once('connect', () => r()));
  c.write(a.subarray(0, 5));
  await new Promise((r) => setTimeout(r, 20));
  c.write(a.subarray(5));
  assert.deepEqual(parseResponse((await got).subarray(2))!.answers.map((x) => x.address), ['127.255.0.8']);
  c.destroy();
});

test('an upstream that does not answer gives SERVFAIL', async () => {
  const dns = await DnsServer.start({ host: '127.75.1.20', port: 0, namespace: 'sleep', upstreams: [{ host: DEAD, port: 5300 }], upstreamTimeoutMs: 200 });
  try {
    const r = parseResponse(await udpQuery('127.75.1.20', dns.address().port, buildQuery(5, 'example.test', TYPE_A)))!;
    assert.equal(r.rcode, RCODE_SERVFAIL);
    assert.equal(dns.stats.upstreamFailures, 1);
  } finally {
    await dns.close();
  }
});

test('flood: random and malformed packets over UDP and TCP never crash it; beyond the in-flight bound, REFUSED', async () => {
  const host = '127.75.1.21';
  // A black-hole upstream (nothing listens): every forward waits out its timeout.
  const dns = await DnsServer.start({ host, port: 0, namespace: 'sleep', upstreams: [{ host: DEAD, port: 5300 }], upstreamTimeoutMs: 1500, maxInFlight: 8 });
  dns.setTable(TABLE);
  const port = dns.address().port;
  const s = dgram.createSocket('udp4');
  const g = new net.Socket();
  try {
    const rcodes = new Map<number, number>();
    s.on('message', (m) => {
      const r = parseResponse(m);
      if (r) rcodes.set(r.rcode, (rcodes.get(r.rcode) ?? 0) + 1);
    });
    await new Promise<void>((r) => s.bind(0, '127.75.1.22', () => r()));
    const send = (b: Buffer) => new Promise<void>((r) => s.send(b, port, host, () => r()));
    for (let i = 0; i < 3000; i++) {
      if (i % 3 === 0) await send(randomBytes(i % 300));
      else if (i % 3 === 1) {
        const q = buildQuery(i & 0xffff, `n${i}.example.test`, TYPE_A);
        q.writeUInt16BE(3, 4); // three questions: FORMERR
        await send(q);
      } else await send(buildQuery(i & 0xffff, `n${i}.flood.test`, TYPE_A));
    }
    // Garbage over TCP: random frames, a frame longer than what follows, then a hang-up.
    const garbage = Buffer.concat([frame(randomBytes(40)), frame(Buffer.alloc(3)), randomBytes(500)]);
    g.connect({ host, port });
    g.on('error', () => {});
    g.on('connect', () => g.end(garbage));
    // Still answering from the table meanwhile, over both transports.
    const ok = parseResponse(await udpQuery(host, port, buildQuery(9, 'helloworld.hello.global', TYPE_A)))!;
    assert.deepEqual(ok.answers.map((a) => a.address), ['127.255.0.8']);
    const [t] = await tcpExchange(host, port, frame(buildQuery(10, 'helloworld.hello', TYPE_A)), 1);
    assert.deepEqual(parseResponse(t!)!.answers.map((a) => a.address), ['240.240.17.3']);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok((rcodes.get(RCODE_REFUSED) ?? 0) > 0, `REFUSED answers: ${JSON.stringify([...rcodes])}`);
    assert.ok((rcodes.get(RCODE_FORMERR) ?? 0) > 0, `FORMERR answers: ${JSON.stringify([...rcodes])}`);
    // UDP drops what a full socket buffer cannot hold (on either side): count what the server saw.
    assert.ok(dns.stats.malformed > 0 && dns.stats.refused > 0, JSON.stringify(dns.stats));
    assert.ok(dns.stats.refused + dns.stats.upstreamFailures + dns.stats.malformed + dns.stats.answered <= dns.stats.queries);
  } finally {
    s.close();
    g.destroy();
    await dns.close();
  }
});
