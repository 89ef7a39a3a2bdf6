import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRouteConfig } from '../../../src/proxy/decode/index.js';
import { seededRandom } from '../../../src/proxy/lb/index.js';
import type { RouteConfigModel } from '../../../src/proxy/model.js';
import {
  applyHeaderMutations,
  backoffMs,
  isRetriable,
  route,
  type RouteRequest,
  type RouteResult,
} from '../../../src/proxy/routing/index.js';

function config(obj: object): RouteConfigModel {
  const r = decodeRouteConfig({ name: 'r', ...obj });
  if ('errors' in r) assert.fail(r.errors.join('\n'));
  return r.ok;
}

function req(authority: string, path = '/', headers: RouteRequest['headers'] = {}, method = 'GET'): RouteRequest {
  return { authority, path, method, headers };
}

function clusterOf(r: RouteResult): string | undefined {
  return r.kind === 'route' ? r.cluster : r.kind;
}

const to = (cluster: string) => ({ cluster });

test('virtual host precedence: exact, longest suffix wildcard, longest prefix wildcard, then *', () => {
  const c = config({
    virtual_hosts: [
      { name: 'any', domains: ['*'], routes: [{ match: { prefix: '/' }, route: to('any') }] },
      { name: 'pre', domains: ['foo.*'], routes: [{ match: { prefix: '/' }, route: to('pre') }] },
      { name: 'pre-long', domains: ['foo.bar.*'], routes: [{ match: { prefix: '/' }, route: to('pre-long') }] },
      { name: 'suf', domains: ['*.com'], routes: [{ match: { prefix: '/' }, route: to('suf') }] },
      { name: 'suf-long', domains: ['*.example.com'], routes: [{ match: { prefix: '/' }, route: to('suf-long') }] },
      { name: 'exact', domains: ['www.example.com', 'api:8080'], routes: [{ match: { prefix: '/' }, route: to('exact') }] },
    ],
  });
  const at = (host: string) => clusterOf(route(c, req(host)));
  assert.equal(at('www.example.com'), 'exact');
  assert.equal(at('WWW.Example.COM'), 'exact');
  assert.equal(at('api.example.com'), 'suf-long');
  assert.equal(at('foo.com'), 'suf');
  assert.equal(at('.example.com'), 'suf'); // the wildcard must stand for at least one character
  assert.equal(at('foo.bar.baz'), 'pre-long');
  assert.equal(at('foo.baz'), 'pre');
  assert.equal(at('other'), 'any');
  // The port is part of the host unless ignore_port_in_host_matching.
  assert.equal(at('api:8080'), 'exact');
  assert.equal(at('api'), 'any');
  assert.equal(at('www.example.com:80'), 'any');
  const ip = config({ ignore_port_in_host_matching: true, virtual_hosts: [{ name: 'x', domains: ['www.example.com'], routes: [{ match: { prefix: '/' }, route: to('x') }] }] });
  assert.equal(clusterOf(route(ip, req('www.example.com:80'))), 'x');
  assert.equal(route(ip, req('nope')).kind, 'no-vhost');
});

function one(match: object, path: string, headers: RouteRequest['headers'] = {}): boolean {
  const c = config({ virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match, route: to('hit') }] }] });
  return route(c, req('h', path, headers)).kind === 'route';
}

test('path matching: prefix, exact path (query ignored), regex full match, path_separated_prefix, case_sensitive', () => {
  assert.ok(one({ prefix: '/api' }, '/api/v1'));
  assert.ok(one({ prefix: '/api' }, '/apix'));
  assert.ok(!one({ prefix: '/api' }, '/API'));
  assert.ok(one({ prefix: '/api', case_sensitive: false }, '/API/x'));
  assert.ok(one({ path: '/exact' }, '/exact?q=1'));
  assert.ok(!one({ path: '/exact' }, '/exact/'));
  assert.ok(one({ path: '/Exact', case_sensitive: false }, '/eXACT'));
  assert.ok(one({ safe_regex: { regex: '/v[0-9]+/.*' } }, '/v12/users'));
  assert.ok(!one({ safe_regex: { regex: '/v[0-9]+' } }, '/v12/users'), 'regex is a full match');
  assert.ok(one({ safe_regex: { regex: '/v[0-9]+' } }, '/v12?x=y'), 'regex ignores the query');
  assert.ok(one({ path_separated_prefix: '/api' }, '/api'));
  assert.ok(one({ path_separated_prefix: '/api' }, '/api/x'));
  assert.ok(!one({ path_separated_prefix: '/api' }, '/apix'));
});

test('header matching: every kind, invert, missing headers, multiple values', () => {
  const h = (m: object, headers: RouteRequest['headers']) => one({ prefix: '/', headers: [{ name: 'end-user', ...m }] }, '/', headers);
  assert.ok(h({ exact_match: 'jason' }, { 'end-user': 'jason' }));
  assert.ok(!h({ exact_match: 'jason' }, { 'end-user': 'Jason' }));
  assert.ok(h({ string_match: { exact: 'jason', ignore_case: true } }, { 'end-user': 'JASON' }));
  assert.ok(h({ prefix_match: 'ja' }, { 'end-user': 'jason' }));
  assert.ok(h({ suffix_match: 'on' }, { 'end-user': 'jason' }));
  assert.ok(h({ contains_match: 'so' }, { 'end-user': 'jason' }));
  assert.ok(h({ string_match: { safe_regex: { regex: 'j.*n' } } }, { 'end-user': 'jason' }));
  assert.ok(!h({ safe_regex_match: { regex: 'j' } }, { 'end-user': 'jason' }), 'regex is a full match');
  assert.ok(h({ present_match: true }, { 'end-user': '' }));
  assert.ok(!h({ present_match: true }, {}));
  assert.ok(h({ present_match: false }, {}));
  assert.ok(h({}, { 'end-user': 'x' }), 'no specifier = presence');
  assert.ok(h({ range_match: { start: 10, end: 20 } }, { 'end-user': '19' }));
  assert.ok(!h({ range_match: { start: 10, end: 20 } }, { 'end-user': '20' }));
  assert.ok(h({ exact_match: 'jason', invert_match: true }, { 'end-user': 'bob' }));
  assert.ok(!h({ exact_match: 'jason', invert_match: true }, {}), 'a missing header fails even inverted value matchers');
  assert.ok(h({ exact_match: 'jason', invert_match: true, treat_missing_header_as_empty: true }, {}));
  assert.ok(h({ exact_match: 'a,b' }, { 'end-user': ['a', 'b'] }), 'multiple values are joined with ","');
  assert.ok(one({ prefix: '/', headers: [{ name: ':method', exact_match: 'POST' }] }, '/', {}) === false);
  // A matcher named after an Object.prototype member finds the field, never the prototype's.
  const c = (m: object, headers: RouteRequest['headers']) => one({ prefix: '/', headers: [{ name: 'constructor', ...m }] }, '/', headers);
  assert.ok(!c({ present_match: true }, {}));
  assert.ok(!c({ exact_match: 'x' }, {}));
  assert.ok(c({ exact_match: 'x' }, { constructor: 'x' }));
});

test('query parameter matching', () => {
  const q = (m: object, path: string) => one({ prefix: '/', query_parameters: [{ name: 'debug', ...m }] }, path);
  assert.ok(q({ present_match: true }, '/?debug'));
  assert.ok(q({}, '/?a=1&debug=0'));
  assert.ok(!q({ present_match: true }, '/?nodebug=1'));
  assert.ok(q({ string_match: { exact: 'a b' } }, '/?debug=a%20b'));
  assert.ok(q({ string_match: { prefix: 'tr' } }, '/?debug=true&debug=no'), 'first value wins');
  assert.ok(!q({ string_match: { exact: 'no' } }, '/?debug=true&debug=no'));
});

test('routes are tried in order; first match wins; no-route otherwise', () => {
  const c = config({
    virtual_hosts: [
      {
        name: 'v',
        domains: ['*'],
        routes: [
          { match: { prefix: '/', headers: [{ name: 'end-user', exact_match: 'jason' }] }, route: to('v2') },
          { match: { prefix: '/api' }, route: to('v1') },
        ],
      },
    ],
  });
  assert.equal(clusterOf(route(c, req('h', '/api', { 'end-user': 'jason' }))), 'v2');
  assert.equal(clusterOf(route(c, req('h', '/api'))), 'v1');
  assert.equal(route(c, req('h', '/other')).kind, 'no-route');
});

test('weighted clusters split 70/30 within ±3 % over 10,000 picks', () => {
  const c = config({
    virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { weighted_clusters: { clusters: [{ name: 'v1', weight: 70 }, { name: 'v2', weight: 30 }] } } }] }],
  });
  const random = seededRandom(42);
  const n = { v1: 0, v2: 0 } as Record<string, number>;
  for (let i = 0; i < 10_000; i++) n[clusterOf(route(c, req('h'), { random }))!]!++;
  assert.ok(Math.abs(n['v1']! / 10_000 - 0.7) <= 0.03, JSON.stringify(n));
  assert.ok(Math.abs(n['v2']! / 10_000 - 0.3) <= 0.03, JSON.stringify(n));
});

test('timeouts, retry policy (route over vhost), rewrites', () => {
  const c = config({
    virtual_hosts: [
      {
        name: 'v',
        domains: ['*'],
        retry_policy: { retry_on: 'connect-failure', num_retries: 7 },
        routes: [
          { match: { prefix: '/none' }, route: { cluster: 'a', timeout: '0s' } },
          { match: { prefix: '/old' }, route: { cluster: 'a', prefix_rewrite: '/new', host_rewrite_literal: 'b.internal', timeout: '2.5s', retry_policy: { retry_on: '5xx,gateway-error', num_retries: 3, per_try_timeout: '0.250s' } } },
          { match: { safe_regex: { regex: '/u/([^/]+)/p' } }, route: { cluster: 'a', regex_rewrite: { pattern: { regex: '^/u/([^/]+)/p$' }, substitution: '/p?user=\\1' } } },
          { match: { prefix: '/' }, route: { cluster: 'a' } },
        ],
      },
    ],
  });
  const r0 = route(c, req('h', '/none'));
  assert.ok(r0.kind === 'route' && r0.timeoutMs === 0);
  const r1 = route(c, req('h', '/old/x?y=1'));
  assert.ok(r1.kind === 'route');
  if (r1.kind === 'route') {
    assert.equal(r1.path, '/new/x?y=1');
    assert.equal(r1.hostRewrite, 'b.internal');
    assert.equal(r1.timeoutMs, 2500);
    assert.equal(r1.retryPolicy!.numRetries, 3);
    assert.equal(r1.retryPolicy!.perTryTimeoutMs, 250);
  }
  const r2 = route(c, req('h', '/u/ann/p'));
  assert.ok(r2.kind === 'route' && r2.path === '/p?user=ann');
  const r3 = route(c, req('h', '/'));
  assert.ok(r3.kind === 'route' && r3.timeoutMs === 15_000 && r3.retryPolicy!.numRetries === 7, 'default timeout, vhost retry policy');
});

test('retry_on evaluation and back-off', () => {
  const c = config({ virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'a', retry_policy: { retry_on: 'connect-failure,refused-stream,unavailable,retriable-status-codes', retriable_status_codes: [503] } } }] }] });
  const r = route(c, req('h'));
  assert.ok(r.kind === 'route');
  const p = r.kind === 'route' ? r.retryPolicy! : assert.fail();
  assert.ok(isRetriable(p, { kind: 'connect-failure' }));
  assert.ok(isRetriable(p, { kind: 'refused-stream' }));
  assert.ok(!isRetriable(p, { kind: 'reset' }));
  assert.ok(isRetriable(p, { kind: 'response', status: 503 }));
  assert.ok(!isRetriable(p, { kind: 'response', status: 500 }));
  assert.ok(isRetriable(p, { kind: 'response', status: 200, grpcStatus: 14 }));
  const g = config({ virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'a', retry_policy: { retry_on: 'gateway-error' } } }] }] });
  const gr = route(g, req('h'));
  const gp = gr.kind === 'route' ? gr.retryPolicy! : assert.fail();
  assert.ok(isRetriable(gp, { kind: 'response', status: 504 }));
  assert.ok(!isRetriable(gp, { kind: 'response', status: 500 }));
  assert.ok(isRetriable(gp, { kind: 'reset' }));
  const rnd = seededRandom(1);
  for (let i = 1; i <= 6; i++) {
    const b = backoffMs(gp, i, rnd);
    assert.ok(b >= 0 && b < Math.min(25 * 2 ** (i - 1), 250));
  }
});

test('redirect and direct_response', () => {
  const c = config({
    virtual_hosts: [
      {
        name: 'v',
        domains: ['*'],
        routes: [
          { match: { prefix: '/secure' }, redirect: { https_redirect: true } },
          { match: { prefix: '/old' }, redirect: { prefix_rewrite: '/new', response_code: 'TEMPORARY_REDIRECT', strip_query: true } },
          { match: { prefix: '/moved' }, redirect: { host_redirect: 'other.example', path_redirect: '/here' } },
          { match: { prefix: '/health' }, direct_response: { status: 200, body: { inline_string: 'ok' } } },
        ],
      },
    ],
  });
  const r1 = route(c, req('www.example.com:80', '/secure/x?a=1'));
  assert.deepEqual(r1.kind === 'redirect' && [r1.status, r1.location], [301, 'https://www.example.com/secure/x?a=1']);
  const r2 = route(c, req('h:8080', '/old/p?q'));
  assert.deepEqual(r2.kind === 'redirect' && [r2.status, r2.location], [307, 'http://h:8080/new/p']);
  const r3 = route(c, req('h', '/moved?k=v'));
  assert.deepEqual(r3.kind === 'redirect' && r3.location, 'http://other.example/here?k=v');
  const r4 = route(c, req('h', '/health'));
  assert.deepEqual(r4.kind === 'direct' && [r4.status, r4.body], [200, { kind: 'inline', data: 'ok' }]);
});

test('header mutations: append vs overwrite, remove, level order (config level wins on overwrite)', () => {
  const c = config({
    request_headers_to_add: [{ header: { key: 'x-level', value: 'config' }, append: false }],
    virtual_hosts: [
      {
        name: 'v',
        domains: ['*'],
        request_headers_to_add: [{ header: { key: 'x-vh', value: 'vh' }, append_action: 'ADD_IF_ABSENT' }],
        routes: [
          {
            match: { prefix: '/' },
            route: { cluster: 'a' },
            request_headers_to_add: [
              { header: { key: 'x-level', value: 'route' }, append: false },
              { header: { key: 'x-multi', value: 'two' } },
              { header: { key: 'x-peer', value: '%DOWNSTREAM_REMOTE_ADDRESS%' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
            ],
            request_headers_to_remove: ['x-secret'],
            response_headers_to_add: [{ header: { key: 'x-served-by', value: 'isle' }, append_action: 'OVERWRITE_IF_EXISTS' }],
          },
        ],
      },
    ],
  });
  const r = route(c, req('h'));
  assert.ok(r.kind === 'route');
  if (r.kind !== 'route') return;
  const h = applyHeaderMutations({ 'x-multi': 'one', 'x-secret': 's', 'x-vh': 'keep' }, r.mutations, 'request', { DOWNSTREAM_REMOTE_ADDRESS: '10.0.0.1:5555' });
  assert.deepEqual(h, { 'x-multi': ['one', 'two'], 'x-vh': 'keep', 'x-level': 'config', 'x-peer': '10.0.0.1:5555' });
  assert.deepEqual(applyHeaderMutations({}, r.mutations, 'response'), {});
  assert.deepEqual(applyHeaderMutations({ 'x-served-by': 'app' }, r.mutations, 'response'), { 'x-served-by': 'isle' });
  // Names Object.prototype has: appended to nothing is added, not appended to its member.
  const proto = config({ virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'a' }, request_headers_to_add: [{ header: { key: 'constructor', value: 'c' } }, { header: { key: 'toString', value: 't' }, append_action: 'ADD_IF_ABSENT' }] }] }] });
  const pr = route(proto, req('h'));
  assert.ok(pr.kind === 'route');
  if (pr.kind !== 'route') return;
  assert.deepEqual(applyHeaderMutations({}, pr.mutations, 'request', {}), { constructor: 'c', tostring: 't' });
  // __proto__ cannot be a field of a head: the route config is NACKed naming it.
  const bad = decodeRouteConfig({ name: 'r', request_headers_to_add: [{ header: { key: '__proto__', value: 'x' } }], virtual_hosts: [] });
  assert.ok('errors' in bad);
  assert.match(bad.errors.join('\n'), /request_headers_to_add\[0\]\.header\.key: header name __proto__ is not supported/);
});
