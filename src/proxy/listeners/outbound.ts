/**
 * The outbound listener on `<bind>:15001`: the app's explicit HTTP proxy (HTTP_PROXY, curl -x).
 * Plain HTTP/1.1, no inspection: accepted connections go straight to the HTTP codec, and every
 * request goes through the listener's one HTTP connection manager, which routes on the
 * absolute-form authority or the Host header through the RDS config the listener names.
 *
 * With capture (`isle proxy --capture`, docs/capture.md) it is transparent too: a connection
 * iptables redirected here carries its original destination (SO_ORIGINAL_DST); its first bytes
 * are sniffed (TLS ClientHello, HTTP/1 request line, else TCP after a short wait for server-first
 * protocols) and Envoy's filter chain match on (original port, original address, SNI, protocol)
 * picks the HTTP connection manager, a TCP proxy to a service's cluster (mTLS to the peer
 * sidecar), or the default chain (passthrough to the original destination, or the black hole).
 */
import net, { type AddressInfo } from 'node:net';
import { listenOn } from '../net/listen.js';
import type { ClusterModel, FilterChainModel, ListenerModel } from '../model.js';
import { originalDst, type OriginalDst } from '../net/origdst.js';
import { sniff } from '../net/sniff.js';
import { selectFilterChain } from './chains.js';
import { connect, pickTcpCluster, splice, tcpProxy } from './tcp.js';
import { localPeerOf } from '../filters/stats.js';
import { UNKNOWN_PEER } from '../peer.js';
import { drain, InflightTracker, type DrainOptions, type DrainResult } from '../net/drain.js';
import type { ListenerDeps } from './context.js';
import { createHcmServer, type ConnInfo } from './http.js';

/** How long a captured connection may stay silent before it is judged opaque TCP (server-first protocols). */
export const DEFAULT_SNIFF_TIMEOUT_MS = 100;
const BLACKHOLE = 'BlackHoleCluster';

export interface CaptureListenerOptions {
  sniffTimeoutMs?: number;
}

export class OutboundListener {
  private model: ListenerModel;
  private info: ConnInfo;
  private readonly inflight = new InflightTracker();
  private readonly server: net.Server;
  private readonly http;

  constructor(
    model: ListenerModel,
    private readonly deps: ListenerDeps,
    private readonly capture?: CaptureListenerOptions,
  ) {
    this.model = model;
    this.info = OutboundListener.connInfo(model);
    this.http = createHcmServer({ deps, connInfo: () => this.info, inflight: this.inflight });
    this.server = net.createServer({ noDelay: true }, (s) => this.accept(s));
    // Captured IPv6 (ip6tables REDIRECT to ::1): a second, IPv6-only socket, so IPv4 connections
    // keep their plain addresses on the first one.
    if (capture) this.server6 = net.createServer({ noDelay: true }, (s) => this.accept(s));
  }

  private readonly server6: net.Server | undefined;

  private accept(s: net.Socket): void {
    const deps = this.deps;
    s.on('error', () => s.destroy());
    const label = { listener: this.model.name };
    deps.stats.downstreamCxTotal.inc(label);
    deps.stats.downstreamCxActive.inc(label);
    s.once('close', () => deps.stats.downstreamCxActive.dec(label));
    if (!this.capture) return this.http.serve(s);
    const dst = originalDst(s);
    // Not redirected (an explicit-proxy client dialing 15001 itself): plain HTTP proxy.
    if (!dst || (dst.port === s.localPort && dst.address === s.localAddress)) return this.http.serve(s);
    void this.captured(s, dst);
  }

  private static connInfo(model: ListenerModel): ConnInfo {
    const chain = model.filterChains.find((c) => c.filter.kind === 'http' && !c.tls) ?? model.defaultFilterChain;
    if (!chain || chain.filter.kind !== 'http' || chain.tls) {
      throw new Error(`listener ${model.name}: the outbound proxy listener needs a plaintext HTTP connection manager chain`);
    }
    return { listener: model.name, direction: 'OUTBOUND', chain, hcm: chain.filter.hcm, mtls: false, peerId: undefined, peerCertHash: undefined, ownId: undefined, destinationPort: model.port };
  }

  get name(): string {
    return this.model.name;
  }

  private reject(s: net.Socket, reason: string): void {
    this.deps.stats.downstreamCxRejected.inc({ listener: this.model.name, reason });
    s.destroy();
  }

  /** A redirected connection: sniff, match a chain on the original destination, serve it. */
  private async captured(s: net.Socket, dst: OriginalDst): Promise<void> {
    const { result, consumed } = await sniff(s, this.capture!.sniffTimeoutMs ?? DEFAULT_SNIFF_TIMEOUT_MS);
    if (result.kind === 'closed') return void s.destroy();
    const model = this.model;
    const chain = selectFilterChain(model, {
      destinationPort: dst.port,
      destinationIp: dst.address,
      transportProtocol: result.kind === 'tls' ? 'tls' : 'raw_buffer',
      serverName: result.kind === 'tls' ? result.serverName : undefined,
      alpn: result.kind === 'tls' ? result.alpn : result.kind === 'http' ? [result.protocol] : [],
    });
    if (!chain) return this.reject(s, 'no_filter_chain');
    if (chain.filter.kind === 'http') {
      if (consumed.length) s.unshift(consumed);
      this.http.serve(s);
      return;
    }
    const name = pickTcpCluster(chain.filter.tcpProxy.cluster, this.deps.random);
    const cluster = name ? this.deps.config().clusters.get(name) : undefined;
    if (!cluster) return this.reject(s, 'no_cluster');
    this.proxyTcp(s, chain, cluster, dst, consumed);
  }

  private proxyTcp(s: net.Socket, chain: FilterChainModel, cluster: ClusterModel, dst: OriginalDst, first: Buffer): void {
    const end = this.inflight.begin();
    s.once('close', end);
    const tcpStats = this.deps.stats.openTcp({
      reporter: 'source',
      source: localPeerOf(this.deps, undefined).labels,
      destination: UNKNOWN_PEER,
      destinationService: cluster.service ?? (cluster.type === 'ORIGINAL_DST' ? `${dst.address}:${dst.port}` : cluster.name),
      connectionSecurityPolicy: cluster.tls ? 'mutual_tls' : 'none',
    });
    s.once('close', () => tcpStats.close());
    const counters = { onUp: tcpStats.sent, onDown: tcpStats.received };
    const idle = chain.filter.kind === 'tcp' ? chain.filter.tcpProxy.idleTimeoutMs : 0;
    if (cluster.type !== 'ORIGINAL_DST') {
      void tcpProxy(s, cluster, this.deps, first, counters, idle).then((r) => {
        if (!r.endpoint) this.reject(s, cluster.name === BLACKHOLE ? 'registry_only' : (r.reason ?? 'connect_failure'));
      });
      return;
    }
    // PassthroughCluster: where the app was going, as the proxy (its gid is exempt from capture).
    void connect(dst, cluster.connectTimeoutMs).then((up) => {
      if (!up) return this.reject(s, 'passthrough_connect_failure');
      const label = { cluster_name: cluster.name };
      this.deps.stats.upstreamCxTotal.inc(label);
      splice(s, up, first, counters, idle);
    });
  }

  update(model: ListenerModel): void {
    this.info = OutboundListener.connInfo(model);
    this.model = model;
  }

  async listen(): Promise<AddressInfo> {
    const a = await listenOn(this.server, this.model.port, this.model.address);
    // The IPv6 twin of a capture listener: `::`, IPv6 only. A host without IPv6 (EAFNOSUPPORT,
    // EADDRNOTAVAIL) just has no IPv6 to capture.
    if (this.server6) {
      await listenOn(this.server6, a.port, '::', { ipv6Only: true }).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EAFNOSUPPORT' && e.code !== 'EADDRNOTAVAIL') throw e;
      });
    }
    return a;
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  drain(opts?: DrainOptions): Promise<DrainResult> {
    return drain({ servers: this.server6 ? [this.server, this.server6] : [this.server], http: [this.http], inflight: this.inflight }, opts);
  }
}
