/**
 * Body framing of one HTTP/1.1 message: Content-Length, chunked, or until the connection closes.
 * The decoder hands out slices of the received buffers (no copies) and says where the message
 * ended, so the bytes after it (a pipelined request, a stray CRLF) stay with the connection.
 * Chunked trailers are parsed into `trailers` (the upstream codec hands them on, ADR 0116);
 * fields a trailer must not carry (framing, routing, hop-by-hop) are dropped.
 */
import { addHeaderValue, type Framing, type Headers } from './head.js';

export interface BodyData {
  /** A slice of the body, in order. Valid only during the call unless kept. */
  bodyData(chunk: Buffer): void;
}

const MAX_LINE = 4096;
/** Largest trailer section taken from an upstream (over HTTP/1.1 chunked or isle-mux/1). */
export const MAX_TRAILER_BYTES = 16 * 1024;
/** RFC 9110 §6.5.1: fields that framing, routing or the connection need, never taken from a trailer. */
const NOT_IN_TRAILERS = new Set(['content-length', 'transfer-encoding', 'host', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'content-type', 'content-encoding', 'content-range']);

/** Parsed trailer fields without those a trailer must not carry (undefined: none left). */
export function allowedTrailers(fields: Headers): Headers | undefined {
  let out: Headers | undefined;
  for (const name in fields) if (!NOT_IN_TRAILERS.has(name)) (out ??= {})[name] = fields[name]!;
  return out;
}
const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

const enum St {
  Length,
  Close,
  Size,
  Data,
  DataEnd,
  Trailers,
  Done,
}

export class BodyDecoder {
  private st: St;
  private left = 0;
  private line = '';
  private trailerBytes = 0;
  /** Set when the bytes are not valid chunked framing. */
  error: string | undefined;
  /** A chunked message's trailer fields, once done (undefined: none). */
  trailers: Headers | undefined;

  constructor(framing: Framing) {
    switch (framing.kind) {
      case 'none':
        this.st = St.Done;
        break;
      case 'length':
        this.st = St.Length;
        this.left = framing.length;
        break;
      case 'chunked':
        this.st = St.Size;
        break;
      case 'close':
        this.st = St.Close;
        break;
    }
  }

  get done(): boolean {
    return this.st === St.Done;
  }

  /** Whether the body ends only when the connection does. */
  get untilClose(): boolean {
    return this.st === St.Close;
  }

  /** The connection closed: a close-delimited body is complete; any other is truncated. */
  eof(): boolean {
    if (this.st === St.Close) {
      this.st = St.Done;
      return true;
    }
    return this.st === St.Done;
  }

  /**
   * Decodes from `buf[start]`. Returns the index just past the message's last byte (the rest is
   * the next message's), `buf.length` when all of it was body, or -1 on a framing error.
   */
  feed(buf: Buffer, start: number, out: BodyData): number {
    let i = start;
    const n = buf.length;
    while (i < n) {
      switch (this.st) {
        case St.Done:
          return i;
        case St.Close:
          out.bodyData(i === 0 ? buf : buf.subarray(i));
          return n;
        case St.Length: {
          const take = Math.min(this.left, n - i);
          out.bodyData(i === 0 && take === n ? buf : buf.subarray(i, i + take));
          i += take;
          this.left -= take;
          if (this.left === 0) this.st = St.Done;
          break;
        }
        case St.Data: {
          const take = Math.min(this.left, n - i);
          out.bodyData(buf.subarray(i, i + take));
          i += take;
          this.left -= take;
          if (this.left === 0) this.st = St.DataEnd;
          break;
        }
        case St.Size:
        case St.DataEnd:
        case St.Trailers: {
          const nl = buf.indexOf(10, i);
          const end = nl < 0 ? n : nl;
          this.line += buf.toString('latin1', i, end);
          if (this.line.length > MAX_LINE) return this.fail('chunk line too long');
          if (nl < 0) return n;
          i = nl + 1;
          const line = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line;
          this.line = '';
          if (this.st === St.DataEnd) {
            if (line !== '') return this.fail('missing CRLF after chunk data');
            this.st = St.Size;
          } else if (this.st === St.Size) {
            const semi = line.indexOf(';');
            const hex = (semi < 0 ? line : line.slice(0, semi)).trim();
            if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) return this.fail('invalid chunk size');
            this.left = parseInt(hex, 16);
            this.st = this.left === 0 ? St.Trailers : St.Data;
          } else {
            this.trailerBytes += line.length + 2;
            if (this.trailerBytes > MAX_TRAILER_BYTES) return this.fail('trailers too large');
            if (line === '') {
              this.st = St.Done;
              return i;
            }
            this.trailerField(line);
          }
          break;
        }
      }
    }
    return i;
  }

  private trailerField(line: string): void {
    const colon = line.indexOf(':');
    // A malformed trailer line is dropped, not fatal: the body before it is complete.
    if (colon <= 0) return;
    const name = line.slice(0, colon).toLowerCase();
    if (!FIELD_NAME.test(name) || NOT_IN_TRAILERS.has(name)) return;
    const value = line.slice(colon + 1).trim();
    // A plain object cannot hold `__proto__` (assigning it sets the prototype): dropped like a
    // malformed line. Repeats are read as own properties only (`constructor` is a field).
    if (name === '__proto__') return;
    addHeaderValue((this.trailers ??= {}), name, value);
  }

  private fail(reason: string): number {
    this.error = reason;
    this.st = St.Done;
    return -1;
  }
}

const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/** Chunked encoding of one data slice (size line, data, CRLF) for socket.write calls in a cork. */
export function chunkHeader(length: number): string {
  return `${length.toString(16)}\r\n`;
}

export { CRLF, LAST_CHUNK };
