// Bootstrap tokens: round trip and every refusal the certificate service relies on.
import assert from 'node:assert/strict';
import { createHmac, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { createIntermediate, createRoot } from '../../src/pki/index.js';
import { createToken, decodeToken, isTokenError, TOKEN_CLOCK_SKEW_SECONDS, verifyToken, type TokenFailure } from '../../src/mesh/token.js';
import { meshCa } from '../pki/fixtures.js';

/** One root, two clusters and a foreign look-alike CA per test file (EC P-256). */
const mesh = meshCa;

function refusedWith(reason: TokenFailure, message: RegExp) {
  return (e: unknown) => {
    assert.ok(isTokenError(e), `expected a TokenError, got ${String(e)}`);
    assert.equal(e.reason, reason, e.message);
    assert.equal(e.code, 'ERR_IDENTITY');
    assert.match(e.message, message);
    return true;
  };
}

function b64(o: unknown): string {
  return Buffer.from(JSON.stringify(o)).toString('base64url');
}

function tamper(token: string, edit: (header: Record<string, unknown>, payload: Record<string, unknown>) => void, signature?: string): string {
  const d = decodeToken(token);
  const header = { ...d.header };
  const payload = { ...d.payload };
  edit(header, payload);
  return `${b64(header)}.${b64(payload)}.${signature ?? token.split('.')[2]}`;
}

describe('bootstrap tokens', { concurrency: true }, () => {
  it('round trip: ES256, the documented claims, identity from the CA trust domain', async () => {
    const { c1 } = await mesh();
    const now = new Date();
    const { token, claims, header, capped } = createToken({ ca: c1, namespace: 'demo', serviceAccount: 'sleep', cluster: 'cluster-1', now });
    assert.equal(capped, false);
    assert.equal(header.alg, 'ES256');
    assert.equal(header.typ, 'JWT');
    assert.equal(claims.iss, 'isle://cluster-1');
    assert.equal(claims.aud, 'isle-ca');
    assert.equal(claims.sub, 'spiffe://cluster.local/ns/demo/sa/sleep');
    assert.equal(claims.cluster, 'cluster-1');
    assert.equal(claims.exp - claims.iat, 3600);
    assert.match(claims.jti, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(token.split('.').length, 3);
    // ECDSA in JWS is r||s: 64 bytes for P-256, not DER.
    assert.equal(decodeToken(token).signature.length, 64);

    const v = verifyToken(token, { ca: c1, cluster: 'cluster-1', now });
    assert.deepEqual(v.identity, { trustDomain: 'cluster.local', namespace: 'demo', serviceAccount: 'sleep' });
    assert.equal(v.spiffeId, claims.sub);
    assert.equal(v.cluster, 'cluster-1');
    assert.equal(v.exp.getTime(), claims.exp * 1000);
    assert.equal(v.jti, claims.jti);

    const other = createToken({ ca: c1, namespace: 'demo', serviceAccount: 'sleep', cluster: 'cluster-1', now });
    assert.notEqual(other.claims.jti, claims.jti);
  });

  it('RS256 when the CA key is RSA', async () => {
    const root = await createRoot({ keyType: 'rsa-2048' });
    const ca = await createIntermediate({ root, cluster: 'rsa-1' });
    const { token, header } = createToken({ ca, namespace: 'a', serviceAccount: 'b', cluster: 'rsa-1' });
    assert.equal(header.alg, 'RS256');
    assert.equal(verifyToken(token, { ca, cluster: 'rsa-1' }).spiffeId, 'spiffe://cluster.local/ns/a/sa/b');
    // An RS256 token offered to an EC CA is refused by algorithm before any key is used.
    const { c1 } = await mesh();
    assert.throws(() => verifyToken(token, { ca: c1, cluster: 'cluster-1' }), refusedWith('unsupported-alg', /"RS256" refused: this CA signs with ES256/));
  });

  it('TTL: --ttl honoured, capped at the CA expiry, invalid values refused', async () => {
    const { c1 } = await mesh();
    const now = new Date();
    assert.equal(createToken({ ca: c1, namespace: 'a', serviceAccount: 'b', cluster: 'cluster-1', ttlSeconds: 1800, now }).claims.exp - Math.floor(now.getTime() / 1000), 1800);
    const long = createToken({ ca: c1, namespace: 'a', serviceAccount: 'b', cluster: 'cluster-1', ttlSeconds: 10 * 365 * 86400, now });
    assert.equal(long.capped, true);
    assert.equal(long.claims.exp, Math.floor(c1.notAfter.getTime() / 1000));
    assert.throws(() => createToken({ ca: c1, namespace: 'a', serviceAccount: 'b', cluster: 'cluster-1', ttlSeconds: 0 }), /positive/);
    assert.throws(() => createToken({ ca: c1, namespace: 'a', serviceAccount: 'b', cluster: 'cluster-2' }), /does not match the CA, which is cluster cluster-1/);
    assert.throws(() => createToken({ ca: c1, namespace: 'a/b', serviceAccount: 'b', cluster: 'cluster-1' }), /invalid namespace/);
  });

  it('expired (past the skew allowance) and not yet valid', async () => {
    const { c1 } = await mesh();
    const now = new Date();
    const { token, claims } = createToken({ ca: c1, namespace: 'a', serviceAccount: 'b', cluster: 'cluster-1', ttlSeconds: 600, now });
    const exp = claims.exp * 1000;
    // Inside the allowance: still good.
    assert.ok(verifyToken(token, { ca: c1, cluster: 'cluster-1', now: new Date(exp + (TOKEN_CLOCK_SKEW_SECONDS - 1) * 1000) }));
    assert.throws(() => verifyToken(token, { ca: c1, cluster: 'cluster-1', now: new Date(exp + (TOKEN_CLOCK_SKEW_SECONDS + 1) * 1000) }), refusedWith('expired', /token expired at \d{4}-/));
    const iat = claims.iat * 1000;
    assert.ok(verifyToken(token, { ca: c1, cluster: 'cluster-1', now: new Date(iat - (TOKEN_CLOCK_SKEW_SECONDS - 1) * 1000) }));
    assert.throws(() => verifyToken(token, { ca: c1, cluster: 'cluster-1', now: new Date(iat - 3600 * 1000) }), refusedWith('not-yet-valid', /not valid before .*check clocks/));
  });

  it('forged: signed by another cluster’s intermediate, or by an unrelated root’s intermediate of the same name', async () => {
    const { c1, c2, foreignCa } = await mesh();
    const fromC2 = createToken({ ca: c2, namespace: 'a', serviceAccount: 'b', cluster: 'cluster-2' }).token;
    assert.throws(() => verifyToken(fromC2, { ca: c1, cluster: 'cluster-1' }), refusedWith('bad-signature', /does not verify with cluster cluster-1's CA, it was signed by a different CA key; forged .*claims cluster "cluster-2"/));
    // Same cluster name and trust domain, different key: only the signature can tell.
    const impostor = createToken({ ca: foreignCa, namespace: 'a', serviceAccount: 'b', cluster: 'cluster-1' }).token;
    assert.throws(() => verifyToken(impostor, { ca: c1, cluster: 'cluster-1' }), refusedWith('bad-signature', /forged or altered/));
  });

  it('forged: payload altered after signing (identity, expiry)', async () => {
    const { c1 } = await mesh();
    const { token } = createToken({ ca: c1, namespace: 'a', serviceAccount: 'b', cluster: 'cluster-1' });
    const admin = tamper(token, (_h, p) => (p.sub = 'spiffe://cluster.local/ns/istio-system/sa/admin'));
    assert.throws(() => verifyToken(admin, { ca: c1, cluster: 'cluster-1' }), refusedWith('bad-signature', /forged or altered/));
    const longer = tamper(token, (_h, p) => (p.exp = (p.exp as number) + 86400));
    assert.throws(() => verifyToken(longer, { ca: c1, cluster: 'cluster-1' }), refusedWith('bad-signature', /forged or altered/));
    // A flipped bit in the signature itself.
    const sig = Buffer.from(token.split('.')[2]!, 'base64url');
    sig[10] ^= 1;
    assert.throws(() => verifyToken(tamper(token, () => {}, sig.toString('base64url')), { ca: c1, cluster: 'cluster-1' }), refusedWith('bad-signature', /forged/));
  });

  it('forged: alg none, HS256 keyed with the public certificate, crit headers', async () => {
    const { c1 } = await mesh();
    const { token } = createToken({ ca: c1, namespace: 'a', serviceAccount: 'b', cluster: 'cluster-1' });
    const none = tamper(token, (h) => (h.alg = 'none'), '');
    assert.throws(() => verifyToken(none, { ca: c1, cluster: 'cluster-1' }), refusedWith('unsupported-alg', /alg "none"\) are never accepted/));
    const noneUpper = tamper(token, (h) => (h.alg = 'NONE'), '');
    assert.throws(() => verifyToken(noneUpper, { ca: c1, cluster: 'cluster-1' }), refusedWith('unsupported-alg', /never accepted/));
    // The classic confusion attack: HMAC keyed with the (public) CA certificate.
    const hsInput = `${b64({ alg: 'HS256', typ: 'JWT' })}.${token.split('.')[1]}`;
    const hs = `${hsInput}.${createHmac('sha256', c1.certPem).update(hsInput).digest('base64url')}`;
    assert.throws(() => verifyToken(hs, { ca: c1, cluster: 'cluster-1' }), refusedWith('unsupported-alg', /"HS256" refused: this CA signs with ES256/));
    const crit = tamper(token, (h) => (h.crit = ['exp']));
    assert.throws(() => verifyToken(crit, { ca: c1, cluster: 'cluster-1' }), refusedWith('unsupported-alg', /crit/));
  });

  it('authentic but wrong: audience, cluster, issuer, trust domain', async () => {
    const { c1 } = await mesh();
    // Re-signed with the real CA key, so only the claim checks can refuse them.
    const { keyPem } = c1;
    const resign = (edit: (p: Record<string, unknown>) => void): string => {
      const d = decodeToken(createToken({ ca: c1, namespace: 'a', serviceAccount: 'b', cluster: 'cluster-1' }).token);
      const payload = { ...d.payload };
      edit(payload);
      const input = `${b64(d.header)}.${b64(payload)}`;
      return `${input}.${sign('sha256', Buffer.from(input), { key: keyPem, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    };
    assert.throws(() => verifyToken(resign((p) => (p.aud = 'kubernetes')), { ca: c1, cluster: 'cluster-1' }), refusedWith('wrong-audience', /audience "kubernetes" is not isle-ca/));
    assert.ok(verifyToken(resign((p) => (p.aud = ['x', 'isle-ca'])), { ca: c1, cluster: 'cluster-1' }));
    assert.throws(() => verifyToken(resign((p) => (p.cluster = 'cluster-2')), { ca: c1, cluster: 'cluster-1' }), refusedWith('wrong-cluster', /token is for cluster cluster-2, this control plane is cluster cluster-1/));
    // The verifier's own cluster is what counts, not the claim.
    const good = createToken({ ca: c1, namespace: 'a', serviceAccount: 'b', cluster: 'cluster-1' }).token;
    assert.throws(() => verifyToken(good, { ca: c1, cluster: 'cluster-3' }), refusedWith('wrong-cluster', /cluster-1, this control plane is cluster cluster-3/));
    assert.throws(() => verifyToken(resign((p) => (p.iss = 'https://evil')), { ca: c1, cluster: 'cluster-1' }), refusedWith('wrong-issuer', /issuer "https:\/\/evil" is not isle:\/\/cluster-1/));
    assert.throws(() => verifyToken(resign((p) => (p.sub = 'spiffe://other.td/ns/a/sa/b')), { ca: c1, cluster: 'cluster-1' }), refusedWith('wrong-trust-domain', /trust domain other.td/));
    assert.throws(() => verifyToken(resign((p) => (p.sub = 'spiffe://cluster.local')), { ca: c1, cluster: 'cluster-1' }), refusedWith('malformed', /not a workload SPIFFE ID/));
    assert.throws(() => verifyToken(resign((p) => delete p.exp), { ca: c1, cluster: 'cluster-1' }), refusedWith('malformed', /"exp"/));
  });

  it('malformed input never reaches the crypto', async () => {
    const { c1 } = await mesh();
    const v = (t: string) => () => verifyToken(t, { ca: c1, cluster: 'cluster-1' });
    assert.throws(v(''), refusedWith('malformed', /empty/));
    assert.throws(v('abc'), refusedWith('malformed', /expected 3 dot-separated parts .* found 1/));
    assert.throws(v('a.b.c.d'), refusedWith('malformed', /found 4/));
    assert.throws(v('a+b.c.d'), refusedWith('malformed', /base64url/));
    assert.throws(v(`${b64('x')}.${b64({})}.`), refusedWith('malformed', /header is not a JSON object/));
    assert.throws(v(`${b64({ typ: 'JWT' })}.${b64({})}.`), refusedWith('malformed', /no "alg"/));
    assert.throws(v(`${b64({ alg: 'ES256' })}.bm90IGpzb24.`), refusedWith('malformed', /payload is not base64url-encoded JSON/));
    assert.throws(v('x'.repeat(9000)), refusedWith('malformed', /longer than/));
  });

  it('a key id derived from the CA key, stable per CA', async () => {
    const { c1, c2 } = await mesh();
    const k1 = createToken({ ca: c1, namespace: 'a', serviceAccount: 'b', cluster: 'cluster-1' }).header.kid;
    const k1b = createToken({ ca: c1, namespace: 'c', serviceAccount: 'd', cluster: 'cluster-1' }).header.kid;
    const k2 = createToken({ ca: c2, namespace: 'a', serviceAccount: 'b', cluster: 'cluster-2' }).header.kid;
    assert.equal(k1, k1b);
    assert.notEqual(k1, k2);
  });
});
