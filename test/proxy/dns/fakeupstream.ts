/**
 * A tiny real resolver for the DNS proxy tests (not a test file): UDP and TCP on one loopback
 * address, answering `A` for the names it is given, NXDOMAIN for the rest, and counting what
 * arrived over which transport.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { answerResponse, errorResponse, ipv4Bytes, parseQuery, RCODE_NXDOMAIN, TYPE_A } from '../../../src/proxy/dns/packet.js';
import { frame } from '../../../src/proxy/dns/upstream.js';

export interface FakeUpstream {
  readonly host: string;
  readonly port: number;
  readonly seen: { udp: string[]; tcp: string[] };
  close(): Promise<void>;
}

function reply(msg: Buffer, names: Readonly<Record<string, string>>, seen: string[], transport: 'udp' | 'tcp'): Buffer | undefined {
  const p = parseQuery(msg);
  if (p.kind !== 'query') return undefined;
  const name = p.query.question.name ?? '';
  seen.push(name);
  const ip = names[name];
  if (ip === undefined) return errorResponse(p.query.id, p.query.flags, RCODE_NXDOMAIN, p.query.questionBytes);
  return answerResponse(p.query, p.query.question.qtype === TYPE_A ? [ipv4Bytes(ip)!] : [], 60, transport === 'udp');
}

export async function startFakeUpstream(host: string, names: Readonly<Record<string, string>>): Promise<FakeUpstream> {
  const seen = { udp: [] as string[], tcp: [] as string[] };
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(0, host, () => resolve());
  });
  udp.on('message', (msg, rinfo) => {
    const r = reply(msg, names, seen.udp, 'udp');
    if (r) udp.send(r, rinfo.port, rinfo.address);
  });
  const port = udp.address().port;
  const conns = new Set<net.Socket>();
  const tcp = net.createServer((c) => {
    conns.add(c);
    c.on('close', () => conns.delete(c));
    c.on('error', () => c.destroy());
    let buf = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const r = reply(buf.subarray(2, 2 + len), names, seen.tcp, 'tcp');
        buf = buf.subarray(2 + len);
        if (r) c.write(frame(r));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, host, () => resolve());
  });
  return {
    host,
    port,
    seen,
    close: async () => {
      for (const c of conns) c.destroy();
      await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
    },
  };
}
