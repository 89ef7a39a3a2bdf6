/**
 * Fault injection and request mirroring in the proxy: the percentages follow Envoy's draw, the
 * decoders accept exactly what the VirtualService generator emits, and a mirror reaches a real
 * server without the caller waiting for it.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { decodeRouteConfig } from '../../../src/proxy/decode/route.js';
import type { ClusterModel, ConfigGraph, EndpointModel, HttpConnectionManagerModel, RouteConfigModel } from '../../../src/proxy/model.js';
import { decideFault, faultFor, hits } from '../../../src/proxy/routing/fault.js';
import { mirrorRequest, shadowHost } from '../../../src/proxy/routing/mirror.js';
import { route } from '../../../src/proxy/routing/router.js';

/** A deterministic random walking 0, 1/n, 2/n, … so n draws cover [0, 1) evenly. */
function sweep(n: number): () => number {
  let i = 0;
  return () => (i++ % n) / n;
}

const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';

function config(): RouteConfigModel {
  const r = decodeRouteConfig({
    name: '15001',
    virtual_hosts: [
      {
        name: 'hw',
        domains: ['hw'],
        routes: [
          {
            match: { prefix: '/' },
            route: {
              cluster: 'c',
              request_mirror_policies: [{ cluster: 'shadow', runtime_fraction: { default_value: { numerator: 500000, denominator: 'MILLION' } } }],
            },
            typed_per_filter_config: {
              'envoy.filters.http.fault': {
                '@type': FAULT,
                delay: { fixed_delay: '0.020s', percentage: { numerator: 125000, denominator: 'MILLION' } },
                abort: { http_status: 503, percentage: { numerator: 30, denominator: 'HUNDRED' } },
              },
            },
          },
        ],
      },
    ],
  });
  if ('errors' in r) assert.fail(r.errors.join('\n'));
  return r.ok;
}

test('decoder: fault per-route config and mirror policies', () => {
  const rt = config().virtualHosts[0]!.routes[0]!;
  assert.deepEqual(rt.fault, {
    delay: { fixedDelayMs: 20, fraction: { numerator: 125000, denominator: 1_000_000 } },
    abort: { httpStatus: 503, fraction: { numerator: 30, denominator: 100 } },
  });
  assert.equal(rt.action.kind, 'route');
  if (rt.action.kind === 'route') assert.deepEqual(rt.action.mirrorPolicies, [{ cluster: 'shadow', fraction: { numerator: 500000, denominator: 1_000_000 }, keepHost: false }]);
});

test('decoder: refuses what Isle would skip (other per-filter config, header faults); reads gRPC aborts', () => {
  const bad = (rt: Record<string, unknown>) => {
    const r = decodeRouteConfig({ name: 'x', virtual_hosts: [{ name: 'v', domains: ['v'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' }, ...rt }] }] });
    return 'errors' in r ? r.errors.join('\n') : '';
  };
  assert.match(bad({ typed_per_filter_config: { 'envoy.filters.http.rbac': { '@type': 'x' } } }), /not supported/);
  assert.match(bad({ typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FAULT, abort: { header_abort: {} } } } }), /header_abort: is not supported/);
  assert.match(bad({ typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FAULT, abort: { grpc_status: -1 } } } }), /grpc_status: -1 is out of range/);
  // A grpc_status abort is Envoy's HTTP 200 with that status for gRPC requests.
  const g = decodeRouteConfig({ name: 'x', virtual_hosts: [{ name: 'v', domains: ['v'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' }, typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FAULT, abort: { grpc_status: 14, percentage: { numerator: 100 } } } } }] }] });
  assert.ok('ok' in g);
  if ('ok' in g) {
    const abort = g.ok.virtualHosts[0]!.routes[0]!.fault!.abort!;
    assert.deepEqual({ httpStatus: abort.httpStatus, grpcStatus: abort.grpcStatus }, { httpStatus: 200, grpcStatus: 14 });
    assert.deepEqual(decideFault(g.ok.virtualHosts[0]!.routes[0]!.fault!, () => 0), { delayMs: 0, abortStatus: 200, abortGrpcStatus: 14 });
  }
  assert.match(bad({ typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FAULT, headers: [{ name: 'x' }] } } }), /headers: is not supported/);
  // An unset percentage never fires (Envoy's zero FractionalPercent).
  const r = decodeRouteConfig({ name: 'x', virtual_hosts: [{ name: 'v', domains: ['v'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' }, typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FAULT, abort: { http_status: 500 } } } }] }] });
  assert.ok('ok' in r);
  if ('ok' in r) assert.equal(r.ok.virtualHosts[0]!.routes[0]!.fault!.abort!.fraction.numerator, 0);
});

test('fault percentages: 12.5 % delays and 30 % aborts over an even sweep', () => {
  const f = config().virtualHosts[0]!.routes[0]!.fault!;
  const n = 10_000;
  const rnd = sweep(n);
  let delays = 0;
  let aborts = 0;
  for (let i = 0; i < n; i++) {
    // Two draws per request (delay, abort): each sweep covers both evenly over 2n requests.
    const d = decideFault(f, rnd);
    if (d.delayMs) delays++;
    if (d.abortStatus === 503) aborts++;
  }
  assert.ok(Math.abs(delays / n - 0.125) < 0.01, `delays ${delays}`);
  assert.ok(Math.abs(aborts / n - 0.3) < 0.01, `aborts ${aborts}`);
  assert.equal(hits({ numerator: 0, denominator: 100 }, () => 0), false);
  assert.equal(hits({ numerator: 100, denominator: 100 }, () => 0.999), true);
});

test('the fault applies only when the HCM has the fault filter', () => {
  const cfg = config();
  const decision = route(cfg, { authority: 'hw', path: '/', method: 'GET', headers: {} });
  const hcm = (filters: string[]) => ({ httpFilters: filters }) as unknown as HttpConnectionManagerModel;
  assert.equal(faultFor(hcm(['envoy.filters.http.router']), decision, () => 0), undefined);
  const d = faultFor(hcm(['envoy.filters.http.fault', 'envoy.filters.http.router']), decision, () => 0);
  assert.deepEqual(d, { delayMs: 20, abortStatus: 503 });
});

test('shadow host: -shadow before the port', () => {
  assert.equal(shadowHost('reviews:9080'), 'reviews-shadow:9080');
  assert.equal(shadowHost('reviews'), 'reviews-shadow');
  assert.equal(shadowHost('[::1]:80'), '[::1]-shadow:80');
});

test('mirroring reaches a real server with the body and a -shadow host; the caller does not wait', async () => {
  const got: { host?: string; body: string; path?: string }[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      got.push({ host: req.headers.host, body, path: req.url });
      // The mirror's response is slow: mirrorRequest must already have returned.
      void gate.then(() => res.end('ignored'));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const ep: EndpointModel = { key: `127.0.0.1:${port}`, address: '127.0.0.1', port, health: 'HEALTHY', weight: 1, hostname: undefined };
    const graph = { clusters: new Map([['shadow', { name: 'shadow' } as ClusterModel]]), endpoints: new Map() } as unknown as ConfigGraph;
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const send = (req: { method: string; path: string; headers: Record<string, string | string[]>; body: Buffer | null }, _c: ClusterModel, e: EndpointModel) =>
      new Promise<{ kind: string; response?: http.IncomingMessage }>((resolve) => {
        const r = http.request({ host: e.address, port: e.port, method: req.method, path: req.path, headers: req.headers }, (res) => {
          res.on('end', done);
          resolve({ kind: 'response', response: res });
        });
        r.on('error', () => resolve({ kind: 'reset' }));
        r.end(req.body ?? undefined);
      });
    const started = mirrorRequest(
      { graph, pick: () => ep, send, random: () => 0 },
      [
        { cluster: 'shadow', fraction: { numerator: 100, denominator: 100 }, keepHost: false },
        // Never fires, and an unknown cluster is skipped.
        { cluster: 'shadow', fraction: { numerator: 0, denominator: 100 }, keepHost: false },
        { cluster: 'nowhere', fraction: { numerator: 100, denominator: 100 }, keepHost: false },
      ],
      { method: 'POST', path: '/orders?id=7', headers: { host: 'orders:8080', 'content-length': '5' }, body: Buffer.from('hello') },
    );
    assert.equal(started, 1);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(got, [{ host: 'orders-shadow:8080', body: 'hello', path: '/orders?id=7' }]);
    release();
    await finished;
  } finally {
    release();
    server.close();
  }
});
