/**
 * The central control plane's side of seed 001 (Alibaba ASM's managed control plane with remote
 * control planes): it serves every mesh resource it holds to the remote control planes of other
 * clusters (`isle.central.v1.CentralConfig`, the ordinary XdsServer over its own cache), and takes
 * their clusters' services, workloads, endpoints and gateways pushed back over the same connection
 * (`isle.central.v1.RemoteExport/Push`), into one registry shard per remote cluster.
 *
 * Who may connect: a control plane of this mesh's root (SPIFFE id and cluster from its
 * certificate, as for peering), never this cluster itself, and per cluster name only one
 * intermediate at a time — replicas of one remote share their cluster's intermediate; another
 * control plane claiming the same name with a different one is refused.
 */
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import type { ConfigEvent, Kind, Resource } from '../config/types.js';
import type { GatewayAddress } from '../model/pushcontext.js';
import type { Registry } from '../registry/aggregate.js';
import { adsServiceDefinition } from '../xds/ads.js';
import { resourceFromAny, SnapshotCache, typeSnapshot, type XdsResource } from '../xds/cache.js';
import { ResourceStore, type Update } from '../xds/client/index.js';
import type { DeltaDiscoveryRequestMsg, DeltaDiscoveryResponseMsg } from '../xds/protos.js';
import type { NodeInfo, XdsLogger, XdsServer } from '../xds/server.js';
import {
  CENTRAL_CONFIG_TYPE,
  CENTRAL_KINDS,
  CENTRAL_MESH_TYPE,
  CENTRAL_PATH,
  CENTRAL_TYPES,
  centralName,
  configToWire,
  meshToWire,
  REMOTE_EXPORT_METHOD,
  REMOTE_EXPORT_PATH,
  type MeshSettings,
} from './centralwire.js';
import { feedServer, peerCertificate, serveDeltaAs } from './export.js';
import { controlPlaneCluster, issuerKeyId } from './identity.js';
import { feedGateways, feedNetwork, feedShard, unionFeed } from './shard.js';
import { PEERING_TYPES, peeringDecoders, type PeeringResources } from './wire.js';

/** Every remote sees the same central config: one cache key. */
export const CENTRAL_KEY = 'central-config';
const silent: XdsLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** The push method: the remote writes delta responses, the central answers with delta requests. */
export function remoteExportMethod(): grpc.MethodDefinition<DeltaDiscoveryResponseMsg, DeltaDiscoveryRequestMsg> {
  const d = adsServiceDefinition().DeltaAggregatedResources;
  return {
    path: REMOTE_EXPORT_PATH,
    requestStream: true,
    responseStream: true,
    originalName: REMOTE_EXPORT_METHOD,
    requestSerialize: d.responseSerialize,
    requestDeserialize: d.responseDeserialize,
    responseSerialize: d.requestSerialize,
    responseDeserialize: d.requestDeserialize,
  };
}

export interface CentralConfigStore {
  list(kind?: Kind): Resource[];
  subscribe(listener: (events: readonly ConfigEvent[], version: number) => void): () => void;
}

export interface CentralServerOptions {
  cluster: string;
  network: string;
  trustDomain: string;
  store: CentralConfigStore;
  /** Mesh-wide settings, re-read on every config change. */
  mesh: () => Pick<MeshSettings, 'rootNamespace' | 'remoteClustersSeeCentral'> & { remoteClustersSeeCentralNamespaces?: readonly string[] };
  registry: Registry;
  /** A remote cluster's network and gateways, whenever they change (`[]` when it is gone). */
  onGateways?: (cluster: string, network: string, gateways: GatewayAddress[]) => void;
  logger?: XdsLogger;
  now?: () => number;
}

export interface RemoteStatus {
  cluster: string;
  /** Connected replicas: config streams and export pushes. */
  configStreams: number;
  pushStreams: number;
  state: 'connected' | 'stale';
  network: string;
  services: number;
  endpoints: number;
  lastSyncTime?: number;
  /** The last rejected push (NACK), if any. */
  lastNack?: string;
}

interface RemoteState {
  cluster: string;
  issuer: string;
  /**
   * One store per replica (the `x-isle-replica` header): a proxy auto-registered at one replica is
   * known only there, so the cluster's shard is the union of what its replicas say.
   */
  replicas: Map<string, ReplicaState>;
  pushes: Set<PushStream>;
  hasShard: boolean;
  rebuildQueued: boolean;
  gatewaysDirty: boolean;
  network: string;
  services: number;
  endpoints: number;
  lastSyncTime?: number;
  lastNack?: string;
}

interface ReplicaState {
  id: string;
  store: ResourceStore<PeeringResources>;
  streams: Set<PushStream>;
  /** Every type answered once: the replica counts in the shard. */
  synced: boolean;
}

interface PushStream {
  call: grpc.ServerDuplexStream<DeltaDiscoveryResponseMsg, DeltaDiscoveryRequestMsg>;
  replica: ReplicaState;
  received: Set<string>;
}

/** The metadata header a remote control plane names its replica with (stable for a process). */
export const REPLICA_HEADER = 'x-isle-replica';

function versionOf(resources: readonly XdsResource[]): string {
  const h = createHash('sha256');
  for (const r of resources) h.update(`${r.name}\u0000${r.version}\u0000`);
  return h.digest('base64url').slice(0, 16);
}

export class CentralServer {
  readonly cache = new SnapshotCache();
  readonly xds: XdsServer;
  private readonly o: CentralServerOptions;
  private readonly logger: XdsLogger;
  private readonly now: () => number;
  private readonly remotes = new Map<string, RemoteState>();
  /** Config streams by id → cluster, for status and the one-intermediate rule. */
  private readonly configStreams = new Map<string, { cluster: string; issuer: string }>();
  private readonly offs: (() => void)[] = [];
  private readonly resources = new WeakMap<Resource, XdsResource>();
  private closed = false;

  constructor(opts: CentralServerOptions) {
    this.o = opts;
    this.logger = opts.logger ?? silent;
    this.now = opts.now ?? Date.now;
    this.xds = feedServer(this.cache, CENTRAL_TYPES, CENTRAL_KEY, this.logger, opts.now, (node, call) => {
      const who = this.authenticate(call, 'config feed');
      if ('refusal' in who) return who.refusal;
      if (node.cluster !== who.cluster) return `central config feed of ${this.o.cluster}: node says cluster ${JSON.stringify(node.cluster)} but its certificate is cluster ${who.cluster}'s control plane`;
      return undefined;
    });
    this.offs.push(
      this.xds.on('connect', ({ proxy }) => {
        this.configStreams.set(proxy.streamId, { cluster: proxy.node.cluster, issuer: this.pendingIssuer.get(proxy.node.cluster) ?? '' });
        this.logger.info({ remoteCluster: proxy.node.cluster, peer: proxy.peer }, `remote control plane of ${proxy.node.cluster} subscribed to the central config`);
      }),
      this.xds.on('disconnect', ({ proxy, reason }) => {
        this.configStreams.delete(proxy.streamId);
        this.logger.info({ remoteCluster: proxy.node.cluster, reason }, `remote control plane of ${proxy.node.cluster} left the central config feed`);
      }),
      this.xds.on('nack', (e) => this.logger.warn({ node: e.nodeId, typeUrl: e.typeUrl, error: e.message }, 'a remote control plane rejected central config')),
      opts.store.subscribe(() => this.refresh()),
    );
    this.refresh();
  }

  /** Issuer seen at authentication, keyed by cluster, until the stream's connect event records it. */
  private readonly pendingIssuer = new Map<string, string>();

  /** Registers both services on the caller's server (the mTLS :15012 one). */
  addToServer(server: grpc.Server): void {
    serveDeltaAs(this.xds, server, CENTRAL_PATH);
    const m = remoteExportMethod();
    server.addService({ [REMOTE_EXPORT_METHOD]: m } as grpc.ServiceDefinition, {
      [REMOTE_EXPORT_METHOD]: (call: grpc.ServerDuplexStream<DeltaDiscoveryResponseMsg, DeltaDiscoveryRequestMsg>) => this.onPush(call),
    });
  }

  /** Rebuilds the config feed from the store; unchanged resources keep their bytes and versions. */
  refresh(): void {
    if (this.closed) return;
    const mesh = this.o.mesh();
    const settings: MeshSettings = { cluster: this.o.cluster, network: this.o.network, trustDomain: this.o.trustDomain, rootNamespace: mesh.rootNamespace, remoteClustersSeeCentral: mesh.remoteClustersSeeCentral, ...(mesh.remoteClustersSeeCentralNamespaces ? { namespaces: [...mesh.remoteClustersSeeCentralNamespaces] } : {}) };
    const meshRes = [resourceFromAny('mesh', meshToWire(settings))];
    const config: XdsResource[] = [];
    for (const r of this.o.store.list()) {
      if (!CENTRAL_KINDS.has(r.kind)) continue;
      let x = this.resources.get(r);
      if (!x) this.resources.set(r, (x = resourceFromAny(centralName(r), configToWire(r))));
      config.push(x);
    }
    config.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.cache.setResources(CENTRAL_KEY, CENTRAL_MESH_TYPE, versionOf(meshRes), typeSnapshot(versionOf(meshRes), meshRes));
    this.cache.setResources(CENTRAL_KEY, CENTRAL_CONFIG_TYPE, versionOf(config), typeSnapshot(versionOf(config), config));
  }

  /** For /debug/remoteclusterz and `isle status`. */
  status(): RemoteStatus[] {
    const clusters = new Set([...this.remotes.keys(), ...[...this.configStreams.values()].map((s) => s.cluster)]);
    return [...clusters].sort().map((cluster) => {
      const r = this.remotes.get(cluster);
      const configStreams = [...this.configStreams.values()].filter((s) => s.cluster === cluster).length;
      const pushStreams = r?.pushes.size ?? 0;
      return {
        cluster,
        configStreams,
        pushStreams,
        state: pushStreams > 0 ? 'connected' : 'stale',
        network: r?.network ?? '',
        services: r?.services ?? 0,
        endpoints: r?.endpoints ?? 0,
        ...(r?.lastSyncTime !== undefined ? { lastSyncTime: r.lastSyncTime } : {}),
        ...(r?.lastNack ? { lastNack: r.lastNack } : {}),
      };
    });
  }

  close(): void {
    this.closed = true;
    for (const off of this.offs.splice(0)) off();
    this.xds.close();
    for (const r of this.remotes.values()) for (const p of r.pushes) p.call.end();
  }

  // --- who ---------------------------------------------------------------------------------------

  private authenticate(call: unknown, what: string): { cluster: string; issuer: string } | { refusal: string } {
    const refuse = (why: string) => {
      this.logger.warn({ what }, `remote control plane refused: ${why}`);
      return { refusal: `central ${what} of ${this.o.cluster}: ${why}` };
    };
    const cert = peerCertificate(call);
    if (!cert) return refuse(`a client certificate signed by this mesh's root is required; only remote control planes may connect`);
    const who = controlPlaneCluster(cert, this.o.trustDomain);
    if ('refusal' in who) return refuse(`${who.refusal}; only remote control planes may connect`);
    if (who.cluster === this.o.cluster) return refuse(`cluster ${who.cluster} is this central control plane's own cluster; a second control plane cannot claim it`);
    const issuer = issuerKeyId(cert);
    const holder = this.issuerOf(who.cluster);
    if (holder !== undefined && holder !== issuer) {
      return refuse(`cluster ${who.cluster} is already connected with another intermediate CA; a second control plane cannot claim the same cluster name`);
    }
    this.pendingIssuer.set(who.cluster, issuer);
    return { cluster: who.cluster, issuer };
  }

  /** The intermediate a connected remote of `cluster` uses, if any is connected. */
  private issuerOf(cluster: string): string | undefined {
    const r = this.remotes.get(cluster);
    if (r && r.pushes.size > 0) return r.issuer;
    for (const s of this.configStreams.values()) if (s.cluster === cluster && s.issuer) return s.issuer;
    return undefined;
  }

  // --- the pushed export -------------------------------------------------------------------------

  private onPush(call: grpc.ServerDuplexStream<DeltaDiscoveryResponseMsg, DeltaDiscoveryRequestMsg>): void {
    const who = this.authenticate(call, 'export push');
    if ('refusal' in who) {
      call.emit('error', Object.assign(new Error(who.refusal), { code: grpc.status.PERMISSION_DENIED, details: who.refusal }));
      return;
    }
    const cluster = who.cluster;
    let r = this.remotes.get(cluster);
    if (!r) {
      r = { cluster, issuer: who.issuer, replicas: new Map(), pushes: new Set(), hasShard: false, rebuildQueued: false, gatewaysDirty: true, network: '', services: 0, endpoints: 0 };
      this.remotes.set(cluster, r);
    }
    r.issuer = who.issuer;
    const remote = r;
    const id = String(call.metadata.get(REPLICA_HEADER)[0] ?? 'default');
    let replica = remote.replicas.get(id);
    if (!replica) {
      replica = { id, store: new ResourceStore<PeeringResources>({ decoders: peeringDecoders(cluster), order: PEERING_TYPES as (keyof PeeringResources)[], now: this.now }), streams: new Set(), synced: false };
      remote.replicas.set(id, replica);
    }
    const stream: PushStream = { call, replica, received: new Set() };
    replica.streams.add(stream);
    remote.pushes.add(stream);
    this.o.registry.markStale(cluster, false);
    this.logger.info({ remoteCluster: cluster, replica: id }, `remote control plane of ${cluster} is pushing its services (${remote.pushes.size} replica stream(s))`);
    // What we hold from this replica already: a reconnecting replica sends only the difference.
    for (const t of PEERING_TYPES) {
      const versions = replica.store.resourceVersions(t);
      try {
        call.write({ type_url: t, resource_names_subscribe: ['*'], initial_resource_versions: versions });
      } catch {
        // the stream is already gone
      }
    }
    call.on('data', (msg: DeltaDiscoveryResponseMsg) => this.onPushed(remote, stream, msg));
    const gone = () => {
      if (!remote.pushes.delete(stream)) return;
      stream.replica.streams.delete(stream);
      if (remote.pushes.size === 0) {
        if (remote.hasShard) {
          this.o.registry.markStale(cluster, true);
          this.logger.warn({ remoteCluster: cluster }, `remote control plane of ${cluster} disconnected; keeping its last known endpoints (stale)`);
        }
        return;
      }
      // Another replica serves the cluster: what only this one knew goes (its proxies reconnect there).
      if (stream.replica.streams.size === 0 && remote.replicas.delete(stream.replica.id)) this.queueRebuild(remote);
    };
    call.on('end', () => {
      gone();
      call.end();
    });
    call.on('error', gone);
    call.on('cancelled', gone);
    call.on('close', gone);
  }

  private onPushed(r: RemoteState, s: PushStream, msg: DeltaDiscoveryResponseMsg): void {
    const typeUrl = msg.type_url;
    const write = (req: DeltaDiscoveryRequestMsg) => {
      try {
        s.call.write(req);
      } catch {
        // gone
      }
    };
    const store = s.replica.store;
    if (!store.has(typeUrl)) {
      write({ type_url: typeUrl, response_nonce: msg.nonce, error_detail: { code: grpc.status.UNIMPLEMENTED, message: `type ${typeUrl} is not part of a remote export` } });
      return;
    }
    const update: Update = { kind: 'delta', version: msg.system_version_info ?? '', resources: msg.resources ?? [], removed: msg.removed_resources ?? [] };
    const res = store.handle(typeUrl, update, msg.nonce);
    if (!res.ack) {
      r.lastNack = res.errors.join('; ');
      this.logger.warn({ remoteCluster: r.cluster, typeUrl, errors: res.errors }, `rejected a push of ${r.cluster}; keeping its last good state`);
      write({ type_url: typeUrl, response_nonce: msg.nonce, error_detail: { code: grpc.status.INVALID_ARGUMENT, message: r.lastNack } });
      return;
    }
    write({ type_url: typeUrl, response_nonce: msg.nonce });
    s.received.add(typeUrl);
    if (!s.replica.synced && !PEERING_TYPES.every((t) => s.received.has(t))) return;
    const first = !s.replica.synced;
    s.replica.synced = true;
    if (!first && res.changed.length === 0 && res.removed.length === 0 && r.hasShard) return;
    if (typeUrl === PEERING_TYPES[0]) r.gatewaysDirty = true;
    this.queueRebuild(r);
  }

  /** A remote sends its types back to back: one rebuild for the lot (as PeerSubscriber does). */
  private queueRebuild(r: RemoteState): void {
    if (r.rebuildQueued) return;
    r.rebuildQueued = true;
    setImmediate(() => {
      r.rebuildQueued = false;
      if (!this.closed) this.rebuild(r);
    });
  }

  private rebuild(r: RemoteState): void {
    const stores = [...r.replicas.values()].filter((x) => x.synced).map((x) => x.store);
    if (stores.length === 0) return;
    const feed = unionFeed(stores);
    const { shard } = feedShard(r.cluster, feed, undefined);
    this.o.registry.setShard(r.cluster, shard);
    r.hasShard = true;
    r.services = shard.services.size;
    r.endpoints = [...shard.endpoints.values()].reduce((n, l) => n + l.length, 0);
    r.lastSyncTime = this.now();
    const network = feedNetwork(feed, undefined);
    if (network !== r.network || r.gatewaysDirty) this.o.onGateways?.(r.cluster, network, feedGateways(r.cluster, feed));
    r.gatewaysDirty = false;
    r.network = network;
  }

  /** For tests: the node infos of connected config streams. */
  configSubscribers(): NodeInfo[] {
    return this.xds.status().map((s) => s.node);
  }
}
