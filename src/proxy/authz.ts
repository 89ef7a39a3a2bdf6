/**
 * The interface of the proxy's authorization (RBAC) filter slot. The HTTP filter chain asks the
 * authorizer, if one is configured, before headers are rewritten and the request is routed, as
 * Envoy runs `envoy.filters.http.rbac` before the router. Identity facts come from the verified
 * connection (the peer certificate), never from request headers.
 *
 * Isle does not enforce AuthorizationPolicy yet: with no authorizer every request is allowed.
 */

/** What the request says (the head only; the body is never inspected). */
export interface AuthzRequest {
  readonly method: string;
  /** :authority / Host as sent. */
  readonly host: string;
  /** Path with query, as sent (before any rewrite). */
  readonly path: string;
  /** Lower-case names, hop-by-hop headers removed, before the proxy adds its own. */
  readonly headers: Readonly<Record<string, string | string[]>>;
}

/** What the connection proves. */
export interface AuthzConnection {
  /** Listener name; INBOUND for sidecar inbound listeners. */
  readonly listener: string;
  readonly direction: 'INBOUND' | 'OUTBOUND' | 'UNSPECIFIED';
  /** SPIFFE id of the verified peer certificate (source.principal); undefined for plaintext. */
  readonly peerPrincipal: string | undefined;
  /** Namespace from that SPIFFE id (source.namespace). */
  readonly peerNamespace: string | undefined;
  /** Downstream IP address (source.ip). */
  readonly sourceIp: string | undefined;
  /** The listener port the connection arrived on (destination.port). */
  readonly destinationPort: number | undefined;
  /** TLS SNI the client sent (connection.sni). */
  readonly sni: string | undefined;
  readonly mtls: boolean;
}

export type AuthzDecision = { readonly allow: true } | { readonly allow: false; /** For logs and stats: which policy denied. */ readonly policy?: string };

/**
 * Decides one request. `filterConfig` is the listener's RBAC config when the HTTP connection
 * manager has the RBAC filter (opaque here; the implementation owns its model).
 */
export type HttpAuthorizer = (req: AuthzRequest, conn: AuthzConnection, filterConfig: unknown) => AuthzDecision;
