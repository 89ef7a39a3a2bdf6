/**
 * LDS (the east-west gateway's listener is built in gateway.ts). All listeners are per proxy: they
 * bind the proxy's own address (universal mode) and follow its inbound ports.
 *
 * - `virtualOutbound` on `<bind>:15001`: the app's explicit HTTP proxy (HTTP_PROXY, curl -x), a
 *   chain matching `destination_port: 15001` whose HCM routes on Host through RDS `15001`; plus the
 *   chains captured connections match on their original destination (outbound.ts, ADR 0071).
 * - `<ip>_<targetPort>` per inbound port, by the port's PeerAuthentication mode (peerauthn.ts):
 *   STRICT: one chain matching `transport_protocol: tls` that terminates mTLS (client certificate
 *   required) and hands the request to `inbound|<targetPort>||`, telling the app the peer's
 *   SPIFFE id in XFCC; PERMISSIVE: that chain plus a plaintext one matching `raw_buffer`;
 *   DISABLE: one plaintext chain matching everything (no tls_inspector needed).
 * - Every inbound chain carries the workload's AuthorizationPolicies (authz.ts): RBAC HTTP filters
 *   before the router on HTTP ports, RBAC network filters before tcp_proxy on TCP ports.
 */
import { bindAddress, type InboundPort, type Proxy } from '../model/proxy.js';
import type { MeshInfo, PushContext } from '../model/pushcontext.js';
import { ISTIO_JSON_FORMAT, ISTIO_TEXT_FORMAT } from '../mesh/accesslog.js';
import { DOWNSTREAM_TLS_CONTEXT_TYPE, HTTP_CONNECTION_MANAGER_TYPE } from '../mesh/typeurls.js';
import {
  adsConfigSource,
  commonTlsContext,
  faultFilter,
  isHttp,
  routerFilter,
  socketAddress,
  httpInspector,
  originalDstFilter,
  tlsInspector,
  type EnvoyObject,
  type ResourceGroup,
} from './common.js';
import { authzFilters, type AuthzFilters } from './authz.js';
import { hcmTracing } from './tracing.js';
import { captureChains, defaultOutboundChain, tcpProxyFilter } from './outbound.js';
import { gatewayListenerGroups } from './gateway.js';
import { patchListeners } from './envoyfilter.js';
import { ingressListeners, isEastWest } from './ingress.js';
import { inboundMtlsMode, workloadMtls, type WorkloadMtls } from './peerauthn.js';
import { HTTP_PROXY_ROUTE_NAME, inboundClusterName, listenerName, OUTBOUND_LISTENER_NAME } from '../mesh/names.js';

export const OUTBOUND_PORT = 15001;

/** meshConfig.accessLogFile → Envoy's file access logger with Istio's TEXT or JSON format. */
function accessLog(mesh: MeshInfo | undefined): EnvoyObject[] | undefined {
  const l = mesh?.accessLog;
  if (!l) return undefined;
  const log_format = l.encoding === 'JSON' ? { json_format: { ...ISTIO_JSON_FORMAT } } : { text_format_source: { inline_string: ISTIO_TEXT_FORMAT } };
  return [{ name: 'envoy.access_loggers.file', typed_config: { '@type': FILE_ACCESS_LOG_TYPE, path: l.file, log_format } }];
}

const FILE_ACCESS_LOG_TYPE = 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';

function hcm(mesh: MeshInfo | undefined, config: EnvoyObject, filters: readonly EnvoyObject[] = [], tracing?: EnvoyObject): EnvoyObject {
  const logs = accessLog(mesh);
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: { '@type': HTTP_CONNECTION_MANAGER_TYPE, ...config, ...(logs ? { access_log: logs } : {}), ...(tracing ? { tracing } : {}), http_filters: [...filters, routerFilter()] },
  };
}

/** The network filters of an inbound chain: RBAC (AuthorizationPolicy) first, then the terminal filter. */
function inboundFilters(mesh: MeshInfo, statPrefix: string, cluster: string, http: boolean, mtls: boolean, authz: AuthzFilters, tracing: EnvoyObject | undefined): EnvoyObject[] {
  return http ? [inboundFilter(mesh, statPrefix, cluster, true, mtls, authz.http, tracing)] : [...authz.network, inboundFilter(mesh, statPrefix, cluster, false, mtls, [], undefined)];
}

export function outboundListener(push: PushContext, proxy: Proxy, tracing?: EnvoyObject): EnvoyObject {
  const bind = bindAddress(proxy);
  const http = hcm(push.mesh, {
    stat_prefix: 'outbound_http_proxy',
    rds: { config_source: adsConfigSource(), route_config_name: HTTP_PROXY_ROUTE_NAME },
    // Proxy clients send absolute-form targets (`GET http://helloworld:5000/hello`).
    http_protocol_options: { allow_absolute_url: true },
    // Always present, as in Istio: VirtualService faults are per-route config for it.
  }, [faultFilter()], tracing);
  return {
    name: OUTBOUND_LISTENER_NAME,
    address: socketAddress(bind, OUTBOUND_PORT),
    traffic_direction: 'OUTBOUND',
    // Captured connections are matched on where they were going, and on what they speak.
    listener_filters: [originalDstFilter(), tlsInspector(), httpInspector()],
    filter_chains: [{ name: 'http-proxy', filter_chain_match: { destination_port: OUTBOUND_PORT }, filters: [http] }, ...(proxy.interception === 'REDIRECT' ? captureChains(push, proxy, http) : [])],
    default_filter_chain: defaultOutboundChain(push),
  };
}

function inboundFilter(mesh: MeshInfo, statPrefix: string, cluster: string, http: boolean, mtls: boolean, httpFilters: readonly EnvoyObject[], tracing: EnvoyObject | undefined): EnvoyObject {
  if (!http) return tcpProxyFilter(statPrefix, cluster);
  return hcm(mesh, {
    stat_prefix: statPrefix,
    route_config: {
      name: cluster,
      virtual_hosts: [{ name: cluster, domains: ['*'], routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster, timeout: '0s', max_grpc_timeout: '0s' } }] }],
      validate_clusters: false,
    },
    // The app learns who called from XFCC; a plaintext caller's own XFCC is never trusted.
    forward_client_cert_details: mtls ? 'SANITIZE_SET' : 'SANITIZE',
    ...(mtls ? { set_current_client_cert_details: { uri: true } } : {}),
  }, httpFilters, tracing);
}

function inboundListener(push: PushContext, proxy: Proxy, targetPort: number, ports: readonly InboundPort[], mtls: WorkloadMtls): EnvoyObject {
  const name = listenerName(proxy.ip, targetPort);
  const cluster = inboundClusterName(targetPort);
  // A port several services share is HTTP only if all of them say so; TCP proxying is always safe.
  const http = ports.every((p) => isHttp(p.protocol));
  const mode = inboundMtlsMode(push, proxy, targetPort, mtls);
  const authz = authzFilters(push, proxy, targetPort, !http);
  const tracing = http ? hcmTracing(push, proxy, 'SERVER') : undefined;
  if (mode === 'DISABLE') {
    return {
      name,
      address: socketAddress(proxy.ip, targetPort),
      traffic_direction: 'INBOUND',
      filter_chains: [{ name: 'plaintext', filters: inboundFilters(push.mesh, `inbound_${name}`, cluster, http, false, authz, tracing) }],
    };
  }
  const chains: EnvoyObject[] = [
    {
      name: 'mtls',
      filter_chain_match: { transport_protocol: 'tls' },
      filters: inboundFilters(push.mesh, `inbound_${name}`, cluster, http, true, authz, tracing),
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        // HTTP ports offer h2 and http/1.1 as Istio's inbound chains do (ADR 0080); TCP ports nothing.
        typed_config: { '@type': DOWNSTREAM_TLS_CONTEXT_TYPE, common_tls_context: http ? { ...commonTlsContext([]), alpn_protocols: ['h2', 'http/1.1'] } : commonTlsContext([]), require_client_certificate: true },
      },
    },
  ];
  if (mode === 'PERMISSIVE') {
    chains.push({
      name: 'plaintext',
      filter_chain_match: { transport_protocol: 'raw_buffer' },
      filters: inboundFilters(push.mesh, `inbound_${name}`, cluster, http, false, authz, tracing),
    });
  }
  return {
    name,
    address: socketAddress(proxy.ip, targetPort),
    traffic_direction: 'INBOUND',
    // Sets transport_protocol, which the chains match on.
    listener_filters: [tlsInspector()],
    filter_chains: chains,
  };
}

export function inboundListeners(push: PushContext, proxy: Proxy): EnvoyObject[] {
  const byTarget = new Map<number, InboundPort[]>();
  for (const p of proxy.inbound) {
    const l = byTarget.get(p.targetPort);
    if (l) l.push(p);
    else byTarget.set(p.targetPort, [p]);
  }
  const mtls = workloadMtls(push, proxy);
  return [...byTarget].map(([t, ports]) => inboundListener(push, proxy, t, ports, mtls));
}

export function sidecarListenerGroups(push: PushContext, proxy: Proxy): ResourceGroup[] {
  return [{ build: () => [outboundListener(push, proxy, hcmTracing(push, proxy, 'CLIENT')), ...inboundListeners(push, proxy)] }];
}

export function listenerGroups(push: PushContext, proxy: Proxy): ResourceGroup[] {
  // EnvoyFilter patches (rate limits) ride on the generated listeners, per proxy as LDS already is.
  const patched = (g: ResourceGroup): ResourceGroup => ({ ...g, build: () => patchListeners(push, proxy, g.build()) });
  if (proxy.type !== 'gateway') return sidecarListenerGroups(push, proxy).map(patched);
  return [...(isEastWest(push, proxy) ? gatewayListenerGroups(push, proxy) : []), patched({ build: () => ingressListeners(push, proxy) })];
}

/** LDS for a proxy. */
export function generateListeners(push: PushContext, proxy: Proxy): EnvoyObject[] {
  return listenerGroups(push, proxy).flatMap((g) => g.build());
}
