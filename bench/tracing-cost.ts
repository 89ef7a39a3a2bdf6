/**
 * Micro-benchmark of the per-request work of the standard metrics and of tracing (ADR 0085),
 * in-process, no sockets: what a sidecar adds per request on top of its HTTP and TLS work.
 *
 *   node dist/bench/tracing-cost.js [iterations=200000]
 *
 * Rows: metrics (one request record), tracing unsampled (context parsed, new span id, headers
 * written), tracing sampled (the same + span attributes + queueing + OTLP protobuf encoding of
 * the batches; the HTTP POST is replaced by a no-op), at sampling 1.0 and 0.01. Also: the memory
 * and time of loading the OTLP encoder (what a proxy pays once, only when tracing is configured).
 */
import { ManualTimers } from '../src/mesh/timers.js';
import type { ListenerDeps } from '../src/proxy/listeners/context.js';
import type { TracingModel } from '../src/proxy/model.js';
import { ProxyStats, type RequestRecord } from '../src/proxy/stats.js';
import { loadSerializer } from '../src/proxy/tracing/exporter.js';
import type { SpanFacts } from '../src/proxy/tracing/span.js';
import { Tracer } from '../src/proxy/tracing/tracer.js';
import type { UpstreamPools } from '../src/proxy/upstream/pool.js';

const N = Number(process.argv[2] ?? 200_000);

function tracing(percent: number): TracingModel {
  const exporter = { cluster: 'otel', path: '/v1/traces', authority: 'otel:4318', timeoutMs: 5000, headers: [], serviceName: 'sleep.default' };
  const literal = (tag: string, value: string) => ({ tag, kind: 'literal' as const, value });
  return {
    randomSamplingPercent: percent,
    exporter: { key: `bench-${percent}`, ...exporter },
    customTags: [literal('istio.canonical_revision', 'latest'), literal('istio.canonical_service', 'sleep'), literal('istio.cluster_id', 'cluster-1'), literal('istio.mesh_id', 'cluster.local'), literal('istio.namespace', 'default')],
    maxPathTagLength: 256,
  };
}

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

async function main(): Promise<void> {
  const mem0 = process.memoryUsage().rss;
  const t0 = performance.now();
  await loadSerializer();
  console.log(`OTLP encoder load (first export): ${(performance.now() - t0).toFixed(1)} ms, RSS +${((process.memoryUsage().rss - mem0) / 2 ** 20).toFixed(1)} MB`);

  const stats = new ProxyStats();
  const timers = new ManualTimers();
  const deps: ListenerDeps = {
    config: () => ({ listeners: new Map(), routes: new Map(), clusters: new Map(), endpoints: new Map(), secrets: new Map(), warnings: [] }),
    stats,
    pools: {} as UpstreamPools,
    pick: () => undefined,
    timers,
    identity: { nodeId: 'sidecar~127.0.0.1~sleep.default~default.svc.cluster.local', zone: 'zone1' },
  };
  const tracer = new Tracer(deps);
  const headers = (): Record<string, string> => ({ host: 'helloworld:5000', 'user-agent': 'hey/0.0.1', 'x-request-id': '2f7a1c4e-8b0d-4e1f-9a3b-5c6d7e8f9a0b', accept: '*/*' });
  const facts = (h: Record<string, string>): SpanFacts => ({
    inbound: false, protocol: 'HTTP/1.1', method: 'GET', scheme: 'http', authority: 'helloworld:5000', path: '/', requestHeaders: h, status: 200, responseFlags: '-',
    requestSize: 0, responseSize: 1100, durationMs: 0.8, upstreamCluster: 'outbound|5000||helloworld.default.svc.cluster.local', peerAddress: '127.0.0.1', name: 'helloworld.default.svc.cluster.local:5000/*',
  });
  const serializer = await loadSerializer();
  let encodedBytes = 0;

  const measure = (name: string, fn: (i: number) => void): void => {
    for (let i = 0; i < Math.min(N, 20_000); i++) fn(i); // warm-up (JIT)
    const c0 = cpuUs();
    for (let i = 0; i < N; i++) fn(i);
    console.log(`${name.padEnd(44)} ${((cpuUs() - c0) / N).toFixed(2)} µs CPU per request`);
  };

  const rec: RequestRecord = { reporter: 'source', responseCode: 200, responseFlags: '-', durationMs: 0.8, requestBytes: 120, responseBytes: 1100 };
  measure('metrics (istio_* request record)', () => stats.recordRequest(rec));
  let rnd = 0;
  const random = () => (rnd = (rnd + 0.6180339887) % 1);
  for (const [name, pct] of [['tracing on, unsampled (sampling 0)', 0], ['tracing, sampling 0.01', 1], ['tracing, sampling 1.0', 100]] as const) {
    const tr = tracing(pct);
    // The exporter's batches are encoded (real serializer) and dropped instead of POSTed.
    const batch: Parameters<typeof serializer.serializeRequest>[0][number][] = [];
    measure(name, () => {
      const h = headers();
      const span = tracer.start(h, tr, random, Date.now());
      if (!span) return;
      const done = tracer.finish(span, facts(h));
      batch.push(done);
      if (batch.length === 512) {
        encodedBytes += serializer.serializeRequest(batch)?.length ?? 0;
        batch.length = 0;
      }
    });
    // Keep the tracer's own exporter queue from growing (its timer never fires here).
    (tracer.exporter(tr) as unknown as { queue: unknown[] }).queue.length = 0;
  }
  measure('baseline: the header object alone', () => void headers());
  console.log(`(${N} iterations each; ${(encodedBytes / 1024).toFixed(0)} KiB encoded; load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')})`);
}

void main();
