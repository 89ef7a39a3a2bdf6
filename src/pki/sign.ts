import { IsleError } from '../errors.js';
import { caSigner, type IssuingCa } from './ca.js';
import { CLOCK_SKEW_MS, floorToSecond, issueCertificate, validityProblem } from './certs.js';
import { acceptablePublicKey } from './keys.js';
import { parseCsr } from './csr.js';
import { joinPem } from './pem.js';
import { buildSpiffeId, type WorkloadIdentity } from './spiffe.js';
import { x509 } from './x509.js';

export const DEFAULT_WORKLOAD_TTL_SECONDS = 24 * 60 * 60;

export interface SignWorkloadOptions {
  ca: IssuingCa;
  csrPem: string;
  /** The identity the caller has authenticated; the CSR may only ask for exactly this. */
  identity: WorkloadIdentity;
  ttlSeconds?: number;
  now?: Date;
}

export interface SignedWorkload {
  leafPem: string;
  /** Leaf followed by the intermediate chain, without the root (what a TLS peer sends). */
  chainPem: string;
  /** The roots a workload trusts (root-cert.pem of the CA). */
  rootBundlePem: string;
  notBefore: Date;
  notAfter: Date;
  spiffeId: string;
  serialNumber: string;
}

/**
 * Signs a workload CSR the way the control plane does. The certificate content comes from the
 * authenticated identity, never from the CSR: the CSR contributes its public key and nothing
 * else, and a CSR asking for any other name is refused rather than silently narrowed, so a
 * confused or malicious proxy finds out.
 */
export async function signWorkloadCsr(opts: SignWorkloadOptions): Promise<SignedWorkload> {
  const spiffeId = buildSpiffeId(opts.identity);
  const ttl = opts.ttlSeconds ?? DEFAULT_WORKLOAD_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl <= 0) throw new IsleError('ERR_USAGE', `TTL must be a positive number of seconds (got ${ttl})`);
  const now = floorToSecond(opts.now ?? new Date());

  const signer = await caSigner(opts.ca);
  if (opts.identity.trustDomain !== signer.trustDomain) {
    throw new IsleError('ERR_IDENTITY', `identity ${spiffeId} is in trust domain ${opts.identity.trustDomain}, but this CA signs for ${signer.trustDomain}`);
  }
  const caInvalid = validityProblem(signer.cert, now);
  if (caInvalid) throw new IsleError('ERR_CERT_EXPIRED', `CA certificate: ${caInvalid}`);

  const { csr, publicKey, requestedSans } = await parseCsr(opts.csrPem);
  const weak = acceptablePublicKey(publicKey);
  if (weak) throw new IsleError('ERR_CSR_INVALID', `CSR key refused: ${weak}`);
  if (requestedSans !== undefined) {
    const wanted = `URI:${spiffeId}`;
    if (requestedSans.length !== 1 || requestedSans[0] !== wanted) {
      throw new IsleError('ERR_IDENTITY', `CSR requests ${requestedSans.join(', ') || 'an empty SAN list'}, but may only request ${wanted}`);
    }
  }

  const caNotAfter = signer.cert.px.notAfter.getTime();
  const notAfter = new Date(Math.min(now.getTime() + ttl * 1000, caNotAfter));
  const notBefore = new Date(Math.max(now.getTime() - CLOCK_SKEW_MS, signer.cert.px.notBefore.getTime()));
  const leaf = await issueCertificate({
    subject: [],
    publicKey: csr.publicKey,
    issuer: signer.cert,
    signingKey: signer.signingKey,
    notBefore,
    notAfter,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      // RFC 5280 §4.2.1.6: with an empty subject the SAN must be critical.
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true),
    ],
  });
  return {
    leafPem: leaf.pem,
    chainPem: joinPem(leaf.pem, ...signer.intermediates.map((c) => c.pem)),
    rootBundlePem: opts.ca.rootBundlePem,
    notBefore: leaf.px.notBefore,
    notAfter: leaf.px.notAfter,
    spiffeId,
    serialNumber: leaf.px.serialNumber,
  };
}
