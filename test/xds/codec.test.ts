import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLUSTER_TYPE,
  DOWNSTREAM_TLS_CONTEXT_TYPE,
  ENDPOINT_TYPE,
  HTTP_CONNECTION_MANAGER_TYPE,
  HTTP_PROTOCOL_OPTIONS_TYPE,
  LISTENER_TYPE,
  PUSH_ORDER,
  ROUTE_TYPE,
  ROUTER_TYPE,
  SECRET_TYPE,
  TCP_PROXY_TYPE,
  TLS_INSPECTOR_TYPE,
  UPSTREAM_TLS_CONTEXT_TYPE,
  XdsCodecError,
  adsServiceDefinition,
  decodeResource,
  encodeResource,
  findMessageType,
  messageNameOf,
  toAny,
} from '../../src/xds/index.js';

function roundTrip(typeUrl: string, obj: Record<string, unknown>): void {
  const any = toAny(typeUrl, obj);
  assert.equal(any.type_url, typeUrl);
  assert.ok(Buffer.isBuffer(any.value));
  assert.deepEqual(decodeResource(any), obj);
  assert.deepEqual(encodeResource(typeUrl, decodeResource(any)), any.value, 'decode → encode is byte-stable');
}

function encodeError(typeUrl: string, obj: unknown, pattern: RegExp): XdsCodecError {
  let caught: unknown;
  try {
    encodeResource(typeUrl, obj);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof XdsCodecError, `expected XdsCodecError, got ${String(caught)}`);
  assert.equal(caught.code, 'ERR_XDS_ENCODE');
  assert.match(caught.message, pattern);
  return caught;
}

test('type URLs name loaded messages and push order is CDS, EDS, LDS, RDS, SDS', () => {
  for (const url of [
    ...PUSH_ORDER,
    HTTP_CONNECTION_MANAGER_TYPE,
    ROUTER_TYPE,
    TCP_PROXY_TYPE,
    TLS_INSPECTOR_TYPE,
    UPSTREAM_TLS_CONTEXT_TYPE,
    DOWNSTREAM_TLS_CONTEXT_TYPE,
    HTTP_PROTOCOL_OPTIONS_TYPE,
  ]) {
    assert.ok(findMessageType(messageNameOf(url)!), url);
  }
  assert.deepEqual(
    PUSH_ORDER.map((u) => u.split('.').pop()),
    ['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration', 'Secret'],
  );
  const ads = adsServiceDefinition();
  assert.equal(
    ads.StreamAggregatedResources.path,
    '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
  );
  assert.equal(
    ads.DeltaAggregatedResources.path,
    '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
  );
});

test('a Listener with an HttpConnectionManager and Router inside Anys round-trips', () => {
  roundTrip(LISTENER_TYPE, {
    name: 'virtualOutbound',
    address: { socket_address: { address: '0.0.0.0', port_value: 15001 } },
    listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': TLS_INSPECTOR_TYPE } }],
    filter_chains: [
      {
        filter_chain_match: { server_names: ['outbound_.80_._.hello.ns.svc.cluster.local'] },
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HTTP_CONNECTION_MANAGER_TYPE,
              stat_prefix: 'outbound_0.0.0.0_80',
              codec_type: 'AUTO',
              rds: { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: '80' },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
              stream_idle_timeout: '0s',
            },
          },
        ],
        transport_socket: {
          name: 'envoy.transport_sockets.tls',
          typed_config: {
            '@type': DOWNSTREAM_TLS_CONTEXT_TYPE,
            require_client_certificate: true,
            common_tls_context: {
              tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { ads: {}, resource_api_version: 'V3' } }],
              alpn_protocols: ['h2', 'http/1.1'],
            },
          },
        },
      },
      {
        filters: [
          {
            name: 'envoy.filters.network.tcp_proxy',
            typed_config: { '@type': TCP_PROXY_TYPE, stat_prefix: 'passthrough', cluster: 'PassthroughCluster' },
          },
        ],
      },
    ],
  });
});

test('Cluster with UpstreamTlsContext, protocol options map, outlier detection and metadata round-trips', () => {
  roundTrip(CLUSTER_TYPE, {
    name: 'outbound|80||hello.ns.svc.cluster.local',
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: 'outbound|80||hello' },
    connect_timeout: '10s',
    lb_policy: 'LEAST_REQUEST',
    outlier_detection: { consecutive_5xx: 3, interval: '1.500s', base_ejection_time: '30s', max_ejection_percent: 100 },
    common_lb_config: { locality_weighted_lb_config: {} },
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': HTTP_PROTOCOL_OPTIONS_TYPE,
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': UPSTREAM_TLS_CONTEXT_TYPE,
        sni: 'outbound_.80_._.hello.ns.svc.cluster.local',
        common_tls_context: {
          combined_validation_context: {
            default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://cluster.local/ns/ns/sa/hello' } }] },
            validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: { ads: {}, resource_api_version: 'V3' } },
          },
        },
      },
    },
    metadata: { filter_metadata: { istio: { services: [{ host: 'hello', port: 80 }], default_original_port: 80, ok: true, none: null } } },
    per_connection_buffer_limit_bytes: 32768,
  });
});

test('ClusterLoadAssignment, RouteConfiguration and Secret round-trip', () => {
  roundTrip(ENDPOINT_TYPE, {
    cluster_name: 'outbound|80||hello',
    endpoints: [
      {
        locality: { region: 'us-east', zone: 'us-east-1a' },
        lb_endpoints: [
          {
            endpoint: { address: { socket_address: { address: '127.1.0.2', port_value: 8080 } } },
            load_balancing_weight: 1,
            metadata: { filter_metadata: { istio: { network: 'network1', cluster: 'cluster-1' } } },
          },
        ],
        load_balancing_weight: 70,
        priority: 1,
      },
    ],
    policy: { overprovisioning_factor: 140 },
  });
  roundTrip(ROUTE_TYPE, {
    name: '80',
    virtual_hosts: [
      {
        name: 'reviews.ns.svc.cluster.local:80',
        domains: ['reviews', 'reviews.ns.svc.cluster.local'],
        routes: [
          {
            match: { prefix: '/', headers: [{ name: 'end-user', string_match: { exact: 'jason' } }] },
            route: {
              weighted_clusters: {
                clusters: [
                  { name: 'outbound|9080|v2|reviews', weight: 70 },
                  { name: 'outbound|9080|v3|reviews', weight: 30 },
                ],
              },
              timeout: '0.250s',
              retry_policy: { retry_on: 'connect-failure', num_retries: 2 },
            },
          },
        ],
      },
    ],
    validate_clusters: false,
  });
  roundTrip(SECRET_TYPE, {
    name: 'default',
    tls_certificate: {
      certificate_chain: { inline_string: '-----BEGIN CERTIFICATE-----\n…' },
      private_key: { inline_bytes: Buffer.from('key bytes').toString('base64') },
    },
  });
});

test('encoding fails loudly on unknown fields, even inside a nested Any', () => {
  const e = encodeError(CLUSTER_TYPE, { name: 'x', connectTimeout: '1s' }, /unknown field.*did you mean "connect_timeout"/);
  assert.equal(e.path, 'Cluster.connectTimeout');
  const nested = encodeError(
    LISTENER_TYPE,
    {
      name: 'l',
      filter_chains: [
        {
          filters: [
            { name: 'hcm', typed_config: { '@type': HTTP_CONNECTION_MANAGER_TYPE, stat_prefix: 's', no_such_field: 1 } },
          ],
        },
      ],
    },
    /unknown field/,
  );
  assert.equal(nested.path, 'Listener.filter_chains[0].filters[0].typed_config(HttpConnectionManager).no_such_field');
});

test('encoding rejects wrong types, bad enums, oneof conflicts, unknown @type and bad durations', () => {
  encodeError(CLUSTER_TYPE, { name: 7 }, /Cluster\.name: expected a string, got number 7/);
  encodeError(CLUSTER_TYPE, { name: 'x', lb_policy: 'FASTEST' }, /unknown LbPolicy value "FASTEST"/);
  encodeError(CLUSTER_TYPE, { name: 'x', per_connection_buffer_limit_bytes: -1 }, /expected a uint32/);
  encodeError(CLUSTER_TYPE, { name: 'x', per_connection_buffer_limit_bytes: 1.5 }, /expected a uint32/);
  encodeError(CLUSTER_TYPE, { name: 'x', type: 'EDS', cluster_type: { name: 'agg' } }, /oneof cluster_discovery_type/);
  encodeError(CLUSTER_TYPE, { name: 'x', connect_timeout: '1 second' }, /expected a duration/);
  encodeError(CLUSTER_TYPE, { name: 'x', transport_socket: { name: 't', typed_config: { '@type': 'type.googleapis.com/no.Such' } } }, /not a loaded Envoy message/);
  encodeError(CLUSTER_TYPE, { name: 'x', transport_socket: { name: 't', typed_config: { sni: 'a' } } }, /needs "@type"/);
  encodeError(CLUSTER_TYPE, { name: 'x', health_checks: {} }, /expected an array/);
  encodeError('type.googleapis.com/envoy.nope.Nope', {}, /not a loaded Envoy message/);
});

test('64-bit integers, wrappers, durations, maps and unknown Any types', () => {
  // max_requests_per_connection is a UInt32Value wrapper: bare value, or {value} on input.
  const c = decodeResource(toAny(CLUSTER_TYPE, { name: 'x', max_requests_per_connection: { value: 5 } }));
  assert.equal(c['max_requests_per_connection'], 5);
  const d = decodeResource(toAny(CLUSTER_TYPE, { name: 'x', connect_timeout: { seconds: 2, nanos: 5_000_000 } }));
  assert.equal(d['connect_timeout'], '2.005s');
  // Beyond 2^53 a 64-bit integer stays exact as a decimal string.
  const big = '18446744073709551615';
  assert.equal(decodeResource(toAny('type.googleapis.com/google.protobuf.UInt64Value', big)) as unknown, big);
  assert.equal(decodeResource(toAny('type.googleapis.com/google.protobuf.Int64Value', -42n)) as unknown, -42);
  encodeError('type.googleapis.com/google.protobuf.UInt64Value', '-1', /out of range for uint64/);
  // An Any of a type we do not load survives as raw bytes, both ways.
  roundTrip(CLUSTER_TYPE, {
    name: 'x',
    typed_extension_protocol_options: { raw: { type_url: 'type.googleapis.com/some.Unknown', value: 'AQI=' } },
  });
  // A Map where a JSON object is expected is refused rather than encoded as empty.
  encodeError(CLUSTER_TYPE, { name: 'x', metadata: { filter_metadata: new Map([['a', {}]]) } }, /got a Map/);
});
