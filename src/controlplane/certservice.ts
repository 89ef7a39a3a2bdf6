/**
 * The certificate service (Istio's `istio.v1.auth.IstioCertificateService` on the wire): a
 * workload sends a CSR plus a credential and gets back its signed chain. The credential decides
 * the identity; the CSR only contributes its public key and must ask for exactly that identity's
 * SPIFFE id (a CSR without SANs, or with any other, is refused with the reason).
 *
 * Bounded credentials (issue #11, ADR 0041):
 * - a bootstrap token mints one certificate (or `uses`, from `isle token create --reusable N`):
 *   its `jti` is remembered in the state store (`tokens/<jti>`) until the token expires, so a
 *   restart of the control plane does not reopen it;
 * - renewal with a certificate is allowed only for certificates this service issued (their serial
 *   maps to the time of the bootstrap token, `certs/<serial>`), only while the identity still has
 *   a WorkloadGroup or WorkloadEntry, and never past the maximum identity lifetime counted from
 *   the bootstrap token; certificates are cut short to end by then.
 */
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { IsleError, isIsleError } from '../errors.js';
import {
  buildSpiffeId,
  DEFAULT_WORKLOAD_TTL_SECONDS,
  parseSpiffeId,
  signWorkloadCsr,
  spiffeIdFromCert,
  type IssuingCa,
  type WorkloadIdentity,
} from '../pki/index.js';
import { certServiceDefinition, type CertificateRequestMsg, type CertificateResponseMsg } from '../mesh/caclient.js';
import { isTokenError, TOKEN_CLOCK_SKEW_SECONDS, verifyToken, type TokenFailure } from '../mesh/token.js';
import { MemoryStateStore, type StateStore } from '../mesh/state.js';
import { parseCsr } from '../pki/csr.js';

/** Default maximum identity lifetime: 90 days since the bootstrap token. */
export const DEFAULT_MAX_IDENTITY_LIFETIME_MS = 90 * 24 * 3600 * 1000;

/** A P-256 CSR is ~500 bytes and an RSA-4096 one ~1.7 KB; anything near this is not a CSR. */
const MAX_CSR_BYTES = 64 * 1024;

/** A refusal with the gRPC status it maps to; `details` is safe to send to the caller. */
export class CertServiceError extends Error {
  readonly code: grpc.status;
  readonly reason: string;

  constructor(code: grpc.status, reason: string, message: string) {
    super(message);
    this.name = 'CertServiceError';
    this.code = code;
    this.reason = reason;
  }
}

export interface Credential {
  /** The value after `Bearer ` of the `authorization` metadata. */
  token?: string | undefined;
  /** A TLS client certificate the transport already verified against the mesh roots. */
  peerCertificate?: PeerCertificate | undefined;
}

export interface IssuedEvent {
  spiffeId: string;
  serialNumber: string;
  notAfter: Date;
  via: 'token' | 'certificate';
  /** The token's id, for audit (never the token). */
  jti?: string | undefined;
  peer?: string | undefined;
}

export interface RefusedEvent {
  code: grpc.status;
  reason: string;
  message: string;
  peer?: string | undefined;
}

export interface CertServiceOptions {
  /** This cluster's intermediate (loadCaDir). */
  ca: IssuingCa;
  cluster: string;
  trustDomain: string;
  /** Upper bound on the lifetime of an issued certificate, whatever is asked; default 24 h. */
  maxTtlSeconds?: number;
  now?: () => Date;
  /** Where used token ids and certificate lineage are kept (default: in memory). */
  state?: StateStore;
  /** Whether the identity still has a registration source (renewal needs it). Default: always. */
  identityAllowed?: (namespace: string, serviceAccount: string) => boolean;
  /** Read at every request (MeshConfig maxIdentityLifetime). Default 90 days. */
  maxIdentityLifetimeMs?: () => number;
  onIssued?: (e: IssuedEvent) => void;
  onRefused?: (e: RefusedEvent) => void;
}

export interface IssueResult {
  certChain: string[];
  spiffeId: string;
  serialNumber: string;
  notAfter: Date;
}

export interface CertService {
  /** Transport-free core: what the gRPC handler runs. Throws CertServiceError. */
  issue(request: CertificateRequestMsg, credential: Credential, peer?: string): Promise<IssueResult>;
  handlers: { CreateCertificate: grpc.handleUnaryCall<CertificateRequestMsg, CertificateResponseMsg> };
}

const TOKEN_STATUS: Record<TokenFailure, grpc.status> = {
  malformed: grpc.status.UNAUTHENTICATED,
  'unsupported-alg': grpc.status.UNAUTHENTICATED,
  'bad-signature': grpc.status.UNAUTHENTICATED,
  expired: grpc.status.UNAUTHENTICATED,
  'not-yet-valid': grpc.status.UNAUTHENTICATED,
  'wrong-audience': grpc.status.UNAUTHENTICATED,
  'wrong-issuer': grpc.status.UNAUTHENTICATED,
  // Authentic, but not something this control plane may grant.
  'wrong-cluster': grpc.status.PERMISSION_DENIED,
  'wrong-trust-domain': grpc.status.PERMISSION_DENIED,
};

/** Serial numbers as hex, lower case, no separators or leading zeros (node and @peculiar/x509 differ). */
function serialKey(serial: string): string {
  return serial.replace(/[^0-9a-fA-F]/g, '').toLowerCase().replace(/^0+(?=.)/, '');
}

interface Lineage {
  /** ms since the epoch: the bootstrap token's iat. */
  bootstrapAt: number;
  spiffeId: string;
}

function splitPem(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)].map((m) => (m[0].endsWith('\n') ? m[0] : `${m[0]}\n`));
}

/** `Bearer <token>` from call metadata; undefined when absent. Several values are refused. */
export function bearerToken(metadata: grpc.Metadata): string | undefined {
  const values = metadata.get('authorization');
  if (values.length === 0) return undefined;
  if (values.length > 1) throw new CertServiceError(grpc.status.UNAUTHENTICATED, 'malformed-credential', 'several authorization values; send exactly one "Bearer <token>"');
  const m = /^Bearer +(\S+)\s*$/i.exec(String(values[0]));
  if (!m) throw new CertServiceError(grpc.status.UNAUTHENTICATED, 'malformed-credential', 'authorization metadata must be "Bearer <token>"');
  return m[1];
}

/**
 * The verified client certificate of the call. grpc-js (≥ 1.10) fills `sslPeerCertificate` only
 * when the TLS socket is `authorized`, i.e. the chain verified against the server credential's
 * CA bundle; an unverifiable certificate is therefore simply absent.
 */
export function peerCertificateOf(call: { getAuthContext?: () => { sslPeerCertificate?: PeerCertificate } | null }): PeerCertificate | undefined {
  return call.getAuthContext?.()?.sslPeerCertificate ?? undefined;
}

export function createCertService(opts: CertServiceOptions): CertService {
  if (opts.trustDomain !== opts.ca.trustDomain) {
    throw new IsleError('ERR_CONFIG_INVALID', `trust domain ${opts.trustDomain} differs from the CA's (${opts.ca.trustDomain})`);
  }
  if (opts.ca.cluster !== undefined && opts.ca.cluster !== opts.cluster) {
    throw new IsleError('ERR_CONFIG_INVALID', `cluster ${opts.cluster} is served with cluster ${opts.ca.cluster}'s intermediate`);
  }
  const maxTtl = opts.maxTtlSeconds ?? DEFAULT_WORKLOAD_TTL_SECONDS;
  if (!Number.isSafeInteger(maxTtl) || maxTtl <= 0) throw new RangeError(`maxTtlSeconds must be a positive integer (got ${maxTtl})`);
  const now = opts.now ?? (() => new Date());
  const state = opts.state ?? new MemoryStateStore(() => now().getTime());
  const maxLifetime = opts.maxIdentityLifetimeMs ?? (() => DEFAULT_MAX_IDENTITY_LIFETIME_MS);

  /** Takes one use of the token; false when every use is gone. */
  async function claimToken(jti: string, uses: number, exp: Date): Promise<boolean> {
    const expiresAt = exp.getTime() + TOKEN_CLOCK_SKEW_SECONDS * 1000;
    for (let i = 1; i <= uses; i++) {
      if (await state.putIfAbsent(i === 1 ? `tokens/${jti}` : `tokens/${jti}/${i}`, String(now().getTime()), { expiresAt })) return true;
    }
    return false;
  }

  function identityOfCertificate(cert: PeerCertificate, at: Date): WorkloadIdentity {
    const refuse = (why: string) => new CertServiceError(grpc.status.UNAUTHENTICATED, 'bad-client-certificate', `client certificate refused: ${why}`);
    if (cert.ca) throw refuse('it is a CA certificate');
    const from = Date.parse(cert.valid_from);
    const to = Date.parse(cert.valid_to);
    // The handshake checked validity with the wall clock; this repeats it with the service's clock.
    if (!(at.getTime() >= from && at.getTime() <= to)) throw refuse(`not valid at ${at.toISOString()} (valid ${cert.valid_from} to ${cert.valid_to})`);
    let id: string | undefined;
    try {
      id = spiffeIdFromCert(cert);
    } catch (e) {
      throw refuse(e instanceof Error ? e.message : String(e));
    }
    if (!id) throw refuse('it has no SPIFFE ID');
    let identity: WorkloadIdentity;
    try {
      identity = parseSpiffeId(id);
    } catch {
      throw refuse(`${id} is not a workload identity`);
    }
    if (identity.trustDomain !== opts.ca.trustDomain) {
      throw new CertServiceError(grpc.status.PERMISSION_DENIED, 'wrong-trust-domain', `client certificate is in trust domain ${identity.trustDomain}, this CA signs for ${opts.ca.trustDomain}`);
    }
    return identity;
  }

  async function issue(request: CertificateRequestMsg, credential: Credential, peer?: string): Promise<IssueResult> {
    const at = now();
    let identity: WorkloadIdentity;
    let via: IssuedEvent['via'];
    let jti: string | undefined;
    let token: { jti: string; uses: number; exp: Date } | undefined;
    let bootstrapAt: number;
    // An explicit token wins over the connection's certificate, and a bad token is not rescued
    // by a good certificate: the caller asked to be judged by the token.
    if (credential.token !== undefined) {
      try {
        const t = verifyToken(credential.token, { ca: opts.ca, cluster: opts.cluster, now: at });
        identity = t.identity;
        jti = t.jti;
        token = { jti: t.jti, uses: t.uses, exp: t.exp };
        bootstrapAt = t.iat.getTime();
      } catch (e) {
        if (isTokenError(e)) throw new CertServiceError(TOKEN_STATUS[e.reason], e.reason, e.message);
        throw e;
      }
      via = 'token';
    } else if (credential.peerCertificate) {
      identity = identityOfCertificate(credential.peerCertificate, at);
      via = 'certificate';
      const id = buildSpiffeId(identity);
      if (opts.identityAllowed && !opts.identityAllowed(identity.namespace, identity.serviceAccount)) {
        throw new CertServiceError(
          grpc.status.PERMISSION_DENIED,
          'identity-revoked',
          `renewal refused: ${id} has no WorkloadGroup or WorkloadEntry in namespace ${identity.namespace} any more (revoked); a new bootstrap token is needed once it is allowed again`,
        );
      }
      const raw = await state.get(`certs/${serialKey(credential.peerCertificate.serialNumber)}`);
      const lineage = raw === undefined ? undefined : (JSON.parse(raw) as Lineage);
      if (!lineage || lineage.spiffeId !== id) {
        throw new CertServiceError(grpc.status.PERMISSION_DENIED, 'unknown-lineage', `renewal refused: certificate ${credential.peerCertificate.serialNumber} of ${id} was not issued by this certificate service (or its record is gone); bootstrap again with a new token`);
      }
      bootstrapAt = lineage.bootstrapAt;
    } else {
      throw new CertServiceError(
        grpc.status.UNAUTHENTICATED,
        'no-credential',
        'no credential: send "authorization: Bearer <token>" metadata, or connect with a valid workload certificate to renew it',
      );
    }
    const spiffeId = buildSpiffeId(identity);

    const csr = typeof request.csr === 'string' ? request.csr : '';
    if (csr.trim() === '') throw new CertServiceError(grpc.status.INVALID_ARGUMENT, 'bad-csr', 'csr is empty');
    if (csr.length > MAX_CSR_BYTES) throw new CertServiceError(grpc.status.INVALID_ARGUMENT, 'bad-csr', `csr is larger than ${MAX_CSR_BYTES} bytes`);
    const requested = Number(request.validity_duration ?? 0);
    if (!Number.isFinite(requested) || requested < 0) {
      throw new CertServiceError(grpc.status.INVALID_ARGUMENT, 'bad-validity', `validity_duration must be a non-negative number of seconds (got ${request.validity_duration})`);
    }
    // The token's own expiry does not bound the certificate: the token only has to be valid at
    // the moment it is used, and certificate lifetime is CA policy (as in Istio).
    const identityEnd = bootstrapAt + maxLifetime();
    const left = Math.floor((identityEnd - at.getTime()) / 1000);
    if (left <= 0) {
      throw new CertServiceError(
        grpc.status.PERMISSION_DENIED,
        'identity-expired',
        `renewal refused: ${spiffeId} was bootstrapped on ${new Date(bootstrapAt).toISOString()} and its maximum identity lifetime ended on ${new Date(identityEnd).toISOString()}; a new bootstrap token is required`,
      );
    }
    const ttl = Math.min(requested > 0 ? Math.ceil(requested) : DEFAULT_WORKLOAD_TTL_SECONDS, maxTtl, left);

    // The CSR must name exactly the identity the credential grants; without SANs it is refused too,
    // so that a CSR made for one identity can never be turned into another's certificate.
    let requestedSans: string[] | undefined;
    try {
      requestedSans = (await parseCsr(csr)).requestedSans;
    } catch (e) {
      if (isIsleError(e)) throw new CertServiceError(grpc.status.INVALID_ARGUMENT, 'bad-csr', e.message);
      throw e;
    }
    if (!requestedSans || requestedSans.length !== 1 || requestedSans[0] !== `URI:${spiffeId}`) {
      throw new CertServiceError(
        grpc.status.PERMISSION_DENIED,
        'identity-mismatch',
        `CSR must request exactly URI:${spiffeId} (what the ${via === 'token' ? 'token' : 'client certificate'} grants); it requests ${requestedSans?.length ? requestedSans.join(', ') : 'no SAN'}`,
      );
    }
    // Only now is a token use spent: a malformed request must not burn it.
    if (token && !(await claimToken(token.jti, token.uses, token.exp))) {
      throw new CertServiceError(
        grpc.status.UNAUTHENTICATED,
        'token-reused',
        `token ${token.jti} was already used${token.uses > 1 ? ` ${token.uses} times (its limit)` : ' (tokens are single-use; mint another with isle token create, or --reusable N)'}`,
      );
    }

    let signed;
    try {
      signed = await signWorkloadCsr({ ca: opts.ca, csrPem: csr, identity, ttlSeconds: ttl, now: at });
    } catch (e) {
      if (!isIsleError(e)) throw e;
      switch (e.code) {
        case 'ERR_CSR_INVALID':
        case 'ERR_PEM_INVALID':
          throw new CertServiceError(grpc.status.INVALID_ARGUMENT, 'bad-csr', e.message);
        case 'ERR_IDENTITY':
          throw new CertServiceError(grpc.status.PERMISSION_DENIED, 'identity-mismatch', `${via === 'token' ? 'token' : 'client certificate'} grants ${spiffeId}: ${e.message}`);
        case 'ERR_CERT_EXPIRED':
          throw new CertServiceError(grpc.status.FAILED_PRECONDITION, 'ca-expired', e.message);
        default:
          throw e;
      }
    }
    await state.put(`certs/${serialKey(signed.serialNumber)}`, JSON.stringify({ bootstrapAt, spiffeId } satisfies Lineage), {
      expiresAt: signed.notAfter.getTime() + TOKEN_CLOCK_SKEW_SECONDS * 1000,
    });
    const certChain = [...splitPem(signed.chainPem), opts.ca.rootBundlePem.endsWith('\n') ? opts.ca.rootBundlePem : `${opts.ca.rootBundlePem}\n`];
    opts.onIssued?.({ spiffeId, serialNumber: signed.serialNumber, notAfter: signed.notAfter, via, jti, peer });
    return { certChain, spiffeId, serialNumber: signed.serialNumber, notAfter: signed.notAfter };
  }

  const CreateCertificate: grpc.handleUnaryCall<CertificateRequestMsg, CertificateResponseMsg> = (call, callback) => {
    const peer = call.getPeer();
    void (async () => {
      try {
        const token = bearerToken(call.metadata);
        const result = await issue(call.request, { token, peerCertificate: token === undefined ? peerCertificateOf(call) : undefined }, peer);
        callback(null, { cert_chain: result.certChain });
      } catch (e) {
        if (e instanceof CertServiceError) {
          opts.onRefused?.({ code: e.code, reason: e.reason, message: e.message, peer });
          callback({ code: e.code, details: e.message });
          return;
        }
        // Not the caller's fault: do not echo internals to the network.
        opts.onRefused?.({ code: grpc.status.INTERNAL, reason: 'internal', message: e instanceof Error ? e.message : String(e), peer });
        callback({ code: grpc.status.INTERNAL, details: 'internal error while signing' });
      }
    })();
  };

  return { issue, handlers: { CreateCertificate } };
}

/** Registers the service; the caller owns the server (credentials, bind, shutdown). */
export function addCertService(server: grpc.Server, svc: CertService): void {
  server.addService(certServiceDefinition(), svc.handlers as unknown as grpc.UntypedServiceImplementation);
}
