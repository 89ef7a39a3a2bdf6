/**
 * The HCM `tracing` of a sidecar's listeners (ADR 0085), as Istio builds it: the provider comes
 * from Telemetry (namespace-wide over root-namespace, field by field) or MeshConfig
 * defaultProviders; sampling from Telemetry's randomSamplingPercentage or MeshConfig
 * defaultConfig.tracing.sampling; Istio's service tags (`istio.canonical_service`, …) as literal
 * custom tags. CLIENT mode applies to the outbound listener, SERVER to inbound ones.
 *
 * A provider must resolve to a cluster the proxy has: a registry service's `outbound|port||host`,
 * or — Isle's short form, an address outside the registry — a STATIC/STRICT_DNS cluster
 * `outbound|port||host` added to the sidecar's CDS here. A provider that does not resolve (its
 * service is not in the registry) means no tracing for that proxy, as in Istio.
 */
import { isIP } from 'node:net';
import type { TelemetryCustomTag, TelemetrySpec, TelemetryTracing } from '../config/kinds/telemetry.js';
import type { Resource } from '../config/types.js';
import { outboundClusterName } from '../mesh/names.js';
import { OTEL_CONFIG_TYPE, OTEL_TRACER } from '../mesh/typeurls.js';
import type { TracingProvider } from '../mesh/settings.js';
import type { Proxy } from '../model/proxy.js';
import type { PushContext } from '../model/pushcontext.js';
import { CONNECT_TIMEOUT, socketAddress, type EnvoyObject } from './common.js';
import { hasOutboundCluster } from './clusterkeys.js';


export type TracingMode = 'CLIENT' | 'SERVER';

interface Effective {
  provider?: string;
  sampling?: number;
  disabled?: boolean;
  customTags?: Record<string, TelemetryCustomTag>;
  enableIstioTags?: boolean;
  fromTelemetry: boolean;
}

function covers(e: TelemetryTracing, mode: TracingMode): boolean {
  const m = e.match?.mode ?? 'CLIENT_AND_SERVER';
  return m === 'CLIENT_AND_SERVER' || m === mode;
}

/** The first (by name) Telemetry of a namespace stands for Istio's oldest. */
function telemetryOf(push: PushContext, namespace: string): Resource<TelemetrySpec> | undefined {
  return push.telemetries.find((t) => t.metadata.namespace === namespace);
}

/** Root-namespace Telemetry, then the proxy's namespace's, each set field overriding. */
export function effectiveTracing(push: PushContext, namespace: string, mode: TracingMode): Effective {
  const out: Effective = { fromTelemetry: false };
  const root = push.mesh.rootNamespace;
  const chain = [telemetryOf(push, root), namespace !== root ? telemetryOf(push, namespace) : undefined];
  for (const t of chain) {
    const e = t?.spec.tracing?.find((x) => covers(x, mode));
    if (!e) continue;
    out.fromTelemetry = true;
    if (e.providers?.[0]) out.provider = e.providers[0].name;
    if (e.randomSamplingPercentage !== undefined) out.sampling = e.randomSamplingPercentage;
    if (e.disableSpanReporting !== undefined) out.disabled = e.disableSpanReporting;
    if (e.customTags) out.customTags = { ...out.customTags, ...e.customTags };
    if (e.enableIstioTags !== undefined) out.enableIstioTags = e.enableIstioTags;
  }
  return out;
}

/** The cluster spans are exported to; undefined when the provider does not resolve. */
export function providerCluster(push: PushContext, p: TracingProvider): string | undefined {
  if (p.kind === 'endpoint') return outboundClusterName(p.port, p.host);
  // Istio's `[<namespace>/]<hostname>`.
  const host = p.host.includes('/') ? p.host.slice(p.host.indexOf('/') + 1) : p.host;
  const svc = push.servicesByHost.get(host);
  if (!svc || !hasOutboundCluster(svc) || !svc.ports.some((x) => x.port === p.port)) return undefined;
  return outboundClusterName(p.port, host);
}

function resolveProvider(push: PushContext, namespace: string, mode: TracingMode): { provider: TracingProvider; cluster: string; eff: Effective } | undefined {
  const mesh = push.mesh.tracing;
  if (!mesh) return undefined;
  const eff = effectiveTracing(push, namespace, mode);
  if (eff.disabled) return undefined;
  if (!eff.fromTelemetry && !mesh.enabled) return undefined;
  const name = eff.provider ?? mesh.defaultProvider;
  const provider = name ? mesh.providers[name] : undefined;
  if (!provider) return undefined;
  const cluster = providerCluster(push, provider);
  return cluster ? { provider, cluster, eff } : undefined;
}

/** Istio's service tags (pilot's buildServiceTags), from the proxy's labels and metadata. */
function istioTags(push: PushContext, proxy: Proxy): [string, string][] {
  const l = proxy.labels;
  return [
    ['istio.canonical_revision', l['service.istio.io/canonical-revision'] ?? l['app.kubernetes.io/version'] ?? l['version'] ?? 'latest'],
    ['istio.canonical_service', canonicalService(proxy)],
    ['istio.cluster_id', proxy.cluster || 'unknown'],
    ['istio.mesh_id', push.mesh.trustDomain || 'unknown'],
    ['istio.namespace', proxy.namespace || 'default'],
  ];
}

function canonicalService(proxy: Proxy): string {
  const l = proxy.labels;
  return l['service.istio.io/canonical-name'] ?? l['app.kubernetes.io/name'] ?? l['app'] ?? (proxy.workloadName || 'unknown');
}

function customTag(tag: string, t: TelemetryCustomTag): EnvoyObject {
  if (t.literal) return { tag, literal: { value: t.literal.value } };
  if (t.header) return { tag, request_header: { name: t.header.name, default_value: t.header.defaultValue ?? '' } };
  return { tag, environment: { name: t.environment!.name, default_value: t.environment!.defaultValue ?? '' } };
}

/** The HCM's `tracing` for a sidecar listener in `mode`; undefined: no tracing there. */
export function hcmTracing(push: PushContext, proxy: Proxy, mode: TracingMode): EnvoyObject | undefined {
  const r = resolveProvider(push, proxy.namespace, mode);
  if (!r) return undefined;
  const { provider, cluster, eff } = r;
  const mesh = push.mesh.tracing!;
  const tags: EnvoyObject[] = [];
  if (eff.enableIstioTags ?? true) for (const [tag, value] of istioTags(push, proxy)) tags.push({ tag, literal: { value } });
  for (const [tag, t] of Object.entries(eff.customTags ?? {})) tags.push(customTag(tag, t));
  tags.sort((a, b) => (String(a['tag']) < String(b['tag']) ? -1 : 1));
  const host = provider.kind === 'service' && provider.host.includes('/') ? provider.host.slice(provider.host.indexOf('/') + 1) : provider.host;
  const authority = isIP(host) === 6 ? `[${host}]:${provider.port}` : `${host}:${provider.port}`;
  const maxTag = provider.maxTagLength ?? mesh.maxPathTagLength;
  return {
    client_sampling: { value: 100 },
    random_sampling: { value: eff.sampling ?? mesh.samplingPercent },
    overall_sampling: { value: 100 },
    custom_tags: tags,
    ...(maxTag ? { max_path_tag_length: maxTag } : {}),
    provider: {
      name: OTEL_TRACER,
      typed_config: {
        '@type': OTEL_CONFIG_TYPE,
        // Istio: the proxy's service cluster, `<canonical service>.<namespace>`.
        service_name: `${canonicalService(proxy)}.${proxy.namespace}`,
        http_service: {
          http_uri: { uri: `http://${authority}${provider.path}`, cluster, timeout: provider.timeout ?? '5s' },
          ...(provider.headers.length ? { request_headers_to_add: provider.headers.map(([key, value]) => ({ header: { key, value } })) } : {}),
        },
      },
    },
  };
}

/** Short-form providers' clusters (an address outside the registry) a sidecar exports to. */
export function tracingClusters(push: PushContext, proxy: Proxy): EnvoyObject[] {
  const out = new Map<string, EnvoyObject>();
  for (const mode of ['CLIENT', 'SERVER'] as const) {
    const r = resolveProvider(push, proxy.namespace, mode);
    if (!r || r.provider.kind !== 'endpoint' || out.has(r.cluster)) continue;
    // A registry service of that name and port already has this cluster.
    if (push.servicesByHost.get(r.provider.host)?.ports.some((x) => x.port === r.provider.port)) continue;
    const ip = isIP(r.provider.host) !== 0;
    out.set(r.cluster, {
      name: r.cluster,
      type: ip ? 'STATIC' : 'STRICT_DNS',
      connect_timeout: CONNECT_TIMEOUT,
      ...(ip ? {} : { dns_lookup_family: 'V4_ONLY' }),
      load_assignment: { cluster_name: r.cluster, endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(r.provider.host, r.provider.port) } }] }] },
    });
  }
  return [...out.values()];
}
