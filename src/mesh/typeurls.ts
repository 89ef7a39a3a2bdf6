/**
 * Envoy v3 type URLs. Resources travel as `google.protobuf.Any`, whose `type_url` is
 * `type.googleapis.com/<full message name>`; ADS multiplexes every xDS type on one stream and
 * tells them apart only by this string, so it must match Envoy's exactly.
 */
export const TYPE_URL_PREFIX = 'type.googleapis.com/';

export const CLUSTER_TYPE = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
export const ENDPOINT_TYPE = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
export const LISTENER_TYPE = 'type.googleapis.com/envoy.config.listener.v3.Listener';
export const ROUTE_TYPE = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
export const SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
/**
 * Istio's NDS: the name table a sidecar's DNS proxy answers from (ADR 0075). One resource with an
 * empty name, subscribed as a wildcard; Envoy never asks for it.
 */
export const NAME_TABLE_TYPE = 'type.googleapis.com/istio.networking.nds.v1.NameTable';

/** Extension configs that generators put in `typed_config` / `typed_extension_protocol_options`. */
export const HTTP_CONNECTION_MANAGER_TYPE =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const TCP_PROXY_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
export const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
export const TLS_INSPECTOR_TYPE =
  'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';
export const ORIGINAL_DST_TYPE = 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst';
export const HTTP_INSPECTOR_TYPE =
  'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector';
export const UPSTREAM_TLS_CONTEXT_TYPE =
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
export const DOWNSTREAM_TLS_CONTEXT_TYPE =
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const HTTP_PROTOCOL_OPTIONS_TYPE =
  'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/**
 * The order in which pending types are pushed (Envoy's "make before break" advice): clusters
 * exist before their endpoints are assigned, both before the listeners and routes that point at
 * them; secrets last, since listeners and clusters warm until their SDS secrets arrive.
 */
export const PUSH_ORDER: readonly string[] = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE];

/**
 * What the control plane generates and serves to its proxies: Envoy's types in PUSH_ORDER, then
 * Istio's NDS for the sidecars' DNS proxies (only proxies that subscribe get it; Envoy never does).
 */
export const SERVED_TYPES: readonly string[] = [...PUSH_ORDER, NAME_TABLE_TYPE];

/**
 * Types where an empty subscription means "everything" (the legacy wildcard). For the others
 * an empty SotW request asks for nothing; `*` is an explicit wildcard for any type.
 */
export const WILDCARD_TYPES: ReadonlySet<string> = new Set([CLUSTER_TYPE, LISTENER_TYPE, NAME_TABLE_TYPE]);

const SHORT: Record<string, string> = {
  [CLUSTER_TYPE]: 'CDS',
  [ENDPOINT_TYPE]: 'EDS',
  [LISTENER_TYPE]: 'LDS',
  [ROUTE_TYPE]: 'RDS',
  [SECRET_TYPE]: 'SDS',
  [NAME_TABLE_TYPE]: 'NDS',
};

/** `CDS`, `EDS`… for logs and metrics labels; other types get their message name. */
export function shortTypeName(typeUrl: string): string {
  return SHORT[typeUrl] ?? typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

/** `type.googleapis.com/a.b.C` → `a.b.C`; undefined when the URL has no `/`. */
export function messageNameOf(typeUrl: string): string | undefined {
  const i = typeUrl.lastIndexOf('/');
  return i < 0 || i === typeUrl.length - 1 ? undefined : typeUrl.slice(i + 1);
}

export function typeUrlOf(messageName: string): string {
  return TYPE_URL_PREFIX + messageName.replace(/^\./, '');
}
/** AuthorizationPolicy on inbound HTTP (envoy.filters.http.rbac) and TCP (envoy.filters.network.rbac). */
export const HTTP_RBAC_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
export const NETWORK_RBAC_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC';

/** Envoy's OpenTelemetry tracer (HCM tracing.provider) and its config type (ADR 0085). */
export const OTEL_TRACER = 'envoy.tracers.opentelemetry';
export const OTEL_CONFIG_TYPE = 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig';
