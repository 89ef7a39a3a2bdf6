/**
 * The control plane's Prometheus metrics, on a registry of its own (never prom-client's global
 * one), so several control planes in one process (tests, the demo) do not mix their numbers.
 * Names are Istio's pilot metrics where Istio has one, with its labels (`pilot_xds`,
 * `pilot_xds_pushes{type}`, `pilot_push_triggers{type}`, `pilot_proxy_convergence_time`,
 * `pilot_total_xds_rejects{type}`, `pilot_k8s_cfg_events{type,event}`), so Istio's dashboards and
 * alerts work; what Istio does not have stays `isle_*` (ADR 0050).
 */
import { Counter, Gauge, Histogram, Registry, type HistogramConfiguration, type LabelValues, type MetricObjectWithValues, type MetricValueWithName } from 'prom-client';

/** Seconds: from 1 ms to 30 s, dense around the 100 ms debounce and the 1 s target. */
const PUSH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const CONVERGENCE_BUCKETS = [0.01, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5, 10, 30];


/**
 * An unlabelled histogram observed once per ACK (thousands per push at 2,000 proxies): `observe`
 * is a bucket search and three additions into numbers of its own, and the export adds them to
 * what prom-client reports, so `/metrics` shows exactly what a prom-client Histogram fed the same
 * values shows (same buckets, counts and the same sum, added in the same order). prom-client's own
 * observe validates labels and hashes them per call. Observations with labels (there are none:
 * the histogram has no label names) take prom-client's path.
 */
export class UnlabelledHistogram extends Histogram {
  private readonly bounds: readonly number[];
  /** Per bucket (not cumulative); the last slot counts values above every bound. */
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;
  /**
   * After reset() or remove() prom-client holds no series, and the export only adds to series it
   * has: the next observation goes through prom-client, which makes one.
   */
  private seriesGone = false;
  private readonly metric: string;

  constructor(config: HistogramConfiguration<string>) {
    super({ ...config, labelNames: [] });
    this.metric = config.name;
    const own = (this as unknown as { upperBounds: readonly number[] }).upperBounds;
    this.bounds = own;
    this.counts = new Float64Array(own.length + 1);
    const labelled = this.observe.bind(this) as (labels: LabelValues<string>, value: number) => void;
    // prom-client assigns `observe` per instance in its constructor, so replace it here.
    this.observe = ((a: LabelValues<string> | number, b?: number): void => {
      if (typeof a !== 'number') return labelled(a, b!);
      if (this.seriesGone) {
        this.seriesGone = false;
        return labelled({}, a);
      }
      if (!Number.isFinite(a)) throw new TypeError(`Value is not a valid number: ${a}`);
      let i = 0;
      while (i < this.bounds.length && a > this.bounds[i]!) i++;
      this.counts[i]! += 1;
      this.sum += a;
      this.count += 1;
    }) as Histogram['observe'];
  }

  override reset(): void {
    // prom-client's constructor calls reset() before this class' fields exist.
    (this.counts as Float64Array | undefined)?.fill(0);
    this.sum = 0;
    this.count = 0;
    this.seriesGone = true;
    super.reset();
  }

  override remove(...values: string[]): void;
  override remove(labels: LabelValues<string>): void;
  override remove(...args: unknown[]): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
    this.seriesGone = true;
    (super.remove as (...a: unknown[]) => void)(...args);
  }

  /** What the registry formats (`get()` reads it too); not in prom-client's typings. */
  async getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const data = await (Histogram.prototype as unknown as { getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> }).getForPromString.call(this);
    const bucket = `${this.metric}_bucket`;
    let i = 0;
    let below = 0;
    for (const v of data.values as { value: number; metricName?: string; labels: Record<string, unknown> }[]) {
      if (v.metricName === bucket && v.labels['le'] !== '+Inf') v.value += below += this.counts[i++]!;
      else if (v.metricName === bucket || v.metricName === `${this.metric}_count`) v.value += this.count;
      else if (v.metricName === `${this.metric}_sum`) v.value += this.sum;
    }
    return data;
  }
}

/** The `version` label of pilot_xds (Istio puts its proxy version there). */
export const ISLE_XDS_VERSION = 'isle-0.1.0';

export class ControlPlaneMetrics {
  readonly registry = new Registry();
  readonly connectedProxies: Gauge<'version'>;
  readonly pushes: Counter<'type'>;
  readonly pushTriggers: Counter<'type'>;
  readonly configEvents: Counter<'type' | 'event'>;
  readonly pushDuration: Histogram<'kind'>;
  readonly convergence: Histogram;
  readonly nacks: Counter<'type'>;
  readonly configErrors: Gauge;

  constructor() {
    const registers = [this.registry];
    this.connectedProxies = new Gauge({ name: 'pilot_xds', help: 'Number of endpoints connected to this pilot using XDS (one per identified proxy stream)', labelNames: ['version'], registers });
    this.pushes = new Counter({
      name: 'pilot_xds_pushes',
      help: 'Pilot build and send errors for lds, rds, cds and eds: here, xDS responses sent because a proxy\'s version of a type changed, by type',
      labelNames: ['type'],
      registers,
    });
    this.pushTriggers = new Counter({ name: 'pilot_push_triggers', help: 'Total number of times a push was triggered, labeled by reason for the push', labelNames: ['type'], registers });
    this.configEvents = new Counter({ name: 'pilot_k8s_cfg_events', help: 'Events from the config store (files or memory), by kind and event (add, update, delete)', labelNames: ['type', 'event'], registers });
    this.pushDuration = new Histogram({
      name: 'isle_push_duration_seconds',
      help: 'Time to build a PushContext and regenerate the snapshots of every affected proxy (kind: full or eds)',
      labelNames: ['kind'],
      buckets: PUSH_BUCKETS,
      registers,
    });
    this.convergence = new UnlabelledHistogram({
      name: 'pilot_proxy_convergence_time',
      help: 'From a change being seen (config event or registry change) to the proxy ACKing the version that carries it',
      buckets: CONVERGENCE_BUCKETS,
      registers,
    });
    this.nacks = new Counter({ name: 'pilot_total_xds_rejects', help: 'Total number of xDS responses from pilot rejected by proxy, by type', labelNames: ['type'], registers });
    this.configErrors = new Gauge({ name: 'isle_config_errors', help: 'Config problems of error severity currently reported (see /debug/configz)', registers });
    // Read at scrape time: no timers, nothing to stop.
    new Gauge({
      name: 'isle_process_memory_bytes',
      help: 'process.memoryUsage() of the control plane process (kind: rss, heap_used, heap_total, external)',
      labelNames: ['kind'],
      registers,
      collect() {
        const m = process.memoryUsage();
        this.set({ kind: 'rss' }, m.rss);
        this.set({ kind: 'heap_used' }, m.heapUsed);
        this.set({ kind: 'heap_total' }, m.heapTotal);
        this.set({ kind: 'external' }, m.external);
      },
    });
  }

  /** Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
