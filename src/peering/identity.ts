/**
 * Who a peer control plane is, read from its certificate (either side of the feed).
 *
 * A control plane's certificate (src/controlplane/servercert.ts) carries the SPIFFE id
 * `spiffe://<td>/ns/istio-system/sa/isle-control-plane` and the DNS SAN
 * `isle-control-plane.<cluster>`, and is issued by its cluster's intermediate whose subject has
 * `L=<cluster>`. The SPIFFE id alone says "some control plane of this mesh"; the cluster comes from
 * the DNS SAN and must agree with the issuer's L=, so a control plane cannot claim to be another
 * cluster with a certificate from its own intermediate.
 */
import type { PeerCertificate } from 'node:tls';
import { certFromDer } from '../pki/certs.js';
import { x509 } from '../pki/x509.js';
import { buildSpiffeId, parseSubjectAltName } from '../pki/index.js';
import { CONTROL_PLANE_NAME, CONTROL_PLANE_NAMESPACE } from '../mesh/names.js';

export function controlPlaneSpiffeId(trustDomain: string): string {
  return buildSpiffeId({ trustDomain, namespace: CONTROL_PLANE_NAMESPACE, serviceAccount: CONTROL_PLANE_NAME });
}

export interface PeerCertInfo {
  spiffeIds: string[];
  dnsNames: string[];
  /** From the `isle-control-plane.<cluster>` DNS SAN. */
  cluster?: string;
  /** L= of the issuing intermediate. */
  issuerCluster?: string;
}

function field(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export function peerCertInfo(cert: PeerCertificate): PeerCertInfo {
  const sans = parseSubjectAltName(cert.subjectaltname ?? '');
  const spiffeIds = sans.filter((s) => s.type === 'URI' && s.value.startsWith('spiffe://')).map((s) => s.value);
  const dnsNames = sans.filter((s) => s.type === 'DNS').map((s) => s.value);
  const prefix = `${CONTROL_PLANE_NAME}.`;
  const clusters = dnsNames.filter((d) => d.startsWith(prefix)).map((d) => d.slice(prefix.length));
  const issuerCluster = field(cert.issuer?.L as string | string[] | undefined);
  return {
    spiffeIds,
    dnsNames,
    ...(clusters.length === 1 ? { cluster: clusters[0]! } : {}),
    ...(issuerCluster ? { issuerCluster } : {}),
  };
}

/**
 * The cluster a verified certificate speaks for as a control plane, or a sentence saying why it is
 * not a control plane's certificate.
 */
export function controlPlaneCluster(cert: PeerCertificate, trustDomain: string): { cluster: string } | { refusal: string } {
  const want = controlPlaneSpiffeId(trustDomain);
  const info = peerCertInfo(cert);
  const id = info.spiffeIds[0] ?? '(no SPIFFE id)';
  if (info.spiffeIds.length !== 1 || info.spiffeIds[0] !== want) {
    return { refusal: `certificate ${id} is not a control plane's (expected ${want})` };
  }
  if (!info.cluster) {
    return { refusal: `certificate ${id} names no cluster (expected one DNS SAN ${CONTROL_PLANE_NAME}.<cluster>)` };
  }
  if (info.issuerCluster !== undefined && info.issuerCluster !== info.cluster) {
    return { refusal: `certificate says cluster ${info.cluster} but was issued by the intermediate of cluster ${info.issuerCluster}` };
  }
  return { cluster: info.cluster };
}

/** Node's TLS verification failures that mean "this chain does not end at a root we trust". */
const UNTRUSTED_CHAIN = /unable to (verify|get (local )?issuer)|self[- ]signed|certificate signature failure|UNABLE_TO_|SELF_SIGNED|CERT_SIGNATURE_FAILURE|unknown ca|bad certificate/i;

export function isUntrustedChainError(message: string): boolean {
  return UNTRUSTED_CHAIN.test(message);
}

/**
 * Which intermediate issued a peer's certificate: its Authority Key Identifier (the intermediate's
 * key id), else the issuer name. Two control planes claiming one cluster with different
 * intermediates differ here even when the intermediates' subjects are the same.
 */
export function issuerKeyId(cert: PeerCertificate): string {
  try {
    if (cert.raw) {
      const aki = certFromDer(cert.raw, 'peer certificate').px.getExtension(x509.AuthorityKeyIdentifierExtension);
      if (aki?.keyId) return aki.keyId;
    }
  } catch {
    // fall back to the name
  }
  return JSON.stringify(cert.issuer ?? {});
}
