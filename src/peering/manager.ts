/**
 * Keeps one PeerSubscriber per RemoteCluster resource of the ConfigStore (added, edited, deleted)
 * and the network → east-west gateways map the push context reads.
 */
import type { RemoteClusterSpec } from '../config/kinds/mesh.js';
import type { ConfigEvent, Kind, Resource } from '../config/types.js';
import type { GatewayAddress } from '../model/pushcontext.js';
import type { Timers } from '../mesh/timers.js';
import type { Registry } from '../registry/aggregate.js';
import type { XdsLogger } from '../xds/server.js';
import { PeerSubscriber, type PeerStatus, type RemoteClusterConfig } from './subscriber.js';
import type { PeerClientTls } from './tls.js';

export interface RemoteClusterStore {
  list(kind?: Kind): Resource[];
  subscribe(listener: (events: readonly ConfigEvent[], version: number) => void): () => void;
}

export type NetworkGateways = Readonly<Record<string, readonly GatewayAddress[]>>;

export interface PeeringManagerOptions {
  localCluster: string;
  /** This cluster's network ('' = one flat network). */
  localNetwork: string;
  /** This network's own east-west gateways (listed under the local network in networkGateways). */
  localGateways?: readonly GatewayAddress[];
  registry: Registry;
  /** Our root bundle and our control plane's certificate; a function is re-read on every reconnect (renewals). */
  tls: PeerClientTls | (() => PeerClientTls);
  store: RemoteClusterStore;
  timers?: Timers;
  now?: () => number;
  backoff?: (attempt: number) => number;
  logger?: XdsLogger;
}

const silent: XdsLogger = { debug() {}, info() {}, warn() {}, error() {} };

function configOf(r: Resource): RemoteClusterConfig {
  const spec = r.spec as RemoteClusterSpec;
  return { name: r.metadata.name, address: spec.address, ...(spec.network ? { network: spec.network } : {}) };
}

export class PeeringManager {
  private readonly o: PeeringManagerOptions;
  private readonly logger: XdsLogger;
  private readonly peers = new Map<string, PeerSubscriber>();
  private readonly peerGateways = new Map<string, { network: string; gateways: GatewayAddress[] }>();
  private localGateways: readonly GatewayAddress[];
  private localNetwork: string;
  private readonly gatewayListeners = new Set<(g: NetworkGateways) => void>();
  private readonly statusListeners = new Set<(s: PeerStatus) => void>();
  private gatewaysCache: NetworkGateways | undefined;
  private offStore: (() => void) | undefined;
  private closed = false;

  constructor(opts: PeeringManagerOptions) {
    this.o = opts;
    this.logger = opts.logger ?? silent;
    this.localGateways = opts.localGateways ?? [];
    this.localNetwork = opts.localNetwork;
  }

  /** Subscribes to every RemoteCluster in the store now and follows later edits. */
  start(): void {
    if (this.offStore || this.closed) return;
    this.offStore = this.o.store.subscribe((events) => {
      if (events.some((e) => (e.type === 'deleted' ? e.previous.kind : e.resource.kind) === 'RemoteCluster')) this.reconcile();
    });
    this.reconcile();
  }

  /** Brings the subscribers in line with the store's RemoteClusters. */
  reconcile(): void {
    if (this.closed) return;
    const wanted = new Map<string, RemoteClusterConfig>();
    for (const r of this.o.store.list('RemoteCluster')) {
      const c = configOf(r);
      if (c.name === this.o.localCluster) {
        this.logger.warn({ peer: c.name }, `RemoteCluster ${c.name} is this cluster itself; ignored`);
        continue;
      }
      wanted.set(c.name, c);
    }
    for (const [name, sub] of [...this.peers]) {
      if (wanted.has(name)) continue;
      this.peers.delete(name);
      sub.close();
      this.logger.info({ peer: name }, `RemoteCluster ${name} deleted: subscription closed and its shard removed`);
    }
    for (const [name, c] of wanted) {
      const existing = this.peers.get(name);
      if (existing) {
        existing.update(c);
        continue;
      }
      const sub = new PeerSubscriber({
        remote: c,
        localCluster: this.o.localCluster,
        localNetwork: this.localNetwork,
        registry: this.o.registry,
        tls: this.o.tls,
        ...(this.o.timers ? { timers: this.o.timers } : {}),
        ...(this.o.now ? { now: this.o.now } : {}),
        ...(this.o.backoff ? { backoff: this.o.backoff } : {}),
        logger: this.logger,
        onGateways: (peer, network, gateways) => this.setPeerGateways(peer, network, gateways),
        onStatus: (s) => {
          for (const l of this.statusListeners) l(s);
        },
      });
      this.peers.set(name, sub);
      this.logger.info({ peer: name, address: c.address, network: c.network }, `RemoteCluster ${name} added for service discovery only: subscribing to ${c.address}`);
      sub.start();
    }
  }

  /** For `isle status` / `istioctl remote-clusters`, sorted by name. */
  status(): PeerStatus[] {
    return [...this.peers.values()].map((p) => p.status()).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  peer(name: string): PeerSubscriber | undefined {
    return this.peers.get(name);
  }

  /**
   * network → east-west gateways, for PushContextInput.networkGateways. The local network is
   * always listed when it has a name (its list may be empty): that is what switches EDS to the
   * multi-network rule (src/generate/network.ts).
   */
  networkGateways(): NetworkGateways {
    if (this.gatewaysCache) return this.gatewaysCache;
    const m = new Map<string, Map<string, GatewayAddress>>();
    const add = (network: string, gws: readonly GatewayAddress[]) => {
      if (!network) return;
      let byAddr = m.get(network);
      if (!byAddr) m.set(network, (byAddr = new Map()));
      for (const g of gws) byAddr.set(`${g.address}:${g.port}`, g);
    };
    add(this.localNetwork, this.localGateways.map((g) => ({ ...g, cluster: g.cluster ?? this.o.localCluster })));
    for (const [, { network, gateways }] of [...this.peerGateways].sort(([a], [b]) => (a < b ? -1 : 1))) add(network, gateways);
    const out: Record<string, readonly GatewayAddress[]> = {};
    for (const net of [...m.keys()].sort()) out[net] = Object.freeze([...m.get(net)!.values()]);
    this.gatewaysCache = Object.freeze(out);
    return this.gatewaysCache;
  }

  /** Calls `listener` whenever networkGateways() changes (a push is due). */
  onGatewaysChange(listener: (g: NetworkGateways) => void): () => void {
    this.gatewayListeners.add(listener);
    return () => void this.gatewayListeners.delete(listener);
  }

  /** Every subscriber's state changes. */
  onStatus(listener: (s: PeerStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => void this.statusListeners.delete(listener);
  }

  /** This cluster's own network or gateways changed (MeshConfig, flags). */
  setLocal(network: string, gateways: readonly GatewayAddress[]): void {
    this.localNetwork = network;
    this.localGateways = [...gateways];
    this.gatewaysChanged();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.offStore?.();
    for (const sub of this.peers.values()) sub.close();
    this.peers.clear();
  }

  /** A peer's network and gateways (subscribers, and feeds the manager does not own: the central link, pushing remotes). */
  setPeerGateways(peer: string, network: string, gateways: readonly GatewayAddress[]): void {
    if (gateways.length === 0 && !this.peers.has(peer)) this.peerGateways.delete(peer);
    else this.peerGateways.set(peer, { network, gateways: [...gateways] });
    this.gatewaysChanged();
  }

  private gatewaysChanged(): void {
    const before = JSON.stringify(this.gatewaysCache ?? null);
    this.gatewaysCache = undefined;
    const after = this.networkGateways();
    if (JSON.stringify(after) === before) return;
    for (const l of this.gatewayListeners) {
      try {
        l(after);
      } catch (e) {
        this.logger.error({ err: e }, 'networkGateways listener failed');
      }
    }
  }
}
