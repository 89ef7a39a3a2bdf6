/**
 * Which xDS types a push can change for one proxy (Istio's "config update → affected resources",
 * `ConfigsUpdated` checked per generator): the push pipeline regenerates only those types and
 * leaves the proxy's other TypeSnapshots where they are (no generation, no diff, no response).
 *
 * The table below is what the generators read (ADR 0120): a sidecar's RDS is the only type that
 * reads VirtualServices, except its capture chains (LDS, INTERCEPTION_MODE REDIRECT); a
 * DestinationRule shapes CDS (policies, subsets → cluster names) and EDS (subset clusters,
 * locality classes), and capture chains name subset clusters. Anything not in the table (other
 * kinds, services, the mesh, gateways and proxyless gRPC clients, whose generators mix kinds)
 * regenerates every type: a missed dependency would leave a proxy with stale config, a spare one
 * only costs a regeneration whose unchanged version sends nothing.
 * test/generate/affected.test.ts checks the table against full regenerations.
 */
import type { Kind } from '../config/types.js';
import type { Proxy } from '../model/proxy.js';
import type { PushRequest } from '../model/pushrequest.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SERVED_TYPES } from '../mesh/typeurls.js';

/** Config kind → the sidecar types it can change (capture chains add LDS, see above). */
const SIDECAR_TYPES_BY_KIND: ReadonlyMap<Kind, readonly string[]> = new Map<Kind, readonly string[]>([
  ['VirtualService', [ROUTE_TYPE]],
  ['DestinationRule', [CLUSTER_TYPE, ENDPOINT_TYPE]],
]);

/**
 * The types to regenerate for `proxy` on `request`, in SERVED_TYPES order: for a full push every
 * type unless the request is config-only (plus endpoint changes) of kinds in the table.
 */
export function affectedTypes(request: PushRequest, proxy: Proxy): readonly string[] {
  // Endpoint-only: EDS, CDS when a host's identities moved, capture chains when its addresses did.
  if (!request.full) {
    return SERVED_TYPES.filter((t) => t === ENDPOINT_TYPE || (t === CLUSTER_TYPE && request.cds) || (t === LISTENER_TYPE && request.lds && proxy.interception === 'REDIRECT'));
  }
  if (request.allTypes || proxy.type !== 'sidecar' || proxy.generator === 'grpc') return SERVED_TYPES;
  const types = new Set<string>();
  // An endpoint change reaches EDS, CDS when a host's identities moved and capture chains when
  // its addresses moved (the pusher's fast path decides those; merged into a full push they are
  // assumed).
  if (request.reasons.has('endpoints')) {
    types.add(ENDPOINT_TYPE).add(CLUSTER_TYPE);
    if (proxy.interception === 'REDIRECT') types.add(LISTENER_TYPE);
  }
  for (const k of request.configKinds) {
    const t = SIDECAR_TYPES_BY_KIND.get(k);
    if (!t) return SERVED_TYPES;
    for (const x of t) types.add(x);
    if (proxy.interception === 'REDIRECT') types.add(LISTENER_TYPE);
  }
  return SERVED_TYPES.filter((t) => types.has(t));
}
