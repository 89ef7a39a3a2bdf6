/**
 * Responses written on a grpc-js server stream part by part, without copying their shared bytes.
 *
 * grpc-js serializes each message into a Buffer of its own (`serializeMessage`: allocate length + 5,
 * copy), and `serializeResponse` had already concatenated the shared pre-encoded resource bytes into
 * another. A 550 KB route configuration sent to 2,000 proxies was 2.2 GB of short-lived
 * ArrayBuffers per change; V8 counts their backing stores against the old generation's limit, so
 * the control plane ran a full mark-compact of its whole heap about every 0.5 s during such a push
 * while the heap did not shrink at all (ADR 0129). Written as parts, a response costs one small
 * per-proxy buffer (gRPC prefix + the response's own fields); the resource bytes go to the HTTP/2
 * stream as the very buffers every proxy of the scope shares (node's http2 sends them without a copy).
 *
 * This reaches one level into grpc-js (the call behind its ServerDuplexStream, with the HTTP/2
 * stream and the bookkeeping its own `sendMessage` does). `directWriter` checks the shape and
 * returns undefined when it differs (an interceptor in between, another grpc-js version): callers
 * then write through grpc-js as before. A test pins that the direct path is taken.
 */

interface Http2StreamLike {
  write(chunk: Uint8Array, cb?: (err?: Error | null) => void): boolean;
  cork(): void;
  uncork(): void;
}

interface GrpcServerCall {
  stream: Http2StreamLike;
  maxSendMessageSize: number;
  callEventTracker?: { addMessageSent(): void } | null;
  checkCancelled(): boolean;
  maybeSendMetadata(): void;
  sendStatus(status: { code: number; details: string; metadata: null }): void;
}

export interface DirectWriter {
  /**
   * Writes one gRPC message made of `parts` (their concatenation is the serialized message).
   * 'too-large': not written, longer than the call's limit (grpc-js' own path then answers with
   * its status); 'cancelled': the call is gone.
   */
  write(parts: readonly Uint8Array[]): 'written' | 'cancelled' | 'too-large';
}

const INTERNAL = 13;
/** Up to this size the first part is copied behind the 5-byte gRPC prefix (one small pooled buffer). */
const MERGE_LIMIT = 2048;

function isGrpcServerCall(c: unknown): c is GrpcServerCall {
  if (typeof c !== 'object' || c === null) return false;
  const o = c as Record<string, unknown>;
  const s = o['stream'] as Record<string, unknown> | undefined;
  return (
    typeof o['maybeSendMetadata'] === 'function' &&
    typeof o['checkCancelled'] === 'function' &&
    typeof o['sendStatus'] === 'function' &&
    typeof o['maxSendMessageSize'] === 'number' &&
    typeof s === 'object' &&
    s !== null &&
    typeof s['write'] === 'function' &&
    typeof s['cork'] === 'function' &&
    typeof s['uncork'] === 'function'
  );
}

/** A writer for `duplex` (grpc-js' ServerDuplexStream), or undefined when its internals are not the expected ones. */
export function directWriter(duplex: unknown): DirectWriter | undefined {
  const call = typeof duplex === 'object' && duplex !== null ? (duplex as { call?: unknown }).call : undefined;
  if (!isGrpcServerCall(call)) return undefined;
  const done = (err?: Error | null): void => {
    if (err) {
      call.sendStatus({ code: INTERNAL, details: 'Internal server error', metadata: null });
      return;
    }
    call.callEventTracker?.addMessageSent();
  };
  return {
    write(parts) {
      if (call.checkCancelled()) return 'cancelled';
      let length = 0;
      for (const p of parts) length += p.length;
      if (call.maxSendMessageSize !== -1 && length > call.maxSendMessageSize) return 'too-large';
      call.maybeSendMetadata();
      const first = parts[0];
      const merge = first !== undefined && first.length <= MERGE_LIMIT;
      const prefix = Buffer.allocUnsafe(5 + (merge ? first.length : 0));
      prefix[0] = 0; // not compressed
      prefix.writeUInt32BE(length, 1);
      if (merge) prefix.set(first, 5);
      const s = call.stream;
      const rest = merge ? parts.slice(1) : parts;
      s.cork();
      s.write(prefix, rest.length === 0 ? done : undefined);
      for (let i = 0; i < rest.length; i++) s.write(rest[i]!, i === rest.length - 1 ? done : undefined);
      s.uncork();
      return 'written';
    },
  };
}
