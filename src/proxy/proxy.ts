/**
 * `isle proxy` as a library: identity (CSR → certificate, rotation) → ADS client → runtime
 * (listeners, clusters), plus the admin (:15000) and health (:15021) servers. `IsleProxy.start`
 * binds admin and health first (so a port in use fails fast), gets the certificate, then opens
 * the xDS stream; `ready` resolves when the first resolved graph is applied. `stop()` is the
 * graceful shutdown: stop accepting, drain in-flight requests (bounded), close everything.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { pino } from 'pino';
import { formatHostPort, parseHostPort } from '../config/hostport.js';
import { formatProxyId, type ProxyType } from '../mesh/proxyid.js';
import type { Timers } from '../mesh/timers.js';
import { IsleError } from '../errors.js';
import { decodeToken } from '../mesh/token.js';
import { X509Certificate } from 'node:crypto';
import { decodePem } from '../pki/pem.js';
import { parseSpiffeId, parseSubjectAltName, parseTrustDomainId } from '../pki/spiffe.js';
import { shortTypeName, type NodeMsg } from '../xds/index.js';
import { startAdmin, startHealth, type RunningServer } from './admin.js';
import { ADMIN_ADDRESS_METADATA } from '../mesh/names.js';
import { buildConfigDump, REDACTED } from './configdump.js';
import { SECRET_DEFAULT } from '../mesh/names.js';
import { Identity, type CertMaterial } from './identity.js';
import type { ConfigGraph } from './model.js';
import { ProxyRuntime, type ApplyReport, type ListenerRole } from './runtime.js';
import { ProxyStats } from './stats.js';
import type { Backoff } from '../mesh/backoff.js';
import { XdsClient, type XdsProtocol } from './xds/client.js';
import { XDS_TYPES } from './xds/state.js';
import { DnsServer, type DnsStats } from './dns/server.js';
import { Counter } from 'prom-client';
import type { Upstream } from './dns/upstream.js';
import { proxyBindHost } from '../mesh/bindprobe.js';

export interface ProxyLocality {
  region: string;
  zone: string;
  subzone: string;
}

export interface ProxyOptions {
  mode: ProxyType;
  /** host:port of the control plane's mTLS port (ADS + certificate service). */
  controlPlane: string;
  /** The bootstrap token (JWT text). */
  token: string;
  /** Root bundle PEM to trust the control plane with. */
  rootPem: string;
  ip: string;
  namespace: string;
  serviceAccount: string;
  /** Trust domain of the identity; default from the root certificate, else cluster.local. */
  trustDomain?: string;
  workload?: string;
  labels?: Record<string, string>;
  /** The WorkloadGroup to auto-register with (AUTO_REGISTER_GROUP); absent: the only group of this identity. */
  workloadGroup?: string;
  /** targetPort → port the app listens on at 127.0.0.1. */
  appPorts?: Record<number, number>;
  network?: string;
  cluster?: string;
  locality?: ProxyLocality;
  xds?: XdsProtocol;
  /** host:port; default 127.0.0.1:15000. Port 0 = any free port. */
  admin?: string;
  /** host:port; default 127.0.0.1:15021. */
  health?: string;
  outboundPort?: number;
  gatewayPort?: number;
  /** Transparent capture is installed: serve redirected connections (docs/capture.md). */
  capture?: { inboundPort: number; sniffTimeoutMs?: number };
  /** Certificate lifetime to ask for (seconds); default: the CA's. */
  certTtlSeconds?: number;
  drainTimeoutMs?: number;
  initialFetchTimeoutMs?: number;
  backoff?: Backoff;
  logger?: Logger;
  timers?: Timers;
  now?: () => number;
  /** The DNS proxy (ADR 0075); absent: none. Sidecars only. */
  dns?: ProxyDnsOptions;
  /** Each bound listener (the CLI prints one line per call). */
  onListener?: (name: string, role: ListenerRole, address: string) => void;
}

export interface ProxyDnsOptions {
  /** 0: any free port. */
  port: number;
  /** Default: the proxy's bind address (its own 127.x in universal mode, else the wildcard). */
  host?: string;
  /** Resolvers for names the mesh does not own (the CLI reads /etc/resolv.conf). */
  upstreams: readonly Upstream[];
  upstreamTimeoutMs?: number;
  /** Fail the start when the port cannot be bound (asked for explicitly); else warn and run without. */
  required?: boolean;
}

function listenAddress(v: string, flag: string): { host: string; port: number } {
  const hp = parseHostPort(v, { allowZero: true });
  if (!hp) throw new IsleError('ERR_USAGE', `${flag}: invalid address ${JSON.stringify(v)} (use host:port)`);
  return { host: hp.host, port: hp.port };
}

/** The token's subject names the identity (read unverified: only to know what to ask for), else the root's trust domain. */
export function trustDomainFor(token: string, rootPem: string): string {
  try {
    const sub = decodeToken(token).payload['sub'];
    if (typeof sub === 'string') return parseSpiffeId(sub).trustDomain;
  } catch {
    // fall through
  }
  try {
    // node:crypto's X509Certificate is enough here (pki's trustDomainOf would load @peculiar/x509).
    for (const b of decodePem(rootPem, 'CA bundle')) {
      if (b.label !== 'CERTIFICATE') continue;
      const c = new X509Certificate(b.der);
      for (const san of parseSubjectAltName(c.subjectAltName ?? '')) {
        const td = san.type === 'URI' ? parseTrustDomainId(san.value) : undefined;
        if (td) return td;
      }
      const o = /^O=(.*)$/m.exec(c.subject)?.[1];
      // Foreign CAs (e.g. Istio's samples, O=Istio) use O for something else: only a valid trust domain counts.
      if (o !== undefined && /^[a-z0-9._-]+$/.test(o)) return o;
    }
  } catch {
    // fall through
  }
  return 'cluster.local';
}

function fmt(a: AddressInfo): string {
  return formatHostPort(a.address, a.port);
}

export class IsleProxy {
  readonly stats = new ProxyStats();
  readonly logger: Logger;
  identity!: Identity;
  runtime!: ProxyRuntime;
  xds!: XdsClient;
  admin: RunningServer | undefined;
  healthServer: RunningServer | undefined;
  /** The DNS proxy, when it runs. */
  dns: DnsServer | undefined;
  readonly node: NodeMsg;
  private readyFlag = false;
  private readyResolve!: () => void;
  private readyReject!: (e: Error) => void;
  /** Resolves when the first resolved config is applied; rejects if a listener of it cannot bind. */
  readonly ready: Promise<void>;
  private lastApply: { at: number; report: ApplyReport; warnings: readonly string[] } | undefined;
  private stopping: Promise<void> | undefined;
  /** The logger and its children: /logging sets the level on every one (pino children keep their own). */
  private readonly loggers: Logger[] = [];
  private readonly startedAt = Date.now();

  private constructor(private readonly opts: ProxyOptions) {
    this.logger = opts.logger ?? pino({ level: 'silent' });
    this.loggers.push(this.logger);
    this.ready = new Promise((resolve, reject) => {
      this.readyResolve = resolve;
      this.readyReject = reject;
    });
    this.ready.catch(() => {});
    this.node = IsleProxy.buildNode(opts);
  }

  static buildNode(o: ProxyOptions): NodeMsg {
    const workload = o.workload ?? o.labels?.['app'] ?? o.serviceAccount;
    const metadata: Record<string, unknown> = {
      NAMESPACE: o.namespace,
      SERVICE_ACCOUNT: o.serviceAccount,
      WORKLOAD_NAME: workload,
      INSTANCE_IPS: o.ip,
      LABELS: { ...(o.labels ?? {}) },
      ISLE_VERSION: '0.1.0',
    };
    if (o.workloadGroup) metadata['AUTO_REGISTER_GROUP'] = o.workloadGroup;
    // Captured apps need virtualOutbound's per-service chains; an explicit proxy is served without them.
    if (o.capture) metadata['INTERCEPTION_MODE'] = 'REDIRECT';
    if (o.network) metadata['NETWORK'] = o.network;
    if (o.cluster) metadata['CLUSTER_ID'] = o.cluster;
    if (o.appPorts && Object.keys(o.appPorts).length) metadata['APP_PORTS'] = Object.fromEntries(Object.entries(o.appPorts).map(([k, v]) => [k, String(v)]));
    const node: NodeMsg = {
      id: formatProxyId(o.mode, o.ip, workload, o.namespace),
      cluster: o.cluster ?? '',
      metadata,
      user_agent_name: 'isle-proxy',
      user_agent_version: '0.1.0',
    };
    if (o.locality) node.locality = { region: o.locality.region, zone: o.locality.zone, sub_zone: o.locality.subzone };
    return node;
  }

  get isReady(): boolean {
    return this.readyFlag;
  }

  /** Starts everything but does not wait for config (await `proxy.ready` for that). */
  static async start(opts: ProxyOptions): Promise<IsleProxy> {
    const p = new IsleProxy(opts);
    try {
      await p.init();
      return p;
    } catch (e) {
      await p.stop().catch(() => {});
      throw e;
    }
  }

  private async init(): Promise<void> {
    const o = this.opts;
    const adminAddr = listenAddress(o.admin ?? '127.0.0.1:15000', '--admin');
    const healthAddr = listenAddress(o.health ?? '127.0.0.1:15021', '--health');
    const bind = async (what: string, addr: { host: string; port: number }, f: () => Promise<RunningServer>): Promise<RunningServer> => {
      try {
        return await f();
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        throw new IsleError('ERR_USAGE', `cannot listen on ${addr.host}:${addr.port} (${what}): ${err.code === 'EADDRINUSE' ? 'address already in use' : err.message}`);
      }
    };
    this.admin = await bind('--admin', adminAddr, () =>
      startAdmin({
        host: adminAddr.host,
        port: adminAddr.port,
        stats: this.stats,
        ready: () => this.readyFlag,
        clusters: () => this.runtime?.clustersText() ?? '',
        configDump: () => this.configDump(),
        listeners: () => this.runtime?.listenerInfo() ?? [],
        serverInfo: () => this.serverInfo(),
        logging: {
          levels: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
          level: () => this.logger.level,
          setLevel: (level) => {
            for (const l of this.loggers) l.level = level;
            this.logger.warn({ level }, 'log level changed (admin /logging)');
          },
        },
        drainListeners: () => {
          this.readyFlag = false;
          this.xds?.stop();
          return this.runtime.drain();
        },
      }),
    );
    o.onListener?.('admin', 'inbound', `http://${fmt(this.admin.address)}`);
    // Where the control plane's mesh page reads this proxy's request metrics (ADR 0095).
    (this.node.metadata ??= {})[ADMIN_ADDRESS_METADATA] = fmt(this.admin.address);
    this.healthServer = await bind('--health', healthAddr, () => startHealth({ host: healthAddr.host, port: healthAddr.port, ready: () => this.readyFlag }));
    o.onListener?.('health', 'inbound', `http://${fmt(this.healthServer.address)}`);

    if (o.dns && o.mode === 'sidecar') await this.startDns(o.dns);

    this.identity = new Identity({
      address: o.controlPlane,
      identity: { trustDomain: o.trustDomain ?? trustDomainFor(o.token, o.rootPem), namespace: o.namespace, serviceAccount: o.serviceAccount },
      rootPem: o.rootPem,
      token: o.token,
      ...(o.certTtlSeconds !== undefined ? { ttlSeconds: o.certTtlSeconds } : {}),
      ...(o.timers ? { timers: o.timers } : {}),
      ...(o.now ? { now: o.now } : {}),
      logger: this.child('identity'),
    });
    await this.identity.bootstrap();

    this.runtime = new ProxyRuntime({
      stats: this.stats,
      identity: {
        workload: (this.node.metadata?.['WORKLOAD_NAME'] as string) ?? o.serviceAccount,
        namespace: o.namespace,
        serviceAccount: o.serviceAccount,
        principal: this.identity.spiffeId,
        ...(o.cluster ? { cluster: o.cluster } : {}),
        labels: { ...(o.labels ?? {}) },
        ...(this.node.id ? { nodeId: this.node.id } : {}),
        ...(o.locality?.zone ? { zone: o.locality.zone } : {}),
      },
      logger: this.child('runtime'),
      ...(o.outboundPort !== undefined ? { outboundPort: o.outboundPort } : {}),
      ...(o.gatewayPort !== undefined ? { gatewayPort: o.gatewayPort } : {}),
      ...(o.drainTimeoutMs !== undefined ? { drainTimeoutMs: o.drainTimeoutMs } : {}),
      ...(o.capture ? { capture: { inboundAddress: '0.0.0.0', ...o.capture } } : {}),
      onListener: (name, role, a) => o.onListener?.(name, role, fmt(a)),
    });
    await this.runtime.startCapture();

    this.xds = new XdsClient({
      address: o.controlPlane,
      credentials: () => this.identity.credentials(),
      node: this.node,
      protocol: o.xds ?? 'delta',
      localSecrets: () => (this.identity.defaultSecret ? [this.identity.defaultSecret] : []),
      onGraph: (g) => this.applyGraph(g),
      ...(this.dns ? { onNameTable: (t: Parameters<DnsServer['setTable']>[0]) => this.dns?.setTable(t) } : {}),
      logger: this.child('xds'),
      ...(o.backoff ? { backoff: o.backoff } : {}),
      ...(o.timers ? { timers: o.timers } : {}),
      ...(o.now ? { now: o.now } : {}),
      ...(o.initialFetchTimeoutMs !== undefined ? { initialFetchTimeoutMs: o.initialFetchTimeoutMs } : {}),
    });
    // A rotated certificate: the graph is re-applied with the new `default` secret; listeners
    // and pools derive TLS contexts from secrets, so new connections use it, open ones stay.
    this.identity.on('rotated', () => this.xds.refresh());
    this.xds.start();
  }

  private async startDns(d: ProxyDnsOptions): Promise<void> {
    const host = d.host ?? proxyBindHost(this.opts.ip);
    try {
      this.dns = await DnsServer.start({
        host,
        port: d.port,
        namespace: this.opts.namespace,
        upstreams: d.upstreams,
        ...(d.upstreamTimeoutMs !== undefined ? { upstreamTimeoutMs: d.upstreamTimeoutMs } : {}),
        logger: this.child('dns'),
        ...(this.opts.timers ? { timers: this.opts.timers } : {}),
      });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = `cannot listen on ${formatHostPort(host, d.port)} (--dns-port): ${err.code === 'EADDRINUSE' ? 'address already in use' : err.message}`;
      if (d.required) throw new IsleError('ERR_USAGE', why);
      this.logger.warn({ reason: why }, 'DNS proxy not started');
      return;
    }
    const a = this.dns.address();
    this.opts.onListener?.('dns', 'outbound', formatHostPort(a.host, a.port));
    this.registerDnsMetrics(this.dns.stats);
  }

  /** istio-agent's DNS counters (and two of Isle's), read from the server's own counts at scrape time. */
  private registerDnsMetrics(st: DnsStats): void {
    const registers = [this.stats.registry];
    const counter = (name: string, help: string, read: () => number): void => {
      let last = 0;
      new Counter({
        name,
        help,
        registers,
        collect() {
          const v = read();
          this.inc(v - last);
          last = v;
        },
      });
    };
    counter('istio_dns_requests_total', 'DNS queries received by the sidecar DNS proxy', () => st.queries);
    counter('istio_dns_upstream_requests_total', 'DNS queries forwarded to an upstream resolver', () => st.forwarded + st.upstreamFailures);
    counter('istio_dns_upstream_failures_total', 'DNS queries no upstream resolver answered (SERVFAIL)', () => st.upstreamFailures);
    counter('isle_dns_refused_total', 'DNS queries refused because too many forwards were pending', () => st.refused);
    counter('isle_dns_malformed_total', 'DNS packets dropped or answered FORMERR/NOTIMP', () => st.malformed);
  }

  private async applyGraph(graph: ConfigGraph): Promise<void> {
    if (this.runtime.isClosed) return;
    const report = await this.runtime.apply(graph);
    this.lastApply = { at: Date.now(), report, warnings: graph.warnings };
    if (report.failed.length) this.logger.error({ failed: report.failed }, 'some listeners could not start');
    if (!this.readyFlag) {
      if (report.failed.length) {
        const f = report.failed[0]!;
        this.readyReject(new IsleError('ERR_USAGE', `cannot listen on ${f.address} (listener ${f.name}): ${f.error}`));
        return;
      }
      this.readyFlag = true;
      this.logger.info({ listeners: this.runtime.listenerInfo() }, 'ready');
      this.readyResolve();
    }
  }

  private child(component: string): Logger {
    const l = this.logger.child({ component });
    this.loggers.push(l);
    return l;
  }

  /** Envoy's /server_info: version, state, uptime, node. */
  serverInfo(): unknown {
    const up = `${Math.floor((Date.now() - this.startedAt) / 1000)}s`;
    return {
      version: 'isle-proxy/0.1.0',
      state: this.stopping ? 'DRAINING' : this.readyFlag ? 'LIVE' : 'PRE_INITIALIZING',
      uptime_current_epoch: up,
      uptime_all_epochs: up,
      node: this.node,
      command_line_options: { mode: this.opts.mode, control_plane: this.opts.controlPlane, xds: this.opts.xds ?? 'delta', log_level: this.logger.level },
    };
  }

  /** Current certificate facts (never the key). */
  certificate(): Omit<CertMaterial, 'keyPem'> | undefined {
    const m = this.identity?.current;
    if (!m) return undefined;
    const { keyPem: _k, ...rest } = m;
    return rest;
  }

  /**
   * /config_dump in Envoy's ConfigDump shape (configdump.ts); Isle's own facts under `isle`: per
   * type the last good version and resource names and the last rejected update with its errors,
   * the xDS connection, the certificate (never the key), the listeners bound.
   */
  configDump(): unknown {
    const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());
    const types: Record<string, unknown> = {};
    if (this.xds) {
      for (const t of XDS_TYPES) {
        const s = this.xds.state.type(t);
        types[shortTypeName(t)] = {
          type_url: t,
          last_good: {
            version_info: s.version,
            accepted_at: iso(s.acceptedAt),
            resources: [...s.accepted.values()].map((r) => ({ name: r.name, version: r.version })),
          },
          last_rejected: s.lastRejected
            ? {
                version_info: s.lastRejected.version,
                nonce: s.lastRejected.nonce,
                rejected_at: iso(s.lastRejected.at),
                errors: s.lastRejected.errors,
                error: s.lastRejected.errors.join('; '),
                resources: s.lastRejected.raw,
              }
            : null,
        };
      }
    }
    const cert = this.certificate();
    return buildConfigDump({
      node: this.node,
      accepted: (t) => {
        const s = this.xds?.state.type(t);
        return { version: s?.version ?? '', acceptedAt: s?.acceptedAt, resources: s ? [...s.accepted.values()] : [] };
      },
      localSecrets: cert ? [{ name: SECRET_DEFAULT, tls_certificate: { certificate_chain: { inline_string: cert.chainPem }, private_key: REDACTED } }] : [],
      isle: {
        xds: this.xds?.status(),
        certificate: cert
          ? { spiffe_id: cert.spiffeId, serial: cert.serial, not_before: iso(cert.notBefore), not_after: iso(cert.notAfter), renew_at: iso(cert.renewAt), cert_chain: cert.chainPem, private_key: '[redacted]' }
          : null,
        applied: this.lastApply
          ? { at: iso(this.lastApply.at), listeners: this.runtime.listenerInfo(), report: this.lastApply.report, warnings: this.lastApply.warnings }
          : null,
        types,
      },
    });
  }

  /** Graceful shutdown: stop accepting, drain in-flight requests (bounded), close. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.readyFlag = false;
      this.xds?.stop();
      this.identity?.stop();
      if (this.runtime) {
        const r = await this.runtime.drain(this.opts.drainTimeoutMs);
        this.logger.info(r, 'drained');
      }
      await this.dns?.close();
      await this.admin?.close();
      await this.healthServer?.close();
    })();
    return this.stopping;
  }
}
