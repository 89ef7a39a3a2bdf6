/**
 * Forwarding what the sidecar does not own to the resolvers of /etc/resolv.conf: the client's
 * packet goes out as is (so EDNS, DNSSEC bits and record types we do not parse pass through), over
 * UDP for a UDP query and TCP for a TCP one, to each upstream in turn until one answers within the
 * timeout. A fresh socket per query keeps answers from being confused (and spoofed answers from
 * being accepted: only the upstream's address and port, with the query's id, count).
 *
 * In-flight forwards are bounded: beyond `maxInFlight` the caller gets 'busy' at once and answers
 * REFUSED, so a query flood costs the proxy a bounded number of sockets and timers.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { realTimers, type Timers } from '../../mesh/timers.js';

export interface Upstream {
  readonly host: string;
  readonly port: number;
}

/** glibc reads at most three nameservers (MAXNS). */
const MAXNS = 3;

/**
 * The `nameserver` lines of a resolv.conf (comments `#`/`;` ignored, IPv6 zone kept, at most
 * three, port 53). None: 127.0.0.1, as glibc assumes.
 */
export function parseResolvConf(text: string): Upstream[] {
  const out: Upstream[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const m = /^nameserver\s+(\S+)$/.exec(line);
    if (!m) continue;
    const host = m[1]!;
    if (net.isIP(host.split('%')[0]!) === 0) continue;
    if (out.length < MAXNS) out.push({ host, port: 53 });
  }
  return out.length > 0 ? out : [{ host: '127.0.0.1', port: 53 }];
}

/** `host:port`, `[v6]:port` or a bare address (port 53). */
export function parseUpstream(s: string): Upstream | undefined {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  const v4 = /^([^:]+)(?::(\d+))?$/.exec(s);
  const host = v6 ? v6[1]! : v4 ? v4[1]! : net.isIP(s) === 6 ? s : undefined;
  const portText = v6 ? v6[2] : v4 ? v4[2] : undefined;
  if (host === undefined || net.isIP(host.split('%')[0]!) === 0) return undefined;
  const port = portText === undefined ? 53 : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host, port };
}

export type ForwardResult = { kind: 'answer'; packet: Buffer } | { kind: 'failed'; reason: string } | { kind: 'busy' };

export interface ForwarderOptions {
  readonly upstreams: readonly Upstream[];
  /** Per upstream attempt; default 2 s. */
  readonly timeoutMs?: number;
  /** Default 256. */
  readonly maxInFlight?: number;
  readonly timers?: Timers;
}

/** DNS over TCP frames each message with a 2-byte length (RFC 1035 §4.2.2). */
export function frame(packet: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(packet.length, 0);
  return Buffer.concat([len, packet]);
}

export class Forwarder {
  private inFlight = 0;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private readonly timers: Timers;
  private closed = false;
  private readonly open = new Set<{ destroy(): void }>();

  constructor(private readonly opts: ForwarderOptions) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.maxInFlight = opts.maxInFlight ?? 256;
    this.timers = opts.timers ?? realTimers;
  }

  get pending(): number {
    return this.inFlight;
  }

  /** Forwards one query; never rejects. */
  async forward(packet: Buffer, transport: 'udp' | 'tcp'): Promise<ForwardResult> {
    if (this.closed) return { kind: 'failed', reason: 'closed' };
    if (this.inFlight >= this.maxInFlight) return { kind: 'busy' };
    if (packet.length < 2) return { kind: 'failed', reason: 'no query id' };
    this.inFlight++;
    const reasons: string[] = [];
    try {
      for (const u of this.opts.upstreams) {
        if (this.closed) break;
        try {
          const r = transport === 'udp' ? await this.udp(u, packet) : await this.tcp(u, packet);
          if (r.length >= 2 && r.readUInt16BE(0) === packet.readUInt16BE(0)) return { kind: 'answer', packet: r };
          reasons.push(`${u.host}:${u.port}: answer with another id`);
        } catch (e) {
          reasons.push(`${u.host}:${u.port}: ${(e as Error).message}`);
        }
      }
      return { kind: 'failed', reason: reasons.join('; ') || 'no upstream resolver' };
    } finally {
      this.inFlight--;
    }
  }

  close(): void {
    this.closed = true;
    for (const s of this.open) s.destroy();
    this.open.clear();
  }

  private udp(u: Upstream, packet: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const host = u.host;
      const sock = dgram.createSocket(net.isIP(host.split('%')[0]!) === 6 ? 'udp6' : 'udp4');
      const id = packet.readUInt16BE(0);
      const handle = { destroy: () => finish(new Error('closed')) };
      let done = false;
      const finish = (err: Error | undefined, msg?: Buffer): void => {
        if (done) return;
        done = true;
        this.timers.clearTimeout(timer);
        this.open.delete(handle);
        try {
          sock.close();
        } catch {
          // already closed
        }
        if (err) reject(err);
        else resolve(msg!);
      };
      const timer = this.timers.setTimeout(() => finish(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      this.open.add(handle);
      sock.on('error', (e) => finish(e));
      sock.on('message', (msg, rinfo) => {
        // Only the upstream we asked, with our id, may answer; anything else is ignored.
        if (rinfo.port !== u.port || rinfo.address !== host.split('%')[0] || msg.length < 12 || msg.readUInt16BE(0) !== id) return;
        finish(undefined, msg);
      });
      sock.send(packet, u.port, host, (e) => {
        if (e) finish(e);
      });
    });
  }

  private tcp(u: Upstream, packet: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: u.host, port: u.port });
      const handle = { destroy: () => finish(new Error('closed')) };
      let buf = Buffer.alloc(0);
      let done = false;
      const finish = (err: Error | undefined, msg?: Buffer): void => {
        if (done) return;
        done = true;
        this.timers.clearTimeout(timer);
        this.open.delete(handle);
        sock.destroy();
        if (err) reject(err);
        else resolve(msg!);
      };
      const timer = this.timers.setTimeout(() => finish(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      this.open.add(handle);
      sock.on('error', (e) => finish(e));
      sock.on('close', () => finish(new Error('connection closed before an answer')));
      sock.on('connect', () => sock.write(frame(packet)));
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length < 2) return;
        const len = buf.readUInt16BE(0);
        if (buf.length >= 2 + len) finish(undefined, Buffer.from(buf.subarray(2, 2 + len)));
      });
    });
  }
}
