/**
 * Tracing config from MeshConfig and Telemetry to the HCM `tracing` Envoy gets (through the real
 * protobuf codec) and back through the proxy's decoder; what Isle would not enforce is refused
 * (config errors, NACKs).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/parse.js';
import { formatConfigError } from '../../src/config/index.js';
import type { TelemetrySpec } from '../../src/config/kinds/telemetry.js';
import type { Resource } from '../../src/config/types.js';
import { generateClusters } from '../../src/generate/cds.js';
import { generateListeners } from '../../src/generate/lds.js';
import { resolveMeshSettings } from '../../src/mesh/settings.js';
import { CLUSTER_TYPE, LISTENER_TYPE } from '../../src/mesh/typeurls.js';
import { meshInfoFrom, type PushContext } from '../../src/model/pushcontext.js';
import { decodeCluster } from '../../src/proxy/decode/cluster.js';
import { decodeListener } from '../../src/proxy/decode/listener.js';
import { decodeResource, toAny } from '../../src/xds/codec.js';
import { helloworldSidecar, push, sleepSidecar } from './fixtures.js';

function parse(yaml: string): { resources: Resource[]; errors: string[] } {
  const r = parseConfigText('t.yaml', yaml);
  return { resources: r.resources, errors: r.errors.filter((e) => e.severity === 'error').map(formatConfigError) };
}

function world(meshSpec: string, telemetry = ''): PushContext {
  const m = parse(`apiVersion: mesh.isle.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n${meshSpec}`);
  assert.deepEqual(m.errors, []);
  const t = telemetry ? parse(telemetry) : { resources: [], errors: [] };
  assert.deepEqual(t.errors, []);
  const settings = resolveMeshSettings(m.resources[0] as never, { clusterName: 'cluster-1', trustDomain: 'cluster.local' });
  return push({ mesh: meshInfoFrom(settings), telemetries: t.resources as Resource<TelemetrySpec>[] });
}

type Obj = Record<string, unknown>;

/** The HCM of a generated listener after the wire, or undefined. */
function hcmOf(listener: Obj): Obj {
  const wire = decodeResource(toAny(LISTENER_TYPE, listener)) as { filter_chains: { filters: { typed_config: Obj }[] }[] };
  return wire.filter_chains[0]!.filters.at(-1)!.typed_config;
}

function listeners(p: PushContext, which: 'sleep' | 'helloworld'): { outbound: Obj; inbound: Obj } {
  const proxy = which === 'sleep' ? sleepSidecar(p) : helloworldSidecar(p);
  const ls = generateListeners(p, proxy) as Obj[];
  return { outbound: ls.find((l) => l['name'] === 'virtualOutbound')!, inbound: ls.find((l) => l['name'] !== 'virtualOutbound')! };
}

const SHORT = `  tracing:\n    otlp: {endpoint: "http://127.85.0.9:4318"}\n    sampling: 0.25\n`;

test('short form: every sidecar HCM exports to a static cluster; the proxy decodes what was generated', () => {
  const p = world(SHORT);
  const { outbound, inbound } = listeners(p, 'helloworld');
  const out = hcmOf(outbound)['tracing'] as Obj;
  assert.deepEqual(out['random_sampling'], { value: 25 });
  const provider = out['provider'] as { name: string; typed_config: Obj };
  assert.equal(provider.name, 'envoy.tracers.opentelemetry');
  assert.deepEqual(provider.typed_config['http_service'], { http_uri: { uri: 'http://127.85.0.9:4318/v1/traces', cluster: 'outbound|4318||127.85.0.9', timeout: '5s' } });
  assert.equal(provider.typed_config['service_name'], 'helloworld.sample');
  const tags = (out['custom_tags'] as { tag: string; literal: { value: string } }[]).map((t) => [t.tag, t.literal.value]);
  assert.deepEqual(tags, [
    ['istio.canonical_revision', 'v1'],
    ['istio.canonical_service', 'helloworld'],
    ['istio.cluster_id', 'cluster-1'],
    ['istio.mesh_id', 'cluster.local'],
    ['istio.namespace', 'sample'],
  ]);
  assert.ok(hcmOf(inbound)['tracing'], 'inbound (SERVER) too');
  // The exporter's cluster is in CDS, and the proxy accepts both.
  const c = (generateClusters(p, helloworldSidecar(p)) as Obj[]).find((x) => x['name'] === 'outbound|4318||127.85.0.9');
  assert.ok(c);
  assert.equal(c['type'], 'STATIC');
  assert.ok('ok' in decodeCluster(decodeResource(toAny(CLUSTER_TYPE, c))));
  const d = decodeListener(decodeResource(toAny(LISTENER_TYPE, outbound)));
  assert.ok('ok' in d && d.ok, JSON.stringify(d));
  const chain = d.ok.filterChains[0]!;
  assert.equal(chain.filter.kind, 'http');
  const tr = chain.filter.kind === 'http' ? chain.filter.hcm.tracing : undefined;
  assert.equal(tr?.randomSamplingPercent, 25);
  assert.equal(tr?.exporter.cluster, 'outbound|4318||127.85.0.9');
  assert.equal(tr?.exporter.path, '/v1/traces');
  assert.equal(tr?.exporter.authority, '127.85.0.9:4318');
  // No tracing configured: no field at all (and so no cost in the proxy).
  assert.equal(hcmOf(listeners(world('  trustDomain: cluster.local\n'), 'sleep').outbound)['tracing'], undefined);
});

const PROVIDERS = `  extensionProviders:
  - name: otel
    opentelemetry:
      service: helloworld.sample.svc.cluster.local
      port: 5000
      http: {path: /v1/traces, timeout: 2s, headers: [{name: x-tenant, value: t1}]}
  - name: missing
    opentelemetry: {service: nowhere.sample.svc.cluster.local, port: 4318, http: {}}
  defaultConfig:
    tracing: {sampling: 10}
`;

test('extensionProviders + Telemetry: root namespace, then namespace field by field; CLIENT/SERVER; disabled', () => {
  // MeshConfig alone names no default provider: no tracing.
  assert.equal(hcmOf(listeners(world(PROVIDERS), 'sleep').outbound)['tracing'], undefined);
  const telemetry = `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: otel}]
    customTags:
      env: {environment: {name: ISLE_ENV, defaultValue: dev}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: sample, namespace: sample}
spec:
  tracing:
  - match: {mode: SERVER}
    randomSamplingPercentage: 50
    customTags:
      team: {header: {name: x-team}}
`;
  const p = world(PROVIDERS, telemetry);
  const { outbound, inbound } = listeners(p, 'helloworld');
  const out = hcmOf(outbound)['tracing'] as Obj;
  const inn = hcmOf(inbound)['tracing'] as Obj;
  assert.deepEqual(out['random_sampling'], { value: 10 }, 'CLIENT: the namespace entry is SERVER-only; MeshConfig sampling');
  assert.deepEqual(inn['random_sampling'], { value: 50 }, 'SERVER: the namespace overrides sampling');
  const tagNames = (x: Obj) => (x['custom_tags'] as { tag: string }[]).map((t) => t.tag);
  assert.ok(tagNames(out).includes('env') && !tagNames(out).includes('team'));
  assert.ok(tagNames(inn).includes('env') && tagNames(inn).includes('team'), 'custom tags merge');
  const hs = ((out['provider'] as Obj)['typed_config'] as Obj)['http_service'];
  assert.deepEqual(hs, {
    http_uri: { uri: 'http://helloworld.sample.svc.cluster.local:5000/v1/traces', cluster: 'outbound|5000||helloworld.sample.svc.cluster.local', timeout: '2s' },
    request_headers_to_add: [{ header: { key: 'x-tenant', value: 't1' } }],
  });
  const d = decodeListener(decodeResource(toAny(LISTENER_TYPE, inbound)));
  assert.ok('ok' in d, JSON.stringify(d));

  // disableSpanReporting in the namespace; a provider whose service is not in the registry.
  const off = world(PROVIDERS, `${telemetry}---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: zz, namespace: bookinfo}\nspec: {tracing: [{disableSpanReporting: true}]}\n`);
  assert.ok(hcmOf(listeners(off, 'sleep').outbound)['tracing'], 'sample namespace still traced');
  const missing = world(PROVIDERS, telemetry.replace('{name: otel}', '{name: missing}'));
  assert.equal(hcmOf(listeners(missing, 'sleep').outbound)['tracing'], undefined, 'an unresolvable provider: no tracing (as Istio)');
});

test('config: what Isle would not do is an error, not a warning', () => {
  const mesh = (spec: string) => parse(`apiVersion: mesh.isle.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n${spec}`).errors.join('\n');
  assert.match(mesh('  extensionProviders:\n  - name: otel\n    opentelemetry: {service: otel.istio-system.svc.cluster.local, port: 4317}\n'), /OTLP\/HTTP only/);
  assert.match(mesh('  extensionProviders:\n  - name: z\n    zipkin: {service: zipkin, port: 9411}\n'), /zipkin: unknown field.*not supported by Isle/);
  assert.match(mesh('  defaultProviders: {tracing: [nope]}\n'), /no extensionProvider named "nope"/);
  assert.match(mesh('  defaultProviders: {metrics: [prometheus]}\n'), /metrics: unknown field/);
  assert.match(mesh('  defaultConfig: {tracing: {zipkin: {address: "z:9411"}}}\n'), /zipkin: unknown field/);
  assert.match(mesh('  defaultConfig: {holdApplicationUntilProxyStarts: true}\n'), /holdApplicationUntilProxyStarts: unknown field/);
  assert.match(mesh('  tracing: {otlp: {endpoint: "https://c:4318"}}\n'), /plain http only/);
  assert.match(mesh('  tracing: {otlp: {endpoint: "http://c:4318"}, sampling: 5}\n'), /sampling/);
  assert.match(mesh(`${SHORT}  defaultConfig: {tracing: {sampling: 3}}\n`), /set sampling in one place/);
  assert.equal(mesh(SHORT), '');
  const tel = (spec: string) => parse(`apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: t, namespace: default}\nspec:\n${spec}`).errors.join('\n');
  assert.match(tel('  selector: {matchLabels: {app: a}}\n  tracing: [{randomSamplingPercentage: 5}]\n'), /workload selector is not supported/);
  assert.match(tel('  metrics: [{providers: [{name: prometheus}]}]\n'), /metrics is not supported/);
  assert.match(tel('  accessLogging: [{providers: [{name: envoy}]}]\n'), /accessLogging is not supported/);
  assert.match(tel('  tracing: [{randomSamplingPercentage: 150}]\n'), /randomSamplingPercentage/);
  assert.match(tel('  tracing: [{useRequestIdForTraceSampling: true}]\n'), /never derived from x-request-id/);
  assert.match(tel('  tracing: [{providers: [{name: a}, {name: b}]}]\n'), /one tracing provider/);
  assert.match(tel('  tracing: [{samplingRate: 5}]\n'), /samplingRate: unknown field/);
  assert.match(tel('  tracing: [{match: {mode: CLIENT}}, {randomSamplingPercentage: 3}]\n'), /a second tracing entry for CLIENT/);
  assert.equal(tel('  tracing: [{providers: [{name: otel}], randomSamplingPercentage: 5, customTags: {a: {literal: {value: b}}}}]\n'), '');
});

test('proxy: a bad tracing config is a NACK naming the field', () => {
  const p = world(SHORT);
  const base = decodeResource(toAny(LISTENER_TYPE, listeners(p, 'sleep').outbound)) as { filter_chains: { filters: { typed_config: Obj }[] }[] };
  const nack = (mutate: (t: Obj) => void): string => {
    const l = structuredClone(base);
    mutate(l.filter_chains[0]!.filters[0]!.typed_config['tracing'] as Obj);
    const d = decodeListener(l);
    assert.ok('errors' in d && d.errors, 'NACKed');
    return d.errors.join('\n');
  };
  const tc = (t: Obj) => (t['provider'] as Obj)['typed_config'] as Obj;
  assert.match(nack((t) => (t['random_sampling'] = { value: 150 })), /random_sampling\.value: 150 is not a percentage/);
  assert.match(nack((t) => (t['overall_sampling'] = { value: 50 })), /overall_sampling: only 100 %/);
  assert.match(nack((t) => ((t['provider'] as Obj)['name'] = 'envoy.tracers.zipkin')), /unsupported tracer/);
  assert.match(nack((t) => (tc(t)['grpc_service'] = { envoy_grpc: { cluster_name: 'x' } })), /OTLP over gRPC is not supported/);
  assert.match(nack((t) => (((tc(t)['http_service'] as Obj)['http_uri'] as Obj)['uri'] = 'https://c:4318/v1/traces')), /is not an http URI/);
  assert.match(nack((t) => (t['custom_tags'] = [{ tag: 'm', metadata: { kind: { request: {} }, metadata_key: { key: 'k', path: [{ key: 'p' }] } } }])), /metadata tags are not supported/);
  assert.match(nack((t) => (t['spawn_upstream_span'] = true)), /spawn_upstream_span/);
});

test('analyze: a Telemetry naming an undefined provider is an error; an unknown collector service and a second Telemetry are warnings', async () => {
  const { analyze } = await import('../../src/config/analyze.js');
  const r = parse(`apiVersion: mesh.isle.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  extensionProviders:
  - name: otel
    opentelemetry: {service: otel.observability.svc.cluster.local, port: 4318, http: {}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: a, namespace: istio-system}
spec: {tracing: [{providers: [{name: jaeger}]}]}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: b, namespace: istio-system}
spec: {tracing: [{randomSamplingPercentage: 5}]}
`);
  assert.deepEqual(r.errors, []);
  const found = analyze(r.resources).filter((e) => /tracing|telemetr|provider/i.test(e.message)).map(formatConfigError);
  assert.equal(found.length, 3, found.join('\n'));
  assert.match(found.join('\n'), /Telemetry istio-system\/a: spec\.tracing\[0\]\.providers\[0\]\.name: no extensionProvider named "jaeger"/);
  assert.match(found.join('\n'), /warning: .*"otel\.observability\.svc\.cluster\.local" is not a Service or ServiceEntry here/);
  assert.match(found.join('\n'), /warning: .*only a \(the first by name\) applies/);
});
