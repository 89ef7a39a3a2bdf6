/**
 * The east-west gateway on 15443 (Istio's AUTO_PASSTHROUGH): read the SNI of the client's TLS
 * ClientHello without terminating TLS, find the filter chain whose server_names holds it, pick an
 * endpoint of that chain's cluster, and splice the raw bytes both ways, starting with the
 * ClientHello already read. The mTLS session is end to end between the two sidecars; the gateway
 * never holds a key. Plaintext and unknown SNIs are closed and counted.
 */
import { listenOn } from '../net/listen.js';
import net from 'node:net';
import type { ListenerModel } from '../model.js';
import { peekClientHello } from '../net/clienthello.js';
import { drain, InflightTracker, SocketSet, type DrainOptions, type DrainResult } from '../net/drain.js';
import type { ListenerDeps } from './context.js';
import { selectFilterChain } from './chains.js';
import { pickTcpCluster, tcpProxy } from './tcp.js';
import { realTimers } from '../../mesh/timers.js';

export const EAST_WEST_PORT = 15443;

export type GatewayRejectReason = 'plaintext' | 'no_sni' | 'unknown_sni' | 'bad_client_hello' | 'inspect_timeout' | 'no_cluster' | 'no_healthy_upstream' | 'connect_failure';

export interface GatewayOptions {
  inspectTimeoutMs?: number;
}

/**
 * Unknown SNIs at warn level (issue 16 part 4.3: a subset missing in this cluster shows up as a
 * client's TLS error, so the gateway must say why). The SNI is the client's, so the warnings are
 * rate-limited: each name at most once per window, and at most `maxPerWindow` lines per window in
 * all, each saying how many were left out.
 */
export class UnknownSniWarnings {
  private windowStart = -Infinity;
  private inWindow = 0;
  private suppressed = 0;
  private readonly lastByName = new Map<string, number>();

  constructor(
    private readonly log: (m: string) => void,
    private readonly now: () => number,
    private readonly windowMs = 10_000,
    private readonly maxPerWindow = 10,
  ) {}

  report(listener: string, sni: string): void {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      this.windowStart = t;
      this.inWindow = 0;
      // Names older than a window can be said again; forgetting them bounds the map.
      for (const [n, at] of this.lastByName) if (t - at >= this.windowMs) this.lastByName.delete(n);
    }
    const last = this.lastByName.get(sni);
    if ((last !== undefined && t - last < this.windowMs) || this.inWindow >= this.maxPerWindow) {
      this.suppressed++;
      return;
    }
    this.inWindow++;
    this.lastByName.set(sni, t);
    const more = this.suppressed > 0 ? ` (${this.suppressed} more unknown-SNI connections not logged since the last warning)` : '';
    this.suppressed = 0;
    const name = JSON.stringify(sni.length > 253 ? `${sni.slice(0, 253)}…` : sni);
    this.log(`isle proxy: ${listener}: unknown SNI ${name}: no service and subset with endpoints on this network has that name (a DestinationRule subset missing in this cluster?); connection closed${more}`);
  }
}

export class GatewayListener {
  private model: ListenerModel;
  private readonly server: net.Server;
  private readonly sockets = new SocketSet();
  private readonly inflight = new InflightTracker();
  private readonly unknownSni: UnknownSniWarnings;

  constructor(
    model: ListenerModel,
    private readonly deps: ListenerDeps,
    private readonly opts: GatewayOptions = {},
  ) {
    this.model = model;
    const timers = deps.timers ?? realTimers;
    this.unknownSni = new UnknownSniWarnings((m) => deps.log?.(m), () => timers.now());
    // Half-open on: a TLS peer may close its sending side while the other still answers.
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => void this.onConnection(s));
  }

  get name(): string {
    return this.model.name;
  }

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
    return drain({ servers: [this.server], sockets: this.sockets, inflight: this.inflight }, opts);
  }

  private reject(socket: net.Socket, reason: GatewayRejectReason): void {
    this.deps.stats.gatewayRejected.inc({ reason });
    this.deps.stats.downstreamCxRejected.inc({ listener: this.model.name, reason });
    socket.destroy();
  }

  private async onConnection(socket: net.Socket): Promise<void> {
    const model = this.model;
    const stats = this.deps.stats;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    const label = { listener: model.name };
    stats.downstreamCxTotal.inc(label);
    stats.downstreamCxActive.inc(label);
    socket.once('close', () => stats.downstreamCxActive.dec(label));

    const { result, consumed } = await peekClientHello(socket, { timeoutMs: this.opts.inspectTimeoutMs ?? 15_000 });
    if (result.kind === 'closed') return void socket.destroy();
    if (result.kind === 'not-tls') return this.reject(socket, 'plaintext');
    if (result.kind === 'invalid') return this.reject(socket, result.reason === 'timeout' ? 'inspect_timeout' : 'bad_client_hello');
    if (result.kind !== 'tls') return this.reject(socket, 'bad_client_hello');
    const sni = result.serverName;
    if (!sni) return this.reject(socket, 'no_sni');

    // Exact names first (the generated config has only those), then Envoy's wildcard rules.
    let clusterName = model.sniClusters.get(sni);
    if (clusterName === undefined) {
      const chain = selectFilterChain(model, { destinationPort: model.port, destinationIp: socket.localAddress, transportProtocol: 'tls', serverName: sni, alpn: result.alpn });
      if (!chain || chain.filter.kind !== 'tcp') {
        this.unknownSni.report(model.name, sni);
        return this.reject(socket, 'unknown_sni');
      }
      clusterName = pickTcpCluster(chain.filter.tcpProxy.cluster, this.deps.random);
    }
    const cluster = clusterName ? this.deps.config().clusters.get(clusterName) : undefined;
    if (!cluster) return this.reject(socket, 'no_cluster');

    const end = this.inflight.begin();
    socket.once('close', end);
    const up = { sni, cluster: cluster.name, direction: 'upstream' };
    const down = { sni, cluster: cluster.name, direction: 'downstream' };
    const r = await tcpProxy(socket, cluster, this.deps, consumed, {
      onUp: (n) => stats.gatewayBytes.inc(up, n),
      onDown: (n) => stats.gatewayBytes.inc(down, n),
    });
    if (!r.endpoint) return this.reject(socket, r.reason === 'no_healthy_upstream' ? 'no_healthy_upstream' : 'connect_failure');
    stats.gatewayConnections.inc({ sni, cluster: cluster.name });
  }
}
