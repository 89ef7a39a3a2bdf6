import { createPrivateKey, createPublicKey, KeyObject } from 'node:crypto';
import { IsleError } from '../errors.js';
import { decodePem, encodePem, errorText } from './pem.js';
import { assertKeyType, DEFAULT_KEY_TYPE, type KeyType } from './key-types.js';
import { webcrypto } from 'node:crypto';

// Node's WebCrypto directly (not through ./x509.js): key handling must not load @peculiar/x509,
// which costs a sidecar ~17 MB of RSS (ADR 0025).
const subtle = webcrypto.subtle;
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export { assertKeyType, DEFAULT_KEY_TYPE, isKeyType, KEY_TYPES, type KeyType } from './key-types.js';

/** WebCrypto algorithm of a signing key; RSA uses PKCS#1 v1.5 because every TLS stack accepts it. */
type SigningAlgorithm =
  | { name: 'ECDSA'; namedCurve: 'P-256' | 'P-384'; hash: 'SHA-256' | 'SHA-384' }
  | { name: 'RSASSA-PKCS1-v1_5'; hash: 'SHA-256' };

function generationAlgorithm(keyType: KeyType) {
  switch (keyType) {
    case 'ec-p256':
      return { name: 'ECDSA', namedCurve: 'P-256' } as const;
    case 'rsa-2048':
    case 'rsa-4096':
      return {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: keyType === 'rsa-2048' ? 2048 : 4096,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      } as const;
  }
}

export interface GeneratedKey {
  keyType: KeyType;
  keys: CryptoKeyPair;
  /** PKCS#8 PEM. */
  keyPem: string;
}

export async function generateKey(keyType: KeyType = DEFAULT_KEY_TYPE): Promise<GeneratedKey> {
  const keys = (await subtle.generateKey(generationAlgorithm(assertKeyType(keyType)), true, ['sign', 'verify'])) as CryptoKeyPair;
  const pkcs8 = await subtle.exportKey('pkcs8', keys.privateKey);
  return { keyType, keys, keyPem: encodePem('PRIVATE KEY', pkcs8) };
}

const PRIVATE_KEY_LABELS = new Set(['PRIVATE KEY', 'EC PRIVATE KEY', 'RSA PRIVATE KEY']);

/**
 * Parses a private key PEM file (PKCS#8; the legacy SEC1/PKCS#1 forms that Istio users may have
 * made with openssl are accepted too). Errors name the file and never echo key material.
 */
export function parsePrivateKeyPem(text: string, where = 'private key'): KeyObject {
  const blocks = decodePem(text, where);
  const keyBlocks = blocks.filter((b) => PRIVATE_KEY_LABELS.has(b.label));
  if (blocks.some((b) => b.label === 'ENCRYPTED PRIVATE KEY')) {
    throw new IsleError('ERR_PEM_INVALID', `${where}: encrypted private keys are not supported (decrypt it with openssl pkey first)`, { file: where });
  }
  if (keyBlocks.length !== 1) {
    throw new IsleError('ERR_PEM_INVALID', `${where}: expected one private key, found ${keyBlocks.length} (PEM blocks: ${blocks.map((b) => b.label).join(', ')})`, { file: where });
  }
  const block = keyBlocks[0]!;
  try {
    const type = block.label === 'PRIVATE KEY' ? 'pkcs8' : block.label === 'EC PRIVATE KEY' ? 'sec1' : 'pkcs1';
    return createPrivateKey({ key: block.der, format: 'der', type });
  } catch (e) {
    throw new IsleError('ERR_PEM_INVALID', `${where}: corrupt private key (${errorText(e)})`, { file: where, cause: e });
  }
}

/** Human name of a key: `EC P-256`, `RSA 2048`. */
export function describeKey(key: KeyObject): string {
  const d = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = d.namedCurve === 'prime256v1' ? 'P-256' : d.namedCurve === 'secp384r1' ? 'P-384' : d.namedCurve === 'secp521r1' ? 'P-521' : (d.namedCurve ?? '?');
      return `EC ${curve}`;
    }
    case 'rsa':
    case 'rsa-pss':
      return `${key.asymmetricKeyType === 'rsa' ? 'RSA' : 'RSA-PSS'} ${d.modulusLength ?? '?'}`;
    default:
      return (key.asymmetricKeyType ?? 'unknown').toUpperCase();
  }
}

/** The Isle key type of a key, when it is one Isle generates. */
export function keyTypeOf(key: KeyObject): KeyType | undefined {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec' && d.namedCurve === 'prime256v1') return 'ec-p256';
  if (key.asymmetricKeyType === 'rsa' && d.modulusLength === 2048) return 'rsa-2048';
  if (key.asymmetricKeyType === 'rsa' && d.modulusLength === 4096) return 'rsa-4096';
  return undefined;
}

/**
 * Whether a public key is strong enough for a mesh identity. Checked on CSRs, so a proxy cannot
 * get a certificate for a key that would weaken the whole mesh.
 */
export function acceptablePublicKey(key: KeyObject): string | undefined {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    return d.namedCurve === 'prime256v1' || d.namedCurve === 'secp384r1' ? undefined : `unsupported EC curve ${d.namedCurve ?? '?'}`;
  }
  if (key.asymmetricKeyType === 'rsa') {
    return (d.modulusLength ?? 0) >= 2048 ? undefined : `RSA key too small (${d.modulusLength ?? '?'} bits, need at least 2048)`;
  }
  return `unsupported key algorithm ${key.asymmetricKeyType ?? '?'}`;
}

export interface SigningKey {
  key: CryptoKey;
  algorithm: SigningAlgorithm;
  description: string;
}

/** Imports a CA private key into WebCrypto for signing (EC P-256/P-384 or RSA ≥ 2048). */
export async function toSigningKey(key: KeyObject, where = 'private key'): Promise<SigningKey> {
  const d = key.asymmetricKeyDetails ?? {};
  let algorithm: SigningAlgorithm;
  if (key.asymmetricKeyType === 'ec' && (d.namedCurve === 'prime256v1' || d.namedCurve === 'secp384r1')) {
    algorithm = d.namedCurve === 'prime256v1'
      ? { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
      : { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' };
  } else if (key.asymmetricKeyType === 'rsa' && (d.modulusLength ?? 0) >= 2048) {
    algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  } else {
    throw new IsleError('ERR_PEM_INVALID', `${where}: unsupported signing key ${describeKey(key)} (use EC P-256 or RSA ≥ 2048)`, { file: where });
  }
  const pkcs8 = key.export({ format: 'der', type: 'pkcs8' });
  const imported = await subtle.importKey('pkcs8', pkcs8, algorithm, false, ['sign']);
  return { key: imported, algorithm, description: describeKey(key) };
}

export function publicKeyOf(key: KeyObject): KeyObject {
  return key.type === 'private' ? createPublicKey(key) : key;
}
