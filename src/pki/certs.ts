import { randomBytes, X509Certificate as NodeX509 } from 'node:crypto';
import { IsleError } from '../errors.js';
import type { SigningKey } from './keys.js';
import { decodePem, encodePem, errorText } from './pem.js';
import { parseSubjectAltName, parseTrustDomainId } from './spiffe.js';
import { x509, type CryptoKey } from './x509.js';

/**
 * A parsed certificate, seen through both parsers: Node's (OpenSSL: signature checks, key
 * matching, fingerprints) and @peculiar/x509's (typed access to every extension).
 */
export interface Cert {
  pem: string;
  der: Buffer;
  node: NodeX509;
  px: x509.X509Certificate;
}

/**
 * Issued certificates start a little in the past: control planes and proxies of different
 * clusters do not share a clock, and a certificate "not yet valid" by a few seconds fails a
 * handshake as hard as an expired one.
 */
export const CLOCK_SKEW_MS = 5 * 60 * 1000;

/** X.509 times have whole seconds; rounding here keeps returned dates equal to the cert's. */
export function floorToSecond(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

export function certFromDer(der: Buffer, where: string): Cert {
  try {
    const node = new NodeX509(der);
    const px = new x509.X509Certificate(new Uint8Array(der));
    return { pem: encodePem('CERTIFICATE', der), der, node, px };
  } catch (e) {
    throw new IsleError('ERR_PEM_INVALID', `${where}: corrupt certificate (${errorText(e)})`, { file: where, cause: e });
  }
}

/** Certificates of a PEM file: only CERTIFICATE blocks are allowed, at least one. */
export function parseCertsPem(text: string, where = 'certificate'): Cert[] {
  const blocks = decodePem(text, where);
  const other = blocks.find((b) => b.label !== 'CERTIFICATE');
  if (other) {
    throw new IsleError('ERR_PEM_INVALID', `${where}: expected certificates only, found a ${other.label} block`, { file: where });
  }
  return blocks.map((b) => certFromDer(b.der, where));
}

export function parseCertPem(text: string, where = 'certificate'): Cert {
  const certs = parseCertsPem(text, where);
  if (certs.length !== 1) {
    throw new IsleError('ERR_PEM_INVALID', `${where}: expected one certificate, found ${certs.length}`, { file: where });
  }
  return certs[0]!;
}

export function subjectOf(c: Cert): string {
  return c.px.subject === '' ? '(empty subject)' : c.px.subject;
}

export function basicConstraintsOf(c: Cert): { ca: boolean; pathLen?: number | undefined; critical: boolean } | undefined {
  const bc = c.px.getExtension(x509.BasicConstraintsExtension);
  return bc ? { ca: bc.ca, pathLen: bc.pathLength, critical: bc.critical } : undefined;
}

/** Key usage bit flags, undefined when the extension is absent (which means "any"). */
export function keyUsageOf(c: Cert): number | undefined {
  return c.px.getExtension(x509.KeyUsagesExtension)?.usages;
}

const KEY_USAGE_NAMES: Array<[number, string]> = [
  [x509.KeyUsageFlags.digitalSignature, 'digitalSignature'],
  [x509.KeyUsageFlags.nonRepudiation, 'nonRepudiation'],
  [x509.KeyUsageFlags.keyEncipherment, 'keyEncipherment'],
  [x509.KeyUsageFlags.dataEncipherment, 'dataEncipherment'],
  [x509.KeyUsageFlags.keyAgreement, 'keyAgreement'],
  [x509.KeyUsageFlags.keyCertSign, 'keyCertSign'],
  [x509.KeyUsageFlags.cRLSign, 'cRLSign'],
  [x509.KeyUsageFlags.encipherOnly, 'encipherOnly'],
  [x509.KeyUsageFlags.decipherOnly, 'decipherOnly'],
];

export function keyUsageNames(flags: number | undefined): string[] {
  return flags === undefined ? [] : KEY_USAGE_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name);
}

const EKU_NAMES: Record<string, string> = {
  [x509.ExtendedKeyUsage.serverAuth]: 'serverAuth',
  [x509.ExtendedKeyUsage.clientAuth]: 'clientAuth',
  [x509.ExtendedKeyUsage.codeSigning]: 'codeSigning',
  [x509.ExtendedKeyUsage.emailProtection]: 'emailProtection',
  [x509.ExtendedKeyUsage.timeStamping]: 'timeStamping',
  [x509.ExtendedKeyUsage.ocspSigning]: 'OCSPSigning',
};

export function extKeyUsageNames(c: Cert): string[] {
  const eku = c.px.getExtension(x509.ExtendedKeyUsageExtension);
  return eku ? eku.usages.map((u) => EKU_NAMES[String(u)] ?? String(u)) : [];
}

const SAN_TYPES: Record<string, string> = { url: 'URI', dns: 'DNS', ip: 'IP', email: 'email', dn: 'DirName', guid: 'GUID', upn: 'UPN', id: 'RID' };

/** SANs as `TYPE:value` strings, in openssl's spelling (`URI:spiffe://…`, `DNS:…`). */
export function subjectAltNames(c: Cert): string[] {
  try {
    const san = c.px.getExtension(x509.SubjectAlternativeNameExtension);
    return san ? san.names.items.map((n) => `${SAN_TYPES[n.type] ?? n.type}:${n.value}`) : [];
  } catch {
    // otherName and friends are not decodable by @peculiar/x509; openssl's text still is.
    return parseSubjectAltName(c.node.subjectAltName ?? '').map((e) => `${e.type}:${e.value}`);
  }
}

export function uriSans(c: Cert): string[] {
  return subjectAltNames(c).filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
}

/**
 * The trust domain a CA certificate speaks for: its `spiffe://<td>` URI SAN (SPIFFE's way for
 * signing certificates), else its subject O (how Isle names it, readable by `openssl x509`).
 */
export function trustDomainOf(c: Cert): string | undefined {
  for (const uri of uriSans(c)) {
    const td = parseTrustDomainId(uri);
    if (td) return td;
  }
  const o = c.px.subjectName.getField('O')[0];
  // Foreign CAs (e.g. Istio's samples, O=Istio) use O for something else: only a valid trust domain counts.
  return o !== undefined && /^[a-z0-9._-]+$/.test(o) ? o : undefined;
}

export function clusterOf(c: Cert): string | undefined {
  return c.px.subjectName.getField('L')[0];
}

export function sameCert(a: Cert, b: Cert): boolean {
  return a.der.equals(b.der);
}

/** True when `parent` names and signed `child`. The signature is what counts; names only narrow. */
export function isIssuedBy(child: Cert, parent: Cert): boolean {
  if (child.node.issuer !== parent.node.subject) return false;
  try {
    return child.node.verify(parent.node.publicKey);
  } catch {
    return false;
  }
}

export function isSelfSigned(c: Cert): boolean {
  return isIssuedBy(c, c);
}

export function validityProblem(c: Cert, now: Date): string | undefined {
  if (now.getTime() > c.px.notAfter.getTime()) return `certificate expired on ${c.px.notAfter.toISOString()}`;
  if (now.getTime() < c.px.notBefore.getTime()) return `certificate not valid before ${c.px.notBefore.toISOString()}`;
  return undefined;
}

/** Why a certificate cannot sign certificates, or undefined if it can. */
export function caProblem(c: Cert): string | undefined {
  const bc = basicConstraintsOf(c);
  if (!bc) return 'not a CA certificate (no basicConstraints extension)';
  if (!bc.ca) return 'not a CA certificate (basicConstraints CA:false)';
  const ku = keyUsageOf(c);
  if (ku !== undefined && (ku & x509.KeyUsageFlags.keyCertSign) === 0) return 'not a CA certificate (keyUsage lacks keyCertSign)';
  return undefined;
}

/** 128 random bits, positive and without a leading zero byte, as RFC 5280 §4.1.2.2 asks. */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

export interface IssueParams {
  subject: x509.JsonName;
  publicKey: x509.PublicKey | CryptoKey;
  /** Undefined for a self-signed certificate. */
  issuer?: Cert;
  signingKey: SigningKey;
  notBefore: Date;
  notAfter: Date;
  extensions: x509.Extension[];
}

export async function issueCertificate(p: IssueParams): Promise<Cert> {
  const publicKey = p.publicKey instanceof x509.PublicKey ? p.publicKey : await x509.PublicKey.create(p.publicKey);
  const extensions = [...p.extensions, await x509.SubjectKeyIdentifierExtension.create(publicKey)];
  if (p.issuer) {
    const ski = p.issuer.px.getExtension(x509.SubjectKeyIdentifierExtension);
    extensions.push(ski ? new x509.AuthorityKeyIdentifierExtension(ski.keyId) : await x509.AuthorityKeyIdentifierExtension.create(p.issuer.px.publicKey));
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: p.subject.length === 0 ? '' : new x509.Name(p.subject),
    issuer: p.issuer ? p.issuer.px.subjectName : new x509.Name(p.subject),
    notBefore: floorToSecond(p.notBefore),
    notAfter: floorToSecond(p.notAfter),
    publicKey,
    signingKey: p.signingKey.key,
    signingAlgorithm: p.signingKey.algorithm,
    extensions,
  });
  return certFromDer(Buffer.from(cert.rawData), 'issued certificate');
}
