/**
 * The RBAC slot (`envoy.filters.http.rbac`): asks the configured authorizer (`ListenerDeps
 * .authorize`, see ../authz.ts) whether the request may pass; a denial is Envoy's 403
 * `RBAC: access denied`. With no authorizer configured the filter passes everything through, so
 * this costs nothing until AuthorizationPolicy is implemented.
 */
import type { AuthzConnection } from '../authz.js';
import type { Filter } from './context.js';
import { namespaceOfSpiffe } from './stats.js';

export const rbacFilter: Filter = (ctx, next) => {
  const authorize = ctx.deps.authorize;
  if (!authorize) return next(ctx);
  const c = ctx.conn;
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
  const decision = authorize({ method: r.method, host: r.authority, path: r.path, headers: r.headers }, conn, c.hcm);
  if (!decision.allow) {
    ctx.reply('rbac-denied');
    return Promise.resolve();
  }
  return next(ctx);
};
