/**
 * What travels on the peering feed: Isle's own resource types inside `google.protobuf.Any`, the
 * value being UTF-8 JSON (not protobuf; the `type.isle.dev/` prefix says so). See
 * docs/decisions/0012-peering.md.
 *
 * JSON rather than a .proto because these are registry model objects that already have a JSON
 * shape (/debug/registryz shows the same), and the only consumer is another Isle. Decoding is
 * strict: a peer is authenticated but still another trust zone, so every field is type-checked
 * and anything malformed is rejected with the resource name in the message.
 */
import { LABEL_CLUSTER, type Endpoint, type Health, type Labels, type Location, type Protocol, type Resolution, type Service, type ServicePort, type Workload } from '../registry/model.js';
import { localityString, parseLocalityString } from '../registry/model.js';
import type { AnyMsg } from '../xds/protos.js';
import type { Decoded, DecoderTable, ResourceDecoder } from '../xds/client/index.js';
import { own, setOwn } from '../config/own.js';

export const PEERING_TYPE_PREFIX = 'type.isle.dev/';
/** The exporting cluster: its name, network and east-west gateways. One resource, named by the cluster. */
export const PEER_CLUSTER_TYPE = 'type.isle.dev/isle.peering.v1.Cluster';
/** Workloads of the exporting cluster, named `namespace/name`. */
export const PEER_WORKLOAD_TYPE = 'type.isle.dev/isle.peering.v1.Workload';
/** Service definitions, named by hostname (CDS-like). */
export const PEER_SERVICE_TYPE = 'type.isle.dev/isle.peering.v1.Service';
/** A service's endpoints, named by hostname (EDS-like): endpoint churn does not resend definitions. */
export const PEER_ENDPOINTS_TYPE = 'type.isle.dev/isle.peering.v1.ServiceEndpoints';

/** In push order: the cluster first (its network fills endpoints), definitions before endpoints. */
export const PEERING_TYPES: readonly string[] = [PEER_CLUSTER_TYPE, PEER_WORKLOAD_TYPE, PEER_SERVICE_TYPE, PEER_ENDPOINTS_TYPE];

/** The gRPC service carrying the feed: Envoy's delta ADS messages under Isle's own service name. */
export const PEERING_SERVICE = 'isle.peering.v1.PeeringExport';
export const PEERING_METHOD = 'DeltaAggregatedResources';
export const PEERING_PATH = `/${PEERING_SERVICE}/${PEERING_METHOD}`;

export interface GatewayAddressWire {
  address: string;
  port: number;
}

export interface ClusterWire {
  name: string;
  network: string;
  trustDomain: string;
  gateways: GatewayAddressWire[];
}

export interface WorkloadWire {
  name: string;
  namespace: string;
  address?: string;
  labels: Record<string, string>;
  serviceAccount: string;
  locality: string;
  network: string;
  cluster: string;
  ports: Record<string, number>;
  health: Health;
  weight?: number;
}

export interface ServiceWire {
  hostname: string;
  name: string;
  namespace: string;
  ports: ServicePort[];
  selector?: Record<string, string>;
  addresses: string[];
  resolution: Resolution;
  location: Location;
  kind: 'Service' | 'ServiceEntry';
  exportTo?: string[];
}

export interface EndpointWire {
  portName: string;
  servicePort: number;
  address?: string;
  port: number;
  cluster: string;
  network: string;
  /** `region/zone/subzone`. */
  locality: string;
  /** `namespace/name` of the service account. */
  serviceAccount: string;
  labels: Record<string, string>;
  health: Health;
  weight?: number;
  workload: string;
}

export interface EndpointsWire {
  hostname: string;
  endpoints: EndpointWire[];
}

// --- encoding ----------------------------------------------------------------------------------

export function toWireAny(typeUrl: string, value: unknown): AnyMsg {
  return { type_url: typeUrl, value: Buffer.from(JSON.stringify(value), 'utf8') };
}

export function workloadToWire(w: Workload): WorkloadWire {
  return {
    name: w.name,
    namespace: w.namespace,
    ...(w.address !== undefined ? { address: w.address } : {}),
    labels: { ...w.labels },
    serviceAccount: w.serviceAccount,
    locality: localityString(w.locality),
    network: w.network,
    cluster: w.cluster,
    ports: { ...w.ports },
    health: w.health,
    ...(w.weight !== undefined ? { weight: w.weight } : {}),
  };
}

export function serviceToWire(s: Service): ServiceWire {
  return {
    hostname: s.hostname,
    name: s.name,
    namespace: s.namespace,
    ports: s.ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: p.protocol })),
    ...(s.selector ? { selector: { ...s.selector } } : {}),
    addresses: [...s.addresses],
    resolution: s.resolution,
    location: s.location,
    kind: s.kind,
    ...(s.exportTo ? { exportTo: [...s.exportTo] } : {}),
  };
}

export function endpointToWire(e: Endpoint): EndpointWire {
  return {
    portName: e.portName,
    servicePort: e.servicePort,
    ...(e.address !== undefined ? { address: e.address } : {}),
    port: e.port,
    cluster: e.cluster,
    network: e.network,
    locality: localityString(e.locality),
    serviceAccount: `${e.serviceAccount.namespace}/${e.serviceAccount.name}`,
    labels: { ...e.labels },
    health: e.health,
    ...(e.weight !== undefined ? { weight: e.weight } : {}),
    workload: e.workload,
  };
}

// --- decoding ----------------------------------------------------------------------------------

export class WireError extends Error {
  override readonly name = 'WireError';
}

type Obj = Record<string, unknown>;

const HEALTH: ReadonlySet<string> = new Set(['HEALTHY', 'UNHEALTHY', 'DRAINING']);
const RESOLUTION: ReadonlySet<string> = new Set(['STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'NONE']);
const LOCATION: ReadonlySet<string> = new Set(['MESH_INTERNAL', 'MESH_EXTERNAL']);
const PROTOCOL: ReadonlySet<string> = new Set(['HTTP', 'HTTPS', 'HTTP2', 'GRPC', 'GRPC-WEB', 'TCP', 'TLS', 'UDP', 'MONGO', 'REDIS', 'MYSQL']);

class Reader {
  constructor(private readonly what: string) {}

  fail(path: string, msg: string): never {
    throw new WireError(`${this.what}: ${path}: ${msg}`);
  }

  obj(v: unknown, path: string): Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, 'expected an object');
    return v as Obj;
  }

  str(o: Obj, k: string, path = k): string {
    const v = own(o, k);
    if (typeof v !== 'string') this.fail(path, 'expected a string');
    return v;
  }

  optStr(o: Obj, k: string): string | undefined {
    return own(o, k) === undefined ? undefined : this.str(o, k);
  }

  port(v: unknown, path: string): number {
    if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 65535) this.fail(path, 'expected a port number');
    return v as number;
  }

  optWeight(o: Obj, k: string): number | undefined {
    const v = own(o, k);
    if (v === undefined) return undefined;
    if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 0xffffffff) this.fail(k, 'expected a non-negative integer');
    return v as number;
  }

  oneOf<T extends string>(o: Obj, k: string, allowed: ReadonlySet<string>): T {
    const v = this.str(o, k);
    if (!allowed.has(v)) this.fail(k, `unknown value ${JSON.stringify(v)}`);
    return v as T;
  }

  strMap(v: unknown, path: string): Record<string, string> {
    const o = this.obj(v ?? {}, path);
    const out: Record<string, string> = {};
    for (const [k, x] of Object.entries(o)) {
      if (typeof x !== 'string') this.fail(`${path}.${k}`, 'expected a string');
      setOwn(out, k, x);
    }
    return out;
  }

  strList(v: unknown, path: string): string[] {
    if (!Array.isArray(v)) this.fail(path, 'expected a list');
    return v.map((x, i) => (typeof x === 'string' ? x : this.fail(`${path}[${i}]`, 'expected a string')));
  }

  list(v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, 'expected a list');
    return v;
  }
}

function parseJson(any: AnyMsg, what: string): Obj {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(any.value).toString('utf8'));
  } catch (e) {
    throw new WireError(`${what}: not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  return new Reader(what).obj(v, '(root)');
}

export function clusterFromWire(any: AnyMsg, what: string): ClusterWire {
  const r = new Reader(what);
  const o = parseJson(any, what);
  return {
    name: r.str(o, 'name'),
    network: r.str(o, 'network'),
    trustDomain: r.str(o, 'trustDomain'),
    gateways: r.list(o['gateways'] ?? [], 'gateways').map((g, i) => {
      const go = r.obj(g, `gateways[${i}]`);
      return { address: r.str(go, 'address', `gateways[${i}].address`), port: r.port(go['port'], `gateways[${i}].port`) };
    }),
  };
}

export function workloadFromWire(any: AnyMsg, what: string, source: Workload['source'] = 'WorkloadEntry'): Workload {
  const r = new Reader(what);
  const o = parseJson(any, what);
  const ports = r.obj(o['ports'] ?? {}, 'ports');
  const portMap: Record<string, number> = {};
  for (const [k, v] of Object.entries(ports)) setOwn(portMap, k, r.port(v, `ports.${k}`));
  const address = r.optStr(o, 'address');
  const weight = r.optWeight(o, 'weight');
  return {
    name: r.str(o, 'name'),
    namespace: r.str(o, 'namespace'),
    ...(address !== undefined ? { address } : {}),
    labels: r.strMap(o['labels'], 'labels'),
    serviceAccount: r.str(o, 'serviceAccount'),
    locality: parseLocalityString(r.str(o, 'locality')),
    network: r.str(o, 'network'),
    cluster: r.str(o, 'cluster'),
    ports: portMap,
    health: r.oneOf<Health>(o, 'health', HEALTH),
    ...(weight !== undefined ? { weight } : {}),
    source,
  };
}

export function serviceFromWire(any: AnyMsg, what: string): ServiceWire {
  const r = new Reader(what);
  const o = parseJson(any, what);
  const ports = r.list(o['ports'], 'ports').map((p, i): ServicePort => {
    const po = r.obj(p, `ports[${i}]`);
    const tp = po['targetPort'];
    if (typeof tp !== 'string' && !Number.isInteger(tp)) r.fail(`ports[${i}].targetPort`, 'expected a number or a name');
    return {
      name: r.str(po, 'name', `ports[${i}].name`),
      port: r.port(po['port'], `ports[${i}].port`),
      targetPort: tp as number | string,
      protocol: r.oneOf<Protocol>(po, 'protocol', PROTOCOL),
    };
  });
  const selector = o['selector'] === undefined ? undefined : r.strMap(o['selector'], 'selector');
  const exportTo = o['exportTo'] === undefined ? undefined : r.strList(o['exportTo'], 'exportTo');
  const kind = r.str(o, 'kind');
  if (kind !== 'Service' && kind !== 'ServiceEntry') r.fail('kind', `unknown value ${JSON.stringify(kind)}`);
  return {
    hostname: r.str(o, 'hostname').toLowerCase(),
    name: r.str(o, 'name'),
    namespace: r.str(o, 'namespace'),
    ports: ports.sort((a, b) => a.port - b.port),
    ...(selector ? { selector } : {}),
    addresses: r.strList(o['addresses'] ?? [], 'addresses'),
    resolution: r.oneOf<Resolution>(o, 'resolution', RESOLUTION),
    location: r.oneOf<Location>(o, 'location', LOCATION),
    kind: kind as ServiceWire['kind'],
    ...(exportTo ? { exportTo } : {}),
  };
}

export function endpointsFromWire(any: AnyMsg, what: string): EndpointsWire {
  const r = new Reader(what);
  const o = parseJson(any, what);
  const endpoints = r.list(o['endpoints'] ?? [], 'endpoints').map((e, i): EndpointWire => {
    const p = `endpoints[${i}]`;
    const eo = r.obj(e, p);
    const address = r.optStr(eo, 'address');
    const weight = r.optWeight(eo, 'weight');
    return {
      portName: r.str(eo, 'portName', `${p}.portName`),
      servicePort: r.port(eo['servicePort'], `${p}.servicePort`),
      ...(address !== undefined ? { address } : {}),
      port: r.port(eo['port'], `${p}.port`),
      cluster: r.str(eo, 'cluster', `${p}.cluster`),
      network: r.str(eo, 'network', `${p}.network`),
      locality: r.str(eo, 'locality', `${p}.locality`),
      serviceAccount: r.str(eo, 'serviceAccount', `${p}.serviceAccount`),
      labels: r.strMap(eo['labels'], `${p}.labels`),
      health: r.oneOf<Health>(eo, 'health', HEALTH),
      ...(weight !== undefined ? { weight } : {}),
      workload: r.str(eo, 'workload', `${p}.workload`),
    };
  });
  return { hostname: r.str(o, 'hostname').toLowerCase(), endpoints };
}

/** A wire endpoint as a registry Endpoint of `hostname`, from a peer (source 'peer'). */
export function endpointFromWire(hostname: string, e: EndpointWire, network: string): Endpoint {
  const slash = e.serviceAccount.indexOf('/');
  const sa = slash < 0 ? { namespace: '', name: e.serviceAccount } : { namespace: e.serviceAccount.slice(0, slash), name: e.serviceAccount.slice(slash + 1) };
  const labels: Labels = e.labels;
  return {
    hostname,
    portName: e.portName,
    servicePort: e.servicePort,
    ...(e.address !== undefined ? { address: e.address } : {}),
    port: e.port,
    cluster: e.cluster || labels[LABEL_CLUSTER] || '',
    network,
    locality: parseLocalityString(e.locality),
    serviceAccount: sa,
    labels,
    health: e.health,
    ...(e.weight !== undefined ? { weight: e.weight } : {}),
    workload: e.workload,
    source: 'peer',
  };
}

// --- the decoder table the generic client uses -------------------------------------------------

/** type URL → what a peering resource decodes to. */
export interface PeeringResources {
  [PEER_CLUSTER_TYPE]: ClusterWire;
  [PEER_WORKLOAD_TYPE]: Workload;
  [PEER_SERVICE_TYPE]: ServiceWire;
  [PEER_ENDPOINTS_TYPE]: EndpointsWire;
}

function wireDecoder<T>(peer: string, typeUrl: string, fromWire: (any: AnyMsg, what: string) => T, check?: (v: T, what: string) => string | undefined): ResourceDecoder<T> {
  const short = typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
  return {
    decode(any, expectedName): Decoded<T> {
      const name = expectedName ?? '';
      const what = `${peer} ${short} ${name}`;
      try {
        const value = fromWire(any, what);
        const bad = check?.(value, what);
        return bad ? { ok: false, name, errors: [bad] } : { ok: true, name, value };
      } catch (e) {
        if (e instanceof WireError) return { ok: false, name, errors: [e.message] };
        throw e;
      }
    },
  };
}

/** Decoders for the feed of `peer`: strict, and the cluster resource must describe `peer` itself. */
export function peeringDecoders(peer: string): DecoderTable<PeeringResources> {
  return {
    [PEER_CLUSTER_TYPE]: wireDecoder(peer, PEER_CLUSTER_TYPE, clusterFromWire, (c, what) =>
      c.name !== peer ? `${what}: the feed describes cluster ${c.name}, but this is the feed of ${peer}` : undefined,
    ),
    [PEER_WORKLOAD_TYPE]: wireDecoder(peer, PEER_WORKLOAD_TYPE, (any, what) => workloadFromWire(any, what)),
    [PEER_SERVICE_TYPE]: wireDecoder(peer, PEER_SERVICE_TYPE, serviceFromWire),
    [PEER_ENDPOINTS_TYPE]: wireDecoder(peer, PEER_ENDPOINTS_TYPE, endpointsFromWire),
  };
}
