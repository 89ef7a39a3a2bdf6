/**
 * Cross-resource consistency: the proxy swaps in a ConfigGraph only when everything a listener
 * needs is present, so a request never meets a half-applied update.
 *
 * Fatal (errors; keep the previous graph):
 * - a listener's HCM names an RDS route_config that is not in the set (Envoy would keep the
 *   listener warming; we refuse the graph instead, the caller retries when RDS arrives);
 * - an SDS secret named by a listener or cluster is missing, or is of the wrong kind;
 * - a route_config with validate_clusters: true references an unknown cluster (as Envoy);
 * - duplicate resource names within one type.
 *
 * Non-fatal (warnings; the graph applies):
 * - a route or TcpProxy references an unknown cluster: Envoy answers 503 at request time
 *   (cluster_not_found_response_code) or closes the TCP connection; so do we;
 * - an EDS cluster with no ClusterLoadAssignment yet: empty endpoints, so "no healthy
 *   upstream" (503) until it arrives, as Envoy after initial_fetch_timeout.
 */
import type {
  ClusterModel,
  ClusterSpecifierModel,
  ConfigGraph,
  DecodeResult,
  EndpointsModel,
  ListenerModel,
  RouteConfigModel,
  SecretModel,
  TlsCertificateRef,
  ValidationContextRef,
} from '../model.js';
import { decodeCluster } from './cluster.js';
import { decodeEndpoints } from './endpoints.js';
import { decodeListener } from './listener.js';
import { decodeRouteConfig } from './route.js';
import { decodeSecret } from './secret.js';

type Many<T> = Iterable<T> | ReadonlyMap<string, T>;

function toList<T>(m: Many<T>): T[] {
  return m instanceof Map ? [...m.values()] : [...(m as Iterable<T>)];
}

function index<T>(items: Many<T>, nameOf: (t: T) => string, kind: string, errors: string[]): Map<string, T> {
  const out = new Map<string, T>();
  for (const it of toList(items)) {
    const n = nameOf(it);
    if (out.has(n)) errors.push(`${kind} ${JSON.stringify(n)}: duplicate name`);
    out.set(n, it);
  }
  return out;
}

function clusterNames(spec: ClusterSpecifierModel): string[] {
  if (spec.kind === 'cluster') return [spec.name];
  if (spec.kind === 'weighted') return spec.clusters.map((c) => c.name);
  return [];
}

export function resolveGraph(
  listeners: Many<ListenerModel>,
  routes: Many<RouteConfigModel>,
  clusters: Many<ClusterModel>,
  endpoints: Many<EndpointsModel>,
  secrets: Many<SecretModel>,
): DecodeResult<ConfigGraph> {
  const errors: string[] = [];
  const warnings: string[] = [];
  const L = index(listeners, (l) => l.name, 'listener', errors);
  const R = index(routes, (r) => r.name, 'route_config', errors);
  const C = index(clusters, (c) => c.name, 'cluster', errors);
  const E = index(endpoints, (e) => e.clusterName, 'cluster_load_assignment', errors);
  const S = index(secrets, (s) => s.name, 'secret', errors);

  const checkCert = (ref: TlsCertificateRef, where: string): void => {
    if (ref.kind !== 'sds') return;
    const s = S.get(ref.name);
    if (!s) errors.push(`${where}: secret ${JSON.stringify(ref.name)} not received`);
    else if (s.kind !== 'tls-certificate') errors.push(`${where}: secret ${JSON.stringify(ref.name)} is not a tls_certificate`);
  };
  const checkValidation = (ref: ValidationContextRef | null, where: string): void => {
    if (!ref || ref.kind !== 'sds') return;
    const s = S.get(ref.name);
    if (!s) errors.push(`${where}: secret ${JSON.stringify(ref.name)} not received`);
    else if (s.kind !== 'validation-context') errors.push(`${where}: secret ${JSON.stringify(ref.name)} is not a validation_context`);
  };
  const checkRouteClusters = (rc: RouteConfigModel, where: string): void => {
    rc.virtualHosts.forEach((vh, vi) =>
      vh.routes.forEach((rt, ri) => {
        if (rt.action.kind !== 'route') return;
        for (const c of clusterNames(rt.action.cluster)) {
          if (C.has(c)) continue;
          const msg = `${where}: virtual_hosts[${vi}].routes[${ri}]: unknown cluster ${JSON.stringify(c)}`;
          if (rc.validateClusters) errors.push(msg);
          else warnings.push(`${msg} (${rt.action.clusterNotFoundResponseCode} at runtime)`);
        }
      }),
    );
  };

  for (const l of L.values()) {
    const chains = l.defaultFilterChain ? [...l.filterChains, l.defaultFilterChain] : l.filterChains;
    chains.forEach((fc, i) => {
      const where = `listener ${JSON.stringify(l.name)}: ${i < l.filterChains.length ? `filter_chains[${i}]` : 'default_filter_chain'}`;
      if (fc.tls) {
        fc.tls.certificates.forEach((c) => checkCert(c, `${where}.transport_socket`));
        checkValidation(fc.tls.validation, `${where}.transport_socket`);
      }
      if (fc.filter.kind === 'http') {
        const src = fc.filter.hcm.routeSource;
        if (src.kind === 'rds') {
          if (!R.has(src.routeConfigName)) errors.push(`${where}: route_config ${JSON.stringify(src.routeConfigName)} (RDS) not received`);
        } else checkRouteClusters(src.config, `${where}: inline route_config ${JSON.stringify(src.config.name)}`);
      } else {
        for (const c of clusterNames(fc.filter.tcpProxy.cluster)) {
          if (!C.has(c)) warnings.push(`${where}: tcp_proxy: unknown cluster ${JSON.stringify(c)} (connections will be closed)`);
        }
      }
    });
  }
  for (const rc of R.values()) checkRouteClusters(rc, `route_config ${JSON.stringify(rc.name)}`);

  const resolvedEndpoints = new Map<string, EndpointsModel>();
  for (const c of C.values()) {
    if (c.tls) {
      c.tls.certificates.forEach((x) => checkCert(x, `cluster ${JSON.stringify(c.name)}: transport_socket`));
      checkValidation(c.tls.validation, `cluster ${JSON.stringify(c.name)}: transport_socket`);
    }
    if (c.type === 'EDS') {
      const e = E.get(c.edsServiceName);
      if (e) resolvedEndpoints.set(c.name, e);
      else {
        warnings.push(`cluster ${JSON.stringify(c.name)}: no endpoints received for ${JSON.stringify(c.edsServiceName)} (no healthy upstream until they arrive)`);
        resolvedEndpoints.set(c.name, { clusterName: c.edsServiceName, priorities: [], overprovisioningFactor: 140 });
      }
    } else if (c.loadAssignment) resolvedEndpoints.set(c.name, c.loadAssignment);
  }

  if (errors.length) return { errors };
  return { ok: { listeners: L, routes: R, clusters: C, endpoints: resolvedEndpoints, secrets: S, warnings } };
}

export interface RawResources {
  listeners?: readonly unknown[];
  routes?: readonly unknown[];
  clusters?: readonly unknown[];
  endpoints?: readonly unknown[];
  secrets?: readonly unknown[];
}

/** Decodes every resource and resolves the graph, reporting all errors together. */
export function decodeAndResolve(raw: RawResources): DecodeResult<ConfigGraph> {
  const errors: string[] = [];
  function all<T>(items: readonly unknown[] | undefined, dec: (o: unknown) => DecodeResult<T>): T[] {
    const out: T[] = [];
    for (const it of items ?? []) {
      const r = dec(it);
      if ('ok' in r) out.push(r.ok);
      else errors.push(...r.errors);
    }
    return out;
  }
  const l = all(raw.listeners, decodeListener);
  const r = all(raw.routes, decodeRouteConfig);
  const c = all(raw.clusters, decodeCluster);
  const e = all(raw.endpoints, decodeEndpoints);
  const s = all(raw.secrets, decodeSecret);
  if (errors.length) return { errors };
  return resolveGraph(l, r, c, e, s);
}
