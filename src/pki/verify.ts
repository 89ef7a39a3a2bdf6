import { IsleError } from '../errors.js';
import {
  basicConstraintsOf,
  caProblem,
  isIssuedBy,
  isSelfSigned,
  parseCertsPem,
  sameCert,
  subjectOf,
  validityProblem,
  type Cert,
} from './certs.js';

export interface VerifiedChain {
  /** Leaf first, trust anchor last. */
  path: Cert[];
  root: Cert;
}

type CertInput = string | Cert | Cert[];

function certs(input: CertInput, where: string): Cert[] {
  if (typeof input === 'string') return input.trim() === '' ? [] : parseCertsPem(input, where);
  return Array.isArray(input) ? input : [input];
}

const MAX_DEPTH = 8;

/**
 * RFC 5280 path validation, reduced to what a mesh needs: signatures, validity at `now`,
 * CA:true + keyCertSign on every issuer, and pathLen constraints. The leaf may come with its
 * chain (a `cert-chain.pem`); roots found in `intermediates` are ignored unless they are in the
 * bundle, since only the bundle is trusted. `leafIsIssuer` checks a CA's own chain (cacerts):
 * the CA will sign leaves, so the pathLen of everything above it must leave room for it.
 */
export function verifyChain(
  leaf: CertInput,
  intermediates: CertInput,
  bundle: CertInput,
  now: Date = new Date(),
  opts: { leafIsIssuer?: boolean } = {},
): VerifiedChain {
  const leafCerts = certs(leaf, 'leaf certificate');
  const first = leafCerts[0];
  if (!first) throw new IsleError('ERR_CHAIN_INVALID', 'no leaf certificate');
  const pool = [...leafCerts.slice(1), ...certs(intermediates, 'intermediate certificates')];
  const roots = certs(bundle, 'trust bundle');
  if (roots.length === 0) throw new IsleError('ERR_CHAIN_INVALID', 'empty trust bundle');

  const path: Cert[] = [first];
  let root: Cert | undefined;
  for (let cur = first; ; ) {
    if (path.length > MAX_DEPTH) throw new IsleError('ERR_CHAIN_INVALID', `chain longer than ${MAX_DEPTH} certificates`);
    const anchor = roots.find((r) => sameCert(r, cur)) ?? roots.find((r) => isIssuedBy(cur, r));
    if (anchor) {
      if (!sameCert(anchor, cur)) path.push(anchor);
      root = anchor;
      break;
    }
    if (isSelfSigned(cur)) {
      throw new IsleError('ERR_CHAIN_INVALID', `chain ends at self-signed "${subjectOf(cur)}", which is not in the trust bundle`);
    }
    const next = pool.find((c) => !path.some((p) => sameCert(p, c)) && isIssuedBy(cur, c));
    if (!next) {
      throw new IsleError('ERR_CHAIN_INVALID', `no issuer of "${subjectOf(cur)}" (issued by "${cur.px.issuer}") in the chain or the trust bundle`);
    }
    path.push(next);
    cur = next;
  }

  for (const c of path) {
    const invalid = validityProblem(c, now);
    if (invalid) throw new IsleError('ERR_CERT_EXPIRED', `"${subjectOf(c)}": ${invalid}`);
  }
  for (let i = 1; i < path.length; i++) {
    const issuer = path[i]!;
    const notCa = caProblem(issuer);
    if (notCa) throw new IsleError('ERR_CERT_NOT_CA', `"${subjectOf(issuer)}" signed "${subjectOf(path[i - 1]!)}" but is ${notCa.replace(/^not a CA certificate/, 'not a CA')}`);
    // CA certificates between this issuer and the leaf (self-issued ones do not count).
    // With leafIsIssuer the "leaf" is a CA about to sign leaves, so it counts as one of them.
    const below = path.slice(opts.leafIsIssuer ? 0 : 1, i).filter((c) => c.node.subject !== c.node.issuer).length;
    const pathLen = basicConstraintsOf(issuer)?.pathLen;
    if (pathLen !== undefined && below > pathLen) {
      throw new IsleError('ERR_CHAIN_INVALID', `"${subjectOf(issuer)}" allows ${pathLen} intermediate CA(s) below it (pathLen ${pathLen}), the chain has ${below}`);
    }
  }
  return { path, root: root! };
}
