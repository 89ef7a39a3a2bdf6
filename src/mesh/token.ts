/**
 * Bootstrap tokens: compact JWS (JWT) signed with the cluster's intermediate CA key, so that a
 * proxy without a certificate can prove which identity the operator gave it. Only node:crypto is
 * used; see docs/decisions/0008-tokens-and-ca-service.md for why the CA key signs them.
 */
import { createHash, createPublicKey, randomBytes, sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { IsleError } from '../errors.js';
// Narrow imports (not ../pki/index.js): the sidecar loads this module and must not pull in @peculiar/x509.
import type { IssuingCa } from '../pki/ca.js';
import { parsePrivateKeyPem } from '../pki/keys.js';
import { buildSpiffeId, parseSpiffeId, type WorkloadIdentity } from '../pki/spiffe.js';

export const TOKEN_AUDIENCE = 'isle-ca';
export const DEFAULT_TOKEN_TTL_SECONDS = 60 * 60;
/**
 * Control planes and the machines that mint tokens do not share a clock. A minute covers NTP-
 * synced hosts; more would stretch a bearer credential's life for everyone.
 */
export const TOKEN_CLOCK_SKEW_SECONDS = 60;
/** Far more than any real token; stops a pasted file from making the parser work hard. */
const MAX_TOKEN_LENGTH = 8 * 1024;

export type TokenAlg = 'ES256' | 'ES384' | 'RS256';

export interface TokenClaims {
  iss: string;
  aud: string;
  sub: string;
  cluster: string;
  iat: number;
  exp: number;
  jti: string;
  /** How many certificates the token may mint; absent = 1 (single use). */
  uses?: number;
}

export interface TokenHeader {
  alg: string;
  typ?: string;
  kid?: string;
  [k: string]: unknown;
}

/** Why a token was refused; the service maps these to gRPC status codes. */
export type TokenFailure =
  | 'malformed'
  | 'unsupported-alg'
  | 'bad-signature'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-audience'
  | 'wrong-issuer'
  | 'wrong-cluster'
  | 'wrong-trust-domain';

export class TokenError extends IsleError {
  readonly reason: TokenFailure;

  constructor(reason: TokenFailure, message: string, options: { cause?: unknown } = {}) {
    super('ERR_IDENTITY', message, options);
    this.name = 'TokenError';
    this.reason = reason;
  }
}

export function isTokenError(e: unknown): e is TokenError {
  return e instanceof TokenError;
}

interface KeyAlg {
  alg: TokenAlg;
  hash: 'sha256' | 'sha384';
  /** JWS (RFC 7518 §3.4) wants ECDSA signatures as r||s, not DER. */
  dsaEncoding?: 'ieee-p1363';
}

function algOf(key: KeyObject): KeyAlg {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec' && d.namedCurve === 'prime256v1') return { alg: 'ES256', hash: 'sha256', dsaEncoding: 'ieee-p1363' };
  if (key.asymmetricKeyType === 'ec' && d.namedCurve === 'secp384r1') return { alg: 'ES384', hash: 'sha384', dsaEncoding: 'ieee-p1363' };
  if (key.asymmetricKeyType === 'rsa' && (d.modulusLength ?? 0) >= 2048) return { alg: 'RS256', hash: 'sha256' };
  throw new IsleError('ERR_PEM_INVALID', `CA key cannot sign tokens: unsupported key ${key.asymmetricKeyType ?? '?'} ${d.namedCurve ?? d.modulusLength ?? ''}`.trim());
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

const B64URL = /^[A-Za-z0-9_-]*$/;

/**
 * A short fingerprint of the signing certificate's key. Never trusted for verification; it lets
 * an error say "signed by another CA" instead of only "bad signature".
 */
function keyId(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ format: 'der', type: 'spki' })).digest('base64url').slice(0, 16);
}

interface CaKeys {
  publicKey: KeyObject;
  kid: string;
  alg: KeyAlg;
}

// Keyed by object identity, as caSigner does: an IssuingCa does not change once loaded.
const caKeys = new WeakMap<IssuingCa, CaKeys>();

function keysOf(ca: IssuingCa): CaKeys {
  let k = caKeys.get(ca);
  if (!k) {
    const publicKey = new X509Certificate(ca.certPem).publicKey;
    k = { publicKey, kid: keyId(publicKey), alg: algOf(publicKey) };
    caKeys.set(ca, k);
  }
  return k;
}

export function issuerOf(cluster: string): string {
  return `isle://${cluster}`;
}

export interface CreateTokenOptions {
  /** The cluster's intermediate (loadCaDir); its key signs, its certificate verifies. */
  ca: IssuingCa;
  namespace: string;
  serviceAccount: string;
  cluster: string;
  ttlSeconds?: number;
  now?: Date;
  /** Certificates the token may mint (`isle token create --reusable N`); default 1. */
  uses?: number;
}

/** Upper bound on `--reusable`: a token is a bearer credential, not a fleet-wide password. */
export const MAX_TOKEN_USES = 1000;

export interface CreatedToken {
  token: string;
  claims: TokenClaims;
  header: TokenHeader;
  /** The TTL asked for would outlive the CA certificate, so exp is the CA's notAfter. */
  capped: boolean;
}

export function createToken(opts: CreateTokenOptions): CreatedToken {
  const ttl = opts.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
  const uses = opts.uses ?? 1;
  if (!Number.isSafeInteger(uses) || uses < 1 || uses > MAX_TOKEN_USES) throw new IsleError('ERR_USAGE', `token uses must be a whole number from 1 to ${MAX_TOKEN_USES} (got ${uses})`);
  if (!Number.isSafeInteger(ttl) || ttl <= 0) throw new IsleError('ERR_USAGE', `token TTL must be a positive number of seconds (got ${ttl})`);
  if (opts.ca.cluster !== undefined && opts.ca.cluster !== opts.cluster) {
    throw new IsleError('ERR_USAGE', `cluster ${opts.cluster} does not match the CA, which is cluster ${opts.ca.cluster}'s intermediate`);
  }
  const identity: WorkloadIdentity = { trustDomain: opts.ca.trustDomain, namespace: opts.namespace, serviceAccount: opts.serviceAccount };
  const sub = buildSpiffeId(identity);
  const privateKey = parsePrivateKeyPem(opts.ca.keyPem, 'CA key');
  const { kid, alg } = keysOf(opts.ca);
  if (keyId(createPublicKey(privateKey)) !== kid) throw new IsleError('ERR_KEY_MISMATCH', 'CA key does not match the CA certificate');

  const iat = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  const caEnd = Math.floor(opts.ca.notAfter.getTime() / 1000);
  // A token the CA could no longer honour would only fail later with a less useful message.
  const exp = Math.min(iat + ttl, caEnd);
  if (exp <= iat) throw new IsleError('ERR_CERT_EXPIRED', `CA certificate expired on ${opts.ca.notAfter.toISOString()}; it cannot issue tokens`);
  const claims: TokenClaims = { iss: issuerOf(opts.cluster), aud: TOKEN_AUDIENCE, sub, cluster: opts.cluster, iat, exp, jti: randomBytes(16).toString('base64url'), ...(uses > 1 ? { uses } : {}) };
  const header: TokenHeader = { alg: alg.alg, typ: 'JWT', kid };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = sign(alg.hash, Buffer.from(signingInput), { key: privateKey, dsaEncoding: alg.dsaEncoding });
  return { token: `${signingInput}.${b64url(signature)}`, claims, header, capped: exp < iat + ttl };
}

export interface DecodedToken {
  header: TokenHeader;
  /** Unverified: only for display or after verifyToken. */
  payload: Record<string, unknown>;
  signingInput: string;
  signature: Buffer;
}

function parseJsonPart(part: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new TokenError('malformed', `malformed token: ${what} is not base64url-encoded JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TokenError('malformed', `malformed token: ${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

/** Splits and decodes a compact JWS without checking anything but its shape. */
export function decodeToken(token: string): DecodedToken {
  if (typeof token !== 'string' || token.length === 0) throw new TokenError('malformed', 'malformed token: empty');
  if (token.length > MAX_TOKEN_LENGTH) throw new TokenError('malformed', `malformed token: longer than ${MAX_TOKEN_LENGTH} characters`);
  const parts = token.trim().split('.');
  if (parts.length !== 3) throw new TokenError('malformed', `malformed token: expected 3 dot-separated parts (header.payload.signature), found ${parts.length}`);
  if (!parts.every((p) => B64URL.test(p))) throw new TokenError('malformed', 'malformed token: parts must be base64url without padding');
  const header = parseJsonPart(parts[0]!, 'header');
  if (typeof header.alg !== 'string') throw new TokenError('malformed', 'malformed token: header has no "alg"');
  const payload = parseJsonPart(parts[1]!, 'payload');
  return { header: header as TokenHeader, payload, signingInput: `${parts[0]}.${parts[1]}`, signature: Buffer.from(parts[2]!, 'base64url') };
}

export interface VerifyTokenOptions {
  ca: IssuingCa;
  /** This control plane's cluster; a token for another cluster is refused. */
  cluster: string;
  now?: Date;
}

export interface VerifiedToken {
  identity: WorkloadIdentity;
  spiffeId: string;
  cluster: string;
  exp: Date;
  iat: Date;
  jti: string;
  /** Certificates it may mint (1 unless minted with --reusable). */
  uses: number;
}

function numericClaim(payload: Record<string, unknown>, name: string): number {
  const v = Object.hasOwn(payload, name) ? payload[name] : undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new TokenError('malformed', `malformed token: claim "${name}" must be a whole number of seconds`);
  return v;
}

function stringClaim(payload: Record<string, unknown>, name: string): string {
  const v = Object.hasOwn(payload, name) ? payload[name] : undefined;
  if (typeof v !== 'string' || v.length === 0) throw new TokenError('malformed', `malformed token: claim "${name}" must be a non-empty string`);
  return v;
}

/**
 * Checks, in this order: shape, algorithm (fixed by the CA's key type, so `none` and
 * HS256-with-the-public-key tricks cannot apply), signature, then claims. Claims of a token whose
 * signature fails are never trusted, only quoted to make the error useful.
 */
export function verifyToken(token: string, opts: VerifyTokenOptions): VerifiedToken {
  const decoded = decodeToken(token);
  const { publicKey, kid, alg } = keysOf(opts.ca);
  const { header, payload } = decoded;
  if (header.alg !== alg.alg) {
    const why = header.alg.toLowerCase() === 'none' ? 'unsigned tokens (alg "none") are never accepted' : `this CA signs with ${alg.alg}`;
    throw new TokenError('unsupported-alg', `token algorithm ${JSON.stringify(header.alg)} refused: ${why}`);
  }
  if (header.crit !== undefined) throw new TokenError('unsupported-alg', 'token header has "crit" extensions, which this CA does not understand');
  let valid = false;
  try {
    valid = verify(alg.hash, Buffer.from(decoded.signingInput), { key: publicKey, dsaEncoding: alg.dsaEncoding }, decoded.signature);
  } catch {
    valid = false;
  }
  if (!valid) {
    const claimed = typeof payload.cluster === 'string' ? ` (it claims cluster ${JSON.stringify(payload.cluster)})` : '';
    const other = typeof header.kid === 'string' && header.kid !== kid ? ', it was signed by a different CA key' : '';
    throw new TokenError('bad-signature', `token signature does not verify with cluster ${opts.cluster}'s CA${other}; forged or altered token${claimed}`);
  }

  const now = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  const exp = numericClaim(payload, 'exp');
  const iat = numericClaim(payload, 'iat');
  const sub = stringClaim(payload, 'sub');
  const claimedCluster = stringClaim(payload, 'cluster');
  const iss = stringClaim(payload, 'iss');
  const jti = stringClaim(payload, 'jti');
  if (now > exp + TOKEN_CLOCK_SKEW_SECONDS) throw new TokenError('expired', `token expired at ${new Date(exp * 1000).toISOString()}`);
  if (iat > now + TOKEN_CLOCK_SKEW_SECONDS) throw new TokenError('not-yet-valid', `token not valid before ${new Date(iat * 1000).toISOString()} (issued in the future; check clocks)`);
  const nbf = payload.nbf === undefined ? undefined : numericClaim(payload, 'nbf');
  if (nbf !== undefined && nbf > now + TOKEN_CLOCK_SKEW_SECONDS) throw new TokenError('not-yet-valid', `token not valid before ${new Date(nbf * 1000).toISOString()}`);
  const aud = payload.aud;
  const auds = Array.isArray(aud) ? aud : [aud];
  if (!auds.includes(TOKEN_AUDIENCE)) throw new TokenError('wrong-audience', `token audience ${JSON.stringify(aud)} is not ${TOKEN_AUDIENCE}`);
  if (claimedCluster !== opts.cluster) {
    throw new TokenError('wrong-cluster', `token is for cluster ${claimedCluster}, this control plane is cluster ${opts.cluster}`);
  }
  if (iss !== issuerOf(opts.cluster)) throw new TokenError('wrong-issuer', `token issuer ${JSON.stringify(iss)} is not ${issuerOf(opts.cluster)}`);
  let identity: WorkloadIdentity;
  try {
    identity = parseSpiffeId(sub);
  } catch (e) {
    throw new TokenError('malformed', `malformed token: subject ${JSON.stringify(sub)} is not a workload SPIFFE ID`, { cause: e });
  }
  if (identity.trustDomain !== opts.ca.trustDomain) {
    throw new TokenError('wrong-trust-domain', `token names trust domain ${identity.trustDomain}, this CA signs for ${opts.ca.trustDomain}`);
  }
  const uses = payload.uses === undefined ? 1 : numericClaim(payload, 'uses');
  if (uses < 1 || uses > MAX_TOKEN_USES) throw new TokenError('malformed', `malformed token: claim "uses" must be 1 to ${MAX_TOKEN_USES}`);
  return { identity, spiffeId: sub, cluster: claimedCluster, exp: new Date(exp * 1000), iat: new Date(iat * 1000), jti, uses };
}
