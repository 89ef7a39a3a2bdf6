/**
 * The RBAC slot (`envoy.filters.http.rbac`): AuthorizationPolicy. When the chain has RBAC filters
 * (as the listener has them now: a keep-alive connection outlives listener updates, and a policy
 * change must apply to its next request) `rbacAuthorizer` decides; `ListenerDeps.authorize`
 * overrides it. A denial is Envoy's 403 `RBAC: access denied`, counted in
 * `isle_rbac_denied_total`. Without RBAC filters nothing runs.
 */
import { rbacAuthorizer, type AuthzConnection } from '../authz.js';
import type { ConnInfo } from '../listeners/context.js';
import type { Filter } from './context.js';
import { namespaceOfSpiffe } from './stats.js';

/** The connection's facts as the authorizer reads them: built once per connection, not per request (ADR 0143). */
const authzConns = new WeakMap<ConnInfo, AuthzConnection>();

function authzConnection(c: ConnInfo, sourceIp: string | undefined): AuthzConnection {
  let a = authzConns.get(c);
  if (a === undefined || a.sourceIp !== sourceIp) {
    a = {
      listener: c.listener,
      direction: c.direction,
      peerPrincipal: c.peerId,
      peerNamespace: namespaceOfSpiffe(c.peerId),
      sourceIp,
      destinationPort: c.destinationPort,
      sni: c.sni,
      mtls: c.mtls,
    };
    authzConns.set(c, a);
  }
  return a;
}

export const rbacFilter: Filter = (ctx, next) => {
  const c = ctx.conn;
  const rules = c.rbac ? c.rbac() : c.hcm.rbac;
  const authorize = ctx.deps.authorize ?? (rules.length > 0 ? rbacAuthorizer : undefined);
  if (!authorize) return next(ctx);
  const conn = authzConnection(c, ctx.sourceIp);
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
