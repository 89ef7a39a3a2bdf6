/**
 * What the listeners need from the rest of the proxy. The wiring (`isle proxy`) builds one
 * ListenerDeps and hands it to every listener; tests build their own. Everything config-shaped
 * is read through `config()` at the moment it is needed, so a new xDS snapshot applies to the
 * next request without restarting anything.
 */
import type { HttpAuthorizer } from '../authz.js';
import type { ClusterModel, ConfigGraph, EndpointModel, EndpointsModel, FilterChainModel, HttpConnectionManagerModel, RbacFilterModel, RouteConfigModel } from '../model.js';
import type { RouteRequest } from '../routing/match.js';
import type { RouteResult } from '../routing/router.js';
import type { ProxyStats } from '../stats.js';
import type { UpstreamPools } from '../upstream/pool.js';
import type { Timers } from '../../mesh/timers.js';
import type { RateLimitClients } from '../ratelimit/client.js';

/**
 * What a listener learned about a downstream connection before HTTP started. The identity and
 * address facts are readonly: the RBAC filter builds its view of them once per ConnInfo (ADR 0143).
 */
export interface ConnInfo {
  readonly listener: string;
  readonly direction: 'INBOUND' | 'OUTBOUND' | 'UNSPECIFIED';
  chain: FilterChainModel;
  hcm: HttpConnectionManagerModel;
  /** TLS with a verified client certificate. */
  readonly mtls: boolean;
  /** The verified peer's SPIFFE id. */
  readonly peerId: string | undefined;
  /** SHA-256 of the peer certificate (DER), hex: XFCC `Hash=`. */
  peerCertHash: string | undefined;
  /** Our own SPIFFE id (the certificate this chain serves): XFCC `By=`. */
  ownId: string | undefined;
  /** The TLS SNI the client sent, if any. */
  readonly sni?: string | undefined;
  /** The listener port the connection arrived on. */
  readonly destinationPort?: number | undefined;
  /**
   * The chain's RBAC filters as the listener has them now (AuthorizationPolicy changes apply to
   * the next request of a kept-alive connection). Absent: the HCM's own.
   */
  rbac?: () => readonly RbacFilterModel[];
  /**
   * The chain's HCM as the listener has it now, for filters whose config must apply to the next
   * request of a kept-alive connection (rate limits). Absent: `hcm`; undefined: the chain is gone.
   */
  currentHcm?: () => HttpConnectionManagerModel | undefined;
}

/**
 * The router (`../routing`). A field so tests and the wiring can pass a seeded `random` for
 * weighted clusters; `defaultRouter` is the module's `route`.
 */
export type Router = (config: RouteConfigModel, request: RouteRequest) => RouteResult;

export interface PickContext {
  /** Endpoint keys already tried by this request (for avoid-previous-hosts). */
  previous: ReadonlySet<string>;
  avoidPrevious: boolean;
  attempt: number;
}

/** The load balancer: an endpoint, or undefined when none is healthy ("no healthy upstream"). */
export type EndpointPicker = (cluster: ClusterModel, endpoints: EndpointsModel | undefined, ctx: PickContext) => EndpointModel | undefined;

/** Who this proxy is, for the standard metrics' source_* / destination_* labels. */
export interface LocalIdentity {
  workload?: string;
  namespace?: string;
  /** SPIFFE id; when absent it is read from the `default` certificate. */
  principal?: string;
  /** The service this workload serves (destination_service of inbound requests). */
  service?: string;
  serviceAccount?: string;
  /** The cluster id (topology.istio.io/cluster): source_cluster / destination_cluster. */
  cluster?: string;
  /** Workload labels: app, version, canonical service/revision. */
  labels?: Readonly<Record<string, string>>;
  /** The proxy's node id (x-envoy-peer-metadata-id; the `node_id` span tag). */
  nodeId?: string;
  /** Locality zone (the `zone` span tag). */
  zone?: string;
}

export interface ListenerDeps {
  config: () => ConfigGraph;
  stats: ProxyStats;
  pools: UpstreamPools;
  /** Default: the routing module's `route`, with `random` for weighted clusters. */
  router?: Router;
  pick: EndpointPicker;
  identity?: LocalIdentity;
  /** Request bodies up to this size are buffered so the request can be retried. Default 64 KiB. */
  retryBufferBytes?: number;
  /** For tests: pluggable backoff randomness. */
  random?: () => number;
  /** Route, per-try and fault-delay timers; default real timers (tests pass a manual clock). */
  timers?: Timers;
  /** The RBAC filter slot (AuthorizationPolicy); absent: every request is allowed. */
  authorize?: HttpAuthorizer;
  log?: (msg: string) => void;
  /** isle-mux/1 between Isle sidecars (ADR 0138): offered upstream, accepted on inbound mTLS. Default: `muxFromEnv()`. */
  mux?: boolean;
  /** Clients of the global rate limit service (envoy.filters.http.ratelimit); absent: made on first use. */
  rateLimitClients?: RateLimitClients;
}
