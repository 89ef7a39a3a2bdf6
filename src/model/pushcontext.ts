/**
 * The PushContext: one immutable, indexed snapshot of everything the generators read for one push
 * (DESIGN §3). It is built once per push by a pure function and never mutated, so every generator
 * call for every proxy sees the same world, and resources derived from it can be serialized once
 * and shared (src/generate/index.ts keys its cache on the PushContext object).
 *
 * What reads which index:
 * - PeerAuthentications are indexed by namespace; generate/peerauthn.ts computes each port's mode
 *   (`inboundMtlsMode` is only the fallback when none sets one),
 * - `networkGateways` (from peering) drives network-aware EDS (generate/network.ts, eds.ts),
 * - VirtualServices and DestinationRules are indexed by host and translated into routes and
 *   cluster policy by generate/virtualservice.ts and destinationrule.ts.
 */
import { DEFAULT_DOMAIN_SUFFIX, fqdn, hostMatches } from '../config/hosts.js';
import type { DestinationRuleSpec, GatewaySpec, Subset, VirtualServiceSpec } from '../config/kinds/networking.js';
import type { AuthorizationPolicySpec, PeerAuthenticationSpec } from '../config/kinds/security.js';
import type { EnvoyFilterSpec } from '../config/kinds/envoyfilter.js';
import type { Resource } from '../config/types.js';
import { labelsMatch, type Endpoint, type Labels, type Service } from '../registry/model.js';
import { buildSpiffeId } from '../pki/spiffe.js';
import type { MeshSettings, MeshTracing } from '../mesh/settings.js';
import type { TelemetrySpec } from '../config/kinds/telemetry.js';
import { allocateAutoVips } from './autovip.js';

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
  /** Every proxy's access log (meshConfig.accessLogFile/accessLogEncoding); undefined: none. */
  readonly accessLog?: { readonly file: string; readonly encoding: 'TEXT' | 'JSON' };
  /** Tracing providers and mesh defaults (generate/tracing.ts); undefined: none configured. */
  readonly tracing?: MeshTracing;
  /** meshConfig.outboundTrafficPolicy.mode; undefined = ALLOW_ANY. */
  readonly outboundTrafficPolicy?: 'ALLOW_ANY' | 'REGISTRY_ONLY';
}

/** An east-west gateway's address, as the clients on other networks dial it. */
export interface GatewayAddress {
  readonly address: string;
  readonly port: number;
  readonly cluster?: string;
}

/** Inbound mTLS of a workload port (PeerAuthentication after inheritance; UNSET resolved). */
export type InboundMtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/** What the registry view must offer; `Registry` from src/registry satisfies it. */
export interface RegistryView {
  services(): readonly Service[];
  /** A host's list is replaced when its endpoints change, never changed in place (see sortedEndpoints). */
  allEndpoints(hostname: string): readonly Endpoint[];
}

export interface PushContextInput {
  /** Opaque, unique per push; part of every cache key. */
  version: string;
  mesh: Partial<MeshInfo> & Pick<MeshInfo, 'trustDomain' | 'clusterName'>;
  services: readonly Service[];
  /** Every endpoint, or a lookup by hostname (e.g. `registry.allEndpoints`: lists replaced, never changed in place). */
  endpoints: readonly Endpoint[] | ((hostname: string) => readonly Endpoint[]);
  virtualServices?: readonly Resource<VirtualServiceSpec>[];
  destinationRules?: readonly Resource<DestinationRuleSpec>[];
  /** network → its east-west gateways (multi-network EDS, issue 5). */
  networkGateways?: Readonly<Record<string, readonly GatewayAddress[]>>;
  /** PEM of the root bundle: the SDS `ROOTCA` secret. */
  trustBundlePem?: string;
  /**
   * Inbound mTLS when no PeerAuthentication sets a mode (Istio's default: PERMISSIVE). The real
   * per-workload, per-port mode comes from `peerAuthentications` (src/generate/peerauthn.ts).
   */
  inboundMtlsMode?: InboundMtlsMode;
  /** PeerAuthentications of the local config (mesh, namespace and workload scope). */
  peerAuthentications?: readonly Resource<PeerAuthenticationSpec>[];
  /** AuthorizationPolicies of the local config (src/generate/authz.ts). */
  authorizationPolicies?: readonly Resource<AuthorizationPolicySpec>[];
  /** Gateways of the local config: what ingress gateway proxies serve (generate/ingress.ts). */
  gateways?: readonly Resource<GatewaySpec>[];
  /** Telemetry resources (tracing), root-namespace and namespace-wide (generate/tracing.ts). */
  telemetries?: readonly Resource<TelemetrySpec>[];
  /** EnvoyFilters of the local config (rate limit patches, generate/envoyfilter.ts). */
  envoyFilters?: readonly Resource<EnvoyFilterSpec>[];
  /** `<namespace>/<credentialName>` → a gateway's TLS credential (ADR 0060). */
  credentials?: ReadonlyMap<string, GatewayCredential>;
}

/** A server certificate for a Gateway's `credentialName` (Istio keeps it in a Kubernetes Secret). */
export interface GatewayCredential {
  readonly certChainPem: string;
  readonly keyPem: string;
  /** `ca.crt`: client CAs for tls.mode MUTUAL. */
  readonly caPem?: string;
}

export interface PushContext {
  readonly version: string;
  readonly mesh: MeshInfo;
  /**
   * Sorted by hostname. A service without an address carries its auto-allocated VIP in
   * `addresses` (autovip.ts), so routes and the DNS name table treat it as its address.
   */
  readonly services: readonly Service[];
  /** hostname → the VIP auto-allocated to it (240.240.0.0/16), for the services that got one. */
  readonly autoVips: ReadonlyMap<string, string>;
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
  /** Fallback inbound mTLS when no PeerAuthentication sets a mode (default PERMISSIVE). */
  readonly inboundMtlsMode: InboundMtlsMode;
  /** namespace → its PeerAuthentications, sorted by name (the first stands for Istio's oldest). */
  readonly peerAuthenticationsByNamespace: ReadonlyMap<string, readonly Resource<PeerAuthenticationSpec>[]>;
  readonly authorizationPolicies: readonly Resource<AuthorizationPolicySpec>[];
  /** Sorted by namespace/name. */
  readonly gateways: readonly Resource<GatewaySpec>[];
  /** Sorted by namespace/name. */
  readonly telemetries: readonly Resource<TelemetrySpec>[];
  readonly envoyFilters: readonly Resource<EnvoyFilterSpec>[];
  readonly credentials: ReadonlyMap<string, GatewayCredential>;
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

/** Exact hosts before wildcards, then the longer (more specific) wildcard first. */
function hostSpecificity(dr: Resource<DestinationRuleSpec>): number {
  const h = dr.spec.host;
  return h.includes('*') ? h.length : Number.MAX_SAFE_INTEGER;
}

const byNsName = (a: Resource<unknown>, b: Resource<unknown>): number =>
  cmp(a.metadata.namespace ?? '', b.metadata.namespace ?? '') || cmp(a.metadata.name, b.metadata.name);

/** PushContext mesh info from the one mesh settings resolver. */
export function meshInfoFrom(
  settings: Pick<MeshSettings, 'clusterName' | 'trustDomain' | 'network' | 'rootNamespace' | 'accessLog'> & Partial<Pick<MeshSettings, 'outboundTrafficPolicy'>> & { tracing?: MeshTracing },
): PushContextInput['mesh'] {
  return {
    trustDomain: settings.trustDomain,
    clusterName: settings.clusterName,
    network: settings.network,
    rootNamespace: settings.rootNamespace,
    ...(settings.accessLog ? { accessLog: settings.accessLog } : {}),
    ...(settings.tracing ? { tracing: settings.tracing } : {}),
    ...(settings.outboundTrafficPolicy === 'REGISTRY_ONLY' ? { outboundTrafficPolicy: 'REGISTRY_ONLY' as const } : {}),
  };
}

interface SortedEndpoints {
  readonly all: readonly Endpoint[];
  /** Their SPIFFE ids (for `trustDomain`), in order of first appearance. */
  readonly ids: readonly string[];
  readonly trustDomain: string;
  /** Those of one service port, frozen; the same array for the same port. */
  port(servicePort: number): readonly Endpoint[];
}

/**
 * The registry hands out a host's endpoint list as one array and replaces it (never changes it)
 * when the host's endpoints change, so what a push derives from it — the sort, the per-port lists,
 * the SPIFFE ids — is kept per array: an endpoint change re-sorts its own host, not ten thousand
 * endpoints (buildPushContext was 8 % of an endpoint push at 2,000 proxies). Lists built per push
 * (an array input) are new arrays every time and simply miss.
 */
const sortedCache = new WeakMap<readonly Endpoint[], SortedEndpoints>();

function sortedEndpoints(list: readonly Endpoint[], trustDomain: string, spiffeIdOf: (namespace: string, serviceAccount: string) => string): SortedEndpoints {
  const hit = sortedCache.get(list);
  if (hit && hit.trustDomain === trustDomain) return hit;
  const all = [...list].sort(endpointOrder);
  const ids = new Set<string>();
  for (const e of all) if (e.serviceAccount.name) ids.add(spiffeIdOf(e.serviceAccount.namespace, e.serviceAccount.name));
  const ports = new Map<number, readonly Endpoint[]>();
  const out: SortedEndpoints = {
    all,
    ids: [...ids],
    trustDomain,
    port: (servicePort) => {
      let l = ports.get(servicePort);
      if (!l) ports.set(servicePort, (l = Object.freeze(all.filter((e) => e.servicePort === servicePort))));
      return l;
    },
  };
  sortedCache.set(list, out);
  return out;
}

/**
 * The service with its auto-allocated VIP, the same object for the same service and VIP across
 * pushes (the registry keeps a service's object until it changes): later pushes compare services
 * by identity first (generate/eds.ts `sameEdsInputs`).
 */
const autoVipCopies = new WeakMap<Service, Service>();

function withAutoVip(s: Service, vip: string): Service {
  const hit = autoVipCopies.get(s);
  if (hit && hit.addresses.length === 1 && hit.addresses[0] === vip) return hit;
  const copy: Service = Object.freeze({ ...s, addresses: Object.freeze([vip]) });
  autoVipCopies.set(s, copy);
  return copy;
}

export function buildPushContext(input: PushContextInput): PushContext {
  const mesh: MeshInfo = Object.freeze({
    trustDomain: input.mesh.trustDomain,
    clusterName: input.mesh.clusterName,
    network: input.mesh.network ?? '',
    rootNamespace: input.mesh.rootNamespace ?? 'istio-system',
    domainSuffix: input.mesh.domainSuffix ?? DEFAULT_DOMAIN_SUFFIX,
    ...(input.mesh.accessLog ? { accessLog: input.mesh.accessLog } : {}),
    ...(input.mesh.tracing ? { tracing: input.mesh.tracing } : {}),
    ...(input.mesh.outboundTrafficPolicy === 'REGISTRY_ONLY' ? { outboundTrafficPolicy: 'REGISTRY_ONLY' as const } : {}),
  });

  const sorted = [...input.services].sort((a, b) => cmp(a.hostname, b.hostname));
  const autoVips = allocateAutoVips(sorted);
  const services = Object.freeze(
    autoVips.size === 0 ? sorted : sorted.map((s) => {
      const vip = autoVips.get(s.hostname);
      return vip === undefined ? s : withAutoVip(s, vip);
    }),
  );
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

  // Thousands of endpoints share a few service accounts: validate and format each identity once.
  const spiffeIds = new Map<string, string>();
  const spiffeIdOf = (namespace: string, serviceAccount: string): string => {
    const k = `${namespace}/${serviceAccount}`;
    let id = spiffeIds.get(k);
    if (id === undefined) spiffeIds.set(k, (id = buildSpiffeId({ trustDomain: mesh.trustDomain, namespace, serviceAccount })));
    return id;
  };
  const endpointsByHostPort = new Map<string, readonly Endpoint[]>();
  const endpointsByAddress = new Map<string, Endpoint[]>();
  const identitiesByHost = new Map<string, readonly string[]>();
  for (const svc of services) {
    const sorted = sortedEndpoints(lookup(svc.hostname), mesh.trustDomain, spiffeIdOf);
    const all = sorted.all;
    // A ServiceEntry's subjectAltNames are identities of its endpoints too (Istio adds them).
    const ids = new Set<string>(svc.subjectAltNames ?? []);
    for (const p of svc.ports) endpointsByHostPort.set(`${svc.hostname}|${p.port}`, sorted.port(p.port));
    for (const id of sorted.ids) ids.add(id);
    for (const e of all) {
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
  const wildcardDrs: Resource<DestinationRuleSpec>[] = [];
  for (const dr of input.destinationRules ?? []) {
    if (dr.spec.host.includes('*')) {
      wildcardDrs.push(dr);
      continue;
    }
    const host = fqdn(dr.spec.host, dr.metadata.namespace ?? 'default', mesh.domainSuffix);
    let l = drCandidates.get(host);
    if (!l) drCandidates.set(host, (l = []));
    l.push(dr);
  }
  // Wildcard hosts (`*.cluster.local` in the root namespace, seed 002) apply to every service they
  // match unless a closer namespace or a more specific host names it (drRank, hostSpecificity).
  if (wildcardDrs.length > 0) {
    for (const svc of services) {
      for (const dr of wildcardDrs) {
        if (!hostMatches(dr.spec.host, svc.hostname)) continue;
        let l = drCandidates.get(svc.hostname);
        if (!l) drCandidates.set(svc.hostname, (l = []));
        l.push(dr);
      }
    }
  }
  const subsetsByHost = new Map<string, readonly Subset[]>();
  for (const [host, list] of drCandidates) {
    const svcNs = servicesByHost.get(host)?.namespace;
    const best = [...list].sort((a, b) => drRank(a, svcNs, mesh.rootNamespace) - drRank(b, svcNs, mesh.rootNamespace) || hostSpecificity(b) - hostSpecificity(a) || byNsName(a, b))[0]!;
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
    autoVips: freezeMap(autoVips),
    servicesByHost: freezeMap(servicesByHost),
    endpointsByHostPort: freezeMap(endpointsByHostPort),
    endpointsByAddress: freezeMap(endpointsByAddress as Map<string, readonly Endpoint[]>),
    identitiesByHost: freezeMap(identitiesByHost),
    destinationRuleByHost: freezeMap(destinationRuleByHost),
    subsetsByHost: freezeMap(subsetsByHost),
    virtualServicesByHost: freezeMap(virtualServicesByHost as Map<string, readonly Resource<VirtualServiceSpec>[]>),
    networkGateways: Object.freeze({ ...(input.networkGateways ?? {}) }),
    trustBundlePem: input.trustBundlePem,
    inboundMtlsMode: input.inboundMtlsMode ?? 'PERMISSIVE',
    peerAuthenticationsByNamespace: freezeMap(peerAuthnIndex(input.peerAuthentications ?? [])),
    authorizationPolicies: Object.freeze([...(input.authorizationPolicies ?? [])].sort(byNsName)),
    gateways: Object.freeze([...(input.gateways ?? [])].sort(byNsName)),
    telemetries: Object.freeze([...(input.telemetries ?? [])].sort(byNsName)),
    envoyFilters: Object.freeze([...(input.envoyFilters ?? [])].sort(byNsName)),
    credentials: input.credentials ?? new Map(),
  });
}

function peerAuthnIndex(list: readonly Resource<PeerAuthenticationSpec>[]): Map<string, readonly Resource<PeerAuthenticationSpec>[]> {
  const m = new Map<string, Resource<PeerAuthenticationSpec>[]>();
  for (const pa of [...list].sort(byNsName)) {
    const ns = pa.metadata.namespace ?? 'default';
    let l = m.get(ns);
    if (!l) m.set(ns, (l = []));
    l.push(pa);
  }
  for (const l of m.values()) Object.freeze(l);
  return m as Map<string, readonly Resource<PeerAuthenticationSpec>[]>;
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
  const svc = push.servicesByHost.get(hostname);
  return all.filter((e) => labelsMatch(labels, e.labels) || isGatewayPassthrough(svc, e));
}

/** The east-west gateway port (DESIGN §4). */
const EAST_WEST_GATEWAY_PORT = 15443;

/**
 * An endpoint of a MESH_INTERNAL ServiceEntry on the east-west gateway port stands for every
 * workload behind that gateway (seed 003's `<name>.<ns>.global` entries): the local control
 * plane cannot see their labels, and the remote gateway picks the subset from the SNI
 * (`outbound_.<port>_.<subset>_.<host>`). So such an endpoint belongs to every subset.
 */
export function isGatewayPassthrough(svc: Service | undefined, e: Endpoint): boolean {
  return svc !== undefined && svc.kind === 'ServiceEntry' && svc.location === 'MESH_INTERNAL' && e.port === EAST_WEST_GATEWAY_PORT;
}

/** The labels of a DestinationRule subset; undefined when the host has no such subset. */
export function subsetLabels(push: PushContext, hostname: string, subset: string): Labels | undefined {
  const s = push.subsetsByHost.get(hostname)?.find((x) => x.name === subset);
  return s ? (s.labels ?? {}) : undefined;
}
