/**
 * EnvoyFilter rate limit patches → listeners and routes (src/generate/envoyfilter.ts): which
 * proxies a filter selects, where the HTTP filter lands, route/virtual-host merges, and that the
 * result encodes as Envoy protobuf and decodes in isle proxy.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { parseConfigText } from '../../src/config/parse.js';
import type { EnvoyFilterSpec } from '../../src/config/kinds/envoyfilter.js';
import type { Resource } from '../../src/config/types.js';
import { generateListeners, generateRoutes } from '../../src/generate/index.js';
import { LISTENER_TYPE, ROUTE_TYPE } from '../../src/mesh/typeurls.js';
import { decodeResource, toAny } from '../../src/xds/codec.js';
import { decodeListener } from '../../src/proxy/decode/listener.js';
import { decodeRouteConfig } from '../../src/proxy/decode/route.js';
import { helloworldSidecar, push, sleepSidecar } from './fixtures.js';

const EXAMPLE = new URL('../../../docs/examples/ratelimit-envoyfilters.yaml', import.meta.url);

function filters(text: string): Resource<EnvoyFilterSpec>[] {
  const r = parseConfigText('ef.yaml', text);
  assert.deepEqual(r.errors.filter((e) => e.severity === 'error'), []);
  return r.resources.filter((x) => x.kind === 'EnvoyFilter') as Resource<EnvoyFilterSpec>[];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

describe('EnvoyFilter rate limit patches', () => {
  const efs = filters(readFileSync(EXAMPLE, 'utf8').replaceAll('namespace: default', 'namespace: sample').replaceAll('helloworld.default.', 'helloworld.sample.'));
  const p = push({ envoyFilters: efs });

  test('local rate limit: inserted before the router of the selected workload inbound HCMs only', () => {
    const hello = generateListeners(p, helloworldSidecar(p));
    const inbound = hello.find((l) => l['name'] === '127.1.0.10_5000') as Any;
    const names = inbound.filter_chains[0].filters.at(-1).typed_config.http_filters.map((f: Any) => f.name);
    assert.deepEqual(names.slice(-2), ['envoy.filters.http.local_ratelimit', 'envoy.filters.http.router']);
    const tc = inbound.filter_chains[0].filters.at(-1).typed_config.http_filters.at(-2).typed_config;
    assert.equal(tc['@type'], 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit');
    assert.deepEqual(tc.token_bucket, { max_tokens: 4, tokens_per_fill: 4, fill_interval: '60s' });
    const sleep = generateListeners(p, sleepSidecar(p));
    assert.ok(!JSON.stringify(sleep).includes('local_ratelimit'), 'not selected: the sleep sidecar');
    for (const l of hello) {
      const any = toAny(LISTENER_TYPE, l);
      const back = decodeListener(decodeResource(any));
      assert.ok('ok' in back, JSON.stringify(back));
    }
  });

  test('global rate limit: filter on the outbound HCM, rate_limits merged into the chosen virtual host', () => {
    const proxy = sleepSidecar(p);
    const out = generateListeners(p, proxy).find((l) => l['name'] === 'virtualOutbound') as Any;
    const hf = out.filter_chains[0].filters[0].typed_config.http_filters;
    assert.equal(hf.at(-2).name, 'envoy.filters.http.ratelimit');
    assert.equal(hf.at(-2).typed_config.domain, 'productpage-ratelimit');
    const [rc] = generateRoutes(p, proxy) as Any[];
    const vh = rc.virtual_hosts.find((v: Any) => v.name === 'helloworld.sample.svc.cluster.local:5000');
    assert.deepEqual(vh.rate_limits, [{ actions: [{ request_headers: { header_name: ':path', descriptor_key: 'PATH' } }] }]);
    const other = rc.virtual_hosts.find((v: Any) => v.name !== 'helloworld.sample.svc.cluster.local:5000');
    assert.equal(other.rate_limits, undefined);
    const back = decodeRouteConfig(decodeResource(toAny(ROUTE_TYPE, rc)));
    assert.ok('ok' in back, JSON.stringify(back));
    const hello = generateRoutes(p, helloworldSidecar(p)) as Any[];
    assert.ok(!JSON.stringify(hello).includes('rate_limits'), 'RDS of an unselected workload is unchanged');
  });
});
