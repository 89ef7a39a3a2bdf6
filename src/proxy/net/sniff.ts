/**
 * Protocol sniffing for captured connections (Envoy's tls_inspector plus http_inspector): a TLS
 * ClientHello (SNI, ALPN), an HTTP/1 request line, the HTTP/2 preface, or anything else. Client-
 * first protocols decide within the first bytes; for server-first ones (SMTP, MySQL…) the client
 * sends nothing, so after `timeoutMs` the connection is judged as opaque TCP, never held.
 */
import type { Socket } from 'node:net';
import { parseClientHello } from './clienthello.js';

export type Sniffed =
  | { kind: 'tls'; serverName: string | undefined; alpn: string[] }
  | { kind: 'http'; protocol: 'http/1.1' | 'h2c' }
  | { kind: 'tcp' }
  | { kind: 'closed' };

const H2_PREFACE = 'PRI * HTTP/2.0\r\n';
const METHOD = /^[A-Z]{1,16} /;
const REQUEST_LINE = /^[A-Z]{1,16} \S+ HTTP\/1\.[01]\r?\n/;
/** Longest request line we wait for before calling it TCP. */
const MAX_LINE = 8192;

/** The verdict on the bytes so far, or undefined when more are needed. */
export function judge(buf: Buffer): Exclude<Sniffed, { kind: 'closed' }> | undefined {
  if (buf.length === 0) return undefined;
  if (buf[0] === 0x16) {
    const r = parseClientHello(buf);
    if (r.kind === 'need-more') return undefined;
    return r.kind === 'tls' ? { kind: 'tls', serverName: r.serverName, alpn: r.alpn } : { kind: 'tcp' };
  }
  const head = buf.subarray(0, Math.min(buf.length, MAX_LINE)).toString('latin1');
  if (H2_PREFACE.startsWith(head)) return head.length >= H2_PREFACE.length ? { kind: 'http', protocol: 'h2c' } : undefined;
  if (head.startsWith(H2_PREFACE)) return { kind: 'http', protocol: 'h2c' };
  if (REQUEST_LINE.test(head)) return { kind: 'http', protocol: 'http/1.1' };
  const partialMethod = /^[A-Z]{1,16}$/.test(head) || (METHOD.test(head) && !head.includes('\n') && head.length < MAX_LINE);
  return partialMethod ? undefined : { kind: 'tcp' };
}

/** Reads until `judge` decides (or the timeout); the socket is left paused, `consumed` to replay. */
export function sniff(socket: Socket, timeoutMs: number): Promise<{ result: Sniffed; consumed: Buffer }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const all = (): Buffer => (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    const finish = (result: Sniffed): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onEnd);
      resolve({ result, consumed: all() });
    };
    const onData = (c: Buffer): void => {
      chunks.push(c);
      size += c.length;
      const v = judge(all());
      if (v) finish(v);
    };
    // A client that half-closes after its request (or sends nothing) is still served.
    const onEnd = (): void => finish(size > 0 ? (judge(all()) ?? { kind: 'tcp' }) : { kind: 'closed' });
    const timer = setTimeout(() => finish(size > 0 ? (judge(all()) ?? { kind: 'tcp' }) : { kind: 'tcp' }), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onEnd);
    socket.resume();
  });
}
