/**
 * Isle's sidecar-to-sidecar multiplexing protocol, `isle-mux/1` (ADR 0138): the frame layout and
 * a reader. Negotiated by ALPN only between Isle sidecars on their mTLS connections; anything
 * else speaks HTTP/1.1 as before.
 *
 * A frame is a 10-byte header and a payload:
 *
 *   u32 payload length | u8 type | u8 flags | u32 stream id | payload
 *
 * Request, response and trailer heads travel as HTTP/1.1 text (`GET /x HTTP/1.1\r\n…\r\n\r\n`):
 * both ends already parse and serialize that fast, with the same limits and validation as on a
 * plain HTTP/1.1 connection, so a request means exactly what it means there.
 */

export const MUX_ALPN = 'isle-mux/1';

/**
 * The `ISLE_PROXY_MUX` switch, read where a sidecar's pools and listeners are made unless they
 * are told: `off` (or `0`, `false`) turns isle-mux/1 off in both directions; anything else: on.
 */
export function muxFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = (env['ISLE_PROXY_MUX'] ?? '').trim().toLowerCase();
  return !(v === 'off' || v === '0' || v === 'false');
}
export const HEADER_BYTES = 10;
/** Largest payload a peer may send; larger is a protocol error (DATA is cut to the window anyway). */
export const MAX_PAYLOAD = 1024 * 1024;
/** Per-stream credit each side grants the other for DATA, in bytes. */
export const INITIAL_WINDOW = 64 * 1024;
/** A receiver returns credit once this much was consumed (fewer WINDOW frames). */
export const WINDOW_UPDATE_AT = INITIAL_WINDOW / 4;
/** The initial window a peer's PREFACE may announce; outside it the preface is bad. */
export const MIN_WINDOW = 1024;
export const MAX_WINDOW = 16 * 1024 * 1024;
/**
 * Streams one connection may have open at once; more are refused (the client sends them again
 * once, elsewhere) and a client opens another connection rather than exceed it. With the window
 * it bounds the initial credit one authenticated peer gets: 256 × 64 KiB = 16 MiB (grown windows
 * are bounded by CONNECTION_CREDIT).
 */
export const MAX_CONCURRENT_STREAMS = 256;
/**
 * Received DATA whose credit was not yet returned, across the streams of one connection, above
 * which a server takes no new streams (they are refused and sent elsewhere) until it drops.
 */
export const CONNECTION_BUDGET = 8 * 1024 * 1024;
/**
 * Receive-window auto-tuning (ADR 0138, issue 12): a stream whose consumer took a whole window
 * without pausing had the window, not the consumer, as its bottleneck; its window doubles, up to
 * this per stream (a fixed 64 KiB caps one stream at 64 KiB per round trip across clusters).
 */
export const MAX_STREAM_WINDOW = 16 * 1024 * 1024;
/**
 * Credit a receiver may have outstanding (granted, not yet received and consumed) across the
 * streams of one connection; at it windows stop growing (they never shrink below what was granted).
 */
export const CONNECTION_CREDIT = 32 * 1024 * 1024;

export const enum FrameType {
  /** Stream 0, first frame from each side: magic + u32 initial window. */
  Preface = 0,
  /** Client → server: the request head. END: no body. */
  Request = 1,
  /** Body bytes, either direction. END: the last ones. */
  Data = 2,
  /** Server → client: the response head. END: no body. */
  Response = 3,
  /** Server → client: trailer fields; always ends the stream. */
  Trailers = 4,
  /** Either direction: the stream is abandoned (u32 code + reason text). */
  Reset = 5,
  /** Either direction: u32 more bytes of DATA credit for the stream. */
  Window = 6,
  /** Stream 0: no new streams after the u32 last stream id (+ reason text); in-flight ones finish. */
  GoAway = 7,
}

export const FLAG_END = 1;

export const enum ResetCode {
  /** The sender gave up on the stream (client abort, per-try timeout, response done early). */
  Cancel = 1,
  /** The stream was not processed at all: safe to send again elsewhere. */
  Refused = 2,
  Protocol = 3,
  /** The response could not be completed honestly. */
  Internal = 4,
  /** More DATA than the credit allowed. */
  Flow = 5,
}

const MAGIC = Buffer.from('isle-mux/1\n', 'latin1');

export function prefaceFrame(window: number): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES + MAGIC.length + 4);
  headerAt(b, 0, MAGIC.length + 4, FrameType.Preface, 0, 0);
  MAGIC.copy(b, HEADER_BYTES);
  b.writeUInt32BE(window, HEADER_BYTES + MAGIC.length);
  return b;
}

/** The peer's initial window from its preface; undefined: not an isle-mux/1 preface, or a window out of range. */
export function parsePreface(payload: Buffer): number | undefined {
  if (payload.length !== MAGIC.length + 4 || !payload.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const w = payload.readUInt32BE(MAGIC.length);
  return w >= MIN_WINDOW && w <= MAX_WINDOW ? w : undefined;
}

/** A frame header written into `b` at `at`. */
export function headerAt(b: Buffer, at: number, length: number, type: FrameType, flags: number, id: number): void {
  b.writeUInt32BE(length, at);
  b[at + 4] = type;
  b[at + 5] = flags;
  b.writeUInt32BE(id, at + 6);
}

/** A frame whose payload is latin1 text (heads): one allocation, no copy of the text. */
export function textFrame(type: FrameType, flags: number, id: number, text: string): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES + text.length);
  writeTextFrame(b, 0, type, flags, id, text);
  return b;
}

/** A head frame with a small body in the same buffer (the common request or response). */
export function textDataFrames(type: FrameType, id: number, text: string, body: Buffer, end: boolean): Buffer {
  const b = Buffer.allocUnsafe(2 * HEADER_BYTES + text.length + body.length);
  writeTextDataFrames(b, 0, type, id, text, body, end);
  return b;
}

/** `textFrame` written into `b` at `at` (room checked by the caller): the offset after it. */
export function writeTextFrame(b: Buffer, at: number, type: FrameType, flags: number, id: number, text: string): number {
  // latin1: one byte per character (what Buffer.byteLength(text, 'latin1') says too).
  const n = text.length;
  headerAt(b, at, n, type, flags, id);
  b.write(text, at + HEADER_BYTES, n, 'latin1');
  return at + HEADER_BYTES + n;
}

/** `textDataFrames` written into `b` at `at` (room checked by the caller): the offset after them. */
export function writeTextDataFrames(b: Buffer, at: number, type: FrameType, id: number, text: string, body: Buffer, end: boolean): number {
  at = writeTextFrame(b, at, type, 0, id, text);
  headerAt(b, at, body.length, FrameType.Data, end ? FLAG_END : 0, id);
  body.copy(b, at + HEADER_BYTES);
  return at + HEADER_BYTES + body.length;
}

/** The header of a DATA frame (its payload is written after it, uncopied). */
export function dataHeader(id: number, length: number, end: boolean): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES);
  headerAt(b, 0, length, FrameType.Data, end ? FLAG_END : 0, id);
  return b;
}

export function u32Frame(type: FrameType, id: number, value: number, reason = ''): Buffer {
  const n = Buffer.byteLength(reason, 'utf8');
  const b = Buffer.allocUnsafe(HEADER_BYTES + 4 + n);
  headerAt(b, 0, 4 + n, type, 0, id);
  b.writeUInt32BE(value, HEADER_BYTES);
  if (n) b.write(reason, HEADER_BYTES + 4, 'utf8');
  return b;
}

/** Code and reason of a RESET or GOAWAY payload (undefined when too short). */
export function parseU32Frame(payload: Buffer): { value: number; reason: string } | undefined {
  if (payload.length < 4) return undefined;
  return { value: payload.readUInt32BE(0), reason: payload.toString('utf8', 4, Math.min(payload.length, 4 + 512)) };
}

export interface FrameSink {
  /** One frame; a string return is a connection-level protocol error. */
  frame(type: number, flags: number, id: number, payload: Buffer): string | undefined;
}

const EMPTY = Buffer.alloc(0);

/**
 * Splits received bytes into frames. Payloads are slices of the received buffers (node gives each
 * read its own buffer); a frame split across reads is joined once, when all of it is there.
 */
export class FrameReader {
  private parts: Buffer[] = [];
  private partBytes = 0;
  /** Bytes the frame at the front needs in all (header + payload), once its header is known. */
  private need = HEADER_BYTES;

  constructor(private readonly sink: FrameSink) {}

  /** Feeds bytes; returns a protocol error, if any (the caller closes the connection). */
  feed(d: Buffer): string | undefined {
    if (this.partBytes > 0) {
      this.parts.push(d);
      this.partBytes += d.length;
      if (this.partBytes < this.need) return undefined;
      d = Buffer.concat(this.parts, this.partBytes);
      this.parts = [];
      this.partBytes = 0;
    }
    let at = 0;
    const n = d.length;
    while (n - at >= HEADER_BYTES) {
      const len = d.readUInt32BE(at);
      if (len > MAX_PAYLOAD) return `isle-mux: frame of ${len} bytes is larger than ${MAX_PAYLOAD}`;
      if (n - at < HEADER_BYTES + len) {
        this.need = HEADER_BYTES + len;
        break;
      }
      const err = this.sink.frame(d[at + 4]!, d[at + 5]!, d.readUInt32BE(at + 6), len ? d.subarray(at + HEADER_BYTES, at + HEADER_BYTES + len) : EMPTY);
      if (err !== undefined) return err;
      at += HEADER_BYTES + len;
    }
    if (at < n) {
      if (n - at < HEADER_BYTES) this.need = HEADER_BYTES;
      this.parts.push(at === 0 ? d : d.subarray(at));
      this.partBytes = n - at;
    } else this.need = HEADER_BYTES;
    return undefined;
  }
}
