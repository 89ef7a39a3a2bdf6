/**
 * NDS: Istio's NameTable (istio.networking.nds.v1), what a sidecar's DNS proxy answers from
 * (ADR 0075). One unnamed resource per push, the same for every sidecar (shareKey `nds`):
 * FQDN → addresses, plus short name and namespace for Kubernetes Services, from which the proxy
 * derives the names its own namespace may use (`name`, `name.ns`, `name.ns.svc`), as istio-agent
 * does. Entries are those of Istio's BuildNameTable:
 * - every service with an address — ServiceEntry `addresses`, cluster IPs, or the VIP the
 *   PushContext auto-allocated (model/autovip.ts) — so `.global` hosts (seed 003) are plain entries;
 * - no wildcard hosts (a DNS answer needs one name) nor anything else that is not a plain DNS
 *   name, no CIDR addresses (not a host address);
 * - gateways and proxyless gRPC clients get nothing (they run no DNS proxy).
 */
import { isIP } from 'node:net';
import { isDnsName } from '../config/hosts.js';
import type { PushContext } from '../model/pushcontext.js';
import type { Proxy } from '../model/proxy.js';
import type { Service } from '../registry/model.js';
import type { EnvoyObject, ResourceGroup } from './common.js';

/** NameInfo.registry values Istio uses. */
export const REGISTRY_KUBERNETES = 'Kubernetes';
export const REGISTRY_EXTERNAL = 'External';

function nameInfo(svc: Service, domainSuffix: string): EnvoyObject | undefined {
  // Wildcards, and anything the proxy's decoder would refuse (which would cost every sidecar its table).
  if (!isDnsName(svc.hostname)) return undefined;
  const ips = svc.addresses.filter((a) => isIP(a) !== 0);
  if (ips.length === 0) return undefined;
  const kube = svc.kind === 'Service' && svc.hostname === `${svc.name}.${svc.namespace}.svc.${domainSuffix}`;
  return kube
    ? { ips, registry: REGISTRY_KUBERNETES, shortname: svc.name, namespace: svc.namespace }
    : { ips, registry: REGISTRY_EXTERNAL };
}

/** The NameTable of a push (plain object in the codec's convention). */
export function nameTable(push: PushContext): EnvoyObject {
  const table: Record<string, EnvoyObject> = {};
  for (const svc of push.services) {
    const info = nameInfo(svc, push.mesh.domainSuffix);
    // push.services is sorted and hostnames are unique per push: the first wins on a duplicate.
    if (info && !Object.hasOwn(table, svc.hostname)) table[svc.hostname] = info;
  }
  return Object.keys(table).length > 0 ? { table } : {};
}

export function nameTableGroups(push: PushContext, proxy: Proxy): ResourceGroup[] {
  if (proxy.type !== 'sidecar' || proxy.generator === 'grpc') return [];
  return [{ shareKey: 'nds', build: () => [nameTable(push)] }];
}
