import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import {
  decodeAndResolve,
  decodeCluster,
  decodeEndpoints,
  decodeListener,
  decodeNameTable,
  decodeRouteConfig,
  decodeSecret,
  resolveGraph,
  translateRe2,
} from '../../../src/proxy/decode/index.js';
import type { DecodeResult } from '../../../src/proxy/model.js';

const GOLDEN = new URL('../../../../test/generate/golden/', import.meta.url);

const DECODERS: Record<string, (o: unknown) => DecodeResult<unknown>> = {
  Listener: decodeListener,
  RouteConfiguration: decodeRouteConfig,
  Cluster: decodeCluster,
  ClusterLoadAssignment: decodeEndpoints,
  Secret: decodeSecret,
  NameTable: decodeNameTable,
};

function goldens(): { file: string; type: string; resources: unknown[] }[] {
  let files: string[];
  try {
    files = readdirSync(GOLDEN).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  return files.map((file) => {
    const j = JSON.parse(readFileSync(new URL(file, GOLDEN), 'utf8')) as { type_url: string; resources: unknown[] };
    return { file, type: j.type_url.slice(j.type_url.lastIndexOf('.') + 1), resources: j.resources };
  });
}

function errorsOf<T>(r: DecodeResult<T>): string[] {
  return 'errors' in r ? r.errors : [];
}

function ok<T>(r: DecodeResult<T>): T {
  if ('errors' in r) assert.fail(r.errors.join('\n'));
  return r.ok;
}

test('every golden resource from the generators decodes without error', () => {
  const gs = goldens();
  for (const g of gs) {
    const dec = DECODERS[g.type];
    assert.ok(dec, `${g.file}: unknown type ${g.type}`);
    for (const r of g.resources) assert.deepEqual(errorsOf(dec(r)), [], g.file);
  }
});

test('the sidecar goldens resolve into one consistent graph', () => {
  const gs = goldens();
  const pick = (...files: string[]) => gs.filter((g) => files.includes(g.file)).flatMap((g) => g.resources);
  if (!gs.some((g) => g.file === 'lds-sidecar.json')) return;
  const res = decodeAndResolve({
    listeners: pick('lds-sidecar.json'),
    routes: pick('rds-sidecar.json'),
    clusters: pick('cds-sidecar.json'),
    endpoints: pick('eds-sidecar.json'),
    secrets: pick('sds.json'),
  });
  const g = ok(res);
  assert.ok(g.listeners.size > 0 && g.clusters.size > 0);
  const gw = ok(
    decodeAndResolve({ listeners: pick('gateway-lds.json'), clusters: pick('gateway-cds.json'), endpoints: pick('gateway-eds.json'), secrets: pick('sds.json') }),
  );
  const l = [...gw.listeners.values()][0]!;
  assert.equal(l.kind, 'sni-passthrough');
  assert.equal(l.sniClusters.get('outbound_.5000_._.helloworld.sample.svc.cluster.local'), 'outbound_.5000_._.helloworld.sample.svc.cluster.local');
});

test('decoded models carry Envoy defaults', () => {
  const c = ok(decodeCluster({ name: 'c', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } }, outlier_detection: {} }));
  assert.equal(c.connectTimeoutMs, 5000);
  assert.equal(c.lbPolicy, 'ROUND_ROBIN');
  assert.equal(c.edsServiceName, 'c');
  assert.equal(c.healthyPanicThreshold, 50);
  assert.deepEqual(c.circuitBreakers, { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 });
  const od = c.outlierDetection!;
  assert.equal(od.consecutive5xx, 5);
  assert.equal(od.intervalMs, 10_000);
  assert.equal(od.baseEjectionTimeMs, 30_000);
  assert.equal(od.maxEjectionPercent, 10);
  assert.equal(od.enforcingConsecutive5xx, 100);
  assert.equal(od.enforcingConsecutiveGatewayFailure, 0);
  assert.equal(od.maxEjectionTimeMs, 300_000);

  const rc = ok(
    decodeRouteConfig({
      name: 'r',
      virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c', retry_policy: { retry_on: '5xx' } } }] }],
    }),
  );
  const a = rc.virtualHosts[0]!.routes[0]!.action;
  assert.equal(a.kind, 'route');
  if (a.kind === 'route') {
    assert.equal(a.timeoutMs, 15_000);
    assert.equal(a.retryPolicy!.numRetries, 1);
    assert.equal(a.retryPolicy!.backoffBaseMs, 25);
    assert.equal(a.retryPolicy!.backoffMaxMs, 250);
    assert.equal(a.clusterNotFoundResponseCode, 503);
  }
  const e = ok(decodeEndpoints({ cluster_name: 'c', endpoints: [{ priority: 2, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '::1', port_value: 80 } } } }] }] }));
  assert.equal(e.overprovisioningFactor, 140);
  assert.equal(e.priorities.length, 3);
  assert.equal(e.priorities[2]!.localities[0]!.endpoints[0]!.key, '[::1]:80');
  assert.equal(e.priorities[2]!.localities[0]!.endpoints[0]!.health, 'UNKNOWN');
});

const vh = (routes: unknown[], extra: object = {}) => ({ name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes, ...extra }] });
const ads = { ads: {}, resource_api_version: 'V3' };
const sock = (address: string, port_value: number) => ({ address: { socket_address: { address, port_value } } });

const BAD: { name: string; decode: (o: unknown) => DecodeResult<unknown>; input: unknown; errors: string[] }[] = [
  { name: 'cluster without a name', decode: decodeCluster, input: { type: 'EDS' }, errors: ['cluster without a name'] },
  {
    name: 'cluster: several problems at once',
    decode: decodeCluster,
    input: { name: 'c', type: 'EDS', lb_policy: 'MAGLEV', connect_timeout: '0s', outlier_detection: { max_ejection_percent: 150 } },
    errors: [
      'cluster "c": eds_cluster_config: an EDS cluster needs eds_cluster_config',
      'cluster "c": connect_timeout: must be greater than 0',
      'cluster "c": lb_policy: MAGLEV is not supported by isle proxy',
      'cluster "c": outlier_detection.max_ejection_percent: 150 is out of range [0, 100]',
    ],
  },
  {
    name: 'static cluster with a hostname',
    decode: decodeCluster,
    input: { name: 's', type: 'STATIC', load_assignment: { cluster_name: 's', endpoints: [{ lb_endpoints: [{ endpoint: sock('example.com', 80) }] }] } },
    errors: ['cluster "s": load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "example.com" is not an IP address'],
  },
  {
    name: 'bad regex in a route match',
    decode: decodeRouteConfig,
    input: {
      name: '5000',
      virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'a' } }, { match: { prefix: '/' }, route: { cluster: 'a' } }, { match: { safe_regex: { regex: '/(a' } }, route: { cluster: 'a' } }] }],
    },
    errors: ['route_config "5000": virtual_hosts[0].routes[2].match.safe_regex.regex: invalid regular expression: Unterminated group'],
  },
  {
    name: 'CR, LF or NUL in anything that goes into a head',
    decode: decodeRouteConfig,
    input: vh([
      { match: { prefix: '/a' }, route: { cluster: 'a', host_rewrite_literal: 'x\r\nevil: 1', prefix_rewrite: '/b\n' }, request_headers_to_add: [{ header: { key: 'x-a', value: 'v\r\nevil: 1' } }] },
      { match: { prefix: '/b' }, redirect: { scheme_redirect: 'h\nttp', host_redirect: 'h\0', path_redirect: '/p\r\n' } },
      { match: { prefix: '/c' }, route: { cluster: 'a' }, response_headers_to_add: [{ header: { key: 'x-b', raw_value: Buffer.from('v\nw').toString('base64') } }] },
    ]),
    errors: [
      'route_config "r": virtual_hosts[0].routes[0].route.prefix_rewrite: must not contain CR, LF or NUL',
      'route_config "r": virtual_hosts[0].routes[0].route.host_rewrite_literal: must not contain CR, LF or NUL',
      'route_config "r": virtual_hosts[0].routes[0].request_headers_to_add[0].header.value: must not contain CR, LF or NUL',
      'route_config "r": virtual_hosts[0].routes[1].redirect.scheme_redirect: invalid scheme "h\\nttp"',
      'route_config "r": virtual_hosts[0].routes[1].redirect.host_redirect: must not contain CR, LF or NUL',
      'route_config "r": virtual_hosts[0].routes[1].redirect.path_redirect: must not contain CR, LF or NUL',
      'route_config "r": virtual_hosts[0].routes[2].response_headers_to_add[0].header.raw_value: must not contain CR, LF or NUL',
    ],
  },
  {
    name: 'RE2-incompatible regexes: backreference and lookahead',
    decode: decodeRouteConfig,
    input: vh([
      { match: { safe_regex: { regex: '/(a)\\1' } }, route: { cluster: 'a' } },
      { match: { prefix: '/', headers: [{ name: 'x', safe_regex_match: { regex: 'a(?=b)' } }] }, route: { cluster: 'a' } },
    ]),
    errors: [
      'route_config "r": virtual_hosts[0].routes[0].match.safe_regex.regex: invalid regular expression: backreference \\1 is not supported by RE2',
      'route_config "r": virtual_hosts[0].routes[1].match.headers[0].safe_regex_match.regex: invalid regular expression: lookahead (?= / (?! is not supported by RE2',
    ],
  },
  {
    name: 'route without action, match without path specifier, unknown retry_on',
    decode: decodeRouteConfig,
    input: vh([{ match: {} }, { match: { prefix: '/' }, route: { cluster: 'a', retry_policy: { retry_on: '5xx,sometimes' } } }]),
    errors: [
      'route_config "r": virtual_hosts[0].routes[0].match: route match needs one of prefix, path, safe_regex, path_separated_prefix',
      'route_config "r": virtual_hosts[0].routes[0]: route needs one of route, redirect, direct_response',
      'route_config "r": virtual_hosts[0].routes[1].route.retry_policy.retry_on: unknown retry_on value "sometimes"',
    ],
  },
  {
    name: 'weighted clusters that sum to zero and a mismatched total_weight',
    decode: decodeRouteConfig,
    input: vh([{ match: { prefix: '/' }, route: { weighted_clusters: { clusters: [{ name: 'a', weight: 0 }, { weight: 0 }], total_weight: 100 } } }]),
    errors: [
      'route_config "r": virtual_hosts[0].routes[0].route.weighted_clusters.clusters[1].name: weighted cluster without a name',
      'route_config "r": virtual_hosts[0].routes[0].route.weighted_clusters.clusters: the sum of weights must be greater than 0',
      'route_config "r": virtual_hosts[0].routes[0].route.weighted_clusters.total_weight: total_weight 100 does not match the sum of weights 0',
    ],
  },
  {
    name: 'duplicate and malformed domains',
    decode: decodeRouteConfig,
    input: {
      name: 'r',
      virtual_hosts: [
        { name: 'a', domains: ['foo.com', 'f*o.com'], routes: [] },
        { name: 'b', domains: ['FOO.com'], routes: [] },
      ],
    },
    errors: [
      'route_config "r": virtual_hosts[0].domains[1]: invalid domain "f*o.com": a wildcard must be at the start or end',
      'route_config "r": virtual_hosts[1].domains[0]: duplicate domain "foo.com" (also in virtual_hosts[0])',
    ],
  },
  { name: 'route_config without a name', decode: decodeRouteConfig, input: { virtual_hosts: [] }, errors: ['route_config without a name'] },
  {
    name: 'listener: an unsupported network filter (ext_authz) is refused, missing route source',
    decode: decodeListener,
    input: {
      name: 'l',
      address: { socket_address: { address: '127.0.0.1', port_value: 80 } },
      filter_chains: [
        {
          filters: [
            { name: 'envoy.filters.network.ext_authz', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz' } },
            {
              name: 'hcm',
              typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                stat_prefix: 's',
                http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
              },
            },
          ],
        },
      ],
    },
    errors: [
      'listener "l": filter_chains[0].filters[0].typed_config.@type: unsupported network filter "type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz"',
      'listener "l": filter_chains[0].filters[1].typed_config: the HTTP connection manager needs rds or route_config',
    ],
  },
  { name: 'listener without a name', decode: decodeListener, input: { address: {} }, errors: ['listener without a name'] },
  {
    name: 'listener with a bad address and duplicate chains',
    decode: decodeListener,
    input: {
      name: 'l',
      address: { socket_address: { address: 'localhost', port_value: 70000 } },
      filter_chains: [
        { filter_chain_match: { server_names: ['a'] }, filters: [{ name: 't', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 's', cluster: 'a' } }] },
        { filter_chain_match: { server_names: ['a'] }, filters: [{ name: 't', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 's', cluster: 'b' } }] },
      ],
    },
    errors: [
      'listener "l": address.socket_address.address: "localhost" is not an IP address',
      'listener "l": address.socket_address.port_value: 70000 is out of range [0, 65535]',
      'listener "l": filter_chains[1].filter_chain_match: same match as filter_chains[0]',
    ],
  },
  {
    name: 'endpoints: duplicate locality, port 0, bad health',
    decode: decodeEndpoints,
    input: {
      cluster_name: 'c',
      endpoints: [
        { locality: { region: 'r' }, lb_endpoints: [{ endpoint: sock('10.0.0.1', 0), health_status: 'SICK' }] },
        { locality: { region: 'r' }, lb_endpoints: [] },
      ],
    },
    errors: [
      'cluster_load_assignment "c": endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: must be in [1, 65535]',
      'cluster_load_assignment "c": endpoints[0].lb_endpoints[0].health_status: unsupported value string "SICK" (supported: UNKNOWN, HEALTHY, UNHEALTHY, DRAINING, TIMEOUT, DEGRADED)',
      'cluster_load_assignment "c": endpoints[1].locality: duplicate locality {region: "r", zone: "", sub_zone: ""} in priority 0',
    ],
  },
  {
    name: 'secret without key, and without a name',
    decode: decodeSecret,
    input: { name: 'default', tls_certificate: { certificate_chain: { inline_string: '-----BEGIN CERTIFICATE-----\n' } } },
    errors: ['secret "default": tls_certificate.private_key: missing data source'],
  },
  { name: 'secret without a name', decode: decodeSecret, input: { validation_context: {} }, errors: ['secret without a name'] },
];

for (const c of BAD) {
  test(`bad resource: ${c.name}`, () => {
    assert.deepEqual(errorsOf(c.decode(c.input)), c.errors);
  });
}

test('RE2 translation: anchors, named groups and leading flags', () => {
  assert.deepEqual(translateRe2('(?i)\\Aab(?P<x>c)\\z'), { source: '^ab(?<x>c)$', flags: 'ui' });
  assert.deepEqual(translateRe2('a(?<!b)'), { error: 'lookbehind (?<= / (?<! is not supported by RE2' });
  assert.deepEqual(translateRe2('[]a]'), { source: '[\\]a]', flags: 'u' });
});

const listener = (routeName: string, sds = 'default') => ({
  name: 'l',
  address: { socket_address: { address: '127.0.0.1', port_value: 8080 } },
  filter_chains: [
    {
      filters: [
        {
          name: 'hcm',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
            stat_prefix: 's',
            rds: { route_config_name: routeName, config_source: ads },
            http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
          },
        },
      ],
      transport_socket: {
        name: 'tls',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
          common_tls_context: { tls_certificate_sds_secret_configs: [{ name: sds, sds_config: ads }], validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: ads } },
          require_client_certificate: true,
        },
      },
    },
  ],
});
const secrets = [
  { name: 'default', tls_certificate: { certificate_chain: { inline_string: '-----BEGIN CERTIFICATE-----\n' }, private_key: { inline_string: '-----BEGIN PRIVATE KEY-----\n' } } },
  { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: '-----BEGIN CERTIFICATE-----\n' } } },
];
const eds = (name: string) => ({ name, type: 'EDS', eds_cluster_config: { eds_config: ads } });

test('resolveGraph: missing RDS and secrets are fatal; unknown clusters and missing EDS are warnings', () => {
  const routes = [vh([{ match: { prefix: '/' }, route: { cluster: 'ghost' } }, { match: { prefix: '/' }, route: { cluster: 'real' } }])];
  const bad = decodeAndResolve({ listeners: [listener('nope', 'missing')], routes, clusters: [eds('real')], secrets });
  assert.deepEqual(errorsOf(bad), [
    'listener "l": filter_chains[0].transport_socket: secret "missing" not received',
    'listener "l": filter_chains[0]: route_config "nope" (RDS) not received',
  ]);
  const good = decodeAndResolve({ listeners: [listener('r')], routes, clusters: [eds('real')], secrets });
  assert.ok('ok' in good);
  if ('ok' in good) {
    assert.deepEqual(good.ok.warnings, [
      'route_config "r": virtual_hosts[0].routes[0]: unknown cluster "ghost" (503 at runtime)',
      'cluster "real": no endpoints received for "real" (no healthy upstream until they arrive)',
    ]);
    assert.deepEqual(good.ok.endpoints.get('real')!.priorities, []);
  }
  const strict = decodeAndResolve({ listeners: [listener('r')], routes: [{ ...routes[0], validate_clusters: true }], clusters: [eds('real')], secrets });
  assert.deepEqual(errorsOf(strict), ['route_config "r": virtual_hosts[0].routes[0]: unknown cluster "ghost"']);
});

test('resolveGraph: wrong secret kind and duplicate names', () => {
  const l = ok(decodeListener(listener('r', 'ROOTCA')));
  const r = ok(decodeRouteConfig(vh([])));
  const s = secrets.map((x) => ok(decodeSecret(x)));
  assert.deepEqual(errorsOf(resolveGraph([l], [r, r], [], [], s)), [
    'route_config "r": duplicate name',
    'listener "l": filter_chains[0].transport_socket: secret "ROOTCA" is not a tls_certificate',
  ]);
});

test('config strings go into heads as their UTF-8 bytes: U+010D U+010A cannot become CR LF', () => {
  const rc = ok(
    decodeRouteConfig(
      vh([{ match: { prefix: '/' }, route: { cluster: 'a', host_rewrite_literal: 'h\u010d\u010a.example' }, request_headers_to_add: [{ header: { key: 'x-a', value: 'caf\u00e9 \u010d\u010a' } }] }]),
    ),
  );
  const route = rc.virtualHosts[0]!.routes[0]!;
  const a = route.action;
  assert.equal(a.kind, 'route');
  if (a.kind === 'route') assert.equal(a.hostRewriteLiteral, Buffer.from('h\u010d\u010a.example', 'utf8').toString('latin1'));
  const v = route.mutations.requestHeadersToAdd[0]!.value;
  assert.deepEqual([...Buffer.from(v, 'latin1')], [...Buffer.from('caf\u00e9 \u010d\u010a', 'utf8')]);
  assert.doesNotMatch(v, /[\r\n]/);
});
