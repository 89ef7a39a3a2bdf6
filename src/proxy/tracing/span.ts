/**
 * Spans (ADR 0085): one per request and hop, SERVER on an inbound listener, CLIENT on an outbound
 * one (Envoy's ingress/egress), tagged as Envoy's HTTP connection manager and Istio's custom tags
 * tag them. A span object is created only for a sampled request; it is shaped as the OpenTelemetry
 * SDK's ReadableSpan so that otlp-transformer's serializer encodes it without any SDK class.
 */
import type { CustomTagModel, TracingModel } from '../model.js';

/** What the tracing filter keeps for a sampled request until it finishes. */
export interface ActiveSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly traceState: string | undefined;
  readonly startMs: number;
  readonly tracing: TracingModel;
}

/** What the request offers the span when it finishes (filled by the HTTP context). */
export interface SpanFacts {
  inbound: boolean;
  /** `HTTP/1.1` or `HTTP/2`. */
  protocol: string;
  method: string;
  scheme: string;
  authority: string;
  path: string;
  requestHeaders: Readonly<Record<string, string | string[]>>;
  status: number;
  responseFlags: string;
  requestSize: number;
  responseSize: number;
  durationMs: number;
  upstreamCluster: string | undefined;
  peerAddress: string | undefined;
  /** Route decorator, else `<host>:<port>/*` (Istio's default span name). */
  name: string;
}

export interface LocalInfo {
  nodeId: string;
  zone: string | undefined;
}

type HrTime = [number, number];

function hrTime(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

const NONE: readonly never[] = Object.freeze([]);
const SCOPE = Object.freeze({ name: 'isle-proxy' });
// OpenTelemetry API SpanKind values (the serializer adds 1 for OTLP's enum).
const SERVER = 1;
const CLIENT = 2;

/** One finished span, in the shape of the SDK's ReadableSpan that the OTLP serializer reads. */
export class FinishedSpan {
  readonly events = NONE;
  readonly links = NONE;
  readonly droppedAttributesCount = 0;
  readonly droppedEventsCount = 0;
  readonly droppedLinksCount = 0;
  readonly instrumentationScope = SCOPE;
  readonly ended = true;
  readonly parentSpanContext: { traceId: string; spanId: string; traceFlags: number; isRemote: boolean } | undefined;
  readonly startTime: HrTime;
  readonly endTime: HrTime;
  readonly duration: HrTime;
  readonly status: { code: number };

  constructor(
    private readonly span: ActiveSpan,
    readonly name: string,
    inbound: boolean,
    durationMs: number,
    readonly attributes: Readonly<Record<string, string>>,
    error: boolean,
    readonly resource: { readonly attributes: Readonly<Record<string, string>> },
  ) {
    this.parentSpanContext = span.parentSpanId ? { traceId: span.traceId, spanId: span.parentSpanId, traceFlags: 1, isRemote: true } : undefined;
    this.kind = inbound ? SERVER : CLIENT;
    this.startTime = hrTime(span.startMs);
    this.endTime = hrTime(span.startMs + durationMs);
    this.duration = hrTime(durationMs);
    // OTLP status: 2 = ERROR, 0 = UNSET (Envoy marks 5xx and resets as errors).
    this.status = { code: error ? 2 : 0 };
  }

  readonly kind: number;

  get traceId(): string {
    return this.span.traceId;
  }
  get spanId(): string {
    return this.span.spanId;
  }
  get parentSpanId(): string | undefined {
    return this.span.parentSpanId;
  }

  spanContext(): { traceId: string; spanId: string; traceFlags: number; traceState?: { serialize(): string } } {
    const ts = this.span.traceState;
    return { traceId: this.span.traceId, spanId: this.span.spanId, traceFlags: 1, ...(ts ? { traceState: { serialize: () => ts } } : {}) };
  }
}

function header(h: Readonly<Record<string, string | string[]>>, name: string): string | undefined {
  const v = h[name];
  return v === undefined ? undefined : typeof v === 'string' ? v : v.join(',');
}

function customTagValue(t: CustomTagModel, h: Readonly<Record<string, string | string[]>>): string {
  if (t.kind === 'literal') return t.value;
  if (t.kind === 'header') return header(h, t.name) ?? t.defaultValue;
  return process.env[t.name] ?? t.defaultValue;
}

/** Envoy's HCM span tags, then the configured custom tags (Istio's istio.* literals among them). */
export function spanAttributes(f: SpanFacts, local: LocalInfo, tracing: TracingModel): Record<string, string> {
  const h = f.requestHeaders;
  const url = `${f.scheme}://${f.authority}${f.path}`;
  const a: Record<string, string> = {
    component: 'proxy',
    node_id: local.nodeId,
    ...(local.zone ? { zone: local.zone } : {}),
    'guid:x-request-id': header(h, 'x-request-id') ?? '',
    'http.url': url.length > tracing.maxPathTagLength ? url.slice(0, tracing.maxPathTagLength) : url,
    'http.method': f.method,
    'http.protocol': f.protocol,
    downstream_cluster: header(h, 'x-envoy-downstream-service-cluster') ?? '-',
    user_agent: header(h, 'user-agent') ?? '-',
    'peer.address': f.peerAddress ?? '',
    request_size: String(f.requestSize),
    response_size: String(f.responseSize),
    response_flags: f.responseFlags,
    'http.status_code': String(f.status),
    upstream_cluster: f.upstreamCluster ?? '-',
    'upstream_cluster.name': f.upstreamCluster ?? '-',
  };
  if (isError(f.status)) a['error'] = 'true';
  for (const t of tracing.customTags) a[t.tag] = customTagValue(t, h);
  return a;
}

/** Envoy: a 5xx, or no response at all (reset, downstream gone), is an error span. */
export function isError(status: number): boolean {
  return status === 0 || status >= 500;
}
