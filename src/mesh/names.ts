/**
 * Istio's resource names (DESIGN §4), so that Envoy users, istioctl-style tooling and remote
 * east-west gateways all agree on them. The SNI form exists because `|` is not allowed in a DNS
 * name: a gateway that routes on SNI without decrypting must be able to recover the cluster.
 */

/** `outbound|<port>|<subset>|<fqdn>`; the subset is empty for the whole service. */
export function outboundClusterName(port: number, hostname: string, subset = ''): string {
  return `outbound|${port}|${subset}|${hostname}`;
}

/** `outbound_.<port>_.<subset>_.<fqdn>`: the SNI a sidecar sends, and the gateway's cluster name. */
export function outboundSni(port: number, hostname: string, subset = ''): string {
  return `outbound_.${port}_.${subset}_.${hostname}`;
}

/** `inbound|<targetPort>||`: keyed by the port the workload listens on, as Istio ≥ 1.10 does. */
export function inboundClusterName(targetPort: number): string {
  return `inbound|${targetPort}||`;
}

export interface ParsedOutbound {
  readonly port: number;
  readonly subset: string;
  readonly hostname: string;
}

/** Parses both `outbound|…` and `outbound_.…` forms; undefined when `name` is neither. */
export function parseOutboundName(name: string): ParsedOutbound | undefined {
  let m = /^outbound\|(\d+)\|([^|]*)\|(.+)$/.exec(name);
  m ??= /^outbound_\.(\d+)_\.(.*?)_\.(.+)$/.exec(name);
  if (!m) return undefined;
  const port = Number(m[1]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { port, subset: m[2]!, hostname: m[3]! };
}

/** The route configuration of the explicit HTTP proxy listener on 15001 (see 0007). */
export const HTTP_PROXY_ROUTE_NAME = '15001';
export const OUTBOUND_LISTENER_NAME = 'virtualOutbound';
export const EAST_WEST_LISTENER_NAME = 'eastWestGateway';

/** Istio's name for a listener on one address and port. */
export function listenerName(address: string, port: number): string {
  return `${address}_${port}`;
}

export const SECRET_DEFAULT = 'default';
export const SECRET_ROOTCA = 'ROOTCA';

/** The control plane's own identity: `spiffe://<td>/ns/istio-system/sa/isle-control-plane`. */
export const CONTROL_PLANE_NAME = 'isle-control-plane';
export const CONTROL_PLANE_NAMESPACE = 'istio-system';

/**
 * Node metadata key of a proxy's admin address (`host:port`): where the control plane's mesh page
 * reads its `istio_requests_total` (ADR 0095). Isle's own; Envoy bootstraps may set it too.
 */
export const ADMIN_ADDRESS_METADATA = 'ISLE_ADMIN_ADDRESS';

/** The sidecar's DNS proxy, UDP and TCP (Istio's; capture redirects port 53 here). */
export const DNS_PROXY_PORT = 15053;
