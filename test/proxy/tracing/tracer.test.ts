/**
 * The tracer without sockets: sampling (random, or the caller's decision), a malformed context
 * starting a new trace, spans encoded by otlp-transformer's serializer and decoded back with an
 * independent schema (test/helpers/otlp.ts), the bounded queue dropping and counting, failures
 * counted; then a real OTLP/HTTP POST to the test receiver.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualTimers } from '../../../src/mesh/timers.js';
import type { ListenerDeps } from '../../../src/proxy/listeners/context.js';
import type { TracingModel } from '../../../src/proxy/model.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { OtlpExporter } from '../../../src/proxy/tracing/exporter.js';
import type { SpanFacts } from '../../../src/proxy/tracing/span.js';
import { Tracer } from '../../../src/proxy/tracing/tracer.js';
import type { UpstreamPools } from '../../../src/proxy/upstream/pool.js';
import { decodeExport, startOtlpReceiver } from '../../helpers/otlp.js';
import { cluster, emptyGraph, endpoint, endpoints, roundRobinPicker } from '../net/fixtures.js';

function tracing(percent: number, clusterName = 'otel'): TracingModel {
  const exporter = { cluster: clusterName, path: '/v1/traces', authority: 'otel:4318', timeoutMs: 2000, headers: [['x-tenant', 't1']] as const, serviceName: 'sleep.default' };
  return { randomSamplingPercent: percent, exporter: { key: JSON.stringify(exporter), ...exporter }, customTags: [{ tag: 'istio.namespace', kind: 'literal', value: 'default' }, { tag: 'team', kind: 'header', name: 'x-team', defaultValue: 'none' }], maxPathTagLength: 32 };
}

function deps(address = '127.85.0.1', port = 4318): { deps: ListenerDeps; stats: ProxyStats; timers: ManualTimers } {
  const graph = emptyGraph();
  graph.clusters.set('otel', cluster('otel'));
  graph.endpoints.set('otel', endpoints('otel', [endpoint(address, port)]));
  const stats = new ProxyStats();
  const timers = new ManualTimers();
  return { deps: { config: () => graph, stats, pools: {} as UpstreamPools, pick: roundRobinPicker(), timers, identity: { nodeId: 'sidecar~10.0.0.1~sleep.default~default.svc.cluster.local', zone: 'zone1' } }, stats, timers };
}

const facts = (h: Record<string, string>): SpanFacts => ({
  inbound: false, protocol: 'HTTP/1.1', method: 'GET', scheme: 'http', authority: 'helloworld:5000', path: '/hello/a/very/long/path/indeed', requestHeaders: h,
  status: 503, responseFlags: 'UH', requestSize: 0, responseSize: 19, durationMs: 2.5, upstreamCluster: 'outbound|5000||helloworld.default.svc.cluster.local',
  peerAddress: '10.0.0.1', name: 'helloworld.default.svc.cluster.local:5000/*',
});

async function counter(stats: ProxyStats, outcome: string): Promise<number> {
  const m = await stats.tracingSpans.get();
  return m.values.find((v) => v.labels['outcome'] === outcome)?.value ?? 0;
}

test('sampling: random percentage for new traces, the caller\'s decision otherwise; unsampled requests only propagate', () => {
  const { deps: d } = deps();
  const t = new Tracer(d);
  const rnd = (v: number) => () => v;
  const h1: Record<string, string> = {};
  assert.ok(t.start(h1, tracing(1), rnd(0.005), 0), '0.5 < 1 %: sampled');
  assert.match(h1['traceparent']!, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  const h2: Record<string, string> = {};
  assert.equal(t.start(h2, tracing(1), rnd(0.5), 0), undefined, '50 ≥ 1 %: not sampled');
  assert.match(h2['traceparent']!, /-00$/, 'the decision travels on');
  assert.equal(t.start({}, tracing(0), rnd(0), 0), undefined);
  assert.ok(t.start({}, tracing(100), rnd(0.9999), 0));
  // The caller decided: that wins over the percentage, both ways.
  const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
  const h3: Record<string, string> = { traceparent: `00-${TRACE}-00f067aa0ba902b7-01` };
  const s3 = t.start(h3, tracing(0), rnd(0.9), 0);
  assert.equal(s3?.traceId, TRACE);
  assert.equal(s3?.parentSpanId, '00f067aa0ba902b7');
  assert.equal(h3['traceparent'], `00-${TRACE}-${s3.spanId}-01`);
  assert.equal(t.start({ traceparent: `00-${TRACE}-00f067aa0ba902b7-00` }, tracing(100), rnd(0), 0), undefined);
  // A malformed context: a new trace, not a crash.
  const h4: Record<string, string | string[]> = { traceparent: '00-zzzz-broken', b3: '---', 'x-b3-traceid': 'nope' };
  const s4 = t.start(h4, tracing(100), rnd(0), 0);
  assert.ok(s4 && s4.parentSpanId === undefined && s4.traceId !== TRACE);
  assert.match(String(h4['traceparent']), new RegExp(`^00-${s4.traceId}-${s4.spanId}-01$`));
});

test('spans: Envoy/Istio tags, encoded by otlp-transformer and decoded by an independent schema', async () => {
  const { deps: d, stats } = deps();
  const bodies: Uint8Array[] = [];
  const t = new Tracer(d);
  const tr = tracing(100);
  const h: Record<string, string> = { 'x-request-id': 'rid-1', 'user-agent': 'curl/8', 'x-team': 'payments' };
  const span = t.start(h, tr, () => 0, 1_700_000_000_123)!;
  // Route the export to memory.
  const e = t.exporter(tr) as unknown as { o: { send: unknown } };
  e.o.send = (body: Uint8Array) => {
    bodies.push(body);
    return Promise.resolve(200);
  };
  t.finish(span, facts(h));
  await t.flush();
  assert.equal(bodies.length, 1);
  const [got] = decodeExport(bodies[0]!);
  assert.equal(got!.traceId, span.traceId);
  assert.equal(got!.spanId, span.spanId);
  assert.equal(got!.parentSpanId, '');
  assert.equal(got!.kind, 3, 'CLIENT');
  assert.equal(got!.statusCode, 2, '503 is an error span');
  assert.equal(got!.service, 'sleep.default');
  assert.equal(got!.startNs, 1_700_000_000_123_000_000n);
  assert.equal(got!.endNs - got!.startNs, 2_500_000n);
  assert.deepEqual(got!.attributes, {
    component: 'proxy',
    node_id: 'sidecar~10.0.0.1~sleep.default~default.svc.cluster.local',
    zone: 'zone1',
    'guid:x-request-id': 'rid-1',
    'http.url': 'http://helloworld:5000/hello/a/v',
    'http.method': 'GET',
    'http.protocol': 'HTTP/1.1',
    downstream_cluster: '-',
    user_agent: 'curl/8',
    'peer.address': '10.0.0.1',
    request_size: '0',
    response_size: '19',
    response_flags: 'UH',
    'http.status_code': '503',
    upstream_cluster: 'outbound|5000||helloworld.default.svc.cluster.local',
    'upstream_cluster.name': 'outbound|5000||helloworld.default.svc.cluster.local',
    error: 'true',
    'istio.namespace': 'default',
    team: 'payments',
  });
  assert.equal(await counter(stats, 'sent'), 1);
});

test('exporter: a bounded queue drops and counts; batches go out when full or on the timer; failures are counted', async () => {
  const { deps: d, stats, timers } = deps();
  const sent: number[] = [];
  const ok = { status: 200 };
  const t = new Tracer(d);
  const tr = tracing(100);
  const e = new OtlpExporter(tr.exporter, {
    resolve: (n) => ({ cluster: d.config().clusters.get(n), endpoints: d.config().endpoints.get(n) }),
    pick: (c, eps) => d.pick(c, eps, { previous: new Set(), avoidPrevious: false, attempt: 1 }),
    count: (outcome, n) => d.stats.tracingSpans.inc({ outcome }, n),
    timers,
    maxQueueSize: 3,
    maxBatchSize: 2,
    scheduledDelayMs: 1000,
    send: (body) => {
      sent.push(decodeExport(body).length);
      return Promise.resolve(ok.status);
    },
  });
  const span = () => t.finish(t.start({}, tr, () => 0, 0)!, facts({}));
  // Spans finished through the tracer go to its own exporter; feed this one directly.
  e.enqueue(span());
  assert.equal(sent.length, 0, 'one span waits for the timer');
  timers.advance(1000);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(sent, [1]);
  // The export is held up: the queue fills to 3, then drops.
  ok.status = 503;
  for (let i = 0; i < 8; i++) e.enqueue(span());
  await e.flush();
  assert.ok(await counter(stats, 'dropped') >= 1, 'a full queue drops');
  assert.ok(await counter(stats, 'failed') >= 1, 'a 503 from the collector counts as failed');
  // No cluster: failed, not thrown.
  const lost = new OtlpExporter({ ...tr.exporter, cluster: 'nowhere' }, { resolve: () => ({ cluster: undefined, endpoints: undefined }), pick: () => undefined, count: (o, n) => d.stats.tracingSpans.inc({ outcome: o }, n), timers });
  lost.enqueue(span());
  await lost.flush();
  assert.equal(lost.queued, 0);
});

test('OTLP/HTTP: a real POST to a receiver on loopback', async (t) => {
  const receiver = await startOtlpReceiver('127.85.0.2');
  t.after(() => receiver.close());
  const port = Number(new URL(receiver.url).port);
  const { deps: d, stats } = deps('127.85.0.2', port);
  const tracer = new Tracer(d);
  const tr = tracing(100);
  const h: Record<string, string> = {};
  const s = tracer.start(h, tr, () => 0, Date.now())!;
  tracer.finish(s, facts(h));
  await tracer.flush();
  assert.deepEqual(receiver.rejected, []);
  assert.deepEqual(receiver.spans.map((x) => x.spanId), [s.spanId]);
  assert.equal(await counter(stats, 'sent'), 1);
});
