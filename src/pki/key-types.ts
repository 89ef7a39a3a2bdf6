// Kept free of crypto imports so the CLI can declare its options without loading @peculiar/x509.
import { IsleError } from '../errors.js';

export type KeyType = 'ec-p256' | 'rsa-2048' | 'rsa-4096';
export const KEY_TYPES: readonly KeyType[] = ['ec-p256', 'rsa-2048', 'rsa-4096'];
export const DEFAULT_KEY_TYPE: KeyType = 'ec-p256';

export function isKeyType(s: unknown): s is KeyType {
  return typeof s === 'string' && (KEY_TYPES as readonly string[]).includes(s);
}

export function assertKeyType(s: unknown): KeyType {
  if (!isKeyType(s)) throw new IsleError('ERR_USAGE', `unknown key type ${JSON.stringify(s)} (expected one of ${KEY_TYPES.join(', ')})`);
  return s;
}
