/**
 * The RBAC engine: decoded Envoy RBAC filters × what one request (or TCP connection) proves →
 * allow or deny, with the policy that decided. Pure and allocation-light: it runs for every
 * inbound request of a workload that has AuthorizationPolicies.
 *
 * Envoy's semantics, filter by filter in chain order: a DENY filter denies when any policy
 * matches; an ALLOW filter denies when none does (no policies at all = allow nothing); a LOG
 * filter only records. A policy matches when any permission and any principal match. Facts a
 * TCP connection does not have (method, path, headers) match nothing, and a plaintext peer has
 * no principal, so `authenticated` never matches it.
 */
import { BlockList, isIP } from 'node:net';
import { matchHeader, matchString, pathOnly, type RouteRequest } from '../routing/match.js';
import type { CidrModel, PermissionModel, PrincipalModel, RbacFilterModel, RbacPolicyModel } from '../model.js';

export interface RbacFacts {
  /** SPIFFE id of the verified peer certificate; undefined for plaintext. */
  readonly principal?: string | undefined;
  readonly sourceIp?: string | undefined;
  readonly destinationIp?: string | undefined;
  readonly destinationPort?: number | undefined;
  /** TLS SNI the client sent. */
  readonly sni?: string | undefined;
  /** HTTP only. */
  readonly method?: string | undefined;
  /** Path with query, as sent. */
  readonly path?: string | undefined;
  /** :authority. */
  readonly host?: string | undefined;
  /** Lower-case names. */
  readonly headers?: Readonly<Record<string, string | string[] | undefined>> | undefined;
}

export interface RbacDecision {
  readonly allowed: boolean;
  /** The DENY policy that matched; undefined when an ALLOW filter matched nothing, or when allowed. */
  readonly policy: string | undefined;
  /** Policies of LOG (AUDIT) filters that matched. */
  readonly audited: readonly string[];
}

const ALLOWED: RbacDecision = Object.freeze({ allowed: true, policy: undefined, audited: Object.freeze([]) as readonly string[] });

const blockLists = new WeakMap<CidrModel, BlockList>();
export function inCidr(c: CidrModel, ip: string | undefined): boolean {
  if (!ip) return false;
  let addr = ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
  const fam = isIP(addr);
  if (fam === 0) return false;
  if ((fam === 4) !== (c.family === 'ipv4')) return false;
  let b = blockLists.get(c);
  if (!b) {
    b = new BlockList();
    b.addSubnet(c.address, c.prefixLen, c.family);
    blockLists.set(c, b);
  }
  addr = addr.toLowerCase();
  return b.check(addr, c.family);
}

/** The request as the header matchers of the router read it. */
function asRoute(f: RbacFacts): RouteRequest | undefined {
  if (f.method === undefined) return undefined;
  return { authority: f.host ?? '', path: f.path ?? '', method: f.method, headers: (f.headers ?? {}) as RouteRequest['headers'] };
}

function principalMatches(p: PrincipalModel, f: RbacFacts, req: RouteRequest | undefined): boolean {
  switch (p.kind) {
    case 'any':
      return true;
    case 'and':
      return p.ids.every((x) => principalMatches(x, f, req));
    case 'or':
      return p.ids.some((x) => principalMatches(x, f, req));
    case 'not':
      return !principalMatches(p.id, f, req);
    case 'authenticated':
      return f.principal !== undefined && (p.name === undefined || matchString(p.name, f.principal));
    case 'ip':
      return inCidr(p.cidr, f.sourceIp);
    case 'header':
      return req !== undefined && matchHeader(p.matcher, req);
    case 'path':
      return req !== undefined && matchString(p.matcher, pathOnly(req.path));
  }
}

function permissionMatches(p: PermissionModel, f: RbacFacts, req: RouteRequest | undefined): boolean {
  switch (p.kind) {
    case 'any':
      return true;
    case 'and':
      return p.rules.every((x) => permissionMatches(x, f, req));
    case 'or':
      return p.rules.some((x) => permissionMatches(x, f, req));
    case 'not':
      return !permissionMatches(p.rule, f, req);
    case 'header':
      return req !== undefined && matchHeader(p.matcher, req);
    case 'path':
      return req !== undefined && matchString(p.matcher, pathOnly(req.path));
    case 'port':
      return f.destinationPort !== undefined && f.destinationPort >= p.start && f.destinationPort < p.end;
    case 'destination-ip':
      return inCidr(p.cidr, f.destinationIp);
    case 'sni':
      return f.sni !== undefined && matchString(p.matcher, f.sni);
  }
}

export function policyMatches(p: RbacPolicyModel, f: RbacFacts, req: RouteRequest | undefined = asRoute(f)): boolean {
  return p.permissions.some((x) => permissionMatches(x, f, req)) && p.principals.some((x) => principalMatches(x, f, req));
}

/** Runs the filters in order; the first denial decides. */
export function evaluateRbac(filters: readonly RbacFilterModel[], facts: RbacFacts): RbacDecision {
  if (filters.length === 0) return ALLOWED;
  const req = asRoute(facts);
  let audited: string[] | undefined;
  for (const filter of filters) {
    const matched = filter.policies.find((p) => policyMatches(p, facts, req));
    if (filter.action === 'LOG') {
      if (matched) (audited ??= []).push(matched.name);
    } else if (filter.action === 'DENY') {
      if (matched) return { allowed: false, policy: matched.name, audited: audited ?? [] };
    } else if (!matched) {
      return { allowed: false, policy: undefined, audited: audited ?? [] };
    }
  }
  return audited ? { allowed: true, policy: undefined, audited } : ALLOWED;
}
