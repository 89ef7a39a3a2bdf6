/**
 * PeerAuthentication → the inbound mTLS mode of each port of a workload (server side), as Istio's
 * authn policy applier (ComposePeerAuthentication) computes it:
 *
 * - Scopes: mesh (root namespace, no selector), namespace (the workload's namespace, no selector),
 *   workload (the workload's namespace, `selector.matchLabels` ⊆ its labels). A policy with a
 *   selector in the root namespace is ignored, as in Istio. Of several at one scope the first by
 *   name applies (Istio takes the oldest; Isle's config has no creation time, and `isle analyze`
 *   warns about the duplicates).
 * - Inheritance: start from the fallback (PushContext `inboundMtlsMode`, default PERMISSIVE, which
 *   is Istio's default), then mesh, namespace and workload in that order, each overriding unless
 *   its mode is UNSET (or absent).
 * - `portLevelMtls` (workload scope only) sets the mode of the listed workload ports (target
 *   ports, where the sidecar listens); UNSET there inherits the workload-level result.
 *
 * lds.ts turns the mode into filter chains: STRICT = the TLS chain only, PERMISSIVE = TLS chain +
 * plaintext chain (tls_inspector `transport_protocol`), DISABLE = one plaintext chain.
 */
import type { InboundMtlsMode, PushContext } from '../model/pushcontext.js';
import type { Proxy } from '../model/proxy.js';
import type { MtlsMode, PeerAuthenticationSpec } from '../config/kinds/security.js';
import type { Resource } from '../config/types.js';
import { labelsMatch } from '../registry/model.js';

export interface WorkloadMtls {
  /** The workload-level mode. */
  readonly mode: InboundMtlsMode;
  /** Target port → mode, for ports a workload policy lists. */
  readonly perPort: ReadonlyMap<number, InboundMtlsMode>;
  /** The policies that applied, mesh → workload (`namespace/name`), for debugging. */
  readonly from: readonly string[];
}

const isSet = (m: MtlsMode | undefined): m is Exclude<MtlsMode, 'UNSET'> => m !== undefined && m !== 'UNSET';

function hasSelector(pa: Resource<PeerAuthenticationSpec>): boolean {
  const m = pa.spec.selector?.matchLabels;
  return m !== undefined && Object.keys(m).length > 0;
}

const id = (pa: Resource<PeerAuthenticationSpec>): string => `${pa.metadata.namespace ?? 'default'}/${pa.metadata.name}`;

/** The PeerAuthentications that apply to `proxy`'s workload, by scope. */
export function peerAuthenticationsFor(push: PushContext, proxy: Proxy): {
  mesh?: Resource<PeerAuthenticationSpec>;
  namespace?: Resource<PeerAuthenticationSpec>;
  workload?: Resource<PeerAuthenticationSpec>;
} {
  const root = push.mesh.rootNamespace;
  const mesh = (push.peerAuthenticationsByNamespace.get(root) ?? []).find((pa) => !hasSelector(pa));
  const own = proxy.namespace === root ? [] : (push.peerAuthenticationsByNamespace.get(proxy.namespace) ?? []);
  const namespace = own.find((pa) => !hasSelector(pa));
  const workload = own.find((pa) => hasSelector(pa) && labelsMatch(pa.spec.selector!.matchLabels!, proxy.labels));
  return { ...(mesh ? { mesh } : {}), ...(namespace ? { namespace } : {}), ...(workload ? { workload } : {}) };
}

export function workloadMtls(push: PushContext, proxy: Proxy): WorkloadMtls {
  const { mesh, namespace, workload } = peerAuthenticationsFor(push, proxy);
  let mode: InboundMtlsMode = push.inboundMtlsMode;
  const from: string[] = [];
  for (const pa of [mesh, namespace, workload]) {
    if (!pa) continue;
    from.push(id(pa));
    const m = pa.spec.mtls?.mode;
    if (isSet(m)) mode = m;
  }
  const perPort = new Map<number, InboundMtlsMode>();
  for (const [port, v] of Object.entries(workload?.spec.portLevelMtls ?? {})) {
    perPort.set(Number(port), isSet(v.mode) ? v.mode : mode);
  }
  return { mode, perPort, from };
}

/** The inbound mTLS mode of one workload port (the sidecar's listener on `targetPort`). */
export function inboundMtlsMode(push: PushContext, proxy: Proxy, targetPort: number, computed = workloadMtls(push, proxy)): InboundMtlsMode {
  return computed.perPort.get(targetPort) ?? computed.mode;
}
