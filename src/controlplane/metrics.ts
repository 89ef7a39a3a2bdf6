/**
 * The control plane's Prometheus metrics, on a registry of its own (never prom-client's global
 * one), so several control planes in one process (tests, the demo) do not mix their numbers.
 * Names follow Istio's pilot metrics where there is one (`pilot_xds_pushes` → `isle_xds_pushes_total`).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Seconds: from 1 ms to 30 s, dense around the 100 ms debounce and the 1 s target. */
const PUSH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const CONVERGENCE_BUCKETS = [0.01, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5, 10, 30];


export class ControlPlaneMetrics {
  readonly registry = new Registry();
  readonly connectedProxies: Gauge;
  readonly pushes: Counter<'type' | 'reason'>;
  readonly pushDuration: Histogram<'kind'>;
  readonly convergence: Histogram;
  readonly nacks: Counter<'type'>;
  readonly configErrors: Gauge;

  constructor() {
    const registers = [this.registry];
    this.connectedProxies = new Gauge({ name: 'isle_xds_connected_proxies', help: 'xDS streams open and identified (one per proxy connection)', registers });
    this.pushes = new Counter({
      name: 'isle_xds_pushes_total',
      help: 'Proxy snapshots whose version of a type changed (each one is sent to that proxy), by xDS type and reason',
      labelNames: ['type', 'reason'],
      registers,
    });
    this.pushDuration = new Histogram({
      name: 'isle_push_duration_seconds',
      help: 'Time to build a PushContext and regenerate the snapshots of every affected proxy (kind: full or eds)',
      labelNames: ['kind'],
      buckets: PUSH_BUCKETS,
      registers,
    });
    this.convergence = new Histogram({
      name: 'isle_proxy_convergence_seconds',
      help: 'From a change being seen (config event or registry change) to the proxy ACKing the version that carries it',
      buckets: CONVERGENCE_BUCKETS,
      registers,
    });
    this.nacks = new Counter({ name: 'isle_xds_nacks_total', help: 'Responses rejected by proxies, by xDS type', labelNames: ['type'], registers });
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
