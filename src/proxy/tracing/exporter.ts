/**
 * OTLP/HTTP protobuf export of finished spans (ADR 0085), shaped like the SDK's BatchSpanProcessor:
 * a bounded queue (a full queue drops and counts the span), batches of up to 512 sent when full or
 * every 5 s, one export in flight. The protobuf encoder is otlp-transformer's
 * ProtobufTraceSerializer, loaded on the first export (never in a proxy without tracing), fed
 * with the proxy's own span objects: the SDK's span, processor and exporter classes are not loaded.
 *
 * Where the spans go is the exporter's `cluster` (Envoy's http_uri.cluster): one of its endpoints
 * picked by the proxy's load balancer, as Envoy does, over plain HTTP/1.1.
 */
import { request } from 'node:http';
import type { Timers } from '../../mesh/timers.js';
import type { ClusterModel, EndpointModel, EndpointsModel, OtlpHttpExporterModel } from '../model.js';
import type { FinishedSpan } from './span.js';

export interface ExporterOptions {
  /** The cluster and its endpoints as the proxy has them now. */
  resolve: (cluster: string) => { cluster: ClusterModel | undefined; endpoints: EndpointsModel | undefined };
  pick: (cluster: ClusterModel, endpoints: EndpointsModel | undefined) => EndpointModel | undefined;
  count: (outcome: 'sent' | 'dropped' | 'failed', n: number) => void;
  timers: Timers;
  log?: (msg: string) => void;
  maxQueueSize?: number;
  maxBatchSize?: number;
  scheduledDelayMs?: number;
  /** Tests: send the encoded body elsewhere. Default: HTTP POST to the picked endpoint. */
  send?: (body: Uint8Array, to: { address: string; port: number }, cfg: OtlpHttpExporterModel) => Promise<number>;
}

interface Serializer {
  serializeRequest(spans: readonly FinishedSpan[]): Uint8Array | undefined;
}

let serializer: Promise<Serializer> | undefined;

/** otlp-transformer's trace serializer alone: its package index also loads logs and metrics (ADR 0085). */
export function loadSerializer(): Promise<Serializer> {
  serializer ??= import('@opentelemetry/otlp-transformer/build/src/trace/protobuf/index.js' as string).then(
    (m: { ProtobufTraceSerializer?: Serializer; default?: { ProtobufTraceSerializer: Serializer } }) => (m.ProtobufTraceSerializer ?? m.default!.ProtobufTraceSerializer),
  );
  return serializer;
}

function post(body: Uint8Array, to: { address: string; port: number }, cfg: OtlpHttpExporterModel): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'content-type': 'application/x-protobuf', 'content-length': body.length, host: cfg.authority };
    for (const [k, v] of cfg.headers) headers[k] = v;
    const req = request({ host: to.address, port: to.port, method: 'POST', path: cfg.path, headers, timeout: cfg.timeoutMs, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${cfg.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export class OtlpExporter {
  private queue: FinishedSpan[] = [];
  private timer: unknown = undefined;
  private inFlight = false;
  private warned = false;
  private readonly maxQueue: number;
  private readonly maxBatch: number;
  private readonly delayMs: number;

  constructor(
    readonly cfg: OtlpHttpExporterModel,
    private readonly o: ExporterOptions,
  ) {
    this.maxQueue = o.maxQueueSize ?? 2048;
    this.maxBatch = o.maxBatchSize ?? 512;
    this.delayMs = o.scheduledDelayMs ?? 5000;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Queues a finished, sampled span; drops (and counts) it when the queue is full. */
  enqueue(span: FinishedSpan): void {
    if (this.queue.length >= this.maxQueue) {
      this.o.count('dropped', 1);
      return;
    }
    this.queue.push(span);
    if (this.queue.length >= this.maxBatch) void this.flush();
    else if (this.timer === undefined) this.timer = this.o.timers.setTimeout(() => void this.flush(), this.delayMs);
  }

  /** Sends what is queued, batch after batch; resolves when the queue is empty or an export failed. */
  async flush(): Promise<void> {
    if (this.timer !== undefined) {
      this.o.timers.clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.inFlight) return;
    this.inFlight = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        if (!(await this.exportBatch(batch))) break;
      }
    } finally {
      this.inFlight = false;
      if (this.queue.length > 0 && this.timer === undefined) this.timer = this.o.timers.setTimeout(() => void this.flush(), this.delayMs);
    }
  }

  private async exportBatch(batch: FinishedSpan[]): Promise<boolean> {
    const fail = (why: string): boolean => {
      this.o.count('failed', batch.length);
      if (!this.warned) {
        this.warned = true;
        this.o.log?.(`isle proxy: tracing: exporting ${batch.length} span(s) to cluster ${this.cfg.cluster} failed: ${why} (further failures are counted in envoy_tracing_opentelemetry_spans{outcome="failed"})`);
      }
      return false;
    };
    const { cluster, endpoints } = this.o.resolve(this.cfg.cluster);
    if (!cluster) return fail(`no cluster ${JSON.stringify(this.cfg.cluster)}`);
    if (cluster.tls) return fail('the cluster uses TLS; isle proxy exports OTLP/HTTP in plaintext only');
    const ep = this.o.pick(cluster, endpoints);
    if (!ep) return fail('no healthy endpoint');
    try {
      const body = (await loadSerializer()).serializeRequest(batch);
      if (!body) return fail('the spans could not be encoded');
      const status = await (this.o.send ?? post)(body, { address: ep.address, port: ep.port }, this.cfg);
      if (status < 200 || status > 299) return fail(`HTTP ${status} from ${ep.address}:${ep.port}${this.cfg.path}`);
    } catch (e) {
      return fail(e instanceof Error ? e.message : String(e));
    }
    this.warned = false;
    this.o.count('sent', batch.length);
    return true;
  }

  /** Stops the timer (the proxy is shutting down); queued spans are sent by a last flush. */
  close(): Promise<void> {
    return this.flush();
  }
}
