/**
 * Shapes shared by the generators. Objects are Envoy v3 messages in the codec's convention
 * (snake_case proto field names, proto3 JSON forms; see src/xds/codec.ts). Fields at their proto3
 * default ('' / 0 / false) are left out, so that a decode of the encoded bytes gives back the very
 * same object: the golden tests assert that round trip.
 */
import type { Protocol } from '../registry/model.js';
import { HTTP_INSPECTOR_TYPE, ORIGINAL_DST_TYPE, ROUTER_TYPE, TLS_INSPECTOR_TYPE } from '../mesh/typeurls.js';
import { SECRET_DEFAULT, SECRET_ROOTCA } from '../mesh/names.js';

export type EnvoyObject = Record<string, unknown>;

/**
 * Resources of one type built together. A group with a `shareKey` is identical for every proxy
 * that computes the same key in the same push, so the index builds and serializes it once per
 * push and hands every such proxy the same XdsResource objects; without one it is per proxy.
 */
export interface ResourceGroup {
  readonly shareKey?: string;
  build(): EnvoyObject[];
  /**
   * What `build()` returns, but only the resources of these hostnames are built: every other one
   * is its name, in its place. For a push that moved nothing but these hosts' endpoints, whose
   * other resources are the previous push's (controlplane/snapshots.ts). Groups whose resources
   * are not one per (host, port, subset) leave it out.
   */
  buildHosts?(hosts: ReadonlySet<string>): (EnvoyObject | string)[];
}

export function flatten(groups: readonly ResourceGroup[]): EnvoyObject[] {
  return groups.flatMap((g) => g.build());
}

/** Every xDS reference goes over the ADS stream the proxy already has. */
export function adsConfigSource(): EnvoyObject {
  return { ads: {}, resource_api_version: 'V3' };
}

export function sdsSecretConfig(name: string): EnvoyObject {
  return { name, sds_config: adsConfigSource() };
}

/** Istio's `connect_timeout` default. */
export const CONNECT_TIMEOUT = '10s';

export function socketAddress(address: string, port: number): EnvoyObject {
  return { socket_address: { address, port_value: port } };
}

/** HTTP/2 upstream: Istio's rule (HTTP2, GRPC, GRPC-WEB). */
export function isHttp2(p: Protocol): boolean {
  return p === 'HTTP2' || p === 'GRPC' || p === 'GRPC-WEB';
}

/** Ports the HTTP connection manager can serve (the rest get TCP proxying or nothing). */
export function isHttp(p: Protocol): boolean {
  return p === 'HTTP' || isHttp2(p);
}

/**
 * The workload certificate (`default`) and the root bundle (`ROOTCA`), both by SDS over ADS, as
 * istio-agent names them. `sans` narrows the peer to the given SPIFFE ids (URI SANs); none means
 * any certificate chaining to the root.
 */
export function commonTlsContext(sans: readonly string[]): EnvoyObject {
  return {
    tls_certificate_sds_secret_configs: [sdsSecretConfig(SECRET_DEFAULT)],
    combined_validation_context: {
      default_validation_context:
        sans.length > 0 ? { match_typed_subject_alt_names: sans.map((s) => ({ san_type: 'URI', matcher: { exact: s } })) } : {},
      validation_context_sds_secret_config: sdsSecretConfig(SECRET_ROOTCA),
    },
  };
}

export function routerFilter(): EnvoyObject {
  return { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } };
}

export const FAULT_FILTER_NAME = 'envoy.filters.http.fault';
export const HTTP_FAULT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';

/** The fault filter with no filter-wide fault: routes configure it (typed_per_filter_config). */
export function faultFilter(): EnvoyObject {
  return { name: FAULT_FILTER_NAME, typed_config: { '@type': HTTP_FAULT_TYPE } };
}

export function httpInspector(): EnvoyObject {
  return { name: 'envoy.filters.listener.http_inspector', typed_config: { '@type': HTTP_INSPECTOR_TYPE } };
}

export function originalDstFilter(): EnvoyObject {
  return { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': ORIGINAL_DST_TYPE } };
}

export function tlsInspector(): EnvoyObject {
  return { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': TLS_INSPECTOR_TYPE } };
}

export const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
