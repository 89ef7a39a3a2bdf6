/**
 * The tracer of one proxy (ADR 0085): the sampling decision and context propagation of each
 * request, and the finished-span hand-off to the exporter named by the HCM's tracing config.
 * Exporters live as long as their config: an xDS update that keeps the same exporter config keeps
 * its queue and counters.
 */
import { realTimers } from '../../mesh/timers.js';
import type { Headers } from '../http1/head.js';
import type { ListenerDeps } from '../listeners/context.js';
import type { TracingModel } from '../model.js';
import { bareSamplingDecision, extractContext, IdSource, injectContext } from './context.js';
import { OtlpExporter } from './exporter.js';
import { FinishedSpan, isError, spanAttributes, type ActiveSpan, type SpanFacts } from './span.js';

export class Tracer {
  readonly ids = new IdSource();
  private readonly exporters = new Map<string, OtlpExporter>();
  private readonly resources = new Map<string, { attributes: Record<string, string> }>();

  constructor(private readonly deps: ListenerDeps) {}

  /**
   * Continues or starts the trace of a request: our span's context replaces the incoming one in
   * `h`. Returns the span to finish when sampled; an unsampled request costs only this.
   */
  start(h: Headers, tracing: TracingModel, random: () => number, nowMs: number): ActiveSpan | undefined {
    const incoming = extractContext(h);
    let sampled = incoming?.sampled ?? bareSamplingDecision(h);
    if (sampled === undefined) {
      const p = tracing.randomSamplingPercent;
      sampled = p >= 100 || (p > 0 && random() * 100 < p);
    }
    const traceId = incoming?.traceId ?? this.ids.traceId();
    const spanId = this.ids.spanId();
    injectContext(h, { traceId, spanId, sampled }, incoming);
    if (!sampled) return undefined;
    return { traceId, spanId, parentSpanId: incoming?.parentSpanId, traceState: incoming?.traceState, startMs: nowMs, tracing };
  }

  finish(span: ActiveSpan, facts: SpanFacts): FinishedSpan {
    const id = this.deps.identity;
    const attrs = spanAttributes(facts, { nodeId: id?.nodeId ?? '', zone: id?.zone }, span.tracing);
    const cfg = span.tracing.exporter;
    let resource = this.resources.get(cfg.serviceName);
    if (!resource) this.resources.set(cfg.serviceName, (resource = { attributes: { 'service.name': cfg.serviceName } }));
    const done = new FinishedSpan(span, facts.name, facts.inbound, facts.durationMs, attrs, isError(facts.status), resource);
    this.exporter(span.tracing).enqueue(done);
    return done;
  }

  exporter(tracing: TracingModel): OtlpExporter {
    const cfg = tracing.exporter;
    let e = this.exporters.get(cfg.key);
    if (!e) {
      const deps = this.deps;
      e = new OtlpExporter(cfg, {
        resolve: (name) => {
          const g = deps.config();
          return { cluster: g.clusters.get(name), endpoints: g.endpoints.get(name) };
        },
        pick: (cluster, endpoints) => deps.pick(cluster, endpoints, { previous: new Set(), avoidPrevious: false, attempt: 1 }),
        count: (outcome, n) => deps.stats.tracingSpans.inc({ outcome }, n),
        timers: deps.timers ?? realTimers,
        ...(deps.log ? { log: deps.log } : {}),
      });
      this.exporters.set(cfg.key, e);
    }
    return e;
  }

  /** Sends every queued span (shutdown, tests). */
  async flush(): Promise<void> {
    await Promise.all([...this.exporters.values()].map((e) => e.flush()));
  }
}

const tracers = new WeakMap<ListenerDeps, Tracer>();

/** The tracer of these listeners (one per proxy). */
export function tracerOf(deps: ListenerDeps): Tracer {
  let t = tracers.get(deps);
  if (!t) tracers.set(deps, (t = new Tracer(deps)));
  return t;
}

/** Flushes the proxy's exporters, if it ever traced. */
export function flushTracing(deps: ListenerDeps): Promise<void> {
  return tracers.get(deps)?.flush() ?? Promise.resolve();
}
