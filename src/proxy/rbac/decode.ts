/**
 * Envoy RBAC config (the typed_config of envoy.filters.http.rbac and envoy.filters.network.rbac)
 * → RbacFilterModel. Anything Isle cannot evaluate (CEL conditions, the matcher-tree API,
 * metadata or filter-state principals) is an error, so the listener is NACKed: an authorization
 * rule silently skipped would allow what it was written to deny.
 */
import { isIP } from 'node:net';
import { headerMatcher } from '../decode/route.js';
import { stringMatcher, type Reader } from '../decode/util.js';
import type { CidrModel, PermissionModel, PrincipalModel, RbacFilterModel, RbacPolicyModel } from '../model.js';

const ANY: PrincipalModel & PermissionModel = { kind: 'any' };

export function cidr(r: Reader | undefined, path: string, errs: Reader['errs']): CidrModel {
  const address = r?.str('address_prefix') ?? '';
  const fam = isIP(address);
  if (fam === 0) errs.add(path, `address_prefix ${JSON.stringify(address)} is not an IP address`);
  const max = fam === 6 ? 128 : 32;
  const lenRaw = r?.raw('prefix_len');
  const len = typeof lenRaw === 'number' ? lenRaw : typeof lenRaw === 'object' && lenRaw !== null ? Number((lenRaw as { value?: unknown }).value ?? 0) : max;
  if (!Number.isInteger(len) || len < 0 || len > max) errs.add(path, `prefix_len ${String(len)} out of range 0-${max}`);
  return { address, prefixLen: len, family: fam === 6 ? 'ipv6' : 'ipv4' };
}

const PRINCIPAL_KEYS = ['and_ids', 'or_ids', 'any', 'authenticated', 'source_ip', 'direct_remote_ip', 'remote_ip', 'header', 'url_path', 'metadata', 'filter_state', 'not_id', 'sourced_metadata', 'custom'];

function principal(r: Reader): PrincipalModel {
  const which = r.oneof(PRINCIPAL_KEYS);
  switch (which) {
    case 'any':
      return ANY;
    case 'and_ids':
    case 'or_ids': {
      const ids = r.obj_(which)!.objs('ids').map(principal);
      if (ids.length === 0) r.errs.add(r.p(which), 'needs at least one id');
      return { kind: which === 'and_ids' ? 'and' : 'or', ids };
    }
    case 'not_id':
      return { kind: 'not', id: principal(r.obj_('not_id')!) };
    case 'authenticated': {
      const a = r.obj_('authenticated')!;
      return { kind: 'authenticated', name: a.has('principal_name') ? stringMatcher(a.obj_('principal_name'), a.p('principal_name'), r.errs) : undefined };
    }
    case 'source_ip':
    case 'direct_remote_ip':
    case 'remote_ip':
      return { kind: 'ip', cidr: cidr(r.obj_(which), r.p(which), r.errs) };
    case 'header':
      return { kind: 'header', matcher: headerMatcher(r.obj_('header')!) };
    case 'url_path': {
      const m = stringMatcher(r.obj_('url_path')?.obj_('path'), r.p('url_path.path'), r.errs);
      return m ? { kind: 'path', matcher: m } : ANY;
    }
    default:
      r.errs.add(r.path, which ? `principal ${which} is not supported by isle proxy` : `principal needs one of ${PRINCIPAL_KEYS.slice(0, 9).join(', ')}`);
      return { kind: 'not', id: ANY };
  }
}

const PERMISSION_KEYS = ['and_rules', 'or_rules', 'any', 'header', 'url_path', 'destination_ip', 'destination_port', 'destination_port_range', 'metadata', 'not_rule', 'requested_server_name', 'matcher', 'uri_template', 'sourced_metadata'];

function permission(r: Reader): PermissionModel {
  const which = r.oneof(PERMISSION_KEYS);
  switch (which) {
    case 'any':
      return ANY;
    case 'and_rules':
    case 'or_rules': {
      const rules = r.obj_(which)!.objs('rules').map(permission);
      if (rules.length === 0) r.errs.add(r.p(which), 'needs at least one rule');
      return { kind: which === 'and_rules' ? 'and' : 'or', rules };
    }
    case 'not_rule':
      return { kind: 'not', rule: permission(r.obj_('not_rule')!) };
    case 'header':
      return { kind: 'header', matcher: headerMatcher(r.obj_('header')!) };
    case 'url_path': {
      const m = stringMatcher(r.obj_('url_path')?.obj_('path'), r.p('url_path.path'), r.errs);
      return m ? { kind: 'path', matcher: m } : ANY;
    }
    case 'destination_ip':
      return { kind: 'destination-ip', cidr: cidr(r.obj_(which), r.p(which), r.errs) };
    case 'destination_port': {
      const port = r.int('destination_port', 0, 0, 65535);
      return { kind: 'port', start: port, end: port + 1 };
    }
    case 'destination_port_range': {
      const g = r.obj_(which)!;
      return { kind: 'port', start: g.int('start', 0, 0, 65536), end: g.int('end', 0, 0, 65536) };
    }
    case 'requested_server_name': {
      const m = stringMatcher(r.obj_(which), r.p(which), r.errs);
      return m ? { kind: 'sni', matcher: m } : { kind: 'not', rule: ANY };
    }
    default:
      r.errs.add(r.path, which ? `permission ${which} is not supported by isle proxy` : `permission needs one of ${PERMISSION_KEYS.slice(0, 11).join(', ')}`);
      return { kind: 'not', rule: ANY };
  }
}

/** The typed_config of an RBAC filter (HTTP or network: the `rules` field is the same). */
export function decodeRbacFilter(tc: Reader): RbacFilterModel | undefined {
  for (const k of ['matcher', 'shadow_matcher', 'shadow_rules']) {
    if (tc.has(k)) tc.errs.add(tc.p(k), 'is not supported by isle proxy');
  }
  const rules = tc.obj_('rules');
  // Envoy: an RBAC filter without rules does nothing.
  if (!rules) return undefined;
  const action = rules.enum_('action', ['ALLOW', 'DENY', 'LOG'] as const, 'ALLOW');
  if (rules.has('audit_logging_options')) rules.errs.add(rules.p('audit_logging_options'), 'is not supported by isle proxy');
  const pol = rules.obj_('policies');
  const policies: RbacPolicyModel[] = [];
  if (pol) {
    for (const name of Object.keys(pol.obj).sort()) {
      const p = pol.obj_(name);
      if (!p) continue;
      for (const k of ['condition', 'checked_condition']) if (p.has(k)) p.errs.add(p.p(k), 'CEL conditions are not supported by isle proxy');
      const permissions = p.objs('permissions').map(permission);
      const principals = p.objs('principals').map(principal);
      if (permissions.length === 0) p.errs.add(p.p('permissions'), 'at least one permission is required');
      if (principals.length === 0) p.errs.add(p.p('principals'), 'at least one principal is required');
      policies.push({ name, permissions, principals });
    }
  }
  return { action, policies };
}
