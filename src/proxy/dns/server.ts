/**
 * The sidecar's DNS proxy (Istio's ISTIO_META_DNS_CAPTURE behaviour, ADR 0075): UDP and TCP on one
 * address (default port 15053; transparent capture redirects the app's port 53 here). Names the
 * control plane's NameTable holds are answered from it (names.ts); everything else is forwarded
 * to the upstream resolvers (upstream.ts), SERVFAIL when none answers.
 *
 * Bad input never throws out of a handler: what is not a readable query is dropped (no header,
 * or a response) or answered FORMERR/NOTIMP; a flood gets answers from the table, and REFUSED once
 * `maxInFlight` forwards are pending. TCP connections are bounded in number, in pending queries
 * each, in message size (by the 2-byte frame) and in idle time.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import type { Logger } from 'pino';
import { pino } from 'pino';
import type { NameTableModel } from '../decode/nametable.js';
import type { Timers } from '../../mesh/timers.js';
import { NameIndex } from './names.js';
import {
  answerResponse,
  CLASS_IN,
  errorResponse,
  parseQuery,
  RCODE_REFUSED,
  RCODE_SERVFAIL,
  TYPE_A,
  TYPE_AAAA,
  type DnsQuery,
} from './packet.js';
import { Forwarder, frame, type Upstream } from './upstream.js';

export { DNS_PROXY_PORT } from '../../mesh/names.js';

export interface DnsServerOptions {
  /** Where to listen (the proxy's own address in universal mode). */
  readonly host: string;
  /** 0: any free port (UDP and TCP get the same one). */
  readonly port: number;
  /** The proxy's namespace: short names are relative to it. */
  readonly namespace: string;
  readonly domainSuffix?: string;
  readonly upstreams: readonly Upstream[];
  /** Per upstream attempt; default 2 s. */
  readonly upstreamTimeoutMs?: number;
  /** Pending upstream forwards before REFUSED; default 256. */
  readonly maxInFlight?: number;
  /** Open TCP connections; default 128. */
  readonly maxTcpConnections?: number;
  /** A TCP connection with nothing pending is closed after this long; default 10 s (RFC 7766 suggests seconds). */
  readonly tcpIdleTimeoutMs?: number;
  /** TTL of our answers; default 30 s (Istio's). */
  readonly ttl?: number;
  readonly logger?: Logger;
  readonly timers?: Timers;
}

/** Counters, also shown on the admin `/stats` as `dns.*`. */
export interface DnsStats {
  queries: number;
  /** Answered from the name table (including NOERROR without data). */
  answered: number;
  forwarded: number;
  upstreamFailures: number;
  refused: number;
  malformed: number;
}

/** Pending queries per TCP connection before REFUSED. */
const TCP_PENDING_MAX = 32;

export class DnsServer {
  readonly stats: DnsStats = { queries: 0, answered: 0, forwarded: 0, upstreamFailures: 0, refused: 0, malformed: 0 };
  private index: NameIndex;
  private readonly forwarder: Forwarder;
  private readonly log: Logger;
  private readonly ttl: number;
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly conns = new Set<net.Socket>();
  private closed = false;

  private constructor(private readonly opts: DnsServerOptions) {
    this.index = new NameIndex(new Map(), opts.namespace, opts.domainSuffix);
    this.forwarder = new Forwarder({
      upstreams: opts.upstreams,
      ...(opts.upstreamTimeoutMs !== undefined ? { timeoutMs: opts.upstreamTimeoutMs } : {}),
      ...(opts.maxInFlight !== undefined ? { maxInFlight: opts.maxInFlight } : {}),
      ...(opts.timers ? { timers: opts.timers } : {}),
    });
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.ttl = opts.ttl ?? 30;
  }

  /** Binds UDP and TCP; rejects (with nothing left open) if either cannot. */
  static async start(opts: DnsServerOptions): Promise<DnsServer> {
    const s = new DnsServer(opts);
    try {
      await s.listen();
      return s;
    } catch (e) {
      await s.close();
      throw e;
    }
  }

  /** Replaces the names answered (a NameTable the xDS client accepted). */
  setTable(table: NameTableModel): void {
    this.index = new NameIndex(table, this.opts.namespace, this.opts.domainSuffix);
  }

  get names(): number {
    return this.index.size;
  }

  address(): { host: string; port: number } {
    const a = this.udp?.address();
    return { host: a?.address ?? this.opts.host, port: a?.port ?? this.opts.port };
  }

  /**
   * The answer to one packet, or undefined for no answer. Never rejects: whatever goes wrong
   * inside becomes SERVFAIL (or silence when the packet had no header).
   */
  async handle(packet: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    this.stats.queries++;
    const p = parseQuery(packet);
    if (p.kind === 'drop') {
      this.stats.malformed++;
      return undefined;
    }
    if (p.kind === 'error') {
      this.stats.malformed++;
      return errorResponse(p.id, p.flags, p.rcode);
    }
    const q = p.query;
    try {
      const own = this.answer(q, transport);
      if (own) {
        this.stats.answered++;
        return own;
      }
      const r = await this.forwarder.forward(packet, transport);
      if (r.kind === 'answer') {
        this.stats.forwarded++;
        return r.packet;
      }
      if (r.kind === 'busy') {
        this.stats.refused++;
        return errorResponse(q.id, q.flags, RCODE_REFUSED, q.questionBytes);
      }
      this.stats.upstreamFailures++;
      this.log.debug({ name: q.question.name, reason: r.reason }, 'DNS upstream failed; answering SERVFAIL');
      return errorResponse(q.id, q.flags, RCODE_SERVFAIL, q.questionBytes);
    } catch (e) {
      this.log.error({ err: e }, 'DNS query handling failed');
      return errorResponse(q.id, q.flags, RCODE_SERVFAIL, q.questionBytes);
    }
  }

  /** From the name table, or undefined when the name is not ours. */
  private answer(q: DnsQuery, transport: 'udp' | 'tcp'): Buffer | undefined {
    const { name, qtype, qclass } = q.question;
    if (name === undefined || qclass !== CLASS_IN) return undefined;
    const addrs = this.index.lookup(name);
    if (!addrs) {
      // `x.<search domain>` expansions of our own names are not ours either: upstream decides.
      return undefined;
    }
    // A name we own: A/AAAA from the table; other types exist-without-data (never leaked upstream).
    const rdatas = qtype === TYPE_A ? addrs.v4 : qtype === TYPE_AAAA ? addrs.v6 : [];
    return answerResponse(q, rdatas, this.ttl, transport === 'udp');
  }

  private listen(): Promise<void> {
    const { host } = this.opts;
    return new Promise<void>((resolve, reject) => {
      const udp = dgram.createSocket(net.isIP(host) === 6 ? 'udp6' : 'udp4');
      this.udp = udp;
      const fail = (e: Error): void => reject(e);
      udp.once('error', fail);
      udp.bind(this.opts.port, host, () => {
        udp.off('error', fail);
        udp.on('error', (e) => this.log.warn({ err: e }, 'DNS UDP socket error'));
        udp.on('message', (msg, rinfo) => this.onUdp(msg, rinfo));
        const tcp = net.createServer({ pauseOnConnect: false }, (c) => this.onTcp(c));
        tcp.maxConnections = this.opts.maxTcpConnections ?? 128;
        this.tcp = tcp;
        tcp.once('error', fail);
        tcp.listen({ host, port: udp.address().port, exclusive: true }, () => {
          tcp.off('error', fail);
          tcp.on('error', (e) => this.log.warn({ err: e }, 'DNS TCP server error'));
          resolve();
        });
      });
    });
  }

  private onUdp(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    void this.handle(msg, 'udp').then(
      (r) => {
        if (r && !this.closed) this.udp?.send(r, rinfo.port, rinfo.address, () => {});
      },
      () => {},
    );
  }

  private onTcp(c: net.Socket): void {
    this.conns.add(c);
    let buf: Buffer = Buffer.alloc(0);
    let pending = 0;
    c.setNoDelay(true);
    c.setTimeout(this.opts.tcpIdleTimeoutMs ?? 10_000, () => {
      if (pending === 0) c.destroy();
    });
    c.on('error', () => c.destroy());
    c.on('close', () => this.conns.delete(c));
    c.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      // Every complete frame; a partial one waits (at most 2 + 65535 bytes: the frame bounds it).
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = Buffer.from(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        if (pending >= TCP_PENDING_MAX) {
          this.stats.refused++;
          const p = parseQuery(msg);
          if (p.kind !== 'drop') c.write(frame(errorResponse(p.kind === 'query' ? p.query.id : p.id, p.kind === 'query' ? p.query.flags : p.flags, RCODE_REFUSED)));
          continue;
        }
        pending++;
        void this.handle(msg, 'tcp').then(
          (r) => {
            pending--;
            if (r && !c.destroyed) c.write(frame(r));
          },
          () => void pending--,
        );
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.forwarder.close();
    for (const c of this.conns) c.destroy();
    this.conns.clear();
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    await Promise.all([
      udp ? new Promise<void>((r) => { try { udp.close(() => r()); } catch { r(); } }) : undefined,
      tcp ? new Promise<void>((r) => tcp.close(() => r())) : undefined,
    ]);
  }
}

