/**
 * One discovery-only subscription: a delta ADS client of a peer's export feed that keeps the
 * peer's shard in our Registry.
 *
 * - Only DeltaDiscoveryRequests (subscriptions and ACK/NACKs) ever go to the peer: nothing of ours
 *   is sent, which is what "discovery only" means on the wire.
 * - The shard is replaced only once every type has answered after (re)connecting, so a reconnect
 *   never shows a half-loaded peer. Reconnects carry `initial_resource_versions`, so a peer that
 *   comes back unchanged sends (almost) nothing.
 * - While the feed is down the last shard stays, marked stale (docs/decisions/0006-registry.md).
 * - Everything the peer says about itself is checked: endpoints and workloads must be the peer's
 *   own cluster (a peer cannot inject endpoints for us or a third cluster).
 */
import type * as grpc from '@grpc/grpc-js';
import { exponentialBackoff, type Backoff } from '../mesh/backoff.js';
import { controlPlaneTarget } from '../mesh/target.js';
import type { Timers } from '../mesh/timers.js';
import type { GatewayAddress } from '../model/pushcontext.js';
import type { Registry } from '../registry/aggregate.js';
import type { Shard } from '../registry/shard.js';
import { DiscoveryClient, ResourceStore, type NackEvent, type SentRequests } from '../xds/client/index.js';
import type { NodeMsg } from '../xds/protos.js';
import type { XdsLogger } from '../xds/server.js';
import { feedGateways, feedNetwork, feedShard } from './shard.js';
import { describeFeedError, peerChannel, type PeerClientTls } from './tls.js';
import { PEERING_PATH, PEERING_TYPES, peeringDecoders, type PeeringResources } from './wire.js';

export type { SentRequests } from '../xds/client/index.js';

export type PeerState = 'connecting' | 'synced' | 'stale' | 'error';

/** A RemoteCluster resource, reduced to what the subscription needs. */
export interface RemoteClusterConfig {
  /** The peer's cluster name (RemoteCluster metadata.name); its certificate must say the same. */
  name: string;
  /** host:port of the peer control plane's :15012. */
  address: string;
  /** The peer's network as configured here; the peer's own announcement wins when both exist. */
  network?: string;
}

export interface PeerStatus {
  name: string;
  address: string;
  /** The network the peer's endpoints are on (announced, else configured, else ''). */
  network: string;
  state: PeerState;
  lastError?: string;
  /** Wall-clock ms of the last complete update applied to the registry. */
  lastSyncTime?: number;
  connectedSince?: number;
  services: number;
  endpoints: number;
  workloads: number;
  gateways: GatewayAddress[];
  /** Failed attempts since the last successful sync. */
  failures: number;
  warnings: string[];
}

export interface PeerSubscriberOptions {
  remote: RemoteClusterConfig;
  localCluster: string;
  localNetwork?: string;
  registry: Registry;
  /** A function is re-read on every (re)connect, so a renewed control-plane certificate is used. */
  tls: PeerClientTls | (() => PeerClientTls);
  /** A channel owned by someone else (the central link shares its connection); `tls` is then unused. */
  channel?: () => grpc.Client;
  timers?: Timers;
  /** Wall clock (ms) for lastSyncTime. */
  now?: () => number;
  /** Delay before reconnect attempt `n` (1-based) in ms. Default: mesh back-off from 300 ms. */
  backoff?: Backoff;
  logger?: XdsLogger;
  /** The peer's network and gateways, whenever they change (and `[]` when it is removed). */
  onGateways?: (peer: string, network: string, gateways: GatewayAddress[]) => void;
  /** Every state or counts change. */
  onStatus?: (status: PeerStatus) => void;
  /** Only these namespaces of the peer enter the registry (re-read on every rebuild); undefined: all. */
  namespaces?: () => ReadonlySet<string> | undefined;
}

const silent: XdsLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** The peering default: quicker first retries than a proxy's (few subscribers, each worth a lot). */
export const PEER_BACKOFF: Backoff = exponentialBackoff({ baseMs: 300 });

export class PeerSubscriber {
  readonly name: string;
  private remote: RemoteClusterConfig;
  private readonly o: PeerSubscriberOptions;
  private readonly now: () => number;
  private readonly logger: XdsLogger;
  private readonly store: ResourceStore<PeeringResources>;
  private readonly client: DiscoveryClient<PeeringResources>;
  private closed = false;
  private started = false;
  private st: PeerStatus;
  private identityFailure: string | undefined;
  private hasShard = false;
  private synced = false;
  /** Types answered on the current stream: the shard is replaced only once all have. */
  private readonly received = new Set<string>();
  private rebuildQueued = false;
  private lastGateways = '';

  constructor(opts: PeerSubscriberOptions) {
    if (opts.remote.name === opts.localCluster) throw new Error(`RemoteCluster ${opts.remote.name} is this cluster itself`);
    this.o = opts;
    this.name = opts.remote.name;
    this.remote = { ...opts.remote };
    this.now = opts.now ?? Date.now;
    this.logger = opts.logger ?? silent;
    this.st = {
      name: this.name,
      address: this.remote.address,
      network: this.remote.network ?? '',
      state: 'connecting',
      services: 0,
      endpoints: 0,
      workloads: 0,
      gateways: [],
      failures: 0,
      warnings: [],
    };
    this.store = new ResourceStore<PeeringResources>({ decoders: peeringDecoders(this.name), order: PEERING_TYPES as (keyof PeeringResources)[], now: this.now });
    const node: NodeMsg = {
      id: `isle-control-plane.${opts.localCluster}`,
      cluster: opts.localCluster,
      metadata: { CLUSTER_ID: opts.localCluster, NETWORK: opts.localNetwork ?? '', ISLE_ROLE: 'peer-subscriber', DISCOVERY_ONLY: 'true' },
      user_agent_name: 'isle-peering',
    };
    this.client = new DiscoveryClient<PeeringResources>({
      channel: () => {
        if (this.o.channel) return { address: this.remote.address, shared: this.o.channel() };
        this.identityFailure = undefined;
        const tls = typeof this.o.tls === 'function' ? this.o.tls() : this.o.tls;
        const ch = peerChannel(tls, this.name, (why) => (this.identityFailure = why));
        // A peer's replicas (`a:p,b:p`) are one gRPC target: a dead replica's reconnect goes to another.
        return { address: controlPlaneTarget(this.remote.address, `RemoteCluster ${this.name} address`), credentials: ch.credentials, options: ch.options, key: tls.certChainPem + tls.rootBundlePem };
      },
      path: PEERING_PATH,
      node,
      store: this.store,
      onStreamOpen: () => {
        this.received.clear();
        this.synced = false;
        if (!this.hasShard) this.setState('connecting');
      },
      onAccepted: (typeUrl) => this.onAccepted(typeUrl),
      describeError: (e) => this.describe(e),
      backoff: opts.backoff ?? PEER_BACKOFF,
      ...(opts.timers ? { timers: opts.timers } : {}),
      now: this.now,
    });
    this.client.on('disconnected', (why: string) => this.onDown(why));
    this.client.on('nack', (e: NackEvent) => {
      const msg = e.errors.join('; ');
      this.logger.warn({ peer: this.name, typeUrl: e.typeUrl, error: msg }, `${this.where()}: rejected an update`);
      this.st.warnings = [`rejected update of ${e.typeUrl}: ${msg}`];
    });
    this.client.on('handler-error', (e: unknown) => this.logger.error({ peer: this.name, err: e }, `${this.where()}: applying an update failed`));
  }

  /** What this subscriber wrote to the peer: only subscriptions and ACK/NACKs exist. */
  get sent(): SentRequests {
    return this.client.sent;
  }

  start(): void {
    if (this.closed || this.started) return;
    this.started = true;
    this.client.start();
  }

  status(): PeerStatus {
    return { ...this.st, gateways: [...this.st.gateways], warnings: [...this.st.warnings] };
  }

  /** A RemoteCluster edit: a new address reconnects; a new network re-tags the endpoints. */
  update(remote: RemoteClusterConfig): void {
    const addressChanged = remote.address !== this.remote.address;
    const networkChanged = (remote.network ?? '') !== (this.remote.network ?? '');
    this.remote = { ...remote };
    this.st.address = remote.address;
    if (addressChanged) {
      this.logger.info({ peer: this.name, address: remote.address }, `peer ${this.name}: address changed, reconnecting`);
      this.client.reconnect();
    } else if (networkChanged && this.hasShard) {
      this.rebuild();
    }
  }

  /** The namespace filter changed: rebuild the shard from what the feed already holds (no reconnect). */
  refilter(): void {
    if (this.hasShard && !this.closed) this.rebuild();
  }

  /** Stops the subscription and removes the peer's shard and gateways. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.stop();
    this.o.registry.removeShard(this.name);
    this.o.onGateways?.(this.name, this.st.network, []);
    this.logger.info({ peer: this.name }, `peer ${this.name}: subscription closed, its services and endpoints removed`);
  }

  // --- connection --------------------------------------------------------------------------------

  private where(): string {
    return `peer ${this.name} at ${this.remote.address}`;
  }

  private describe(e: grpc.ServiceError | undefined): string {
    return describeFeedError(this.where(), e, this.identityFailure);
  }

  private onDown(why: string): void {
    if (this.closed) return;
    // The same failure on every retry is logged once, at debug after that.
    const repeated = this.st.lastError === why;
    this.st.failures++;
    this.st.lastError = why;
    delete this.st.connectedSince;
    if (this.hasShard) {
      this.o.registry.markStale(this.name, true);
      this.setState('stale');
      if (repeated) this.logger.debug({ peer: this.name, error: why }, why);
      else this.logger.warn({ peer: this.name, error: why }, `${why}; keeping its last known endpoints (stale)`);
    } else {
      this.setState('error');
      if (repeated) this.logger.debug({ peer: this.name, error: why }, why);
      else this.logger.error({ peer: this.name, error: why }, why);
    }
  }

  // --- responses ---------------------------------------------------------------------------------

  private onAccepted(typeUrl: string): void {
    this.received.add(typeUrl);
    if (!this.synced && PEERING_TYPES.every((t) => this.received.has(t))) {
      this.synced = true;
      this.st.failures = 0;
      this.st.connectedSince = this.now();
      delete this.st.lastError;
      this.logger.info({ peer: this.name, address: this.remote.address }, `peer ${this.name}: synced`);
      this.rebuild();
    } else if (this.synced) {
      this.queueRebuild();
    }
  }

  private queueRebuild(): void {
    if (this.rebuildQueued) return;
    this.rebuildQueued = true;
    // The export flushes its types back to back: one rebuild for the lot.
    setImmediate(() => {
      this.rebuildQueued = false;
      if (!this.closed && this.synced) this.rebuild();
    });
  }

  private rebuild(): void {
    const shard = this.buildShard();
    this.o.registry.setShard(this.name, shard);
    this.hasShard = true;
    this.st.services = shard.services.size;
    this.st.endpoints = [...shard.endpoints.values()].reduce((n, l) => n + l.length, 0);
    this.st.workloads = shard.workloads.length;
    this.st.lastSyncTime = this.now();
    this.publishGateways();
    this.setState('synced', true);
  }

  private publishGateways(): void {
    const network = feedNetwork(this.store, this.remote.network);
    const gateways = feedGateways(this.name, this.store);
    this.st.network = network;
    this.st.gateways = gateways;
    const key = JSON.stringify([network, gateways]);
    if (key === this.lastGateways) return;
    this.lastGateways = key;
    this.o.onGateways?.(this.name, network, gateways);
  }

  /** The peer's shard, in buildShard's shape: sorted, every service with an endpoints entry. */
  buildShard(): Shard {
    const { shard, warnings } = feedShard(this.name, this.store, this.remote.network, this.o.namespaces?.());
    this.st.warnings = warnings;
    return shard;
  }

  private setState(state: PeerState, force = false): void {
    if (this.st.state === state && !force) return;
    this.st.state = state;
    this.o.onStatus?.(this.status());
  }
}
