/**
 * Per-cluster upstream connection pools: one keep-alive Agent per cluster (HTTP or mTLS), sized
 * by the cluster's circuit breakers, and `send`, which makes one attempt to one endpoint and
 * classifies how it went. Retries, endpoint choice and timeouts across attempts belong to the
 * caller (the router filter in listeners/http.ts); this file reports every attempt's outcome to
 * stats and to the outlier detector.
 *
 * Certificate rotation: the TLS settings are derived from the current secrets on each send; when
 * they change, the cluster gets a fresh Agent and the old one is retired: requests already on it
 * finish on their connections, its idle connections are closed, and it is never used again.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { ClusterModel, EndpointModel } from '../model.js';
import { cachedUpstreamTlsSettings, TlsMaterialError, type Secrets } from '../net/tls.js';
import type { ProxyStats } from '../stats.js';

export type AttemptOutcome =
  | { kind: 'response'; status: number; response: http.IncomingMessage }
  /** TCP refused / unreachable / connect timeout, or the TLS handshake failed (bad peer identity included). */
  | { kind: 'connect-failure'; detail: string }
  /** Connected, then the connection broke before response headers. */
  | { kind: 'reset'; detail: string }
  /** No response headers within the per-try timeout. */
  | { kind: 'timeout' }
  /** Refused by the cluster's circuit breaker before anything was sent. */
  | { kind: 'overflow' }
  /** The caller's AbortSignal fired (downstream went away, route timeout). */
  | { kind: 'aborted' };

/** What the outlier detector hears about an attempt (Envoy: external vs local-origin results). */
export type UpstreamResult =
  | { kind: 'http'; status: number }
  | { kind: 'connect-failure' }
  | { kind: 'reset' }
  | { kind: 'timeout' };

export type ResultSink = (cluster: ClusterModel, endpoint: EndpointModel, result: UpstreamResult) => void;

export interface UpstreamRequest {
  method: string;
  /** Origin-form path with query. */
  path: string;
  /** Lower-case names; `host` included. Hop-by-hop headers must already be removed. */
  headers: http.OutgoingHttpHeaders;
  /** A Buffer can be sent again (retries); a stream only once. */
  body: Buffer | Readable | null;
  /** 0 = none. Counts until response headers. */
  perTryTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface PoolOptions {
  stats: ProxyStats;
  /** The secrets of the config in use now (SDS): read on each send so rotation is picked up. */
  secrets: () => Secrets;
  onResult?: ResultSink;
  /**
   * Idle keep-alive connections are closed after this long. Below Node's default server
   * keepAliveTimeout (5 s) so we rarely reuse a connection the app is just closing.
   */
  freeSocketTimeoutMs?: number;
}

interface PoolEntry {
  agent: http.Agent;
  tlsId: string | undefined;
  maxConnections: number;
}

function isTlsError(err: NodeJS.ErrnoException): boolean {
  const code = err.code ?? '';
  return code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code === 'ISLE_ERR_SAN_MISMATCH' || /SSL|TLS|certificate/i.test(err.message);
}

export class UpstreamPools {
  private readonly entries = new Map<string, PoolEntry>();
  private readonly retired = new Set<http.Agent>();
  /** By cluster name, across agent swaps: circuit breakers count the cluster, not one agent. */
  private readonly inflight = new Map<string, number>();

  constructor(private readonly opts: PoolOptions) {}

  /** Drops pools of clusters that are gone; their in-flight requests finish first. */
  retain(clusters: ReadonlyMap<string, ClusterModel>): void {
    for (const [name, e] of this.entries) {
      if (!clusters.has(name)) {
        this.retire(e.agent);
        this.entries.delete(name);
      }
    }
  }

  /** Per-cluster pool state for /clusters. */
  snapshot(): Array<{ cluster: string; inflight: number; connections: number; idle: number; tls: boolean }> {
    return [...this.entries].map(([cluster, e]) => ({
      cluster,
      inflight: this.inflight.get(cluster) ?? 0,
      connections: countSockets(e.agent.sockets) + countSockets(e.agent.freeSockets),
      idle: countSockets(e.agent.freeSockets),
      tls: e.tlsId !== undefined,
    }));
  }

  close(): void {
    for (const e of this.entries.values()) e.agent.destroy();
    for (const a of this.retired) a.destroy();
    this.entries.clear();
    this.retired.clear();
  }

  private retire(agent: http.Agent): void {
    // Sockets still carrying a request are closed when they come back to the pool.
    agent.keepSocketAlive = () => false;
    for (const list of Object.values(agent.freeSockets)) for (const s of list ?? []) s.destroy();
    if (countSockets(agent.sockets) === 0) agent.destroy();
    else this.retired.add(agent);
  }

  private entry(cluster: ClusterModel): { entry: PoolEntry; tlsOptions: https.AgentOptions | undefined } {
    const settings = cluster.tls ? cachedUpstreamTlsSettings(cluster.tls, this.opts.secrets()) : undefined;
    const maxConnections = cluster.circuitBreakers.maxConnections;
    let e = this.entries.get(cluster.name);
    if (!e || e.tlsId !== settings?.id || e.maxConnections !== maxConnections) {
      const agentOptions: https.AgentOptions = {
        keepAlive: true,
        // Envoy's max_connections is per cluster; Node's maxSockets is per host:port, so cap both.
        maxSockets: maxConnections,
        maxTotalSockets: maxConnections,
        maxFreeSockets: Math.min(maxConnections, 256),
        scheduling: 'lifo',
        timeout: Math.min(this.opts.freeSocketTimeoutMs ?? 4000, cluster.idleTimeoutMs || Infinity),
        ...settings?.options,
      };
      const agent = settings ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
      if (e) this.retire(e.agent);
      e = { agent, tlsId: settings?.id, maxConnections };
      this.entries.set(cluster.name, e);
    }
    return { entry: e, tlsOptions: settings?.options };
  }

  /** Makes one attempt. Never rejects. */
  send(req: UpstreamRequest, cluster: ClusterModel, endpoint: EndpointModel): Promise<AttemptOutcome> {
    const stats = this.opts.stats;
    const label = { cluster_name: cluster.name };
    let entry: PoolEntry;
    let secure: boolean;
    try {
      const got = this.entry(cluster);
      entry = got.entry;
      secure = got.tlsOptions !== undefined;
    } catch (e) {
      if (!(e instanceof TlsMaterialError)) throw e;
      stats.upstreamCxConnectFail.inc(label);
      return Promise.resolve({ kind: 'connect-failure', detail: `TLS error: ${e.message}` });
    }
    const cb = cluster.circuitBreakers;
    const inflight = this.inflight.get(cluster.name) ?? 0;
    if (inflight >= Math.min(cb.maxRequests, cb.maxConnections + cb.maxPendingRequests)) {
      stats.upstreamRqPendingOverflow.inc(label);
      return Promise.resolve({ kind: 'overflow' });
    }
    stats.upstreamRqTotal.inc(label);
    const agent = entry.agent;
    this.inflight.set(cluster.name, inflight + 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const n = (this.inflight.get(cluster.name) ?? 1) - 1;
      if (n <= 0) this.inflight.delete(cluster.name);
      else this.inflight.set(cluster.name, n);
      if (this.retired.has(agent) && countSockets(agent.sockets) === 0) {
        this.retired.delete(agent);
        agent.destroy();
      }
    };

    const attempt = (isRetryOfStaleSocket: boolean): Promise<AttemptOutcome> =>
      new Promise((resolve) => {
        let settled = false;
        let connected = false;
        let reused = false;
        let tryTimer: NodeJS.Timeout | undefined;
        let connectTimer: NodeJS.Timeout | undefined;
        const creq = (secure ? https : http).request({
          agent,
          host: endpoint.address,
          port: endpoint.port,
          method: req.method,
          path: req.path,
          headers: req.headers,
          setHost: false,
        });
        const settle = (o: AttemptOutcome | 'stale'): void => {
          if (settled) return;
          settled = true;
          if (tryTimer) clearTimeout(tryTimer);
          if (connectTimer) clearTimeout(connectTimer);
          req.signal?.removeEventListener('abort', onAbort);
          if (o === 'stale') {
            resolve(attempt(true));
            return;
          }
          if (o.kind !== 'response') {
            if (typeof req.body === 'object' && req.body && !Buffer.isBuffer(req.body)) req.body.unpipe(creq);
            creq.destroy();
            release();
          }
          this.report(cluster, endpoint, o);
          resolve(o);
        };
        const onAbort = (): void => settle({ kind: 'aborted' });
        if (req.signal?.aborted) return settle({ kind: 'aborted' });
        req.signal?.addEventListener('abort', onAbort, { once: true });
        if (req.perTryTimeoutMs && req.perTryTimeoutMs > 0) {
          tryTimer = setTimeout(() => {
            stats.upstreamRqPerTryTimeout.inc(label);
            settle({ kind: 'timeout' });
          }, req.perTryTimeoutMs);
        }
        creq.on('socket', (socket: Socket) => {
          reused = creq.reusedSocket;
          if (reused) {
            connected = true;
            return;
          }
          stats.upstreamCxTotal.inc(label);
          stats.upstreamCxActive.inc(label);
          socket.once('close', () => stats.upstreamCxActive.dec(label));
          const ready = secure ? 'secureConnect' : 'connect';
          socket.once(ready, () => {
            connected = true;
            if (connectTimer) clearTimeout(connectTimer);
          });
          connectTimer = setTimeout(() => {
            if (!connected) socket.destroy(Object.assign(new Error(`connect timeout after ${cluster.connectTimeoutMs} ms`), { code: 'ISLE_CONNECT_TIMEOUT' }));
          }, cluster.connectTimeoutMs);
        });
        creq.on('response', (res) => {
          if (settled) {
            res.resume();
            return;
          }
          const status = res.statusCode ?? 502;
          stats.upstreamRqCompleted.inc({ cluster_name: cluster.name, response_code_class: `${Math.floor(status / 100)}xx` });
          res.once('close', release);
          settle({ kind: 'response', status, response: res });
        });
        creq.on('error', (err: NodeJS.ErrnoException) => {
          if (settled) return;
          // A keep-alive connection the server closed while idle: not the endpoint's fault, and
          // nothing reached it, so one fresh connection is tried without counting an attempt.
          if (reused && !isRetryOfStaleSocket && (req.body === null || Buffer.isBuffer(req.body)) && err.code === 'ECONNRESET') {
            return settle('stale');
          }
          if (!connected) {
            stats.upstreamCxConnectFail.inc(label);
            const detail = isTlsError(err) ? `TLS error: ${err.message}` : `${err.code ?? 'error'}: ${err.message}`;
            settle({ kind: 'connect-failure', detail });
          } else {
            settle({ kind: 'reset', detail: `${err.code ?? 'error'}: ${err.message}` });
          }
        });
        const body = req.body;
        if (body === null) creq.end();
        else if (Buffer.isBuffer(body)) creq.end(body);
        else body.pipe(creq);
      });
    return attempt(false);
  }

  private report(cluster: ClusterModel, endpoint: EndpointModel, o: AttemptOutcome): void {
    const sink = this.opts.onResult;
    if (!sink) return;
    switch (o.kind) {
      case 'response':
        return sink(cluster, endpoint, { kind: 'http', status: o.status });
      case 'connect-failure':
      case 'reset':
      case 'timeout':
        return sink(cluster, endpoint, { kind: o.kind });
      default:
        return;
    }
  }
}

function countSockets(m: NodeJS.ReadOnlyDict<Socket[]> | NodeJS.ReadOnlyDict<unknown[]>): number {
  let n = 0;
  for (const l of Object.values(m)) n += l?.length ?? 0;
  return n;
}
