/** gRPC pieces of the filters that need no sockets: grpc-timeout parsing and the deadline rule (ADR 0080). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeRouteConfig } from '../../../src/proxy/decode/index.js';
import { formatGrpcTimeout, grpcDeadlineMs, grpcMessage, httpToGrpcStatus, isGrpcContentType, parseGrpcTimeout } from '../../../src/proxy/filters/grpc.js';
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

test("local replies: Envoy's gRPC request test, gRPC's HTTP → status mapping, grpc-message encoding", () => {
  for (const ct of ['application/grpc', 'application/grpc+proto', 'application/grpc+json', 'application/grpc; charset=utf-8']) assert.ok(isGrpcContentType(ct), ct);
  for (const ct of [undefined, '', 'application/json', 'application/grpc-web', 'application/grpc-web+proto', 'application/grpcx', ['application/grpc']]) {
    assert.equal(isGrpcContentType(ct as string), false, String(ct));
  }
  const map: [number, number][] = [[400, 13], [401, 16], [403, 7], [404, 12], [429, 14], [502, 14], [503, 14], [504, 14], [500, 2], [418, 2], [200, 2], [301, 2]];
  for (const [http, grpc] of map) assert.equal(httpToGrpcStatus(http), grpc, String(http));
  assert.equal(grpcMessage('no healthy upstream\n'), 'no healthy upstream');
  assert.equal(grpcMessage('100% sure'), '100%25 sure');
  assert.equal(grpcMessage('línea\tdos'), 'l%C3%ADnea%09dos');
  assert.equal(grpcMessage(''), '');
});
