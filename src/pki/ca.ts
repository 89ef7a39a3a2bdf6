import type { KeyObject } from 'node:crypto';
import { IsleError } from '../errors.js';
import {
  caProblem,
  CLOCK_SKEW_MS,
  floorToSecond,
  issueCertificate,
  isSelfSigned,
  parseCertPem,
  parseCertsPem,
  sameCert,
  trustDomainOf,
  validityProblem,
  type Cert,
} from './certs.js';
import { DEFAULT_KEY_TYPE, assertKeyType, generateKey, keyTypeOf, parsePrivateKeyPem, toSigningKey, type KeyType, type SigningKey } from './keys.js';
import { joinPem } from './pem.js';
import { DEFAULT_TRUST_DOMAIN, trustDomainId, validateTrustDomain } from './spiffe.js';
import { x509 } from './x509.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** The offline root: `root-cert.pem` + `root-key.pem`. */
export interface RootCa {
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
  trustDomain: string;
  notBefore: Date;
  notAfter: Date;
}

/**
 * A CA that signs workload certificates: Istio's `cacerts` (ca-cert.pem, ca-key.pem,
 * cert-chain.pem, root-cert.pem).
 */
export interface IssuingCa {
  /** ca-cert.pem: the signing certificate. */
  certPem: string;
  /** ca-key.pem (PKCS#8 PEM). */
  keyPem: string;
  /** cert-chain.pem: ca-cert followed by its issuers up to and including the root. */
  chainPem: string;
  /** root-cert.pem: the trust bundle (one root, or several during a root rotation). */
  rootBundlePem: string;
  trustDomain: string;
  /** The cluster named in the subject (L=), when there is one. */
  cluster?: string | undefined;
  notBefore: Date;
  notAfter: Date;
}

export interface CreateRootOptions {
  trustDomain?: string;
  keyType?: KeyType;
  days?: number;
  now?: Date;
}

export interface CreateIntermediateOptions {
  root: RootCa | { certPem: string; keyPem: string };
  cluster: string;
  days?: number;
  /** Defaults to the root's key type (EC P-256 when the root's is not one Isle makes). */
  keyType?: KeyType;
  now?: Date;
}

function positiveDays(days: number): number {
  if (!Number.isInteger(days) || days <= 0 || days > 100 * 365) {
    throw new IsleError('ERR_USAGE', `days must be a whole number between 1 and 36500 (got ${days})`);
  }
  return days;
}

const CLUSTER = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

export function validateClusterName(cluster: string): string {
  if (typeof cluster !== 'string' || !CLUSTER.test(cluster)) {
    throw new IsleError('ERR_USAGE', `invalid cluster name ${JSON.stringify(cluster)} (1-63 letters, digits, '.', '-', '_')`);
  }
  return cluster;
}

export async function createRoot(opts: CreateRootOptions = {}): Promise<RootCa> {
  const trustDomain = validateTrustDomain(opts.trustDomain ?? DEFAULT_TRUST_DOMAIN);
  const days = positiveDays(opts.days ?? 3650);
  const now = floorToSecond(opts.now ?? new Date());
  const generated = await generateKey(assertKeyType(opts.keyType ?? DEFAULT_KEY_TYPE));
  const signingKey = await toSigningKey(parsePrivateKeyPem(generated.keyPem, 'generated key'));
  const cert = await issueCertificate({
    subject: [{ O: [trustDomain] }, { CN: ['Isle Root CA'] }],
    publicKey: generated.keys.publicKey,
    signingKey,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + days * DAY_MS),
    extensions: [
      // pathLen 1: a root signs cluster intermediates, which sign only leaves.
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(trustDomain) }], false),
    ],
  });
  return { certPem: cert.pem, keyPem: generated.keyPem, trustDomain, notBefore: cert.px.notBefore, notAfter: cert.px.notAfter };
}

/** A root after the checks every signing CA must pass; the key is already imported. */
interface ValidatedSigner {
  cert: Cert;
  key: KeyObject;
  signingKey: SigningKey;
  trustDomain: string;
}

async function validateSigner(certPem: string, keyPem: string, what: string, now: Date): Promise<ValidatedSigner> {
  const cert = parseCertPem(certPem, `${what} certificate`);
  const key = parsePrivateKeyPem(keyPem, `${what} key`);
  if (!cert.node.checkPrivateKey(key)) {
    throw new IsleError('ERR_KEY_MISMATCH', `${what} key does not match the ${what} certificate`);
  }
  const notCa = caProblem(cert);
  if (notCa) throw new IsleError('ERR_CERT_NOT_CA', `${what} certificate: ${notCa}`);
  const invalid = validityProblem(cert, now);
  if (invalid) throw new IsleError('ERR_CERT_EXPIRED', `${what} certificate: ${invalid}`);
  const trustDomain = trustDomainOf(cert);
  if (!trustDomain) throw new IsleError('ERR_IDENTITY', `${what} certificate: no trust domain (neither a spiffe://<td> URI SAN nor O=<td>; for a CA made by other tools, such as Istio's tools/certs, give it with --trust-domain or MeshConfig trustDomain)`);
  return { cert, key, signingKey: await toSigningKey(key, `${what} key`), trustDomain };
}

export async function createIntermediate(opts: CreateIntermediateOptions): Promise<IssuingCa & { capped: boolean }> {
  const cluster = validateClusterName(opts.cluster);
  const days = positiveDays(opts.days ?? 365);
  const now = floorToSecond(opts.now ?? new Date());
  const root = await validateSigner(opts.root.certPem, opts.root.keyPem, 'root', now);
  if (!isSelfSigned(root.cert)) throw new IsleError('ERR_CHAIN_INVALID', 'root certificate is not self-signed');
  const keyType = assertKeyType(opts.keyType ?? keyTypeOf(root.key) ?? DEFAULT_KEY_TYPE);
  const generated = await generateKey(keyType);
  const wanted = now.getTime() + days * DAY_MS;
  // An intermediate outliving its root would only produce chains that stop verifying early.
  const notAfter = Math.min(wanted, root.cert.px.notAfter.getTime());
  const cert = await issueCertificate({
    subject: [{ O: [root.trustDomain] }, { L: [cluster] }, { CN: [`Isle Intermediate CA ${cluster}`] }],
    publicKey: generated.keys.publicKey,
    issuer: root.cert,
    signingKey: root.signingKey,
    notBefore: new Date(Math.max(now.getTime() - CLOCK_SKEW_MS, root.cert.px.notBefore.getTime())),
    notAfter: new Date(notAfter),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(root.trustDomain) }], false),
    ],
  });
  const rootPem = root.cert.pem;
  return {
    certPem: cert.pem,
    keyPem: generated.keyPem,
    chainPem: joinPem(cert.pem, rootPem),
    rootBundlePem: rootPem,
    trustDomain: root.trustDomain,
    cluster,
    notBefore: cert.px.notBefore,
    notAfter: cert.px.notAfter,
    capped: notAfter < wanted,
  };
}

/** Material derived once per CA object, so a control plane signing many CSRs parses once. */
export interface CaSigner {
  cert: Cert;
  signingKey: SigningKey;
  /** Certificates to send after a leaf: the CA and any intermediates above it, no roots. */
  intermediates: Cert[];
  trustDomain: string;
}

// Keyed by object identity: an IssuingCa is treated as immutable once it has signed.
const signers = new WeakMap<IssuingCa, Promise<CaSigner>>();

export function caSigner(ca: IssuingCa): Promise<CaSigner> {
  let signer = signers.get(ca);
  if (!signer) {
    signer = (async () => {
      const cert = parseCertPem(ca.certPem, 'CA certificate');
      const key = parsePrivateKeyPem(ca.keyPem, 'CA key');
      if (!cert.node.checkPrivateKey(key)) throw new IsleError('ERR_KEY_MISMATCH', 'CA key does not match the CA certificate');
      const notCa = caProblem(cert);
      if (notCa) throw new IsleError('ERR_CERT_NOT_CA', `CA certificate: ${notCa}`);
      const roots = parseCertsPem(ca.rootBundlePem, 'CA root bundle');
      const chain = parseCertsPem(ca.chainPem, 'CA certificate chain');
      const intermediates = [cert, ...chain.filter((c) => !sameCert(c, cert) && !isSelfSigned(c) && !roots.some((r) => sameCert(r, c)))];
      return { cert, signingKey: await toSigningKey(key, 'CA key'), intermediates, trustDomain: ca.trustDomain };
    })();
    signers.set(ca, signer);
    // A failed parse must not be cached: the caller may fix the object and retry.
    signer.catch(() => signers.delete(ca));
  }
  return signer;
}

