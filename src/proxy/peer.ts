/**
 * Peer metadata for the standard metrics' source_* / destination_* labels (ADR 0050).
 *
 * Istio's HTTP metadata exchange: the client sidecar sends its workload metadata in
 * `x-envoy-peer-metadata` (base64 of a protobuf `google.protobuf.Struct`, Istio's encoding) and
 * `x-envoy-peer-metadata-id`; the server sidecar strips both before the app sees them and answers
 * with its own in the response, which the client sidecar strips in turn.
 *
 * What a peer claims is only believed when it agrees with what was verified: the header's
 * NAMESPACE and SERVICE_ACCOUNT must match the SPIFFE id of the peer certificate of that very
 * connection. Principal and namespace always come from the certificate; a header over plaintext,
 * or one that names another identity, is ignored (the labels are then `unknown`).
 */
import { decodeMessage, encodeMessage } from '../xds/codec.js';

export const PEER_METADATA = 'x-envoy-peer-metadata';
export const PEER_METADATA_ID = 'x-envoy-peer-metadata-id';

const UNKNOWN = 'unknown';

/** One side's labels, with a precomputed series-key fragment (the metrics key per request is a few concatenations). */
export interface PeerLabels {
  readonly workload: string;
  readonly namespace: string;
  readonly principal: string;
  readonly app: string;
  readonly version: string;
  readonly canonicalService: string;
  readonly canonicalRevision: string;
  readonly cluster: string;
  readonly key: string;
}

export function peerLabels(p: Partial<Omit<PeerLabels, 'key'>>): PeerLabels {
  const l = {
    workload: p.workload || UNKNOWN,
    namespace: p.namespace || UNKNOWN,
    principal: p.principal || UNKNOWN,
    app: p.app || UNKNOWN,
    version: p.version || UNKNOWN,
    canonicalService: p.canonicalService || UNKNOWN,
    canonicalRevision: p.canonicalRevision || UNKNOWN,
    cluster: p.cluster || UNKNOWN,
  };
  return { ...l, key: Object.values(l).join('\u0002') };
}

export const UNKNOWN_PEER = peerLabels({});

/** Who this proxy is (from its own options/node metadata, i.e. config, never from a peer). */
export interface LocalWorkload {
  workload?: string | undefined;
  namespace?: string | undefined;
  serviceAccount?: string | undefined;
  principal?: string | undefined;
  cluster?: string | undefined;
  labels?: Readonly<Record<string, string>> | undefined;
  /** The node id (x-envoy-peer-metadata-id). */
  nodeId?: string | undefined;
}

/** Istio's canonical service/revision label fallbacks. */
export function canonicalOf(labels: Readonly<Record<string, string>>, workload: string | undefined): { service: string | undefined; revision: string } {
  return {
    service: labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? labels['app'] ?? workload,
    revision: labels['service.istio.io/canonical-revision'] ?? labels['app.kubernetes.io/version'] ?? labels['version'] ?? 'latest',
  };
}

export interface LocalPeer {
  readonly labels: PeerLabels;
  /** The header values this proxy sends; undefined when it knows too little to be believed. */
  readonly header: string | undefined;
  readonly headerId: string | undefined;
}

export function localPeer(w: LocalWorkload): LocalPeer {
  const labels = w.labels ?? {};
  const c = canonicalOf(labels, w.workload);
  const pl = peerLabels({
    workload: w.workload,
    namespace: w.namespace,
    principal: w.principal,
    app: labels['app'],
    version: labels['version'],
    canonicalService: c.service,
    canonicalRevision: c.revision,
    cluster: w.cluster,
  });
  if (!w.namespace || !w.serviceAccount) return { labels: pl, header: undefined, headerId: undefined };
  const struct: Record<string, unknown> = {
    NAMESPACE: w.namespace,
    SERVICE_ACCOUNT: w.serviceAccount,
    WORKLOAD_NAME: w.workload ?? '',
    CLUSTER_ID: w.cluster ?? '',
    LABELS: { ...labels, 'service.istio.io/canonical-name': c.service ?? '', 'service.istio.io/canonical-revision': c.revision },
  };
  return { labels: pl, header: encodeMessage('google.protobuf.Struct', struct).toString('base64'), headerId: w.nodeId };
}

/** `spiffe://td/ns/<ns>/sa/<sa>` → its parts; undefined when not of that shape. */
export function spiffeParts(id: string | undefined): { namespace: string; serviceAccount: string } | undefined {
  if (!id) return undefined;
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id);
  return m ? { namespace: m[1]!, serviceAccount: m[2]! } : undefined;
}

const CACHE_LIMIT = 1024;

/**
 * Decodes peer headers against the verified principal. Results are cached by (principal, header):
 * a mesh has few distinct peers, so a request costs a Map lookup, not a protobuf decode.
 */
export class PeerDecoder {
  private readonly cache = new Map<string, PeerLabels>();
  /** Headers ignored because they disagreed with the certificate (tests and /stats read it). */
  mismatches = 0;

  /**
   * The previous answer: a peer sends the same header request after request, and comparing two
   * strings is cheaper than joining, flattening and hashing a few hundred bytes for the Map (ADR 0128).
   */
  private last: { principal: string; header: string; value: PeerLabels } | undefined;

  decode(header: unknown, verifiedPrincipal: string | undefined): PeerLabels {
    if (!verifiedPrincipal) return UNKNOWN_PEER;
    const h = typeof header === 'string' ? header : '';
    const last = this.last;
    if (last && last.header === h && last.principal === verifiedPrincipal) return last.value;
    const k = `${verifiedPrincipal}\n${h}`;
    let v = this.cache.get(k);
    if (!v) {
      v = this.compute(h, verifiedPrincipal);
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(k, v);
    }
    this.last = { principal: verifiedPrincipal, header: h, value: v };
    return v;
  }

  private compute(header: string, principal: string): PeerLabels {
    const id = spiffeParts(principal);
    const verifiedOnly = peerLabels({ principal, namespace: id?.namespace });
    if (!header || !id) return verifiedOnly;
    let s: Record<string, unknown>;
    try {
      s = decodeMessage('google.protobuf.Struct', Buffer.from(header, 'base64'));
    } catch {
      return verifiedOnly;
    }
    if (s['NAMESPACE'] !== id.namespace || s['SERVICE_ACCOUNT'] !== id.serviceAccount) {
      this.mismatches++;
      return verifiedOnly;
    }
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const raw = s['LABELS'];
    const labels: Record<string, string> = {};
    if (raw && typeof raw === 'object') for (const [k, v] of Object.entries(raw)) if (typeof v === 'string') labels[k] = v;
    const workload = str(s['WORKLOAD_NAME']);
    const c = canonicalOf(labels, workload);
    return peerLabels({
      workload,
      namespace: id.namespace,
      principal,
      app: labels['app'],
      version: labels['version'],
      canonicalService: c.service,
      canonicalRevision: c.revision,
      cluster: str(s['CLUSTER_ID']),
    });
  }
}
