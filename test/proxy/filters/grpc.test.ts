/** gRPC pieces of the filters that need no sockets: grpc-timeout parsing and the deadline rule (ADR 0080). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeRouteConfig } from '../../../src/proxy/decode/index.js';
import { formatGrpcTimeout, grpcDeadlineMs, parseGrpcTimeout } from '../../../src/proxy/filters/grpc.js';
import type { ForwardActionModel } from '../../../src/proxy/model.js';
import { forward } from '../net/fixtures.js';

test('grpc-timeout: every unit of gRPC over HTTP/2, and malformed values ignored', () => {
  assert.equal(parseGrpcTimeout('2H'), 7_200_000);
  assert.equal(parseGrpcTimeout('3M'), 180_000);
  assert.equal(parseGrpcTimeout('5S'), 5000);
  assert.equal(parseGrpcTimeout('250m'), 250);
  assert.equal(parseGrpcTimeout('1500u'), 1.5);
  assert.equal(parseGrpcTimeout('2000000n'), 2);
  for (const bad of [undefined, '', '5', 's5', '123456789S', '1.5S', '5s', ['5S']]) assert.equal(parseGrpcTimeout(bad as string), undefined, String(bad));
  assert.equal(formatGrpcTimeout(199.2), '200m');
  assert.equal(formatGrpcTimeout(0.01), '1m');
});

test('the deadline: grpc-timeout capped by the route maximum; no maximum configured: grpc-timeout unused', () => {
  const act = (max: number | undefined): ForwardActionModel => forward('c', max === undefined ? {} : { grpcTimeoutHeaderMaxMs: max });
  assert.equal(grpcDeadlineMs(act(undefined), { 'grpc-timeout': '1S' }), undefined);
  assert.equal(grpcDeadlineMs(act(0), { 'grpc-timeout': '1S' }), 1000);
  assert.equal(grpcDeadlineMs(act(0), {}), 0, 'no header, no cap: no deadline');
  assert.equal(grpcDeadlineMs(act(300), { 'grpc-timeout': '1S' }), 300);
  assert.equal(grpcDeadlineMs(act(300), { 'grpc-timeout': '100m' }), 100);
  assert.equal(grpcDeadlineMs(act(300), {}), 300, 'no header: the cap is the deadline (Envoy max_grpc_timeout)');
});

test('route decode: max_grpc_timeout (what Istio sends) and max_stream_duration.grpc_timeout_header_max', () => {
  const rc = (route: object) => decodeRouteConfig({ name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c', ...route } }] }] });
  const max = (route: object) => {
    const r = rc(route);
    if ('errors' in r) assert.fail(r.errors.join('\n'));
    const a = r.ok.virtualHosts[0]!.routes[0]!.action;
    return a.kind === 'route' ? a.grpcTimeoutHeaderMaxMs : 'not a route';
  };
  assert.equal(max({}), undefined);
  assert.equal(max({ max_grpc_timeout: '0s' }), 0);
  assert.equal(max({ max_grpc_timeout: '2.5s' }), 2500);
  assert.equal(max({ max_stream_duration: { grpc_timeout_header_max: '1s' } }), 1000);
  const bad = rc({ max_stream_duration: { max_stream_duration: '5s' } });
  assert.ok('errors' in bad);
  assert.match(bad.errors.join('\n'), /max_stream_duration\.max_stream_duration: is not supported by isle proxy/);
});
