/**
 * /config_dump in Envoy's shape (`envoy.admin.v3.ConfigDump`), so tools that read Envoy dumps
 * (istioctl proxy-config, jq recipes) read Isle's: one entry per config type, in Envoy's order —
 * Bootstrap, Clusters (`dynamic_active_clusters`), Listeners (`dynamic_listeners[].active_state`),
 * Routes (`dynamic_route_configs`), Secrets (`dynamic_active_secrets`, private keys replaced by
 * Envoy's own `[redacted]` marker), Endpoints (`dynamic_endpoint_configs`; Envoy adds these with
 * `?include_eds`, Isle always does).
 *
 * Isle's extra facts (the last rejected update per type with its errors, the xDS connection, the
 * workload certificate, the listeners bound) are under the key `isle`, which Envoy's schema does
 * not have, so a strict reader skips it.
 */
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE } from '../mesh/typeurls.js';

const ADMIN = 'type.googleapis.com/envoy.admin.v3.';

/** What the dump reads of one xDS type's accepted state. */
export interface AcceptedResources {
  readonly version: string;
  readonly acceptedAt: number | undefined;
  readonly resources: readonly { readonly name: string; readonly version: string; readonly raw: Record<string, unknown> }[];
}

export interface ConfigDumpInput {
  node: unknown;
  /** typeUrl → accepted resources. */
  accepted: (typeUrl: string) => AcceptedResources;
  /** Secrets the proxy holds itself (its workload certificate `default`), Envoy-shaped. */
  localSecrets: readonly Record<string, unknown>[];
  isle: Record<string, unknown>;
}

/** Envoy's marker for a redacted private key: base64 of `[redacted]`. */
export const REDACTED = { inline_bytes: Buffer.from('[redacted]').toString('base64') };

const iso = (t: number | undefined): string | undefined => (t === undefined ? undefined : new Date(t).toISOString());

/** A secret with every private key (and generic secret) replaced by the redaction marker. */
export function redactSecret(s: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...s };
  const tc = s['tls_certificate'];
  if (tc && typeof tc === 'object') {
    const t = { ...(tc as Record<string, unknown>) };
    if ('private_key' in t) t['private_key'] = REDACTED;
    out['tls_certificate'] = t;
  }
  if ('generic_secret' in out) out['generic_secret'] = { secret: REDACTED };
  return out;
}

export function buildConfigDump(i: ConfigDumpInput): Record<string, unknown> {
  const typed = (typeUrl: string, raw: Record<string, unknown>) => ({ '@type': typeUrl, ...raw });
  const each = (typeUrl: string) => {
    const a = i.accepted(typeUrl);
    return { a, items: a.resources.map((r) => ({ ...r, at: iso(a.acceptedAt) })) };
  };
  const cds = each(CLUSTER_TYPE);
  const lds = each(LISTENER_TYPE);
  const rds = each(ROUTE_TYPE);
  const sds = each(SECRET_TYPE);
  const eds = each(ENDPOINT_TYPE);
  return {
    configs: [
      { '@type': `${ADMIN}BootstrapConfigDump`, bootstrap: { node: i.node } },
      {
        '@type': `${ADMIN}ClustersConfigDump`,
        version_info: cds.a.version,
        dynamic_active_clusters: cds.items.map((r) => ({ version_info: r.version, cluster: typed(CLUSTER_TYPE, r.raw), last_updated: r.at })),
      },
      {
        '@type': `${ADMIN}ListenersConfigDump`,
        version_info: lds.a.version,
        dynamic_listeners: lds.items.map((r) => ({ name: r.name, active_state: { version_info: r.version, listener: typed(LISTENER_TYPE, r.raw), last_updated: r.at } })),
      },
      {
        '@type': `${ADMIN}RoutesConfigDump`,
        dynamic_route_configs: rds.items.map((r) => ({ version_info: r.version, route_config: typed(ROUTE_TYPE, r.raw), last_updated: r.at })),
      },
      {
        '@type': `${ADMIN}SecretsConfigDump`,
        dynamic_active_secrets: [
          ...i.localSecrets.map((s) => ({ name: String(s['name'] ?? ''), version_info: 'local', secret: typed(SECRET_TYPE, redactSecret(s)) })),
          ...sds.items.map((r) => ({ name: r.name, version_info: r.version, last_updated: r.at, secret: typed(SECRET_TYPE, redactSecret(r.raw)) })),
        ],
      },
      {
        '@type': `${ADMIN}EndpointsConfigDump`,
        dynamic_endpoint_configs: eds.items.map((r) => ({ version_info: r.version, endpoint_config: typed(ENDPOINT_TYPE, r.raw), last_updated: r.at })),
      },
    ],
    isle: i.isle,
  };
}
