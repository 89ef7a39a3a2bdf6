/**
 * RDS. The route configuration `15001` serves the explicit HTTP proxy listener (see 0007): one
 * virtual host per HTTP service port, named `<fqdn>:<port>`, whose domains are every name a client
 * in the proxy's namespace may put in Host. Short names depend on that namespace, so the config
 * is shared per namespace (shareKey `ns|<namespace>`).
 *
 * `routeConfigForPort` builds Istio's per-port shape (`"5000"`) for listeners that already know the
 * port (transparent capture, later); no listener references it yet, so it is not generated.
 *
 * A virtual host's routes come from the VirtualServices the client namespace sees for the
 * service (virtualservice.ts), else it has one default route. When some VirtualService matches on
 * `sourceLabels`, routes also depend on the proxy's labels: the share key then adds which of those
 * selectors the proxy matches, so proxies that match the same ones still share one serialization.
 */
import type { PushContext } from '../model/pushcontext.js';
import type { Proxy } from '../model/proxy.js';
import { labelsMatch, type Labels, type Service, type ServicePort } from '../registry/model.js';
import { cmp, isHttp, type EnvoyObject, type ResourceGroup } from './common.js';
import { hasOutboundCluster } from './cds.js';
import { HTTP_PROXY_ROUTE_NAME, outboundClusterName } from '../mesh/names.js';
import { sourceLabelSelectors, virtualServicesFor, vsRoutes } from './virtualservice.js';
import { ingressRoutes } from './ingress.js';
import { contextOf, envoyFiltersFor, patchRouteConfig, routePatchKey } from './envoyfilter.js';

export const PREVIOUS_HOSTS_PREDICATE_TYPE =
  'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate';

/**
 * Istio's default retry policy: 2 retries on failures where the request most likely never reached
 * the app (so retrying is safe even for non-idempotent requests), on another host each time.
 */
export function defaultRetryPolicy(): EnvoyObject {
  return {
    retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes',
    num_retries: 2,
    retry_host_predicate: [
      { name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': PREVIOUS_HOSTS_PREDICATE_TYPE } },
    ],
    host_selection_retry_max_attempts: 5,
    retriable_status_codes: [503],
  };
}

/** The route every virtual host has until VirtualServices are translated. */
export function defaultRoute(cluster: string): EnvoyObject {
  return {
    name: 'default',
    match: { prefix: '/' },
    // Istio's default: no route timeout (0s disables Envoy's 15 s default).
    route: { cluster, timeout: '0s', max_grpc_timeout: '0s', retry_policy: defaultRetryPolicy() },
  };
}

/** The host names a client in `clientNamespace` may use for `svc`, without port, most specific last. */
export function hostForms(svc: Service, clientNamespace: string, domainSuffix: string): string[] {
  const forms: string[] = [];
  if (svc.kind === 'Service' && svc.hostname === `${svc.name}.${svc.namespace}.svc.${domainSuffix}`) {
    // Short names resolve through the client's DNS search path: only within its namespace.
    if (svc.namespace === clientNamespace) forms.push(svc.name);
    forms.push(`${svc.name}.${svc.namespace}`, `${svc.name}.${svc.namespace}.svc`);
  }
  forms.push(svc.hostname, ...svc.addresses);
  return forms;
}

const httpPorts = (svc: Service): ServicePort[] => svc.ports.filter((p) => isHttp(p.protocol));

/**
 * Which HTTP port of a service the bare name (no `:port`) means when one listener serves every
 * port: 80 if the service has it (what an HTTP client omits), else its lowest HTTP port, so that
 * `curl -x <sidecar> http://helloworld/hello` still works for a service on 5000.
 */
export function bareNamePort(svc: Service): number | undefined {
  const ports = httpPorts(svc);
  return (ports.find((p) => p.port === 80) ?? ports[0])?.port;
}

/** Adds domains not yet taken in this config: Envoy rejects a config with a domain twice. */
function claim(taken: Set<string>, domains: string[]): string[] {
  const out: string[] = [];
  for (const d of domains) {
    const k = d.toLowerCase();
    if (taken.has(k)) continue;
    taken.add(k);
    out.push(d);
  }
  return out;
}

/** Who the routes are for: VirtualService visibility and `sourceLabels` depend on it. */
export interface RouteClient {
  readonly namespace: string;
  readonly labels?: Labels;
}

export function virtualHost(push: PushContext, client: RouteClient, svc: Service, port: number, domains: string[]): EnvoyObject {
  const vss = virtualServicesFor(push, svc.hostname, client.namespace);
  // A VirtualService replaces the default route (Istio): what none of its rules matches is a 404.
  const routes =
    vss.length > 0
      ? vsRoutes({ push, port, clientNamespace: client.namespace, proxyLabels: client.labels, defaultRetryPolicy }, vss)
      : [defaultRoute(outboundClusterName(port, svc.hostname))];
  return { name: `${svc.hostname}:${port}`, domains, routes };
}

export function routeConfig(name: string, virtualHosts: EnvoyObject[]): EnvoyObject {
  // validate_clusters off: a route may briefly name a cluster CDS has not delivered yet.
  return { name, ...(virtualHosts.length > 0 ? { virtual_hosts: virtualHosts } : {}), validate_clusters: false };
}

/** The explicit proxy's route config: every HTTP port of every service, by Host. */
export function httpProxyRouteConfig(push: PushContext, namespace: string, labels?: Labels): EnvoyObject {
  const client: RouteClient = { namespace, labels };
  const taken = new Set<string>();
  const vhosts: EnvoyObject[] = [];
  // First the explicit `name:port` forms of every service, so a bare name never shadows them.
  const planned: { svc: Service; port: number; domains: string[] }[] = [];
  for (const svc of push.services) {
    if (!hasOutboundCluster(svc)) continue;
    const forms = hostForms(svc, namespace, push.mesh.domainSuffix);
    for (const p of httpPorts(svc)) planned.push({ svc, port: p.port, domains: claim(taken, forms.map((f) => `${f}:${p.port}`)) });
  }
  for (const pl of planned) {
    if (bareNamePort(pl.svc) === pl.port) pl.domains.push(...claim(taken, hostForms(pl.svc, namespace, push.mesh.domainSuffix)));
    if (pl.domains.length > 0) vhosts.push(virtualHost(push, client, pl.svc, pl.port, pl.domains.sort(cmp)));
  }
  return routeConfig(HTTP_PROXY_ROUTE_NAME, vhosts);
}

/** Istio's per-port route config: services with HTTP port `port`, names with and without `:port`. */
export function routeConfigForPort(push: PushContext, namespace: string, port: number, labels?: Labels): EnvoyObject {
  const client: RouteClient = { namespace, labels };
  const taken = new Set<string>();
  const vhosts: EnvoyObject[] = [];
  for (const svc of push.services) {
    if (!hasOutboundCluster(svc) || !httpPorts(svc).some((p) => p.port === port)) continue;
    const forms = hostForms(svc, namespace, push.mesh.domainSuffix);
    const domains = claim(taken, [...forms, ...forms.map((f) => `${f}:${port}`)]);
    if (domains.length > 0) vhosts.push(virtualHost(push, client, svc, port, domains.sort(cmp)));
  }
  return routeConfig(String(port), vhosts);
}

export function routeGroups(push: PushContext, proxy: Proxy): ResourceGroup[] {
  // EnvoyFilter route patches (rate limits): the share key also names which EnvoyFilters apply.
  const efKey = routePatchKey(push, proxy);
  const patch = (configs: EnvoyObject[]): EnvoyObject[] => {
    if (!efKey) return configs;
    const filters = envoyFiltersFor(push, proxy);
    return configs.map((c) => patchRouteConfig(filters, contextOf(proxy, 'OUTBOUND'), c));
  };
  if (proxy.type !== 'sidecar') return [{ build: () => patch(ingressRoutes(push, proxy, defaultRetryPolicy)) }];
  const selectors = sourceLabelSelectors(push);
  if (selectors.length === 0) {
    return [{ shareKey: `ns|${proxy.namespace}${efKey}`, build: () => patch([httpProxyRouteConfig(push, proxy.namespace)]) }];
  }
  // Per proxy only as far as sourceLabels make it so: the key names the selectors it matches.
  const matched = selectors.map((sel, i) => (labelsMatch(sel, proxy.labels) ? i : -1)).filter((i) => i >= 0);
  return [{ shareKey: `ns|${proxy.namespace}|sl|${matched.join(',')}${efKey}`, build: () => patch([httpProxyRouteConfig(push, proxy.namespace, proxy.labels)]) }];
}

/** RDS for a proxy (inbound listeners carry their routes inline). */
export function generateRoutes(push: PushContext, proxy: Proxy): EnvoyObject[] {
  return routeGroups(push, proxy).flatMap((g) => g.build());
}
