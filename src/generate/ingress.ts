/**
 * Ingress gateways (Istio's istio-ingressgateway): what a gateway proxy serves for the Gateways
 * whose `selector` matches its labels. See docs/decisions/0060-ingress-gateway.md.
 *
 * - LDS: one listener per Gateway port on the proxy's bind address. Plaintext HTTP servers share
 *   one chain whose routes are RDS `http.<port>`; each HTTPS server (tls.mode SIMPLE or MUTUAL)
 *   is a chain matching its hosts by SNI, terminating TLS with SDS `kubernetes://<credentialName>`
 *   (MUTUAL: clients verified against `kubernetes://<credentialName>-cacert`), routes RDS
 *   `https.<port>.<portName>.<gateway>.<namespace>`; a PASSTHROUGH server gets one TCP chain per
 *   SNI of the `tls:` routes of its VirtualServices (the client's TLS goes through untouched).
 * - RDS: one virtual host per host a bound VirtualService shares with the server (the narrower of
 *   the two names wins), routes translated as for sidecars (virtualservice.ts) with `gateways:`
 *   matches read for this Gateway; `httpsRedirect` makes every request a 301 to https.
 * - CDS/EDS are the sidecars' outbound ones: the ingress reaches services in any cluster, across
 *   networks through their east-west gateways, with auto mTLS.
 * - SDS: ROOTCA and the credentials of the Gateways' servers, from the gateway proxy's namespace
 *   only (Istio's rule for credentialName).
 *
 * A server whose credential is missing, or whose tls.mode Isle does not serve (ISTIO_MUTUAL,
 * OPTIONAL_MUTUAL), gets no chain: it fails closed. `ingressProblems` lists why.
 */
import type { GatewayServer, GatewaySpec, TLSRoute } from '../config/kinds/networking.js';
import type { Resource } from '../config/types.js';
import { bindAddress, type Proxy } from '../model/proxy.js';
import type { PushContext } from '../model/pushcontext.js';
import { labelsMatch } from '../registry/model.js';
import { DOWNSTREAM_TLS_CONTEXT_TYPE, HTTP_CONNECTION_MANAGER_TYPE, TCP_PROXY_TYPE } from '../mesh/typeurls.js';
import { listenerName } from '../mesh/names.js';
import { adsConfigSource, faultFilter, routerFilter, sdsSecretConfig, socketAddress, tlsInspector, type EnvoyObject } from './common.js';
import { cidrRange } from './outbound.js';
import { destinationCluster, gatewayRefs, mergeHttpRules, vsRoutes, type PushedProblem, type VirtualService, type VsRouteContext } from './virtualservice.js';

export type Gateway = Resource<GatewaySpec>;

/** One server of one Gateway, with what the generators need to name things. */
export interface BoundServer {
  readonly gateway: Gateway;
  /** `<namespace>/<name>` of the Gateway. */
  readonly key: string;
  readonly server: GatewayServer;
  readonly kind: 'http' | 'https' | 'passthrough' | 'unsupported';
}

const CREDENTIAL_PREFIX = 'kubernetes://';

export const credentialSecretName = (name: string): string => `${CREDENTIAL_PREFIX}${name}`;
export const credentialCaSecretName = (name: string): string => `${CREDENTIAL_PREFIX}${name}-cacert`;

const gwNs = (g: Gateway): string => g.metadata.namespace ?? 'default';

/** The Gateways whose selector matches this gateway proxy. */
export function gatewaysFor(push: PushContext, proxy: Proxy): Gateway[] {
  if (proxy.type !== 'gateway') return [];
  return push.gateways.filter((g) => labelsMatch(g.spec.selector ?? {}, proxy.labels));
}

function serverKind(s: GatewayServer): BoundServer['kind'] {
  const proto = s.port.protocol.toUpperCase();
  const mode = s.tls?.mode;
  if (proto === 'HTTP' || proto === 'HTTP2' || proto === 'GRPC') return 'http';
  if ((proto === 'HTTPS' || proto === 'TLS') && mode === 'PASSTHROUGH') return 'passthrough';
  if (proto === 'HTTPS' && (mode === 'SIMPLE' || mode === 'MUTUAL')) return 'https';
  return 'unsupported';
}

/** Servers other than AUTO_PASSTHROUGH (the east-west listener), by port, in Gateway order. */
export function ingressServers(push: PushContext, proxy: Proxy): Map<number, BoundServer[]> {
  const out = new Map<number, BoundServer[]>();
  for (const g of gatewaysFor(push, proxy)) {
    for (const server of g.spec.servers) {
      if (server.tls?.mode === 'AUTO_PASSTHROUGH') continue;
      const l = out.get(server.port.number) ?? [];
      l.push({ gateway: g, key: `${gwNs(g)}/${g.metadata.name}`, server, kind: serverKind(server) });
      out.set(server.port.number, l);
    }
  }
  return out;
}

/** Whether this proxy serves ingress listeners (it is selected by a Gateway with such servers). */
export function isIngress(push: PushContext, proxy: Proxy): boolean {
  return ingressServers(push, proxy).size > 0;
}

/** Whether it serves the east-west listener: no Gateway selects it (Isle's default), or one asks for AUTO_PASSTHROUGH. */
export function isEastWest(push: PushContext, proxy: Proxy): boolean {
  if (proxy.type !== 'gateway') return false;
  const gws = gatewaysFor(push, proxy);
  return gws.length === 0 || gws.some((g) => g.spec.servers.some((s) => s.tls?.mode === 'AUTO_PASSTHROUGH'));
}

/** `<ns>/<host>` of a server → the namespace allowed ('*' = any) and the host. */
function serverHost(h: string, gatewayNamespace: string): { ns: string; host: string } {
  const slash = h.indexOf('/');
  if (slash < 0) return { ns: '*', host: h.toLowerCase() };
  const ns = h.slice(0, slash);
  return { ns: ns === '.' ? gatewayNamespace : ns, host: h.slice(slash + 1).toLowerCase() };
}

/** `a` (maybe a wildcard) names every host `b` names. */
function covers(a: string, b: string): boolean {
  if (a === '*' || a === b) return true;
  return a.startsWith('*.') && b.endsWith(a.slice(1)) && (!b.startsWith('*') || b.length >= a.length);
}

/** The hosts of `vs` this server serves: the narrower of each matching pair. */
function sharedHosts(server: BoundServer, vsHosts: readonly string[], vsNamespace: string): string[] {
  const out: string[] = [];
  for (const sh of server.server.hosts.map((h) => serverHost(h, gwNs(server.gateway)))) {
    if (sh.ns !== '*' && sh.ns !== vsNamespace) continue;
    for (const raw of vsHosts) {
      const h = raw.toLowerCase();
      const pick = covers(sh.host, h) ? h : covers(h, sh.host) ? sh.host : undefined;
      if (pick !== undefined && !out.includes(pick)) out.push(pick);
    }
  }
  return out;
}

/** VirtualServices bound to this Gateway by `gateways:`, in namespace/name order. */
function boundVirtualServices(push: PushContext, key: string): VirtualService[] {
  const seen = new Set<VirtualService>();
  for (const list of push.virtualServicesByHost.values()) {
    for (const vs of list) if (gatewayRefs(vs.spec.gateways, vs.metadata.namespace ?? 'default').includes(key)) seen.add(vs);
  }
  const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  return [...seen].sort((a, b) => cmp(a.metadata.namespace ?? '', b.metadata.namespace ?? '') || cmp(a.metadata.name, b.metadata.name));
}

export const httpRouteName = (port: number): string => `http.${port}`;
export const httpsRouteName = (b: BoundServer): string =>
  `https.${b.server.port.number}.${b.server.port.name ?? b.server.port.number}.${b.gateway.metadata.name}.${gwNs(b.gateway)}`;

function vhostsFor(push: PushContext, proxy: Proxy, servers: readonly BoundServer[], port: number, defaultRetryPolicy: () => EnvoyObject): EnvoyObject[] {
  const taken = new Set<string>();
  const vhosts: EnvoyObject[] = [];
  for (const b of servers) {
    const byHost = new Map<string, VirtualService[]>();
    for (const vs of boundVirtualServices(push, b.key)) {
      if (!vs.spec.http?.length) continue;
      for (const h of sharedHosts(b, vs.spec.hosts ?? [], vs.metadata.namespace ?? 'default')) byHost.set(h, [...(byHost.get(h) ?? []), vs]);
    }
    const ctx: VsRouteContext = { push, port, clientNamespace: proxy.namespace, proxyLabels: proxy.labels, defaultRetryPolicy, gateway: b.key };
    for (const [host, vss] of byHost) {
      // Envoy refuses a domain twice in one route config: the first server to claim a host keeps it.
      if (taken.has(host)) continue;
      taken.add(host);
      const domains = host === '*' ? ['*'] : [host, `${host}:${port}`];
      const routes = b.server.tls?.httpsRedirect
        ? [{ name: 'https_redirect', match: { prefix: '/' }, redirect: { https_redirect: true } }]
        : vsRoutes(ctx, vss);
      if (mergeHttpRules(vss).length > 0 || b.server.tls?.httpsRedirect) vhosts.push({ name: `${host}:${port}`, domains, routes });
    }
  }
  return vhosts;
}

function routeConfig(name: string, vhosts: EnvoyObject[]): EnvoyObject {
  return { name, ...(vhosts.length > 0 ? { virtual_hosts: vhosts } : {}), validate_clusters: false };
}

/**
 * RDS of an ingress gateway: `http.<port>` per plaintext port, one per HTTPS server. The default
 * retry policy comes from rds.ts (which calls this), as for sidecars.
 */
export function ingressRoutes(push: PushContext, proxy: Proxy, defaultRetryPolicy: () => EnvoyObject): EnvoyObject[] {
  const out: EnvoyObject[] = [];
  for (const [port, servers] of ingressServers(push, proxy)) {
    const http = servers.filter((s) => s.kind === 'http');
    if (http.length > 0) out.push(routeConfig(httpRouteName(port), vhostsFor(push, proxy, http, port, defaultRetryPolicy)));
    // Only servers that get a chain (their credential is there).
    for (const b of servers.filter((s) => s.kind === 'https' && credentialOf(push, proxy, s) !== undefined)) out.push(routeConfig(httpsRouteName(b), vhostsFor(push, proxy, [b], port, defaultRetryPolicy)));
  }
  return out;
}

function hcmFilter(statPrefix: string, routeName: string): EnvoyObject {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': HTTP_CONNECTION_MANAGER_TYPE,
      stat_prefix: statPrefix,
      rds: { config_source: adsConfigSource(), route_config_name: routeName },
      // An edge proxy: it is the first hop, so it sets X-Forwarded-For from the peer and never
      // trusts a client's XFCC.
      use_remote_address: true,
      forward_client_cert_details: 'SANITIZE',
      http_filters: [faultFilter(), routerFilter()],
    },
  };
}

function serverNames(b: BoundServer): string[] {
  const hosts = b.server.hosts.map((h) => serverHost(h, gwNs(b.gateway)).host);
  return hosts.includes('*') ? [] : [...new Set(hosts)];
}

function credentialOf(push: PushContext, proxy: Proxy, b: BoundServer): string | undefined {
  const name = b.server.tls?.credentialName;
  return name !== undefined && push.credentials.has(`${proxy.namespace}/${name}`) ? name : undefined;
}

function httpsChain(push: PushContext, proxy: Proxy, b: BoundServer, statPrefix: string): EnvoyObject | undefined {
  const cred = credentialOf(push, proxy, b);
  if (cred === undefined) return undefined;
  const mutual = b.server.tls?.mode === 'MUTUAL';
  if (mutual && !push.credentials.get(`${proxy.namespace}/${cred}`)?.caPem) return undefined;
  const names = serverNames(b);
  return {
    name: httpsRouteName(b),
    filter_chain_match: { ...(names.length > 0 ? { server_names: names } : {}), transport_protocol: 'tls' },
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': DOWNSTREAM_TLS_CONTEXT_TYPE,
        common_tls_context: {
          tls_certificate_sds_secret_configs: [sdsSecretConfig(credentialSecretName(cred))],
          ...(mutual ? { validation_context_sds_secret_config: sdsSecretConfig(credentialCaSecretName(cred)) } : {}),
        },
        ...(mutual ? { require_client_certificate: true } : {}),
      },
    },
    filters: [hcmFilter(statPrefix, httpsRouteName(b))],
  };
}

function tlsRouteCluster(push: PushContext, port: number, vsNs: string, r: TLSRoute): EnvoyObject | undefined {
  // Only the destination's cluster name is read: no retry policy on TCP.
  const ctx: VsRouteContext = { push, port, clientNamespace: vsNs, proxyLabels: undefined, defaultRetryPolicy: () => ({}) };
  const dests = (r.route ?? []).filter((d, _i, all) => all.length === 1 || (d.weight ?? 0) > 0);
  if (dests.length === 0) return undefined;
  if (dests.length === 1) return { cluster: destinationCluster(ctx, vsNs, dests[0]!.destination) };
  return { weighted_clusters: { clusters: dests.map((d) => ({ name: destinationCluster(ctx, vsNs, d.destination), weight: d.weight ?? 0 })) } };
}

/** PASSTHROUGH: a TCP chain per SNI host of the bound VirtualServices' `tls:` routes. */
function passthroughChains(push: PushContext, proxy: Proxy, b: BoundServer, port: number, taken: Set<string>): EnvoyObject[] {
  const chains: EnvoyObject[] = [];
  for (const vs of boundVirtualServices(push, b.key)) {
    const vsNs = vs.metadata.namespace ?? 'default';
    for (const r of vs.spec.tls ?? []) {
      for (const m of r.match) {
        if (m.port !== undefined && m.port !== port) continue;
        if (m.gateways?.length && !gatewayRefs(m.gateways, vsNs).includes(b.key)) continue;
        // The "source" of a gateway's route is the gateway workload itself (Istio's matchTLS).
        if (m.sourceLabels && !labelsMatch(m.sourceLabels, proxy.labels)) continue;
        if (m.sourceNamespace && m.sourceNamespace !== proxy.namespace) continue;
        // With destinationSubnets the SNI may be claimed again for other subnets.
        const subnets = m.destinationSubnets ?? [];
        const names = sharedHosts(b, m.sniHosts, vsNs).filter((h) => h !== '*' && !taken.has(subnets.length ? `${h} ${subnets.join(',')}` : h));
        const target = tlsRouteCluster(push, port, vsNs, r);
        if (names.length === 0 || !target) continue;
        for (const n of names) taken.add(subnets.length ? `${n} ${subnets.join(',')}` : n);
        chains.push({
          name: `passthrough.${port}.${names[0]}${subnets.length ? `.${subnets.join(',')}` : ''}`,
          filter_chain_match: { ...(subnets.length ? { prefix_ranges: subnets.map(cidrRange) } : {}), server_names: names, transport_protocol: 'tls' },
          filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP_PROXY_TYPE, stat_prefix: `outbound_${port}_${names[0]}`, ...target } }],
        });
      }
    }
  }
  return chains;
}

/** LDS of an ingress gateway: one listener per Gateway port with at least one servable chain. */
export function ingressListeners(push: PushContext, proxy: Proxy): EnvoyObject[] {
  const bind = bindAddress(proxy);
  const out: EnvoyObject[] = [];
  for (const [port, servers] of [...ingressServers(push, proxy)].sort(([a], [b]) => a - b)) {
    const name = listenerName(bind, port);
    const statPrefix = `outbound_${name}`;
    const chains: EnvoyObject[] = [];
    const sniTaken = new Set<string>();
    const matchTaken = new Set<string>();
    for (const b of servers) {
      if (b.kind === 'https') {
        const c = httpsChain(push, proxy, b, statPrefix);
        const key = JSON.stringify((c?.['filter_chain_match'] as EnvoyObject | undefined)?.['server_names'] ?? []);
        // Two servers on the same hosts: the first one wins (Envoy refuses identical matches).
        if (c && !matchTaken.has(key)) {
          matchTaken.add(key);
          chains.push(c);
        }
      } else if (b.kind === 'passthrough') {
        chains.push(...passthroughChains(push, proxy, b, port, sniTaken));
      }
    }
    const tlsChains = chains.length;
    if (servers.some((s) => s.kind === 'http')) {
      chains.push({
        name: httpRouteName(port),
        ...(tlsChains > 0 ? { filter_chain_match: { transport_protocol: 'raw_buffer' } } : {}),
        filters: [hcmFilter(statPrefix, httpRouteName(port))],
      });
    }
    if (chains.length === 0) continue;
    out.push({
      name,
      address: socketAddress(bind, port),
      ...(tlsChains > 0 ? { listener_filters: [tlsInspector()] } : {}),
      filter_chains: chains,
    });
  }
  return out;
}

/** SDS of an ingress gateway: the credentials its servers name, from its own namespace. */
export function ingressSecrets(push: PushContext, proxy: Proxy): EnvoyObject[] {
  const out: EnvoyObject[] = [];
  const done = new Set<string>();
  for (const servers of ingressServers(push, proxy).values()) {
    for (const b of servers) {
      if (b.kind !== 'https') continue;
      const name = credentialOf(push, proxy, b);
      if (name === undefined || done.has(name)) continue;
      done.add(name);
      const c = push.credentials.get(`${proxy.namespace}/${name}`)!;
      out.push({ name: credentialSecretName(name), tls_certificate: { certificate_chain: { inline_string: c.certChainPem }, private_key: { inline_string: c.keyPem } } });
      if (c.caPem) out.push({ name: credentialCaSecretName(name), validation_context: { trusted_ca: { inline_string: c.caPem } } });
    }
  }
  return out;
}

function serverProblem(push: PushContext, b: BoundServer, namespace: string): string | undefined {
  if (b.kind === 'unsupported') return `protocol ${b.server.port.protocol} with tls.mode ${b.server.tls?.mode ?? 'unset'} is not served by isle proxy; no listener chain`;
  if (b.kind !== 'https') return undefined;
  const cred = b.server.tls?.credentialName;
  if (cred === undefined) return 'tls.serverCertificate files are not supported; use credentialName';
  const c = push.credentials.get(`${namespace}/${cred}`);
  if (!c) return `credential ${namespace}/${cred} not found (credentials/${namespace}/${cred}/ in the config directory); no listener chain`;
  if (b.server.tls?.mode === 'MUTUAL' && !c.caPem) return `tls.mode MUTUAL needs ca.crt in credential ${namespace}/${cred}; no listener chain`;
  return undefined;
}

const serverWhere = (b: BoundServer): string => `server port ${b.server.port.number} (${b.server.port.name ?? ''})`;

/** Why a Gateway server selected by this proxy serves nothing (for logs and status). */
export function ingressProblems(push: PushContext, proxy: Proxy): string[] {
  const out: string[] = [];
  for (const servers of ingressServers(push, proxy).values()) {
    for (const b of servers) {
      const p = serverProblem(push, b, proxy.namespace);
      if (p) out.push(`Gateway ${b.key} ${serverWhere(b)}: ${p}`);
    }
  }
  return out;
}

/**
 * The same for every Gateway, with credentials looked up in the Gateway's own namespace (where
 * its gateway proxies usually run): what /debug/configz and `isle status` list.
 */
export function gatewayProblems(push: PushContext): PushedProblem[] {
  const out: PushedProblem[] = [];
  for (const g of push.gateways) {
    for (const server of g.spec.servers) {
      if (server.tls?.mode === 'AUTO_PASSTHROUGH') continue;
      const b: BoundServer = { gateway: g, key: `${gwNs(g)}/${g.metadata.name}`, server, kind: serverKind(server) };
      const p = serverProblem(push, b, gwNs(g));
      if (p) out.push({ resource: `Gateway ${b.key}`, file: g.source.file, line: g.source.line, message: `${serverWhere(b)}: ${p}` });
    }
  }
  return out;
}
