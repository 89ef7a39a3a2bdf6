/**
 * The export feed: this cluster's own services, workloads, endpoints and east-west gateways, served
 * read-only to peer control planes that added this cluster "for service discovery only".
 *
 * It is the ordinary XdsServer (delta ADS, per-resource versions, ACK/NACK) over its own
 * SnapshotCache with Isle's type URLs, registered under the gRPC service
 * `isle.peering.v1.PeeringExport` so it can share the :15012 listener with the proxies' ADS without
 * either side reaching the other's types, and with its own authentication (control planes only).
 *
 * Only the local shard is exported, never a peer's: a feed that re-exported what it learned would
 * loop between peers and let one cluster speak for another.
 */
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { descriptorFor } from '../config/descriptors.js';
import type { Registry } from '../registry/aggregate.js';
import type { Endpoint, Service, Workload } from '../registry/model.js';
import type { Shard } from '../registry/shard.js';
import { adsServiceDefinition, DELTA_METHOD } from '../xds/ads.js';
import { resourceFromAny, SnapshotCache, typeSnapshot, type XdsResource } from '../xds/cache.js';
import { XdsServer, type NodeInfo, type XdsLogger, type XdsServerOptions } from '../xds/server.js';
import { controlPlaneCluster, controlPlaneSpiffeId } from './identity.js';
import {
  endpointToWire,
  PEER_CLUSTER_TYPE,
  PEER_ENDPOINTS_TYPE,
  PEER_SERVICE_TYPE,
  PEER_WORKLOAD_TYPE,
  PEERING_METHOD,
  PEERING_PATH,
  PEERING_TYPES,
  serviceToWire,
  toWireAny,
  workloadToWire,
  type ClusterWire,
  type GatewayAddressWire,
} from './wire.js';

/** Every subscriber sees the same export, so the cache holds one entry under this key. */
export const EXPORT_KEY = 'peering-export';

const silent: XdsLogger = { debug() {}, info() {}, warn() {}, error() {} };

const NO_ENDPOINTS: readonly Endpoint[] = Object.freeze([]);

export interface PeeringExportOptions {
  /** Its shard for `cluster` is what gets exported. */
  registry: Registry;
  cluster: string;
  /** This cluster's network ('' for one flat network). */
  network: string;
  trustDomain: string;
  /** This network's east-west gateways as clients on other networks dial them (`address:15443`). */
  gateways?: readonly GatewayAddressWire[];
  logger?: XdsLogger;
  now?: () => number;
}

export interface ExportSubscriber {
  cluster: string;
  node: string;
  peer: string;
  connectedSince: number;
  types: { typeUrl: string; versionSent?: string; versionAcked?: string }[];
}

/** Kinds a discovery-only peer may receive (config/descriptors.ts `exportToPeers`). */
function exported(kind: string): boolean {
  return descriptorFor(kind)?.exportToPeers === true;
}

/**
 * Registers `xds`'s delta ADS method under another service `path` (`/<service>/<method>`), so
 * feeds with their own types and auth share one gRPC server with the proxies' ADS.
 */
export function serveDeltaAs(xds: XdsServer, server: grpc.Server, path: string): void {
  const method = path.slice(path.lastIndexOf('/') + 1);
  const adapter = {
    addService(def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): void {
      const delta = def[DELTA_METHOD];
      const handler = impl[DELTA_METHOD];
      if (!delta || !handler) throw new Error('XdsServer registered no delta ADS method');
      server.addService({ [method]: { ...delta, path, originalName: method } }, { [method]: handler });
    },
  };
  xds.addToServer(adapter as unknown as grpc.Server);
}

/** The client-side definition of the feed's one method (same messages as Envoy's delta ADS). */
export function peeringMethodDefinition(): grpc.MethodDefinition<unknown, unknown> {
  const delta = adsServiceDefinition().DeltaAggregatedResources;
  return { ...delta, path: PEERING_PATH, originalName: PEERING_METHOD } as grpc.MethodDefinition<unknown, unknown>;
}

/** The verified client certificate of a gRPC call on a TLS server, if any. */
export function peerCertificate(call: unknown): PeerCertificate | undefined {
  const c = call as { getAuthContext?: () => { sslPeerCertificate?: PeerCertificate } | null };
  try {
    return c.getAuthContext?.()?.sslPeerCertificate ?? undefined;
  } catch {
    return undefined;
  }
}

/** An XdsServer for a feed of Isle types that every subscriber sees the same (one cache key, wildcard types). */
export function feedServer(cache: SnapshotCache, types: readonly string[], key: string, logger: XdsLogger, now: (() => number) | undefined, authenticate: XdsServerOptions['authenticate']): XdsServer {
  return new XdsServer({ cache, typeUrls: types, wildcardTypes: new Set(types), nodeKey: () => key, logger, ...(now ? { now } : {}), ...(authenticate ? { authenticate } : {}) });
}

function typeVersion(resources: Iterable<XdsResource>): string {
  const h = createHash('sha256');
  for (const r of [...resources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) h.update(`${r.name}\u0000${r.version}\u0000`);
  return h.digest('base64url').slice(0, 16);
}

export class PeeringExport {
  readonly cache = new SnapshotCache();
  readonly xds: XdsServer;
  readonly cluster: string;
  private network: string;
  private gateways: readonly GatewayAddressWire[];
  private readonly trustDomain: string;
  private readonly registry: Registry;
  private readonly logger: XdsLogger;
  private lastShard: Shard | undefined;
  private built = false;
  private readonly offs: (() => void)[] = [];
  /** Resources of unchanged model objects are reused: one serialization per object. */
  private readonly serviceRes = new WeakMap<Service, XdsResource>();
  private readonly workloadRes = new WeakMap<Workload, XdsResource>();
  /** Keyed by the shard's endpoint list of a host: unchanged hosts are not re-serialized. */
  private readonly endpointsRes = new WeakMap<readonly Endpoint[], XdsResource>();

  constructor(opts: PeeringExportOptions) {
    if (opts.registry.localCluster !== opts.cluster) {
      throw new Error(`the export of ${opts.cluster} needs the registry of ${opts.cluster}, not of ${opts.registry.localCluster}`);
    }
    this.registry = opts.registry;
    this.cluster = opts.cluster;
    this.network = opts.network;
    this.gateways = opts.gateways ?? [];
    this.trustDomain = opts.trustDomain;
    this.logger = opts.logger ?? silent;
    this.xds = feedServer(this.cache, PEERING_TYPES, EXPORT_KEY, this.logger, opts.now, (node, call) => this.authenticate(node, call));
    this.offs.push(
      // Built on demand: the first subscriber gets a fresh export before the server reads the cache.
      this.xds.on('connect', () => this.refresh(true)),
      this.xds.on('connect', ({ proxy }) =>
        this.logger.info({ peerCluster: proxy.node.cluster, node: proxy.node.id, peer: proxy.peer }, `peer control plane ${proxy.node.cluster} subscribed to the export feed of ${this.cluster}`),
      ),
      this.xds.on('disconnect', ({ proxy, reason }) =>
        this.logger.info({ peerCluster: proxy.node.cluster, peer: proxy.peer, reason }, `peer control plane ${proxy.node.cluster} left the export feed`),
      ),
      this.xds.on('nack', (e) => this.logger.warn({ node: e.nodeId, typeUrl: e.typeUrl, error: e.message }, 'peer rejected part of the export feed')),
      this.registry.subscribe(() => this.refresh()),
    );
    this.refresh();
  }

  /** Registers the feed (`isle.peering.v1.PeeringExport`) on a server the caller owns and binds. */
  addToServer(server: grpc.Server): void {
    serveDeltaAs(this.xds, server, PEERING_PATH);
  }

  /** The local east-west gateways changed (config or flag). */
  setGateways(gateways: readonly GatewayAddressWire[], network = this.network): void {
    this.gateways = [...gateways];
    this.network = network;
    this.built = false;
    this.refresh();
  }

  /**
   * Rebuilds the export from the local shard; cheap when nothing changed. With nobody subscribed
   * it only notes that it is stale: serializing every endpoint on each registry change for no
   * reader was 15 % of an endpoint push's CPU (bench cp-scale profile).
   */
  refresh(force = false): void {
    const shard = this.registry.shard(this.cluster);
    if (this.built && shard === this.lastShard) return;
    if (!force && this.xds.streamCount() === 0) {
      this.built = false;
      return;
    }
    this.lastShard = shard;
    this.built = true;

    const info: ClusterWire = { name: this.cluster, network: this.network, trustDomain: this.trustDomain, gateways: [...this.gateways] };
    const clusterRes = [resourceFromAny(this.cluster, toWireAny(PEER_CLUSTER_TYPE, info))];
    const workloads: XdsResource[] = [];
    const services: XdsResource[] = [];
    const endpoints: XdsResource[] = [];
    if (shard) {
      for (const w of shard.workloads) {
        // Auto-registered proxies are WorkloadEntries in Istio's model, and exported as such.
        if (!exported('WorkloadEntry') || w.cluster !== this.cluster) continue;
        let r = this.workloadRes.get(w);
        if (!r) this.workloadRes.set(w, (r = resourceFromAny(`${w.namespace}/${w.name}`, toWireAny(PEER_WORKLOAD_TYPE, workloadToWire(w)))));
        workloads.push(r);
      }
      for (const [hostname, svc] of shard.services) {
        if (!exported(svc.kind)) continue;
        // `~` makes a service visible to no namespace, so to no other cluster either.
        if (svc.exportTo?.length === 1 && svc.exportTo[0] === '~') continue;
        let r = this.serviceRes.get(svc);
        if (!r) this.serviceRes.set(svc, (r = resourceFromAny(hostname, toWireAny(PEER_SERVICE_TYPE, serviceToWire(svc)))));
        services.push(r);
        const raw = shard.endpoints.get(hostname) ?? NO_ENDPOINTS;
        let er = this.endpointsRes.get(raw);
        if (!er || er.name !== hostname) {
          const eps = raw.filter((e: Endpoint) => e.source !== 'peer' && e.cluster === this.cluster);
          er = resourceFromAny(hostname, toWireAny(PEER_ENDPOINTS_TYPE, { hostname, endpoints: eps.map(endpointToWire) }));
          if (raw !== NO_ENDPOINTS) this.endpointsRes.set(raw, er);
        }
        endpoints.push(er);
      }
    }
    const set = (typeUrl: string, rs: XdsResource[]) => this.cache.setResources(EXPORT_KEY, typeUrl, typeVersion(rs), typeSnapshot(typeVersion(rs), rs));
    set(PEER_CLUSTER_TYPE, clusterRes);
    set(PEER_WORKLOAD_TYPE, workloads);
    set(PEER_SERVICE_TYPE, services);
    set(PEER_ENDPOINTS_TYPE, endpoints);
  }

  /** Who is subscribed right now (for `isle status`). */
  subscribers(): ExportSubscriber[] {
    return this.xds.status().map((s) => ({
      cluster: s.node.cluster,
      node: s.node.id,
      peer: s.peer,
      connectedSince: s.connectedSince,
      types: s.types.map((t) => ({
        typeUrl: t.typeUrl,
        ...(t.versionSent !== undefined ? { versionSent: t.versionSent } : {}),
        ...(t.versionAcked !== undefined ? { versionAcked: t.versionAcked } : {}),
      })),
    }));
  }

  close(): void {
    for (const off of this.offs.splice(0)) off();
    this.xds.close();
  }

  /**
   * Only another cluster's control plane of this mesh may subscribe. grpc-js shows handlers a
   * client certificate only when it verified against our root bundle, so "no certificate" also
   * covers "a certificate from another root" (the handshake itself usually fails first).
   */
  private authenticate(node: NodeInfo, call: unknown): string | undefined {
    const want = controlPlaneSpiffeId(this.trustDomain);
    const cert = peerCertificate(call);
    const refuse = (why: string): string => {
      const msg = `export feed of cluster ${this.cluster}: ${why}`;
      this.logger.warn({ node: node.id, claimedCluster: node.cluster }, `peering subscription refused: ${why}`);
      return msg;
    };
    if (!cert) {
      return refuse(`a client certificate signed by this mesh's root is required; only peer control planes (${want}) may subscribe`);
    }
    const who = controlPlaneCluster(cert, this.trustDomain);
    if ('refusal' in who) return refuse(`${who.refusal}; only peer control planes may subscribe`);
    if (who.cluster === this.cluster) return refuse(`the subscriber is cluster ${who.cluster} itself`);
    if (node.cluster !== who.cluster) {
      return refuse(`node says cluster ${JSON.stringify(node.cluster)} but its certificate is cluster ${who.cluster}'s control plane`);
    }
    return undefined;
  }
}
