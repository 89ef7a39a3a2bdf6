/** Hop-by-hop headers (RFC 9110 §7.6.1 plus the legacy ones proxies must not forward). */
import type { Headers } from '../http1/head.js';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings']);

/**
 * Removes the hop-by-hop headers, and the ones `Connection` names, in place (their values become
 * undefined, as `dropHeader` does): the same object. The codecs read the framing fields before
 * the filters run, and the filters edit this object for the next hop anyway, so a copy per
 * request and per response bought nothing but allocation and megamorphic stores (ADR 0143).
 */
export function stripHopByHop(headers: Headers): Headers {
  // Hot path (every request and response): no Set unless Connection names some.
  const conn = headers['connection'];
  let named: Set<string> | undefined;
  if (conn) for (const t of String(conn).split(',')) (named ??= new Set()).add(t.trim().toLowerCase());
  for (const k in headers) {
    const v = headers[k];
    // `te: trailers` is the one TE value HTTP/2 allows, and gRPC servers look for it.
    if (v !== undefined && ((HOP_BY_HOP.has(k) && !(k === 'te' && v === 'trailers')) || named?.has(k))) (headers as Record<string, string | string[] | undefined>)[k] = undefined;
  }
  return headers;
}

/**
 * Removes a header from a Headers object the hot path will serialize. `delete` of a property
 * that is not the newest turns a V8 object into a dictionary (slow property access, and a
 * `for…in` that sorts its keys): every request and response did that once or twice (ADR 0128).
 * An undefined value is skipped by every serializer (`serializeFields`, `headerBytes`,
 * `h2Fields`, `stripHopByHop`).
 */
export function dropHeader(h: Headers, name: string): void {
  if (h[name] !== undefined) (h as Record<string, string | string[] | undefined>)[name] = undefined;
}
