/**
 * Access logs: MeshConfig → generated FileAccessLog (through the real protobuf codec) → decoded by
 * the proxy → lines written by a real outbound listener for real requests (200 through an app,
 * 503 UH with no endpoint), in Istio's TEXT and JSON formats.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/parse.js';
import { generateListeners } from '../../src/generate/lds.js';
import { resolveMeshSettings } from '../../src/mesh/settings.js';
import { meshInfoFrom } from '../../src/model/pushcontext.js';
import { compileTextFormat } from '../../src/proxy/accesslog.js';
import { decodeListener } from '../../src/proxy/decode/listener.js';
import { OutboundListener } from '../../src/proxy/listeners/outbound.js';
import type { ListenerModel } from '../../src/proxy/model.js';
import { ProxyStats } from '../../src/proxy/stats.js';
import { UpstreamPools } from '../../src/proxy/upstream/pool.js';
import { decodeResource, toAny } from '../../src/xds/codec.js';
import { LISTENER_TYPE } from '../../src/mesh/typeurls.js';
import { push, sleepSidecar } from '../generate/fixtures.js';
import { cluster, emptyGraph, endpoint, endpoints, fetch, forward, roundRobinPicker, route, routeConfig, startApp, vhost } from './net/fixtures.js';


/** The outbound listener a control plane with this MeshConfig sends, as the proxy decodes it. */
function generatedOutbound(meshYaml: string, address: string): ListenerModel {
  const parsed = parseConfigText('mesh.yaml', meshYaml);
  assert.deepEqual(parsed.errors, []);
  const settings = resolveMeshSettings(parsed.resources[0] as never, { clusterName: 'cluster-1', trustDomain: 'cluster.local' });
  const p = push({ mesh: meshInfoFrom(settings) });
  const raw = generateListeners(p, sleepSidecar(p)).find((l) => l['name'] === 'virtualOutbound')!;
  // Through the wire format: what Envoy would get.
  const wire = decodeResource(toAny(LISTENER_TYPE, raw));
  const d = decodeListener({ ...wire, address: { socket_address: { address, port_value: 0 } } });
  assert.ok('ok' in d && d.ok, JSON.stringify(d));
  return d.ok!;
}

async function serve(model: ListenerModel, file: string): Promise<string[]> {
  const app = await startApp('helloworld', '127.0.0.1');
  const graph = emptyGraph();
  graph.clusters.set('hello', cluster('hello'));
  graph.endpoints.set('hello', endpoints('hello', [endpoint('127.0.0.1', app.port)]));
  graph.clusters.set('empty', cluster('empty'));
  graph.endpoints.set('empty', endpoints('empty', []));
  graph.routes.set(
    '15001',
    routeConfig('15001', [vhost('hello', ['hello'], [route('/', forward('hello'))]), vhost('empty', ['empty'], [route('/', forward('empty'))])]),
  );
  const stats = new ProxyStats();
  const l = new OutboundListener(model, { config: () => graph, stats, pools: new UpstreamPools({ stats, secrets: () => graph.secrets }), pick: roundRobinPicker() });
  const a = await l.listen();
  try {
    const ok = await fetch('http://hello/greet?x=1', { proxy: { host: a.address, port: a.port }, headers: { 'user-agent': 'curl/8', 'x-request-id': 'rid-1' } });
    assert.equal(ok.status, 200);
    const no = await fetch('http://empty/', { proxy: { host: a.address, port: a.port } });
    assert.equal(no.status, 503);
    for (let i = 0; i < 50 && !(existsSync(file) && readFileSync(file, 'utf8').split('\n').length > 2); i++) await new Promise((r) => setTimeout(r, 20));
    return readFileSync(file, 'utf8').trim().split('\n');
  } finally {
    await l.drain({ timeoutMs: 100 });
    await app.close();
  }
}

test('MeshConfig accessLogEncoding TEXT: Istio\'s text format with response flags and upstream cluster', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'isle-al-')), 'access.log');
  const model = generatedOutbound(`apiVersion: mesh.isle.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {accessLogFile: ${file}}\n`, '127.1.3.1');
  assert.equal(model.filterChains[0]!.filter.kind === 'http' && model.filterChains[0]!.filter.hcm.accessLogs?.[0]?.encoding, 'TEXT');
  const [ok, no] = await serve(model, file);
  assert.match(ok!, /^\[\d{4}-\d\d-\d\dT[^\]]+Z\] "GET \/greet\?x=1 HTTP\/1\.1" 200 - - - "-" 0 \d+ \d+ \d+ "-" "curl\/8" "rid-1" "hello" "127\.0\.0\.1:\d+" hello - /);
  assert.match(no!, /"GET \/ HTTP\/1\.1" 503 UH - - "-" 0 \d+ \d+ - "-" "-" "[0-9a-f-]{36}" "empty" "-" empty - /);
});

test('MeshConfig accessLogEncoding JSON: one object per line; numbers stay numbers, missing is null', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'isle-al-')), 'access.json');
  const model = generatedOutbound(`apiVersion: mesh.isle.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {accessLogFile: ${file}, accessLogEncoding: JSON}\n`, '127.1.3.2');
  const [ok, no] = (await serve(model, file)).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(ok!['response_code'], 200);
  assert.equal(ok!['response_flags'], '-');
  assert.equal(ok!['upstream_cluster'], 'hello');
  assert.equal(ok!['method'], 'GET');
  assert.equal(ok!['path'], '/greet?x=1');
  assert.equal(ok!['request_id'], 'rid-1');
  assert.equal(typeof ok!['duration'], 'number');
  assert.equal(no!['response_code'], 503);
  assert.equal(no!['response_flags'], 'UH');
  assert.equal(no!['upstream_host'], null);
});

test('a bad encoding is a config error naming the field; an unknown operator is a NACK', () => {
  const bad = parseConfigText('mesh.yaml', 'apiVersion: mesh.isle.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {accessLogFile: /dev/stdout, accessLogEncoding: XML}\n');
  assert.match(JSON.stringify(bad.errors), /accessLogEncoding.*must be TEXT or JSON/);
  assert.throws(() => compileTextFormat('%DYNAMIC_METADATA(istio)%'), /unsupported access log operator %DYNAMIC_METADATA\(istio\)%/);
  const d = decodeListener({
    name: 'l',
    address: { socket_address: { address: '127.0.0.1', port_value: 1 } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: 's',
              route_config: { name: 'r' },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
              access_log: [{ name: 'f', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', path: '/dev/null', log_format: { text_format_source: { inline_string: '%FILTER_STATE(x)%' } } } }],
            },
          },
        ],
      },
    ],
  });
  assert.ok('errors' in d);
  assert.match(JSON.stringify(d.errors), /unsupported access log operator %FILTER_STATE\(x\)%/);
});
