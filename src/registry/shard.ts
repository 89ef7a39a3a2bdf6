/**
 * One cluster's slice of the registry, computed from that cluster's resources alone. `buildShard` is
 * pure: the same input always gives the same shard (sorted, deterministic), which is what lets the
 * aggregate diff two shards to classify a change.
 */
import { DEFAULT_DOMAIN_SUFFIX, fqdn, serviceHost } from '../config/hosts.js';
import type { ServicePort as KubeServicePort, ServiceSpec } from '../config/kinds/core.js';
import type { Locality as ConfigLocality, MeshConfigSpec } from '../config/kinds/mesh.js';
import type { ServiceEntrySpec, ServicePortIstio, WorkloadEntrySpec } from '../config/kinds/networking.js';
import type { Resource } from '../config/types.js';
import {
  EMPTY_LOCALITY,
  LABEL_CLUSTER,
  LABEL_NETWORK,
  deriveProtocol,
  fillLocality,
  fromConfigLocality,
  labelsMatch,
  localityFromLabels,
  parseLocalityString,
  parseProtocol,
  topologyLabels,
  type Endpoint,
  type EndpointSource,
  type Health,
  type Labels,
  type Locality,
  type RegistryProblem,
  type Service,
  type ServicePort,
  type Workload,
} from './model.js';

/** What a cluster's MeshConfig says about workloads that do not say it themselves. */
export interface MeshDefaults {
  network?: string;
  locality?: Locality;
  /** Suffix of Kubernetes Service host names. Default `cluster.local`. */
  domainSuffix?: string;
}

export function meshDefaultsFrom(spec: Pick<MeshConfigSpec, 'network' | 'defaultLocality'> | undefined): MeshDefaults {
  if (!spec) return {};
  return {
    ...(spec.network ? { network: spec.network } : {}),
    ...(spec.defaultLocality ? { locality: fromConfigLocality(spec.defaultLocality as ConfigLocality) } : {}),
  };
}

/**
 * A workload as its source describes it, before defaults: a WorkloadEntry, or the metadata of an
 * auto-registered proxy. Unset fields fall back to topology labels, then to the MeshDefaults.
 */
export interface WorkloadSpec {
  name: string;
  namespace: string;
  address?: string;
  labels?: Labels;
  serviceAccount?: string;
  /** `region/zone/subzone`. */
  locality?: string;
  network?: string;
  cluster?: string;
  ports?: Readonly<Record<string, number>>;
  health?: Health;
  weight?: number;
}

export interface ShardInput {
  /** Services, ServiceEntries and WorkloadEntries; other kinds are ignored. */
  resources: Iterable<Resource>;
  /** Auto-registered workloads (see autoregister.ts). */
  workloads?: Iterable<WorkloadSpec>;
}

export interface ShardOptions {
  /** A peer's shard: its endpoints are tagged `source: 'peer'`. Default 'local'. */
  origin?: 'local' | 'peer';
}

export interface Shard {
  readonly cluster: string;
  readonly origin: 'local' | 'peer';
  /** By hostname, sorted. */
  readonly services: ReadonlyMap<string, Service>;
  /** By hostname; every service has an entry, possibly empty. */
  readonly endpoints: ReadonlyMap<string, readonly Endpoint[]>;
  /** Sorted by namespace/name. */
  readonly workloads: readonly Workload[];
  readonly problems: readonly RegistryProblem[];
}

const DEFAULT_SA = 'default';
const EXPORT_TO_ANNOTATION = 'networking.istio.io/exportTo';

export function emptyShard(cluster: string, origin: 'local' | 'peer' = 'local'): Shard {
  return { cluster, origin, services: new Map(), endpoints: new Map(), workloads: [], problems: [] };
}

export function buildShard(cluster: string, defaults: MeshDefaults, input: ShardInput, opts: ShardOptions = {}): Shard {
  const origin = opts.origin ?? 'local';
  const problems: RegistryProblem[] = [];
  const kube: Resource<ServiceSpec>[] = [];
  const entries: Resource<ServiceEntrySpec>[] = [];
  const wles: Resource<WorkloadEntrySpec>[] = [];
  for (const r of input.resources) {
    if (r.kind === 'Service') kube.push(r as Resource<ServiceSpec>);
    else if (r.kind === 'ServiceEntry') entries.push(r as Resource<ServiceEntrySpec>);
    else if (r.kind === 'WorkloadEntry') wles.push(r as Resource<WorkloadEntrySpec>);
  }
  kube.sort(byNamespacedName);
  entries.sort(byNamespacedName);

  const workloads = collectWorkloads(cluster, defaults, wles, input.workloads ?? [], problems);
  const selectWorkloads = workloadIndex(workloads);
  const workloadSource = (w: Workload): EndpointSource => (origin === 'peer' ? 'peer' : w.source);

  const services = new Map<string, Service>();
  const endpoints = new Map<string, Endpoint[]>();
  const definedBy = new Map<string, string>();
  const claim = (hostname: string, what: string): boolean => {
    const first = definedBy.get(hostname);
    if (first !== undefined) {
      problems.push({ cluster, hostname, resource: what, message: `host ${hostname} is already defined by ${first}; ${what} ignored for it` });
      return false;
    }
    definedBy.set(hostname, what);
    return true;
  };

  // Services before ServiceEntries: a Kubernetes Service is the authoritative definition of its
  // own host, a ServiceEntry for the same host is the odd one out.
  for (const r of kube) {
    const ns = r.metadata.namespace ?? 'default';
    const what = `Service ${ns}/${r.metadata.name}`;
    const svc = kubeService(r, cluster, defaults.domainSuffix ?? DEFAULT_DOMAIN_SUFFIX);
    if (!claim(svc.hostname, what)) continue;
    services.set(svc.hostname, svc);
    const eps: Endpoint[] = [];
    // Kubernetes gives a Service without a selector no managed endpoints; so does Isle.
    if (svc.selector && Object.keys(svc.selector).length > 0 && svc.resolution !== 'DNS') {
      for (const w of selectWorkloads(ns, svc.selector)) {
        for (const p of svc.ports) {
          const target = resolveTargetPort(p.targetPort, w.ports);
          if (target === undefined) {
            problems.push(missingPortProblem(cluster, svc, p, w));
            continue;
          }
          eps.push(workloadEndpoint(svc.hostname, p, target, w, workloadSource(w)));
        }
      }
    }
    endpoints.set(svc.hostname, eps);
  }

  for (const r of entries) {
    const ns = r.metadata.namespace ?? 'default';
    const what = `ServiceEntry ${ns}/${r.metadata.name}`;
    const spec = r.spec;
    const ports = (spec.ports ?? []).map(sePort).sort((a, b) => a.port - b.port);
    const selector = spec.workloadSelector?.labels;
    const exportTo = spec.exportTo ?? exportToAnnotation(r);
    for (const host of spec.hosts) {
      const hostname = fqdn(host, ns);
      if (!claim(hostname, what)) continue;
      const svc: Service = {
        hostname,
        name: hostname,
        namespace: ns,
        ports,
        ...(selector ? { selector } : {}),
        addresses: spec.addresses ?? [],
        clusterAddresses: { [cluster]: spec.addresses ?? [] },
        resolution: spec.resolution ?? 'NONE',
        location: spec.location ?? 'MESH_EXTERNAL',
        kind: 'ServiceEntry',
        clusters: [cluster],
        ...(exportTo ? { exportTo } : {}),
        ...(spec.subjectAltNames && spec.subjectAltNames.length > 0 ? { subjectAltNames: [...spec.subjectAltNames].sort(cmp) } : {}),
      };
      services.set(hostname, svc);
      endpoints.set(hostname, serviceEntryEndpoints(svc, r, cluster, defaults, origin, selector ? selectWorkloads(ns, selector) : undefined, workloadSource));
    }
  }

  return {
    cluster,
    origin,
    services: new Map([...services].sort(([a], [b]) => cmp(a, b))),
    endpoints,
    workloads,
    problems,
  };
}

/**
 * Selection through an index of `namespace` + `key=value`: scanning every workload for every
 * service is quadratic, and at a couple of thousand workloads it dominated the rebuild.
 */
function workloadIndex(workloads: readonly Workload[]): (namespace: string, selector: Labels) => Workload[] {
  const byNamespace = new Map<string, Workload[]>();
  const byLabel = new Map<string, Workload[]>();
  const push = (m: Map<string, Workload[]>, k: string, w: Workload) => {
    const list = m.get(k);
    if (list) list.push(w);
    else m.set(k, [w]);
  };
  for (const w of workloads) {
    push(byNamespace, w.namespace, w);
    for (const k in w.labels) push(byLabel, JSON.stringify([w.namespace, k, w.labels[k]]), w);
  }
  return (namespace, selector) => {
    let candidates = byNamespace.get(namespace) ?? [];
    for (const k in selector) {
      const list = byLabel.get(JSON.stringify([namespace, k, selector[k]])) ?? [];
      if (list.length < candidates.length) candidates = list;
    }
    // Posting lists keep the sorted order of `workloads`, so the result stays deterministic.
    return candidates.filter((w) => labelsMatch(selector, w.labels));
  };
}

const endpointLabels = new WeakMap<Workload, Labels>();

function kubeService(r: Resource<ServiceSpec>, cluster: string, domainSuffix: string): Service {
  const ns = r.metadata.namespace ?? 'default';
  const spec = r.spec;
  // Kubernetes allows 443/TCP beside 443/UDP (QUIC). Isle, like Istio, proxies TCP only: the
  // UDP/SCTP twin of a TCP port is left out, so port numbers stay unique per service.
  const tcpNumbers = new Set((spec.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP').map((p) => p.port));
  const kept = (spec.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP' || !tcpNumbers.has(p.port));
  const ports: ServicePort[] = kept.map((p: KubeServicePort) => ({
    name: p.name ?? '',
    port: p.port,
    targetPort: p.targetPort ?? p.port,
    protocol: deriveProtocol(p),
  }));
  ports.sort((a, b) => a.port - b.port);
  const external = spec.type === 'ExternalName';
  const headless = spec.clusterIP === 'None';
  const addresses = (spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])).filter((a) => a !== 'None' && a !== '');
  const exportTo = exportToAnnotation(r);
  return {
    hostname: serviceHost(r.metadata.name, ns, domainSuffix).toLowerCase(),
    name: r.metadata.name,
    namespace: ns,
    ports,
    ...(spec.selector ? { selector: spec.selector } : {}),
    addresses,
    clusterAddresses: { [cluster]: addresses },
    resolution: external ? 'DNS' : headless ? 'NONE' : 'STATIC',
    location: external ? 'MESH_EXTERNAL' : 'MESH_INTERNAL',
    kind: 'Service',
    clusters: [cluster],
    ...(exportTo ? { exportTo } : {}),
  };
}

function sePort(p: ServicePortIstio): ServicePort {
  return {
    name: p.name,
    port: p.number,
    targetPort: p.targetPort ?? p.number,
    protocol: parseProtocol(p.protocol) ?? deriveProtocol({ name: p.name }),
  };
}

function exportToAnnotation(r: Resource): string[] | undefined {
  const a = r.metadata.annotations?.[EXPORT_TO_ANNOTATION];
  if (!a) return undefined;
  const list = a.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return list.length > 0 ? list : undefined;
}

function resolveTargetPort(target: number | string, ports: Readonly<Record<string, number>>): number | undefined {
  if (typeof target === 'number') return target;
  // A numeric string is how some tools write a number; Kubernetes' IntOrString accepts it.
  if (/^\d+$/.test(target)) return Number(target);
  return ports[target];
}

/** Endpoints by workload, reused while the workload is: keeps diffing and fingerprinting cheap. */
const endpointCache = new WeakMap<Workload, Map<string, Endpoint>>();

function workloadEndpoint(hostname: string, p: ServicePort, target: number, w: Workload, source: EndpointSource): Endpoint {
  let byKey = endpointCache.get(w);
  if (!byKey) endpointCache.set(w, (byKey = new Map()));
  const key = `${hostname}|${p.name}|${p.port}|${target}|${source}`;
  let ep = byKey.get(key);
  if (!ep) byKey.set(key, (ep = makeEndpoint(hostname, p, target, w, source)));
  return ep;
}

function makeEndpoint(hostname: string, p: ServicePort, target: number, w: Workload, source: EndpointSource): Endpoint {
  return {
    hostname,
    portName: p.name,
    servicePort: p.port,
    ...(w.address !== undefined ? { address: w.address } : {}),
    port: target,
    cluster: w.cluster,
    network: w.network,
    locality: w.locality,
    serviceAccount: { namespace: w.namespace, name: w.serviceAccount },
    labels: labelsOf(w),
    health: w.health,
    ...(w.weight !== undefined ? { weight: w.weight } : {}),
    workload: w.name,
    source,
  };
}

/** One labels object per workload, shared by all its endpoints. */
function labelsOf(w: Workload): Labels {
  let l = endpointLabels.get(w);
  if (!l) endpointLabels.set(w, (l = topologyLabels(w.labels, w)));
  return l;
}

function serviceEntryEndpoints(
  svc: Service,
  r: Resource<ServiceEntrySpec>,
  cluster: string,
  defaults: MeshDefaults,
  origin: 'local' | 'peer',
  selected: Workload[] | undefined,
  workloadSource: (w: Workload) => EndpointSource,
): Endpoint[] {
  const spec = r.spec;
  const ns = svc.namespace;
  const source: EndpointSource = origin === 'peer' ? 'peer' : 'ServiceEntry';
  const out: Endpoint[] = [];
  // Istio's order for a ServiceEntry port: the endpoint's own port map, then targetPort, then the number.
  const target = (p: ServicePort, ports: Readonly<Record<string, number>> | undefined) =>
    ports?.[p.name] ?? (typeof p.targetPort === 'number' ? p.targetPort : p.port);

  if (selected) {
    for (const w of selected) for (const p of svc.ports) out.push(workloadEndpoint(svc.hostname, p, target(p, w.ports), w, workloadSource(w)));
    return out;
  }
  if (spec.resolution === undefined || spec.resolution === 'NONE') return out;

  const inline = spec.endpoints ?? [];
  if (inline.length > 0) {
    inline.forEach((ep, i) => {
      const w = inlineWorkload(
        { ...ep, name: `${r.metadata.name}-${i}`, namespace: ns, labels: ep.labels ?? {} },
        cluster,
        defaults,
      );
      for (const p of svc.ports) out.push(workloadEndpoint(svc.hostname, p, target(p, ep.ports), w, source));
    });
    return out;
  }
  // Istio resolves a DNS ServiceEntry without endpoints by its host name; a wildcard has nothing to resolve.
  if ((spec.resolution === 'DNS' || spec.resolution === 'DNS_ROUND_ROBIN') && !svc.hostname.includes('*')) {
    const w = inlineWorkload({ name: svc.hostname, namespace: ns, address: svc.hostname }, cluster, defaults);
    for (const p of svc.ports) out.push(workloadEndpoint(svc.hostname, p, target(p, undefined), w, source));
  }
  return out;
}

/**
 * A ServiceEntry's own endpoint. Unlike a WorkloadEntry it has no identity unless it names a
 * service account (as in Istio): a MESH_INTERNAL entry pointing at another cluster's east-west
 * gateway (seed 003) must not pin the `default` account of its namespace, which the workloads
 * behind the gateway do not run as. Its SANs are then the entry's `subjectAltNames`, or any
 * certificate from the mesh root.
 */
function inlineWorkload(spec: WorkloadSpec, cluster: string, defaults: MeshDefaults): Workload {
  const w = normalizeWorkload(spec, cluster, defaults, 'WorkloadEntry', []);
  return spec.serviceAccount ? w : { ...w, serviceAccount: '' };
}

/**
 * Normalized workloads by input object. Store resources and AutoRegistry specs keep their identity
 * while unchanged (and are never mutated), so a rebuild after one change re-normalizes one
 * workload, and the endpoint label objects (keyed by workload) are reused too.
 */
const workloadCache = new WeakMap<object, { context: string; workload: Workload; problems: RegistryProblem[] }>();

/** A WorkloadEntry or an auto-registration, before normalization: what a workload of the shard is made from. */
export type WorkloadSource = { kind: 'WorkloadEntry'; resource: Resource<WorkloadEntrySpec> } | { kind: 'auto'; spec: WorkloadSpec };

function cachedWorkload(cluster: string, defaults: MeshDefaults, src: WorkloadSource, problems: RegistryProblem[]): Workload {
  const context = `${cluster} ${JSON.stringify(defaults)}`;
  const from = src.kind === 'auto' ? src.spec : src.resource;
  let c = workloadCache.get(from);
  if (!c || c.context !== context) {
    const own: RegistryProblem[] = [];
    let workload: Workload;
    if (src.kind === 'auto') {
      workload = normalizeWorkload(src.spec, cluster, defaults, 'auto', own);
    } else {
      const r = src.resource;
      workload = normalizeWorkload({ ...r.spec, name: r.metadata.name, namespace: r.metadata.namespace ?? 'default' }, cluster, defaults, 'WorkloadEntry', own);
    }
    c = { context, workload, problems: own };
    workloadCache.set(from, c);
  }
  problems.push(...c.problems);
  return c.workload;
}

function shadowedProblem(cluster: string, key: string): RegistryProblem {
  return { cluster, resource: key, message: `auto-registered workload ${key} has the name of a WorkloadEntry, which takes precedence` };
}

function collectWorkloads(
  cluster: string,
  defaults: MeshDefaults,
  wles: Resource<WorkloadEntrySpec>[],
  auto: Iterable<WorkloadSpec>,
  problems: RegistryProblem[],
): Workload[] {
  const byKey = new Map<string, Workload>();
  for (const r of wles) byKey.set(`${r.metadata.namespace ?? 'default'}/${r.metadata.name}`, cachedWorkload(cluster, defaults, { kind: 'WorkloadEntry', resource: r }, problems));
  for (const spec of auto) {
    const key = `${spec.namespace}/${spec.name}`;
    if (byKey.has(key)) {
      problems.push(shadowedProblem(cluster, key));
      continue;
    }
    byKey.set(key, cachedWorkload(cluster, defaults, { kind: 'auto', spec }, problems));
  }
  return [...byKey].sort(([a], [b]) => cmp(a, b)).map(([, w]) => w);
}

/** What a workload key is made of now: the WorkloadEntry if there is one, else the auto-registration. */
export interface WorkloadInputs {
  wle?: Resource<WorkloadEntrySpec>;
  auto?: WorkloadSpec;
}

const workloadKey = (w: { namespace: string; name: string }): string => `${w.namespace}/${w.name}`;
const endpointWorkloadKey = (e: Endpoint): string => `${e.serviceAccount.namespace}/${e.workload}`;

/**
 * A local shard after some workloads changed, without rebuilding it: each changed workload is
 * replaced in the sorted workload list, and only the services that select it (before or after)
 * get new endpoint lists, in the order buildShard would give them. Services, ServiceEntries and
 * defaults must be unchanged (callers rebuild for those). Returns the shard and the hostnames whose
 * endpoints were recomputed; `problems` keeps buildShard's content, not necessarily its order.
 */
export function patchShardWorkloads(
  prev: Shard,
  defaults: MeshDefaults,
  changed: ReadonlyMap<string, WorkloadInputs>,
): { shard: Shard; hosts: Set<string>; workloads: Set<string> } {
  const cluster = prev.cluster;
  // The workload list is sorted by key: changed workloads are found and replaced by binary search
  // and splicing, not by re-indexing and re-sorting every workload (a connect storm of N sidecars
  // patched the shard N/batch times, each O(W log W) over all W workloads).
  const list = [...prev.workloads];
  const workloads = new Set<string>();
  const hosts = new Set<string>();
  const next = new Map<string, Workload | undefined>();
  const own: RegistryProblem[] = [];
  const shadowMoved = new Set<string>();
  for (const [key, input] of changed) {
    let w: Workload | undefined;
    const mine: RegistryProblem[] = [];
    if (input.wle) {
      w = cachedWorkload(cluster, defaults, { kind: 'WorkloadEntry', resource: input.wle }, mine);
      if (input.auto) mine.push(shadowedProblem(cluster, key));
    } else if (input.auto) {
      w = cachedWorkload(cluster, defaults, { kind: 'auto', spec: input.auto }, mine);
    }
    const at = findWorkload(list, key);
    const old = at.found ? list[at.index] : undefined;
    if (old === w) {
      // Same workload; only whether an auto-registration hides behind its WorkloadEntry may move.
      const shadow = shadowedProblem(cluster, key).message;
      const had = prev.problems.some((p) => p.resource === key && p.message === shadow);
      if (had !== (input.wle !== undefined && input.auto !== undefined)) shadowMoved.add(key);
      if (!had && shadowMoved.has(key)) own.push(shadowedProblem(cluster, key));
      continue;
    }
    own.push(...mine);
    next.set(key, w);
    workloads.add(key);
    if (w) list.splice(at.index, at.found ? 1 : 0, w);
    else if (at.found) list.splice(at.index, 1);
    for (const svc of prev.services.values()) {
      if (selects(svc, old) || selects(svc, w)) hosts.add(svc.hostname);
    }
  }
  if (workloads.size === 0 && shadowMoved.size === 0) return { shard: prev, hosts, workloads };
  const dropped = (p: RegistryProblem) =>
    p.resource !== undefined && (next.has(p.resource) || (shadowMoved.has(p.resource) && p.message === shadowedProblem(cluster, p.resource).message));
  const problems = [...prev.problems.filter((p) => !dropped(p)), ...own];
  const endpoints = new Map(prev.endpoints);
  for (const h of hosts) {
    const svc = prev.services.get(h)!;
    let eps = (prev.endpoints.get(h) ?? []).filter((e) => !next.has(endpointWorkloadKey(e)));
    for (const [key, w] of next) {
      if (!w || !selects(svc, w)) continue;
      const add = workloadEndpointsFor(svc, w, problems, cluster);
      const at = eps.findIndex((e) => cmp(endpointWorkloadKey(e), key) > 0);
      eps = at < 0 ? [...eps, ...add] : [...eps.slice(0, at), ...add, ...eps.slice(at)];
    }
    endpoints.set(h, eps);
  }
  return {
    shard: { cluster, origin: prev.origin, services: prev.services, endpoints, workloads: list, problems },
    hosts,
    workloads,
  };
}

/** Where `key` is (found) or would go in a workload list sorted by key. */
function findWorkload(list: readonly Workload[], key: string): { index: number; found: boolean } {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = cmp(workloadKey(list[mid]!), key);
    if (c === 0) return { index: mid, found: true };
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return { index: lo, found: false };
}

/** Whether buildShard would make endpoints of `svc` from workload `w`. */
function selects(svc: Service, w: Workload | undefined): boolean {
  if (!w || w.namespace !== svc.namespace || !svc.selector) return false;
  if (svc.kind === 'Service' && (Object.keys(svc.selector).length === 0 || svc.resolution === 'DNS')) return false;
  return labelsMatch(svc.selector, w.labels);
}

/** The endpoints buildShard makes of one selected workload for one service (kube Service or ServiceEntry rules). */
function workloadEndpointsFor(svc: Service, w: Workload, problems: RegistryProblem[], cluster: string): Endpoint[] {
  const out: Endpoint[] = [];
  for (const p of svc.ports) {
    if (svc.kind === 'ServiceEntry') {
      out.push(workloadEndpoint(svc.hostname, p, w.ports[p.name] ?? (typeof p.targetPort === 'number' ? p.targetPort : p.port), w, w.source));
      continue;
    }
    const target = resolveTargetPort(p.targetPort, w.ports);
    if (target === undefined) {
      problems.push(missingPortProblem(cluster, svc, p, w));
      continue;
    }
    out.push(workloadEndpoint(svc.hostname, p, target, w, w.source));
  }
  return out;
}

function missingPortProblem(cluster: string, svc: Service, p: ServicePort, w: Workload): RegistryProblem {
  return {
    cluster,
    hostname: svc.hostname,
    resource: `${w.namespace}/${w.name}`,
    message: `Service ${svc.namespace}/${svc.name} port ${p.name || p.port}: workload ${w.namespace}/${w.name} has no port named ${JSON.stringify(p.targetPort)}; endpoint skipped`,
  };
}

/** Fills a workload's topology: its own fields, then its topology labels, then the MeshDefaults. */
export function normalizeWorkload(
  spec: WorkloadSpec,
  cluster: string,
  defaults: MeshDefaults,
  source: Workload['source'],
  problems: RegistryProblem[],
): Workload {
  const labels = spec.labels ?? {};
  const locality = fillLocality(parseLocalityString(spec.locality), localityFromLabels(labels), defaults.locality ?? EMPTY_LOCALITY);
  const network = spec.network || labels[LABEL_NETWORK] || defaults.network || '';
  const wcluster = spec.cluster || labels[LABEL_CLUSTER] || cluster;
  if (wcluster !== cluster) {
    problems.push({
      cluster,
      resource: `${spec.namespace}/${spec.name}`,
      message: `workload ${spec.namespace}/${spec.name} says it is in cluster ${wcluster} but is registered in cluster ${cluster}`,
    });
  }
  return {
    name: spec.name,
    namespace: spec.namespace,
    ...(spec.address ? { address: spec.address } : {}),
    labels,
    serviceAccount: spec.serviceAccount || DEFAULT_SA,
    locality,
    network,
    cluster: wcluster,
    ports: spec.ports ?? {},
    health: spec.health ?? 'HEALTHY',
    ...(spec.weight !== undefined ? { weight: spec.weight } : {}),
    source,
  };
}

function byNamespacedName(a: Resource, b: Resource): number {
  return cmp(`${a.metadata.namespace ?? ''}/${a.metadata.name}`, `${b.metadata.namespace ?? ''}/${b.metadata.name}`);
}

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
