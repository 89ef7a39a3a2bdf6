import { X509Certificate } from 'node:crypto';
import { IsleError } from '../errors.js';

/** Who a workload is: Istio's `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`. */
export interface WorkloadIdentity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

// SPIFFE ID spec §2.1/§2.2: the grammar is narrower than URIs in general, which is what keeps
// string comparison of IDs safe (no case folding, percent-encoding or dot segments).
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

export function validateTrustDomain(td: string): string {
  if (typeof td !== 'string' || td.length === 0 || td.length > 255 || !TRUST_DOMAIN.test(td)) {
    throw new IsleError('ERR_IDENTITY', `invalid trust domain ${JSON.stringify(td)} (lowercase letters, digits, '.', '-', '_')`);
  }
  return td;
}

function validateSegment(what: string, s: string): string {
  if (typeof s !== 'string' || !SEGMENT.test(s) || s === '.' || s === '..') {
    throw new IsleError('ERR_IDENTITY', `invalid ${what} ${JSON.stringify(s)} (letters, digits, '.', '-', '_')`);
  }
  return s;
}

/** `spiffe://<td>`: the ID of a trust domain itself, carried by Isle's CA certificates. */
export function trustDomainId(trustDomain: string): string {
  return `spiffe://${validateTrustDomain(trustDomain)}`;
}

export function buildSpiffeId(identity: WorkloadIdentity): string {
  validateTrustDomain(identity.trustDomain);
  validateSegment('namespace', identity.namespace);
  validateSegment('service account', identity.serviceAccount);
  return `spiffe://${identity.trustDomain}/ns/${identity.namespace}/sa/${identity.serviceAccount}`;
}

/** Parses a workload SPIFFE ID; anything but the exact `/ns/<ns>/sa/<sa>` form is refused. */
export function parseSpiffeId(id: string): WorkloadIdentity {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(typeof id === 'string' ? id : '');
  if (!m) throw new IsleError('ERR_IDENTITY', `not a workload SPIFFE ID: ${JSON.stringify(id)} (expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)`);
  const identity = { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! };
  buildSpiffeId(identity);
  return identity;
}

/** The trust domain named by a `spiffe://<td>` URI (no path), or undefined. */
export function parseTrustDomainId(uri: string): string | undefined {
  const m = /^spiffe:\/\/([^/]+)$/.exec(uri);
  return m && TRUST_DOMAIN.test(m[1]!) ? m[1] : undefined;
}

/**
 * Splits Node's `subjectaltname` string (`URI:spiffe://a, DNS:b`). Since Node 17.3 / 16.13.2
 * (CVE-2021-44532) values containing separators are JSON-quoted, so a plain split(', ') would
 * let a crafted name smuggle in a second entry.
 */
export function parseSubjectAltName(s: string): Array<{ type: string; value: string }> {
  const out: Array<{ type: string; value: string }> = [];
  let i = 0;
  while (i < s.length) {
    const colon = s.indexOf(':', i);
    if (colon < 0) break;
    const type = s.slice(i, colon).trim();
    let j = colon + 1;
    let value: string;
    if (s[j] === '"') {
      let k = j + 1;
      while (k < s.length && s[k] !== '"') k += s[k] === '\\' ? 2 : 1;
      value = JSON.parse(s.slice(j, k + 1)) as string;
      j = k + 1;
    } else {
      const end = s.indexOf(', ', j);
      value = s.slice(j, end < 0 ? s.length : end);
      j = end < 0 ? s.length : end;
    }
    out.push({ type, value });
    i = s.startsWith(', ', j) ? j + 2 : j + 1;
  }
  return out;
}

type SpiffeSource = string | X509Certificate | { subjectaltname?: string | undefined };

/**
 * The SPIFFE ID of a certificate: from a PEM, a node `X509Certificate`, a TLS
 * `PeerCertificate` (or its `subjectaltname` string). Undefined when there is none; an
 * X.509-SVID carries exactly one, so several is an error.
 */
export function spiffeIdFromCert(source: SpiffeSource): string | undefined {
  let san: string | undefined;
  if (typeof source === 'string') {
    if (source.includes('-----BEGIN')) {
      try {
        san = new X509Certificate(source).subjectAltName;
      } catch (e) {
        throw new IsleError('ERR_PEM_INVALID', `not a certificate: ${e instanceof Error ? e.message : String(e)}`.replace(/\s+/g, ' '));
      }
    } else {
      san = source;
    }
  } else if (source instanceof X509Certificate) {
    san = source.subjectAltName;
  } else {
    san = source.subjectaltname;
  }
  if (!san) return undefined;
  const ids = parseSubjectAltName(san).filter((e) => e.type === 'URI' && e.value.startsWith('spiffe://')).map((e) => e.value);
  if (ids.length > 1) throw new IsleError('ERR_IDENTITY', `certificate has ${ids.length} SPIFFE IDs (${ids.join(', ')}); an SVID has exactly one`);
  return ids[0];
}
