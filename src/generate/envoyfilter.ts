/**
 * EnvoyFilter patches (ADR 0090), applied to the generated listeners and route configs of one
 * proxy: HTTP_FILTER INSERT_BEFORE puts a rate limit filter just before the router of every HCM the
 * match selects; HTTP_ROUTE / VIRTUAL_HOST MERGE adds `rate_limits` and the local rate limit's
 * `typed_per_filter_config`. Which EnvoyFilters apply: those of the root namespace and of the
 * proxy's namespace whose `workloadSelector.labels` match the proxy (none: every proxy there),
 * root namespace first, then by priority, then by name (Istio's order; Isle has no creation time).
 *
 * Matching against Isle's names: SIDECAR_INBOUND listeners are per target port, their inline route
 * config and virtual host are `inbound|<port>||` (Istio's `inbound|http|<port>` also matches);
 * SIDECAR_OUTBOUND is the explicit proxy on 15001 with route config `15001`, virtual hosts
 * `<fqdn>:<port>` (routeConfiguration.portNumber matches that port); GATEWAY is an ingress
 * gateway's listeners and route configs.
 */
import type { EnvoyConfigPatch, EnvoyFilterSpec, PatchContext } from '../config/kinds/envoyfilter.js';
import type { Resource } from '../config/types.js';
import type { Proxy } from '../model/proxy.js';
import type { PushContext } from '../model/pushcontext.js';
import { labelsMatch } from '../registry/model.js';
import type { EnvoyObject } from './common.js';

const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

export function envoyFiltersFor(push: PushContext, proxy: Proxy): readonly Resource<EnvoyFilterSpec>[] {
  const root = push.mesh.rootNamespace;
  const applies = (ef: Resource<EnvoyFilterSpec>): boolean => {
    const ns = ef.metadata.namespace ?? 'default';
    if (ns !== root && ns !== proxy.namespace) return false;
    const sel = ef.spec.workloadSelector?.labels;
    return !sel || labelsMatch(sel, proxy.labels);
  };
  const rank = (ef: Resource<EnvoyFilterSpec>): number => ((ef.metadata.namespace ?? 'default') === root ? 0 : 1);
  return push.envoyFilters
    .filter(applies)
    .sort((a, b) => rank(a) - rank(b) || (a.spec.priority ?? 0) - (b.spec.priority ?? 0) || (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0));
}

function patches(filters: readonly Resource<EnvoyFilterSpec>[], applyTo: EnvoyConfigPatch['applyTo'], ctx: PatchContext): EnvoyConfigPatch[] {
  const out: EnvoyConfigPatch[] = [];
  for (const ef of filters) {
    for (const cp of ef.spec.configPatches ?? []) {
      const c = cp.match?.context ?? 'ANY';
      if (cp.applyTo === applyTo && (c === 'ANY' || c === ctx)) out.push(cp);
    }
  }
  return out;
}

export function contextOf(proxy: Proxy, direction: unknown): PatchContext {
  if (proxy.type !== 'sidecar') return 'GATEWAY';
  return direction === 'INBOUND' ? 'SIDECAR_INBOUND' : 'SIDECAR_OUTBOUND';
}

function portOf(listener: EnvoyObject): number | undefined {
  const sa = (listener['address'] as EnvoyObject | undefined)?.['socket_address'] as EnvoyObject | undefined;
  return typeof sa?.['port_value'] === 'number' ? sa['port_value'] : undefined;
}

/** The vhost's port: `<host>:<port>` outbound, `inbound|<port>||` inbound. */
function vhostPort(name: string): number | undefined {
  const m = /^inbound\|(\d+)\|/.exec(name) ?? /:(\d+)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

function vhostNameMatches(want: string | undefined, name: string): boolean {
  if (!want) return true;
  if (want === name) return true;
  // Istio names inbound virtual hosts `inbound|http|<port>`.
  const m = /^inbound\|http\|(\d+)$/.exec(want);
  return m !== null && name.startsWith('inbound|') && vhostPort(name) === Number(m[1]);
}

function routeAction(route: EnvoyObject): string {
  return route['redirect'] ? 'REDIRECT' : route['direct_response'] ? 'DIRECT_RESPONSE' : 'ROUTE';
}

function mergePerFilter(target: EnvoyObject, value: EnvoyObject): EnvoyObject {
  const tpf = value['typed_per_filter_config'] as EnvoyObject | undefined;
  if (!tpf) return target;
  return { ...target, typed_per_filter_config: { ...((target['typed_per_filter_config'] as EnvoyObject | undefined) ?? {}), ...tpf } };
}

const list = (v: unknown): EnvoyObject[] => (Array.isArray(v) ? (v as EnvoyObject[]) : []);

/** Applies VIRTUAL_HOST and HTTP_ROUTE patches to one route configuration's virtual hosts (new objects). */
export function patchRouteConfig(filters: readonly Resource<EnvoyFilterSpec>[], ctx: PatchContext, config: EnvoyObject): EnvoyObject {
  const vh = patches(filters, 'VIRTUAL_HOST', ctx);
  const rt = patches(filters, 'HTTP_ROUTE', ctx);
  if ((vh.length === 0 && rt.length === 0) || !Array.isArray(config['virtual_hosts'])) return config;
  const configName = String(config['name'] ?? '');
  const selects = (cp: EnvoyConfigPatch, vhost: EnvoyObject): boolean => {
    const rc = cp.match?.routeConfiguration;
    const name = String(vhost['name'] ?? '');
    if (rc?.name && rc.name !== configName && rc.name !== String(vhostPort(name) ?? '')) return false;
    if (rc?.portNumber !== undefined && rc.portNumber !== vhostPort(name)) return false;
    return vhostNameMatches(rc?.vhost?.name, name);
  };
  const virtualHosts = list(config['virtual_hosts']).map((vhost0) => {
    let vhost = vhost0;
    for (const cp of vh) {
      if (!selects(cp, vhost)) continue;
      const v = cp.patch.value;
      vhost = mergePerFilter(vhost, v);
      if (Array.isArray(v['rate_limits'])) vhost = { ...vhost, rate_limits: [...list(vhost['rate_limits']), ...(v['rate_limits'] as EnvoyObject[])] };
    }
    const routes = list(vhost['routes']).map((route0) => {
      let route = route0;
      for (const cp of rt) {
        if (!selects(cp, vhost)) continue;
        const want = cp.match?.routeConfiguration?.vhost?.route;
        if (want?.name && want.name !== route['name']) continue;
        if (want?.action && want.action !== 'ANY' && want.action !== routeAction(route)) continue;
        const v = cp.patch.value;
        route = mergePerFilter(route, v);
        const ra = v['route'] as EnvoyObject | undefined;
        if (ra && route['route']) {
          const cur = route['route'] as EnvoyObject;
          route = {
            ...route,
            route: {
              ...cur,
              ...(Array.isArray(ra['rate_limits']) ? { rate_limits: [...list(cur['rate_limits']), ...(ra['rate_limits'] as EnvoyObject[])] } : {}),
              ...(ra['include_vh_rate_limits'] !== undefined ? { include_vh_rate_limits: ra['include_vh_rate_limits'] } : {}),
            },
          };
        }
      }
      return route;
    });
    return { ...vhost, routes };
  });
  return { ...config, virtual_hosts: virtualHosts };
}

/** Applies HTTP_FILTER patches (and route patches to inline route configs) to a proxy's listeners. */
export function patchListeners(push: PushContext, proxy: Proxy, listeners: EnvoyObject[]): EnvoyObject[] {
  const filters = envoyFiltersFor(push, proxy);
  if (filters.length === 0) return listeners;
  return listeners.map((l) => {
    const ctx = contextOf(proxy, l['traffic_direction']);
    const port = portOf(l);
    const inserts = patches(filters, 'HTTP_FILTER', ctx).filter((cp) => {
      const m = cp.match?.listener;
      return (m?.portNumber === undefined || m.portNumber === port) && (!m?.name || m.name === l['name']);
    });
    const patchChain = (chain: EnvoyObject): EnvoyObject => ({
      ...chain,
      filters: list(chain['filters']).map((f) => {
        const tc = f['typed_config'] as EnvoyObject | undefined;
        if (tc?.['@type'] !== HCM_TYPE) return f;
        let hcm: EnvoyObject = { ...tc };
        if (inserts.length > 0) {
          const hf = list(hcm['http_filters']);
          hcm['http_filters'] = [...hf.slice(0, -1), ...inserts.map((cp) => cp.patch.value), ...hf.slice(-1)];
        }
        if (hcm['route_config']) hcm = { ...hcm, route_config: patchRouteConfig(filters, ctx, hcm['route_config'] as EnvoyObject) };
        return { ...f, typed_config: hcm };
      }),
    });
    return {
      ...l,
      ...(Array.isArray(l['filter_chains']) ? { filter_chains: list(l['filter_chains']).map(patchChain) } : {}),
      ...(l['default_filter_chain'] ? { default_filter_chain: patchChain(l['default_filter_chain'] as EnvoyObject) } : {}),
    };
  });
}

/** Which EnvoyFilters with route patches apply to the proxy, for the RDS share key ('' when none). */
export function routePatchKey(push: PushContext, proxy: Proxy): string {
  if (push.envoyFilters.length === 0) return '';
  const names = envoyFiltersFor(push, proxy)
    .filter((ef) => (ef.spec.configPatches ?? []).some((cp) => cp.applyTo !== 'HTTP_FILTER'))
    .map((ef) => `${ef.metadata.namespace}/${ef.metadata.name}`);
  return names.length ? `|ef|${names.join(',')}` : '';
}
