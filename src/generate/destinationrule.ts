/**
 * DestinationRule traffic policies → Envoy Cluster fields, and client-side auto mTLS (Istio's
 * translation; see docs/decisions/0014-istio-traffic-apis.md). cds.ts calls `applyPolicy` on
 * every outbound cluster it builds.
 *
 * Which rule applies is decided in the PushContext (`destinationRuleByHost`: exact host, else the
 * most specific wildcard such as the root namespace's `*.cluster.local`). Here: `exportTo` (a rule
 * not exported to the client's namespace does not apply), the subset's policy over the top-level
 * one field by field, and the port's `portLevelSettings` over both levels' fields.
 *
 * Not translated, because Isle's proxy would refuse or ignore it: `consistentHash` (ring hash /
 * maglev), PASSTHROUGH (ORIGINAL_DST), `credentialName` (an SDS secret no one serves),
 * `tcpKeepalive`, `maxConnectionDuration`, `warmupDurationSecs`. `localityLbSetting` is applied in
 * EDS (locality failover/distribute) by eds.ts.
 */
import type {
  ClientTLSSettings,
  ConnectionPoolSettings,
  DestinationRuleSpec,
  LoadBalancerSettings,
  OutlierDetection,
  PortTrafficPolicy,
  TrafficPolicy,
} from '../config/kinds/networking.js';
import type { Resource } from '../config/types.js';
import { isGatewayPassthrough, endpointsFor, type PushContext } from '../model/pushcontext.js';
import type { Endpoint, Service } from '../registry/model.js';
import { HTTP_PROTOCOL_OPTIONS_TYPE, UPSTREAM_TLS_CONTEXT_TYPE } from '../mesh/typeurls.js';
import { commonTlsContext, type EnvoyObject } from './common.js';
import { outboundSni } from '../mesh/names.js';
import { exportedTo, protoDuration } from './virtualservice.js';

export type DestinationRule = Resource<DestinationRuleSpec>;

/** The policy fields that port-level settings and subsets override, each as a whole. */
export interface EffectivePolicy {
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
}

const FIELDS = ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls'] as const;

/** A policy with its `portLevelSettings` for `port` applied (port-level fields replace top-level ones). */
function atPort(tp: TrafficPolicy | undefined, port: number): EffectivePolicy {
  const out: EffectivePolicy = {};
  if (!tp) return out;
  const pl: PortTrafficPolicy | undefined = tp.portLevelSettings?.find((p) => p.port?.number === port);
  for (const f of FIELDS) {
    const v = pl?.[f] ?? tp[f];
    if (v !== undefined) (out as Record<string, unknown>)[f] = v;
  }
  return out;
}

/** Istio's MergeTrafficPolicy: the subset's (port-resolved) fields override the rule's. */
export function effectivePolicy(dr: DestinationRule | undefined, port: number, subset: string): EffectivePolicy {
  if (!dr) return {};
  const top = atPort(dr.spec.trafficPolicy, port);
  const sub = subset ? dr.spec.subsets?.find((s) => s.name === subset) : undefined;
  return { ...top, ...atPort(sub?.trafficPolicy, port) };
}

/** The DestinationRule that a client in `clientNamespace` uses for `hostname` (exportTo applied). */
export function destinationRuleFor(push: PushContext, hostname: string, clientNamespace: string | undefined): DestinationRule | undefined {
  const dr = push.destinationRuleByHost.get(hostname);
  if (!dr) return undefined;
  if (clientNamespace !== undefined && !exportedTo(dr.spec.exportTo, dr.metadata.namespace ?? 'default', clientNamespace)) return undefined;
  return dr;
}

const restrictedCache = new WeakMap<PushContext, DestinationRule[]>();

/** Rules in use whose exportTo is not everywhere: only they make CDS differ between namespaces. */
export function restrictedRules(push: PushContext): DestinationRule[] {
  let l = restrictedCache.get(push);
  if (!l) {
    const set = new Set<DestinationRule>();
    for (const dr of push.destinationRuleByHost.values()) {
      const e = dr.spec.exportTo;
      if (e && e.length > 0 && !e.includes('*')) set.add(dr);
    }
    l = [...set];
    restrictedCache.set(push, l);
  }
  return l;
}

/** The CDS share key: `outbound`, plus which restricted rules the namespace sees when there are any. */
export function cdsShareKey(push: PushContext, clientNamespace: string): string {
  const r = restrictedRules(push);
  if (r.length === 0) return 'outbound';
  const seen = r.map((dr, i) => (exportedTo(dr.spec.exportTo, dr.metadata.namespace ?? 'default', clientNamespace) ? i : -1)).filter((i) => i >= 0);
  return `outbound|dr|${seen.join(',')}`;
}

// ---------------------------------------------------------------------------------------------
// auto mTLS
// ---------------------------------------------------------------------------------------------

const TLS_MODE_LABEL = 'security.istio.io/tlsMode';

/**
 * Whether an endpoint's workload has a sidecar (Istio's `security.istio.io/tlsMode` label): mesh
 * workloads do unless labelled `disabled`; ServiceEntry endpoints do only when labelled `istio`,
 * or when they are an east-west gateway standing for remote workloads (it passes mTLS through).
 */
export function hasSidecar(svc: Service, e: Endpoint): boolean {
  const mode = e.labels[TLS_MODE_LABEL];
  if (mode === 'disabled') return false;
  if (mode === 'istio') return true;
  if (isGatewayPassthrough(svc, e)) return true;
  return !(svc.kind === 'ServiceEntry' && e.source === 'ServiceEntry');
}

/**
 * Client TLS without a DestinationRule tls setting: ISTIO_MUTUAL to mesh-internal destinations
 * whose endpoints have sidecars, plaintext to MESH_EXTERNAL ones and to endpoints without.
 * Envoy's per-endpoint choice (transport_socket_matches) is refused by Isle's proxy, so the
 * choice is per cluster: plaintext only when every endpoint lacks a sidecar.
 */
export function autoMtls(push: PushContext, svc: Service, port: number, subset: string): boolean {
  if (svc.location !== 'MESH_INTERNAL') return false;
  const eps = endpointsFor(push, svc.hostname, port, subset || undefined);
  return eps.length === 0 || eps.some((e) => hasSidecar(svc, e));
}

// ---------------------------------------------------------------------------------------------
// translation
// ---------------------------------------------------------------------------------------------

const sanMatcher = (s: string): EnvoyObject => ({ san_type: s.startsWith('spiffe://') ? 'URI' : 'DNS', matcher: { exact: s } });

/** The upstream transport socket for `tls` (undefined = plaintext). */
export function transportSocket(push: PushContext, svc: Service, port: number, subset: string, tls: ClientTLSSettings | undefined): EnvoyObject | undefined {
  const mode = tls?.mode ?? (autoMtls(push, svc, port, subset) ? 'ISTIO_MUTUAL' : 'DISABLE');
  let ctx: EnvoyObject;
  switch (mode) {
    case 'DISABLE':
      return undefined;
    case 'ISTIO_MUTUAL': {
      const sans = tls?.subjectAltNames?.length ? tls.subjectAltNames : (push.identitiesByHost.get(svc.hostname) ?? []);
      // The SNI names the cluster so that east-west gateways can route without decrypting.
      ctx = { common_tls_context: commonTlsContext(sans), sni: tls?.sni || outboundSni(port, svc.hostname, subset) };
      break;
    }
    case 'SIMPLE':
    case 'MUTUAL': {
      const common: EnvoyObject = {};
      if (mode === 'MUTUAL' && tls?.clientCertificate && tls.privateKey) {
        common['tls_certificates'] = [{ certificate_chain: { filename: tls.clientCertificate }, private_key: { filename: tls.privateKey } }];
      }
      // Without a CA nothing is verified (Envoy's default); SAN checks need a CA, as in Envoy.
      if (tls?.caCertificates && !tls.insecureSkipVerify) {
        const v: EnvoyObject = { trusted_ca: { filename: tls.caCertificates } };
        if (tls.subjectAltNames?.length) v['match_typed_subject_alt_names'] = tls.subjectAltNames.map(sanMatcher);
        common['validation_context'] = v;
      }
      ctx = { common_tls_context: common, ...(tls?.sni ? { sni: tls.sni } : {}) };
      break;
    }
  }
  return { name: 'envoy.transport_sockets.tls', typed_config: { '@type': UPSTREAM_TLS_CONTEXT_TYPE, ...ctx } };
}

/** Istio's default thresholds: everything unlimited unless the rule says otherwise. */
const MAX_U32 = 4294967295;

function circuitBreakers(cp: ConnectionPoolSettings): EnvoyObject {
  return {
    thresholds: [
      {
        max_connections: cp.tcp?.maxConnections ?? MAX_U32,
        max_pending_requests: cp.http?.http1MaxPendingRequests ?? MAX_U32,
        max_requests: cp.http?.http2MaxRequests ?? MAX_U32,
        max_retries: cp.http?.maxRetries ?? MAX_U32,
      },
    ],
  };
}

/** Istio's applyOutlierDetection, field for field (success-rate ejection off, panic threshold 0 by default). */
export function outlierDetection(o: OutlierDetection): { outlier: EnvoyObject; panicThreshold: number | undefined } {
  const out: EnvoyObject = { enforcing_success_rate: 0 };
  if (o.consecutive5xxErrors !== undefined) {
    out['consecutive_5xx'] = o.consecutive5xxErrors;
    out['enforcing_consecutive_5xx'] = o.consecutive5xxErrors > 0 ? 100 : 0;
  }
  if (o.consecutiveGatewayErrors !== undefined) {
    out['consecutive_gateway_failure'] = o.consecutiveGatewayErrors;
    out['enforcing_consecutive_gateway_failure'] = o.consecutiveGatewayErrors > 0 ? 100 : 0;
  }
  if (o.interval) out['interval'] = protoDuration(o.interval);
  if (o.baseEjectionTime) out['base_ejection_time'] = protoDuration(o.baseEjectionTime);
  if (o.maxEjectionPercent) out['max_ejection_percent'] = o.maxEjectionPercent;
  if (o.splitExternalLocalOriginErrors) {
    out['split_external_local_origin_errors'] = true;
    if (o.consecutiveLocalOriginFailures) {
      out['consecutive_local_origin_failure'] = o.consecutiveLocalOriginFailures;
      out['enforcing_consecutive_local_origin_failure'] = 100;
    }
    out['enforcing_local_origin_success_rate'] = 0;
  }
  // Istio sets the panic threshold to minHealthPercent, 0 when unset: with few endpoints per
  // service, Envoy's 50 % panic mode would send traffic to ejected hosts and defeat failover.
  return { outlier: out, panicThreshold: o.minHealthPercent ?? 0 };
}

/** Adds HTTP protocol options (keeping the HTTP/2 choice cds.ts made) for per-connection limits. */
function protocolOptions(c: EnvoyObject, cp: ConnectionPoolSettings): void {
  const common: EnvoyObject = {};
  if (cp.http?.maxRequestsPerConnection) common['max_requests_per_connection'] = cp.http.maxRequestsPerConnection;
  if (cp.http?.idleTimeout) common['idle_timeout'] = protoDuration(cp.http.idleTimeout);
  if (Object.keys(common).length === 0) return;
  const key = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
  const all = (c['typed_extension_protocol_options'] as EnvoyObject | undefined) ?? {};
  const existing = (all[key] as EnvoyObject | undefined) ?? {
    '@type': HTTP_PROTOCOL_OPTIONS_TYPE,
    // Envoy requires one upstream protocol choice.
    explicit_http_config: { http_protocol_options: {} },
  };
  c['typed_extension_protocol_options'] = { ...all, [key]: { ...existing, common_http_protocol_options: common } };
}

/**
 * Applies the effective policy of (rule, port, subset) to an outbound cluster built by cds.ts,
 * including its transport socket (DestinationRule tls, else auto mTLS). Returns the cluster.
 */
export function applyPolicy(push: PushContext, c: EnvoyObject, svc: Service, port: number, subset: string, dr: DestinationRule | undefined): EnvoyObject {
  const p = effectivePolicy(dr, port, subset);
  switch (p.loadBalancer?.simple) {
    case 'LEAST_REQUEST':
    case 'LEAST_CONN':
      c['lb_policy'] = 'LEAST_REQUEST';
      break;
    case 'RANDOM':
      c['lb_policy'] = 'RANDOM';
      break;
    default:
    // ROUND_ROBIN is Envoy's default (not on the wire); PASSTHROUGH and consistentHash are skipped.
  }
  const cp = p.connectionPool;
  if (cp) {
    if (cp.tcp?.connectTimeout) c['connect_timeout'] = protoDuration(cp.tcp.connectTimeout);
    c['circuit_breakers'] = circuitBreakers(cp);
    protocolOptions(c, cp);
  }
  if (p.outlierDetection) {
    const { outlier, panicThreshold } = outlierDetection(p.outlierDetection);
    c['outlier_detection'] = outlier;
    if (panicThreshold !== undefined) {
      const common = (c['common_lb_config'] as EnvoyObject | undefined) ?? {};
      c['common_lb_config'] = { ...common, healthy_panic_threshold: panicThreshold > 0 ? { value: panicThreshold } : {} };
    }
  }
  const ts = transportSocket(push, svc, port, subset, p.tls);
  if (ts) c['transport_socket'] = ts;
  else delete c['transport_socket'];
  return c;
}
