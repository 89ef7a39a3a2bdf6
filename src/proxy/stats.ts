/**
 * Per-proxy metrics. Each proxy owns a registry (never prom-client's global one), so several
 * proxies in one process (tests, the embedded demo) do not mix their series.
 *
 * Istio's standard metrics, label for label (ADR 0050): `source_*`/`destination_*` come from this
 * proxy's own metadata and from the peer's, exchanged in `x-envoy-peer-metadata` and believed
 * only when it matches the peer certificate (`./peer.ts`); `destination_cluster` is the
 * destination's cluster id, as in Istio. Envoy's per-upstream-cluster counters keep their
 * `envoy_cluster_*` names.
 */
import { Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { Headers } from './http1/head.js';
import { UNKNOWN_PEER, type PeerLabels } from './peer.js';

/** Envoy's response flags that Isle produces (Envoy access-log short names). */
export type ResponseFlag =
  | '-' // none
  | 'NR' // no route / no virtual host
  | 'NC' // no cluster of that name
  | 'UH' // no healthy upstream
  | 'UF' // upstream connection failure
  | 'URX' // retry limit exceeded (upstream retries exhausted)
  | 'UT' // upstream request timeout
  | 'UC' // upstream connection termination (reset)
  | 'UO' // upstream overflow (circuit breaker)
  | 'DC' // downstream connection termination
  | 'DPE'; // downstream protocol error

export interface RequestRecord {
  reporter: 'source' | 'destination';
  source?: PeerLabels | undefined;
  destination?: PeerLabels | undefined;
  /** FQDN of the destination service (destination_service). */
  destinationService?: string | undefined;
  /** The upstream (Envoy) cluster the request went to, for access logs. */
  upstreamCluster?: string | undefined;
  /** http | grpc */
  requestProtocol?: string | undefined;
  /** The grpc-status of a gRPC response ('' when none, as Istio). */
  grpcStatus?: string | undefined;
  responseCode: number;
  /** Comma-joined if several, as Envoy prints them (`UF,URX`). */
  responseFlags: string;
  /** mutual_tls | none */
  connectionSecurityPolicy?: 'mutual_tls' | 'none' | undefined;
  durationMs: number;
  /** Request headers + body bytes (istio_request_bytes). */
  requestBytes?: number | undefined;
  /** Response headers + body bytes (istio_response_bytes). */
  responseBytes?: number | undefined;
}

export interface TcpRecord {
  reporter: 'source' | 'destination';
  source: PeerLabels;
  destination: PeerLabels;
  destinationService?: string | undefined;
  connectionSecurityPolicy: 'mutual_tls' | 'none';
  responseFlags?: string | undefined;
}

/** Istio's default buckets for istio_request_duration_milliseconds. */
export const ISTIO_DURATION_BUCKETS_MS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
/** Istio's default buckets for istio_request_bytes / istio_response_bytes (powers of ten). */
export const ISTIO_BYTES_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000];

const UNKNOWN = 'unknown';

/** `name.namespace.svc.<domain>` → name and namespace; other hosts (ServiceEntry) are their own name. */
export function serviceNameParts(fqdn: string | undefined): { name: string; namespace: string } {
  if (!fqdn) return { name: UNKNOWN, namespace: UNKNOWN };
  const m = /^([^.]+)\.([^.]+)\.svc(\.|$)/.exec(fqdn);
  return m ? { name: m[1]!, namespace: m[2]! } : { name: fqdn, namespace: UNKNOWN };
}

/**
 * Fills `grpc_response_status` from a `grpc-status` header or trailer, once: trailers, when the
 * HTTP/2 path sees them, are noted before the request finishes and win over the headers (where
 * gRPC puts the status only in a trailers-only response).
 */
export function noteGrpcStatus(r: RequestRecord, h: Headers | undefined): void {
  if (r.grpcStatus !== undefined || !h) return;
  const g = h['grpc-status'];
  if (typeof g === 'string') r.grpcStatus = g.trim();
}

/** Approximate header bytes as Envoy counts them (name, ": ", value, CRLF). */
export function headerBytes(h: Headers): number {
  let n = 0;
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    if (typeof v === 'string') n += k.length + v.length + 4;
    else for (const x of v) n += k.length + x.length + 4;
  }
  return n;
}

type Labels = Record<string, string>;

function peerSide(prefix: 'source' | 'destination', p: PeerLabels, out: Labels): void {
  out[`${prefix}_workload`] = p.workload;
  out[`${prefix}_workload_namespace`] = p.namespace;
  out[`${prefix}_principal`] = p.principal;
  out[`${prefix}_app`] = p.app;
  out[`${prefix}_version`] = p.version;
  out[`${prefix}_canonical_service`] = p.canonicalService;
  out[`${prefix}_canonical_revision`] = p.canonicalRevision;
  out[`${prefix}_cluster`] = p.cluster;
}

/** The label set shared by the request and TCP metrics. */
function commonLabels(reporter: string, src: PeerLabels, dst: PeerLabels, service: string | undefined): Labels {
  const out: Labels = { reporter };
  peerSide('source', src, out);
  peerSide('destination', dst, out);
  const parts = serviceNameParts(service);
  out['destination_service'] = service || UNKNOWN;
  out['destination_service_name'] = parts.name;
  out['destination_service_namespace'] = parts.namespace;
  return out;
}

class Hist {
  count = 0;
  sum = 0;
  /** Per bucket, not cumulative; the last slot is +Inf. */
  readonly buckets: Float64Array;
  constructor(private readonly bounds: readonly number[]) {
    this.buckets = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    this.count++;
    this.sum += v;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.buckets[i]!++;
  }
}

interface RequestSeries {
  labels: Labels;
  count: number;
  duration: Hist;
  requestBytes: Hist;
  responseBytes: Hist;
}

interface TcpSeries {
  labels: Labels;
  opened: number;
  closed: number;
  sent: number;
  received: number;
}

type MetricValue = { labels: Record<string, string | number>; sharedLabels?: Labels; value: number; metricName?: string };

/** A prom-client metric whose values are computed at scrape time from our own tables. */
function scrapeMetric(name: string, help: string, type: 'counter' | 'histogram', values: () => MetricValue[], reset: () => void): Metric {
  const get = () => ({ name, help, type, aggregator: 'sum', values: values() });
  return { name, help, type, aggregator: 'sum', get, reset } as unknown as Metric;
}

function histValues(name: string, bounds: readonly number[], entries: Iterable<[Labels, Hist]>): MetricValue[] {
  const out: MetricValue[] = [];
  for (const [labels, h] of entries) {
    let acc = 0;
    bounds.forEach((le, i) => {
      acc += h.buckets[i]!;
      out.push({ labels: { le }, sharedLabels: labels, value: acc, metricName: `${name}_bucket` });
    });
    out.push({ labels: { le: '+Inf' }, sharedLabels: labels, value: h.count, metricName: `${name}_bucket` });
    out.push({ labels: {}, sharedLabels: labels, value: h.sum, metricName: `${name}_sum` });
    out.push({ labels: {}, sharedLabels: labels, value: h.count, metricName: `${name}_count` });
  }
  return out;
}

/** The label values that pick a request series. */
interface SeriesValues {
  reporter: string;
  destinationService: string | undefined;
  responseCode: number;
  responseFlags: string;
  src: string;
  dst: string;
  csp: string;
  proto: string;
  grpc: string;
}

/**
 * The Istio request metrics, aggregated here and handed to prom-client at scrape time.
 * prom-client validates and hashes every label on each inc/observe (ADR 0017); here a request
 * costs one key of a few concatenations (each side's labels carry a precomputed fragment) and
 * one Map lookup that serves all four metrics.
 */
class RequestMetrics {
  readonly series = new Map<string, RequestSeries>();
  /**
   * The previous request's label values and series: consecutive requests almost always share a
   * series, and comparing nine values is cheaper than building, hashing and looking up the key.
   */
  private last: { r: SeriesValues; s: RequestSeries } | undefined;

  record(r: RequestRecord): void {
    const src = r.source ?? UNKNOWN_PEER;
    const dst = r.destination ?? UNKNOWN_PEER;
    const proto = r.requestProtocol ?? 'http';
    const grpc = r.grpcStatus ?? '';
    const csp = r.connectionSecurityPolicy ?? UNKNOWN;
    const l = this.last?.r;
    let s: RequestSeries | undefined;
    if (l && l.reporter === r.reporter && l.src === src.key && l.dst === dst.key && l.destinationService === r.destinationService && l.responseCode === r.responseCode && l.responseFlags === r.responseFlags && l.csp === csp && l.proto === proto && l.grpc === grpc) {
      s = this.last!.s;
    } else s = this.lookup(r, src, dst, proto, grpc, csp);
    s.count++;
    s.duration.observe(r.durationMs);
    s.requestBytes.observe(r.requestBytes ?? 0);
    s.responseBytes.observe(r.responseBytes ?? 0);
  }

  private lookup(r: RequestRecord, src: PeerLabels, dst: PeerLabels, proto: string, grpc: string, csp: string): RequestSeries {
    const key = `${r.reporter}\u0001${src.key}\u0001${dst.key}\u0001${r.destinationService}\u0001${r.responseCode}\u0001${r.responseFlags}\u0001${csp}\u0001${proto}\u0001${grpc}`;
    let s = this.series.get(key);
    if (!s) {
      const labels = commonLabels(r.reporter, src, dst, r.destinationService);
      labels['request_protocol'] = proto;
      labels['response_code'] = String(r.responseCode);
      labels['grpc_response_status'] = grpc;
      labels['response_flags'] = r.responseFlags || '-';
      labels['connection_security_policy'] = csp;
      s = { labels, count: 0, duration: new Hist(ISTIO_DURATION_BUCKETS_MS), requestBytes: new Hist(ISTIO_BYTES_BUCKETS), responseBytes: new Hist(ISTIO_BYTES_BUCKETS) };
      this.series.set(key, s);
    }
    this.last = { r: { reporter: r.reporter, destinationService: r.destinationService, responseCode: r.responseCode, responseFlags: r.responseFlags, src: src.key, dst: dst.key, csp, proto, grpc }, s };
    return s;
  }

  metrics(): Metric[] {
    const reset = () => {
      this.series.clear();
      this.last = undefined;
    };
    const all = () => this.series.values();
    const hist = (name: string, help: string, bounds: readonly number[], pick: (s: RequestSeries) => Hist) =>
      scrapeMetric(name, help, 'histogram', () => histValues(name, bounds, [...all()].map((s) => [s.labels, pick(s)] as [Labels, Hist])), reset);
    return [
      scrapeMetric('istio_requests_total', 'Requests handled by this proxy (Istio standard metric)', 'counter', () => [...all()].map((s) => ({ labels: s.labels, value: s.count })), reset),
      hist('istio_request_duration_milliseconds', 'Request duration in milliseconds (Istio standard metric)', ISTIO_DURATION_BUCKETS_MS, (s) => s.duration),
      hist('istio_request_bytes', 'Request size in bytes, headers and body (Istio standard metric)', ISTIO_BYTES_BUCKETS, (s) => s.requestBytes),
      hist('istio_response_bytes', 'Response size in bytes, headers and body (Istio standard metric)', ISTIO_BYTES_BUCKETS, (s) => s.responseBytes),
    ];
  }
}

/** istio_tcp_*: one series per (reporter, peers, service, policy); the connection holds it. */
class TcpMetrics {
  readonly series = new Map<string, TcpSeries>();

  open(r: TcpRecord): TcpSeries {
    const flags = r.responseFlags || '-';
    const key = `${r.reporter}\u0001${r.source.key}\u0001${r.destination.key}\u0001${r.destinationService}\u0001${r.connectionSecurityPolicy}\u0001${flags}`;
    let s = this.series.get(key);
    if (!s) {
      const labels = commonLabels(r.reporter, r.source, r.destination, r.destinationService);
      labels['request_protocol'] = 'tcp';
      labels['response_flags'] = flags;
      labels['connection_security_policy'] = r.connectionSecurityPolicy;
      s = { labels, opened: 0, closed: 0, sent: 0, received: 0 };
      this.series.set(key, s);
    }
    s.opened++;
    return s;
  }

  metrics(): Metric[] {
    const reset = () => this.series.clear();
    const c = (name: string, help: string, pick: (s: TcpSeries) => number) =>
      scrapeMetric(name, help, 'counter', () => [...this.series.values()].map((s) => ({ labels: s.labels, value: pick(s) })), reset);
    return [
      c('istio_tcp_sent_bytes_total', 'Bytes sent towards the downstream during TCP connections (Istio standard metric)', (s) => s.sent),
      c('istio_tcp_received_bytes_total', 'Bytes received from the downstream during TCP connections (Istio standard metric)', (s) => s.received),
      c('istio_tcp_connections_opened_total', 'TCP connections opened (Istio standard metric)', (s) => s.opened),
      c('istio_tcp_connections_closed_total', 'TCP connections closed (Istio standard metric)', (s) => s.closed),
    ];
  }
}

/** One series of a CounterCells: the caller keeps it and adds to `value`. */
export interface CounterCell {
  value: number;
}

/**
 * A counter for the per-request path: a caller resolves its series once (`cell(labels)`) and then
 * bumps a number, instead of prom-client validating and hashing the labels on every `inc`
 * (ADR 0128). Rendered by prom-client at scrape time, like the Istio metrics above. A series
 * appears once its cell is first asked for.
 */
export class CounterCells {
  private readonly cells = new Map<string, { labels: Labels; cell: CounterCell }>();

  constructor(private readonly labelNames: readonly string[]) {}

  cell(labels: Labels): CounterCell {
    let key = '';
    for (const n of this.labelNames) key += `${labels[n] ?? ''}\u0001`;
    let e = this.cells.get(key);
    if (!e) {
      e = { labels: { ...labels }, cell: { value: 0 } };
      this.cells.set(key, e);
    }
    return e.cell;
  }

  metric(name: string, help: string): Metric {
    const values = () => [...this.cells.values()].map((e) => ({ labels: e.labels, value: e.cell.value }));
    // Callers hold their cells: a reset zeroes them rather than forgetting them.
    return scrapeMetric(name, help, 'counter', values, () => {
      for (const e of this.cells.values()) e.cell.value = 0;
    });
  }
}

/** The per-cluster counters an upstream pool bumps per request, resolved once per pool. */
export class UpstreamCounters {
  private total: CounterCell | undefined;
  private readonly classes: (CounterCell | undefined)[] = [];

  constructor(
    private readonly stats: ProxyStats,
    private readonly clusterName: string,
  ) {}

  /** envoy_cluster_upstream_rq_total */
  attempt(): void {
    (this.total ??= this.stats.upstreamRqTotal.cell({ cluster_name: this.clusterName })).value++;
  }

  /** envoy_cluster_upstream_rq_xx */
  response(status: number): void {
    const c = Math.floor(status / 100);
    (this.classes[c] ??= this.stats.upstreamRqCompleted.cell({ cluster_name: this.clusterName, response_code_class: `${c}xx` })).value++;
  }
}

/** A TCP connection's handle on its series (bytes are added as they flow; close once). */
export interface TcpConnectionStats {
  received(n: number): void;
  sent(n: number): void;
  close(): void;
}

export class ProxyStats {
  readonly registry = new Registry();
  private readonly requests = new RequestMetrics();
  private readonly tcp = new TcpMetrics();
  readonly upstreamCxTotal: Counter<'cluster_name'>;
  readonly upstreamCxActive: Gauge<'cluster_name'>;
  readonly upstreamCxConnectFail: Counter<'cluster_name'>;
  /** Per pool: `ClusterPoolBase.counters` (UpstreamCounters) holds its cell. */
  readonly upstreamRqTotal = new CounterCells(['cluster_name']);
  readonly upstreamRqRetry: Counter<'cluster_name'>;
  readonly upstreamRqTimeout: Counter<'cluster_name'>;
  readonly upstreamRqPerTryTimeout: Counter<'cluster_name'>;
  readonly upstreamRqPendingOverflow: Counter<'cluster_name'>;
  readonly upstreamCxNoneHealthy: Counter<'cluster_name'>;
  /** Per pool and status class: `ClusterPoolBase.counters` (UpstreamCounters) holds the cells. */
  readonly upstreamRqCompleted = new CounterCells(['cluster_name', 'response_code_class']);
  readonly downstreamCxTotal: Counter<'listener'>;
  readonly downstreamCxActive: Gauge<'listener'>;
  readonly downstreamCxRejected: Counter<'listener' | 'reason'>;
  readonly gatewayRejected: Counter<'reason'>;
  /** Envoy's `rbac.denied` (and `rbac.shadow`-like audit matches), per listener and deciding policy. */
  readonly rbacDenied: Counter<'listener' | 'policy' | 'protocol'>;
  /** Rate limit filter decisions: kind local|global, result ok|over_limit|not_enforced|error|failure_mode_allowed. */
  readonly rateLimit: Counter<'kind' | 'stat_prefix' | 'result'>;
  readonly rbacAudited: Counter<'listener' | 'policy'>;
  readonly gatewayConnections: Counter<'sni' | 'cluster'>;
  readonly gatewayBytes: Counter<'sni' | 'cluster' | 'direction'>;
  /** Envoy's `tracing.opentelemetry.*`: spans sent, dropped (queue full) and failed exports (ADR 0085). */
  readonly tracingSpans: Counter<'outcome'>;

  constructor(opts: { defaultLabels?: Record<string, string> } = {}) {
    if (opts.defaultLabels) this.registry.setDefaultLabels(opts.defaultLabels);
    const r = [this.registry];
    const cl = ['cluster_name'] as const;
    for (const m of [...this.requests.metrics(), ...this.tcp.metrics()]) this.registry.registerMetric(m);
    this.upstreamCxTotal = new Counter({ name: 'envoy_cluster_upstream_cx_total', help: 'Upstream connections opened', labelNames: cl, registers: r });
    this.upstreamCxActive = new Gauge({ name: 'envoy_cluster_upstream_cx_active', help: 'Upstream connections open now', labelNames: cl, registers: r });
    this.upstreamCxConnectFail = new Counter({ name: 'envoy_cluster_upstream_cx_connect_fail', help: 'Upstream connection failures (TCP or TLS)', labelNames: cl, registers: r });
    this.registry.registerMetric(this.upstreamRqTotal.metric('envoy_cluster_upstream_rq_total', 'Upstream request attempts'));
    this.upstreamRqRetry = new Counter({ name: 'envoy_cluster_upstream_rq_retry', help: 'Upstream request retries', labelNames: cl, registers: r });
    this.upstreamRqTimeout = new Counter({ name: 'envoy_cluster_upstream_rq_timeout', help: 'Requests that hit the route timeout', labelNames: cl, registers: r });
    this.upstreamRqPerTryTimeout = new Counter({ name: 'envoy_cluster_upstream_rq_per_try_timeout', help: 'Attempts that hit the per-try timeout', labelNames: cl, registers: r });
    this.upstreamRqPendingOverflow = new Counter({ name: 'envoy_cluster_upstream_rq_pending_overflow', help: 'Requests refused by a circuit breaker', labelNames: cl, registers: r });
    this.upstreamCxNoneHealthy = new Counter({ name: 'envoy_cluster_upstream_cx_none_healthy', help: 'Requests with no healthy upstream to pick', labelNames: cl, registers: r });
    this.tracingSpans = new Counter({ name: 'envoy_tracing_opentelemetry_spans', help: 'Sampled spans by outcome: sent, dropped (export queue full), failed (export failed)', labelNames: ['outcome'], registers: r });
    this.registry.registerMetric(this.upstreamRqCompleted.metric('envoy_cluster_upstream_rq_xx', 'Upstream responses by class'));
    this.downstreamCxTotal = new Counter({ name: 'envoy_listener_downstream_cx_total', help: 'Downstream connections accepted', labelNames: ['listener'], registers: r });
    this.downstreamCxActive = new Gauge({ name: 'envoy_listener_downstream_cx_active', help: 'Downstream connections open now', labelNames: ['listener'], registers: r });
    this.downstreamCxRejected = new Counter({
      name: 'isle_listener_downstream_cx_rejected_total',
      help: 'Downstream connections closed before any request (no filter chain, plaintext on STRICT, TLS failure)',
      labelNames: ['listener', 'reason'],
      registers: r,
    });
    this.rbacDenied = new Counter({
      name: 'isle_rbac_denied_total',
      help: 'Inbound requests (http) or connections (tcp) denied by AuthorizationPolicy; policy is the DENY rule that matched, or "(no ALLOW matched)"',
      labelNames: ['listener', 'policy', 'protocol'],
      registers: r,
    });
    this.rateLimit = new Counter({
      name: 'isle_ratelimit_requests_total',
      help: 'Requests seen by the rate limit filters (Envoy ratelimit.ok/over_limit/error/failure_mode_allowed, local_rate_limit.ok/rate_limited)',
      labelNames: ['kind', 'stat_prefix', 'result'],
      registers: r,
    });
    this.rbacAudited = new Counter({ name: 'isle_rbac_audited_total', help: 'Inbound requests matched by an AUDIT AuthorizationPolicy', labelNames: ['listener', 'policy'], registers: r });
    this.gatewayRejected = new Counter({ name: 'isle_gateway_rejected_total', help: 'East-west gateway connections refused', labelNames: ['reason'], registers: r });
    this.gatewayConnections = new Counter({ name: 'isle_gateway_connections_total', help: 'East-west gateway connections forwarded', labelNames: ['sni', 'cluster'], registers: r });
    this.gatewayBytes = new Counter({ name: 'isle_gateway_bytes_total', help: 'Bytes forwarded by the east-west gateway', labelNames: ['sni', 'cluster', 'direction'], registers: r });
  }

  recordRequest(r: RequestRecord): void {
    this.requests.record(r);
  }

  /** Counts a TCP connection as opened; the handle adds its bytes and closes it once. */
  openTcp(r: TcpRecord): TcpConnectionStats {
    const s = this.tcp.open(r);
    let closed = false;
    return {
      received: (n) => void (s.received += n),
      sent: (n) => void (s.sent += n),
      close: () => {
        if (closed) return;
        closed = true;
        s.closed++;
      },
    };
  }

  /**
   * Prometheus text exposition; with `filter` (Envoy's `/stats/prometheus?filter=`), only the
   * metrics whose name it matches, so a scraper that wants one metric does not render them all.
   */
  async metrics(filter?: RegExp): Promise<string> {
    if (!filter) return this.registry.metrics();
    const names = this.registry.getMetricsAsArray().map((m) => m.name).filter((n) => filter.test(n));
    const texts = await Promise.all(names.map((n) => this.registry.getSingleMetricAsString(n)));
    return texts.length ? `${texts.join('\n\n')}\n` : '';
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
