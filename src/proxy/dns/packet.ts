/**
 * The subset of the DNS wire format (RFC 1035) the sidecar's DNS proxy needs: read one query's
 * header and question, write answers (A, AAAA) and error responses. No packet library is a
 * dependency, so this is written to be strict: every read is bounds-checked, names follow at most
 * MAX_POINTERS compression pointers and only backwards (no loops), and anything else is reported
 * as a result, never thrown. Packets that are not ours to answer are forwarded upstream as raw
 * bytes, so nothing here needs to understand the other record types.
 */

export const TYPE_A = 1;
export const TYPE_AAAA = 28;
export const CLASS_IN = 1;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;

const HEADER = 12;
const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
/** RFC 1035 §4.2.1: what a UDP answer may hold without EDNS. */
export const UDP_MAX = 512;
/** A name is at most 255 octets on the wire (RFC 1035 §3.1). */
const MAX_NAME = 255;
const MAX_POINTERS = 32;

export interface DnsQuestion {
  /** Lower case, dot-separated, no trailing dot; '' for the root. Undefined if a label holds a dot or a non-printable byte. */
  readonly name: string | undefined;
  readonly qtype: number;
  readonly qclass: number;
}

export interface DnsQuery {
  readonly id: number;
  readonly flags: number;
  readonly question: DnsQuestion;
  /** The question section as received (echoed in answers, so the case the client used is kept). */
  readonly questionBytes: Buffer;
}

export type ParsedQuery =
  | { readonly kind: 'query'; readonly query: DnsQuery }
  /** Answer with `rcode` (the header was readable). */
  | { readonly kind: 'error'; readonly id: number; readonly flags: number; readonly rcode: number; readonly reason: string }
  /** Nothing to answer: too short for a header, or a response rather than a query. */
  | { readonly kind: 'drop'; readonly reason: string };

/** A name at `off`: its labels and where the name ends in the packet (after the first pointer). */
export function readName(buf: Buffer, off: number): { labels: string[]; end: number } | { error: string } {
  const labels: string[] = [];
  let pos = off;
  let end = -1;
  let wire = 0;
  let pointers = 0;
  // Pointers may only go backwards, before where the current run of labels started.
  let limit = off;
  for (;;) {
    if (pos >= buf.length) return { error: 'name runs past the end of the packet' };
    const b = buf[pos]!;
    if ((b & 0xc0) === 0xc0) {
      if (pos + 1 >= buf.length) return { error: 'truncated compression pointer' };
      const target = ((b & 0x3f) << 8) | buf[pos + 1]!;
      if (++pointers > MAX_POINTERS) return { error: 'too many compression pointers' };
      if (target >= limit) return { error: 'compression pointer does not point backwards' };
      if (end < 0) end = pos + 2;
      pos = target;
      limit = target;
      continue;
    }
    if ((b & 0xc0) !== 0) return { error: `unsupported label type 0x${(b & 0xc0).toString(16)}` };
    wire += b + 1;
    if (wire > MAX_NAME) return { error: 'name longer than 255 octets' };
    if (b === 0) {
      if (end < 0) end = pos + 1;
      return { labels, end };
    }
    if (pos + 1 + b > buf.length) return { error: 'label runs past the end of the packet' };
    labels.push(buf.toString('latin1', pos + 1, pos + 1 + b));
    pos += 1 + b;
  }
}

const PRINTABLE = /^[\x21-\x7e]+$/;

function nameOf(labels: readonly string[]): string | undefined {
  for (const l of labels) if (l.includes('.') || !PRINTABLE.test(l)) return undefined;
  return labels.join('.').toLowerCase();
}

/** Reads a query's header and its one question. Never throws. */
export function parseQuery(buf: Buffer): ParsedQuery {
  if (buf.length < HEADER) return { kind: 'drop', reason: `packet of ${buf.length} bytes is shorter than a DNS header` };
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  // Answering a response could start a loop between two resolvers (or reflect a spoofed one).
  if (flags & FLAG_QR) return { kind: 'drop', reason: 'a response, not a query' };
  const err = (rcode: number, reason: string): ParsedQuery => ({ kind: 'error', id, flags, rcode, reason });
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== 0) return err(RCODE_NOTIMP, `opcode ${opcode} is not supported`);
  const qdcount = buf.readUInt16BE(4);
  if (qdcount !== 1) return err(RCODE_FORMERR, `${qdcount} questions (exactly one is supported)`);
  const n = readName(buf, HEADER);
  if ('error' in n) return err(RCODE_FORMERR, n.error);
  if (n.end + 4 > buf.length) return err(RCODE_FORMERR, 'question runs past the end of the packet');
  const question: DnsQuestion = { name: nameOf(n.labels), qtype: buf.readUInt16BE(n.end), qclass: buf.readUInt16BE(n.end + 2) };
  return { kind: 'query', query: { id, flags, question, questionBytes: buf.subarray(HEADER, n.end + 4) } };
}

function header(id: number, flags: number, qd: number, an: number): Buffer {
  const h = Buffer.alloc(HEADER);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(qd, 4);
  h.writeUInt16BE(an, 6);
  return h;
}

/** Response flags: QR, the query's opcode and RD, RA (we recurse by forwarding), the rcode. */
function responseFlags(queryFlags: number, rcode: number, authoritative: boolean): number {
  return FLAG_QR | (queryFlags & 0x7800) | (queryFlags & FLAG_RD) | FLAG_RA | (authoritative ? FLAG_AA : 0) | (rcode & 0xf);
}

/** An error response: the question echoed when there is one. */
export function errorResponse(id: number, queryFlags: number, rcode: number, questionBytes?: Buffer): Buffer {
  const h = header(id, responseFlags(queryFlags, rcode, false), questionBytes ? 1 : 0, 0);
  return questionBytes ? Buffer.concat([h, questionBytes]) : h;
}

/**
 * An authoritative answer to `q` with one record per address (4 bytes for A, 16 for AAAA); none is
 * NOERROR with no data (the name exists, not with that type). Over UDP an answer that would pass
 * 512 bytes is sent empty with TC set, so the client retries over TCP.
 */
export function answerResponse(q: DnsQuery, rdatas: readonly Buffer[], ttl: number, udp: boolean): Buffer {
  const records: Buffer[] = [];
  for (const rd of rdatas) {
    const r = Buffer.alloc(12 + rd.length);
    r.writeUInt16BE(0xc000 | HEADER, 0); // the name: a pointer to the question's
    r.writeUInt16BE(q.question.qtype, 2);
    r.writeUInt16BE(CLASS_IN, 4);
    r.writeUInt32BE(ttl >>> 0, 6);
    r.writeUInt16BE(rd.length, 10);
    rd.copy(r, 12);
    records.push(r);
  }
  const size = HEADER + q.questionBytes.length + records.reduce((n, r) => n + r.length, 0);
  if (udp && size > UDP_MAX) {
    return Buffer.concat([header(q.id, responseFlags(q.flags, RCODE_NOERROR, true) | FLAG_TC, 1, 0), q.questionBytes]);
  }
  return Buffer.concat([header(q.id, responseFlags(q.flags, RCODE_NOERROR, true), 1, records.length), q.questionBytes, ...records]);
}

/** The 4 bytes of a dotted IPv4 address, or undefined. */
export function ipv4Bytes(ip: string): Buffer | undefined {
  const parts = ip.split('.');
  if (parts.length !== 4) return undefined;
  const out = Buffer.alloc(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    out[i] = Number(p);
  }
  return out;
}

/** The 16 bytes of an IPv6 address (with `::` and an embedded IPv4 tail), or undefined. */
export function ipv6Bytes(ip: string): Buffer | undefined {
  const zone = ip.indexOf('%');
  const s = zone >= 0 ? ip.slice(0, zone) : ip;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    const parts = h.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = ipv4Bytes(p);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) out.push(parseInt(p, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** What tests and tools read back from a response: header fields and A/AAAA answers as text. */
export interface ParsedResponse {
  readonly id: number;
  readonly rcode: number;
  readonly authoritative: boolean;
  readonly truncated: boolean;
  readonly answers: readonly { name: string; type: number; ttl: number; address?: string }[];
}

/** Parses a response (header, questions skipped, answer records); undefined if malformed. */
export function parseResponse(buf: Buffer): ParsedResponse | undefined {
  if (buf.length < HEADER) return undefined;
  const flags = buf.readUInt16BE(2);
  if (!(flags & FLAG_QR)) return undefined;
  let pos = HEADER;
  for (let i = buf.readUInt16BE(4); i > 0; i--) {
    const n = readName(buf, pos);
    if ('error' in n || n.end + 4 > buf.length) return undefined;
    pos = n.end + 4;
  }
  const answers: { name: string; type: number; ttl: number; address?: string }[] = [];
  for (let i = buf.readUInt16BE(6); i > 0; i--) {
    const n = readName(buf, pos);
    if ('error' in n || n.end + 10 > buf.length) return undefined;
    const type = buf.readUInt16BE(n.end);
    const ttl = buf.readUInt32BE(n.end + 4);
    const len = buf.readUInt16BE(n.end + 8);
    const rd = n.end + 10;
    if (rd + len > buf.length) return undefined;
    const data = buf.subarray(rd, rd + len);
    let address: string | undefined;
    if (type === TYPE_A && len === 4) address = [...data].join('.');
    else if (type === TYPE_AAAA && len === 16) address = Array.from({ length: 8 }, (_, k) => data.readUInt16BE(k * 2).toString(16)).join(':');
    answers.push({ name: n.labels.join('.'), type, ttl, ...(address !== undefined ? { address } : {}) });
    pos = rd + len;
  }
  return { id: buf.readUInt16BE(0), rcode: flags & 0xf, authoritative: (flags & FLAG_AA) !== 0, truncated: (flags & FLAG_TC) !== 0, answers };
}

/** A query packet for one question (tests and tools; the proxy itself only answers). */
export function buildQuery(id: number, name: string, qtype: number, recursionDesired = true): Buffer {
  const labels = name.replace(/\.$/, '').split('.').filter((l) => l !== '');
  const parts: Buffer[] = [header(id, recursionDesired ? FLAG_RD : 0, 1, 0)];
  for (const l of labels) {
    const b = Buffer.from(l, 'latin1');
    if (b.length > 63) throw new RangeError(`label ${JSON.stringify(l)} is longer than 63 bytes`);
    parts.push(Buffer.from([b.length]), b);
  }
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(qtype, 1);
  tail.writeUInt16BE(CLASS_IN, 3);
  parts.push(tail);
  return Buffer.concat(parts);
}
