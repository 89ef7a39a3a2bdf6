import { createPublicKey, type KeyObject } from 'node:crypto';
import { IsleError } from '../errors.js';
import { DEFAULT_KEY_TYPE, generateKey, type KeyType } from './keys.js';
import { decodePem, errorText } from './pem.js';
import { buildSpiffeId, type WorkloadIdentity } from './spiffe.js';
import { x509 } from './x509.js';

export interface CreateCsrOptions {
  identity: WorkloadIdentity;
  keyType?: KeyType;
}

/**
 * What a proxy does at start-up: make a key that never leaves it and a CSR asking for its
 * SPIFFE ID. The subject stays empty; the identity lives in the (critical) URI SAN only.
 */
export async function createCsr(opts: CreateCsrOptions): Promise<{ csrPem: string; keyPem: string }> {
  const spiffeId = buildSpiffeId(opts.identity);
  const generated = await generateKey(opts.keyType ?? DEFAULT_KEY_TYPE);
  const alg = generated.keys.privateKey.algorithm as { name: string };
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: generated.keys,
    signingAlgorithm: alg.name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true)],
  });
  return { csrPem: csr.toString('pem'), keyPem: generated.keyPem };
}

export interface ParsedCsr {
  csr: x509.Pkcs10CertificateRequest;
  publicKey: KeyObject;
  /** SANs the CSR asks for as `TYPE:value` (undefined when it asks for none). */
  requestedSans: string[] | undefined;
}

const SAN_TYPES: Record<string, string> = { url: 'URI', dns: 'DNS', ip: 'IP', email: 'email' };

/** Parses a PKCS#10 CSR and checks its self-signature (proof the requester holds the key). */
export async function parseCsr(csrPem: string): Promise<ParsedCsr> {
  let csr: x509.Pkcs10CertificateRequest;
  let publicKey: KeyObject;
  try {
    const blocks = decodePem(csrPem, 'CSR');
    if (blocks.length !== 1 || !/^(NEW )?CERTIFICATE REQUEST$/.test(blocks[0]!.label)) {
      throw new Error(`expected one CERTIFICATE REQUEST block, found ${blocks.map((b) => b.label).join(', ')}`);
    }
    csr = new x509.Pkcs10CertificateRequest(new Uint8Array(blocks[0]!.der));
    publicKey = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (e) {
    throw new IsleError('ERR_CSR_INVALID', `CSR is not a valid PKCS#10 request (${errorText(e)})`, { cause: e });
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch (e) {
    throw new IsleError('ERR_CSR_INVALID', `CSR signature cannot be checked (${errorText(e)})`, { cause: e });
  }
  if (!valid) throw new IsleError('ERR_CSR_INVALID', 'CSR signature does not verify (the requester does not hold the key)');

  // Copied into a plain array: the library returns an Array subclass, which flatMap would keep.
  const sanExtensions = [...csr.extensions].filter((e) => e.type === '2.5.29.17');
  let requestedSans: string[] | undefined;
  if (sanExtensions.length > 0) {
    try {
      requestedSans = sanExtensions.flatMap((e) =>
        new x509.SubjectAlternativeNameExtension(e.rawData).names.items.map((n) => `${SAN_TYPES[n.type] ?? n.type}:${n.value}`),
      );
    } catch (e) {
      throw new IsleError('ERR_IDENTITY', `CSR requests a subject alternative name of a type Isle does not issue (${errorText(e)})`, { cause: e });
    }
  }
  return { csr, publicKey, requestedSans };
}
