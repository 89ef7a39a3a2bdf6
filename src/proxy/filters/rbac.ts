/**
 * The RBAC slot (`envoy.filters.http.rbac`): AuthorizationPolicy. When the chain has RBAC filters
 * (as the listener has them now: a keep-alive connection outlives listener updates, and a policy
 * change must apply to its next request) `rbacAuthorizer` decides; `ListenerDeps.authorize`
 * overrides it. A denial is Envoy's 403 `RBAC: access denied`, counted in
 * `isle_rbac_denied_total`. Without RBAC filters nothing runs.
 */
import { rbacAuthorizer, type AuthzConnection } from '../authz.js';
import type { Filter } from './context.js';
import { namespaceOfSpiffe } from './stats.js';

export const rbacFilter: Filter = (ctx, next) => {
  const c = ctx.conn;
  const rules = c.rbac ? c.rbac() : c.hcm.rbac;
  const authorize = ctx.deps.authorize ?? (rules.length > 0 ? rbacAuthorizer : undefined);
  if (!authorize) return next(ctx);
  const conn: AuthzConnection = {
    listener: c.listener,
    direction: c.direction,
    peerPrincipal: c.peerId,
    peerNamespace: namespaceOfSpiffe(c.peerId),
    sourceIp: ctx.sourceIp,
    destinationPort: c.destinationPort,
    sni: c.sni,
    mtls: c.mtls,
  };
  const r = ctx.req;
  const decision = authorize({ method: r.method, host: r.authority, path: r.path, headers: r.headers }, conn, rules);
  for (const policy of decision.audited ?? []) ctx.deps.stats.rbacAudited.inc({ listener: c.listener, policy });
  if (!decision.allow) {
    ctx.deps.stats.rbacDenied.inc({ listener: c.listener, policy: decision.policy ?? '(no ALLOW matched)', protocol: 'http' });
    ctx.reply('rbac-denied');
    return Promise.resolve();
  }
  return next(ctx);
};
