/**
 * Applies resolved ConfigGraphs to live sockets. One `apply` is one atomic switch: cluster, load
 * balancer and endpoint state for the new graph is built first, then the graph reference and the
 * cluster table are swapped in the same tick, and listener models are updated in that tick too.
 * Requests read `config()` once when they start (listeners/http.ts), so each request sees either
 * the old graph or the new one. Listeners are then started (new names), replaced (address or kind
 * changed) or drained (gone), by name. Outlier state is kept for endpoints that persist.
 */
import { muxFromEnv } from './mux/frame.js';
import { flushTracing } from './tracing/tracer.js';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { pino } from 'pino';
import { formatHostPort } from '../config/hostport.js';
import { ClusterLoadBalancer, type LbSettings } from './lb/index.js';
import type { EndpointPicker, ListenerDeps, LocalIdentity } from './listeners/context.js';
import { RateLimitClients } from './ratelimit/client.js';
import { GatewayListener } from './listeners/gateway.js';
import { InboundListener } from './listeners/inbound.js';
import { OutboundListener } from './listeners/outbound.js';
import type { ClusterModel, ConfigGraph, EndpointsModel, ListenerModel } from './model.js';
import type { DrainResult } from './net/drain.js';
import { OutlierDetector, type OutlierResult } from './outlier/index.js';
import type { ProxyStats } from './stats.js';
import { UpstreamPools } from './upstream/pool.js';
import { OUTBOUND_LISTENER_NAME } from '../mesh/names.js';
import { CaptureInboundListener, CAPTURE_INBOUND_NAME } from './listeners/captureinbound.js';

export type ListenerRole = 'outbound' | 'inbound' | 'gateway';

export interface RuntimeOptions {
  stats: ProxyStats;
  identity?: LocalIdentity;
  logger?: Logger;
  /** Port for the outbound (virtualOutbound) listener instead of the one in LDS; 0 = any free one. */
  outboundPort?: number;
  /** Port for the east-west (SNI passthrough) listener instead of 15443; 0 = any free one. */
  gatewayPort?: number;
  /** Bound for draining a listener that is removed or replaced, and at shutdown (default 5 s). */
  drainTimeoutMs?: number;
  random?: () => number;
  /** Clock for outlier detection (ms). */
  now?: () => number;
  /**
   * Transparent capture (docs/capture.md): the outbound listener serves redirected connections
   * by their original destination, and `inboundPort` (15006) hands redirected inbound
   * connections to the inbound listener of their original port.
   */
  capture?: { inboundAddress: string; inboundPort: number; sniffTimeoutMs?: number };
  /** Called once per listener bound. */
  onListener?: (name: string, role: ListenerRole, address: AddressInfo) => void;
  /**
   * isle-mux/1 between Isle sidecars (ADR 0138): offered on mTLS HTTP/1.1 upstreams and accepted
   * on inbound mTLS chains. Default: on unless the environment says `ISLE_PROXY_MUX=off`.
   */
  mux?: boolean;
}


export interface ApplyReport {
  started: string[];
  updated: string[];
  replaced: string[];
  stopped: string[];
  failed: { name: string; address: string; error: string }[];
}

type AnyListener = OutboundListener | InboundListener | GatewayListener;

interface LiveListener {
  role: ListenerRole;
  listener: AnyListener;
  /** The model as bound (ports overridden). */
  model: ListenerModel;
  address: AddressInfo | undefined;
}

interface ClusterState {
  model: ClusterModel;
  endpoints: EndpointsModel;
  lb: ClusterLoadBalancer;
  outlier: OutlierDetector | undefined;
}

export const EMPTY_GRAPH: ConfigGraph = Object.freeze({
  listeners: new Map(),
  routes: new Map(),
  clusters: new Map(),
  endpoints: new Map(),
  secrets: new Map(),
  warnings: [],
});

const EMPTY_ENDPOINTS = (name: string): EndpointsModel => ({ clusterName: name, priorities: [], overprovisioningFactor: 140 });

function roleOf(l: ListenerModel): ListenerRole {
  if (l.kind === 'sni-passthrough') return 'gateway';
  // virtualOutbound: the explicit proxy's chain, plus the chains captured connections match.
  if (l.name === OUTBOUND_LISTENER_NAME && l.trafficDirection === 'OUTBOUND' && l.filterChains.some((c) => c.filter.kind === 'http' && !c.tls)) return 'outbound';
  // Chains with network RBAC need the inbound listener, which evaluates it per connection.
  const plainHttp = l.filterChains.length > 0 && l.filterChains.every((c) => c.filter.kind === 'http' && !c.tls && c.rbac.length === 0);
  if (l.trafficDirection === 'OUTBOUND' && plainHttp && !l.tlsInspector) return 'outbound';
  return 'inbound';
}

function lbSettings(c: ClusterModel): LbSettings {
  return { lbPolicy: c.lbPolicy, localityWeightedLb: c.localityWeightedLb, healthyPanicThreshold: c.healthyPanicThreshold, leastRequestChoiceCount: c.leastRequestChoiceCount };
}

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function endpointKeys(e: EndpointsModel): string[] {
  return e.priorities.flatMap((p) => p.localities.flatMap((l) => l.endpoints.map((ep) => ep.key)));
}

function hostPort(a: AddressInfo | undefined, m: ListenerModel): string {
  const host = a?.address ?? m.address;
  const port = a?.port ?? m.port;
  return formatHostPort(host, port);
}

export class ProxyRuntime {
  private graph: ConfigGraph = EMPTY_GRAPH;
  private clusters = new Map<string, ClusterState>();
  private readonly listeners = new Map<string, LiveListener>();
  private readonly draining = new Set<Promise<DrainResult>>();
  readonly pools: UpstreamPools;
  readonly deps: ListenerDeps;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly random: () => number;
  private closed = false;

  constructor(private readonly opts: RuntimeOptions) {
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    const mux = opts.mux ?? muxFromEnv();
    this.pools = new UpstreamPools({
      mux,
      stats: opts.stats,
      secrets: () => this.graph.secrets,
      onResult: (cluster, endpoint, result) => this.reportResult(cluster.name, endpoint.key, result),
    });
    this.deps = {
      config: () => this.graph,
      stats: opts.stats,
      pools: this.pools,
      pick: this.pick,
      random: this.random,
      log: (m) => this.log.warn(m),
      rateLimitClients: new RateLimitClients(this.pick),
      mux,
      ...(opts.identity ? { identity: opts.identity } : {}),
    };
  }

  private captureInbound: CaptureInboundListener | undefined;

  /** Binds the capture inbound listener (15006); call once before the first apply. */
  async startCapture(): Promise<AddressInfo | undefined> {
    const c = this.opts.capture;
    if (!c || this.captureInbound) return undefined;
    const l = new CaptureInboundListener(c.inboundAddress, c.inboundPort, this.deps, (port) => {
      const live = [...this.listeners.values()].find((x) => x.role === 'inbound' && x.model.trafficDirection === 'INBOUND' && x.model.port === port);
      return live?.listener instanceof InboundListener ? live.listener : undefined;
    });
    const address = await l.listen();
    this.captureInbound = l;
    this.opts.onListener?.(CAPTURE_INBOUND_NAME, 'inbound', address);
    return address;
  }

  /** True once drained (shutdown or POST /drain_listeners): nothing is applied any more. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** The graph in use. */
  get config(): ConfigGraph {
    return this.graph;
  }

  /** Bound listeners: name → role and address. */
  listenerInfo(): { name: string; role: ListenerRole; address: string }[] {
    return [...this.listeners].map(([name, l]) => ({ name, role: l.role, address: hostPort(l.address, l.model) }));
  }

  /** An upstream attempt's outcome, for outlier detection (the pools call this). */
  reportResult(cluster: string, endpointKey: string, result: OutlierResult): void {
    this.clusters.get(cluster)?.outlier?.report(endpointKey, result);
  }

  /** Envoy's load balancer pick, with outlier ejections; undefined = no healthy upstream. */
  readonly pick: EndpointPicker = (cluster, endpoints, ctx) => {
    let st = this.clusters.get(cluster.name);
    const eps = endpoints ?? EMPTY_ENDPOINTS(cluster.name);
    if (!st || st.endpoints !== eps) {
      // A request that started on the previous graph: balance over what it saw.
      st = { model: cluster, endpoints: eps, lb: new ClusterLoadBalancer(lbSettings(cluster), eps, { random: this.random }), outlier: st?.outlier };
    }
    st.outlier?.advance();
    const r = st.lb.pick(ctx.avoidPrevious && ctx.previous.size ? { avoid: ctx.previous, maxAttempts: 5 } : {});
    return r.kind === 'endpoint' ? r.endpoint : undefined;
  };

  private buildClusters(graph: ConfigGraph): Map<string, ClusterState> {
    const next = new Map<string, ClusterState>();
    for (const [name, model] of graph.clusters) {
      const endpoints = graph.endpoints.get(name) ?? EMPTY_ENDPOINTS(name);
      const old = this.clusters.get(name);
      let outlier = old?.outlier;
      if (!model.outlierDetection) outlier = undefined;
      else if (!outlier || !sameJson(outlier.config, model.outlierDetection)) {
        outlier = new OutlierDetector(model.outlierDetection, {
          now: this.now,
          random: this.random,
          onEject: (key, reason) => this.log.info({ cluster: name, endpoint: key, reason }, 'outlier ejected'),
          onUneject: (key) => this.log.info({ cluster: name, endpoint: key }, 'outlier returned'),
        });
      }
      if (outlier && (!old || old.endpoints !== endpoints || old.outlier !== outlier)) outlier.setHosts(endpointKeys(endpoints));
      let lb: ClusterLoadBalancer;
      if (old && old.outlier === outlier && sameJson(lbSettings(old.model), lbSettings(model))) {
        lb = old.lb;
        if (old.endpoints !== endpoints) lb.update(endpoints);
      } else {
        lb = new ClusterLoadBalancer(lbSettings(model), endpoints, { random: this.random, ...(outlier ? { ejections: outlier } : {}) });
      }
      next.set(name, { model, endpoints, lb, outlier });
    }
    return next;
  }

  private bindModel(l: ListenerModel, role: ListenerRole): ListenerModel {
    // Redirected connections arrive on 127.0.0.1 (REDIRECT from OUTPUT), whatever the workload's address.
    if (role === 'outbound' && this.opts.capture) return { ...l, address: '0.0.0.0', ...(this.opts.outboundPort !== undefined ? { port: this.opts.outboundPort } : {}) };
    if (role === 'outbound' && this.opts.outboundPort !== undefined) return { ...l, port: this.opts.outboundPort };
    if (role === 'gateway' && this.opts.gatewayPort !== undefined) return { ...l, port: this.opts.gatewayPort };
    return l;
  }

  private create(model: ListenerModel, role: ListenerRole): AnyListener {
    if (role === 'outbound') return new OutboundListener(model, this.deps, this.opts.capture ? { ...(this.opts.capture.sniffTimeoutMs !== undefined ? { sniffTimeoutMs: this.opts.capture.sniffTimeoutMs } : {}) } : undefined);
    if (role === 'gateway') return new GatewayListener(model, this.deps);
    return new InboundListener(model, this.deps);
  }

  private drainListener(name: string, l: LiveListener): void {
    const p = l.listener.drain({ timeoutMs: this.opts.drainTimeoutMs ?? 5000 });
    this.draining.add(p);
    void p.then(
      (r) => {
        this.draining.delete(p);
        this.log.info({ listener: name, clean: r.clean, cutOff: r.cutOff }, 'listener drained');
      },
      () => this.draining.delete(p),
    );
  }

  /** Swaps in `graph` and reconciles the listeners. Never throws for a listener that fails to bind. */
  async apply(graph: ConfigGraph): Promise<ApplyReport> {
    if (this.closed) throw new Error('runtime is closed');
    const report: ApplyReport = { started: [], updated: [], replaced: [], stopped: [], failed: [] };

    // 1. The atomic part: clusters/LB/endpoints, graph, listener models, all in this tick.
    const clusters = this.buildClusters(graph);
    const toStart: [string, ListenerModel, ListenerRole][] = [];
    const toReplace: [string, LiveListener][] = [];
    for (const [name, raw] of graph.listeners) {
      const role = roleOf(raw);
      const model = this.bindModel(raw, role);
      const live = this.listeners.get(name);
      if (!live) toStart.push([name, model, role]);
      else if (live.role !== role || live.model.address !== model.address || live.model.port !== model.port) {
        toReplace.push([name, live]);
        toStart.push([name, model, role]);
      }
    }
    const gone = [...this.listeners].filter(([name]) => !graph.listeners.has(name));
    this.graph = graph;
    this.clusters = clusters;
    for (const [name, live] of this.listeners) {
      const raw = graph.listeners.get(name);
      if (!raw || toReplace.some(([n]) => n === name)) continue;
      const model = this.bindModel(raw, live.role);
      if (model !== live.model && raw !== live.model) {
        try {
          live.listener.update(model);
          live.model = model;
          report.updated.push(name);
        } catch (e) {
          report.failed.push({ name, address: hostPort(live.address, model), error: e instanceof Error ? e.message : String(e) });
        }
      }
    }
    this.pools.retain(graph.clusters);

    // 2. Listeners that go away or move: stop accepting now, drain in the background.
    for (const [name, live] of [...gone, ...toReplace]) {
      this.listeners.delete(name);
      this.drainListener(name, live);
      if (gone.some(([n]) => n === name)) report.stopped.push(name);
      else report.replaced.push(name);
    }

    // 3. New listeners.
    await Promise.all(
      toStart.map(async ([name, model, role]) => {
        let listener: AnyListener;
        try {
          listener = this.create(model, role);
          const address = await listener.listen();
          if (this.closed) {
            void listener.drain({ timeoutMs: 0 });
            return;
          }
          this.listeners.set(name, { role, listener, model, address });
          report.started.push(name);
          this.log.info({ listener: name, role, address: `${address.address}:${address.port}` }, 'listener started');
          this.opts.onListener?.(name, role, address);
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          const error = err.code === 'EADDRINUSE' ? 'address already in use' : err.message;
          report.failed.push({ name, address: hostPort(undefined, model), error });
          this.log.error({ listener: name, address: hostPort(undefined, model), error }, 'listener failed to start');
        }
      }),
    );
    return report;
  }

  /** Envoy's /clusters text: one `cluster::host::stat::value` line per fact. */
  clustersText(): string {
    const lines: string[] = [];
    const pools = new Map(this.pools.snapshot().map((p) => [p.cluster, p]));
    for (const [name, st] of [...this.clusters].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const c = st.model;
      lines.push(`${name}::type::${c.type}`);
      lines.push(`${name}::lb_policy::${c.lbPolicy}`);
      lines.push(`${name}::default_priority::max_connections::${c.circuitBreakers.maxConnections}`);
      lines.push(`${name}::default_priority::max_requests::${c.circuitBreakers.maxRequests}`);
      lines.push(`${name}::tls::${c.tls ? `mtls sni=${c.tls.sni ?? ''}` : 'none'}`);
      const pool = pools.get(name);
      if (pool) lines.push(`${name}::pool::connections=${pool.connections},idle=${pool.idle},inflight=${pool.inflight}`);
      // isle-mux/1 (ADR 0138): connections to peer sidecars, and endpoints that answered HTTP/1.1.
      if (pool?.mux) lines.push(`${name}::isle_mux::connections=${pool.mux.connections},http1_endpoints=${pool.mux.http1Endpoints}`);
      st.outlier?.advance();
      const outlier = new Map((st.outlier?.snapshot() ?? []).map((h) => [h.key, h]));
      for (const p of st.endpoints.priorities) {
        for (const loc of p.localities) {
          for (const ep of loc.endpoints) {
            const h = `${name}::${ep.key}`;
            const o = outlier.get(ep.key);
            const flags: string[] = [];
            if (ep.health === 'UNHEALTHY' || ep.health === 'DRAINING' || ep.health === 'TIMEOUT') flags.push('/failed_eds_health');
            if (ep.health === 'DEGRADED') flags.push('/degraded_eds_health');
            if (o?.ejected) flags.push('/failed_outlier_check');
            lines.push(`${h}::health_flags::${flags.length ? flags.join('') : 'healthy'}`);
            lines.push(`${h}::eds_health::${ep.health}`);
            lines.push(`${h}::weight::${ep.weight}`);
            lines.push(`${h}::priority::${p.priority}`);
            lines.push(`${h}::region::${loc.region}`);
            lines.push(`${h}::zone::${loc.zone}`);
            lines.push(`${h}::sub_zone::${loc.subZone}`);
            lines.push(`${h}::locality_weight::${loc.weight}`);
            if (o) {
              lines.push(`${h}::outlier::ejected=${o.ejected},ejections=${o.totalEjections},multiplier=${o.ejectionMultiplier},consecutive_5xx=${o.consecutive5xx},consecutive_gateway_failure=${o.consecutiveGatewayFailure}${o.ejectedUntil !== undefined ? `,ejected_until=${new Date(o.ejectedUntil).toISOString()}` : ''}${o.lastEjectionReason ? `,reason=${o.lastEjectionReason}` : ''}`);
            }
          }
        }
      }
    }
    return lines.join('\n') + (lines.length ? '\n' : '');
  }

  /** Stops accepting everywhere, waits for in-flight work (bounded), closes upstream pools. */
  async drain(timeoutMs = this.opts.drainTimeoutMs ?? 5000): Promise<{ clean: boolean; cutOff: number }> {
    this.closed = true;
    const results = await Promise.all([...[...this.listeners.values()].map((l) => l.listener), ...(this.captureInbound ? [this.captureInbound] : [])].map((l) => l.drain({ timeoutMs })));
    this.listeners.clear();
    await Promise.all([...this.draining]);
    this.pools.close();
    // Spans of the last requests still go out (bounded by the exporter's timeout).
    await flushTracing(this.deps);
    this.deps.rateLimitClients?.close();
    return { clean: results.every((r) => r.clean), cutOff: results.reduce((n, r) => n + r.cutOff, 0) };
  }
}
