/**
 * The push pipeline (DESIGN §3), Istio-pilot style:
 *
 *   ConfigStore events ─┐
 *   Registry changes ───┴→ Debouncer (quiet / max) → PushContext (immutable) → push queue
 *                                                    → per-proxy generation → SnapshotCache → ADS
 *
 * - A proxy that connects gets its snapshot synchronously, inside the server's `connect` event,
 *   from the current PushContext; a sidecar is also auto-registered through the WorkloadGroup of
 *   its verified identity (registry/workloadgroup.ts: labels, ports, network and locality from the
 *   group, only the proven address from the proxy) and unregistered (after the AutoRegistry's
 *   grace period) when its last stream closes. A WorkloadGroup change re-resolves every connected
 *   sidecar; one whose group went is removed at once (revocation, not a reconnect).
 * - Endpoint-only changes take the fast path: the PushContext is rebuilt (cheap: indexes only,
 *   nothing serialized) and only EDS is regenerated per proxy; CDS/LDS/RDS keep their version and
 *   are not resent. CDS embeds the expected SPIFFE ids of each service's endpoints, so when an
 *   endpoint change alters a host's identity set CDS is regenerated too. A proxy whose own inbound
 *   ports changed (an endpoint at its address appeared or went) gets a full regeneration.
 * - Only kinds the generators read trigger config pushes (VirtualService, DestinationRule,
 *   MeshConfig); Service / ServiceEntry / WorkloadEntry changes arrive as registry changes.
 *   Per proxy, a type whose resources did not change keeps its version, so the cache wakes nobody
 *   and nothing is sent: unaffected proxies are not pushed.
 * - Serialize once: generateResources caches shared groups per PushContext, so each shared
 *   resource is encoded once per push and the same bytes go to every proxy; across pushes, a
 *   resource whose content did not move is the previous object (snapshots.ts `carryOver`).
 * - Affected types (ADR 0120): a full push regenerates per proxy only the types its changes can
 *   reach (generate/affected.ts: a VirtualService change RDS, a DestinationRule change CDS/EDS).
 * - The push queue is per proxy with merged scopes (a newer push folds into a proxy still waiting
 *   for an older one) and is drained in chunks, yielding to the event loop between them, so ACKs
 *   and new connections are served while thousands of proxies are regenerated.
 */
import type { TelemetrySpec } from '../config/kinds/telemetry.js';
import type { Logger } from 'pino';
import type { ConfigStore } from '../config/store.js';
import type { ConfigEvent, Kind, Resource } from '../config/types.js';
import type { DestinationRuleSpec, GatewaySpec, VirtualServiceSpec, WorkloadGroupSpec } from '../config/kinds/networking.js';
import type { AuthorizationPolicySpec, PeerAuthenticationSpec } from '../config/kinds/security.js';
import type { EnvoyFilterSpec } from '../config/kinds/envoyfilter.js';
import type { AutoRegistry, RegistrationHandle } from '../registry/autoregister.js';
import type { Registry, RegistryChange } from '../registry/aggregate.js';
import { resolveWorkloadGroup, type RegistrationClaim } from '../registry/workloadgroup.js';
import type { SnapshotCache } from '../xds/cache.js';
import { carryOver, endpointOnlyPush, generateTypeSnapshot, proxyScope } from './snapshots.js';
import { affectedTypes } from '../generate/affected.js';
import type { AckEvent, NackEvent, ProxyStatus, SendEvent, XdsServer } from '../xds/server.js';
import { SERVED_TYPES, shortTypeName } from '../mesh/typeurls.js';
import { proxyFromNodeInfo } from './auth.js';
import { Debouncer, type FlushInfo } from './debounce.js';
import { ISLE_XDS_VERSION, type ControlPlaneMetrics } from './metrics.js';
import { proxyDefaultsFrom, withInbound, type Proxy } from '../model/proxy.js';
import { endpointsFor, meshInfoFrom, pushContextFromRegistry, type GatewayCredential, type PushContext } from '../model/pushcontext.js';
import { CONNECT_REQUEST, PushRequest, type PushReason } from '../model/pushrequest.js';
import type { MeshSettingsSource } from '../mesh/settings.js';
import type { NodeInfo } from '../xds/server.js';
import type { NetworkGateways } from '../peering/manager.js';
import type { Timers } from '../mesh/timers.js';

/** Config kinds the generators read today; others (policy, namespaces…) push nobody yet. */
export const PUSH_KINDS: ReadonlySet<Kind> = new Set<Kind>(['VirtualService', 'DestinationRule', 'MeshConfig', 'PeerAuthentication', 'AuthorizationPolicy', 'Gateway', 'Telemetry', 'EnvoyFilter']);

interface ProxyEntry {
  readonly key: string;
  readonly node: NodeInfo;
  /** The proxy from its node and the mesh defaults; recomputed when the mesh settings change. */
  base: Proxy;
  readonly streams: Set<string>;
  registration?: RegistrationHandle;
  /** What the proxy asked to register as (re-resolved when WorkloadGroups change). */
  claim?: RegistrationClaim;
  /** JSON of the inbound ports of the last generation: when it moves, the fast path is not enough. */
  inboundFp?: string;
  /** typeUrl → the version carrying a change the proxy has not ACKed yet. */
  readonly awaiting: Map<string, { version: string; seenAt: number }>;
}

/** Istio's node metadata naming the WorkloadGroup to auto-register with. */
function groupOf(md: Readonly<Record<string, unknown>> | undefined): string | undefined {
  const g = md?.['AUTO_REGISTER_GROUP'];
  return typeof g === 'string' && g !== '' ? g : undefined;
}

export interface PushRecord {
  /** PushContext version. */
  version: string;
  kind: 'full' | 'eds';
  reasons: PushReason[];
  /** Changes folded by the debouncer. */
  changes: number;
  debounceMs: number;
  cause: FlushInfo['cause'];
  /** Proxies queued by this push. */
  proxies: number;
}

export interface PusherOptions {
  registry: Registry;
  store: Pick<ConfigStore, 'subscribe' | 'list'>;
  cache: SnapshotCache;
  autoRegistry?: AutoRegistry;
  /** Mesh info, proxy defaults and debounce: read at every push and followed live. */
  mesh: MeshSettingsSource;
  trustBundlePem: string;
  timers: Timers;
  metrics: ControlPlaneMetrics;
  logger: Logger;
  /** Proxies generated per event-loop turn. Default 100; Infinity drains synchronously. */
  chunkSize?: number;
  /**
   * At most this many proxies have a push sent and not yet ACKed (Istio's PILOT_PUSH_THROTTLE,
   * 100): the queue waits for ACKs instead of flooding sockets, and a proxy with a push in flight
   * keeps its newer requests merged in the queue until it answers. Infinity: no bound.
   */
  maxInFlight?: number;
  /**
   * The count bound for endpoint-only (incremental EDS) pushes; default none. Their responses carry
   * only the changed load assignments (hundreds of bytes), so the flood `maxInFlight` guards
   * against cannot happen, and waiting for a round of ACKs is most of an endpoint change's tail
   * latency (failover speed): at 2,000 proxies a bound of 1,000 made the second half wait for the
   * first half's ACKs (ADR 0124). What does bound them is `maxInFlightBytesIncremental`.
   */
  maxInFlightIncremental?: number;
  /**
   * Endpoint-only pushes stop starting proxies while the responses sent and not yet answered hold
   * this many bytes of resources (default 32 MiB): one endpoint change is ~600 B per proxy, but a
   * push merging many changes sends a SotW proxy every changed assignment (up to the whole EDS,
   * ~450 KB at 1,000 services), and that must not be buffered for thousands of proxies at once.
   */
  maxInFlightBytesIncremental?: number;
  /** A push not answered in this long frees its slot anyway (default 5 s): a stuck proxy cannot stall the queue. */
  inFlightTimeoutMs?: number;
  /** network → its east-west gateways (peering); read at every push. Absent: one flat network. */
  networkGateways?: () => NetworkGateways;
  /**
   * Config events that were debounced upstream (the central control plane's); they skip the
   * local quiet period, as do registry changes of any shard but the local one (issue 18).
   */
  settledUpstream?: (e: ConfigEvent) => boolean;
  /**
   * Start held: proxies that connect are registered but get no config until `settle()` (the
   * registry is not complete yet after a start, and a partial view would remove endpoints they
   * serve from). Default false.
   */
  held?: boolean;
  /** Gateway TLS credentials (`<ns>/<name>`); read at every push (controlplane/credentials.ts). */
  credentials?: () => ReadonlyMap<string, GatewayCredential>;
}

export class Pusher {
  private readonly o: PusherOptions;
  private readonly debouncer: Debouncer<PushRequest>;
  private readonly proxies = new Map<string, ProxyEntry>();
  /** The push queue: proxy key → its pending requests merged, in arrival order. */
  private readonly queue = new Map<string, PushRequest>();
  private current: PushContext;
  private seq = 0;
  /** A build failed since `current`: the hosts its request carried were not pushed. */
  private hostsLost = false;
  private drainHandle: NodeJS.Immediate | undefined;
  private drainStartedAt: number | undefined;
  private drainFull = false;
  private readonly offs: (() => void)[] = [];
  private readonly history: PushRecord[] = [];
  private stopped = false;
  private held: boolean;
  private readonly chunkSize: number;
  private readonly maxInFlight: number;
  private readonly maxInFlightIncremental: number;
  private readonly maxInFlightBytesIncremental: number;
  /** Proxies with a response sent and not answered: typeUrl → nonce awaited, the resource bytes sent, and the slot's timeout. */
  private readonly inFlight = new Map<string, { nonces: Map<string, string>; bytes: number; timer: unknown }>();
  /** Resource bytes of the responses in `inFlight`. */
  private inFlightBytes = 0;
  /** Pushes built so far (PushContexts after the initial one). */
  pushCount = 0;

  constructor(opts: PusherOptions) {
    this.o = opts;
    this.chunkSize = opts.chunkSize ?? 100;
    this.maxInFlight = opts.maxInFlight ?? 100;
    this.maxInFlightIncremental = opts.maxInFlightIncremental ?? Infinity;
    this.maxInFlightBytesIncremental = opts.maxInFlightBytesIncremental ?? 32 * 2 ** 20;
    this.held = opts.held ?? false;
    const { quietMs, maxMs } = opts.mesh.current().debounce;
    this.debouncer = new Debouncer<PushRequest>({
      quietMs,
      maxMs,
      timers: opts.timers,
      merge: (a, b) => a.merge(b),
      flush: (request, info) => this.push(request, info),
    });
    this.current = this.build();
    this.offs.push(opts.store.subscribe((events) => this.onConfig(events)));
    this.offs.push(opts.registry.subscribe((change) => this.onRegistry(change)));
    this.offs.push(opts.mesh.subscribe(() => this.onMeshSettings()));
  }

  /** The PushContext new connections are generated from. */
  get pushContext(): PushContext {
    return this.current;
  }

  /** Connected proxies (cache keys). */
  proxyKeys(): string[] {
    return [...this.proxies.keys()];
  }

  /** The last pushes, newest last (for /debug/push_status). */
  recentPushes(): readonly PushRecord[] {
    return this.history;
  }

  /** Whether a change waits in the debouncer or proxies wait in the queue. */
  get busy(): boolean {
    return this.debouncer.hasPending || this.queue.size > 0;
  }

  /**
   * Subscribes to a server's stream events. Several servers (mTLS and plaintext) may share one
   * pusher. `trustMetadata`: the server's streams are not authenticated (the plaintext loopback
   * port), so a proxy's address is taken as it claims it instead of being proven.
   */
  attach(xds: XdsServer, opts: { trustMetadata?: boolean } = {}): void {
    this.offs.push(xds.on('connect', ({ proxy }) => this.onConnect(proxy, opts.trustMetadata === true)));
    this.offs.push(xds.on('disconnect', ({ proxy }) => this.onDisconnect(proxy)));
    this.offs.push(xds.on('send', (e) => this.onSend(e)));
    this.offs.push(xds.on('ack', (e) => this.onAck(e)));
    this.offs.push(xds.on('nack', (e) => this.onNack(e)));
  }

  /**
   * Schedules a full push for a change the config store and registry do not see (e.g. the
   * east-west gateways of another network appearing or moving). Debounced like any change.
   */
  requestFullPush(reason: PushReason): void {
    if (this.stopped) return;
    this.debouncer.add(new PushRequest({ full: true, reasons: [reason], start: this.o.timers.now() }));
  }

  /** Whether config is held back until the registry settles. */
  get settled(): boolean {
    return !this.held;
  }

  /**
   * The registry is complete (registrations restored, peers synced or timed out): every proxy
   * that connected meanwhile gets its whole config, from a PushContext built now. Idempotent.
   */
  settle(): void {
    if (!this.held || this.stopped) return;
    this.held = false;
    this.current = this.build();
    const request = new PushRequest({ full: true, reasons: ['settled'] });
    for (const key of this.proxies.keys()) this.queue.set(key, request);
    this.o.logger.info({ proxies: this.proxies.size, version: this.current.version }, 'registry settled: pushing held proxies');
    this.drain();
  }

  /** Skips the debounce wait (tests, shutdown). */
  flushNow(): void {
    this.debouncer.flushNow();
  }

  stop(): void {
    this.stopped = true;
    this.debouncer.stop();
    for (const off of this.offs.splice(0)) off();
    if (this.drainHandle) clearImmediate(this.drainHandle);
    this.drainHandle = undefined;
    this.queue.clear();
    for (const f of this.inFlight.values()) this.o.timers.clearTimeout(f.timer);
    this.inFlight.clear();
    this.inFlightBytes = 0;
    for (const e of this.proxies.values()) if (e.registration) this.o.autoRegistry?.unregister(e.registration);
    this.proxies.clear();
  }

  // --- inputs ------------------------------------------------------------------------------------

  private onConfig(events: readonly ConfigEvent[]): void {
    const kinds = new Set<Kind>();
    for (const e of events) kinds.add(e.type === 'deleted' ? e.previous.kind : e.resource.kind);
    if (kinds.has('WorkloadGroup')) this.reregisterAll();
    const relevant = [...kinds].filter((k) => PUSH_KINDS.has(k));
    if (relevant.length === 0) return;
    this.o.logger.debug({ kinds: relevant }, 'config change: full push scheduled');
    const settled = this.o.settledUpstream !== undefined && events.every(this.o.settledUpstream);
    this.debouncer.add(new PushRequest({ full: true, reasons: ['config'], configKinds: relevant, start: this.o.timers.now() }), settled);
  }

  /** MeshConfig (or its defaults) moved: debounce and proxy defaults follow; the config event pushes. */
  private onMeshSettings(): void {
    const settings = this.o.mesh.current();
    this.debouncer.setDelays(settings.debounce.quietMs, settings.debounce.maxMs);
    const defaults = proxyDefaultsFrom(settings);
    for (const e of this.proxies.values()) {
      try {
        e.base = proxyFromNodeInfo(e.node, defaults);
      } catch (err) {
        this.o.logger.error({ node: e.key, err }, 'cannot model proxy with the new mesh defaults; it keeps the old ones');
      }
    }
  }

  private onRegistry(change: RegistryChange): void {
    const start = this.o.timers.now();
    // A peer's (or a pushing remote's) shard was debounced by its own control plane.
    const settled = change.cluster !== this.o.registry.localCluster;
    if (change.services.size > 0) {
      this.debouncer.add(new PushRequest({ full: true, reasons: ['services'], hosts: change.endpoints, start }), settled);
    } else if (change.endpoints.size > 0) {
      this.debouncer.add(new PushRequest({ full: false, reasons: ['endpoints'], hosts: change.endpoints, start }), settled);
    }
    // Workload-only changes: a proxy's inbound config follows endpoints at its address, which
    // arrive as endpoint changes; a workload no service selects changes nobody's config.
  }

  private onConnect(status: ProxyStatus, trustMetadata: boolean): void {
    if (this.stopped) return;
    this.o.metrics.connectedProxies.inc({ version: ISLE_XDS_VERSION });
    const key = status.key;
    const existing = this.proxies.get(key);
    if (existing) {
      existing.streams.add(status.streamId);
      return;
    }
    let base: Proxy;
    try {
      base = proxyFromNodeInfo(status.node, proxyDefaultsFrom(this.o.mesh.current()));
    } catch (e) {
      // authenticate() parsed the same node already; only a bug gets here.
      this.o.logger.error({ node: status.node.id, err: e }, 'cannot model proxy; it gets no config');
      return;
    }
    const entry: ProxyEntry = { key, node: status.node, base, streams: new Set([status.streamId]), awaiting: new Map() };
    this.proxies.set(key, entry);
    // Synchronously, so the server's first flush reads a complete snapshot (unless held: then
    // the stream waits, and the proxy keeps serving its last config).
    if (!this.held) this.generate(entry, CONNECT_REQUEST);
    // A proxyless gRPC client is no endpoint of anything (no sidecar to terminate mTLS for it).
    if (base.type === 'sidecar' && base.generator !== 'grpc' && this.o.autoRegistry) {
      entry.claim = {
        namespace: base.namespace,
        serviceAccount: base.serviceAccount,
        group: groupOf(status.node.metadata),
        address: base.ip,
        connectionAddress: trustMetadata ? undefined : status.peer,
        cluster: this.o.mesh.current().clusterName,
      };
      this.register(entry);
    }
  }

  private groups(): Resource<WorkloadGroupSpec>[] {
    return this.o.store.list('WorkloadGroup') as Resource<WorkloadGroupSpec>[];
  }

  /** (Re-)registers one sidecar from its claim and the WorkloadGroups now in config. */
  private register(entry: ProxyEntry, groups = this.groups()): void {
    const auto = this.o.autoRegistry;
    if (!auto || !entry.claim) return;
    const r = resolveWorkloadGroup(entry.claim, groups);
    const old = entry.registration;
    if (!r.ok) {
      if (old) {
        // The group that admitted it is gone or no longer matches: revoke now, no grace period.
        auto.revoke(old);
        delete entry.registration;
        this.o.logger.warn({ node: entry.base.id, reason: r.reason }, 'auto-registration revoked');
      } else {
        // A client without a group is normal; a proxy that named a group and was refused is news.
        const level = entry.claim.group !== undefined ? 'warn' : 'info';
        this.o.logger[level]({ node: entry.base.id, reason: r.reason }, 'proxy not auto-registered (it gets config but is nobody\'s endpoint)');
      }
      return;
    }
    try {
      entry.registration = auto.register(r.meta);
    } catch (e) {
      this.o.logger.warn({ node: entry.base.id, err: e instanceof Error ? e.message : String(e) }, 'proxy not auto-registered');
      return;
    }
    if (old && old.key !== entry.registration.key) auto.revoke(old);
    else if (old) auto.unregister(old);
  }

  private reregisterAll(): void {
    const groups = this.groups();
    for (const e of this.proxies.values()) this.register(e, groups);
  }

  private onDisconnect(status: ProxyStatus): void {
    this.o.metrics.connectedProxies.dec({ version: ISLE_XDS_VERSION });
    const entry = this.proxies.get(status.key);
    if (!entry || !entry.streams.delete(status.streamId) || entry.streams.size > 0) return;
    this.proxies.delete(status.key);
    this.queue.delete(status.key);
    this.release(status.key);
    this.o.cache.clearSnapshot(status.key);
    carryOver.dropScope(proxyScope(entry.node.id));
    if (entry.registration) this.o.autoRegistry?.unregister(entry.registration);
  }

  private onAck(e: AckEvent): void {
    this.answered(e.nodeId, e.typeUrl, e.nonce);
    const entry = this.proxies.get(e.nodeId);
    const w = entry?.awaiting.get(e.typeUrl);
    if (!entry || !w || w.version !== e.version) return;
    entry.awaiting.delete(e.typeUrl);
    this.o.metrics.convergence.observe(Math.max(0, this.o.timers.now() - w.seenAt) / 1000);
  }

  /** A response went out: the proxy holds a slot of the push queue until it answers every type sent. */
  private onSend(e: SendEvent): void {
    if (!this.proxies.has(e.nodeId)) return;
    let f = this.inFlight.get(e.nodeId);
    if (!f) {
      f = { nonces: new Map(), bytes: 0, timer: this.o.timers.setTimeout(() => this.release(e.nodeId), this.o.inFlightTimeoutMs ?? 5_000) };
      this.inFlight.set(e.nodeId, f);
    }
    f.nonces.set(e.typeUrl, e.nonce);
    f.bytes += e.bytes;
    this.inFlightBytes += e.bytes;
  }

  /** An ACK or NACK of the latest response of a type. */
  private answered(nodeId: string, typeUrl: string, nonce: string): void {
    const f = this.inFlight.get(nodeId);
    if (!f || f.nonces.get(typeUrl) !== nonce) return;
    f.nonces.delete(typeUrl);
    if (f.nonces.size === 0) this.release(nodeId);
  }

  /** The proxy answered (or left, or timed out): its slot goes to the next in the queue. */
  private release(key: string): void {
    const f = this.inFlight.get(key);
    if (!f) return;
    this.inFlight.delete(key);
    this.inFlightBytes -= f.bytes;
    this.o.timers.clearTimeout(f.timer);
    if (this.queue.size > 0 && !this.drainHandle && !this.stopped) this.drainHandle = setImmediate(() => this.drain());
  }

  private onNack(e: NackEvent): void {
    this.o.metrics.nacks.inc({ type: shortTypeName(e.typeUrl).toLowerCase() });
    this.answered(e.nodeId, e.typeUrl, e.nonce);
    const entry = this.proxies.get(e.nodeId);
    // That version will never be ACKed; the next one that changes this type carries the change.
    if (entry?.awaiting.get(e.typeUrl)?.version === e.version) entry.awaiting.delete(e.typeUrl);
  }

  // --- pushes ------------------------------------------------------------------------------------

  private build(): PushContext {
    return pushContextFromRegistry(this.o.registry, {
      version: String(++this.seq),
      mesh: meshInfoFrom(this.o.mesh.current()),
      virtualServices: this.o.store.list('VirtualService') as Resource<VirtualServiceSpec>[],
      destinationRules: this.o.store.list('DestinationRule') as Resource<DestinationRuleSpec>[],
      peerAuthentications: this.o.store.list('PeerAuthentication') as Resource<PeerAuthenticationSpec>[],
      authorizationPolicies: this.o.store.list('AuthorizationPolicy') as Resource<AuthorizationPolicySpec>[],
      gateways: this.o.store.list('Gateway') as Resource<GatewaySpec>[],
      telemetries: this.o.store.list('Telemetry') as Resource<TelemetrySpec>[],
      envoyFilters: this.o.store.list('EnvoyFilter') as Resource<EnvoyFilterSpec>[],
      ...(this.o.credentials ? { credentials: this.o.credentials() } : {}),
      trustBundlePem: this.o.trustBundlePem,
      ...(this.o.networkGateways ? { networkGateways: this.o.networkGateways() } : {}),
    });
  }

  private push(change: PushRequest, info: FlushInfo): void {
    if (this.stopped) return;
    const startedAt = this.o.timers.now();
    const old = this.current;
    let next: PushContext;
    try {
      next = this.build();
    } catch (e) {
      this.o.logger.error({ err: e }, 'building the PushContext failed; keeping the previous one');
      // That request's hosts are gone with it: the next endpoint push must not reuse EDS
      // assignments from before them (endpointOnlyPush), or they would stay stale.
      this.hostsLost = true;
      return;
    }
    const lost = this.hostsLost;
    this.hostsLost = false;
    this.current = next;
    this.pushCount++;
    // Held: nobody has config to update; settle() pushes everyone from the newest PushContext.
    if (this.held) return;
    let cds = change.full;
    let lds = change.full;
    if (!change.full) {
      if (!lost) endpointOnlyPush(old, next, change.hosts);
      // CDS carries each service's expected SPIFFE ids: an endpoint-only change that adds or drops
      // a service account must reach CDS too. Captured sidecars match a VIP-less service's
      // connections by its endpoints' addresses (generate/outbound.ts): a moved address is LDS.
      for (const h of change.hosts) {
        cds ||= !sameList(old.identitiesByHost.get(h), next.identitiesByHost.get(h));
        lds ||= endpointAddresses(old, h) !== endpointAddresses(next, h);
        if (cds && lds) break;
      }
    }
    const request = (cds && !change.cds) || (lds && !change.lds) ? change.merge(new PushRequest({ full: false, reasons: [], cds, lds })) : change;
    for (const key of this.proxies.keys()) {
      const prev = this.queue.get(key);
      this.queue.set(key, prev ? prev.merge(request) : request);
    }
    for (const r of change.reasons) this.o.metrics.pushTriggers.inc({ type: r });
    const record: PushRecord = {
      version: next.version,
      kind: change.full ? 'full' : 'eds',
      reasons: [...change.reasons].sort(),
      changes: info.changes,
      debounceMs: Math.round(info.waitedMs),
      cause: info.cause,
      proxies: this.proxies.size,
    };
    this.history.push(record);
    if (this.history.length > 20) this.history.shift();
    this.o.logger.info({ ...record, cdsToo: !change.full && cds }, 'push');
    this.drainStartedAt ??= startedAt;
    this.drainFull ||= change.full;
    this.drain();
  }

  private drain(): void {
    this.drainHandle = undefined;
    if (this.stopped) return;
    let n = 0;
    for (const [key, scope] of this.queue) {
      // Full: the rest waits for ACKs (release() drains again). In flight: its requests stay
      // merged in the queue until it answers.
      if (this.blocked(scope.full)) return;
      if (this.inFlight.has(key)) continue;
      this.queue.delete(key);
      const entry = this.proxies.get(key);
      // Its responses go out on a microtask (onSend takes the slot), so one chunk may overshoot
      // the bound by at most chunkSize.
      if (entry) this.generate(entry, scope);
      if (++n >= this.chunkSize && this.queue.size > 0) {
        this.drainHandle = setImmediate(() => this.drain());
        return;
      }
    }
    if (this.queue.size > 0) return;
    if (this.drainStartedAt !== undefined) {
      this.o.metrics.pushDuration.observe({ kind: this.drainFull ? 'full' : 'eds' }, (this.o.timers.now() - this.drainStartedAt) / 1000);
    }
    this.drainStartedAt = undefined;
    this.drainFull = false;
  }

  /** Whether the queue must wait for answers before starting a proxy's push of this kind. */
  private blocked(full: boolean): boolean {
    if (full) return this.inFlight.size >= this.maxInFlight;
    return this.inFlight.size >= this.maxInFlightIncremental || this.inFlightBytes >= this.maxInFlightBytesIncremental;
  }

  /** Regenerates what `request` asks for, from the current PushContext, into the cache. */
  private generate(entry: ProxyEntry, request: PushRequest): void {
    const push = this.current;
    try {
      const proxy = withInbound(entry.base, push);
      const fp = JSON.stringify(proxy.inbound);
      // An east-west gateway's listener and clusters follow which local services have endpoints
      // (one filter chain per SNI with endpoints behind it), so an endpoint change is a full
      // change for it; unchanged types keep their version and are not resent.
      const whole = entry.inboundFp !== fp || proxy.type === 'gateway';
      entry.inboundFp = fp;
      // A push regenerates only the types its changes can reach (generate/affected.ts): the
      // proxy's other types are not rebuilt, diffed or resent.
      const types = whole ? SERVED_TYPES : affectedTypes(request, proxy);
      for (const typeUrl of types) {
        const snapshot = generateTypeSnapshot(push, proxy, typeUrl);
        const version = snapshot.version;
        if (this.o.cache.get(entry.key, typeUrl)?.version === version) continue;
        if (request.start !== undefined) {
          const w = entry.awaiting.get(typeUrl);
          entry.awaiting.set(typeUrl, { version, seenAt: w ? Math.min(w.seenAt, request.start) : request.start });
        }
        this.o.metrics.pushes.inc({ type: shortTypeName(typeUrl).toLowerCase() });
        try {
          this.o.cache.setResources(entry.key, typeUrl, version, snapshot);
        } catch (e) {
          // A watch listener threw (the server logs its own errors); the cache holds the new version.
          this.o.logger.error({ node: entry.key, type: shortTypeName(typeUrl), err: e }, 'xDS watch failed');
        }
      }
    } catch (e) {
      this.o.logger.error({ node: entry.key, err: e }, 'generating config for proxy failed; it keeps its last config');
    }
  }
}


/** A host's endpoint addresses over all its ports, as one comparable string. */
function endpointAddresses(push: PushContext, host: string): string {
  const svc = push.servicesByHost.get(host);
  if (!svc) return '';
  const addrs = new Set<string>();
  for (const p of svc.ports) for (const e of endpointsFor(push, host, p.port)) if (e.address !== undefined) addrs.add(`${e.address}:${e.port}`);
  return [...addrs].sort().join(',');
}

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every((v, i) => v === y[i]);
}
