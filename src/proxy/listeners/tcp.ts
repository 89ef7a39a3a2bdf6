/**
 * TcpProxy: connect to an endpoint of the cluster and copy bytes both ways. Used by the east-west
 * gateway (SNI passthrough, with the already-read ClientHello replayed first) and by inbound
 * chains whose port is not HTTP.
 */
import net from 'node:net';
import tls from 'node:tls';
import { cachedUpstreamTlsSettings, TlsMaterialError } from '../net/tls.js';
import type { ClusterModel, ClusterSpecifierModel, EndpointModel } from '../model.js';
import type { ListenerDeps } from './context.js';

export interface TcpProxyResult {
  /** Null when no endpoint was healthy or every connect failed. */
  endpoint: EndpointModel | null;
  reason?: 'no_cluster' | 'no_healthy_upstream' | 'connect_failure';
}

export function pickTcpCluster(spec: ClusterSpecifierModel, random: () => number = Math.random): string | undefined {
  if (spec.kind === 'cluster') return spec.name;
  if (spec.kind === 'weighted') {
    let r = random() * spec.totalWeight;
    for (const c of spec.clusters) {
      r -= c.weight;
      if (r < 0) return c.name;
    }
    return spec.clusters.at(-1)?.name;
  }
  return undefined;
}

export interface PipeCounters {
  /** Bytes from downstream to upstream (including the replayed first bytes). */
  onUp?: (n: number) => void;
  onDown?: (n: number) => void;
}

/**
 * Connects and pipes. `first` is written upstream before anything else the client sends. Resolves
 * once the upstream is connected (or could not be); the copying goes on in the background until
 * either side closes. Connect failures move on to another endpoint (Envoy's
 * max_connect_attempts is 1 by default; Isle tries up to 3 distinct endpoints because a
 * passthrough cannot be retried by the client later in the same connection).
 */
export async function tcpProxy(
  downstream: net.Socket,
  cluster: ClusterModel,
  deps: ListenerDeps,
  first: Buffer | undefined,
  counters: PipeCounters = {},
  idleTimeoutMs = 0,
): Promise<TcpProxyResult> {
  const graph = deps.config();
  const endpoints = graph.endpoints.get(cluster.name);
  const tried = new Set<string>();
  const label = { cluster_name: cluster.name };
  for (let attempt = 1; attempt <= 3; attempt++) {
    const ep = deps.pick(cluster, endpoints, { previous: tried, avoidPrevious: true, attempt });
    if (!ep || tried.has(ep.key)) {
      if (attempt === 1) deps.stats.upstreamCxNoneHealthy.inc(label);
      return { endpoint: null, reason: attempt === 1 ? 'no_healthy_upstream' : 'connect_failure' };
    }
    tried.add(ep.key);
    if (downstream.destroyed) return { endpoint: null, reason: 'connect_failure' };
    let tlsOptions: tls.ConnectionOptions | undefined;
    try {
      tlsOptions = cluster.tls ? cachedUpstreamTlsSettings(cluster.tls, graph.secrets).options : undefined;
    } catch (e) {
      if (!(e instanceof TlsMaterialError)) throw e;
      deps.stats.upstreamCxConnectFail.inc(label);
      return { endpoint: null, reason: 'connect_failure' };
    }
    const upstream = await connect(ep, cluster.connectTimeoutMs, tlsOptions);
    if (!upstream) {
      deps.stats.upstreamCxConnectFail.inc(label);
      continue;
    }
    deps.stats.upstreamCxTotal.inc(label);
    deps.stats.upstreamCxActive.inc(label);
    upstream.once('close', () => deps.stats.upstreamCxActive.dec(label));
    splice(downstream, upstream, first, counters, idleTimeoutMs);
    return { endpoint: ep };
  }
  return { endpoint: null, reason: 'connect_failure' };
}

/**
 * A plain or (cluster TLS: mTLS to a peer sidecar, as the HTTP pools do) TLS connection.
 * `localAddress` binds the source (127.0.0.6 for inbound passthrough under capture).
 */
export function connect(ep: { address: string; port: number }, timeoutMs: number, tlsOptions?: tls.ConnectionOptions, localAddress?: string): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = tlsOptions
      ? tls.connect({ ...tlsOptions, host: ep.address, port: ep.port, allowHalfOpen: true } as tls.ConnectionOptions)
      : net.connect({ host: ep.address, port: ep.port, allowHalfOpen: true, ...(localAddress ? { localAddress } : {}) });
    s.setNoDelay(true);
    const timer = setTimeout(() => {
      s.destroy();
      resolve(null);
    }, timeoutMs);
    s.once(tlsOptions ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      s.off('error', onError);
      resolve(s);
    });
    const onError = (): void => {
      clearTimeout(timer);
      resolve(null);
    };
    s.once('error', onError);
  });
}

export function splice(down: net.Socket, up: net.Socket, first: Buffer | undefined, counters: PipeCounters, idleTimeoutMs: number): void {
  down.on('error', () => up.destroy());
  up.on('error', () => down.destroy());
  // Half-close is passed through (a TLS close_notify then FIN must reach the other side intact),
  // and a side that got FIN keeps writing (a client that half-closes still gets its reply): the
  // listener's sockets were accepted without allowHalfOpen, which is set per socket here.
  down.allowHalfOpen = true;
  up.allowHalfOpen = true;
  down.on('end', () => up.end());
  up.on('end', () => down.end());
  down.on('close', () => up.destroy());
  up.on('close', () => down.destroy());
  if (idleTimeoutMs > 0) {
    for (const s of [down, up]) {
      s.setTimeout(idleTimeoutMs);
      s.on('timeout', () => {
        down.destroy();
        up.destroy();
      });
    }
  }
  if (first && first.length) {
    counters.onUp?.(first.length);
    up.write(first);
  }
  down.on('data', (c: Buffer) => {
    counters.onUp?.(c.length);
    if (!up.write(c)) down.pause();
  });
  up.on('drain', () => down.resume());
  up.on('data', (c: Buffer) => {
    counters.onDown?.(c.length);
    if (!down.write(c)) up.pause();
  });
  down.on('drain', () => up.resume());
  down.resume();
}
