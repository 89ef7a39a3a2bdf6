/**
 * The HttpConnectionManager's `tracing` (ADR 0085): Envoy's OpenTelemetry tracer exporting over
 * OTLP/HTTP (`http_service`). Everything Isle would otherwise skip — a gRPC exporter, another
 * tracer, samplers, resource detectors, metadata tags, client/overall sampling below 100 % — is a
 * NACK naming the field, never a silently different trace.
 */
import type { CustomTagModel, TracingModel } from '../model.js';
import type { Reader } from './util.js';
import { OTEL_CONFIG_TYPE, OTEL_TRACER } from '../../mesh/typeurls.js';

/** Envoy's OTLP/HTTP path when http_uri.uri has none. */
const DEFAULT_OTLP_PATH = '/v1/traces';

function percent(r: Reader, key: string): number | undefined {
  const p = r.obj_(key);
  if (!p) return undefined;
  const v = p.num('value', 0);
  if (v < 0 || v > 100) p.errs.add(p.p('value'), `${v} is not a percentage in [0, 100]`);
  return Math.min(100, Math.max(0, v));
}

function customTag(t: Reader): CustomTagModel | undefined {
  const tag = t.str('tag') ?? '';
  if (!tag) t.errs.add(t.p('tag'), 'must not be empty');
  const which = t.oneof(['literal', 'environment', 'request_header', 'metadata']);
  switch (which) {
    case 'literal':
      return { tag, kind: 'literal', value: t.obj_('literal')!.str('value') ?? '' };
    case 'environment':
    case 'request_header': {
      const c = t.obj_(which)!;
      const name = c.str('name') ?? '';
      if (!name) c.errs.add(c.p('name'), 'must not be empty');
      return { tag, kind: which === 'environment' ? 'environment' : 'header', name: which === 'request_header' ? name.toLowerCase() : name, defaultValue: c.str('default_value') ?? '' };
    }
    case 'metadata':
      t.errs.add(t.p('metadata'), 'metadata tags are not supported by isle proxy');
      return undefined;
    default:
      t.errs.add(t.path, 'a custom tag needs literal, environment or request_header');
      return undefined;
  }
}

/** `scheme://authority/path` or Istio's `authority/path` (url.JoinPath of host and path). */
function splitUri(uri: string): { authority: string; path: string } | undefined {
  const m = /^(?:(https?):\/\/)?([^/?#\s]+)(\/[^\s#]*)?$/i.exec(uri);
  if (!m) return undefined;
  if (m[1]?.toLowerCase() === 'https') return undefined;
  return { authority: m[2]!, path: m[3] ?? DEFAULT_OTLP_PATH };
}

export function decodeTracing(r: Reader): TracingModel | undefined {
  const client = percent(r, 'client_sampling');
  const overall = percent(r, 'overall_sampling');
  // x-client-trace-id forcing and a second sampling stage are not implemented: say so.
  if (client !== undefined && client !== 100) r.errs.add(r.p('client_sampling'), 'only 100 % is supported by isle proxy');
  if (overall !== undefined && overall !== 100) r.errs.add(r.p('overall_sampling'), 'only 100 % is supported by isle proxy (use random_sampling)');
  const random = percent(r, 'random_sampling') ?? 100;
  if (r.bool('verbose', false)) r.errs.add(r.p('verbose'), 'is not supported by isle proxy');
  if (r.bool('spawn_upstream_span', false)) r.errs.add(r.p('spawn_upstream_span'), 'is not supported by isle proxy (one span per hop)');
  const maxPathTagLength = r.int('max_path_tag_length', 256, 1);
  const customTags = r.objs('custom_tags').map(customTag).filter((t): t is CustomTagModel => t !== undefined);

  const provider = r.obj_('provider');
  if (!provider) {
    r.errs.add(r.p('provider'), `a tracing provider is required (isle proxy has ${OTEL_TRACER})`);
    return undefined;
  }
  const name = provider.str('name') ?? '';
  const tc = provider.obj_('typed_config');
  const type = tc?.str('@type');
  if (name !== OTEL_TRACER || !tc || type !== OTEL_CONFIG_TYPE) {
    provider.errs.add(provider.path, `unsupported tracer ${JSON.stringify(type ?? name)} (isle proxy has ${OTEL_TRACER} with ${OTEL_CONFIG_TYPE})`);
    return undefined;
  }
  if (tc.has('grpc_service')) tc.errs.add(tc.p('grpc_service'), 'OTLP over gRPC is not supported by isle proxy: use http_service (OTLP/HTTP)');
  for (const k of ['resource_detectors', 'sampler']) if (tc.has(k)) tc.errs.add(tc.p(k), 'is not supported by isle proxy');
  const hs = tc.obj_('http_service');
  const uriR = hs?.obj_('http_uri');
  if (!hs || !uriR) {
    tc.errs.add(tc.p('http_service.http_uri'), 'an OTLP/HTTP exporter needs http_service.http_uri');
    return undefined;
  }
  const uri = uriR.str('uri') ?? '';
  const where = splitUri(uri);
  if (!where) uriR.errs.add(uriR.p('uri'), `${JSON.stringify(uri)} is not an http URI (host[:port]/path)`);
  const cluster = uriR.str('cluster') ?? '';
  if (!cluster) uriR.errs.add(uriR.p('cluster'), 'the exporter needs a cluster');
  const timeoutMs = uriR.durationMs('timeout') ?? 5000;
  const headers: [string, string][] = [];
  for (const h of hs.objs('request_headers_to_add')) {
    const hv = h.obj_('header');
    const key = hv?.str('key') ?? '';
    if (!hv || !key) h.errs.add(h.p('header.key'), 'must not be empty');
    else headers.push([key.toLowerCase(), hv.wire('value') ?? '']);
  }
  const serviceName = tc.str('service_name') || 'unknown_service:envoy';
  if (!where || !cluster) return undefined;
  const exporter = { cluster, path: where.path, authority: where.authority, timeoutMs, headers, serviceName };
  return { randomSamplingPercent: random, exporter: { key: JSON.stringify(exporter), ...exporter }, customTags, maxPathTagLength };
}
