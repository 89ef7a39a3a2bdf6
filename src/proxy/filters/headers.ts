/**
 * The connection manager's own request headers, before routing mutations: `x-request-id` when
 * missing, `x-forwarded-proto`, and the forward-client-cert policy (XFCC). Route and virtual-host
 * mutations come later, in the router filter, as in Envoy.
 */
import type { Headers } from '../http1/head.js';
import type { ConnInfo } from '../listeners/context.js';
import type { Filter } from './context.js';
import { dropHeader } from './hop.js';
import { requestId } from './requestid.js';

const XFCC = 'x-forwarded-client-cert';

/** Envoy's XFCC handling (forward_client_cert_details + set_current_client_cert_details). */
export function applyXfcc(headers: Headers, conn: ConnInfo): void {
  const mode = conn.hcm.forwardClientCertDetails;
  const incoming = headers[XFCC];
  if (mode === 'ALWAYS_FORWARD_ONLY') return;
  if (!conn.mtls || mode === 'SANITIZE') {
    dropHeader(headers, XFCC);
    return;
  }
  if (mode === 'FORWARD_ONLY') return;
  const set = conn.hcm.setCurrentClientCertDetails;
  let mine = conn.ownId ? `By=${conn.ownId}` : '';
  if (conn.peerCertHash) mine += `${mine ? ';' : ''}Hash=${conn.peerCertHash}`;
  if (set.uri && conn.peerId) mine += `${mine ? ';' : ''}URI=${conn.peerId}`;
  if (mode === 'APPEND_FORWARD' && incoming !== undefined) headers[XFCC] = `${String(incoming)},${mine}`;
  else headers[XFCC] = mine; // SANITIZE_SET (or APPEND_FORWARD with nothing to append to)
}

export const headersFilter: Filter = (ctx, next) => {
  const h = ctx.req.headers;
  if (!h['x-request-id']) h['x-request-id'] = requestId();
  h['x-forwarded-proto'] ??= ctx.conn.mtls || ctx.req.scheme === 'https' ? 'https' : 'http';
  applyXfcc(h, ctx.conn);
  return next(ctx);
};
