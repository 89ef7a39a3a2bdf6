/**
 * The outermost filter: the standard metrics' labels and the peer metadata exchange (ADR 0050),
 * and the guarantee that every request is recorded once, an internal error included (500, or a
 * reset when the response had started).
 *
 * Outbound (reporter=source): this proxy is the source; the request to an mTLS upstream carries
 * our `x-envoy-peer-metadata`, and the destination's comes back on the response
 * (`onUpstreamResponse`). Inbound (reporter=destination): the source's header is read, checked
 * against the verified client certificate, and stripped before the app sees it; our own goes on
 * the response. Decoded peers are cached, so the per-request cost is a Map lookup.
 */
import type { Headers } from '../http1/head.js';
import type { ListenerDeps } from '../listeners/context.js';
import { localPeer, PEER_METADATA, PEER_METADATA_ID, PeerDecoder, type LocalPeer } from '../peer.js';
import type { UpstreamResponse } from '../upstream/pool.js';
import type { Filter, HttpContext } from './context.js';
import { dropHeader } from './hop.js';

function namespaceOfSpiffe(id: string | undefined): string | undefined {
  if (!id) return undefined;
  const i = id.indexOf('/ns/');
  if (i < 0) return undefined;
  const j = id.indexOf('/', i + 4);
  return j < 0 ? undefined : id.slice(i + 4, j);
}

export { namespaceOfSpiffe };

interface PeerState {
  decoder: PeerDecoder;
  /** By the principal used (the identity's, else the listener certificate's). */
  local: Map<string, LocalPeer>;
}

const peerStates = new WeakMap<ListenerDeps, PeerState>();

function peerState(deps: ListenerDeps): PeerState {
  let s = peerStates.get(deps);
  if (!s) {
    s = { decoder: new PeerDecoder(), local: new Map() };
    peerStates.set(deps, s);
  }
  return s;
}

/** This proxy's metadata (labels and header), computed once per principal. */
export function localPeerOf(deps: ListenerDeps, ownId: string | undefined): LocalPeer {
  const s = peerState(deps);
  const id = deps.identity ?? {};
  const principal = id.principal ?? ownId ?? '';
  let p = s.local.get(principal);
  if (!p) {
    p = localPeer({ ...id, principal, namespace: id.namespace ?? namespaceOfSpiffe(principal) });
    s.local.set(principal, p);
  }
  return p;
}

/** The peer decoder of these listeners (tests read its mismatch count). */
export function peerDecoderOf(deps: ListenerDeps): PeerDecoder {
  return peerState(deps).decoder;
}

export const statsFilter: Filter = (ctx, next) => {
  const r = ctx.record;
  const conn = ctx.conn;
  const deps = ctx.deps;
  const me = localPeerOf(deps, conn.ownId);
  const h = ctx.req.headers;
  const ct = h['content-type'];
  if (typeof ct === 'string' && ct.startsWith('application/grpc')) r.requestProtocol = 'grpc';
  if (ctx.inbound) {
    r.connectionSecurityPolicy = conn.mtls ? 'mutual_tls' : 'none';
    r.source = peerState(deps).decoder.decode(h[PEER_METADATA], conn.mtls ? conn.peerId : undefined);
    r.destination = me.labels;
    dropHeader(h, PEER_METADATA);
    dropHeader(h, PEER_METADATA_ID);
    ctx.peerResponseHeader = me.header;
  } else {
    r.source = me.labels;
    // Only towards mesh (mTLS) upstreams: our metadata is nobody else's business.
    const route = ctx.route;
    const cluster = route?.kind === 'route' ? ctx.graph.clusters.get(route.cluster) : undefined;
    if (cluster?.tls && me.header) {
      h[PEER_METADATA] = me.header;
      if (me.headerId) h[PEER_METADATA_ID] = me.headerId;
    } else {
      dropHeader(h, PEER_METADATA);
      dropHeader(h, PEER_METADATA_ID);
    }
  }
  // A callback on the chain's promise rather than an async function around it: no generator and
  // no await per request (ADR 0130). A throw before the first await lands in the catch.
  let p: Promise<void>;
  try {
    p = next(ctx);
  } catch (e) {
    internalError(ctx, e);
    return Promise.resolve();
  }
  return p.then(undefined, (e: unknown) => internalError(ctx, e));
};

/** A filter threw: log it and answer 500 (or reset, when the response had started). */
function internalError(ctx: HttpContext, e: unknown): void {
  ctx.deps.log?.(`isle proxy: request handling failed: ${e instanceof Error ? e.stack : String(e)}`);
  ctx.reply('internal-error');
}

/**
 * Response-side half of the exchange, called by the router with the headers going downstream:
 * inbound adds our metadata; outbound reads (and strips) the destination's, believed only when it
 * matches the upstream certificate.
 */
export function onUpstreamResponse(ctx: HttpContext, up: UpstreamResponse, h: Headers): void {
  const r = ctx.record;
  if (ctx.inbound) {
    if (ctx.peerResponseHeader) h[PEER_METADATA] = ctx.peerResponseHeader;
    else dropHeader(h, PEER_METADATA);
    dropHeader(h, PEER_METADATA_ID);
  } else {
    const verified = up.secure && typeof up.peerId === 'string' ? up.peerId : undefined;
    r.destination = peerState(ctx.deps).decoder.decode(h[PEER_METADATA], verified);
    dropHeader(h, PEER_METADATA);
    dropHeader(h, PEER_METADATA_ID);
  }
}
