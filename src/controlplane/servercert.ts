/**
 * The control plane's own serving certificate for :15012 (xDS + CA over TLS) and the gRPC
 * server credentials that use it. The key is generated in memory and never written: a restart
 * simply issues a new one from the cluster's intermediate.
 */
// The PKI index first: it installs the Reflect shim and crypto provider @peculiar/x509 needs.
import { caSigner, generateKey, joinPem, buildSpiffeId, type IssuingCa, type KeyType } from '../pki/index.js';
import * as x509 from '@peculiar/x509';
import { isIP } from 'node:net';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { IsleError } from '../errors.js';

import { CONTROL_PLANE_NAME, CONTROL_PLANE_NAMESPACE } from '../mesh/names.js';

export { CONTROL_PLANE_NAME, CONTROL_PLANE_NAMESPACE };
export const DEFAULT_SERVER_CERT_TTL_SECONDS = 7 * 24 * 60 * 60;
/** Same backdating as workload certificates (CLOCK_SKEW_MS in src/pki). */
const BACKDATE_MS = 5 * 60 * 1000;

export interface IssueServerCertOptions {
  ca: IssuingCa;
  cluster: string;
  /** Where :15012 listens; an IP becomes an IP SAN (wildcards 0.0.0.0 / :: do not). */
  listenAddresses?: string[];
  extraDnsNames?: string[];
  ttlSeconds?: number;
  keyType?: KeyType;
  now?: Date;
}

export interface ServerCert {
  /** PKCS#8 PEM, in memory only. */
  keyPem: string;
  certPem: string;
  /** Leaf followed by the intermediate(s), no root: what the server presents. */
  chainPem: string;
  rootBundlePem: string;
  spiffeId: string;
  dnsNames: string[];
  ipAddresses: string[];
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
}

export function serverDnsNames(cluster: string, extra: string[] = []): string[] {
  return [...new Set([CONTROL_PLANE_NAME, `${CONTROL_PLANE_NAME}.${cluster}`, 'localhost', ...extra])];
}

function serverIps(listen: string[]): string[] {
  const ips = ['127.0.0.1'];
  for (const a of listen) {
    const host = a.replace(/^\[(.*)\]$/, '$1');
    if (isIP(host) && host !== '0.0.0.0' && host !== '::') ips.push(host);
  }
  return [...new Set(ips)];
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

/**
 * signWorkloadCsr puts exactly one URI SAN in a leaf, which is right for workloads; the control
 * plane also needs DNS and IP SANs so plain TLS clients (and Envoy's `sni`/SAN matchers) can
 * verify it by name. So this issues directly, with the same signer and the same profile.
 */
export async function issueServerCert(opts: IssueServerCertOptions): Promise<ServerCert> {
  const ttl = opts.ttlSeconds ?? DEFAULT_SERVER_CERT_TTL_SECONDS;
  if (!Number.isSafeInteger(ttl) || ttl <= 0) throw new IsleError('ERR_USAGE', `server certificate TTL must be a positive number of seconds (got ${ttl})`);
  const signer = await caSigner(opts.ca);
  const now = Math.floor((opts.now ?? new Date()).getTime() / 1000) * 1000;
  const caFrom = signer.cert.px.notBefore.getTime();
  const caTo = signer.cert.px.notAfter.getTime();
  if (now > caTo) throw new IsleError('ERR_CERT_EXPIRED', `CA certificate expired on ${signer.cert.px.notAfter.toISOString()}`);
  const spiffeId = buildSpiffeId({ trustDomain: signer.trustDomain, namespace: CONTROL_PLANE_NAMESPACE, serviceAccount: CONTROL_PLANE_NAME });
  const dnsNames = serverDnsNames(opts.cluster, opts.extraDnsNames);
  const ipAddresses = serverIps(opts.listenAddresses ?? []);
  const generated = await generateKey(opts.keyType ?? 'ec-p256');
  const publicKey = await x509.PublicKey.create(generated.keys.publicKey);
  const issuerSki = signer.cert.px.getExtension(x509.SubjectKeyIdentifierExtension);
  const rsa = (generated.keys.publicKey.algorithm as { name: string }).name !== 'ECDSA';
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: new x509.Name([{ O: [signer.trustDomain] }, { CN: [CONTROL_PLANE_NAME] }]),
    issuer: signer.cert.px.subjectName,
    notBefore: new Date(Math.max(now - BACKDATE_MS, caFrom)),
    notAfter: new Date(Math.min(now + ttl * 1000, caTo)),
    publicKey,
    signingKey: signer.signingKey.key,
    signingAlgorithm: signer.signingKey.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | (rsa ? x509.KeyUsageFlags.keyEncipherment : 0), true),
      // clientAuth too: the same identity dials peer control planes for the peering feed.
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension(
        [
          { type: 'url', value: spiffeId },
          ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
          ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
        ],
        false,
      ),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      issuerSki ? new x509.AuthorityKeyIdentifierExtension(issuerSki.keyId) : await x509.AuthorityKeyIdentifierExtension.create(signer.cert.px.publicKey),
    ],
  });
  const certPem = cert.toString('pem') + '\n';
  return {
    keyPem: generated.keyPem,
    certPem,
    chainPem: joinPem(certPem, ...signer.intermediates.map((c) => c.pem)),
    rootBundlePem: opts.ca.rootBundlePem,
    spiffeId,
    dnsNames,
    ipAddresses,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    serialNumber: cert.serialNumber,
  };
}

export interface GrpcServerCredentialsOptions {
  serverCert: Pick<ServerCert, 'keyPem' | 'chainPem'>;
  /** Roots a client certificate must chain to (root-cert.pem; several during a root rotation). */
  rootBundle: string;
  /**
   * False on :15012: a proxy with no certificate yet must reach the CA with only its token. A
   * client certificate, when presented, is still verified, and only a verified one reaches
   * handlers (grpc-js exposes it via call.getAuthContext() only when the socket is authorized).
   */
  requireClientCert?: boolean;
}

/**
 * grpc-js' `ServerCredentials.createSsl(…, checkClientCertificate)` ties "ask for a client
 * certificate" to "require one", and the CA needs the first without the second; the public
 * abstract class takes Node's TLS options directly. `update()` swaps the certificate on the live
 * listener (grpc-js calls setSecureContext), so a renewed server certificate needs no restart.
 */
export class IsleServerCredentials extends grpc.ServerCredentials {
  constructor(opts: GrpcServerCredentialsOptions) {
    super({ requestCert: true, rejectUnauthorized: opts.requireClientCert ?? false }, IsleServerCredentials.context(opts));
  }

  private static context(opts: GrpcServerCredentialsOptions) {
    return { ca: opts.rootBundle, cert: opts.serverCert.chainPem, key: opts.serverCert.keyPem };
  }

  update(serverCert: GrpcServerCredentialsOptions['serverCert'], rootBundle: string): void {
    this.updateSecureContextOptions(IsleServerCredentials.context({ serverCert, rootBundle }));
  }

  override _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

export function grpcServerCredentials(opts: GrpcServerCredentialsOptions): IsleServerCredentials {
  return new IsleServerCredentials(opts);
}

/** True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * The plaintext port (:15010) carries xDS without any authentication, so it is only ever bound
 * to loopback, and only when asked for.
 */
export function assertPlaintextAddress(host: string): string {
  if (!isLoopback(host)) {
    throw new IsleError('ERR_USAGE', `plaintext xDS (:15010) may only listen on loopback, not ${host}; use the mTLS port :15012`);
  }
  return host;
}
