/**
 * The HTTP filter chain without sockets: a fake downstream, a scripted upstream pool and a manual
 * clock, so retries, per-try and route timeouts, faults, RBAC and the outcome table are checked
 * step by step.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ManualTimers } from '../../../src/mesh/timers.js';
import type { AuthzConnection, AuthzRequest, HttpAuthorizer } from '../../../src/proxy/authz.js';
import type { AccessLogEntry, AccessLogModel } from '../../../src/proxy/accesslog.js';
import { OUTCOMES } from '../../../src/proxy/filters/outcomes.js';
import type { RequestHead } from '../../../src/proxy/http1/head.js';
import type { ConnInfo, ListenerDeps } from '../../../src/proxy/listeners/context.js';
import { handleRequest, HTTP_FILTERS } from '../../../src/proxy/listeners/http.js';
import type { ConfigGraph, FaultModel, RetryPolicyModel } from '../../../src/proxy/model.js';
import { route as routeFn } from '../../../src/proxy/routing/router.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import type { AttemptOutcome, UpstreamPools, UpstreamRequest } from '../../../src/proxy/upstream/pool.js';
import { FakeDownstream, response } from './fakes.js';
import { chain, cluster, emptyGraph, endpoint, endpoints, forward, hcm, retryPolicy, roundRobinPicker, route, routeConfig, vhost } from '../net/fixtures.js';

/** An attempt that never answers; it ends only when its signal fires. */
function hang(req: UpstreamRequest): Promise<AttemptOutcome> {
  return new Promise((resolve) => req.signal?.addEventListener('abort', () => resolve({ kind: 'aborted' })));
}

type Step = AttemptOutcome | ((req: UpstreamRequest) => Promise<AttemptOutcome>);

interface Setup {
  ds: FakeDownstream;
  stats: ProxyStats;
  timers: ManualTimers;
  sent: UpstreamRequest[];
  done: Promise<void>;
}

function run(opts: { retry?: RetryPolicyModel | null; timeoutMs?: number; steps: Step[]; fault?: FaultModel; authorize?: HttpAuthorizer; noEndpoints?: boolean; headers?: Record<string, string>; accessLogs?: AccessLogModel[] }): Setup {
  const graph = emptyGraph();
  const c = cluster('c');
  graph.clusters.set('c', c);
  if (!opts.noEndpoints) graph.endpoints.set('c', endpoints('c', [endpoint('10.0.0.1', 80), endpoint('10.0.0.2', 80)]));
  const rc = routeConfig('rc', [
    vhost('v', ['*'], [route('/', forward('c', { timeoutMs: opts.timeoutMs ?? 15_000, retryPolicy: opts.retry ?? null }), opts.fault ? { fault: opts.fault } : {})]),
  ]);
  const stats = new ProxyStats();
  const timers = new ManualTimers();
  const sent: UpstreamRequest[] = [];
  const steps = [...opts.steps];
  const pools = {
    send: (req: UpstreamRequest) => {
      sent.push({ ...req, headers: { ...req.headers } });
      const s = steps.shift();
      if (!s) throw new Error('unexpected attempt');
      return typeof s === 'function' ? s(req) : Promise.resolve(s);
    },
  } as unknown as UpstreamPools;
  const deps: ListenerDeps = {
    config: () => graph as ConfigGraph,
    stats,
    pools,
    pick: roundRobinPicker(),
    random: () => 0.5,
    timers,
    router: (config, r) => routeFn(config, r, { random: () => 0.5 }),
    ...(opts.authorize ? { authorize: opts.authorize } : {}),
  };
  const conn: ConnInfo = {
    listener: 'virtualOutbound',
    direction: 'OUTBOUND',
    chain: chain('', { kind: 'http', hcm: hcm({ kind: 'inline', config: rc }) }),
    hcm: hcm({ kind: 'inline', config: rc }, { httpFilters: ['envoy.filters.http.fault', 'envoy.filters.http.rbac', 'envoy.filters.http.router'], ...(opts.accessLogs ? { accessLogs: opts.accessLogs } : {}) }),
    mtls: false,
    peerId: undefined,
    peerCertHash: undefined,
    ownId: undefined,
    destinationPort: 15001,
  };
  const head: RequestHead = { method: 'GET', target: '/hello', minor: 1, headers: { host: 'svc', 'x-request-id': 'fixed', ...opts.headers } };
  const ds = new FakeDownstream();
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  handleRequest(deps, conn, head, ds, resolveDone);
  return { ds, stats, timers, sent, done };
}

/** Lets the promise chain between timer steps run. */
const settle = () => new Promise((r) => setImmediate(r));

test('the chain is in Envoy order: stats, tracing, fault, rbac, headers, rate limits, router, retry, per-try timeout, upstream', () => {
  assert.deepEqual(
    HTTP_FILTERS.map((f) => f.name),
    ['statsFilter', 'tracingFilter', 'faultFilter', 'rbacFilter', 'headersFilter', 'rateLimitFilter', 'routerFilter', 'retryFilter', 'perTryTimeoutFilter', 'upstreamFilter'],
  );
});

test('per-try timeout, then a retry after back-off on another attempt succeeds', async () => {
  const s = run({ retry: retryPolicy(['5xx'], 2, { perTryTimeoutMs: 100, backoffBaseMs: 20, backoffMaxMs: 40 }), steps: [hang, response(200)] });
  await settle();
  assert.equal(s.sent.length, 1);
  assert.equal(s.sent[0]!.headers['x-envoy-attempt-count'], '1');
  s.timers.advance(99);
  await settle();
  assert.equal(s.sent.length, 1, 'still waiting before the per-try timeout');
  s.timers.advance(1);
  await settle();
  // Back-off: random 0.5 × min(20 · 2^0, 40) = 10 ms.
  assert.equal(s.sent.length, 1);
  s.timers.advance(10);
  await settle();
  await s.done;
  assert.equal(s.sent.length, 2);
  assert.equal(s.sent[1]!.headers['x-envoy-attempt-count'], '2');
  assert.equal(s.ds.status, 200);
  assert.equal(s.ds.body, 'status 200');
  assert.equal(s.ds.headers['x-up'], 'yes');
  const m = await s.stats.metrics();
  assert.match(m, /envoy_cluster_upstream_rq_per_try_timeout\{cluster_name="c"\} 1/);
  assert.match(m, /envoy_cluster_upstream_rq_retry\{cluster_name="c"\} 1/);
  assert.match(m, /istio_requests_total\{[^}]*response_code="200",[^}]*response_flags="-"/);
});

test('route timeout over all attempts: 504 UT, the attempt in flight is cancelled', async () => {
  const s = run({ retry: retryPolicy(['5xx'], 5), timeoutMs: 250, steps: [hang] });
  await settle();
  s.timers.advance(249);
  await settle();
  assert.equal(s.ds.status, 0);
  s.timers.advance(1);
  await s.done;
  assert.equal(s.ds.status, 504);
  assert.equal(s.ds.body, 'upstream request timeout\n');
  const m = await s.stats.metrics();
  assert.match(m, /envoy_cluster_upstream_rq_timeout\{cluster_name="c"\} 1/);
  assert.match(m, /istio_requests_total\{[^}]*response_code="504",[^}]*response_flags="UT"/);
  assert.equal(s.timers.size, 0, 'no timer left behind');
});

test('retries exhausted on connect failures: 503 UF,URX with Envoy text', async () => {
  const cf: AttemptOutcome = { kind: 'connect-failure', detail: 'ECONNREFUSED: refused' };
  const s = run({ retry: retryPolicy(['connect-failure'], 2, { backoffBaseMs: 10 }), steps: [cf, cf, cf] });
  for (let i = 0; i < 5; i++) {
    await settle();
    s.timers.advance(20);
  }
  await s.done;
  assert.equal(s.sent.length, 3);
  assert.equal(s.ds.status, 503);
  assert.equal(s.ds.body, 'upstream connect error or disconnect/reset before headers. retried and the latest reset reason: connection failure\n');
  assert.match(await s.stats.metrics(), /response_code="503",[^}]*response_flags="UF,URX"/);
});

test('a retriable 5xx is retried; when retries run out the last response is passed through with URX', async () => {
  const s = run({ retry: retryPolicy(['5xx'], 1, { backoffBaseMs: 2 }), steps: [response(503, 'first'), response(502, 'second')] });
  await settle();
  s.timers.advance(5);
  await s.done;
  assert.equal(s.ds.status, 502);
  assert.equal(s.ds.body, 'second');
  assert.match(await s.stats.metrics(), /response_code="502",[^}]*response_flags="URX"/);
});

test('no retry policy: one attempt, a reset is 503 UC', async () => {
  const s = run({ steps: [{ kind: 'reset', detail: 'ECONNRESET' }] });
  await s.done;
  assert.equal(s.sent.length, 1);
  assert.equal(s.sent[0]!.headers['x-envoy-attempt-count'], undefined);
  assert.equal(s.ds.status, 503);
  assert.match(s.ds.body, /reset reason: connection termination/);
});

test('no endpoints: 503 UH without an attempt', async () => {
  const s = run({ steps: [], noEndpoints: true });
  await s.done;
  assert.equal(s.ds.status, 503);
  assert.equal(s.ds.body, 'no healthy upstream\n');
  assert.match(await s.stats.metrics(), /response_flags="UH"/);
});

test('the client going away while an attempt waits: DC, the attempt is cancelled', async () => {
  const s = run({ steps: [hang] });
  await settle();
  s.ds.close();
  await s.done;
  assert.match(await s.stats.metrics(), /response_code="0",[^}]*response_flags="DC"/);
});

test('fault filter: the delay runs on the request clock, then the abort answers with FI (and DI)', async () => {
  const fault: FaultModel = { delay: { fixedDelayMs: 300, fraction: { numerator: 100, denominator: 100 } }, abort: { httpStatus: 418, fraction: { numerator: 100, denominator: 100 } } } as FaultModel;
  const s = run({ steps: [], fault });
  await settle();
  s.timers.advance(299);
  await settle();
  assert.equal(s.ds.status, 0);
  s.timers.advance(1);
  await s.done;
  assert.equal(s.ds.status, 418);
  assert.equal(s.ds.body, 'fault filter abort\n');
  assert.match(await s.stats.metrics(), /response_code="418",[^}]*response_flags="DI,FI"/);
});

test('RBAC slot: the authorizer sees the request head and connection facts; a denial is 403', async () => {
  let seen: { req: AuthzRequest; conn: AuthzConnection } | undefined;
  const deny: HttpAuthorizer = (req, conn) => {
    seen = { req, conn };
    return { allow: false, policy: 'ns/deny-all' };
  };
  const s = run({ steps: [], authorize: deny });
  await s.done;
  assert.equal(s.ds.status, 403);
  assert.equal(s.ds.body, 'RBAC: access denied\n');
  assert.equal(seen!.req.method, 'GET');
  assert.equal(seen!.req.path, '/hello');
  assert.equal(seen!.req.host, 'svc');
  assert.equal(seen!.conn.sourceIp, '10.1.2.3');
  assert.equal(seen!.conn.destinationPort, 15001);
  assert.equal(seen!.conn.peerPrincipal, undefined);

  const allowed = run({ steps: [response(200)], authorize: () => ({ allow: true }) });
  await allowed.done;
  assert.equal(allowed.ds.status, 200);
});

test('outcome table: every local reply has a status, and the flags are Envoy short names', () => {
  const flags = new Set(['', 'DPE', 'NR', 'NC', 'UH', 'UF', 'UC', 'UO', 'UT', 'FI', 'RL', 'RLSE']);
  for (const [name, row] of Object.entries(OUTCOMES)) {
    assert.ok(row.status >= 400 && row.status < 600, name);
    assert.ok(flags.has(row.flag), `${name}: ${row.flag}`);
  }
  assert.equal(OUTCOMES['headers-too-large'].status, 431);
});

// ------------------------------------------------------------------------------ gRPC local replies

const GRPC = { 'content-type': 'application/grpc' };
const ALWAYS = { numerator: 100, denominator: 100 };

/** A gRPC local reply: HTTP 200, no body, grpc-status/grpc-message in the (only) headers. */
function assertGrpcReply(s: Setup, code: number, message: string): void {
  assert.equal(s.ds.status, 200);
  assert.equal(s.ds.body, '');
  assert.equal(s.ds.headers['content-type'], 'application/grpc');
  assert.equal(s.ds.headers['grpc-status'], String(code));
  assert.equal(s.ds.headers['grpc-message'], message);
  assert.equal(s.ds.headers['content-length'], undefined);
}

test('gRPC request, no endpoints: trailers-only UNAVAILABLE (503 mapped), flag UH, grpc status in the stats and access log', async () => {
  const logged: AccessLogEntry[] = [];
  const log: AccessLogModel = { path: join(tmpdir(), `isle-ge-chain-${process.pid}.log`), encoding: 'TEXT', format: (e) => (logged.push(e), '') };
  const s = run({ steps: [], noEndpoints: true, headers: { ...GRPC }, accessLogs: [log] });
  await s.done;
  assertGrpcReply(s, 14, 'no healthy upstream');
  assert.match(await s.stats.metrics(), /request_protocol="grpc",response_code="200",grpc_response_status="14",response_flags="UH"/);
  assert.equal(logged.length, 1);
  assert.deepEqual({ code: logged[0]!.responseCode, grpc: logged[0]!.grpcStatus, flags: logged[0]!.responseFlags }, { code: 200, grpc: '14', flags: 'UH' });
  rmSync(log.path, { force: true });
});

test('gRPC request, route timeout: DEADLINE_EXCEEDED (Envoy), not the UNAVAILABLE 504 maps to', async () => {
  const s = run({ timeoutMs: 100, steps: [hang], headers: { 'content-type': 'application/grpc+proto' } });
  await settle();
  s.timers.advance(100);
  await s.done;
  assertGrpcReply(s, 4, 'upstream request timeout');
  assert.match(await s.stats.metrics(), /grpc_response_status="4",response_flags="UT"/);
});

test('gRPC request: connect failure → UNAVAILABLE with the percent-encoded reason; RBAC deny → PERMISSION_DENIED', async () => {
  const s = run({ steps: [{ kind: 'connect-failure', detail: 'ECONNREFUSED: 100% refused' }], headers: { ...GRPC } });
  await s.done;
  assertGrpcReply(s, 14, 'upstream connect error or disconnect/reset before headers. reset reason: connection failure');
  const d = run({ steps: [], authorize: () => ({ allow: false }), headers: { ...GRPC } });
  await d.done;
  assertGrpcReply(d, 7, 'RBAC: access denied');
});

test('fault abort: grpc_status answers a gRPC request with that status, anything else with HTTP 200 (Envoy)', async () => {
  const fault = { delay: undefined, abort: { httpStatus: 200, grpcStatus: 8, fraction: ALWAYS } } as FaultModel;
  const s = run({ steps: [], fault, headers: { ...GRPC } });
  await s.done;
  assertGrpcReply(s, 8, 'fault filter abort');
  assert.match(await s.stats.metrics(), /grpc_response_status="8",response_flags="FI"/);
  const plain = run({ steps: [], fault });
  await plain.done;
  assert.equal(plain.ds.status, 200);
  assert.equal(plain.ds.body, 'fault filter abort\n');
  // An HTTP-status abort of a gRPC request is mapped like any local reply: 401 → UNAUTHENTICATED.
  const http = run({ steps: [], fault: { delay: undefined, abort: { httpStatus: 401, fraction: ALWAYS } } as FaultModel, headers: { ...GRPC } });
  await http.done;
  assertGrpcReply(http, 16, 'fault filter abort');
});

test('gRPC-Web is not gRPC for local replies (its clients read the status from the body)', async () => {
  const s = run({ steps: [], noEndpoints: true, headers: { 'content-type': 'application/grpc-web+proto' } });
  await s.done;
  assert.equal(s.ds.status, 503);
});
