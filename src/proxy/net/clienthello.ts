/**
 * Reads a TLS ClientHello without terminating TLS: Envoy's tls_inspector. The east-west gateway
 * routes on the SNI it finds, and a PERMISSIVE inbound listener decides TLS vs plaintext from the
 * first byte. The bytes read are handed back, so the caller can replay them to whoever handles
 * the connection (a TLS server, an HTTP parser, or the upstream socket of a passthrough).
 */
import type { Socket } from 'node:net';

/** Envoy's tls_inspector default limit (`max_client_hello_size`: 64 KiB). */
export const DEFAULT_MAX_CLIENT_HELLO_BYTES = 64 * 1024;

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;

export type ClientHelloResult =
  /** Not enough bytes yet: call again with more. */
  | { kind: 'need-more' }
  /** The first byte is not a TLS handshake record (plaintext, e.g. HTTP). */
  | { kind: 'not-tls' }
  /** Starts like TLS but is not a parseable ClientHello (or is larger than allowed). */
  | { kind: 'invalid'; reason: string }
  | { kind: 'tls'; serverName: string | undefined; alpn: string[]; /** legacy_version of the record layer */ recordVersion: number };

/** True when the first byte is a TLS handshake record; undefined when `buf` is empty. */
export function looksLikeTls(buf: Buffer): boolean | undefined {
  if (buf.length === 0) return undefined;
  return buf[0] === RECORD_HANDSHAKE;
}

class Short extends Error {}
class Bad extends Error {}

/** Cursor over a buffer; reading past the end throws `Short` (more bytes may fix it) or `Bad`. */
class Reader {
  constructor(private readonly buf: Buffer, private pos = 0, private readonly end = buf.length, private readonly complete = false) {}
  private need(n: number): void {
    if (this.pos + n > this.end) throw this.complete ? new Bad('truncated field') : new Short();
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u24(): number {
    this.need(3);
    const v = this.buf.readUIntBE(this.pos, 3);
    this.pos += 3;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  /** A sub-reader over the next `n` bytes, which must all be present. */
  sub(n: number): Reader {
    this.need(n);
    const r = new Reader(this.buf, this.pos, this.pos + n, true);
    this.pos += n;
    return r;
  }
  get remaining(): number {
    return this.end - this.pos;
  }
}

/**
 * Reassembles the handshake layer from as many TLS records as are present. A ClientHello may span
 * several records (large key shares), and a record may arrive over several TCP segments.
 */
function handshakeBytes(buf: Buffer): { data: Buffer; recordVersion: number } {
  const parts: Buffer[] = [];
  let pos = 0;
  let recordVersion = 0;
  while (pos + 5 <= buf.length) {
    if (buf[pos] !== RECORD_HANDSHAKE) throw new Bad(`record type ${buf[pos]} before the ClientHello ended`);
    const version = buf.readUInt16BE(pos + 1);
    if (buf[pos + 1] !== 3) throw new Bad(`record version 0x${version.toString(16)}`);
    if (pos === 0) recordVersion = version;
    const len = buf.readUInt16BE(pos + 3);
    if (len === 0 || len > 16384 + 2048) throw new Bad(`record length ${len}`);
    const end = pos + 5 + len;
    parts.push(buf.subarray(pos + 5, Math.min(end, buf.length)));
    pos = end;
  }
  return { data: Buffer.concat(parts), recordVersion };
}

/**
 * Parses the ClientHello at the start of `buf`. Pure: call again with a longer buffer while the
 * answer is `need-more`. `maxBytes` bounds what a client may make us hold before deciding.
 */
export function parseClientHello(buf: Buffer, maxBytes = DEFAULT_MAX_CLIENT_HELLO_BYTES): ClientHelloResult {
  if (buf.length === 0) return { kind: 'need-more' };
  if (buf[0] !== RECORD_HANDSHAKE) return { kind: 'not-tls' };
  try {
    if (buf.length < 5) return { kind: 'need-more' };
    // SSLv2-compatible hellos and anything not TLS 1.x start differently; refuse them here.
    if (buf[1] !== 3) return { kind: 'invalid', reason: `record version 0x${buf.readUInt16BE(1).toString(16)}` };
    const { data, recordVersion } = handshakeBytes(buf);
    const hs = new Reader(data);
    const type = hs.u8();
    if (type !== HANDSHAKE_CLIENT_HELLO) return { kind: 'invalid', reason: `handshake type ${type} is not ClientHello` };
    const length = hs.u24();
    if (length + 4 > maxBytes) return { kind: 'invalid', reason: `ClientHello of ${length} bytes exceeds ${maxBytes}` };
    if (hs.remaining < length) {
      if (buf.length >= maxBytes) return { kind: 'invalid', reason: `no complete ClientHello in ${maxBytes} bytes` };
      return { kind: 'need-more' };
    }
    const body = hs.sub(length);
    body.u16(); // legacy_version
    body.bytes(32); // random
    body.bytes(body.u8()); // session id
    const suites = body.u16();
    if (suites === 0 || suites % 2 !== 0) throw new Bad(`cipher_suites length ${suites}`);
    body.bytes(suites);
    body.bytes(body.u8()); // compression methods
    let serverName: string | undefined;
    const alpn: string[] = [];
    if (body.remaining > 0) {
      const exts = body.sub(body.u16());
      while (exts.remaining > 0) {
        const extType = exts.u16();
        const ext = exts.sub(exts.u16());
        if (extType === EXT_SERVER_NAME && ext.remaining > 0) {
          const list = ext.sub(ext.u16());
          while (list.remaining > 0) {
            const nameType = list.u8();
            const name = list.bytes(list.u16());
            // RFC 6066: only host_name (0) is defined, and at most one of each type.
            if (nameType === 0 && serverName === undefined) serverName = name.toString('latin1');
          }
        } else if (extType === EXT_ALPN) {
          const list = ext.sub(ext.u16());
          while (list.remaining > 0) alpn.push(list.bytes(list.u8()).toString('latin1'));
        }
      }
    }
    if (serverName !== undefined && !/^[\x21-\x7e]+$/.test(serverName)) throw new Bad('server name is not printable ASCII');
    return { kind: 'tls', serverName: serverName?.toLowerCase(), alpn, recordVersion };
  } catch (e) {
    if (e instanceof Short) {
      if (buf.length >= maxBytes) return { kind: 'invalid', reason: `no complete ClientHello in ${maxBytes} bytes` };
      return { kind: 'need-more' };
    }
    if (e instanceof Bad) return { kind: 'invalid', reason: e.message };
    throw e;
  }
}

export interface PeekOptions {
  /** Give up (result `invalid`, reason `timeout`) if no decision after this long. Envoy: 15 s listener_filters_timeout. */
  timeoutMs?: number;
  maxBytes?: number;
  /** Stop after the first byte: enough for TLS-vs-plaintext when the SNI is not needed. */
  firstByteOnly?: boolean;
}

export interface PeekResult {
  result: ClientHelloResult | { kind: 'closed' };
  /** Everything read from the socket so far, to be replayed. */
  consumed: Buffer;
}

/**
 * Reads from a fresh socket until the ClientHello can be judged. The socket is left paused with
 * no data listener; the caller replays `consumed` (socket.unshift, or write it upstream).
 */
export function peekClientHello(socket: Socket, opts: PeekOptions = {}): Promise<PeekResult> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_CLIENT_HELLO_BYTES;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: PeekResult['result']): void => {
      if (done) return;
      done = true;
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onEnd);
      if (timer) clearTimeout(timer);
      resolve({ result, consumed: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      if (opts.firstByteOnly) {
        finish(all[0] === RECORD_HANDSHAKE ? { kind: 'tls', serverName: undefined, alpn: [], recordVersion: 0 } : { kind: 'not-tls' });
        return;
      }
      const r = parseClientHello(all, maxBytes);
      if (r.kind !== 'need-more') finish(r);
    };
    const onEnd = (): void => finish({ kind: 'closed' });
    const timer = opts.timeoutMs ? setTimeout(() => finish({ kind: 'invalid', reason: 'timeout' }), opts.timeoutMs) : undefined;
    timer?.unref();
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onEnd);
    socket.resume();
  });
}
