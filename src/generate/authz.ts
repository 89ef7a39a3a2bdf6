/**
 * AuthorizationPolicy → Envoy RBAC, as Istio's authz builder does, so a real Envoy would enforce
 * exactly what `isle proxy` enforces (src/proxy/rbac):
 *
 * - Which policies apply to a workload: those of the root namespace (mesh-wide) and of its own
 *   namespace, without a selector or with `selector.matchLabels` ⊆ its labels. CUSTOM policies
 *   are never pushed (`isle analyze` reports them); neither are policies with targetRef(s).
 * - One RBAC filter per action present, in Istio's order: AUDIT (action LOG, never denies), DENY,
 *   ALLOW. No ALLOW policy means no ALLOW filter (allow); an ALLOW policy without rules is an
 *   ALLOW filter with no policies (allow nothing).
 * - A rule is one RBAC policy named `ns[<ns>]-policy[<name>]-rule[<i>]`: `from` entries are OR'ed
 *   principals, `to` entries OR'ed permissions, each entry the AND of its fields, each field the
 *   OR of its values (`not…` fields negated), `when` conditions AND'ed onto the side they test.
 * - Values: principals `cluster.local/ns/x/sa/y` match the SPIFFE id `spiffe://cluster.local/…`;
 *   `*` alone means "any" (for principals and namespaces: any authenticated peer); a leading or
 *   trailing `*` is a suffix or prefix match.
 * - A rule that cannot be enforced on this port (HTTP-only fields on a TCP port, or a `when` key
 *   Isle does not support) is made stricter, never looser, as Istio does: an ALLOW or AUDIT rule
 *   is dropped; a DENY rule loses only the offending conditions (so it denies more). Each such
 *   case is reported in `warnings` (and by `isle analyze`).
 */
import { HEADER_WHEN_KEY, HTTP_ONLY_OPERATION_FIELDS, HTTP_ONLY_SOURCE_FIELDS, type AuthorizationPolicySpec } from '../config/kinds/security.js';
import type { Resource } from '../config/types.js';
import type { Proxy } from '../model/proxy.js';
import type { PushContext } from '../model/pushcontext.js';
import { HTTP_RBAC_TYPE, NETWORK_RBAC_TYPE } from '../mesh/typeurls.js';
import { labelsMatch } from '../registry/model.js';
import type { EnvoyObject } from './common.js';

type Action = 'ALLOW' | 'DENY' | 'AUDIT';
type Rule = NonNullable<AuthorizationPolicySpec['rules']>[number];
type Source = Record<string, string[]>;
type Operation = Record<string, string[]>;

export interface AuthzFilters {
  /** Envoy HTTP filters to put before the router (HTTP ports). */
  readonly http: EnvoyObject[];
  /** Envoy network filters to put before tcp_proxy (TCP ports). */
  readonly network: EnvoyObject[];
  readonly warnings: string[];
}

const idOf = (p: Resource<AuthorizationPolicySpec>): string => `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`;

/** The AuthorizationPolicies that apply to the proxy's workload, sorted by namespace/name. */
export function authorizationPoliciesFor(push: PushContext, proxy: Proxy): Resource<AuthorizationPolicySpec>[] {
  const root = push.mesh.rootNamespace;
  return push.authorizationPolicies
    .filter((p) => {
      const ns = p.metadata.namespace ?? 'default';
      if (ns !== root && ns !== proxy.namespace) return false;
      if (p.spec.action === 'CUSTOM' || p.spec.targetRef !== undefined || p.spec.targetRefs !== undefined) return false;
      const sel = p.spec.selector?.matchLabels;
      return !sel || Object.keys(sel).length === 0 || labelsMatch(sel, proxy.labels);
    })
    .sort((a, b) => (idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0));
}

// --- value → matcher ---------------------------------------------------------------------------

function stringMatch(v: string, opts: { ignoreCase?: boolean; prefix?: string } = {}): EnvoyObject {
  const pre = opts.prefix ?? '';
  const ic = opts.ignoreCase ? { ignore_case: true } : {};
  if (v === '*') return { safe_regex: { regex: '.+' } };
  if (v.startsWith('*')) return { suffix: v.slice(1), ...ic };
  if (v.endsWith('*')) return { prefix: pre + v.slice(0, -1), ...ic };
  return { exact: pre + v, ...ic };
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function principal(v: string): EnvoyObject {
  return { authenticated: { principal_name: stringMatch(v, { prefix: 'spiffe://' }) } };
}

function namespace(v: string): EnvoyObject {
  const ns = v === '*' ? '[^/]+' : v.split('*').map(escapeRe).join('[^/]*');
  return { authenticated: { principal_name: { safe_regex: { regex: `^spiffe://[^/]+/ns/${ns}/.*$` } } } };
}

function cidr(v: string): EnvoyObject {
  const [ip, bits] = v.split('/');
  const len = bits !== undefined ? Number(bits) : ip!.includes(':') ? 128 : 32;
  return { direct_remote_ip: { address_prefix: ip, prefix_len: { value: len } } };
}

function header(name: string, v: string): EnvoyObject {
  return { header: { name, string_match: stringMatch(v) } };
}

function host(v: string): EnvoyObject {
  const m = { header: { name: ':authority', string_match: stringMatch(v, { ignoreCase: true }) } };
  // Istio also matches the host with a port (`example.com:8080`).
  if (v.includes('*')) return m;
  return { or_rules: { rules: [m, { header: { name: ':authority', string_match: { prefix: `${v}:`, ignore_case: true } } }] } };
}

function path(v: string): EnvoyObject {
  return { url_path: { path: v === '*' ? { prefix: '/' } : stringMatch(v) } };
}

type Side = 'principal' | 'permission';
const OR = { principal: 'or_ids', permission: 'or_rules' } as const;
const AND = { principal: 'and_ids', permission: 'and_rules' } as const;
const NOT = { principal: 'not_id', permission: 'not_rule' } as const;
const LIST = { principal: 'ids', permission: 'rules' } as const;

function anyOf(side: Side, items: EnvoyObject[]): EnvoyObject {
  return items.length === 1 ? items[0]! : { [OR[side]]: { [LIST[side]]: items } };
}
function allOf(side: Side, items: EnvoyObject[]): EnvoyObject {
  if (items.length === 0) return { any: true };
  return items.length === 1 ? items[0]! : { [AND[side]]: { [LIST[side]]: items } };
}
const not = (side: Side, m: EnvoyObject): EnvoyObject => ({ [NOT[side]]: m });

/** Matchers of one field (`values` OR'ed; negated for not-fields). */
function field(side: Side, values: readonly string[], each: (v: string) => EnvoyObject, negate: boolean): EnvoyObject | undefined {
  if (values.length === 0) return undefined;
  const m = anyOf(side, values.map(each));
  return negate ? not(side, m) : m;
}

const SOURCE: Record<string, [(v: string) => EnvoyObject, boolean]> = {
  principals: [principal, false],
  notPrincipals: [principal, true],
  namespaces: [namespace, false],
  notNamespaces: [namespace, true],
  ipBlocks: [cidr, false],
  notIpBlocks: [cidr, true],
};

function port(v: string): EnvoyObject {
  return { destination_port: Number(v) };
}

const OPERATION: Record<string, [(v: string) => EnvoyObject, boolean]> = {
  hosts: [host, false],
  notHosts: [host, true],
  ports: [port, false],
  notPorts: [port, true],
  methods: [(v) => header(':method', v), false],
  notMethods: [(v) => header(':method', v), true],
  paths: [path, false],
  notPaths: [path, true],
};

interface Translated {
  policy?: EnvoyObject;
  /** Why (part of) the rule could not be enforced here. */
  problems: string[];
  /** The rule must be dropped (ALLOW/AUDIT with an unenforceable condition). */
  drop: boolean;
}

function translateRule(rule: Rule, action: Action, tcp: boolean): Translated {
  const problems: string[] = [];
  // ALLOW/AUDIT: an unenforceable condition drops the rule. DENY: it drops the condition.
  const unenforceable = (what: string): void => void problems.push(what);

  const principals: EnvoyObject[] = [];
  for (const f of rule.from ?? []) {
    const src = (f.source ?? {}) as Source;
    const parts: EnvoyObject[] = [];
    for (const [k, values] of Object.entries(src)) {
      const t = SOURCE[k];
      if (!t) {
        unenforceable(`from.source.${k}${HTTP_ONLY_SOURCE_FIELDS.includes(k) && tcp ? ' (HTTP only, this is a TCP port)' : ' (not supported)'}`);
        continue;
      }
      const m = field('principal', values, t[0], t[1]);
      if (m) parts.push(m);
    }
    principals.push(allOf('principal', parts));
  }
  const permissions: EnvoyObject[] = [];
  for (const t of rule.to ?? []) {
    const op = (t.operation ?? {}) as Operation;
    const parts: EnvoyObject[] = [];
    for (const [k, values] of Object.entries(op)) {
      const tr = OPERATION[k];
      if (!tr || (tcp && HTTP_ONLY_OPERATION_FIELDS.includes(k))) {
        unenforceable(`to.operation.${k}${tcp ? ' (HTTP only, this is a TCP port)' : ' (not supported)'}`);
        continue;
      }
      const m = field('permission', values, tr[0], tr[1]);
      if (m) parts.push(m);
    }
    permissions.push(allOf('permission', parts));
  }
  const wherePrincipal: EnvoyObject[] = [];
  const wherePermission: EnvoyObject[] = [];
  for (const c of rule.when ?? []) {
    const add = (side: Side, each: (v: string) => EnvoyObject) => {
      const list = side === 'principal' ? wherePrincipal : wherePermission;
      const pos = field(side, c.values ?? [], each, false);
      const neg = field(side, c.notValues ?? [], each, true);
      if (pos) list.push(pos);
      if (neg) list.push(neg);
    };
    const h = HEADER_WHEN_KEY.exec(c.key);
    if (h) {
      if (tcp) unenforceable(`when ${c.key} (HTTP only, this is a TCP port)`);
      else add('principal', (v) => header(h[1]!.toLowerCase(), v));
    } else if (c.key === 'source.principal') add('principal', principal);
    else if (c.key === 'source.namespace') add('principal', namespace);
    else if (c.key === 'source.ip') add('principal', cidr);
    else if (c.key === 'destination.port') add('permission', port);
    else if (c.key === 'connection.sni') add('permission', (v) => ({ requested_server_name: stringMatch(v) }));
    else unenforceable(`when ${c.key} (not supported)`);
  }
  if (problems.length > 0 && action !== 'DENY') return { problems, drop: true };
  const p = allOf('principal', [...(principals.length ? [anyOf('principal', principals)] : []), ...wherePrincipal]);
  const q = allOf('permission', [...(permissions.length ? [anyOf('permission', permissions)] : []), ...wherePermission]);
  return { policy: { permissions: [q], principals: [p] }, problems, drop: false };
}

const ENVOY_ACTION: Record<Action, string> = { ALLOW: 'ALLOW', DENY: 'DENY', AUDIT: 'LOG' };

/** The RBAC filters for one inbound port of the proxy. */
export function authzFilters(push: PushContext, proxy: Proxy, targetPort: number, tcp: boolean): AuthzFilters {
  const byAction = new Map<Action, Record<string, EnvoyObject>>();
  const warnings: string[] = [];
  for (const p of authorizationPoliciesFor(push, proxy)) {
    const action = (p.spec.action ?? 'ALLOW') as Action;
    const policies = byAction.get(action) ?? {};
    byAction.set(action, policies);
    (p.spec.rules ?? []).forEach((rule, i) => {
      const t = translateRule(rule, action, tcp);
      if (t.problems.length) {
        warnings.push(
          `AuthorizationPolicy ${idOf(p)} rules[${i}] on ${proxy.ip}:${targetPort}: ${t.problems.join(', ')}: ${t.drop ? 'rule ignored' : 'those conditions ignored (the DENY rule matches more)'}`,
        );
      }
      if (t.policy) policies[`ns[${p.metadata.namespace ?? 'default'}]-policy[${p.metadata.name}]-rule[${i}]`] = t.policy;
    });
  }
  const http: EnvoyObject[] = [];
  const network: EnvoyObject[] = [];
  for (const action of ['AUDIT', 'DENY', 'ALLOW'] as const) {
    const policies = byAction.get(action);
    if (!policies) continue;
    const rules = { action: ENVOY_ACTION[action], policies };
    http.push({ name: 'envoy.filters.http.rbac', typed_config: { '@type': HTTP_RBAC_TYPE, rules } });
    network.push({ name: 'envoy.filters.network.rbac', typed_config: { '@type': NETWORK_RBAC_TYPE, stat_prefix: 'tcp.', rules } });
  }
  return { http, network, warnings };
}
