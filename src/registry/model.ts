/**
 * The registry's model: services, endpoints and workloads as the generators see them, whatever
 * their source (Service, ServiceEntry, WorkloadEntry, auto-registered proxy, peer cluster).
 * Simplified from Istio pilot's `model.Service` / `model.IstioEndpoint` / `model.WorkloadInstance`.
 */
import type { Locality as ConfigLocality } from '../config/kinds/mesh.js';

export type Labels = Readonly<Record<string, string>>;

export type Protocol =
  | 'HTTP'
  | 'HTTPS'
  | 'HTTP2'
  | 'GRPC'
  | 'GRPC-WEB'
  | 'TCP'
  | 'TLS'
  | 'UDP'
  | 'MONGO'
  | 'REDIS'
  | 'MYSQL';

export type Resolution = 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN' | 'NONE';
export type Location = 'MESH_INTERNAL' | 'MESH_EXTERNAL';
export type Health = 'HEALTHY' | 'UNHEALTHY' | 'DRAINING';
export type EndpointSource = 'WorkloadEntry' | 'ServiceEntry' | 'auto' | 'peer';

/** All parts always present ('' when unknown) so localities compare with `===` on each part. */
export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subzone: string;
}

export interface ServicePort {
  readonly name: string;
  readonly port: number;
  /** A number, or the name of a workload port (Kubernetes Services only). */
  readonly targetPort: number | string;
  readonly protocol: Protocol;
}

export interface Service {
  /** FQDN, lower case; the identity of a service across shards. */
  readonly hostname: string;
  readonly name: string;
  readonly namespace: string;
  /** Sorted by port number. */
  readonly ports: readonly ServicePort[];
  readonly selector?: Labels;
  /** ServiceEntry addresses or the cluster IPs; in the aggregate view, the winning shard's. */
  readonly addresses: readonly string[];
  /** The addresses each defining cluster gives the service (cluster IPs differ per cluster). */
  readonly clusterAddresses: Readonly<Record<string, readonly string[]>>;
  readonly resolution: Resolution;
  readonly location: Location;
  readonly kind: 'Service' | 'ServiceEntry';
  /** Shards that define the service, sorted. */
  readonly clusters: readonly string[];
  readonly exportTo?: readonly string[];
  /** ServiceEntry `subjectAltNames`: identities its endpoints may present, besides their own. */
  readonly subjectAltNames?: readonly string[];
}

export interface ServiceAccountRef {
  readonly namespace: string;
  readonly name: string;
}

export interface Endpoint {
  readonly hostname: string;
  /** Name of the service port this endpoint serves. */
  readonly portName: string;
  /** Number of that service port (what clients dial on the service address). */
  readonly servicePort: number;
  /** Absent when the workload is reachable only through its network's gateway. */
  readonly address?: string;
  /** The resolved target port: where the workload itself listens. */
  readonly port: number;
  readonly cluster: string;
  readonly network: string;
  readonly locality: Locality;
  readonly serviceAccount: ServiceAccountRef;
  /** The workload's labels plus the topology labels (region, zone, subzone, network, cluster). */
  readonly labels: Labels;
  readonly health: Health;
  readonly weight?: number;
  /** The workload's name (`namespace/name` is unique per cluster); ServiceEntry inline endpoints use `<se>-<index>`. */
  readonly workload: string;
  readonly source: EndpointSource;
}

export interface Workload {
  readonly name: string;
  readonly namespace: string;
  readonly address?: string;
  readonly labels: Labels;
  /** Name of the service account, in `namespace`. */
  readonly serviceAccount: string;
  readonly locality: Locality;
  readonly network: string;
  readonly cluster: string;
  /** Port name → number: what a named targetPort resolves against. */
  readonly ports: Readonly<Record<string, number>>;
  readonly health: Health;
  readonly weight?: number;
  readonly source: 'WorkloadEntry' | 'auto';
}

/** Something in one shard's input the registry had to skip or guess about. */
export interface RegistryProblem {
  readonly cluster: string;
  readonly message: string;
  readonly hostname?: string;
  /** `namespace/name` of the workload or resource concerned. */
  readonly resource?: string;
}

/** The same service defined differently by several shards; see docs/decisions/0006-registry.md. */
export interface RegistryConflict {
  readonly hostname: string;
  /** The clusters whose definitions disagree, winner first. */
  readonly clusters: readonly string[];
  /** `kind`, `namespace`, `resolution`, `location`, `exportTo`, `port` or `portName`. */
  readonly field: string;
  readonly detail: string;
  /** The cluster whose definition the aggregate view uses. */
  readonly winner: string;
}

export const LABEL_REGION = 'topology.kubernetes.io/region';
export const LABEL_ZONE = 'topology.kubernetes.io/zone';
export const LABEL_SUBZONE = 'topology.istio.io/subzone';
export const LABEL_NETWORK = 'topology.istio.io/network';
export const LABEL_CLUSTER = 'topology.istio.io/cluster';

export const EMPTY_LOCALITY: Locality = Object.freeze({ region: '', zone: '', subzone: '' });

/** `region/zone/subzone` (trailing empty parts dropped), as Envoy and Istio's DestinationRules write it. */
export function localityString(l: Locality): string {
  if (l.subzone) return `${l.region}/${l.zone}/${l.subzone}`;
  if (l.zone) return `${l.region}/${l.zone}`;
  return l.region;
}

export function parseLocalityString(s: string | undefined): Locality {
  if (!s) return EMPTY_LOCALITY;
  const [region = '', zone = '', subzone = ''] = s.split('/');
  return { region, zone, subzone };
}

export function fromConfigLocality(l: ConfigLocality | undefined): Locality {
  return l ? { region: l.region, zone: l.zone ?? '', subzone: l.subZone ?? '' } : EMPTY_LOCALITY;
}

/**
 * Fills each empty part from the first layer that has it. Part by part rather than all-or-nothing
 * because a workload commonly names only its zone label while the region comes from the cluster.
 */
export function fillLocality(...layers: Locality[]): Locality {
  const pick = (k: keyof Locality) => layers.find((l) => l[k] !== '')?.[k] ?? '';
  return { region: pick('region'), zone: pick('zone'), subzone: pick('subzone') };
}

export function localityFromLabels(labels: Labels | undefined): Locality {
  if (!labels) return EMPTY_LOCALITY;
  return { region: labels[LABEL_REGION] ?? '', zone: labels[LABEL_ZONE] ?? '', subzone: labels[LABEL_SUBZONE] ?? '' };
}

/** Whether `labels` carries every key/value of `selector`; an empty selector matches everything. */
export function labelsMatch(selector: Labels | undefined, labels: Labels): boolean {
  if (!selector) return true;
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

const PROTOCOL_NAMES: Readonly<Record<string, Protocol>> = {
  http: 'HTTP',
  https: 'HTTPS',
  http2: 'HTTP2',
  grpc: 'GRPC',
  'grpc-web': 'GRPC-WEB',
  tcp: 'TCP',
  tls: 'TLS',
  udp: 'UDP',
  mongo: 'MONGO',
  redis: 'REDIS',
  mysql: 'MYSQL',
  // Kubernetes' standard appProtocol values.
  'kubernetes.io/h2c': 'HTTP2',
  'kubernetes.io/ws': 'HTTP',
  'kubernetes.io/wss': 'HTTPS',
};

export function parseProtocol(s: string | undefined): Protocol | undefined {
  // Own keys only: a port named `constructor` must not find Object.prototype.constructor.
  return s && Object.hasOwn(PROTOCOL_NAMES, s.toLowerCase()) ? PROTOCOL_NAMES[s.toLowerCase()] : undefined;
}

/**
 * Istio's rule for Kubernetes ports: `appProtocol` first, then the port name (`http`, `http-web`,
 * `grpc-api`...; the prefix before the first `-`, with `grpc-web` as the one two-part name), then
 * UDP from the L4 protocol. Istio would fall back to protocol sniffing; Isle has none, so TCP.
 */
export function deriveProtocol(port: { name?: string; appProtocol?: string; protocol?: string }): Protocol {
  const fromApp = parseProtocol(port.appProtocol);
  if (fromApp) return fromApp;
  const name = (port.name ?? '').toLowerCase();
  if (name === 'grpc-web' || name.startsWith('grpc-web-')) return 'GRPC-WEB';
  const prefix = name.split('-', 1)[0];
  const fromName = parseProtocol(prefix);
  if (fromName) return fromName;
  return port.protocol === 'UDP' ? 'UDP' : 'TCP';
}

/**
 * Endpoint labels as Istio augments them, so DestinationRule subsets can select by cluster or
 * network. The workload's own labels win: they are what the user wrote.
 */
export function topologyLabels(labels: Labels, w: { locality: Locality; network: string; cluster: string }): Labels {
  const out: Record<string, string> = {};
  if (w.locality.region) out[LABEL_REGION] = w.locality.region;
  if (w.locality.zone) out[LABEL_ZONE] = w.locality.zone;
  if (w.locality.subzone) out[LABEL_SUBZONE] = w.locality.subzone;
  if (w.network) out[LABEL_NETWORK] = w.network;
  if (w.cluster) out[LABEL_CLUSTER] = w.cluster;
  return { ...out, ...labels };
}
