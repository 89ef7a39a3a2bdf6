/**
 * Requests read from a grpc-js server stream's HTTP/2 DATA chunks and handled as they complete,
 * without grpc-js' per-message copy.
 *
 * grpc-js' StreamDecoder keeps a message's chunks until it is whole, then `Buffer.concat`s them
 * (with the 5-byte prefix) into a buffer of its own, and hands it on through a promise, a read
 * queue and an object-mode stream. A SotW ACK repeats the proxy's whole subscription (~50 KB for a
 * sidecar's thousand EDS names), so one endpoint change at 2,000 proxies made ~50 MB of such
 * copies and a DestinationRule change ~100 MB (a new EDS request and its ACK). V8 counts
 * ArrayBuffers as external memory and starts a mark-compact of the whole heap for every ~64 MB of
 * it that accumulates ("external memory pressure"): those copies were half of what made the
 * control plane mark its ~190 MB heap twice per DestinationRule push (ADR 0135).
 *
 * Here a message that lies in one chunk is a view of that chunk (node's read buffer, no copy); one
 * that spans chunks is copied chunk by chunk into a pooled buffer, reused once the message was
 * handled. Messages are deserialized and handled synchronously, as their last byte arrives. So a handler must not keep the request
 * (or views of its bytes) after it returns: the ADS server keeps copies of what it needs
 * (sotwrequest.ts `keepNames`), strings are decoded copies.
 *
 * Like directsend.ts this reaches into grpc-js (the call behind its ServerDuplexStream: HTTP/2
 * stream, handler, limits, status). `directReader` checks that shape and that grpc-js has read
 * nothing yet, and returns false otherwise (an interceptor in between, another grpc-js version):
 * the caller then reads through grpc-js as before. grpc-js still sees the stream's end (its own
 * 'end' listener) and its cancellation; it just gets no messages.
 */
import { gunzipSync, inflateSync } from 'node:zlib';

interface Http2StreamLike {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  listeners(event: 'data'): ((...args: unknown[]) => void)[];
  removeListener(event: 'data', listener: (...args: unknown[]) => void): unknown;
}

interface GrpcServerReadCall {
  stream: Http2StreamLike;
  handler: { deserialize(b: Buffer): unknown };
  maxReceiveMessageSize: number;
  incomingEncoding: string;
  readQueue: unknown[];
  decoder: { readState?: unknown };
  callEventTracker?: { addMessageReceived(): void } | null;
  checkCancelled(): boolean;
  sendStatus(status: { code: number; details: string; metadata: null }): void;
}

const INTERNAL = 13;
const UNIMPLEMENTED = 12;
const RESOURCE_EXHAUSTED = 8;
/**
 * Buffers for messages that span chunks, by size class (powers of two from 64 KiB to 1 MiB), taken
 * while a message is assembled and given back once it was handled. Usually one or two are in use
 * (a message arrives in a few consecutive chunks); at most POOL_KEEP bytes of them are kept.
 */
const POOL_MIN = 64 * 1024;
const POOL_MAX = 1024 * 1024;
const POOL_KEEP = 8 * 1024 * 1024;
const pool = new Map<number, Buffer[]>();
let pooledBytes = 0;

function take(size: number): Buffer {
  if (size > POOL_MAX) return Buffer.allocUnsafe(size);
  const cls = Math.max(POOL_MIN, 2 ** Math.ceil(Math.log2(size)));
  const b = pool.get(cls)?.pop();
  if (b) pooledBytes -= cls;
  return (b ?? Buffer.allocUnsafeSlow(cls)).subarray(0, size);
}

function give(b: Buffer): void {
  const cls = b.buffer.byteLength;
  if (cls < POOL_MIN || cls > POOL_MAX || b.byteOffset !== 0 || pooledBytes + cls > POOL_KEEP) return;
  const free = pool.get(cls);
  if (free) free.push(Buffer.from(b.buffer, 0, cls));
  else pool.set(cls, [Buffer.from(b.buffer, 0, cls)]);
  pooledBytes += cls;
}

function isReadCall(c: unknown): c is GrpcServerReadCall {
  if (typeof c !== 'object' || c === null) return false;
  const o = c as Record<string, unknown>;
  const s = o['stream'] as Record<string, unknown> | undefined;
  const h = o['handler'] as Record<string, unknown> | undefined;
  const d = o['decoder'] as Record<string, unknown> | undefined;
  return (
    typeof s === 'object' &&
    s !== null &&
    typeof s['on'] === 'function' &&
    typeof s['listeners'] === 'function' &&
    typeof s['removeListener'] === 'function' &&
    typeof h === 'object' &&
    h !== null &&
    typeof h['deserialize'] === 'function' &&
    typeof d === 'object' &&
    d !== null &&
    typeof o['maxReceiveMessageSize'] === 'number' &&
    typeof o['incomingEncoding'] === 'string' &&
    Array.isArray(o['readQueue']) &&
    typeof o['checkCancelled'] === 'function' &&
    typeof o['sendStatus'] === 'function'
  );
}

/** Where grpc-js' StreamDecoder is before it has seen a byte (ReadState.NO_DATA). */
const DECODER_IDLE = 0;

/**
 * Takes over reading `duplex`'s requests (grpc-js' ServerDuplexStream): `onMessage` gets each
 * deserialized request synchronously, in order, and must not keep it once it returns. False when
 * the internals are not the expected ones or grpc-js has read part of a message already; the
 * caller then keeps listening for the duplex's 'data' as usual. Either way the caller should
 * keep a 'data' listener on the duplex: it is what lets grpc-js deliver the stream's end.
 */
export function directReader(duplex: unknown, onMessage: (request: unknown) => void): boolean {
  const call = typeof duplex === 'object' && duplex !== null ? (duplex as { call?: unknown }).call : undefined;
  if (!isReadCall(call)) return false;
  const theirs = call.stream.listeners('data');
  // grpc-js registers exactly one data listener, and has queued or half-read nothing until the handler reads.
  if (theirs.length !== 1 || call.readQueue.length !== 0 || call.decoder.readState !== DECODER_IDLE) return false;
  call.stream.removeListener('data', theirs[0]!);

  const head = Buffer.alloc(5);
  let headHave = 0;
  /** Size of the message being read, −1 between messages. */
  let size = -1;
  let compressed = false;
  let body: Buffer | undefined;
  let have = 0;
  let failed = false;

  const fail = (code: number, details: string): void => {
    failed = true;
    call.sendStatus({ code, details, metadata: null });
  };

  const deliver = (bytes: Buffer): void => {
    call.callEventTracker?.addMessageReceived();
    let plain = bytes;
    // As grpc-js: the flag picks the stream's grpc-encoding (identity: the bytes as they are).
    if (compressed && call.incomingEncoding !== 'identity') {
      const enc = call.incomingEncoding;
      if (enc !== 'gzip' && enc !== 'deflate') return fail(UNIMPLEMENTED, `Received message compressed with unsupported encoding "${enc}"`);
      const max = call.maxReceiveMessageSize;
      try {
        const opts = max !== -1 ? { maxOutputLength: max } : {};
        plain = enc === 'gzip' ? gunzipSync(bytes, opts) : inflateSync(bytes, opts);
      } catch (e) {
        if (e instanceof RangeError) return fail(RESOURCE_EXHAUSTED, `Received message that decompresses to a size larger than ${max}`);
        return fail(INTERNAL, 'Failed to decompress message');
      }
    }
    let request: unknown;
    try {
      request = call.handler.deserialize(plain);
    } catch {
      return fail(INTERNAL, 'Error deserializing request');
    }
    onMessage(request);
  };

  call.stream.on('data', (chunk: Buffer) => {
    if (failed || call.checkCancelled()) return;
    let i = 0;
    while (i < chunk.length && !failed) {
      if (size < 0) {
        const n = Math.min(5 - headHave, chunk.length - i);
        chunk.copy(head, headHave, i, i + n);
        headHave += n;
        i += n;
        if (headHave < 5) return;
        headHave = 0;
        compressed = head[0] === 1;
        size = head.readUInt32BE(1);
        const max = call.maxReceiveMessageSize;
        if (max !== -1 && size > max) return fail(RESOURCE_EXHAUSTED, `Received message larger than max (${size} vs ${max})`);
        if (chunk.length - i >= size) {
          // The whole message is in this chunk: a view of it.
          const m = chunk.subarray(i, i + size);
          i += size;
          size = -1;
          deliver(m);
          continue;
        }
        have = 0;
        body = take(size);
      } else {
        const n = Math.min(size - have, chunk.length - i);
        chunk.copy(body!, have, i, i + n);
        have += n;
        i += n;
        if (have < size) return;
        const m = body!;
        body = undefined;
        size = -1;
        try {
          deliver(m);
        } finally {
          give(m);
        }
      }
    }
  });
  return true;
}
