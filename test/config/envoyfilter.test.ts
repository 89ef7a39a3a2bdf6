/**
 * EnvoyFilter parsing and validation: Istio's rate limit patch shapes are accepted (TypedStruct or
 * `@type`, snake_case or camelCase) and normalized; everything Isle does not apply is an error
 * naming the file, the resource and the field.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfigText } from '../../src/config/parse.js';
import type { EnvoyFilterSpec } from '../../src/config/kinds/envoyfilter.js';
import { formatConfigError, type Resource } from '../../src/config/types.js';

const head = (name: string) => `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: ${name}, namespace: default}
spec:
`;

function parse(spec: string): { resources: Resource<EnvoyFilterSpec>[]; errors: string[] } {
  const r = parseConfigText('ef.yaml', head('f') + spec);
  return { resources: r.resources as Resource<EnvoyFilterSpec>[], errors: r.errors.filter((e) => e.severity === 'error').map(formatConfigError) };
}

const LOCAL_CAMEL = `  workloadSelector:
    labels: {app: productpage}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typedConfig:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          value:
            statPrefix: http_local_rate_limiter
            tokenBucket: {maxTokens: 10, tokensPerFill: 10, fillInterval: 1m}
            localRateLimitPerDownstreamConnection: true
`;

describe('EnvoyFilter', () => {
  test('the local rate limit patch: TypedStruct unwrapped, camelCase to snake_case, durations as Envoy writes them', () => {
    const { resources, errors } = parse(LOCAL_CAMEL);
    assert.deepEqual(errors, []);
    const v = resources[0]!.spec.configPatches![0]!.patch.value as Record<string, Record<string, unknown>>;
    assert.deepEqual(v['typed_config'], {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
      stat_prefix: 'http_local_rate_limiter',
      token_bucket: { max_tokens: 10, tokens_per_fill: 10, fill_interval: '60s' },
      local_rate_limit_per_downstream_connection: true,
    });
  });

  const BAD: [string, string, RegExp][] = [
    [
      'another filter',
      `  configPatches:
  - applyTo: HTTP_FILTER
    patch: {operation: INSERT_BEFORE, value: {name: envoy.filters.http.lua, typed_config: {}}}
`,
      /^ef\.yaml:\d+ EnvoyFilter default\/f: spec\.configPatches\[0\]\.patch\.value\.name: must be one of envoy\.filters\.http\.local_ratelimit, envoy\.filters\.http\.ratelimit/m,
    ],
    [
      'another applyTo',
      `  configPatches:
  - applyTo: CLUSTER
    patch: {operation: MERGE, value: {}}
`,
      /EnvoyFilter default\/f: spec\.configPatches\[0\]\.applyTo: "CLUSTER" is not supported by Isle/,
    ],
    [
      'another operation',
      `  configPatches:
  - applyTo: HTTP_FILTER
    patch: {operation: REPLACE, value: {name: envoy.filters.http.ratelimit, typed_config: {}}}
`,
      /spec\.configPatches\[0\]\.patch\.operation: "REPLACE" is not supported by Isle for HTTP_FILTER \(use INSERT_BEFORE\)/,
    ],
    [
      'inserting before a filter other than the router',
      `  configPatches:
  - applyTo: HTTP_FILTER
    match:
      listener:
        filterChain:
          filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.rbac}}
    patch: {operation: INSERT_BEFORE, value: {name: envoy.filters.http.ratelimit, typed_config: {}}}
`,
      /spec\.configPatches\[0\]\.match\.listener\.filterChain\.filter\.subFilter\.name: must be one of envoy\.filters\.http\.router/,
    ],
    [
      'a proxy version match (would apply to proxies it should not)',
      `  configPatches:
  - applyTo: VIRTUAL_HOST
    match: {proxy: {proxyVersion: '^1\\.2.*'}}
    patch: {operation: MERGE, value: {rate_limits: [{actions: [{remote_address: {}}]}]}}
`,
      /spec\.configPatches\[0\]\.match\.proxy: field not supported by Isle/,
    ],
    [
      'an outbound port other than the explicit proxy',
      `  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_OUTBOUND, listener: {portNumber: 9080}}
    patch: {operation: INSERT_BEFORE, value: {name: envoy.filters.http.ratelimit, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit, domain: d, rate_limit_service: {grpc_service: {envoy_grpc: {cluster_name: c}}}}}}
`,
      /spec\.configPatches\[0\]\.match\.listener\.portNumber: Isle's sidecars have one outbound HTTP listener/,
    ],
    [
      'a mistyped field in the rate limit config',
      `  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.ratelimit
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit, domain: d, failure_mode_denny: true, rate_limit_service: {grpc_service: {envoy_grpc: {cluster_name: c}}}}
`,
      /spec\.configPatches\[0\]\.patch\.value\.typed_config\.failure_mode_denny: field not supported by Isle/,
    ],
    [
      'a typed_config of the other filter',
      `  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.ratelimit
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, stat_prefix: x}
`,
      /typed_config\["@type"\]: must be type\.googleapis\.com\/envoy\.extensions\.filters\.http\.ratelimit\.v3\.RateLimit/,
    ],
    [
      'a route action Isle does not build descriptors from',
      `  configPatches:
  - applyTo: HTTP_ROUTE
    patch: {operation: MERGE, value: {route: {rate_limits: [{actions: [{metadata: {descriptor_key: k}}]}]}}}
`,
      /spec\.configPatches\[0\]\.patch\.value\.route\.rate_limits\[0\]\.actions\[0\]\.metadata: field not supported by Isle/,
    ],
    [
      'per-filter config of another filter',
      `  configPatches:
  - applyTo: HTTP_ROUTE
    patch: {operation: MERGE, value: {typed_per_filter_config: {envoy.filters.http.ext_authz: {disabled: true}}}}
`,
      /typed_per_filter_config\["envoy\.filters\.http\.ext_authz"\]: per-filter config for "envoy\.filters\.http\.ext_authz" is not supported by Isle/,
    ],
    ['targetRefs', '  targetRefs: [{kind: Service, name: x}]\n', /spec\.targetRefs: field not supported by Isle/],
  ];

  for (const [what, spec, re] of BAD) {
    test(`refused: ${what}`, () => {
      const { resources, errors } = parse(spec);
      assert.equal(resources.length, 0, 'an invalid EnvoyFilter is never applied');
      assert.ok(errors.some((e) => re.test(e)), errors.join('\n'));
    });
  }
});
