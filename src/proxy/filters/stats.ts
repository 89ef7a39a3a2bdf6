/**
 * The outermost filter: fills in the standard-metric labels it knows before anything runs, and
 * makes sure every request is recorded once, an internal error included (500, or a reset when
 * the response had started).
 */
import type { Filter } from './context.js';

function namespaceOfSpiffe(id: string | undefined): string | undefined {
  if (!id) return undefined;
  const i = id.indexOf('/ns/');
  if (i < 0) return undefined;
  const j = id.indexOf('/', i + 4);
  return j < 0 ? undefined : id.slice(i + 4, j);
}

export { namespaceOfSpiffe };

export const statsFilter: Filter = async (ctx, next) => {
  const r = ctx.record;
  const identity = ctx.deps.identity ?? {};
  const conn = ctx.conn;
  if (ctx.inbound) {
    r.connectionSecurityPolicy = conn.mtls ? 'mutual_tls' : 'none';
    r.sourcePrincipal = conn.peerId;
    r.sourceWorkloadNamespace = namespaceOfSpiffe(conn.peerId);
    r.destinationWorkload = identity.workload;
    r.destinationWorkloadNamespace = identity.namespace;
    r.destinationPrincipal = identity.principal ?? conn.ownId;
    r.destinationService = identity.service;
  } else {
    r.sourceWorkload = identity.workload;
    r.sourceWorkloadNamespace = identity.namespace;
    r.sourcePrincipal = identity.principal;
  }
  try {
    await next(ctx);
  } catch (e) {
    ctx.deps.log?.(`isle proxy: request handling failed: ${e instanceof Error ? e.stack : String(e)}`);
    ctx.reply('internal-error');
  }
};
