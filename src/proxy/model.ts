/**
 * The proxy's validated internal model of Envoy v3 xDS resources.
 *
 * xDS arrives as loosely typed proto3-JSON; everything the data plane acts on goes through the
 * decoders in `./decode/` first, so the sockets side never sees an unchecked field and never has
 * to apply Envoy defaults itself: every default is already filled in here (durations in ms, enum
 * names normalised, regexes compiled and anchored). Discriminated unions follow grpc-js-xds.
 *
 * Stability: exported names are a contract with the listener / HTTP / pool code. Add, don't rename.
 */
import type { AccessLogModel } from './accesslog.js';

// ---------------------------------------------------------------------------------------------
// shared pieces
// ---------------------------------------------------------------------------------------------

/** Result of every decoder: all errors, each with a field path, so the xDS client can NACK. */
export type DecodeResult<T> = { ok: T } | { errors: string[] };

/** A compiled RE2-compatible regex with full-match semantics (anchored). */
export interface RegexModel {
  /** The regex as written in xDS (for /config_dump and error messages). */
  readonly source: string;
  /** `^(?:source)$` with the `u` flag; test() is a full match. */
  readonly re: RegExp;
}

/** envoy.type.matcher.v3.StringMatcher. */
export type StringMatcherModel =
  | { readonly kind: 'exact' | 'prefix' | 'suffix' | 'contains'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly kind: 'regex'; readonly regex: RegexModel };

/** A data source (`inline_string`, `inline_bytes` decoded as UTF-8, or `filename`). */
export type DataSourceModel =
  | { readonly kind: 'inline'; readonly data: string }
  | { readonly kind: 'file'; readonly path: string };

/** Reference to a secret: fetched by SDS by name, or inline in the TLS context. */
export type TlsCertificateRef =
  | { readonly kind: 'sds'; readonly name: string }
  | { readonly kind: 'inline'; readonly certificate: TlsCertificateModel };

export type ValidationContextRef =
  | { readonly kind: 'sds'; readonly name: string }
  | { readonly kind: 'inline'; readonly validation: ValidationContextModel };

export type SanType = 'URI' | 'DNS' | 'EMAIL' | 'IP_ADDRESS' | 'OTHER_NAME';

/** One entry of `match_typed_subject_alt_names` (SPIFFE identities are `URI`). */
export interface SanMatcherModel {
  readonly sanType: SanType;
  readonly matcher: StringMatcherModel;
}

// ---------------------------------------------------------------------------------------------
// secrets (SDS)
// ---------------------------------------------------------------------------------------------

export interface TlsCertificateModel {
  readonly certificateChain: DataSourceModel;
  readonly privateKey: DataSourceModel;
}

export interface ValidationContextModel {
  /** Absent only in a combined context's `default_validation_context`, which adds SAN checks. */
  readonly trustedCa: DataSourceModel | null;
  readonly matchSans: readonly SanMatcherModel[];
}

export type SecretModel =
  | { readonly kind: 'tls-certificate'; readonly name: string; readonly certificate: TlsCertificateModel }
  | { readonly kind: 'validation-context'; readonly name: string; readonly validation: ValidationContextModel };

// ---------------------------------------------------------------------------------------------
// listeners (LDS)
// ---------------------------------------------------------------------------------------------

/** Downstream TLS on a filter chain (DownstreamTlsContext). */
export interface DownstreamTlsModel {
  readonly requireClientCertificate: boolean;
  /** Server certificates (SDS names or inline); at least one. */
  readonly certificates: readonly TlsCertificateRef[];
  /** CA for client certificates; null = client certs are not verified. */
  readonly validation: ValidationContextRef | null;
  /** Extra SAN checks from a combined context's default_validation_context (empty = any). */
  readonly matchSans: readonly SanMatcherModel[];
  readonly alpnProtocols: readonly string[];
}

export interface FilterChainMatchModel {
  /** SNI names; `*.foo.com` wildcards allowed as in Envoy. Empty = any. */
  readonly serverNames: readonly string[];
  /** `tls` | `raw_buffer` (from tls_inspector); undefined = any. Used for PERMISSIVE mTLS. */
  readonly transportProtocol: string | undefined;
  readonly applicationProtocols: readonly string[];
  readonly destinationPort: number | undefined;
  /** prefix_ranges: the original destination address must fall in one (capture). Empty = any. */
  readonly prefixRanges: readonly CidrModel[];
}


export type ForwardClientCertMode = 'SANITIZE' | 'FORWARD_ONLY' | 'APPEND_FORWARD' | 'SANITIZE_SET' | 'ALWAYS_FORWARD_ONLY';

export interface SetCurrentClientCertDetailsModel {
  readonly subject: boolean;
  readonly cert: boolean;
  readonly chain: boolean;
  readonly dns: boolean;
  readonly uri: boolean;
}

export type RouteSourceModel =
  | { readonly kind: 'rds'; readonly routeConfigName: string }
  | { readonly kind: 'inline'; readonly config: RouteConfigModel };

/** HttpConnectionManager. */
export interface HttpConnectionManagerModel {
  /** File access logs (access_log), compiled; absent: none. */
  readonly accessLogs?: readonly AccessLogModel[];
  readonly statPrefix: string;
  readonly routeSource: RouteSourceModel;
  readonly codecType: 'AUTO' | 'HTTP1' | 'HTTP2' | 'HTTP3';
  readonly forwardClientCertDetails: ForwardClientCertMode;
  readonly setCurrentClientCertDetails: SetCurrentClientCertDetailsModel;
  /** http_protocol_options.allow_absolute_url (proxy mode: `GET http://host/path`). */
  readonly allowAbsoluteUrl: boolean;
  readonly useRemoteAddress: boolean;
  readonly xffNumTrustedHops: number;
  /** Names of http_filters in order; the last is the router. */
  readonly httpFilters: readonly string[];
  /** 0 = disabled. Envoy default stream_idle_timeout is 5 min. */
  readonly streamIdleTimeoutMs: number;
  /** 0 = disabled (Envoy default). */
  readonly requestTimeoutMs: number;
  /** envoy.filters.http.rbac filters, in chain order (AuthorizationPolicy). */
  readonly rbac: readonly RbacFilterModel[];
  /** local_ratelimit / ratelimit filters, in chain order (EnvoyFilter; proxy/ratelimit/). Absent: none. */
  readonly rateLimits?: readonly HttpRateLimitFilterModel[];
  /** `tracing` (OpenTelemetry over OTLP/HTTP, ADR 0085); absent: no spans, context passes through. */
  readonly tracing?: TracingModel;
}

/** A span tag from the HCM's `custom_tags` (Istio's service tags are literals). */
export type CustomTagModel =
  | { readonly tag: string; readonly kind: 'literal'; readonly value: string }
  | { readonly tag: string; readonly kind: 'header' | 'environment'; readonly name: string; readonly defaultValue: string };

/** `envoy.tracers.opentelemetry` with `http_service`: where the spans go. */
export interface OtlpHttpExporterModel {
  /** Same exporter config → the same exporter (queue, counters) across xDS updates. */
  readonly key: string;
  /** http_uri.cluster: the cluster whose endpoint receives the export. */
  readonly cluster: string;
  /** Path of http_uri.uri (Envoy's default OTLP path `/v1/traces` when the uri has none). */
  readonly path: string;
  /** Host header: the authority of http_uri.uri. */
  readonly authority: string;
  readonly timeoutMs: number;
  readonly headers: readonly (readonly [string, string])[];
  /** Resource `service.name`. */
  readonly serviceName: string;
}

export interface TracingModel {
  /** random_sampling, percent [0, 100]; Envoy's default 100. */
  readonly randomSamplingPercent: number;
  readonly exporter: OtlpHttpExporterModel;
  readonly customTags: readonly CustomTagModel[];
  /** max_path_tag_length (http.url); Envoy's default 256. */
  readonly maxPathTagLength: number;
}

/** TcpProxy: one cluster or weighted clusters. */
export interface TcpProxyModel {
  readonly statPrefix: string;
  readonly cluster: ClusterSpecifierModel;
  /** 0 = disabled. Envoy default idle_timeout is 1 h. */
  readonly idleTimeoutMs: number;
}

export type NetworkFilterModel =
  | { readonly kind: 'http'; readonly hcm: HttpConnectionManagerModel }
  | { readonly kind: 'tcp'; readonly tcpProxy: TcpProxyModel };

export interface FilterChainModel {
  readonly name: string;
  readonly match: FilterChainMatchModel;
  /** null = plaintext. */
  readonly tls: DownstreamTlsModel | null;
  /** The terminal network filter (HCM or TcpProxy); others are not supported. */
  readonly filter: NetworkFilterModel;
  /** envoy.filters.network.rbac filters before it, in order (AuthorizationPolicy on TCP ports). */
  readonly rbac: readonly RbacFilterModel[];
}

/**
 * `http`: every chain ends in an HCM. `tcp`: every chain is a TcpProxy without SNI match.
 * `sni-passthrough`: every chain is a TcpProxy keyed by server_names (east-west gateway).
 * `mixed`: anything else (e.g. HCM for tls + TcpProxy for raw_buffer).
 */
export type ListenerKind = 'http' | 'tcp' | 'sni-passthrough' | 'mixed';

export interface ListenerModel {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly kind: ListenerKind;
  readonly trafficDirection: 'UNSPECIFIED' | 'INBOUND' | 'OUTBOUND';
  /** tls_inspector present: SNI / transport_protocol / ALPN are known for chain matching. */
  readonly tlsInspector: boolean;
  readonly httpInspector: boolean;
  readonly filterChains: readonly FilterChainModel[];
  readonly defaultFilterChain: FilterChainModel | null;
  /** For sni-passthrough: server name (lower-case) → cluster, exact names only (fast path). */
  readonly sniClusters: ReadonlyMap<string, string>;
}

// ---------------------------------------------------------------------------------------------
// routes (RDS)
// ---------------------------------------------------------------------------------------------

export type HeaderAppendAction =
  | 'APPEND_IF_EXISTS_OR_ADD'
  | 'ADD_IF_ABSENT'
  | 'OVERWRITE_IF_EXISTS_OR_ADD'
  | 'OVERWRITE_IF_EXISTS';

export interface HeaderValueOptionModel {
  /** Lower-cased. */
  readonly key: string;
  readonly value: string;
  readonly appendAction: HeaderAppendAction;
  readonly keepEmptyValue: boolean;
}

export interface HeaderMutationsModel {
  readonly requestHeadersToAdd: readonly HeaderValueOptionModel[];
  readonly requestHeadersToRemove: readonly string[];
  readonly responseHeadersToAdd: readonly HeaderValueOptionModel[];
  readonly responseHeadersToRemove: readonly string[];
}

export type PathMatchModel =
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'path'; readonly value: string }
  | { readonly kind: 'regex'; readonly regex: RegexModel }
  | { readonly kind: 'path-separated-prefix'; readonly value: string };

export type HeaderMatchSpecModel =
  | { readonly kind: 'present'; readonly present: boolean }
  | { readonly kind: 'string'; readonly matcher: StringMatcherModel }
  | { readonly kind: 'range'; readonly start: number; readonly end: number };

export interface HeaderMatcherModel {
  /** Lower-cased; `:authority`, `:path`, `:method`, `:scheme` are pseudo-headers. */
  readonly name: string;
  readonly spec: HeaderMatchSpecModel;
  readonly invert: boolean;
  /** Envoy treat_missing_header_as_empty. */
  readonly treatMissingAsEmpty: boolean;
}

export interface QueryParameterMatcherModel {
  readonly name: string;
  /** null = present_match. */
  readonly matcher: StringMatcherModel | null;
}

export interface RouteMatchModel {
  readonly path: PathMatchModel;
  /** Applies to prefix and path (regex has its own flags). Default true. */
  readonly caseSensitive: boolean;
  readonly headers: readonly HeaderMatcherModel[];
  readonly queryParameters: readonly QueryParameterMatcherModel[];
}

export interface WeightedClusterModel {
  readonly name: string;
  readonly weight: number;
  readonly mutations: HeaderMutationsModel;
  readonly hostRewriteLiteral: string | undefined;
}

export type ClusterSpecifierModel =
  | { readonly kind: 'cluster'; readonly name: string }
  | { readonly kind: 'weighted'; readonly clusters: readonly WeightedClusterModel[]; readonly totalWeight: number }
  | { readonly kind: 'cluster-header'; readonly header: string };

export type RetryOn =
  | '5xx'
  | 'gateway-error'
  | 'reset'
  | 'connect-failure'
  | 'retriable-4xx'
  | 'refused-stream'
  | 'retriable-status-codes'
  | 'retriable-headers'
  | 'http3-post-connect-failure'
  | 'envoy-ratelimited'
  | 'reset-before-request'
  // gRPC retry_on values (from the gRPC status in response headers/trailers).
  | 'cancelled'
  | 'deadline-exceeded'
  | 'internal'
  | 'resource-exhausted'
  | 'unavailable';

export interface RetryPolicyModel {
  readonly retryOn: ReadonlySet<RetryOn>;
  /** Envoy default 1. */
  readonly numRetries: number;
  /** 0 = use the route timeout. */
  readonly perTryTimeoutMs: number;
  readonly retriableStatusCodes: ReadonlySet<number>;
  /** previous_hosts predicate: prefer a different host on retry. */
  readonly avoidPreviousHosts: boolean;
  /** Envoy default 1. */
  readonly hostSelectionRetryMaxAttempts: number;
  /** Envoy defaults 25 ms base, 10 × base max. */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
}

export interface ForwardActionModel {
  readonly kind: 'route';
  readonly cluster: ClusterSpecifierModel;
  /** Envoy: 15000 when unset, 0 = no timeout. */
  readonly timeoutMs: number;
  /** 0 = none. */
  readonly idleTimeoutMs: number;
  readonly retryPolicy: RetryPolicyModel | null;
  readonly prefixRewrite: string | undefined;
  readonly regexRewrite: { readonly regex: RegexModel; readonly substitution: string } | undefined;
  readonly hostRewriteLiteral: string | undefined;
  readonly autoHostRewrite: boolean;
  /** What to answer when the cluster is unknown (Envoy: 503; or 404 if configured). */
  readonly clusterNotFoundResponseCode: 503 | 404 | 500;
  /**
   * `max_grpc_timeout` (what Istio sets: the route timeout, 0s when none) or
   * `max_stream_duration.grpc_timeout_header_max`: a gRPC request's `grpc-timeout` becomes its
   * deadline, capped by this (0 = no cap). Undefined: grpc-timeout is not used (Envoy).
   */
  readonly grpcTimeoutHeaderMaxMs?: number;
  /** request_mirror_policies: fire-and-forget copies (see routing/mirror.ts). Empty = none. */
  readonly mirrorPolicies?: readonly MirrorPolicyModel[];
}

/** A probability as Envoy's FractionalPercent: numerator / denominator (100, 10^4 or 10^6). */
export interface FractionModel {
  readonly numerator: number;
  readonly denominator: 100 | 10_000 | 1_000_000;
}

/** One entry of a route's request_mirror_policies. */
export interface MirrorPolicyModel {
  readonly cluster: string;
  /** runtime_fraction.default_value; Envoy mirrors everything when unset. */
  readonly fraction: FractionModel;
  /** disable_shadow_host_suffix_append: keep Host as is instead of appending `-shadow`. */
  readonly keepHost: boolean;
}

/** envoy.extensions.filters.http.fault.v3.HTTPFault, as far as Isle implements it. */
export interface FaultModel {
  readonly delay: { readonly fixedDelayMs: number; readonly fraction: FractionModel } | undefined;
  /** `grpcStatus` set: Envoy's grpc_status abort (HTTP 200; a gRPC request gets that status trailers-only). */
  readonly abort: { readonly httpStatus: number; readonly grpcStatus?: number | undefined; readonly fraction: FractionModel } | undefined;
}

export interface RedirectActionModel {
  readonly kind: 'redirect';
  readonly scheme: string | undefined;
  readonly host: string | undefined;
  readonly port: number | undefined;
  readonly path: string | undefined;
  readonly prefixRewrite: string | undefined;
  /** 301 (default), 302, 303, 307, 308. */
  readonly responseCode: 301 | 302 | 303 | 307 | 308;
  readonly stripQuery: boolean;
}

export interface DirectResponseActionModel {
  readonly kind: 'direct';
  readonly status: number;
  readonly body: DataSourceModel | undefined;
}

export type RouteActionModel = ForwardActionModel | RedirectActionModel | DirectResponseActionModel;

export interface RouteModel {
  readonly name: string;
  readonly match: RouteMatchModel;
  readonly action: RouteActionModel;
  readonly mutations: HeaderMutationsModel;
  /** typed_per_filter_config of `envoy.filters.http.fault`; applied only when the HCM has that filter. */
  readonly fault?: FaultModel;
  /** decorator.operation: the span name of requests on this route. */
  readonly decorator?: string;
  /** route.rate_limits (global rate limit descriptors). */
  readonly rateLimits?: readonly RateLimitPolicyModel[];
  /** route.include_vh_rate_limits. */
  readonly includeVhRateLimits?: boolean;
  /** typed_per_filter_config of `envoy.filters.http.local_ratelimit`: this route's own bucket. */
  readonly localRateLimit?: LocalRateLimitModel;
}

export interface VirtualHostModel {
  readonly name: string;
  /** Lower-cased as written (may carry `:port`, `*.` / `.*` wildcards or be `*`). */
  readonly domains: readonly string[];
  readonly routes: readonly RouteModel[];
  readonly mutations: HeaderMutationsModel;
  /** Virtual-host-level retry policy, used when a route has none. */
  readonly retryPolicy: RetryPolicyModel | null;
  /** virtual_host.rate_limits: used when the route has none (Envoy's VhRateLimitsOptions OVERRIDE). */
  readonly rateLimits?: readonly RateLimitPolicyModel[];
  /** typed_per_filter_config of `envoy.filters.http.local_ratelimit` for the whole virtual host. */
  readonly localRateLimit?: LocalRateLimitModel;
}

// ---------------------------------------------------------------------------------------------
// rate limits (envoy.filters.http.local_ratelimit, envoy.filters.http.ratelimit; route rate_limits)
// ---------------------------------------------------------------------------------------------

export interface TokenBucketModel {
  readonly maxTokens: number;
  /** Envoy default 1. */
  readonly tokensPerFill: number;
  /** At least 50 ms (Envoy). */
  readonly fillIntervalMs: number;
}

/** envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit. */
export interface LocalRateLimitModel {
  readonly statPrefix: string;
  /** Absent: no limit at this level (a listener filter that only enables per-route configs). */
  readonly tokenBucket: TokenBucketModel | undefined;
  /** Unset in Envoy means 0 %: the filter does nothing. */
  readonly filterEnabled: FractionModel;
  /** Unset in Envoy means 0 %: over-limit requests are only counted. */
  readonly filterEnforced: FractionModel;
  /** Added to the 429. */
  readonly responseHeadersToAdd: readonly HeaderValueOptionModel[];
  /** Added to the request when the limit is hit but not enforced. */
  readonly requestHeadersWhenNotEnforced: readonly HeaderValueOptionModel[];
  /** One bucket per downstream connection instead of one per filter. */
  readonly perConnection: boolean;
  readonly xRateLimitHeaders: boolean;
  /** status.code, default 429. */
  readonly status: number;
}

/** envoy.extensions.filters.http.ratelimit.v3.RateLimit (the global rate limit service client). */
export interface GlobalRateLimitModel {
  readonly domain: string;
  readonly stage: number;
  readonly failureModeDeny: boolean;
  /** Envoy default 20 ms. */
  readonly timeoutMs: number;
  /** rate_limit_service.grpc_service.envoy_grpc.cluster_name. */
  readonly cluster: string;
  /** envoy_grpc.authority (default: the cluster name). */
  readonly authority: string | undefined;
  readonly xRateLimitHeaders: boolean;
  /** rate_limited_status.code, default 429. */
  readonly rateLimitedStatus: number;
  /** x-envoy-ratelimited on 429s unless disable_x_envoy_ratelimited_header. */
  readonly xEnvoyRateLimitedHeader: boolean;
  /** status_on_error.code: the answer when the service fails and failure_mode_deny (default 500). */
  readonly statusOnError: number;
  /** request_type: internal, external or both (default both). */
  readonly requestType: 'internal' | 'external' | 'both';
}

export type HttpRateLimitFilterModel =
  | { readonly kind: 'local'; readonly name: string; readonly config: LocalRateLimitModel }
  | { readonly kind: 'global'; readonly name: string; readonly config: GlobalRateLimitModel };

/** One rate_limits action (produces one descriptor entry, or nothing). */
export type RateLimitActionModel =
  | { readonly kind: 'source-cluster' }
  | { readonly kind: 'destination-cluster' }
  | { readonly kind: 'request-headers'; readonly headerName: string; readonly descriptorKey: string; readonly skipIfAbsent: boolean }
  | { readonly kind: 'remote-address' }
  | { readonly kind: 'generic-key'; readonly descriptorKey: string; readonly descriptorValue: string }
  | { readonly kind: 'header-value-match'; readonly descriptorKey: string; readonly descriptorValue: string; readonly expectMatch: boolean; readonly headers: readonly HeaderMatcherModel[] };

/** One entry of rate_limits: a descriptor when every action produced its entry. */
export interface RateLimitPolicyModel {
  readonly stage: number;
  readonly disableKey: string | undefined;
  readonly actions: readonly RateLimitActionModel[];
}

export interface RouteConfigModel {
  readonly name: string;
  readonly virtualHosts: readonly VirtualHostModel[];
  readonly mutations: HeaderMutationsModel;
  readonly validateClusters: boolean;
  /** Match Host without its `:port` (Envoy ignore_port_in_host_matching). */
  readonly ignorePortInHostMatching: boolean;
}

// ---------------------------------------------------------------------------------------------
// clusters (CDS)
// ---------------------------------------------------------------------------------------------

/** ORIGINAL_DST: connect where the captured connection was going (no endpoints). */
export type ClusterType = 'EDS' | 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'ORIGINAL_DST';
export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';

/** OutlierDetection with Envoy's defaults applied. Percentages are 0..100. */
export interface OutlierDetectionModel {
  readonly consecutive5xx: number; // default 5
  readonly consecutiveGatewayFailure: number; // default 5
  readonly consecutiveLocalOriginFailure: number; // default 5
  readonly intervalMs: number; // default 10000
  readonly baseEjectionTimeMs: number; // default 30000
  readonly maxEjectionTimeMs: number; // default 300000
  readonly maxEjectionPercent: number; // default 10
  readonly enforcingConsecutive5xx: number; // default 100
  readonly enforcingConsecutiveGatewayFailure: number; // default 0
  readonly enforcingConsecutiveLocalOriginFailure: number; // default 100
  readonly enforcingSuccessRate: number; // default 100
  readonly successRateMinimumHosts: number; // default 5
  readonly successRateRequestVolume: number; // default 100
  readonly successRateStdevFactor: number; // default 1900 (÷1000)
  readonly splitExternalLocalOriginErrors: boolean; // default false
  /** Eject one host even when that exceeds maxEjectionPercent (Envoy always_eject_one_host). */
  readonly alwaysEjectOneHost: boolean; // default false
}

export interface UpstreamTlsModel {
  readonly sni: string | undefined;
  /** Client certificates presented upstream (mTLS); empty = none. */
  readonly certificates: readonly TlsCertificateRef[];
  /** Trusted CA for the upstream; null = upstream certificate not verified (Envoy default). */
  readonly validation: ValidationContextRef | null;
  /** Expected SANs (SPIFFE URIs); empty = any name the CA vouches for. */
  readonly expectedSans: readonly SanMatcherModel[];
  readonly alpnProtocols: readonly string[];
}

/** Thresholds at DEFAULT priority with Envoy's defaults. */
export interface CircuitBreakersModel {
  readonly maxConnections: number; // 1024
  readonly maxPendingRequests: number; // 1024
  readonly maxRequests: number; // 1024
  readonly maxRetries: number; // 3
}

export interface ClusterModel {
  readonly name: string;
  /** The one service an inbound cluster serves (Istio's `filter_metadata.istio.services`). */
  readonly service?: string;
  /** The service an outbound cluster (`outbound|port|subset|fqdn`) stands for: its FQDN. */
  readonly outboundService?: string;
  readonly type: ClusterType;
  /** EDS resource name to subscribe to (eds_cluster_config.service_name, default = name). */
  readonly edsServiceName: string;
  /** For STATIC / *_DNS: the inline load_assignment. */
  readonly loadAssignment: EndpointsModel | null;
  readonly connectTimeoutMs: number; // Envoy default 5000
  readonly lbPolicy: LbPolicy;
  /** LEAST_REQUEST choice_count (Envoy default 2: power of two choices). */
  readonly leastRequestChoiceCount: number;
  readonly localityWeightedLb: boolean;
  /** common_lb_config.healthy_panic_threshold, percent, Envoy default 50; 0 disables panic. */
  readonly healthyPanicThreshold: number;
  readonly outlierDetection: OutlierDetectionModel | null;
  readonly tls: UpstreamTlsModel | null;
  readonly circuitBreakers: CircuitBreakersModel;
  readonly dnsLookupFamily: 'AUTO' | 'V4_ONLY' | 'V6_ONLY' | 'V4_PREFERRED' | 'ALL';
  /** Upstream speaks HTTP/2 (typed_extension_protocol_options explicit http2). */
  readonly http2: boolean;
  /** 0 = unlimited. */
  readonly maxRequestsPerConnection: number;
  /** Upstream connection idle timeout; Envoy default 1 h. */
  readonly idleTimeoutMs: number;
}

// ---------------------------------------------------------------------------------------------
// endpoints (EDS)
// ---------------------------------------------------------------------------------------------

export type HealthStatus = 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'TIMEOUT' | 'DEGRADED';

export interface EndpointModel {
  /** `address:port` (IPv6 in brackets): stable identity for LB, outlier and admin state. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  /** As sent; Envoy treats UNKNOWN and HEALTHY as healthy, DEGRADED as degraded. */
  readonly health: HealthStatus;
  /** load_balancing_weight, default 1. */
  readonly weight: number;
  readonly hostname: string | undefined;
}

export interface LocalityModel {
  readonly region: string;
  readonly zone: string;
  readonly subZone: string;
  /** load_balancing_weight; 0 = unset (Envoy then gives no traffic under locality-weighted LB). */
  readonly weight: number;
  readonly endpoints: readonly EndpointModel[];
}

export interface PriorityModel {
  readonly priority: number;
  readonly localities: readonly LocalityModel[];
}

export interface EndpointsModel {
  readonly clusterName: string;
  /** Index = priority; dense (missing levels are empty), as Envoy requires contiguity. */
  readonly priorities: readonly PriorityModel[];
  /** Percent, Envoy units: 140 = factor 1.4 (the default). */
  readonly overprovisioningFactor: number;
}

// ---------------------------------------------------------------------------------------------
// the resolved graph
// ---------------------------------------------------------------------------------------------

/**
 * A consistent snapshot: the proxy swaps this in atomically, never a half-updated set.
 * See `resolveGraph` in `./decode/graph.ts` and docs/decisions/0009-proxy-model.md for the rules.
 */
export interface ConfigGraph {
  readonly listeners: ReadonlyMap<string, ListenerModel>;
  /** RDS configs by name (inline configs stay inside their HCM's routeSource). */
  readonly routes: ReadonlyMap<string, RouteConfigModel>;
  readonly clusters: ReadonlyMap<string, ClusterModel>;
  /** By cluster name (not EDS service name); STATIC/DNS clusters use their load_assignment. */
  readonly endpoints: ReadonlyMap<string, EndpointsModel>;
  readonly secrets: ReadonlyMap<string, SecretModel>;
  /** Non-fatal findings: route → unknown cluster (503 at runtime), EDS not yet received, … */
  readonly warnings: readonly string[];
}

// ---------------------------------------------------------------------------------------------
// RBAC (AuthorizationPolicy): decoded by proxy/rbac/decode.ts, evaluated by proxy/rbac/evaluate.ts
// ---------------------------------------------------------------------------------------------

export interface CidrModel {
  readonly address: string;
  readonly prefixLen: number;
  readonly family: 'ipv4' | 'ipv6';
}

export type PrincipalModel =
  | { readonly kind: 'any' }
  | { readonly kind: 'and' | 'or'; readonly ids: readonly PrincipalModel[] }
  | { readonly kind: 'not'; readonly id: PrincipalModel }
  /** The verified peer's SPIFFE id; `name` undefined = any authenticated peer. */
  | { readonly kind: 'authenticated'; readonly name: StringMatcherModel | undefined }
  /** direct_remote_ip / remote_ip / source_ip: the downstream address (Isle trusts no XFF). */
  | { readonly kind: 'ip'; readonly cidr: CidrModel }
  | { readonly kind: 'header'; readonly matcher: HeaderMatcherModel }
  | { readonly kind: 'path'; readonly matcher: StringMatcherModel };

export type PermissionModel =
  | { readonly kind: 'any' }
  | { readonly kind: 'and' | 'or'; readonly rules: readonly PermissionModel[] }
  | { readonly kind: 'not'; readonly rule: PermissionModel }
  | { readonly kind: 'header'; readonly matcher: HeaderMatcherModel }
  | { readonly kind: 'path'; readonly matcher: StringMatcherModel }
  | { readonly kind: 'port'; readonly start: number; readonly end: number }
  | { readonly kind: 'destination-ip'; readonly cidr: CidrModel }
  | { readonly kind: 'sni'; readonly matcher: StringMatcherModel };

export interface RbacPolicyModel {
  readonly name: string;
  /** Any of them. */
  readonly permissions: readonly PermissionModel[];
  /** Any of them. */
  readonly principals: readonly PrincipalModel[];
}

export interface RbacFilterModel {
  /** LOG = Istio's AUDIT: matches are recorded, nothing is denied. */
  readonly action: 'ALLOW' | 'DENY' | 'LOG';
  /** Sorted by name, as Envoy iterates its policy map. */
  readonly policies: readonly RbacPolicyModel[];
}
