// The shim must be evaluated before @peculiar/x509 (ES modules evaluate imports in order).
import './reflect-shim.js';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

// Node's own WebCrypto: keys stay native CryptoKeys, and no JS crypto implementation is pulled in.
x509.cryptoProvider.set(webcrypto);

export { x509 };
export const subtle = webcrypto.subtle;
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
