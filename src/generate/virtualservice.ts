/**
 * VirtualService → RDS routes (Istio's semantics; see docs/decisions/0014-istio-traffic-apis.md).
 *
 * Pure functions over the PushContext. rds.ts asks `virtualServicesFor` which VirtualServices a
 * client namespace sees for a service host, and `vsRoutes` for the Envoy routes of one virtual
 * host (one service port). When a VirtualService applies, its routes replace the default route:
 * a request no rule matches gets a 404, as in Istio.
 *
 * Several VirtualServices for one host are merged by concatenating their `http` rules in
 * namespace/name order (Isle's resources carry no creation time, so this is the stable stand-in
 * for Istio's creation order). `vsConflicts` reports rules that can never match because an
 * earlier rule catches everything.
 */
import { fqdn, hostMatches } from '../config/hosts.js';
import {
  GRPC_STATUS_CODES,
  type Destination,
  type HeaderOperations,
  type HTTPFaultInjection,
  type HTTPMatchRequest,
  type HTTPRetry,
  type HTTPRoute,
  type StringMatch,
  type VirtualServiceSpec,
} from '../config/kinds/networking.js';
import { parseDuration } from '../config/schema.js';
import type { Resource } from '../config/types.js';
import type { PushContext } from '../model/pushcontext.js';
import { labelsMatch, type Labels, type Service } from '../registry/model.js';
import { FAULT_FILTER_NAME, HTTP_FAULT_TYPE, type EnvoyObject } from './common.js';
import { outboundClusterName } from '../mesh/names.js';

export type VirtualService = Resource<VirtualServiceSpec>;

/** `exportTo`: none = everywhere; `.` = the resource's own namespace; `*` = all; else names. */
export function exportedTo(exportTo: readonly string[] | undefined, ownNamespace: string, clientNamespace: string): boolean {
  if (!exportTo || exportTo.length === 0) return true;
  return exportTo.some((e) => e === '*' || (e === '.' ? ownNamespace === clientNamespace : e === clientNamespace));
}

/** A VirtualService bound to gateways only (no `mesh`) does not program sidecars. */
export function appliesToSidecars(vs: VirtualService): boolean {
  const gws = vs.spec.gateways;
  return !gws || gws.length === 0 || gws.includes('mesh');
}

const wildcardKeysCache = new WeakMap<PushContext, string[]>();

function wildcardKeys(push: PushContext): string[] {
  let keys = wildcardKeysCache.get(push);
  if (!keys) {
    keys = [...push.virtualServicesByHost.keys()].filter((h) => h.startsWith('*'));
    wildcardKeysCache.set(push, keys);
  }
  return keys;
}

/**
 * The VirtualServices that a sidecar in `clientNamespace` uses for `hostname`: those naming the
 * host exactly; without any, those of the most specific wildcard host that matches (Istio).
 */
export function virtualServicesFor(push: PushContext, hostname: string, clientNamespace: string): VirtualService[] {
  const usable = (vs: VirtualService): boolean =>
    appliesToSidecars(vs) && exportedTo(vs.spec.exportTo, vs.metadata.namespace ?? 'default', clientNamespace);
  const exact = (push.virtualServicesByHost.get(hostname) ?? []).filter(usable);
  if (exact.length > 0) return exact;
  let best: VirtualService[] = [];
  let bestLen = -1;
  for (const k of wildcardKeys(push)) {
    if (!hostMatches(k, hostname) || k.length <= bestLen) continue;
    const l = (push.virtualServicesByHost.get(k) ?? []).filter(usable);
    if (l.length === 0) continue;
    best = l;
    bestLen = k.length;
  }
  return best;
}

export interface MergedRule {
  readonly vs: VirtualService;
  /** Index in that VirtualService's `http`. */
  readonly index: number;
  readonly rule: HTTPRoute;
}

/** Rules of several VirtualServices for one host, concatenated in the order given. */
export function mergeHttpRules(vss: readonly VirtualService[]): MergedRule[] {
  return vss.flatMap((vs) => (vs.spec.http ?? []).map((rule, index) => ({ vs, index, rule })));
}

function isCatchAllMatch(m: HTTPMatchRequest | undefined): boolean {
  if (!m) return true;
  const keys = Object.keys(m).filter((k) => k !== 'name' && (m as Record<string, unknown>)[k] !== undefined);
  if (keys.length === 0) return true;
  return keys.length === 1 && m.uri?.prefix === '/';
}

/** A rule every request reaches the end of: no match, or a match with no condition (or `prefix: /`). */
export function isCatchAll(rule: HTTPRoute): boolean {
  return !rule.match || rule.match.length === 0 || rule.match.some(isCatchAllMatch);
}

export interface VsConflict {
  readonly host: string;
  /** `namespace/name http[i]` of the rule that never matches. */
  readonly shadowed: string;
  /** The catch-all rule before it. */
  readonly by: string;
  readonly message: string;
}

const ruleId = (r: MergedRule): string => `${r.vs.metadata.namespace ?? 'default'}/${r.vs.metadata.name} http[${r.index}]`;

/**
 * Rules after a catch-all can never match (Envoy tries routes in order). Pure, so `isle analyze`
 * and the control plane's log can both use it.
 */
export function vsConflicts(host: string, rules: readonly MergedRule[]): VsConflict[] {
  const out: VsConflict[] = [];
  const first = rules.findIndex((r) => isCatchAll(r.rule));
  if (first < 0) return out;
  for (const r of rules.slice(first + 1)) {
    const by = ruleId(rules[first]!);
    const shadowed = ruleId(r);
    const kind = isCatchAll(r.rule) ? 'a second catch-all route' : 'a route';
    out.push({ host, shadowed, by, message: `${host}: ${shadowed} is ${kind} shadowed by the catch-all ${by}; it never matches` });
  }
  return out;
}

/** Conflicts over every host of a set of VirtualServices (as the sidecars of `clientNamespace` see them). */
export function analyzeVirtualServices(push: PushContext, clientNamespace?: string): VsConflict[] {
  const out: VsConflict[] = [];
  for (const [host, list] of push.virtualServicesByHost) {
    const vss = list.filter((vs) => appliesToSidecars(vs) && (clientNamespace === undefined || exportedTo(vs.spec.exportTo, vs.metadata.namespace ?? 'default', clientNamespace)));
    out.push(...vsConflicts(host, mergeHttpRules(vss)));
  }
  return out;
}

/** Whether any VirtualService matches on `sourceLabels` (then RDS depends on the proxy's labels). */
export function sourceLabelSelectors(push: PushContext): Labels[] {
  const seen = new Map<string, Labels>();
  for (const list of push.virtualServicesByHost.values()) {
    for (const vs of list) {
      for (const rule of vs.spec.http ?? []) {
        for (const m of rule.match ?? []) if (m.sourceLabels) seen.set(JSON.stringify(Object.entries(m.sourceLabels).sort()), m.sourceLabels);
      }
    }
  }
  return [...seen.keys()].sort().map((k) => seen.get(k)!);
}

// ---------------------------------------------------------------------------------------------
// translation
// ---------------------------------------------------------------------------------------------

/** Istio duration (`1.5s`, `500ms`, `1m`) → proto3 JSON Duration as the codec writes it back. */
export function protoDuration(d: string): string {
  const ms = parseDuration(d) ?? 0;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(3)}s`;
}

/** Istio's Percent (0–100, fractional) → FractionalPercent per million, as Istio does. */
export function fractionalPercent(value: number | undefined): EnvoyObject {
  const numerator = Math.round((value ?? 0) * 10_000);
  return { ...(numerator > 0 ? { numerator } : {}), denominator: 'MILLION' };
}

function stringMatcher(m: StringMatch): EnvoyObject | undefined {
  if (m.exact !== undefined) return { exact: m.exact };
  if (m.prefix !== undefined) return { prefix: m.prefix };
  if (m.regex !== undefined) return { safe_regex: { regex: m.regex } };
  return undefined;
}

function headerMatcher(name: string, m: StringMatch, invert = false): EnvoyObject {
  const sm = stringMatcher(m);
  return {
    name: name.toLowerCase(),
    ...(sm ? { string_match: sm } : { present_match: true }),
    ...(invert ? { invert_match: true } : {}),
  };
}

/** HTTPMatchRequest → RouteMatch. Port, sourceLabels, gateways are decided by the caller. */
export function routeMatch(m: HTTPMatchRequest | undefined): EnvoyObject {
  const out: EnvoyObject = {};
  const uri = m?.uri;
  if (uri?.exact !== undefined) out['path'] = uri.exact;
  else if (uri?.regex !== undefined) out['safe_regex'] = { regex: uri.regex };
  else out['prefix'] = uri?.prefix ?? '/';
  if (m?.ignoreUriCase) out['case_sensitive'] = false;
  const headers: EnvoyObject[] = [];
  if (m?.method) headers.push(headerMatcher(':method', m.method));
  if (m?.authority) headers.push(headerMatcher(':authority', m.authority));
  if (m?.scheme) headers.push(headerMatcher(':scheme', m.scheme));
  for (const [k, v] of Object.entries(m?.headers ?? {})) headers.push(headerMatcher(k, v));
  for (const [k, v] of Object.entries(m?.withoutHeaders ?? {})) headers.push(headerMatcher(k, v, true));
  if (headers.length > 0) out['headers'] = headers;
  const qp = Object.entries(m?.queryParams ?? {}).map(([name, v]) => {
    const sm = stringMatcher(v);
    return { name, ...(sm ? { string_match: sm } : { present_match: true }) };
  });
  if (qp.length > 0) out['query_parameters'] = qp;
  return out;
}

/** Header set/add/remove → Envoy's header mutation fields (set overwrites, add appends). */
function headerOps(ops: HeaderOperations | undefined, dir: 'request' | 'response', out: EnvoyObject, skip: (k: string) => boolean = () => false): void {
  if (!ops) return;
  const add: EnvoyObject[] = [...((out[`${dir}_headers_to_add`] as EnvoyObject[] | undefined) ?? [])];
  for (const [key, value] of Object.entries(ops.set ?? {})) {
    if (!skip(key)) add.push({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
  }
  // APPEND_IF_EXISTS_OR_ADD is the enum's zero value, so it does not appear on the wire.
  for (const [key, value] of Object.entries(ops.add ?? {})) if (!skip(key)) add.push({ header: { key, value } });
  if (add.length > 0) out[`${dir}_headers_to_add`] = add;
  const remove = [...((out[`${dir}_headers_to_remove`] as string[] | undefined) ?? []), ...(ops.remove ?? [])];
  if (remove.length > 0) out[`${dir}_headers_to_remove`] = remove;
}

const isHostHeader = (k: string): boolean => k.toLowerCase() === 'host' || k.toLowerCase() === ':authority';

/** Istio turns a `set` of Host/:authority into a host rewrite (Envoy cannot set Host as a header). */
function hostFromHeaders(ops: HeaderOperations | undefined): string | undefined {
  for (const [k, v] of Object.entries(ops?.set ?? {})) if (isHostHeader(k)) return v;
  return undefined;
}

export interface VsRouteContext {
  readonly push: PushContext;
  /** The service port of the virtual host the routes are for. */
  readonly port: number;
  readonly clientNamespace: string;
  /** The proxy's labels, for `sourceLabels`; undefined = the proxy matches no sourceLabels. */
  readonly proxyLabels: Labels | undefined;
  readonly defaultRetryPolicy: () => EnvoyObject;
  /** Routes for this Gateway (`<namespace>/<name>`) rather than for sidecars (`mesh`). */
  readonly gateway?: string;
}

/** A destination's cluster: host resolved in the VirtualService's namespace; port per Istio. */
export function destinationCluster(ctx: VsRouteContext, vsNamespace: string, d: Destination): string {
  const host = fqdn(d.host, vsNamespace, ctx.push.mesh.domainSuffix);
  const svc: Service | undefined = ctx.push.servicesByHost.get(host);
  // No port: the service's only port, else the port the request came in on.
  const port = d.port?.number ?? (svc && svc.ports.length === 1 ? svc.ports[0]!.port : ctx.port);
  return outboundClusterName(port, host, d.subset ?? '');
}

/** HTTPRetry → RetryPolicy; undefined retries keep Istio's default; `attempts: 0` disables retries. */
export function retryPolicy(r: HTTPRetry | undefined, dflt: () => EnvoyObject): EnvoyObject | undefined {
  if (!r) return dflt();
  if (!r.attempts) return undefined;
  const p = dflt();
  p['num_retries'] = r.attempts;
  if (r.perTryTimeout) p['per_try_timeout'] = protoDuration(r.perTryTimeout);
  if (r.retryOn) {
    const parts = r.retryOn.split(',').map((s) => s.trim()).filter(Boolean);
    const codes = parts.filter((s) => /^\d+$/.test(s)).map(Number);
    const on = parts.filter((s) => !/^\d+$/.test(s));
    if (codes.length > 0 && !on.includes('retriable-status-codes')) on.push('retriable-status-codes');
    p['retry_on'] = on.join(',');
    if (codes.length > 0) p['retriable_status_codes'] = codes;
    else delete p['retriable_status_codes'];
  }
  return p;
}

/** HTTPFaultInjection → the fault filter's per-route HTTPFault. Unset percentage = never (Istio). */
export function faultConfig(f: HTTPFaultInjection): EnvoyObject | undefined {
  const out: EnvoyObject = { '@type': HTTP_FAULT_TYPE };
  const pct = (p: { value?: number } | undefined, legacy?: number): EnvoyObject =>
    p ? fractionalPercent(p.value) : legacy ? { numerator: legacy } : fractionalPercent(0);
  if (f.delay?.fixedDelay) out['delay'] = { fixed_delay: protoDuration(f.delay.fixedDelay), percentage: pct(f.delay.percentage, f.delay.percent) };
  const a = f.abort;
  if (a?.httpStatus) out['abort'] = { http_status: a.httpStatus, percentage: pct(a.percentage) };
  else if (a?.grpcStatus !== undefined && GRPC_STATUS_CODES[a.grpcStatus] !== undefined) {
    out['abort'] = { grpc_status: GRPC_STATUS_CODES[a.grpcStatus], percentage: pct(a.percentage) };
  }
  return out['delay'] || out['abort'] ? out : undefined;
}

const REDIRECT_CODES: Record<number, string> = { 302: 'FOUND', 303: 'SEE_OTHER', 307: 'TEMPORARY_REDIRECT', 308: 'PERMANENT_REDIRECT' };

/** The Envoy route action (`route`, `redirect` or `direct_response`) of one rule. */
function action(ctx: VsRouteContext, vsNs: string, rule: HTTPRoute, match: EnvoyObject, out: EnvoyObject): void {
  if (rule.redirect) {
    const r = rule.redirect;
    const red: EnvoyObject = {};
    if (r.uri) red['path_redirect'] = r.uri;
    if (r.authority) red['host_redirect'] = r.authority;
    if (r.port) red['port_redirect'] = r.port;
    if (r.scheme) red['scheme_redirect'] = r.scheme;
    const code = r.redirectCode ? REDIRECT_CODES[r.redirectCode] : undefined;
    if (code) red['response_code'] = code;
    out['redirect'] = red;
    return;
  }
  if (rule.directResponse) {
    const body = rule.directResponse.body?.string;
    out['direct_response'] = { status: rule.directResponse.status, ...(body !== undefined ? { body: { inline_string: body } } : {}) };
    return;
  }
  const dests = (rule.route ?? []).filter((d, _i, all) => all.length === 1 || (d.weight ?? 0) > 0);
  const ra: EnvoyObject = {};
  if (dests.length === 1) {
    ra['cluster'] = destinationCluster(ctx, vsNs, dests[0]!.destination);
    // A lone destination's headers apply to the route (Istio).
    headerOps(dests[0]!.headers?.request, 'request', out, isHostHeader);
    headerOps(dests[0]!.headers?.response, 'response', out);
  } else {
    ra['weighted_clusters'] = {
      clusters: dests.map((d) => {
        const wc: EnvoyObject = { name: destinationCluster(ctx, vsNs, d.destination), weight: d.weight ?? 0 };
        headerOps(d.headers?.request, 'request', wc, isHostHeader);
        headerOps(d.headers?.response, 'response', wc);
        const host = hostFromHeaders(d.headers?.request);
        if (host) wc['host_rewrite_literal'] = host;
        return wc;
      }),
    };
  }
  // Istio's default: no route timeout (0s switches off Envoy's 15 s).
  ra['timeout'] = rule.timeout ? protoDuration(rule.timeout) : '0s';
  // Istio's setTimeout: gRPC requests use their grpc-timeout as the deadline, capped by the route timeout.
  ra['max_grpc_timeout'] = ra['timeout'];
  const rp = retryPolicy(rule.retries, ctx.defaultRetryPolicy);
  if (rp) ra['retry_policy'] = rp;
  if (rule.rewrite?.uri !== undefined) {
    // Envoy's prefix_rewrite cannot follow a regex match; replace the whole path instead.
    if (match['safe_regex']) ra['regex_rewrite'] = { pattern: { regex: '^.*$' }, substitution: rule.rewrite.uri };
    else ra['prefix_rewrite'] = rule.rewrite.uri;
  } else if (rule.rewrite?.uriRegexRewrite) {
    ra['regex_rewrite'] = { pattern: { regex: rule.rewrite.uriRegexRewrite.match }, substitution: rule.rewrite.uriRegexRewrite.rewrite };
  }
  const host = rule.rewrite?.authority ?? hostFromHeaders(rule.headers?.request) ?? (dests.length === 1 ? hostFromHeaders(dests[0]!.headers?.request) : undefined);
  if (host) ra['host_rewrite_literal'] = host;
  const mirrors = [
    ...(rule.mirror ? [{ destination: rule.mirror, percentage: rule.mirrorPercentage }] : []),
    ...(rule.mirrors ?? []),
  ];
  if (mirrors.length > 0) {
    ra['request_mirror_policies'] = mirrors.map((m) => ({
      cluster: destinationCluster(ctx, vsNs, m.destination),
      // No percentage: mirror everything (Istio).
      runtime_fraction: { default_value: fractionalPercent(m.percentage?.value ?? 100) },
    }));
  }
  out['route'] = ra;
}

function matchApplies(ctx: VsRouteContext, vsNs: string, m: HTTPMatchRequest | undefined): boolean {
  if (!m) return true;
  if (m.port !== undefined && m.port !== ctx.port) return false;
  if (m.sourceLabels && !(ctx.proxyLabels && labelsMatch(m.sourceLabels, ctx.proxyLabels))) return false;
  if (m.gateways && m.gateways.length > 0 && !gatewayRefs(m.gateways, vsNs).includes(ctx.gateway ?? 'mesh')) return false;
  if (m.sourceNamespace !== undefined && m.sourceNamespace !== ctx.clientNamespace) return false;
  return true;
}

/**
 * `gateways:` entries name Gateways as `<name>` (the VirtualService's namespace) or
 * `<namespace>/<name>`; `mesh` stays as it is. Normalizes them all to `<namespace>/<name>`.
 */
export function gatewayRefs(refs: readonly string[] | undefined, vsNamespace: string): string[] {
  return (refs ?? []).map((g) => (g === 'mesh' || g.includes('/') ? g : `${vsNamespace}/${g}`));
}

/** One Envoy route per applicable match of each rule (a rule without match is one catch-all route). */
export function vsRoutes(ctx: VsRouteContext, vss: readonly VirtualService[]): EnvoyObject[] {
  const out: EnvoyObject[] = [];
  for (const { vs, rule } of mergeHttpRules(vss)) {
    const vsNs = vs.metadata.namespace ?? 'default';
    const matches: (HTTPMatchRequest | undefined)[] = rule.match && rule.match.length > 0 ? rule.match : [undefined];
    for (const m of matches) {
      if (!matchApplies(ctx, vsNs, m)) continue;
      const r: EnvoyObject = {};
      const name = m?.name ? (rule.name ? `${rule.name}.${m.name}` : m.name) : rule.name;
      if (name) r['name'] = name;
      r['match'] = routeMatch(m);
      action(ctx, vsNs, rule, r['match'] as EnvoyObject, r);
      headerOps(rule.headers?.request, 'request', r, isHostHeader);
      headerOps(rule.headers?.response, 'response', r);
      const fault = rule.fault ? faultConfig(rule.fault) : undefined;
      if (fault) r['typed_per_filter_config'] = { [FAULT_FILTER_NAME]: fault };
      out.push(r);
    }
  }
  return out;
}

export interface PushedProblem {
  /** `VirtualService <ns>/<name>`. */
  readonly resource: string;
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

/**
 * Routes pushed although they cannot work (issue 16 part 4.4): a destination subset that no
 * DestinationRule of its host defines. Istio pushes them and Envoy answers 503 `NR` (the cluster
 * does not exist); Isle keeps that behaviour but lists them (/debug/configz, `isle status`).
 */
export function undefinedSubsets(push: PushContext): PushedProblem[] {
  const out: PushedProblem[] = [];
  const seen = new Set<VirtualService>();
  for (const list of push.virtualServicesByHost.values()) {
    for (const vs of list) {
      if (seen.has(vs)) continue;
      seen.add(vs);
      const ns = vs.metadata.namespace ?? 'default';
      const check = (d: Destination, where: string): void => {
        if (!d.subset) return;
        const host = fqdn(d.host, ns, push.mesh.domainSuffix);
        if ((push.subsetsByHost.get(host) ?? []).some((s) => s.name === d.subset)) return;
        out.push({
          resource: `VirtualService ${ns}/${vs.metadata.name}`,
          file: vs.source.file,
          line: vs.source.line,
          message: `${where}: subset ${JSON.stringify(d.subset)} of ${host} is not defined by any DestinationRule; pushed anyway, requests get 503 (NR)`,
        });
      };
      (vs.spec.http ?? []).forEach((r, i) => {
        (r.route ?? []).forEach((d, j) => check(d.destination, `http[${i}].route[${j}]`));
        if (r.mirror) check(r.mirror, `http[${i}].mirror`);
      });
      for (const proto of ['tcp', 'tls'] as const) {
        (vs.spec[proto] ?? []).forEach((r, i) => (r.route ?? []).forEach((d, j) => check(d.destination, `${proto}[${i}].route[${j}]`)));
      }
    }
  }
  return out;
}
