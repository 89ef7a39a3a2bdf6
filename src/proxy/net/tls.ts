/**
 * TLS material for both directions, from the validated model plus the SDS secrets of the
 * current config. Secure contexts are cached by content, so a config push that does not change a
 * certificate keeps the same context (and the same upstream pool); a rotated certificate gives a
 * new context, which the pools notice and use for new connections only.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { parseSubjectAltName, spiffeIdFromCert } from '../../pki/spiffe.js';
import { MUX_ALPN } from '../mux/frame.js';
import { matchString } from '../routing/match.js';
import type {
  DataSourceModel,
  DownstreamTlsModel,
  SanMatcherModel,
  SecretModel,
  TlsCertificateModel,
  TlsCertificateRef,
  UpstreamTlsModel,
  ValidationContextModel,
  ValidationContextRef,
} from '../model.js';

export type Secrets = ReadonlyMap<string, SecretModel>;

export class TlsMaterialError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsMaterialError';
  }
}

export function readDataSource(ds: DataSourceModel): string {
  if (ds.kind === 'inline') return ds.data;
  try {
    return readFileSync(ds.path, 'utf8');
  } catch (e) {
    throw new TlsMaterialError(`cannot read ${ds.path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export function resolveCertificate(ref: TlsCertificateRef, secrets: Secrets): TlsCertificateModel {
  if (ref.kind === 'inline') return ref.certificate;
  const s = secrets.get(ref.name);
  if (!s) throw new TlsMaterialError(`secret ${JSON.stringify(ref.name)} not received (SDS)`);
  if (s.kind !== 'tls-certificate') throw new TlsMaterialError(`secret ${JSON.stringify(ref.name)} is not a TLS certificate`);
  return s.certificate;
}

export function resolveValidation(ref: ValidationContextRef, secrets: Secrets): ValidationContextModel {
  if (ref.kind === 'inline') return ref.validation;
  const s = secrets.get(ref.name);
  if (!s) throw new TlsMaterialError(`secret ${JSON.stringify(ref.name)} not received (SDS)`);
  if (s.kind !== 'validation-context') throw new TlsMaterialError(`secret ${JSON.stringify(ref.name)} is not a validation context`);
  return s.validation;
}

const NODE_SAN_TYPE: Record<string, string> = { URI: 'URI', DNS: 'DNS', EMAIL: 'email', IP_ADDRESS: 'IP Address' };

/** True when `matchers` is empty or one of them matches one of the certificate's SANs. */
export function sansMatch(matchers: readonly SanMatcherModel[], subjectaltname: string | undefined): boolean {
  if (matchers.length === 0) return true;
  const sans = parseSubjectAltName(subjectaltname ?? '');
  return matchers.some((m) => sans.some((s) => s.type === NODE_SAN_TYPE[m.sanType] && matchString(m.matcher, s.value)));
}

export function describeMatchers(matchers: readonly SanMatcherModel[]): string {
  return matchers.map((m) => (m.matcher.kind === 'regex' ? `~${m.matcher.regex.source}` : m.matcher.value)).join(', ');
}

interface ContextEntry {
  ctx: tls.SecureContext;
  /** Content fingerprint: equal material gives an equal id. */
  id: string;
  /** The PEMs, because tls.Server takes material, not a SecureContext. */
  pem: { cert: string | undefined; key: string | undefined; ca: string | undefined };
}

const contexts = new Map<string, ContextEntry>();
const MAX_CACHED_CONTEXTS = 256;

function secureContext(kind: string, cert: TlsCertificateModel | undefined, caPem: string | undefined): ContextEntry {
  const certPem = cert ? readDataSource(cert.certificateChain) : undefined;
  const keyPem = cert ? readDataSource(cert.privateKey) : undefined;
  const id = createHash('sha256')
    .update(`${kind}\0${certPem ?? ''}\0${keyPem ?? ''}\0${caPem ?? ''}`)
    .digest('hex')
    .slice(0, 32);
  const hit = contexts.get(id);
  if (hit) return hit;
  let ctx: tls.SecureContext;
  try {
    ctx = tls.createSecureContext({ cert: certPem, key: keyPem, ca: caPem, minVersion: 'TLSv1.2' });
  } catch (e) {
    throw new TlsMaterialError(`bad TLS material: ${e instanceof Error ? e.message : String(e)}`);
  }
  // Old rotations are not needed again; a small bound is enough to avoid churn on pushes.
  if (contexts.size >= MAX_CACHED_CONTEXTS) contexts.delete(contexts.keys().next().value!);
  const entry = { ctx, id, pem: { cert: certPem, key: keyPem, ca: caPem } };
  contexts.set(id, entry);
  return entry;
}

export interface UpstreamTlsSettings {
  /** Changes exactly when the certificate, key, CA or checks change. */
  id: string;
  options: tls.ConnectionOptions;
}

/**
 * tls.connect options for a cluster: client certificate, trust bundle, SNI, and a
 * checkServerIdentity that accepts the peer when its SAN (a SPIFFE URI for Isle) matches one of
 * the expected SANs, or any identity the trust bundle vouches for when none are listed. The
 * hostname is never checked: the SNI names a cluster, not the server's certificate.
 */
export function upstreamTlsSettings(t: UpstreamTlsModel, secrets: Secrets, http2 = false): UpstreamTlsSettings {
  const cert = t.certificates[0] ? resolveCertificate(t.certificates[0], secrets) : undefined;
  const validation = t.validation ? resolveValidation(t.validation, secrets) : undefined;
  const caPem = validation?.trustedCa ? readDataSource(validation.trustedCa) : undefined;
  const matchers = [...t.expectedSans, ...(validation?.matchSans ?? [])];
  const entry = secureContext('client', cert, caPem);
  const verify = caPem !== undefined;
  const options: tls.ConnectionOptions = {
    secureContext: entry.ctx,
    rejectUnauthorized: verify,
    // What the cluster's codec speaks (ADR 0080): an Envoy or Isle peer must not pick the other.
    // The config's alpn_protocols (Istio's `istio-peer-exchange`, `istio`) are not offered: Isle
    // has no use for them and they would only make a peer choose a protocol we do not speak.
    ALPNProtocols: http2 ? ['h2'] : ['http/1.1'],
    checkServerIdentity: (_host, peer) => {
      if (!verify || sansMatch(matchers, peer.subjectaltname)) return undefined;
      const err = new Error(
        `peer identity ${peer.subjectaltname ?? '(none)'} does not match the expected SANs (${describeMatchers(matchers)})`,
      ) as Error & { code: string };
      err.code = 'ISLE_ERR_SAN_MISMATCH';
      return err;
    },
  };
  if (t.sni) options.servername = t.sni;
  const id = createHash('sha256').update(`${entry.id}\0${t.sni ?? ''}\0${verify}\0${describeMatchers(matchers)}\0${http2 ? 'h2' : 'h1'}`).digest('hex').slice(0, 16);
  return { id, options };
}

const upstreamCache = new WeakMap<UpstreamTlsModel, { secrets: Secrets; http2: boolean; settings: UpstreamTlsSettings }>();

function inlineOnly(t: UpstreamTlsModel, secrets: Secrets): boolean {
  const cert = t.certificates[0] ? resolveCertificate(t.certificates[0], secrets) : undefined;
  const validation = t.validation ? resolveValidation(t.validation, secrets) : undefined;
  return (!cert || (cert.certificateChain.kind === 'inline' && cert.privateKey.kind === 'inline')) && (!validation?.trustedCa || validation.trustedCa.kind === 'inline');
}

/**
 * `upstreamTlsSettings`, memoized per (cluster TLS model, secrets snapshot): the per-request
 * path no longer reads PEMs and hashes them twice. Material read from files is not memoized, so a
 * certificate file rewritten in place is still picked up by the next request.
 */
export function cachedUpstreamTlsSettings(t: UpstreamTlsModel, secrets: Secrets, http2 = false): UpstreamTlsSettings {
  const hit = upstreamCache.get(t);
  if (hit && hit.secrets === secrets && hit.http2 === http2) return hit.settings;
  const settings = upstreamTlsSettings(t, secrets, http2);
  if (inlineOnly(t, secrets)) upstreamCache.set(t, { secrets, http2, settings });
  return settings;
}

export interface DownstreamTlsSettings {
  id: string;
  options: tls.TlsOptions;
  /** Extra SAN checks to run on the client certificate after the handshake. */
  matchSans: readonly SanMatcherModel[];
  /** Whether a verified client certificate is required. */
  requireClientCert: boolean;
}

/**
 * The server's ALPN choice: the first of `ours` (the context's alpn_protocols, in our order of
 * preference) that the client offers. When none is offered back, the client's first protocol is
 * echoed rather than failing the handshake (Node would send a fatal no_application_protocol
 * alert; Envoy just negotiates nothing): the codec is then chosen by the first bytes. Never
 * `isle-mux/1`, which only a chain that serves it may select (an Isle client offers it first,
 * and would otherwise speak frames to an HTTP codec).
 */
export function alpnSelector(ours: readonly string[]): ((a: { protocols: string[] }) => string | undefined) | undefined {
  if (ours.length === 0) return undefined;
  return ({ protocols }) => ours.find((p) => protocols.includes(p)) ?? protocols.find((p) => p !== MUX_ALPN) ?? protocols[0];
}

/**
 * `alpnSelector` for a chain that also speaks `isle-mux/1` (ADR 0138): chosen only when the client
 * offers it (an Isle sidecar); any other client gets exactly the choice it got before. Only for
 * chains that negotiate ALPN at all (Isle's inbound HTTP chains say `h2, http/1.1`): without
 * alpn_protocols a server negotiates nothing, which a callback cannot reproduce for the others.
 */
export function muxAlpnSelector(ours: readonly string[]): (a: { protocols: string[] }) => string | undefined {
  const other = alpnSelector(ours)!;
  return (a) => (a.protocols.includes(MUX_ALPN) ? MUX_ALPN : other(a));
}

/**
 * Server-side options for a filter chain's DownstreamTlsContext. `mux`: the chain's HTTP
 * connection manager can serve `isle-mux/1` from a peer sidecar.
 */
export function downstreamTlsSettings(t: DownstreamTlsModel, secrets: Secrets, mux = false): DownstreamTlsSettings {
  const first = t.certificates[0];
  if (!first) throw new TlsMaterialError('filter chain TLS has no certificate');
  const cert = resolveCertificate(first, secrets);
  const validation = t.validation ? resolveValidation(t.validation, secrets) : undefined;
  const caPem = validation?.trustedCa ? readDataSource(validation.trustedCa) : undefined;
  const entry = secureContext('server', cert, caPem);
  const matchSans = [...t.matchSans, ...(validation?.matchSans ?? [])];
  const verify = caPem !== undefined;
  return {
    id: entry.id,
    options: {
      ...entry.pem,
      minVersion: 'TLSv1.2',
      // Ask for a certificate whenever we can verify one, so PERMISSIVE-style optional mTLS still
      // learns the peer identity; refuse unverified ones only when it is required.
      requestCert: verify || t.requireClientCertificate,
      rejectUnauthorized: t.requireClientCertificate,
      ...(t.alpnProtocols.length ? { ALPNCallback: mux ? muxAlpnSelector(t.alpnProtocols) : alpnSelector(t.alpnProtocols) } : {}),
    },
    matchSans,
    requireClientCert: t.requireClientCertificate,
  };
}

/** The SPIFFE id of a verified peer certificate on a TLS socket, if any. */
export function peerSpiffeId(socket: tls.TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert || !cert.subjectaltname) return undefined;
  try {
    return spiffeIdFromCert({ subjectaltname: cert.subjectaltname });
  } catch {
    return undefined;
  }
}

/** The SPIFFE id of our own certificate (the `By=` of XFCC). */
export function ownSpiffeId(cert: TlsCertificateModel): string | undefined {
  try {
    return spiffeIdFromCert(readDataSource(cert.certificateChain));
  } catch {
    return undefined;
  }
}

const upstreamPeers = new WeakMap<tls.TLSSocket, { id: string | undefined | null }>();

/**
 * The SPIFFE id in the certificate an upstream presented on this connection (unverified parse of
 * its SAN): undefined when it has none, null when the SAN could not be read as one SPIFFE id.
 * Read once per connection: `getPeerCertificate()` builds a whole JS object from the X.509 on
 * every call, which is too slow for every response.
 */
export function upstreamPeerSpiffeId(sock: tls.TLSSocket): string | undefined | null {
  const hit = upstreamPeers.get(sock);
  if (hit) return hit.id;
  let id: string | undefined | null;
  try {
    id = spiffeIdFromCert({ subjectaltname: sock.getPeerCertificate().subjectaltname });
  } catch {
    id = null;
  }
  upstreamPeers.set(sock, { id });
  return id;
}
