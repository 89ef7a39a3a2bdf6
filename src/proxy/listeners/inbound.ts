/**
 * Inbound listeners (`<workload ip>:<targetPort>`), and any listener whose chains are chosen per
 * connection: tls_inspector reads the first bytes (the whole ClientHello only when a chain
 * matches on SNI or ALPN), a filter chain is picked as Envoy does, TLS is terminated with the
 * chain's certificate and the client certificate verified against the trust bundle, and the
 * connection goes to the chain's HTTP connection manager or TCP proxy.
 *
 * STRICT is simply "only a `tls` chain exists": plaintext matches no chain and is closed.
 * PERMISSIVE adds a `raw_buffer` chain, so plaintext HTTP is served on the same port.
 */
import { listenOn } from '../net/listen.js';
import net from 'node:net';
import tls from 'node:tls';
import type { FilterChainModel, HttpConnectionManagerModel, ListenerModel, RbacFilterModel } from '../model.js';
import { peekClientHello } from '../net/clienthello.js';
import { drain, InflightTracker, SocketSet, type DrainOptions, type DrainResult } from '../net/drain.js';
import { downstreamTlsSettings, ownSpiffeId, peerSpiffeId, resolveCertificate, sansMatch, TlsMaterialError, type DownstreamTlsSettings } from '../net/tls.js';
import type { ListenerDeps } from './context.js';
import { muxFromEnv } from '../mux/frame.js';
import { needsClientHello, selectFilterChain, type ConnectionFacts } from './chains.js';
import { localPeerOf, peerDecoderOf } from '../filters/stats.js';
import { createHcmServer, type ConnInfo } from './http.js';
import { pickTcpCluster, tcpProxy } from './tcp.js';
import { evaluateRbac } from '../rbac/evaluate.js';

export interface InboundListenerOptions {
  /** Envoy's listener_filters_timeout (15 s); a client that sends nothing is closed after it. */
  inspectTimeoutMs?: number;
  /** TLS handshake deadline. */
  handshakeTimeoutMs?: number;
}

interface TlsServerEntry {
  id: string;
  server: tls.Server;
  settings: DownstreamTlsSettings;
  ownId: string | undefined;
}

/** The RBAC filters of the chain of that name in the listener's current model (see ConnInfo.rbac). */
function currentHttpRbac(model: ListenerModel, chain: FilterChainModel): readonly RbacFilterModel[] {
  if (model.filterChains.includes(chain) && chain.filter.kind === 'http') return chain.filter.hcm.rbac;
  const now = [...model.filterChains, ...(model.defaultFilterChain ? [model.defaultFilterChain] : [])].find((c) => c.name === chain.name);
  if (now?.filter.kind === 'http') return now.filter.hcm.rbac;
  // The chain is gone (e.g. plaintext chain under a new STRICT mode): deny rather than guess.
  return DENY_ALL;
}

/** The chain's HTTP connection manager in the listener's current model (see ConnInfo.currentHcm). */
function currentHcm(model: ListenerModel, chain: FilterChainModel): HttpConnectionManagerModel | undefined {
  if (model.filterChains.includes(chain) && chain.filter.kind === 'http') return chain.filter.hcm;
  const now = [...model.filterChains, ...(model.defaultFilterChain ? [model.defaultFilterChain] : [])].find((c) => c.name === chain.name);
  return now?.filter.kind === 'http' ? now.filter.hcm : undefined;
}

const DENY_ALL: readonly RbacFilterModel[] = Object.freeze([{ action: 'ALLOW', policies: [] }]);

export class InboundListener {
  private model: ListenerModel;
  private readonly server: net.Server;
  private readonly http;
  private readonly sockets = new SocketSet();
  private readonly inflight = new InflightTracker();
  private readonly connInfo = new WeakMap<net.Socket, ConnInfo>();
  private readonly tlsServers = new WeakMap<FilterChainModel, TlsServerEntry>();

  constructor(
    model: ListenerModel,
    private readonly deps: ListenerDeps,
    private readonly opts: InboundListenerOptions = {},
  ) {
    this.model = model;
    this.http = createHcmServer({ deps, connInfo: (s) => this.connInfo.get(s), inflight: this.inflight });
    this.server = net.createServer((s) => void this.onConnection(s));
  }

  get name(): string {
    return this.model.name;
  }

  /** A new model applies to connections accepted from now on. The address must not change. */
  update(model: ListenerModel): void {
    this.model = model;
  }

  listen(): Promise<net.AddressInfo> {
    return listenOn(this.server, this.model.port, this.model.address);
  }

  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  drain(opts?: DrainOptions): Promise<DrainResult> {
    return drain({ servers: [this.server], http: [this.http], sockets: this.sockets, inflight: this.inflight }, opts);
  }

  /** A connection accepted elsewhere (the capture listener on 15006) for this listener's port. */
  accept(socket: net.Socket): void {
    void this.onConnection(socket);
  }

  private reject(socket: net.Socket, reason: string): void {
    this.deps.stats.downstreamCxRejected.inc({ listener: this.model.name, reason });
    socket.destroy();
  }

  private async onConnection(socket: net.Socket): Promise<void> {
    const model = this.model;
    const stats = this.deps.stats;
    const label = { listener: model.name };
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    stats.downstreamCxTotal.inc(label);
    stats.downstreamCxActive.inc(label);
    socket.once('close', () => stats.downstreamCxActive.dec(label));

    // Not redirected: the destination is the address the client dialled (prefix_ranges match it).
    const facts: ConnectionFacts = { destinationPort: model.port, destinationIp: socket.localAddress, transportProtocol: undefined, serverName: undefined, alpn: [] };
    if (model.tlsInspector) {
      const { result, consumed } = await peekClientHello(socket, {
        timeoutMs: this.opts.inspectTimeoutMs ?? 15_000,
        firstByteOnly: !needsClientHello(model),
      });
      if (result.kind === 'closed') return void socket.destroy();
      if (result.kind === 'invalid') return this.reject(socket, result.reason === 'timeout' ? 'inspect_timeout' : 'bad_client_hello');
      if (result.kind === 'tls') {
        facts.transportProtocol = 'tls';
        facts.serverName = result.serverName;
        facts.alpn = result.alpn;
      } else facts.transportProtocol = 'raw_buffer';
      if (consumed.length) socket.unshift(consumed);
    }
    const chain = selectFilterChain(model, facts);
    if (!chain) return this.reject(socket, facts.transportProtocol === 'raw_buffer' ? 'plaintext_refused' : 'no_filter_chain');
    if (!chain.tls) return this.serve(socket, model, chain, { mtls: false, peerId: undefined, peerCertHash: undefined, ownId: undefined, sni: undefined });

    let entry: TlsServerEntry;
    try {
      entry = this.tlsServer(chain);
    } catch (e) {
      this.deps.log?.(`isle proxy: listener ${model.name}: ${e instanceof Error ? e.message : String(e)}`);
      return this.reject(socket, 'tls_not_ready');
    }
    entry.server.emit('connection', socket);
  }

  /** One tls.Server per chain and certificate version: rotation gives new handshakes the new cert. */
  private tlsServer(chain: FilterChainModel): TlsServerEntry {
    // isle-mux/1 only where an HTTP connection manager can take HTTP/1.1, and only on mTLS
    // chains: a peer sidecar always has a verified client certificate (ADR 0138).
    const mux = (this.deps.mux ?? muxFromEnv()) && chain.tls!.requireClientCertificate && chain.filter.kind === 'http' && chain.filter.hcm.codecType !== 'HTTP2';
    const settings = downstreamTlsSettings(chain.tls!, this.deps.config().secrets, mux);
    const cached = this.tlsServers.get(chain);
    if (cached && cached.id === settings.id) return cached;
    const server = tls.createServer({ ...settings.options, handshakeTimeout: this.opts.handshakeTimeoutMs ?? 10_000 });
    let ownId: string | undefined;
    try {
      ownId = ownSpiffeId(resolveCertificate(chain.tls!.certificates[0]!, this.deps.config().secrets));
    } catch (e) {
      if (!(e instanceof TlsMaterialError)) throw e;
    }
    const entry: TlsServerEntry = { id: settings.id, server, settings, ownId };
    server.on('secureConnection', (t: tls.TLSSocket) => {
      const model = this.model;
      const peerId = peerSpiffeId(t);
      if (settings.requireClientCert && !t.authorized) return this.reject(t, 'client_cert_invalid');
      if (t.authorized && !sansMatch(settings.matchSans, t.getPeerCertificate().subjectaltname)) return this.reject(t, 'client_san_mismatch');
      const fp = t.authorized ? t.getPeerCertificate().fingerprint256 : undefined;
      this.serve(t, model, chain, {
        sni: typeof t.servername === 'string' ? t.servername : undefined,
        mtls: t.authorized,
        peerId,
        peerCertHash: fp ? fp.replace(/:/g, '').toLowerCase() : undefined,
        ownId: entry.ownId,
      });
    });
    server.on('tlsClientError', (_err: Error, t: tls.TLSSocket) => {
      this.deps.stats.downstreamCxRejected.inc({ listener: this.model.name, reason: 'tls_handshake_error' });
      t.destroy();
    });
    this.tlsServers.set(chain, entry);
    return entry;
  }

  private serve(socket: net.Socket, model: ListenerModel, chain: FilterChainModel, conn: Omit<ConnInfo, 'listener' | 'direction' | 'chain' | 'hcm'>): void {
    socket.on('error', () => socket.destroy());
    if (chain.rbac.length > 0) {
      const t = socket as Partial<tls.TLSSocket>;
      const d = evaluateRbac(chain.rbac, {
        principal: conn.peerId,
        sourceIp: socket.remoteAddress,
        destinationIp: socket.localAddress,
        destinationPort: model.port,
        sni: typeof t.servername === 'string' ? t.servername : undefined,
      });
      for (const policy of d.audited) this.deps.stats.rbacAudited.inc({ listener: model.name, policy });
      if (!d.allowed) {
        // Envoy's network RBAC closes the connection (before any HTTP, when an HCM follows).
        this.deps.stats.rbacDenied.inc({ listener: model.name, policy: d.policy ?? '(no ALLOW matched)', protocol: 'tcp' });
        return this.reject(socket, 'rbac_denied');
      }
    }
    const filter = chain.filter;
    if (filter.kind === 'http') {
      const rbac = () => currentHttpRbac(this.model, chain);
      const hcmNow = () => currentHcm(this.model, chain);
      this.connInfo.set(socket, { listener: model.name, direction: model.trafficDirection, chain, hcm: filter.hcm, destinationPort: model.port, rbac, currentHcm: hcmNow, ...conn });
      this.http.serve(socket);
      return;
    }
    const name = pickTcpCluster(filter.tcpProxy.cluster, this.deps.random);
    const cluster = name ? this.deps.config().clusters.get(name) : undefined;
    if (!cluster) return this.reject(socket, 'no_cluster');
    const end = this.inflight.begin();
    socket.once('close', end);
    // istio_tcp_*: the source is what its certificate says (no header exchange on raw TCP, ADR 0050).
    const tcpStats = this.deps.stats.openTcp({
      reporter: 'destination',
      source: peerDecoderOf(this.deps).decode(undefined, conn.mtls ? conn.peerId : undefined),
      destination: localPeerOf(this.deps, conn.ownId).labels,
      destinationService: cluster.service,
      connectionSecurityPolicy: conn.mtls ? 'mutual_tls' : 'none',
    });
    socket.once('close', () => tcpStats.close());
    void tcpProxy(socket, cluster, this.deps, undefined, { onUp: tcpStats.received, onDown: tcpStats.sent }, filter.tcpProxy.idleTimeoutMs).then((r) => {
      if (!r.endpoint) this.reject(socket, r.reason ?? 'connect_failure');
    });
  }
}
