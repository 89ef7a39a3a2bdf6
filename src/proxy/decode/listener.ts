/** Listener (LDS) → ListenerModel, with HttpConnectionManager / TcpProxy and downstream TLS. */
import { compileJsonFormat, compileTextFormat, type AccessLogModel } from '../accesslog.js';
import { ENVOY_DEFAULT_FORMAT } from '../../mesh/accesslog.js';
import { isIP } from 'node:net';
import type {
  RbacFilterModel,
  ClusterSpecifierModel,
  DecodeResult,
  DownstreamTlsModel,
  FilterChainMatchModel,
  FilterChainModel,
  ForwardClientCertMode,
  HttpConnectionManagerModel,
  HttpRateLimitFilterModel,
  ListenerKind,
  ListenerModel,
  NetworkFilterModel,
  RouteSourceModel,
  TcpProxyModel,
} from '../model.js';
import { HTTP_RBAC_TYPE, NETWORK_RBAC_TYPE } from '../../mesh/typeurls.js';
import { cidr, decodeRbacFilter } from '../rbac/decode.js';
import { rateLimitHttpFilter } from './ratelimit.js';
import { DOWNSTREAM_TLS_CONTEXT } from './cluster.js';
import { FAULT_FILTER, HTTP_FAULT_TYPE, httpFault, routeConfigBody } from './route.js';
import { decodeTracing } from './tracing.js';
import { Errors, Reader, commonTlsContext, describe, isObj } from './util.js';

const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP_PROXY_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const RAW_BUFFER = 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';

const LISTENER_FILTERS: Record<string, 'tls' | 'http' | 'ignore'> = {
  'envoy.filters.listener.tls_inspector': 'tls',
  'envoy.filters.listener.http_inspector': 'http',
  // Without transparent capture there is no original destination to recover.
  'envoy.filters.listener.original_dst': 'ignore',
};

/**
 * HTTP filters that only collect telemetry; skipping them changes no request. Anything else
 * (ext_authz, a filter-level fault…) is refused: silently dropping an authorization filter would open
 * the door it was meant to close.
 */
const IGNORABLE_HTTP_FILTERS = new Set(['envoy.filters.http.grpc_stats', 'istio.metadata_exchange', 'istio.stats']);

export function decodeListener(obj: unknown): DecodeResult<ListenerModel> {
  if (!isObj(obj)) return { errors: [`listener: expected an object, got ${describe(obj)}`] };
  const name = typeof obj['name'] === 'string' ? obj['name'] : '';
  if (!name) return { errors: ['listener without a name'] };
  const errs = new Errors(`listener ${JSON.stringify(name)}`);
  const r = new Reader(obj, '', errs);

  const sa = r.obj_('address')?.obj_('socket_address');
  let address = '';
  let port = 0;
  if (!sa) errs.add('address.socket_address', 'missing socket address');
  else {
    address = sa.str('address') ?? '';
    if (isIP(address) === 0) sa.errs.add(sa.p('address'), `${JSON.stringify(address)} is not an IP address`);
    port = sa.int('port_value', 0, 0, 65535);
    if (sa.has('named_port')) sa.errs.add(sa.p('named_port'), 'is not supported');
  }
  for (const k of ['additional_addresses', 'api_listener', 'internal_listener', 'udp_listener_config']) {
    if (r.has(k)) errs.add(k, 'is not supported by isle proxy');
  }

  let tlsInspector = false;
  let httpInspector = false;
  for (const f of r.objs('listener_filters')) {
    const kind = LISTENER_FILTERS[f.str('name') ?? ''];
    if (kind === 'tls') tlsInspector = true;
    else if (kind === 'http') httpInspector = true;
    else if (kind === undefined) f.errs.add(f.p('name'), `unsupported listener filter ${JSON.stringify(f.str('name'))}`);
  }

  const filterChains = r.objs('filter_chains').map((c) => filterChain(c));
  const dfc = r.obj_('default_filter_chain');
  const defaultFilterChain = dfc ? filterChain(dfc) : null;
  if (filterChains.length === 0 && !defaultFilterChain) errs.add('filter_chains', 'a listener needs at least one filter chain');

  // Envoy refuses two chains with identical match criteria: which one wins would be arbitrary.
  const seen = new Map<string, number>();
  filterChains.forEach((c, i) => {
    const key = JSON.stringify([
      [...c.match.serverNames].sort(),
      c.match.transportProtocol ?? '',
      [...c.match.applicationProtocols].sort(),
      c.match.destinationPort ?? 0,
      c.match.prefixRanges.map((r) => `${r.address}/${r.prefixLen}`).sort(),
    ]);
    const other = seen.get(key);
    if (other !== undefined) errs.add(`filter_chains[${i}].filter_chain_match`, `same match as filter_chains[${other}]`);
    else seen.set(key, i);
  });

  const all = defaultFilterChain ? [...filterChains, defaultFilterChain] : filterChains;
  const sniClusters = new Map<string, string>();
  for (const c of filterChains) {
    // The exact-SNI shortcut only where the SNI alone decides (no address to match first).
    if (c.filter.kind === 'tcp' && c.filter.tcpProxy.cluster.kind === 'cluster' && c.match.prefixRanges.length === 0) {
      for (const sn of c.match.serverNames) if (!sn.startsWith('*')) sniClusters.set(sn, c.filter.tcpProxy.cluster.name);
    }
  }
  if (errs.any) return { errors: errs.list };
  return {
    ok: {
      name,
      address,
      port,
      kind: listenerKind(all),
      trafficDirection: r.enum_('traffic_direction', ['UNSPECIFIED', 'INBOUND', 'OUTBOUND'] as const, 'UNSPECIFIED'),
      tlsInspector,
      httpInspector,
      filterChains,
      defaultFilterChain,
      sniClusters,
    },
  };
}

function listenerKind(chains: readonly FilterChainModel[]): ListenerKind {
  // Network RBAC is enforced where chains are picked per connection (InboundListener).
  if (chains.some((c) => c.rbac.length > 0)) return 'mixed';
  if (chains.length > 0 && chains.every((c) => c.filter.kind === 'http')) return 'http';
  if (chains.length > 0 && chains.every((c) => c.filter.kind === 'tcp')) {
    return chains.every((c) => c.match.serverNames.length > 0 && c.tls === null) ? 'sni-passthrough' : 'tcp';
  }
  return 'mixed';
}

function filterChain(r: Reader): FilterChainModel {
  const m = r.obj_('filter_chain_match');
  let match: FilterChainMatchModel = { serverNames: [], transportProtocol: undefined, applicationProtocols: [], destinationPort: undefined, prefixRanges: [] };
  if (m) {
    for (const k of ['source_type', 'source_prefix_ranges', 'source_ports', 'direct_source_prefix_ranges', 'address_suffix']) {
      if (m.has(k) && !(Array.isArray(m.raw(k)) && (m.raw(k) as unknown[]).length === 0) && !(k === 'source_type' && m.raw(k) === 'ANY')) {
        m.errs.add(m.p(k), 'is not supported by isle proxy');
      }
    }
    const serverNames = m.strs('server_names').map((s) => s.toLowerCase());
    serverNames.forEach((s, i) => {
      if (s.includes('*') && !(s.startsWith('*.') && s.indexOf('*', 1) < 0)) {
        m.errs.add(m.p(`server_names[${i}]`), `invalid server name ${JSON.stringify(s)}: only a leading "*." wildcard is allowed`);
      }
    });
    const dp = m.has('destination_port') ? m.int('destination_port', 0, 1, 65535) : undefined;
    match = {
      serverNames,
      transportProtocol: m.str('transport_protocol') || undefined,
      applicationProtocols: m.strs('application_protocols'),
      destinationPort: dp,
      prefixRanges: m.objs('prefix_ranges').map((c, i) => cidr(c, m.p(`prefix_ranges[${i}]`), m.errs)),
    };
  }

  const filters = r.objs('filters');
  let filter: NetworkFilterModel | undefined;
  if (filters.length === 0) r.errs.add(r.p('filters'), 'a filter chain needs at least one filter');
  const rbac: RbacFilterModel[] = [];
  filters.forEach((f, i) => {
    const tc = f.obj_('typed_config');
    const type = tc?.str('@type');
    const terminal = i === filters.length - 1;
    if (type === NETWORK_RBAC_TYPE && tc) {
      if (terminal) f.errs.add(f.path, 'an RBAC filter cannot be the last network filter');
      const m = decodeRbacFilter(tc);
      if (m) rbac.push(m);
    } else if (type === HCM_TYPE && tc) {
      if (!terminal) f.errs.add(f.path, 'the HTTP connection manager must be the last filter');
      filter = { kind: 'http', hcm: hcm(tc) };
    } else if (type === TCP_PROXY_TYPE && tc) {
      if (!terminal) f.errs.add(f.path, 'the TCP proxy must be the last filter');
      filter = { kind: 'tcp', tcpProxy: tcpProxy(tc) };
    } else {
      f.errs.add(tc ? tc.p('@type') : f.p('typed_config'), `unsupported network filter ${JSON.stringify(type ?? f.str('name'))}`);
    }
  });

  return {
    name: r.str('name') ?? '',
    match,
    tls: downstreamTls(r.obj_('transport_socket')),
    filter: filter ?? { kind: 'tcp', tcpProxy: { statPrefix: '', cluster: { kind: 'cluster', name: '' }, idleTimeoutMs: 0 } },
    rbac,
  };
}

function downstreamTls(ts: Reader | undefined): DownstreamTlsModel | null {
  if (!ts) return null;
  const tc = ts.obj_('typed_config');
  const type = tc?.str('@type');
  if (!tc || type === RAW_BUFFER) return null;
  if (type !== DOWNSTREAM_TLS_CONTEXT) {
    ts.errs.add(ts.p('typed_config.@type'), `unsupported transport socket ${JSON.stringify(type)}`);
    return null;
  }
  const common = commonTlsContext(tc.obj_('common_tls_context'));
  if (common.certificates.length === 0) tc.errs.add(tc.p('common_tls_context'), 'downstream TLS needs a server certificate');
  const requireClientCertificate = tc.bool('require_client_certificate', false);
  if (requireClientCertificate && !common.validation) {
    tc.errs.add(tc.p('require_client_certificate'), 'requiring a client certificate needs a validation context');
  }
  return {
    requireClientCertificate,
    certificates: common.certificates,
    validation: common.validation,
    matchSans: common.matchSans,
    alpnProtocols: common.alpnProtocols,
  };
}

const FCC: readonly ForwardClientCertMode[] = ['SANITIZE', 'FORWARD_ONLY', 'APPEND_FORWARD', 'SANITIZE_SET', 'ALWAYS_FORWARD_ONLY'];

function hcm(r: Reader): HttpConnectionManagerModel {
  const statPrefix = r.str('stat_prefix') ?? '';
  if (!statPrefix) r.errs.add(r.p('stat_prefix'), 'must not be empty');
  const which = r.oneof(['rds', 'route_config', 'scoped_routes']);
  let routeSource: RouteSourceModel = { kind: 'rds', routeConfigName: '' };
  if (which === 'rds') {
    const rds = r.obj_('rds')!;
    const routeConfigName = rds.str('route_config_name') ?? '';
    if (!routeConfigName) rds.errs.add(rds.p('route_config_name'), 'must not be empty');
    const src = rds.obj_('config_source');
    if (!src) rds.errs.add(rds.p('config_source'), 'missing config source');
    else if (!src.has('ads') && !src.has('self')) src.errs.add(src.path, 'only ads (or self) config sources are supported');
    routeSource = { kind: 'rds', routeConfigName };
  } else if (which === 'route_config') {
    routeSource = { kind: 'inline', config: routeConfigBody(r.obj_('route_config')!) };
  } else if (which === 'scoped_routes') {
    r.errs.add(r.p('scoped_routes'), 'is not supported by isle proxy');
  } else {
    r.errs.add(r.path, 'the HTTP connection manager needs rds or route_config');
  }

  const httpFilters: string[] = [];
  const rbac: RbacFilterModel[] = [];
  const rateLimits: HttpRateLimitFilterModel[] = [];
  const hf = r.objs('http_filters');
  if (hf.length === 0) r.errs.add(r.p('http_filters'), 'the router filter is required');
  hf.forEach((f, i) => {
    const name = f.str('name') ?? '';
    const type = f.obj_('typed_config')?.str('@type');
    const isRouter = type === ROUTER_TYPE || (type === undefined && name === 'envoy.filters.http.router');
    const limit = isRouter ? false : rateLimitHttpFilter(f);
    if (limit !== false) {
      if (limit) rateLimits.push(limit);
      if (i === hf.length - 1) f.errs.add(f.path, 'the last HTTP filter must be the router');
    } else if (isRouter) {
      if (i !== hf.length - 1) f.errs.add(f.path, 'the router must be the last HTTP filter');
    } else if (name === FAULT_FILTER && (type === undefined || type === HTTP_FAULT_TYPE)) {
      // Isle injects faults from per-route config only; a filter-wide fault would be skipped.
      const c = f.obj_('typed_config');
      const fault = c ? httpFault(c) : undefined;
      if (fault?.delay || fault?.abort) f.errs.add(f.p('typed_config'), 'filter-level faults are not supported by isle proxy (use typed_per_filter_config on routes)');
      if (i === hf.length - 1) f.errs.add(f.path, 'the last HTTP filter must be the router');
    } else if (type === HTTP_RBAC_TYPE) {
      const m = decodeRbacFilter(f.obj_('typed_config')!);
      if (m) rbac.push(m);
      if (i === hf.length - 1) f.errs.add(f.path, 'the last HTTP filter must be the router');
    } else if (!IGNORABLE_HTTP_FILTERS.has(name)) {
      f.errs.add(f.p('name'), `unsupported HTTP filter ${JSON.stringify(name)}`);
    } else if (i === hf.length - 1) {
      f.errs.add(f.path, 'the last HTTP filter must be the router');
    }
    httpFilters.push(name);
  });

  const sccd = r.obj_('set_current_client_cert_details');
  const accessLogs = r.objs('access_log').map(accessLog).filter((l): l is AccessLogModel => l !== undefined);
  const tr = r.obj_('tracing');
  const tracing = tr ? decodeTracing(tr) : undefined;
  return {
    ...(accessLogs.length ? { accessLogs } : {}),
    ...(tracing ? { tracing } : {}),
    statPrefix,
    routeSource,
    codecType: r.enum_('codec_type', ['AUTO', 'HTTP1', 'HTTP2', 'HTTP3'] as const, 'AUTO'),
    forwardClientCertDetails: r.enum_('forward_client_cert_details', FCC, 'SANITIZE'),
    setCurrentClientCertDetails: {
      subject: sccd?.bool('subject', false) ?? false,
      cert: sccd?.bool('cert', false) ?? false,
      chain: sccd?.bool('chain', false) ?? false,
      dns: sccd?.bool('dns', false) ?? false,
      uri: sccd?.bool('uri', false) ?? false,
    },
    allowAbsoluteUrl: r.obj_('http_protocol_options')?.bool('allow_absolute_url', false) ?? false,
    useRemoteAddress: r.bool('use_remote_address', false),
    xffNumTrustedHops: r.int('xff_num_trusted_hops', 0),
    httpFilters,
    streamIdleTimeoutMs: r.durationMs('stream_idle_timeout') ?? 300_000,
    requestTimeoutMs: r.durationMs('request_timeout') ?? 0,
    rbac,
    ...(rateLimits.length ? { rateLimits } : {}),
  };
}

const FILE_ACCESS_LOG = 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';

/** Envoy's file access logger; anything else (gRPC/OTel loggers, filters) is refused by name. */
function accessLog(r: Reader): AccessLogModel | undefined {
  const c = r.obj_('typed_config');
  if (c?.str('@type') !== FILE_ACCESS_LOG) {
    r.errs.add(r.p('typed_config'), `unsupported access logger ${JSON.stringify(c?.str('@type') ?? r.str('name'))} (isle proxy has ${FILE_ACCESS_LOG})`);
    return undefined;
  }
  if (r.has('filter')) r.errs.add(r.p('filter'), 'access log filters are not supported by isle proxy');
  const path = c.str('path') ?? '';
  if (!path) c.errs.add(c.p('path'), 'must not be empty');
  const lf = c.obj_('log_format');
  if (c.has('format') || c.has('json_format') || c.has('typed_json_format')) c.errs.add(c.path, 'use log_format (the deprecated format fields are not supported)');
  try {
    const json = lf?.obj_('json_format');
    if (json) {
      const fields: Record<string, string> = {};
      for (const [k, v] of Object.entries(json.obj)) {
        if (typeof v === 'string') fields[k] = v;
        else json.errs.add(json.p(k), 'only string values are supported');
      }
      return { path, encoding: 'JSON', format: compileJsonFormat(fields) };
    }
    const text = lf?.obj_('text_format_source')?.str('inline_string');
    if (lf && text === undefined) lf.errs.add(lf.path, 'only text_format_source.inline_string and json_format are supported');
    return { path, encoding: 'TEXT', format: compileTextFormat(text ?? ENVOY_DEFAULT_FORMAT) };
  } catch (e) {
    (lf ?? c).errs.add((lf ?? c).path, (e as Error).message);
    return undefined;
  }
}

function tcpProxy(r: Reader): TcpProxyModel {
  const statPrefix = r.str('stat_prefix') ?? '';
  if (!statPrefix) r.errs.add(r.p('stat_prefix'), 'must not be empty');
  const which = r.oneof(['cluster', 'weighted_clusters']);
  let cluster: ClusterSpecifierModel = { kind: 'cluster', name: '' };
  if (which === 'cluster') {
    const name = r.str('cluster') ?? '';
    if (!name) r.errs.add(r.p('cluster'), 'must not be empty');
    cluster = { kind: 'cluster', name };
  } else if (which === 'weighted_clusters') {
    const w = r.obj_('weighted_clusters')!;
    const clusters = w.objs('clusters').map((c) => {
      const name = c.str('name') ?? '';
      if (!name) c.errs.add(c.p('name'), 'weighted cluster without a name');
      const weight = c.int('weight', 0, 1);
      return { name, weight, mutations: { requestHeadersToAdd: [], requestHeadersToRemove: [], responseHeadersToAdd: [], responseHeadersToRemove: [] }, hostRewriteLiteral: undefined };
    });
    if (clusters.length === 0) w.errs.add(w.p('clusters'), 'at least one cluster is required');
    cluster = { kind: 'weighted', clusters, totalWeight: clusters.reduce((a, c) => a + c.weight, 0) };
  } else {
    r.errs.add(r.path, 'the TCP proxy needs cluster or weighted_clusters');
  }
  return { statPrefix, cluster, idleTimeoutMs: r.durationMs('idle_timeout') ?? 3_600_000 };
}
