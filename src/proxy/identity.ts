/**
 * The proxy's workload identity: a key made here (it never leaves the process), a CSR for
 * `spiffe://<td>/ns/<ns>/sa/<sa>`, and Istio's CreateCertificate on the control plane,
 * authenticated by the bootstrap token the first time and by the current certificate after that.
 * The certificate is renewed at half of its remaining life at issue time (a fresh key each
 * time); listeners and pools pick the new one up for new connections only, so nothing is dropped.
 * If renewal fails it is retried with backoff, falling back to the token once the certificate
 * has expired.
 */
import { EventEmitter } from 'node:events';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { pino } from 'pino';
import { certServiceClientConstructor, requestCertificate } from '../mesh/caclient.js';
import { realTimers, type Timers } from '../mesh/timers.js';
import { IsleError } from '../errors.js';
import { createCsrNative } from '../pki/pkcs10.js';
import { buildSpiffeId, parseSubjectAltName, type WorkloadIdentity } from '../pki/spiffe.js';
import type { SecretModel } from './model.js';
import { exponentialBackoff, type Backoff } from '../mesh/backoff.js';

/** The control plane's own SPIFFE id (servercert.ts). */
export function controlPlaneSpiffeId(trustDomain: string): string {
  return `spiffe://${trustDomain}/ns/istio-system/sa/isle-control-plane`;
}

export interface CertMaterial {
  /** Leaf then intermediates (no root). */
  readonly chainPem: string;
  readonly keyPem: string;
  /** The root bundle the CA returned last in cert_chain. */
  readonly rootPem: string;
  readonly spiffeId: string;
  readonly serial: string;
  readonly notBefore: number;
  readonly notAfter: number;
  /** When it was received (wall clock ms). */
  readonly issuedAt: number;
  /** When it will be renewed. */
  readonly renewAt: number;
}

export interface IdentityOptions {
  address: string;
  identity: WorkloadIdentity;
  /** Trust anchors for the control plane (--ca-bundle). */
  rootPem: string;
  /** Bootstrap token (a JWT); read once, never logged. */
  token?: string;
  /** validity_duration asked for (seconds); the CA may give less. 0 = the CA's default. */
  ttlSeconds?: number;
  channelOptions?: grpc.ChannelOptions;
  timers?: Timers;
  /** Wall clock (ms): certificate times are wall-clock times. */
  now?: () => number;
  backoff?: Backoff;
  logger?: Logger;
  deadlineMs?: number;
}

/**
 * Channel options for the control plane: the TLS server name is its DNS name (an IP literal is
 * not a valid SNI); the certificate is checked by SPIFFE id, not by that name.
 */
export const CONTROL_PLANE_CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc.ssl_target_name_override': 'isle-control-plane', 'grpc.use_local_subchannel_pool': 1 };

/** gRPC channel credentials that check the server is the mesh's control plane (SPIFFE id), not a host name. */
export function controlPlaneCredentials(rootPem: string, trustDomain: string, client?: { keyPem: string; chainPem: string }): grpc.ChannelCredentials {
  const want = controlPlaneSpiffeId(trustDomain);
  return grpc.credentials.createSsl(Buffer.from(rootPem), client ? Buffer.from(client.keyPem) : null, client ? Buffer.from(client.chainPem) : null, {
    checkServerIdentity: (_host, cert) => {
      const uris = parseSubjectAltName(cert.subjectaltname ?? '').filter((s) => s.type === 'URI').map((s) => s.value);
      if (uris.includes(want)) return undefined;
      return new Error(`control plane certificate is ${uris.join(', ') || 'without a SPIFFE id'}, expected ${want}`);
    },
  });
}

function splitPem(pems: string[]): string[] {
  return pems.flatMap((p) => p.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []);
}

export class Identity extends EventEmitter {
  private material: CertMaterial | undefined;
  private secret: SecretModel | undefined;
  private timer: unknown;
  private failures = 0;
  private stopped = false;
  private readonly timers: Timers;
  private readonly now: () => number;
  private readonly backoff: Backoff;
  private readonly log: Logger;
  readonly spiffeId: string;

  constructor(private readonly opts: IdentityOptions) {
    super();
    this.timers = opts.timers ?? realTimers;
    this.now = opts.now ?? Date.now;
    this.backoff = opts.backoff ?? exponentialBackoff({ baseMs: 1000, maxMs: 60_000 });
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.spiffeId = buildSpiffeId(opts.identity);
  }

  get current(): CertMaterial | undefined {
    return this.material;
  }

  /** SDS-shaped `default` secret with the current certificate (same object until rotation). */
  get defaultSecret(): SecretModel | undefined {
    return this.secret;
  }

  /** Credentials for the control plane presenting the current certificate (xDS, renewal). */
  credentials(): grpc.ChannelCredentials {
    const m = this.material;
    return controlPlaneCredentials(this.opts.rootPem, this.opts.identity.trustDomain, m ? { keyPem: m.keyPem, chainPem: m.chainPem } : undefined);
  }

  /** First certificate, with the token. Throws a one-line IsleError when it is refused. */
  async bootstrap(): Promise<CertMaterial> {
    if (this.opts.token === undefined) throw new IsleError('ERR_USAGE', 'no bootstrap token (--token FILE)');
    for (let attempt = 1; ; attempt++) {
      try {
        const m = await this.fetch(true);
        this.install(m);
        return m;
      } catch (e) {
        // The control plane not (yet) reachable: wait for it, as the xDS stream would.
        const code = (e as Partial<grpc.ServiceError>).code;
        const transient = code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED;
        if (!transient || this.stopped) throw new IsleError('ERR_IDENTITY', `cannot get a certificate from ${this.opts.address}: ${describe(e)}`);
        const delay = this.backoff(attempt);
        this.log.warn({ err: describe(e), retryInMs: delay }, 'control plane unreachable; retrying for the first certificate');
        await new Promise<void>((resolve) => this.timers.setTimeout(resolve, delay));
      }
    }
  }

  /** Renews now (tests); resolves with the new certificate. */
  async renew(): Promise<CertMaterial> {
    const m = this.material;
    const expired = !m || m.notAfter <= this.now();
    const m2 = await this.fetch(expired);
    this.install(m2);
    return m2;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async fetch(useToken: boolean): Promise<CertMaterial> {
    const { csrPem, keyPem } = createCsrNative({ identity: this.opts.identity });
    const Ctor = certServiceClientConstructor();
    const creds = useToken ? controlPlaneCredentials(this.opts.rootPem, this.opts.identity.trustDomain) : this.credentials();
    const client = new Ctor(this.opts.address, creds, { ...CONTROL_PLANE_CHANNEL_OPTIONS, ...this.opts.channelOptions });
    try {
      const chain = splitPem(
        await requestCertificate(client, {
          csrPem,
          ...(useToken && this.opts.token !== undefined ? { token: this.opts.token } : {}),
          ...(this.opts.ttlSeconds ? { validitySeconds: this.opts.ttlSeconds } : {}),
          deadlineMs: this.opts.deadlineMs ?? 10_000,
        }),
      );
      if (chain.length < 2) throw new Error(`the CA returned ${chain.length} certificate(s); expected leaf, chain and root`);
      const leaf = new X509Certificate(chain[0]!);
      if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('the CA returned a certificate for another key');
      const uris = parseSubjectAltName(leaf.subjectAltName ?? '').filter((s) => s.type === 'URI').map((s) => s.value);
      if (!uris.includes(this.spiffeId)) throw new Error(`the CA returned ${uris.join(', ') || 'no SPIFFE id'}, asked for ${this.spiffeId}`);
      const issuedAt = this.now();
      const notBefore = Date.parse(leaf.validFrom);
      const notAfter = Date.parse(leaf.validTo);
      // Half of what is left at issue time: certificates are backdated, so notBefore would lie.
      const renewAt = issuedAt + Math.max(1000, (notAfter - Math.max(issuedAt, notBefore)) / 2);
      return {
        chainPem: chain.slice(0, -1).join('\n') + '\n',
        keyPem,
        rootPem: chain[chain.length - 1]! + '\n',
        spiffeId: this.spiffeId,
        serial: leaf.serialNumber,
        notBefore,
        notAfter,
        issuedAt,
        renewAt,
      };
    } finally {
      client.close();
    }
  }

  private install(m: CertMaterial): void {
    const first = this.material === undefined;
    this.material = m;
    const secret: SecretModel = {
      kind: 'tls-certificate',
      name: 'default',
      certificate: { certificateChain: { kind: 'inline', data: m.chainPem }, privateKey: { kind: 'inline', data: m.keyPem } },
    };
    this.secret = Object.freeze(secret);
    this.failures = 0;
    this.log.info({ spiffeId: m.spiffeId, serial: m.serial, notAfter: new Date(m.notAfter).toISOString(), renewAt: new Date(m.renewAt).toISOString() }, first ? 'workload certificate issued' : 'workload certificate rotated');
    this.schedule(m.renewAt - this.now());
    if (!first) this.emit('rotated', m);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      void this.renew().catch((e: unknown) => {
        this.failures++;
        const delay = this.backoff(this.failures);
        this.log.warn({ err: describe(e), retryInMs: delay }, 'certificate renewal failed; the current certificate stays in use');
        this.emit('renew-error', e);
        this.schedule(delay);
      });
    }, Math.max(0, ms));
  }
}

function describe(e: unknown): string {
  const g = e as Partial<grpc.ServiceError>;
  if (typeof g.code === 'number' && g.details !== undefined) return `${grpc.status[g.code] ?? g.code}: ${g.details}`;
  return e instanceof Error ? e.message : String(e);
}
