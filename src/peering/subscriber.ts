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
import * as grpc from '@grpc/grpc-js';
import { realTimers, type Timers } from '../mesh/timers.js';
import type { GatewayAddress } from '../model/pushcontext.js';
import type { Registry } from '../registry/aggregate.js';
import { LABEL_NETWORK, type Endpoint, type RegistryProblem, type Service, type Workload } from '../registry/model.js';
import type { Shard } from '../registry/shard.js';
import type { DeltaDiscoveryRequestMsg, DeltaDiscoveryResponseMsg, NodeMsg } from '../xds/protos.js';
import type { XdsLogger } from '../xds/server.js';
import { peeringMethodDefinition } from './export.js';
import { isUntrustedChainError } from './identity.js';
import { peerChannel, type PeerClientTls } from './tls.js';
import {
  clusterFromWire,
  endpointFromWire,
  endpointsFromWire,
  PEER_CLUSTER_TYPE,
  PEER_ENDPOINTS_TYPE,
  PEER_SERVICE_TYPE,
  PEER_WORKLOAD_TYPE,
  PEERING_TYPES,
  serviceFromWire,
  workloadFromWire,
  WireError,
  type ClusterWire,
  type EndpointsWire,
  type ServiceWire,
} from './wire.js';

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

/** Counts of what this subscriber wrote to the peer: only subscriptions and ACK/NACKs exist. */
export interface SentRequests {
  subscribe: number;
  ack: number;
  nack: number;
}

export interface PeerSubscriberOptions {
  remote: RemoteClusterConfig;
  localCluster: string;
  localNetwork?: string;
  registry: Registry;
  /** A function is re-read on every (re)connect, so a renewed control-plane certificate is used. */
  tls: PeerClientTls | (() => PeerClientTls);
  timers?: Timers;
  /** Wall clock (ms) for lastSyncTime. */
  now?: () => number;
  /** Delay before reconnect attempt `n` (1-based) in ms. Default 250 ms doubling to 30 s, ±20 %. */
  backoff?: (attempt: number) => number;
  logger?: XdsLogger;
  /** The peer's network and gateways, whenever they change (and `[]` when it is removed). */
  onGateways?: (peer: string, network: string, gateways: GatewayAddress[]) => void;
  /** Every state or counts change. */
  onStatus?: (status: PeerStatus) => void;
}

export function defaultBackoff(attempt: number): number {
  const base = Math.min(30_000, 250 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + 0.4 * Math.random()));
}

const silent: XdsLogger = { debug() {}, info() {}, warn() {}, error() {} };

interface TypeData {
  versions: Map<string, string>;
  received: boolean;
}

export class PeerSubscriber {
  readonly name: string;
  private remote: RemoteClusterConfig;
  private readonly o: PeerSubscriberOptions;
  private readonly timers: Timers;
  private readonly now: () => number;
  private readonly backoff: (attempt: number) => number;
  private readonly logger: XdsLogger;
  private client: grpc.Client | undefined;
  private clientTls = '';
  private call: grpc.ClientDuplexStream<DeltaDiscoveryRequestMsg, DeltaDiscoveryResponseMsg> | undefined;
  private retryTimer: unknown;
  private closed = false;
  private st: PeerStatus;
  private identityFailure: string | undefined;
  private hasShard = false;
  private synced = false;
  private rebuildQueued = false;
  private lastGateways = '';
  readonly sent: SentRequests = { subscribe: 0, ack: 0, nack: 0 };

  private readonly types = new Map<string, TypeData>(PEERING_TYPES.map((t) => [t, { versions: new Map(), received: false }]));
  private info: ClusterWire | undefined;
  private readonly workloads = new Map<string, Workload>();
  private readonly services = new Map<string, ServiceWire>();
  private readonly endpoints = new Map<string, EndpointsWire>();

  constructor(opts: PeerSubscriberOptions) {
    if (opts.remote.name === opts.localCluster) throw new Error(`RemoteCluster ${opts.remote.name} is this cluster itself`);
    this.o = opts;
    this.name = opts.remote.name;
    this.remote = { ...opts.remote };
    this.timers = opts.timers ?? realTimers;
    this.now = opts.now ?? Date.now;
    this.backoff = opts.backoff ?? defaultBackoff;
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
  }

  start(): void {
    if (this.closed || this.call) return;
    this.connect();
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
      this.teardownCall();
      this.client?.close();
      this.client = undefined;
      this.timers.clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.connect();
    } else if (networkChanged && this.hasShard) {
      this.rebuild();
    }
  }

  /** Stops the subscription and removes the peer's shard and gateways. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.timers.clearTimeout(this.retryTimer);
    this.teardownCall();
    this.client?.close();
    this.client = undefined;
    this.o.registry.removeShard(this.name);
    this.o.onGateways?.(this.name, this.st.network, []);
    this.logger.info({ peer: this.name }, `peer ${this.name}: subscription closed, its services and endpoints removed`);
  }

  // --- connection --------------------------------------------------------------------------------

  private where(): string {
    return `peer ${this.name} at ${this.remote.address}`;
  }

  private connect(): void {
    if (this.closed) return;
    this.identityFailure = undefined;
    const tls = typeof this.o.tls === 'function' ? this.o.tls() : this.o.tls;
    const tlsKey = tls.certChainPem + tls.rootBundlePem;
    if (this.client && tlsKey !== this.clientTls) {
      this.client.close();
      this.client = undefined;
    }
    if (!this.client) {
      const ch = peerChannel(tls, this.name, (why) => (this.identityFailure = why));
      this.client = new grpc.Client(this.remote.address, ch.credentials, ch.options);
      this.clientTls = tlsKey;
    }
    for (const t of this.types.values()) t.received = false;
    this.synced = false;
    if (!this.hasShard) this.setState('connecting');
    const m = peeringMethodDefinition();
    const call = this.client.makeBidiStreamRequest(
      m.path,
      m.requestSerialize as (r: DeltaDiscoveryRequestMsg) => Buffer,
      m.responseDeserialize as (b: Buffer) => DeltaDiscoveryResponseMsg,
    );
    this.call = call;
    let ended = false;
    const fail = (why: string) => {
      if (ended || this.call !== call) return;
      ended = true;
      this.call = undefined;
      this.onDown(why);
    };
    call.on('data', (r: DeltaDiscoveryResponseMsg) => {
      if (this.call === call) this.onResponse(call, r);
    });
    call.on('error', (e: grpc.ServiceError) => fail(this.describe(e)));
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) fail(`${this.where()} closed the feed`);
    });
    call.on('end', () => fail(`${this.where()} closed the feed`));

    const node: NodeMsg = {
      id: `isle-control-plane.${this.o.localCluster}`,
      cluster: this.o.localCluster,
      metadata: { CLUSTER_ID: this.o.localCluster, NETWORK: this.o.localNetwork ?? '', ISLE_ROLE: 'peer-subscriber', DISCOVERY_ONLY: 'true' },
      user_agent_name: 'isle-peering',
    };
    let first = true;
    for (const [typeUrl, t] of this.types) {
      const req: DeltaDiscoveryRequestMsg = {
        type_url: typeUrl,
        resource_names_subscribe: ['*'],
        initial_resource_versions: Object.fromEntries(t.versions),
      };
      if (first) req.node = node;
      first = false;
      this.write(call, req, 'subscribe');
    }
  }

  private write(call: grpc.ClientDuplexStream<DeltaDiscoveryRequestMsg, DeltaDiscoveryResponseMsg>, req: DeltaDiscoveryRequestMsg, kind: keyof SentRequests): void {
    try {
      call.write(req);
      this.sent[kind]++;
    } catch (e) {
      this.logger.warn({ peer: this.name, err: e }, `${this.where()}: write failed`);
    }
  }

  private describe(e: grpc.ServiceError): string {
    const details = e.details || e.message;
    if (this.identityFailure) {
      return `${this.where()} is not who the RemoteCluster says: ${this.identityFailure}`;
    }
    if (e.code === grpc.status.PERMISSION_DENIED) return `${this.where()} refused our subscription: ${details}`;
    const cause = details
      .replace(/^No connection established\.\s*Last error:\s*/i, '')
      .replace(/^Error:\s*/, '')
      .replace(/\.?\s*Resolution note:\s*$/, '');
    if (e.code === grpc.status.UNAVAILABLE && isUntrustedChainError(details)) {
      return `${this.where()} presented a certificate not signed by our root (${cause}); peering clusters must share one root CA`;
    }
    return `${this.where()}: ${grpc.status[e.code] ?? e.code}: ${cause}`;
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
    const delay = this.backoff(this.st.failures);
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, delay);
  }

  private teardownCall(): void {
    const c = this.call;
    this.call = undefined;
    if (c) {
      try {
        c.cancel();
      } catch {
        // already gone
      }
    }
  }

  // --- responses ---------------------------------------------------------------------------------

  private onResponse(call: grpc.ClientDuplexStream<DeltaDiscoveryRequestMsg, DeltaDiscoveryResponseMsg>, r: DeltaDiscoveryResponseMsg): void {
    const t = this.types.get(r.type_url);
    if (!t) {
      this.write(call, { type_url: r.type_url, response_nonce: r.nonce, error_detail: { code: grpc.status.UNIMPLEMENTED, message: `type ${r.type_url} was not asked for` } }, 'nack');
      return;
    }
    try {
      this.apply(r, t);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      this.logger.warn({ peer: this.name, typeUrl: r.type_url, error: msg }, `${this.where()}: rejected an update`);
      this.st.warnings = [`rejected update of ${r.type_url}: ${msg}`];
      this.write(call, { type_url: r.type_url, response_nonce: r.nonce, error_detail: { code: grpc.status.INVALID_ARGUMENT, message: msg } }, 'nack');
      return;
    }
    this.write(call, { type_url: r.type_url, response_nonce: r.nonce }, 'ack');
    t.received = true;
    if (!this.synced && [...this.types.values()].every((x) => x.received)) {
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

  /** Decodes everything first, then commits: a bad resource rejects the whole response (NACK). */
  private apply(r: DeltaDiscoveryResponseMsg, t: TypeData): void {
    const what = (name: string) => `${this.name} ${r.type_url.slice(r.type_url.lastIndexOf('.') + 1)} ${name}`;
    const commits: (() => void)[] = [];
    for (const res of r.resources) {
      if (!res.resource) throw new WireError(`${what(res.name)}: no resource`);
      if (res.resource.type_url !== r.type_url) throw new WireError(`${what(res.name)}: carries ${res.resource.type_url}`);
      const name = res.name;
      switch (r.type_url) {
        case PEER_CLUSTER_TYPE: {
          const c = clusterFromWire(res.resource, what(name));
          if (c.name !== this.name) throw new WireError(`${what(name)}: the feed describes cluster ${c.name}, but this is the feed of ${this.name}`);
          commits.push(() => (this.info = c));
          break;
        }
        case PEER_WORKLOAD_TYPE: {
          const w = workloadFromWire(res.resource, what(name));
          commits.push(() => this.workloads.set(name, w));
          break;
        }
        case PEER_SERVICE_TYPE: {
          const s = serviceFromWire(res.resource, what(name));
          commits.push(() => this.services.set(name, s));
          break;
        }
        case PEER_ENDPOINTS_TYPE: {
          const e = endpointsFromWire(res.resource, what(name));
          commits.push(() => this.endpoints.set(name, e));
          break;
        }
      }
      commits.push(() => t.versions.set(name, res.version));
    }
    for (const name of r.removed_resources ?? []) {
      commits.push(() => {
        t.versions.delete(name);
        if (r.type_url === PEER_CLUSTER_TYPE && this.info?.name === name) this.info = undefined;
        else if (r.type_url === PEER_WORKLOAD_TYPE) this.workloads.delete(name);
        else if (r.type_url === PEER_SERVICE_TYPE) this.services.delete(name);
        else if (r.type_url === PEER_ENDPOINTS_TYPE) this.endpoints.delete(name);
      });
    }
    for (const c of commits) c();
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

  private peerNetwork(): string {
    return this.info?.network || this.remote.network || '';
  }

  private publishGateways(): void {
    const network = this.peerNetwork();
    const gateways: GatewayAddress[] = (this.info?.gateways ?? []).map((g) => ({ address: g.address, port: g.port, cluster: this.name }));
    this.st.network = network;
    this.st.gateways = gateways;
    const key = JSON.stringify([network, gateways]);
    if (key === this.lastGateways) return;
    this.lastGateways = key;
    this.o.onGateways?.(this.name, network, gateways);
  }

  /** The peer's shard, in buildShard's shape: sorted, every service with an endpoints entry. */
  buildShard(): Shard {
    const peer = this.name;
    const problems: RegistryProblem[] = [];
    const network = this.peerNetwork();
    const warnings: string[] = [];
    if (this.info?.network && this.remote.network && this.info.network !== this.remote.network) {
      warnings.push(`RemoteCluster ${peer} says network ${this.remote.network}, the peer announces ${this.info.network}; using ${this.info.network}`);
    }
    this.st.warnings = warnings;
    const withNetwork = <T extends { network: string; labels: Readonly<Record<string, string>> }>(x: T): T => {
      if (x.network || !network) return x;
      return { ...x, network, labels: x.labels[LABEL_NETWORK] ? x.labels : { ...x.labels, [LABEL_NETWORK]: network } };
    };

    const workloads: Workload[] = [];
    for (const [key, w] of [...this.workloads].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (w.cluster !== peer) {
        problems.push({ cluster: peer, resource: key, message: `peer ${peer} exported workload ${key} of cluster ${w.cluster}; ignored (a peer exports only its own cluster)` });
        continue;
      }
      workloads.push(withNetwork(w));
    }
    const services = new Map<string, Service>();
    const endpoints = new Map<string, Endpoint[]>();
    for (const hostname of [...this.services.keys()].sort()) {
      const s = this.services.get(hostname)!;
      services.set(hostname, {
        ...s,
        hostname,
        ports: s.ports,
        addresses: s.addresses,
        clusterAddresses: { [peer]: s.addresses },
        clusters: [peer],
      });
      const eps: Endpoint[] = [];
      for (const e of this.endpoints.get(hostname)?.endpoints ?? []) {
        if (e.cluster !== peer) {
          problems.push({ cluster: peer, hostname, resource: e.workload, message: `peer ${peer} exported an endpoint of ${hostname} in cluster ${e.cluster}; ignored (a peer exports only its own cluster)` });
          continue;
        }
        eps.push(withNetwork(endpointFromWire(hostname, e, e.network)));
      }
      endpoints.set(hostname, eps);
    }
    return { cluster: peer, origin: 'peer', services, endpoints, workloads, problems };
  }

  private setState(state: PeerState, force = false): void {
    if (this.st.state === state && !force) return;
    this.st.state = state;
    this.o.onStatus?.(this.status());
  }
}
