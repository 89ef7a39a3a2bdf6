/**
 * A PKCS#10 certificate request built with node:crypto alone: what a sidecar sends to the CA at
 * start-up (an empty subject, the SPIFFE id as a critical URI SAN, signed by a fresh key that
 * never leaves the process). It is the same request `createCsr` (csr.ts) makes with
 * @peculiar/x509, written out in DER by hand so that the sidecar does not load that library
 * (~17 MB of RSS; ADR 0025). Parsing and checking CSRs stays in csr.ts, on the CA side.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { DEFAULT_KEY_TYPE, assertKeyType, type KeyType } from './key-types.js';
import { encodePem } from './pem.js';
import { buildSpiffeId, type WorkloadIdentity } from './spiffe.js';

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const seq = (...p: Buffer[]) => tlv(0x30, ...p);

function oid(dotted: string): Buffer {
  const a = dotted.split('.').map(Number);
  const out = [40 * a[0]! + a[1]!];
  for (const n of a.slice(2)) {
    const b = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) b.unshift(0x80 | (v & 0x7f));
    out.push(...b);
  }
  return tlv(0x06, Buffer.from(out));
}

const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const OID_RSA_SHA256 = '1.2.840.113549.1.1.11';

function keyPair(keyType: KeyType): { publicKey: KeyObject; privateKey: KeyObject } {
  switch (keyType) {
    case 'ec-p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'rsa-2048':
      return generateKeyPairSync('rsa', { modulusLength: 2048 });
    case 'rsa-4096':
      return generateKeyPairSync('rsa', { modulusLength: 4096 });
  }
}

/** A key and a CSR for `identity`'s SPIFFE id (PEM, PKCS#8 key). */
export function createCsrNative(opts: { identity: WorkloadIdentity; keyType?: KeyType }): { csrPem: string; keyPem: string } {
  const keyType = assertKeyType(opts.keyType ?? DEFAULT_KEY_TYPE);
  const { publicKey, privateKey } = keyPair(keyType);
  const uri = buildSpiffeId(opts.identity);
  const san = seq(tlv(0x86, Buffer.from(uri, 'ascii')));
  const extension = seq(oid(OID_SUBJECT_ALT_NAME), tlv(0x01, Buffer.from([0xff])), tlv(0x04, san));
  const attributes = tlv(0xa0, seq(oid(OID_EXTENSION_REQUEST), tlv(0x31, seq(extension))));
  const info = seq(tlv(0x02, Buffer.from([0])), seq(), publicKey.export({ type: 'spki', format: 'der' }), attributes);
  const ec = keyType === 'ec-p256';
  const algorithm = ec ? seq(oid(OID_ECDSA_SHA256)) : seq(oid(OID_RSA_SHA256), tlv(0x05));
  const signature = sign('sha256', info, privateKey);
  const csr = seq(info, algorithm, tlv(0x03, Buffer.from([0]), signature));
  return { csrPem: encodePem('CERTIFICATE REQUEST', csr), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}
