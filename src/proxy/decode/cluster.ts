/** Cluster (CDS) → ClusterModel. */
import type {
  CircuitBreakersModel,
  ClusterModel,
  ClusterType,
  DecodeResult,
  EndpointsModel,
  LbPolicy,
  OutlierDetectionModel,
  UpstreamTlsModel,
} from '../model.js';
import { parseOutboundName } from '../../mesh/names.js';
import { endpointsBody } from './endpoints.js';
import { Errors, Reader, commonTlsContext, describe, isObj } from './util.js';

export const UPSTREAM_TLS_CONTEXT = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
export const DOWNSTREAM_TLS_CONTEXT = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const RAW_BUFFER = 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';
const HTTP_PROTOCOL_OPTIONS_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

export const DEFAULT_CIRCUIT_BREAKERS: CircuitBreakersModel = {
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
  maxRetries: 3,
};

export function decodeCluster(obj: unknown): DecodeResult<ClusterModel> {
  if (!isObj(obj)) return { errors: [`cluster: expected an object, got ${describe(obj)}`] };
  const name = typeof obj['name'] === 'string' ? obj['name'] : '';
  if (!name) return { errors: ['cluster without a name'] };
  const errs = new Errors(`cluster ${JSON.stringify(name)}`);
  const r = new Reader(obj, '', errs);

  const discovery = r.oneof(['type', 'cluster_type']);
  if (discovery === 'cluster_type') errs.add('cluster_type', 'custom cluster types are not supported by isle proxy');
  // ORIGINAL_DST (Istio's PassthroughCluster): only a captured connection knows where it goes.
  const type = r.enum_<ClusterType>('type', ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS', 'ORIGINAL_DST'], 'STATIC');

  let edsServiceName = name;
  let loadAssignment: EndpointsModel | null = null;
  if (type === 'EDS') {
    const eds = r.obj_('eds_cluster_config');
    if (!eds) errs.add('eds_cluster_config', 'an EDS cluster needs eds_cluster_config');
    else {
      edsServiceName = eds.str('service_name') || name;
      const src = eds.obj_('eds_config');
      // Isle's proxy speaks one ADS stream; anything else could never be satisfied.
      if (!src) eds.errs.add(eds.p('eds_config'), 'missing config source');
      else if (!src.has('ads') && !src.has('self')) src.errs.add(src.path, 'only ads (or self) config sources are supported');
    }
    if (r.has('load_assignment')) errs.add('load_assignment', 'an EDS cluster must not have load_assignment');
  } else if (type === 'ORIGINAL_DST') {
    if (r.has('load_assignment')) errs.add('load_assignment', 'an ORIGINAL_DST cluster must not have load_assignment');
  } else {
    const la = r.obj_('load_assignment');
    if (!la) errs.add('load_assignment', `a ${type} cluster needs load_assignment`);
    else {
      loadAssignment = endpointsBody(la, { allowHostnames: type !== 'STATIC' });
      const eps = loadAssignment.priorities.flatMap((p) => p.localities.flatMap((l) => l.endpoints));
      if (type === 'LOGICAL_DNS' && (eps.length !== 1 || loadAssignment.priorities.flatMap((p) => p.localities).length !== 1)) {
        errs.add('load_assignment', 'LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint');
      }
      // The inline assignment belongs to this cluster whatever it was named inside.
      loadAssignment = { ...loadAssignment, clusterName: name };
    }
  }

  const connectTimeoutMs = r.durationMs('connect_timeout') ?? 5000;
  if (connectTimeoutMs <= 0) errs.add('connect_timeout', 'must be greater than 0');

  const lbPolicy = r.enum_<LbPolicy | 'RING_HASH' | 'MAGLEV' | 'CLUSTER_PROVIDED' | 'LOAD_BALANCING_POLICY_CONFIG'>(
    'lb_policy',
    ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV', 'CLUSTER_PROVIDED', 'LOAD_BALANCING_POLICY_CONFIG'],
    'ROUND_ROBIN',
  );
  if (type === 'ORIGINAL_DST' && lbPolicy !== 'CLUSTER_PROVIDED') errs.add('lb_policy', 'an ORIGINAL_DST cluster needs CLUSTER_PROVIDED');
  else if (lbPolicy === 'CLUSTER_PROVIDED' && type !== 'ORIGINAL_DST') errs.add('lb_policy', 'CLUSTER_PROVIDED needs an ORIGINAL_DST cluster');
  else if (lbPolicy !== 'ROUND_ROBIN' && lbPolicy !== 'LEAST_REQUEST' && lbPolicy !== 'RANDOM' && lbPolicy !== 'CLUSTER_PROVIDED') {
    errs.add('lb_policy', `${lbPolicy} is not supported by isle proxy`);
  }
  if (r.has('load_balancing_policy')) errs.add('load_balancing_policy', 'is not supported by isle proxy');
  const lr = r.obj_('least_request_lb_config');
  const leastRequestChoiceCount = lr ? lr.int('choice_count', 2, 2) : 2;

  const common = r.obj_('common_lb_config');
  let healthyPanicThreshold = 50;
  let localityWeightedLb = false;
  if (common) {
    const which = common.oneof(['zone_aware_lb_config', 'locality_weighted_lb_config', 'consistent_hashing_lb_config']);
    localityWeightedLb = which === 'locality_weighted_lb_config';
    const hpt = common.obj_('healthy_panic_threshold');
    if (hpt) {
      healthyPanicThreshold = hpt.num('value', 0);
      if (healthyPanicThreshold < 0 || healthyPanicThreshold > 100) hpt.errs.add(hpt.p('value'), 'must be in [0, 100]');
    }
  }

  const od = r.obj_('outlier_detection');
  const outlierDetection = od ? outlier(od) : null;

  if (r.has('transport_socket_matches')) errs.add('transport_socket_matches', 'is not supported by isle proxy');
  const tls = upstreamTls(r.obj_('transport_socket'));

  let circuitBreakers = DEFAULT_CIRCUIT_BREAKERS;
  const cb = r.obj_('circuit_breakers');
  if (cb) {
    for (const t of cb.objs('thresholds')) {
      const prio = t.enum_('priority', ['DEFAULT', 'HIGH'] as const, 'DEFAULT');
      if (prio !== 'DEFAULT') continue;
      circuitBreakers = {
        maxConnections: t.int('max_connections', 1024),
        maxPendingRequests: t.int('max_pending_requests', 1024),
        maxRequests: t.int('max_requests', 1024),
        maxRetries: t.int('max_retries', 3),
      };
    }
  }

  let http2 = false;
  let maxRequestsPerConnection = r.int('max_requests_per_connection', 0);
  let idleTimeoutMs = 3_600_000;
  const tepo = r.obj_('typed_extension_protocol_options');
  if (tepo) {
    for (const key of Object.keys(tepo.obj)) {
      if (key !== HTTP_PROTOCOL_OPTIONS_KEY) {
        tepo.errs.add(tepo.p(key), 'unsupported protocol options');
        continue;
      }
      const hpo = tepo.obj_(key)!;
      const explicit = hpo.obj_('explicit_http_config');
      if (explicit) {
        const which = explicit.oneof(['http_protocol_options', 'http2_protocol_options', 'http3_protocol_options']);
        if (which === 'http3_protocol_options') explicit.errs.add(explicit.p(which), 'HTTP/3 is not supported by isle proxy');
        http2 = which === 'http2_protocol_options';
      } else if (hpo.has('auto_config')) {
        hpo.errs.add(hpo.p('auto_config'), 'is not supported by isle proxy');
      }
      const c = hpo.obj_('common_http_protocol_options');
      if (c) {
        idleTimeoutMs = c.durationMs('idle_timeout') ?? idleTimeoutMs;
        maxRequestsPerConnection = c.int('max_requests_per_connection', maxRequestsPerConnection);
      }
    }
  }

  const dnsLookupFamily = r.enum_('dns_lookup_family', ['AUTO', 'V4_ONLY', 'V6_ONLY', 'V4_PREFERRED', 'ALL'] as const, 'AUTO');
  if (r.has('health_checks') && r.arr('health_checks').length) errs.add('health_checks', 'active health checking is not supported by isle proxy');

  // Istio's cluster metadata (`filter_metadata.istio.services`): the service an inbound cluster
  // serves, for destination_service. Only read when it names exactly one service, as Istio does.
  const services = r.obj_('metadata')?.obj_('filter_metadata')?.obj_('istio')?.objs('services') ?? [];
  const service = services.length === 1 ? services[0]!.str('host') : undefined;
  // Parsed once per config rather than per request (destination_service of outbound requests).
  const outboundService = parseOutboundName(name)?.hostname;

  if (errs.any) return { errors: errs.list };
  return {
    ok: {
      name,
      ...(service ? { service } : {}),
      ...(outboundService ? { outboundService } : {}),
      type: type as ClusterType,
      edsServiceName,
      loadAssignment,
      connectTimeoutMs,
      lbPolicy: lbPolicy as LbPolicy,
      leastRequestChoiceCount,
      localityWeightedLb,
      healthyPanicThreshold,
      outlierDetection,
      tls,
      circuitBreakers,
      dnsLookupFamily,
      http2,
      maxRequestsPerConnection,
      idleTimeoutMs,
    },
  };
}

function percent(r: Reader, key: string, dflt: number): number {
  return r.int(key, dflt, 0, 100);
}

export function outlier(r: Reader): OutlierDetectionModel {
  const baseEjectionTimeMs = r.durationMs('base_ejection_time') ?? 30_000;
  const intervalMs = r.durationMs('interval') ?? 10_000;
  if (intervalMs <= 0) r.errs.add(r.p('interval'), 'must be greater than 0');
  if (baseEjectionTimeMs <= 0) r.errs.add(r.p('base_ejection_time'), 'must be greater than 0');
  const maxEjectionTimeMs = r.durationMs('max_ejection_time') ?? Math.max(300_000, baseEjectionTimeMs);
  if (r.has('max_ejection_time') && maxEjectionTimeMs < baseEjectionTimeMs) {
    r.errs.add(r.p('max_ejection_time'), 'must not be less than base_ejection_time');
  }
  return {
    consecutive5xx: r.int('consecutive_5xx', 5),
    consecutiveGatewayFailure: r.int('consecutive_gateway_failure', 5),
    consecutiveLocalOriginFailure: r.int('consecutive_local_origin_failure', 5),
    intervalMs,
    baseEjectionTimeMs,
    maxEjectionTimeMs,
    maxEjectionPercent: percent(r, 'max_ejection_percent', 10),
    enforcingConsecutive5xx: percent(r, 'enforcing_consecutive_5xx', 100),
    enforcingConsecutiveGatewayFailure: percent(r, 'enforcing_consecutive_gateway_failure', 0),
    enforcingConsecutiveLocalOriginFailure: percent(r, 'enforcing_consecutive_local_origin_failure', 100),
    enforcingSuccessRate: percent(r, 'enforcing_success_rate', 100),
    successRateMinimumHosts: r.int('success_rate_minimum_hosts', 5),
    successRateRequestVolume: r.int('success_rate_request_volume', 100),
    successRateStdevFactor: r.int('success_rate_stdev_factor', 1900),
    splitExternalLocalOriginErrors: r.bool('split_external_local_origin_errors', false),
    alwaysEjectOneHost: r.bool('always_eject_one_host', false),
  };
}

/** Upstream `transport_socket`: TLS or raw_buffer (null). */
function upstreamTls(ts: Reader | undefined): UpstreamTlsModel | null {
  if (!ts) return null;
  const tc = ts.obj_('typed_config');
  const type = tc?.str('@type');
  if (!tc || type === RAW_BUFFER) return null;
  if (type !== UPSTREAM_TLS_CONTEXT) {
    ts.errs.add(ts.p('typed_config.@type'), `unsupported transport socket ${JSON.stringify(type)}`);
    return null;
  }
  const common = commonTlsContext(tc.obj_('common_tls_context'));
  return {
    sni: tc.str('sni') || undefined,
    certificates: common.certificates,
    validation: common.validation,
    expectedSans: common.matchSans,
    alpnProtocols: common.alpnProtocols,
  };
}
