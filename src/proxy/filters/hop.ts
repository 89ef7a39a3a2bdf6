/** Hop-by-hop headers (RFC 9110 §7.6.1 plus the legacy ones proxies must not forward). */
import type { Headers } from '../http1/head.js';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings']);

/** A copy without hop-by-hop headers, nor the ones `Connection` names. */
export function stripHopByHop(headers: Headers): Headers {
  // Hot path (every request and response): no Set unless Connection names some.
  const conn = headers['connection'];
  let named: Set<string> | undefined;
  if (conn) for (const t of String(conn).split(',')) (named ??= new Set()).add(t.trim().toLowerCase());
  const out: Headers = {};
  for (const k in headers) {
    const v = headers[k];
    // `te: trailers` is the one TE value HTTP/2 allows, and gRPC servers look for it.
    if (v === undefined || (HOP_BY_HOP.has(k) && !(k === 'te' && v === 'trailers')) || named?.has(k)) continue;
    out[k] = v;
  }
  return out;
}
