/**
 * The proxy's rate limit pieces without sockets: the token bucket on a manual clock, the local
 * rate limit filter through the real filter chain (fake downstream, scripted upstream), route
 * descriptors, the DRAFT_VERSION_03 headers, and the decoders refusing what Isle does not enforce.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualTimers } from '../../src/mesh/timers.js';
import type { Headers, RequestHead } from '../../src/proxy/http1/head.js';
import type { ConnInfo, ListenerDeps } from '../../src/proxy/listeners/context.js';
import { handleRequest } from '../../src/proxy/listeners/http.js';
import type { ConfigGraph, LocalRateLimitModel, RateLimitPolicyModel } from '../../src/proxy/model.js';
import { TokenBucket } from '../../src/proxy/ratelimit/bucket.js';
import { descriptorsFor } from '../../src/proxy/ratelimit/descriptors.js';
import { draft03Headers } from '../../src/proxy/ratelimit/headers.js';
import { decodeListener } from '../../src/proxy/decode/listener.js';
import { decodeRouteConfig } from '../../src/proxy/decode/route.js';
import { ProxyStats } from '../../src/proxy/stats.js';
import type { UpstreamPools } from '../../src/proxy/upstream/pool.js';
import { FakeDownstream, response } from './filters/fakes.js';
import { chain, cluster, emptyGraph, endpoint, endpoints, forward, hcm, roundRobinPicker, route, routeConfig, vhost } from './net/fixtures.js';

describe('token bucket', () => {
  test('starts full, refills tokens_per_fill every fill_interval up to max_tokens', () => {
    let now = 0;
    const b = new TokenBucket({ maxTokens: 3, tokensPerFill: 2, fillIntervalMs: 1000 }, () => now);
    assert.deepEqual([b.consume(), b.consume(), b.consume(), b.consume()], [true, true, true, false]);
    now = 999;
    assert.equal(b.consume(), false);
    assert.equal(b.msUntilFill(), 1);
    now = 1000;
    assert.deepEqual([b.consume(), b.consume(), b.consume()], [true, true, false]);
    now = 60_000;
    assert.equal(b.remaining(), 3, 'capped at max_tokens');
  });
});

const ALL = { numerator: 100, denominator: 100 } as const;
const NONE = { numerator: 0, denominator: 100 } as const;

function localCfg(over: Partial<LocalRateLimitModel> = {}): LocalRateLimitModel {
  return {
    statPrefix: 'http_local_rate_limiter',
    tokenBucket: { maxTokens: 2, tokensPerFill: 2, fillIntervalMs: 60_000 },
    filterEnabled: ALL,
    filterEnforced: ALL,
    responseHeadersToAdd: [{ key: 'x-local-rate-limit', value: 'true', appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD', keepEmptyValue: false }],
    requestHeadersWhenNotEnforced: [{ key: 'x-would-limit', value: 'yes', appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD', keepEmptyValue: false }],
    perConnection: false,
    xRateLimitHeaders: true,
    status: 429,
    ...over,
  };
}

/** A listener whose HCM has one local rate limit filter; `send(path)` runs one request through the chain. */
function listener(filter: LocalRateLimitModel, routeLocal?: LocalRateLimitModel) {
  const graph = emptyGraph();
  graph.clusters.set('c', cluster('c'));
  graph.endpoints.set('c', endpoints('c', [endpoint('10.0.0.1', 80)]));
  const rc = routeConfig('rc', [vhost('v', ['*'], [route('/limited', forward('c'), routeLocal ? { localRateLimit: routeLocal } : {}), route('/', forward('c'))])]);
  const timers = new ManualTimers();
  const stats = new ProxyStats();
  const upstreamHeaders: Headers[] = [];
  const deps: ListenerDeps = {
    config: () => graph as ConfigGraph,
    stats,
    pools: { send: (req: { headers: Headers }) => (upstreamHeaders.push({ ...req.headers }), Promise.resolve(response(200, 'hello'))) } as unknown as UpstreamPools,
    pick: roundRobinPicker(),
    random: () => 0.5,
    timers,
  };
  const h = hcm({ kind: 'inline', config: rc }, { rateLimits: [{ kind: 'local', name: 'envoy.filters.http.local_ratelimit', config: filter }] });
  const conn: ConnInfo = { listener: 'l', direction: 'INBOUND', chain: chain('', { kind: 'http', hcm: h }), hcm: h, mtls: false, peerId: undefined, peerCertHash: undefined, ownId: undefined };
  const send = async (path: string): Promise<FakeDownstream> => {
    const ds = new FakeDownstream();
    const head: RequestHead = { method: 'GET', target: path, minor: 1, headers: { host: 'svc' } };
    await new Promise<void>((resolve) => handleRequest(deps, conn, head, ds, resolve));
    return ds;
  };
  return { send, timers, stats, upstreamHeaders };
}

describe('local rate limit filter', () => {
  test('the bucket empties: 429 local_rate_limited with the configured headers; refilled after fill_interval', async () => {
    const l = listener(localCfg());
    assert.equal((await l.send('/')).status, 200);
    const second = await l.send('/');
    assert.equal(second.status, 200);
    assert.equal(second.headers['x-ratelimit-remaining'], '0');
    const third = await l.send('/');
    assert.equal(third.status, 429);
    assert.equal(third.body, 'local_rate_limited\n');
    assert.equal(third.headers['x-local-rate-limit'], 'true');
    assert.equal(third.headers['x-ratelimit-limit'], '2, 2;w=60');
    l.timers.advance(60_000);
    assert.equal((await l.send('/')).status, 200);
    const text = await l.stats.registry.metrics();
    assert.match(text, /isle_ratelimit_requests_total\{kind="local",stat_prefix="http_local_rate_limiter",result="over_limit"\} 1/);
  });

  test('a route with its own config gets its own bucket; filter_enforced 0 % only marks the request', async () => {
    const l = listener(localCfg({ tokenBucket: undefined }), localCfg({ tokenBucket: { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 1000 } }));
    assert.equal((await l.send('/other')).status, 200);
    assert.equal((await l.send('/other')).status, 200, 'no bucket at the filter level');
    assert.equal((await l.send('/limited')).status, 200);
    assert.equal((await l.send('/limited')).status, 429);
    const shadow = listener(localCfg({ filterEnforced: NONE, tokenBucket: { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 1000 } }));
    await shadow.send('/');
    assert.equal((await shadow.send('/')).status, 200);
    assert.equal(shadow.upstreamHeaders[1]!['x-would-limit'], 'yes');
    const off = listener(localCfg({ filterEnabled: NONE, tokenBucket: { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 1000 } }));
    for (let i = 0; i < 3; i++) assert.equal((await off.send('/')).status, 200, 'filter_enabled unset/0 %: the filter does nothing');
  });
});

describe('global rate limit descriptors and headers', () => {
  const policies: RateLimitPolicyModel[] = [
    { stage: 0, disableKey: undefined, actions: [{ kind: 'request-headers', headerName: ':path', descriptorKey: 'PATH', skipIfAbsent: false }] },
    { stage: 0, disableKey: undefined, actions: [{ kind: 'remote-address' }, { kind: 'generic-key', descriptorKey: 'generic_key', descriptorValue: 'g' }] },
    { stage: 0, disableKey: undefined, actions: [{ kind: 'request-headers', headerName: 'x-user', descriptorKey: 'user', skipIfAbsent: false }] },
    { stage: 1, disableKey: undefined, actions: [{ kind: 'destination-cluster' }] },
  ];
  const req = { method: 'GET', authority: 'svc', path: '/productpage', scheme: 'http', headers: {}, remoteAddress: '10.1.2.3', destinationCluster: 'outbound|9080||productpage', sourceCluster: 'sleep.default' };

  test('route policies, else the virtual host; a missing header drops that descriptor; only the stage asked', () => {
    const rt = route('/', forward('c'), { rateLimits: policies });
    const vh = vhost('v', ['*'], [rt], { rateLimits: [{ stage: 0, disableKey: undefined, actions: [{ kind: 'source-cluster' }] }] });
    assert.deepEqual(descriptorsFor(rt, vh, 0, req), [
      { entries: [{ key: 'PATH', value: '/productpage' }] },
      { entries: [{ key: 'remote_address', value: '10.1.2.3' }, { key: 'generic_key', value: 'g' }] },
    ]);
    assert.deepEqual(descriptorsFor(rt, vh, 1, req), [{ entries: [{ key: 'destination_cluster', value: 'outbound|9080||productpage' }] }]);
    const bare = route('/', forward('c'));
    assert.deepEqual(descriptorsFor(bare, vh, 0, req), [{ entries: [{ key: 'source_cluster', value: 'sleep.default' }] }]);
  });

  test('DRAFT_VERSION_03 headers from the status closest to its limit', () => {
    const h = draft03Headers([
      { code: 'OK', current_limit: { requests_per_unit: 100, unit: 'MINUTE' }, limit_remaining: 50 },
      { code: 'OVER_LIMIT', current_limit: { requests_per_unit: 10, unit: 'SECOND' }, limit_remaining: 0, duration_until_reset: { seconds: 0, nanos: 400_000_000 } },
    ]);
    assert.deepEqual(h, { 'x-ratelimit-limit': '10, 10;w=1', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1' });
  });
});

describe('decoders refuse what isle proxy does not enforce (NACK)', () => {
  const listenerWith = (httpFilter: unknown) => ({
    name: 'l',
    address: { socket_address: { address: '127.0.0.1', port_value: 15001 } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: 's',
              route_config: { name: 'r', virtual_hosts: [] },
              http_filters: [httpFilter, { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        ],
      },
    ],
  });
  const errors = (r: { errors?: string[] } | { ok: unknown }): string => ('errors' in r ? (r.errors ?? []).join('\n') : '');

  test('local_ratelimit: descriptors, unknown fields, a too short fill_interval', () => {
    const r = decodeListener(listenerWith({
      name: 'envoy.filters.http.local_ratelimit',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
        stat_prefix: 'x',
        token_bucket: { max_tokens: 1, fill_interval: '0.010s' },
        descriptors: [{ entries: [{ key: 'a', value: 'b' }], token_bucket: { max_tokens: 1, fill_interval: '1s' } }],
        local_cluster_rate_limit: {},
      },
    }));
    const e = errors(r);
    assert.match(e, /typed_config\.token_bucket\.fill_interval: must be at least 50ms/);
    assert.match(e, /typed_config\.descriptors: local rate limit descriptors are not supported/);
    assert.match(e, /typed_config\.local_cluster_rate_limit: is not supported by isle proxy/);
  });

  test('ratelimit: google_grpc instead of envoy_grpc, missing domain', () => {
    const e = errors(decodeListener(listenerWith({
      name: 'envoy.filters.http.ratelimit',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit',
        rate_limit_service: { grpc_service: { google_grpc: { target_uri: 'x', stat_prefix: 'y' } } },
      },
    })));
    assert.match(e, /typed_config\.domain: must not be empty/);
    assert.match(e, /grpc_service\.google_grpc: is not supported by isle proxy/);
  });

  test('route rate_limits: an unsupported action and a limit override are refused', () => {
    const e = errors(decodeRouteConfig({
      name: 'r',
      virtual_hosts: [
        {
          name: 'v',
          domains: ['*'],
          rate_limits: [{ actions: [{ query_parameters: { query_parameter_name: 'q', descriptor_key: 'q' } }] }],
          routes: [{ match: { prefix: '/' }, route: { cluster: 'c', rate_limits: [{ actions: [{ remote_address: {} }], limit: { dynamic_metadata: {} } }] } }],
        },
      ],
    }));
    assert.match(e, /virtual_hosts\[0\]\.rate_limits\[0\]\.actions\[0\]: unsupported rate limit action/);
    assert.match(e, /routes\[0\]\.route\.rate_limits\[0\]\.limit: is not supported by isle proxy/);
  });
});
