/**
 * The PushContext: one immutable, indexed snapshot of everything the generators read for one push
 * (DESIGN §3). It is built once per push by a pure function and never mutated, so every generator
 * call for every proxy sees the same world, and resources derived from it can be serialized once
 * and shared (src/xds/generators/index.ts keys its cache on the PushContext object).
 *
 * Deliberately simple for now; the seams for later issues are:
 * - `inboundMtlsMode` stands in for PeerAuthentication (issue 6),
 * - `networkGateways` is carried but only read by the EDS endpoint resolver seam (issue 5),
 * - VirtualServices are indexed but not yet translated into routes (issue 6).
 */
import { DEFAULT_DOMAIN_SUFFIX, fqdn } from '../config/hosts.js';
import type { DestinationRuleSpec, Subset, VirtualServiceSpec } from '../config/kinds/networking.js';
import type { Resource } from '../config/types.js';
import { labelsMatch, type Endpoint, type Labels, type Service } from '../registry/model.js';
import { spiffeId } from '../xds/generators/names.js';

export interface MeshInfo {
  /** SPIFFE trust domain of the mesh. */
  readonly trustDomain: string;
  /** The cluster this control plane serves. */
  readonly clusterName: string;
  /** That cluster's network ('' when the mesh is a single network). */
  readonly network: string;
  /** Namespace of mesh-wide config (DestinationRules here apply to every namespace). */
  readonly rootNamespace: string;
  /** Suffix of Kubernetes Service host names; default `cluster.local`. */
  readonly domainSuffix: string;
}

/** An east-west gateway's address, as the clients on other networks dial it. */
export interface GatewayAddress {
  readonly address: string;
  readonly port: number;
  readonly cluster?: string;
}

export type InboundMtlsMode = 'STRICT' | 'PERMISSIVE';

/** What the registry view must offer; `Registry` from src/registry satisfies it. */
export interface RegistryView {
  services(): readonly Service[];
  allEndpoints(hostname: string): readonly Endpoint[];
}

export interface PushContextInput {
  /** Opaque, unique per push; part of every cache key. */
  version: string;
  mesh: Partial<MeshInfo> & Pick<MeshInfo, 'trustDomain' | 'clusterName'>;
  services: readonly Service[];
  /** Every endpoint, or a lookup by hostname (e.g. `registry.allEndpoints`). */
  endpoints: readonly Endpoint[] | ((hostname: string) => readonly Endpoint[]);
  virtualServices?: readonly Resource<VirtualServiceSpec>[];
  destinationRules?: readonly Resource<DestinationRuleSpec>[];
  /** network → its east-west gateways (multi-network EDS, issue 5). */
  networkGateways?: Readonly<Record<string, readonly GatewayAddress[]>>;
  /** PEM of the root bundle: the SDS `ROOTCA` secret. */
  trustBundlePem?: string;
  /** Mesh-wide inbound mTLS until PeerAuthentication is translated (issue 6). Default STRICT. */
  inboundMtlsMode?: InboundMtlsMode;
}

export interface PushContext {
  readonly version: string;
  readonly mesh: MeshInfo;
  /** Sorted by hostname. */
  readonly services: readonly Service[];
  readonly servicesByHost: ReadonlyMap<string, Service>;
  /** `hostname|servicePort` → endpoints, sorted (address, port, cluster, workload). */
  readonly endpointsByHostPort: ReadonlyMap<string, readonly Endpoint[]>;
  /** Endpoint address → endpoints with that address (any network: callers narrow). */
  readonly endpointsByAddress: ReadonlyMap<string, readonly Endpoint[]>;
  /** hostname → sorted SPIFFE ids of the service accounts its endpoints run as. */
  readonly identitiesByHost: ReadonlyMap<string, readonly string[]>;
  /** hostname (FQDN) → the DestinationRule that applies to it (see destinationRuleFor). */
  readonly destinationRuleByHost: ReadonlyMap<string, Resource<DestinationRuleSpec>>;
  /** hostname → subsets of that DestinationRule, in its order, duplicates dropped. */
  readonly subsetsByHost: ReadonlyMap<string, readonly Subset[]>;
  /** hostname (FQDN, or a wildcard as written) → VirtualServices naming it, sorted by namespace/name. */
  readonly virtualServicesByHost: ReadonlyMap<string, readonly Resource<VirtualServiceSpec>[]>;
  readonly networkGateways: Readonly<Record<string, readonly GatewayAddress[]>>;
  readonly trustBundlePem: string | undefined;
  readonly inboundMtlsMode: InboundMtlsMode;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function endpointOrder(a: Endpoint, b: Endpoint): number {
  return (
    cmp(a.address ?? '', b.address ?? '') ||
    a.port - b.port ||
    cmp(a.cluster, b.cluster) ||
    cmp(a.workload, b.workload) ||
    cmp(a.portName, b.portName)
  );
}

function freezeMap<K, V>(m: Map<K, V>): ReadonlyMap<K, V> {
  return Object.freeze(m) as ReadonlyMap<K, V>;
}

/**
 * Which DestinationRule applies when several name one host. Istio also weighs the client's
 * namespace; Isle does not yet, so that CDS stays the same for every sidecar and is serialized
 * once: the service's own namespace wins, then the root namespace, then by namespace/name.
 */
function drRank(dr: Resource<DestinationRuleSpec>, svcNamespace: string | undefined, rootNs: string): number {
  const ns = dr.metadata.namespace ?? '';
  if (ns === svcNamespace) return 0;
  if (ns === rootNs) return 1;
  return 2;
}

const byNsName = (a: Resource<unknown>, b: Resource<unknown>): number =>
  cmp(a.metadata.namespace ?? '', b.metadata.namespace ?? '') || cmp(a.metadata.name, b.metadata.name);

export function buildPushContext(input: PushContextInput): PushContext {
  const mesh: MeshInfo = Object.freeze({
    trustDomain: input.mesh.trustDomain,
    clusterName: input.mesh.clusterName,
    network: input.mesh.network ?? '',
    rootNamespace: input.mesh.rootNamespace ?? 'istio-system',
    domainSuffix: input.mesh.domainSuffix ?? DEFAULT_DOMAIN_SUFFIX,
  });

  const services = Object.freeze([...input.services].sort((a, b) => cmp(a.hostname, b.hostname)));
  const servicesByHost = new Map(services.map((s) => [s.hostname, s] as const));

  let lookup: (hostname: string) => readonly Endpoint[];
  if (typeof input.endpoints === 'function') {
    lookup = input.endpoints;
  } else {
    const byHost = new Map<string, Endpoint[]>();
    for (const e of input.endpoints) {
      let l = byHost.get(e.hostname);
      if (!l) byHost.set(e.hostname, (l = []));
      l.push(e);
    }
    lookup = (h) => byHost.get(h) ?? [];
  }

  const endpointsByHostPort = new Map<string, readonly Endpoint[]>();
  const endpointsByAddress = new Map<string, Endpoint[]>();
  const identitiesByHost = new Map<string, readonly string[]>();
  for (const svc of services) {
    const all = [...lookup(svc.hostname)].sort(endpointOrder);
    const ids = new Set<string>();
    for (const p of svc.ports) {
      endpointsByHostPort.set(`${svc.hostname}|${p.port}`, Object.freeze(all.filter((e) => e.servicePort === p.port)));
    }
    for (const e of all) {
      if (e.serviceAccount.name) ids.add(spiffeId(mesh.trustDomain, e.serviceAccount.namespace, e.serviceAccount.name));
      if (e.address === undefined) continue;
      let l = endpointsByAddress.get(e.address);
      if (!l) endpointsByAddress.set(e.address, (l = []));
      l.push(e);
    }
    identitiesByHost.set(svc.hostname, Object.freeze([...ids].sort(cmp)));
  }
  for (const l of endpointsByAddress.values()) Object.freeze(l);

  const destinationRuleByHost = new Map<string, Resource<DestinationRuleSpec>>();
  const drCandidates = new Map<string, Resource<DestinationRuleSpec>[]>();
  for (const dr of input.destinationRules ?? []) {
    // Wildcard hosts are left to issue 6's translation; exact hosts cover subsets today.
    if (dr.spec.host.includes('*')) continue;
    const host = fqdn(dr.spec.host, dr.metadata.namespace ?? 'default', mesh.domainSuffix);
    let l = drCandidates.get(host);
    if (!l) drCandidates.set(host, (l = []));
    l.push(dr);
  }
  const subsetsByHost = new Map<string, readonly Subset[]>();
  for (const [host, list] of drCandidates) {
    const svcNs = servicesByHost.get(host)?.namespace;
    const best = [...list].sort((a, b) => drRank(a, svcNs, mesh.rootNamespace) - drRank(b, svcNs, mesh.rootNamespace) || byNsName(a, b))[0]!;
    destinationRuleByHost.set(host, best);
    const seen = new Set<string>();
    const subsets: Subset[] = [];
    for (const s of best.spec.subsets ?? []) {
      if (seen.has(s.name)) continue;
      seen.add(s.name);
      subsets.push(s);
    }
    subsetsByHost.set(host, Object.freeze(subsets));
  }

  const virtualServicesByHost = new Map<string, Resource<VirtualServiceSpec>[]>();
  for (const vs of [...(input.virtualServices ?? [])].sort(byNsName)) {
    for (const h of vs.spec.hosts ?? []) {
      const host = fqdn(h, vs.metadata.namespace ?? 'default', mesh.domainSuffix);
      let l = virtualServicesByHost.get(host);
      if (!l) virtualServicesByHost.set(host, (l = []));
      if (!l.includes(vs)) l.push(vs);
    }
  }
  for (const l of virtualServicesByHost.values()) Object.freeze(l);

  return Object.freeze({
    version: input.version,
    mesh,
    services,
    servicesByHost: freezeMap(servicesByHost),
    endpointsByHostPort: freezeMap(endpointsByHostPort),
    endpointsByAddress: freezeMap(endpointsByAddress as Map<string, readonly Endpoint[]>),
    identitiesByHost: freezeMap(identitiesByHost),
    destinationRuleByHost: freezeMap(destinationRuleByHost),
    subsetsByHost: freezeMap(subsetsByHost),
    virtualServicesByHost: freezeMap(virtualServicesByHost as Map<string, readonly Resource<VirtualServiceSpec>[]>),
    networkGateways: Object.freeze({ ...(input.networkGateways ?? {}) }),
    trustBundlePem: input.trustBundlePem,
    inboundMtlsMode: input.inboundMtlsMode ?? 'STRICT',
  });
}

/** buildPushContext over a registry view (the aggregate `Registry`). */
export function pushContextFromRegistry(
  registry: RegistryView,
  rest: Omit<PushContextInput, 'services' | 'endpoints'>,
): PushContext {
  return buildPushContext({ ...rest, services: registry.services(), endpoints: (h) => registry.allEndpoints(h) });
}

const NONE: readonly Endpoint[] = Object.freeze([]);

/** Endpoints of one service port, narrowed to a subset's labels when `subset` is given. */
export function endpointsFor(push: PushContext, hostname: string, port: number, subset?: string): readonly Endpoint[] {
  const all = push.endpointsByHostPort.get(`${hostname}|${port}`) ?? NONE;
  if (!subset) return all;
  const labels = subsetLabels(push, hostname, subset);
  // An unknown subset selects nothing rather than everything: a typo must not widen traffic.
  if (labels === undefined) return NONE;
  return all.filter((e) => labelsMatch(labels, e.labels));
}

/** The labels of a DestinationRule subset; undefined when the host has no such subset. */
export function subsetLabels(push: PushContext, hostname: string, subset: string): Labels | undefined {
  const s = push.subsetsByHost.get(hostname)?.find((x) => x.name === subset);
  return s ? (s.labels ?? {}) : undefined;
}
