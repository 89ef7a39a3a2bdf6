import { IsleError } from '../errors.js';
import { caProblem, isSelfSigned, parseCertsPem, subjectOf, trustDomainOf, type Cert } from './certs.js';
import { joinPem } from './pem.js';

/**
 * A trust bundle: the roots a workload accepts. During a root rotation it holds the old and the
 * new root, so leaves of both verify until every workload has moved.
 */
export function parseBundle(pem: string, where = 'trust bundle'): Cert[] {
  const roots = parseCertsPem(pem, where);
  for (const r of roots) {
    const notCa = caProblem(r);
    if (notCa) throw new IsleError('ERR_CERT_NOT_CA', `${where}: "${subjectOf(r)}" is ${notCa.replace(/^not a CA certificate/, 'not a CA')}`, { file: where });
    if (!isSelfSigned(r)) throw new IsleError('ERR_CHAIN_INVALID', `${where}: "${subjectOf(r)}" is not a self-signed root`, { file: where });
  }
  return roots;
}

/** Concatenates bundles, dropping duplicate roots (same DER) and keeping first-seen order. */
export function mergeBundles(...pems: string[]): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const pem of pems) {
    for (const r of parseBundle(pem)) {
      const key = r.der.toString('base64');
      if (!seen.has(key)) {
        seen.add(key);
        out.push(r.pem);
      }
    }
  }
  return joinPem(...out);
}

/** The trust domains the roots of a bundle speak for (deduplicated). */
export function bundleTrustDomains(pem: string): string[] {
  return [...new Set(parseBundle(pem).map(trustDomainOf).filter((td): td is string => td !== undefined))];
}
