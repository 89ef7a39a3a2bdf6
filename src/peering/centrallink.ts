/**
 * A remote control plane's link to the central one (`isle control-plane --central HOST:PORT`):
 * one mTLS connection per replica carrying
 *
 * 1. the central config feed (the generic DiscoveryClient over `isle.central.v1.CentralConfig`):
 *    every mesh resource the central holds lands in `config` (a MemorySource the control plane
 *    ranks above its own directory, so central config wins and a local object of the same name is
 *    reported as a conflict), and the mesh settings;
 * 2. the push of this cluster's export (`isle.central.v1.RemoteExport/Push`): services, workloads,
 *    endpoints and east-west gateways, as diffs against what the central says it holds;
 * 3. only when the central enables it (`remoteClustersSeeCentral`), a discovery subscription to the
 *    central's own peering export, on the same channel.
 *
 * While the central is unreachable everything received stays (config in the MemorySource, the
 * central's shard marked stale); on reconnect the feed resumes with `initial_resource_versions`,
 * so only what changed travels and only that is pushed to proxies.
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { MemorySource } from '../config/sources/memory.js';
import type { Resource } from '../config/types.js';
import type { Backoff } from '../mesh/backoff.js';
import { controlPlaneTarget } from '../mesh/target.js';
import type { Timers } from '../mesh/timers.js';
import type { GatewayAddress } from '../model/pushcontext.js';
import type { Registry } from '../registry/aggregate.js';
import type { TypeSnapshot } from '../xds/cache.js';
import { DiscoveryClient, ResourceStore, type NackEvent } from '../xds/client/index.js';
import type { DeltaDiscoveryRequestMsg, DeltaDiscoveryResponseMsg, NodeMsg } from '../xds/protos.js';
import type { XdsLogger } from '../xds/server.js';
import { remoteExportMethod, REPLICA_HEADER } from './central.js';
import { CENTRAL_CONFIG_TYPE, CENTRAL_MESH_TYPE, CENTRAL_PATH, CENTRAL_TYPES, centralDecoders, type CentralResources, type MeshSettings } from './centralwire.js';
import { EXPORT_KEY, type PeeringExport } from './export.js';
import { PEER_BACKOFF, PeerSubscriber, type PeerStatus } from './subscriber.js';
import { describeFeedError, peerChannel, type PeerClientTls } from './tls.js';
import { PEERING_TYPES } from './wire.js';

const silent: XdsLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface CentralLinkOptions {
  /** host:port of the central control plane's :15012. */
  address: string;
  localCluster: string;
  localNetwork: string;
  trustDomain: string;
  /** Re-read on every (re)connect (renewed control-plane certificate). */
  tls: () => PeerClientTls;
  /** Where central resources land; the caller ranks it above local config. */
  config: MemorySource;
  /** This cluster's export: what is pushed to the central. */
  exporter: PeeringExport;
  registry: Registry;
  /** The central cluster's gateways when this cluster sees it (and `[]` when not). */
  onGateways?: (cluster: string, network: string, gateways: GatewayAddress[]) => void;
  /** Mesh settings from the central changed (e.g. remoteClustersSeeCentral). */
  onMeshSettings?: (m: MeshSettings) => void;
  backoff?: Backoff;
  timers?: Timers;
  now?: () => number;
  logger?: XdsLogger;
}

export interface CentralLinkStatus {
  address: string;
  /** The central control plane's cluster, once known. */
  centralCluster?: string;
  connected: boolean;
  connectedSince?: number;
  lastError?: string;
  /** Central resources in use (last good). */
  resources: number;
  configVersion: string;
  lastRejected?: { version: string; errors: readonly string[] };
  remoteClustersSeeCentral: boolean;
  /** Only these central namespaces are discovered here (absent: all, when discovery is on). */
  seeCentralNamespaces?: readonly string[];
  /** The push of our export: types the central ACKed at least once, the last NACK. */
  push: { connected: boolean; sent: number; acked: number; lastNack?: string };
  /** The discovery subscription to the central's export (only when it is enabled). */
  centralDiscovery?: PeerStatus;
  sent: { subscribe: number; ack: number; nack: number };
}

type PushCall = grpc.ClientDuplexStream<DeltaDiscoveryResponseMsg, DeltaDiscoveryRequestMsg>;

interface PushState {
  call: PushCall;
  /** Per type: what the central holds (name → version), as it told us and as we sent since. */
  held: Map<string, Map<string, string>>;
  /** Types the central has told us about (its first message per type). */
  ready: Set<string>;
  /** Types sent on this stream: each goes once even when empty, so the central can sync. */
  sentOnce: Set<string>;
  nonce: number;
  closed: boolean;
}

export class CentralLink {
  readonly store: ResourceStore<CentralResources>;
  private readonly o: CentralLinkOptions;
  private readonly logger: XdsLogger;
  private readonly client: DiscoveryClient<CentralResources>;
  private channel: { client: grpc.Client; key: string } | undefined;
  private identityFailure: string | undefined;
  private push: PushState | undefined;
  private pushCounts = { sent: 0, acked: 0, lastNack: undefined as string | undefined };
  private centralSub: PeerSubscriber | undefined;
  private settings: MeshSettings | undefined;
  private offRegistry: (() => void) | undefined;
  private exportQueued = false;
  /** Names this process to the central: its reconnects resume, a restart starts over. */
  private readonly replicaId = randomUUID();
  private closed = false;

  constructor(opts: CentralLinkOptions) {
    this.o = opts;
    this.logger = opts.logger ?? silent;
    this.store = new ResourceStore<CentralResources>({
      decoders: centralDecoders({ trustDomain: opts.trustDomain, localCluster: opts.localCluster }),
      order: CENTRAL_TYPES as (keyof CentralResources)[],
      ...(opts.now ? { now: opts.now } : {}),
    });
    const node: NodeMsg = {
      id: `isle-control-plane.${opts.localCluster}`,
      cluster: opts.localCluster,
      metadata: { CLUSTER_ID: opts.localCluster, NETWORK: opts.localNetwork, ISLE_ROLE: 'remote-control-plane' },
      user_agent_name: 'isle-remote-control-plane',
    };
    this.client = new DiscoveryClient<CentralResources>({
      channel: () => ({ address: opts.address, shared: this.sharedChannel() }),
      path: CENTRAL_PATH,
      node,
      store: this.store,
      onAccepted: (typeUrl) => this.onAccepted(typeUrl),
      describeError: (e) => describeFeedError(`central control plane at ${opts.address}`, e, this.identityFailure, { notWho: 'is not a central control plane of this mesh', refused: 'refused this remote control plane', shared: 'the central and remote clusters' }),
      backoff: opts.backoff ?? PEER_BACKOFF,
      ...(opts.timers ? { timers: opts.timers } : {}),
      ...(opts.now ? { now: opts.now } : {}),
    });
    this.client.on('connected', () => {
      this.logger.info({ central: opts.address }, `connected to the central control plane at ${opts.address}`);
      this.openPush();
    });
    this.client.on('disconnected', (why: string) => {
      this.closePush();
      this.logger.warn({ central: opts.address, error: why }, `${why}; serving the last config received from the central control plane`);
    });
    this.client.on('nack', (e: NackEvent) => this.logger.warn({ typeUrl: e.typeUrl, errors: e.errors }, 'rejected an update from the central control plane (NACK); keeping the last good config'));
    this.client.on('handler-error', (e: unknown) => this.logger.error({ err: e }, 'applying central config failed'));
  }

  start(): void {
    this.offRegistry = this.o.registry.subscribe(() => this.queueExport());
    this.client.start();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.offRegistry?.();
    this.closePush();
    this.centralSub?.close();
    this.client.stop();
    this.channel?.client.close();
    this.channel = undefined;
  }

  status(): CentralLinkStatus {
    const c = this.client.status();
    const cfg = this.store.type(CENTRAL_CONFIG_TYPE);
    return {
      address: this.o.address,
      ...(this.settings ? { centralCluster: this.settings.cluster } : {}),
      connected: c.connected,
      ...(c.connectedSince !== undefined ? { connectedSince: c.connectedSince } : {}),
      ...(c.lastError !== undefined ? { lastError: c.lastError } : {}),
      resources: cfg.accepted.size,
      configVersion: cfg.version,
      ...(cfg.lastRejected ? { lastRejected: { version: cfg.lastRejected.version, errors: cfg.lastRejected.errors } } : {}),
      remoteClustersSeeCentral: this.settings?.remoteClustersSeeCentral ?? false,
      ...(this.settings?.remoteClustersSeeCentral && this.settings.namespaces ? { seeCentralNamespaces: this.settings.namespaces } : {}),
      push: { connected: !!this.push && !this.push.closed, sent: this.pushCounts.sent, acked: this.pushCounts.acked, ...(this.pushCounts.lastNack ? { lastNack: this.pushCounts.lastNack } : {}) },
      ...(this.centralSub ? { centralDiscovery: this.centralSub.status() } : {}),
      sent: c.sent,
    };
  }

  /** One channel for all three streams; a new one only when our certificate changed. */
  private sharedChannel(): grpc.Client {
    const tls = this.o.tls();
    const key = tls.certChainPem + tls.rootBundlePem;
    if (this.channel && this.channel.key === key) return this.channel.client;
    this.channel?.client.close();
    this.identityFailure = undefined;
    const ch = peerChannel(tls, { notCluster: this.o.localCluster }, (why) => (this.identityFailure = why));
    // The central's replicas (`a:p,b:p`) are one gRPC target, as a proxy's --control-plane is.
    this.channel = { client: new grpc.Client(controlPlaneTarget(this.o.address, '--central'), ch.credentials, ch.options), key };
    return this.channel.client;
  }

  // --- central config ----------------------------------------------------------------------------

  private onAccepted(typeUrl: string): void {
    if (typeUrl === CENTRAL_MESH_TYPE) {
      const m = this.store.type(CENTRAL_MESH_TYPE).accepted.get('mesh')?.model;
      if (!m) return;
      const before = this.settings;
      this.settings = m;
      if (before?.remoteClustersSeeCentral !== m.remoteClustersSeeCentral || before?.cluster !== m.cluster) this.followDiscoverySetting();
      else if (String(before?.namespaces ?? '') !== String(m.namespaces ?? '')) this.centralSub?.refilter();
      this.o.onMeshSettings?.(m);
      return;
    }
    const resources: Resource[] = [...this.store.type(CENTRAL_CONFIG_TYPE).accepted.values()].map((r) => r.model);
    this.o.config.replaceAll(resources);
  }

  /** Asymmetric by default: the central's services are discovered only when it says so. */
  private followDiscoverySetting(): void {
    const m = this.settings;
    const want = !!m?.remoteClustersSeeCentral;
    if (this.centralSub && (!want || this.centralSub.name !== m?.cluster)) {
      this.centralSub.close();
      this.centralSub = undefined;
      this.logger.info({}, 'central services are no longer discovered here (remoteClustersSeeCentral is off)');
    }
    if (!want || !m || this.centralSub) return;
    this.centralSub = new PeerSubscriber({
      remote: { name: m.cluster, address: this.o.address, ...(m.network ? { network: m.network } : {}) },
      localCluster: this.o.localCluster,
      localNetwork: this.o.localNetwork,
      registry: this.o.registry,
      tls: this.o.tls,
      channel: () => this.sharedChannel(),
      ...(this.o.timers ? { timers: this.o.timers } : {}),
      ...(this.o.now ? { now: this.o.now } : {}),
      ...(this.o.backoff ? { backoff: this.o.backoff } : {}),
      logger: this.logger,
      ...(this.o.onGateways ? { onGateways: this.o.onGateways } : {}),
      namespaces: () => (this.settings?.namespaces ? new Set(this.settings.namespaces) : undefined),
    });
    this.centralSub.start();
    this.logger.info({ central: m.cluster }, `discovering the central cluster ${m.cluster}'s services (remoteClustersSeeCentral)`);
  }

  // --- our export, pushed ------------------------------------------------------------------------

  private openPush(): void {
    if (this.closed || (this.push && !this.push.closed)) return;
    const m = remoteExportMethod();
    const client = this.sharedChannel();
    const md = new grpc.Metadata();
    md.set(REPLICA_HEADER, this.replicaId);
    const call = client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, md) as PushCall;
    const p: PushState = { call, held: new Map(), ready: new Set(), sentOnce: new Set(), nonce: 0, closed: false };
    this.push = p;
    call.on('data', (req: DeltaDiscoveryRequestMsg) => this.onPushReply(p, req));
    const end = (why: string) => {
      if (p.closed) return;
      p.closed = true;
      if (why) this.logger.warn({ error: why }, `export push to the central control plane ended: ${why}`);
    };
    call.on('error', (e: grpc.ServiceError) => end(e.details || e.message));
    call.on('end', () => end(''));
    this.o.exporter.refresh(true);
  }

  private closePush(): void {
    const p = this.push;
    if (!p) return;
    p.closed = true;
    this.push = undefined;
    try {
      p.call.cancel();
    } catch {
      // gone
    }
  }

  private onPushReply(p: PushState, req: DeltaDiscoveryRequestMsg): void {
    const t = req.type_url ?? '';
    if (req.error_detail) {
      this.pushCounts.lastNack = req.error_detail.message ?? '';
      this.logger.warn({ typeUrl: t, error: this.pushCounts.lastNack }, 'the central control plane rejected part of our export');
      return;
    }
    if (req.response_nonce) {
      this.pushCounts.acked++;
      return;
    }
    // The central's opening message for a type: what it already holds.
    p.held.set(t, new Map(Object.entries(req.initial_resource_versions ?? {})));
    p.ready.add(t);
    if (PEERING_TYPES.every((x) => p.ready.has(x))) this.sendExport();
  }

  /** Registry changes come in bursts (proxies connecting): one diff per event-loop turn. */
  private queueExport(): void {
    if (this.exportQueued) return;
    this.exportQueued = true;
    setImmediate(() => {
      this.exportQueued = false;
      if (!this.closed) this.sendExport();
    });
  }

  /** Sends, per type, what differs from what the central holds (nothing when nothing changed). */
  private sendExport(): void {
    const p = this.push;
    if (!p || p.closed || !PEERING_TYPES.every((x) => p.ready.has(x))) return;
    this.o.exporter.refresh(true);
    for (const t of PEERING_TYPES) {
      const snap: TypeSnapshot | undefined = this.o.exporter.cache.get(EXPORT_KEY, t);
      const held = p.held.get(t)!;
      const resources = [...(snap?.resources.values() ?? [])].filter((r) => held.get(r.name) !== r.version);
      const removed = [...held.keys()].filter((n) => !snap?.resources.has(n));
      if (resources.length === 0 && removed.length === 0 && p.sentOnce.has(t)) continue;
      p.sentOnce.add(t);
      for (const r of resources) held.set(r.name, r.version);
      for (const n of removed) held.delete(n);
      const msg: DeltaDiscoveryResponseMsg = {
        type_url: t,
        system_version_info: snap?.version ?? '',
        resources: resources.map((r) => ({ name: r.name, version: r.version, resource: r.any })),
        removed_resources: removed,
        nonce: String(++p.nonce),
      };
      try {
        p.call.write(msg);
        this.pushCounts.sent++;
      } catch {
        // the stream is failing; the next connect starts over
      }
    }
  }
}
