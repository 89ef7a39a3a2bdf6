/**
 * The interface of the proxy's authorization (RBAC) filter slot. The HTTP filter chain asks the
 * authorizer, if one is configured, before headers are rewritten and the request is routed, as
 * Envoy runs `envoy.filters.http.rbac` before the router. Identity facts come from the verified
 * connection (the peer certificate), never from request headers.
 *
 * The authorizer is `rbacAuthorizer` (Envoy RBAC as the control plane generates it from
 * AuthorizationPolicy, evaluated by ./rbac) whenever the listener's HCM carries RBAC filters;
 * `ListenerDeps.authorize` overrides it (tests). Without RBAC filters every request is allowed.
 */
import type { RbacFilterModel } from './model.js';
import { evaluateRbac } from './rbac/evaluate.js';


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

export type AuthzDecision = (
  | { readonly allow: true }
  | { readonly allow: false; /** For logs and stats: which policy denied. */ readonly policy?: string }
) & { /** Policies of AUDIT (LOG) filters that matched. */ readonly audited?: readonly string[] };

/**
 * Decides one request. `filterConfig` is the listener's RBAC config when the HTTP connection
 * manager has the RBAC filter (opaque here; the implementation owns its model).
 */
export type HttpAuthorizer = (req: AuthzRequest, conn: AuthzConnection, filterConfig: unknown) => AuthzDecision;

/** The engine behind the RBAC slot: `filterConfig` is the chain's decoded RBAC filters. */
export const rbacAuthorizer: HttpAuthorizer = (req, conn, filterConfig) => {
  const d = evaluateRbac(filterConfig as readonly RbacFilterModel[], {
    principal: conn.peerPrincipal,
    sourceIp: conn.sourceIp,
    destinationPort: conn.destinationPort,
    sni: conn.sni,
    method: req.method,
    path: req.path,
    host: req.host,
    headers: req.headers,
  });
  if (d.allowed) return d.audited.length ? { allow: true, audited: d.audited } : { allow: true };
  return { allow: false, ...(d.policy ? { policy: d.policy } : {}), audited: d.audited };
};
