/**
 * The control-plane process: joins the parts of DESIGN §3 into `isle control-plane`.
 *
 *   config dir → DirectorySource → ConfigStore ─┬→ MeshSettingsResolver (MeshConfig + flags, live) → read by all below
 *                                               ├→ local shard (watchLocalShard + AutoRegistry) → Registry
 *                                               └→ Pusher (debounce → PushRequest → PushContext → queue) ← Registry changes
 *   Pusher → SnapshotCache → XdsServer (ADS) ─┬→ :15012 gRPC, TLS (server cert from the intermediate),
 *                                              │   ADS + istio.v1.auth.IstioCertificateService
 *                                              └→ :15010 plaintext, loopback only, off unless asked
 *   DebugServer :15014 (syncz, config_dump, registryz, configz, metrics, ready)
 *
 * Every port is configurable (`0` = ephemeral) and `addresses` reports what was bound.
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { formatHostPort, parseHostPort } from '../config/hostport.js';
import { controlPlaneTarget } from '../mesh/target.js';
import { DirectorySource, type DirectorySourceOptions } from '../config/sources/directory.js';
import { CredentialStore } from './credentials.js';
import { listenGrpc } from './grpclisten.js';
import { undefinedSubsets } from '../generate/virtualservice.js';
import { gatewayProblems } from '../generate/ingress.js';
import { ConfigStore } from '../config/store.js';
import { formatConfigError, type ConfigError, type Resource } from '../config/types.js';
import { parseDuration } from '../config/schema.js';
import { IsleError, isIsleError } from '../errors.js';
import { loadCaDir, validateClusterName, type IssuingCa } from '../pki/index.js';
import { AutoRegistry } from '../registry/autoregister.js';
import { Registry } from '../registry/aggregate.js';
import { watchLocalShard, type LocalShardWatch } from '../registry/local.js';
import { followRegistrations, persistRegistrations, restoreRegistrations, type RegistrationPersister } from '../registry/persist.js';
import { CONFIG_PREFIX, FileStateStore, isWatchable, type StateStore, type WatchableStore } from '../mesh/state.js';
import { TextFilesSource } from '../config/sources/files.js';
import { EtcdStateStore } from '../mesh/state-etcd.js';
import { SnapshotCache } from '../xds/cache.js';
import { RECOMMENDED_GRPC_SERVER_OPTIONS, XdsServer } from '../xds/server.js';
import { SERVED_TYPES } from '../mesh/typeurls.js';
import { xdsAuthenticator } from './auth.js';
import { addCertService, createCertService } from './certservice.js';
import { DebugServer } from './debugserver.js';
import { ControlPlaneMetrics } from './metrics.js';
import { parseProxyId, proxyDefaultsFrom } from '../model/proxy.js';
import { MeshSettingsResolver, pickMeshConfig } from '../mesh/settings.js';
import { Pusher } from './pusher.js';
import { assertPlaintextAddress, grpcServerCredentials, isLoopback, issueServerCert, type ServerCert } from './servercert.js';
import { realTimers, type Timers } from '../mesh/timers.js';
import { mallocTrimmer } from '../mesh/malloc.js';
import { MemoryTrimmer } from './memtrim.js';
import { CentralLink, CentralServer, describeServerTlsFailure, observeTlsFailures, parseGatewayAddresses, PeeringExport, PeeringManager } from '../peering/index.js';
import { MemorySource } from '../config/sources/memory.js';
import type { GatewayAddress } from '../model/pushcontext.js';
import { EAST_WEST_PORT } from '../generate/network.js';
import type { WorkloadEntrySpec, WorkloadGroupSpec } from '../config/kinds/networking.js';
import { identityHasRegistration } from '../registry/workloadgroup.js';
import { DEFAULT_MAX_IDENTITY_LIFETIME_MS } from './certservice.js';
import { guardGrpcServer, type PortGuard } from './portguard.js';

export const DEFAULT_LISTEN = '127.0.0.1:15012';
export const DEFAULT_DEBUG_LISTEN = '127.0.0.1:15014';

export interface ControlPlaneOptions {
  configDir: string;
  caDir: string;
  /** Overrides MeshConfig.clusterName; must be the intermediate CA's cluster. */
  cluster?: string;
  /** Overrides MeshConfig.network. */
  network?: string;
  /** Trust domain for a CA that names none (Istio's tools/certs cacerts); default MeshConfig trustDomain. */
  trustDomain?: string;
  /** xDS + CA over TLS. Default 127.0.0.1:15012; port 0 = ephemeral. */
  listen?: string;
  /** Plaintext xDS (trusts node metadata; tests and benchmarks only). Off unless given; loopback only. */
  plaintextListen?: string;
  /** Debug and metrics HTTP. Default 127.0.0.1:15014. */
  debugListen?: string;
  logger?: Logger;
  timers?: Timers;
  /** Wall clock (ms) for xDS status timestamps. */
  now?: () => number;
  /** Auto-registered workloads outlive their last connection by this much (default 10 s). */
  graceMs?: number;
  /** Config directory watching (e.g. `rescanIntervalMs`). */
  directory?: Omit<DirectorySourceOptions, 'name' | 'timers'>;
  /** Proxies generated per event-loop turn (default 100). */
  pushChunkSize?: number;
  /** Proxies with a push sent and not yet answered, at most (default 100, Istio's PILOT_PUSH_THROTTLE). */
  pushMaxInFlight?: number;
  /** The same for endpoint-only pushes (default none; see PusherOptions.maxInFlightIncremental). */
  pushMaxInFlightIncremental?: number;
  /** Endpoint-only pushes wait while this many bytes of resources are unanswered (default 32 MiB; PusherOptions.maxInFlightBytesIncremental). */
  pushMaxInFlightBytesIncremental?: number;
  /**
   * This network's east-west gateways as other networks dial them (`host:15443`), advertised to
   * peers. Gateway-mode proxies that connect to this control plane are added automatically.
   */
  eastWestGateways?: readonly string[];
  /** Reconnect delay to peers after `attempt` failures (default: exponential with jitter). */
  peerBackoff?: (attempt: number) => number;
  /**
   * host:port of the central control plane: run as a remote control plane of this cluster (seed
   * 001). Mesh resources come from the central one and win over local files; this cluster's
   * services are pushed to it over the same connection.
   */
  central?: string;
  /** Directory of the file state store (default `<configDir>/.isle/state`; hidden dirs hold no config). */
  stateDir?: string;
  /** A state store to use instead of the file one (tests). Closed on stop. */
  stateStore?: StateStore;
  /**
   * `etcd://host:port[,host:port…]`: the state replicas of this cluster's control plane share
   * (auto-registrations with leases, used token ids). Default: the file store in `stateDir`.
   */
  store?: string;
  /**
   * How long to hold config back after start while peers have not synced (default 5 s). Restored
   * registrations are in the registry before the first push; only peer feeds are waited for.
   */
  settleTimeoutMs?: number;
  /** mTLS port limits (portguard.ts): TLS handshake deadline (10 s), authentication deadline (30 s), cap on unauthenticated connections (1024). */
  portLimits?: { handshakeTimeoutMs?: number; authTimeoutMs?: number; maxUnauthenticated?: number };
}

export const DEFAULT_SETTLE_TIMEOUT_MS = 5_000;

interface ListenAddresses {
  grpc: { host: string; port: number };
  debug: { host: string; port: number };
  plaintext?: { host: string; port: number };
}

interface GrpcServers {
  /** mTLS: ADS, the certificate service, the peering export. */
  main: grpc.Server;
  plaintext?: grpc.Server;
}

export interface BoundAddresses {
  /** host:port of the TLS gRPC listener (ADS + certificate service). */
  grpc: string;
  /** host:port of the debug HTTP server. */
  debug: string;
  /** host:port of the plaintext xDS listener, when enabled. */
  plaintext?: string;
}

/** `host:port`, `[v6]:port`; port 0-65535. */
export function parseListenAddress(addr: string, flag: string): { host: string; port: number } {
  const hp = parseHostPort(addr, { allowZero: true });
  if (!hp) throw new IsleError('ERR_USAGE', `${flag}: invalid address ${JSON.stringify(addr)} (use host:port, e.g. 127.0.0.1:15012; port 0 picks a free one)`);
  return { host: hp.host, port: hp.port };
}

/** The IP of a gateway-mode proxy from its node id (`router~<ip>~…`, see proxy.ts), else undefined. */
function gatewayIp(nodeId: string): string | undefined {
  try {
    const p = parseProxyId(nodeId);
    return p.type === 'gateway' && p.ip ? p.ip : undefined;
  } catch {
    return undefined;
  }
}

export class ControlPlane {
  readonly addresses: BoundAddresses = { grpc: '', debug: '' };
  readonly metrics = new ControlPlaneMetrics();
  readonly cache = new SnapshotCache();
  readonly store = new ConfigStore({ onListenerError: (e) => this.logger.error({ err: e }, 'config listener failed') });
  readonly logger: Logger;
  readonly timers: Timers;
  ca!: IssuingCa;
  /** The mesh settings every part reads (MeshConfig + flags), followed live. */
  mesh!: MeshSettingsResolver;
  portGuard: PortGuard | undefined;
  cluster = '';
  trustDomain = '';
  registry!: Registry;
  autoRegistry!: AutoRegistry;
  pusher!: Pusher;
  serverCert!: ServerCert;
  /** [mTLS server, plaintext server if enabled]: they share the cache and the pusher. */
  readonly xdsServers: XdsServer[] = [];
  private source: DirectorySource | undefined;
  /** Gateway credentials, `<config dir>/credentials/<ns>/<name>/` (ADR 0060). */
  credentials: CredentialStore | undefined;
  private shardWatch: LocalShardWatch | undefined;
  private readonly grpcServers: grpc.Server[] = [];
  private debug: DebugServer | undefined;
  peering: PeeringManager | undefined;
  peeringExport: PeeringExport | undefined;
  /** Serves central config to remote control planes and takes their pushed services. */
  central: CentralServer | undefined;
  /** Remote mode (`--central`): the link to the central control plane. */
  centralLink: CentralLink | undefined;
  private centralConfig: MemorySource | undefined;
  /** Gateways from --east-west-gateway, and gateway proxies connected now (stream id → address). */
  private staticGateways: GatewayAddress[] = [];
  private readonly gatewayStreams = new Map<string, GatewayAddress>();
  private readonly offs: (() => void)[] = [];
  private trimmer: MemoryTrimmer | undefined;
  /** Auto-registrations, single-use token ids; the file store unless another is given. */
  state!: StateStore;
  private persister: RegistrationPersister | undefined;
  private settleTimer: unknown;
  private ready = false;
  private stopping: Promise<void> | undefined;

  private readonly now: () => number;

  private constructor(private readonly opts: ControlPlaneOptions) {
    this.logger = opts.logger ?? pino({ level: 'silent' });
    this.timers = opts.timers ?? realTimers;
    this.now = opts.now ?? Date.now;
  }

  /** Starts everything; throws a one-line IsleError (bad CA dir, config dir, cluster, port in use). */
  static async start(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const cp = new ControlPlane(opts);
    try {
      await cp.init();
      return cp;
    } catch (e) {
      await cp.stop().catch(() => {});
      throw e;
    }
  }

  get isReady(): boolean {
    return this.ready;
  }

  /**
   * The process, assembled in steps; each step reads what the earlier ones set up. A new part of
   * the control plane (a store engine, a mode) is one more step here.
   */
  private async init(): Promise<void> {
    const addrs = this.parseAddresses();
    await this.setupState();
    await this.setupConfig();
    await this.setupCa();
    this.setupMesh();
    // Before any registration is restored from it: a store of another cluster is refused.
    if (this.state instanceof EtcdStateStore) await this.state.claimCluster(this.cluster);
    await this.setupRegistry();
    this.setupPush();
    const servers = await this.setupServers(addrs);
    this.setupPeering(servers.main);
    await this.listen(servers, addrs);
    await this.setupDebug(addrs.debug);
    this.peering!.start();
    this.setupCentralLink();
    this.settleWhenPeersSynced();
    this.ready = true;
    const settings = this.mesh.current();
    this.logger.info({ cluster: this.cluster, trustDomain: this.trustDomain, ...this.addresses, debounceMs: settings.debounce, meshConfig: settings.source }, 'control plane ready');
  }

  private parseAddresses(): ListenAddresses {
    const o = this.opts;
    const grpcAddr = parseListenAddress(o.listen ?? DEFAULT_LISTEN, '--listen');
    const debug = parseListenAddress(o.debugListen ?? DEFAULT_DEBUG_LISTEN, '--debug-listen');
    const plaintext = o.plaintextListen !== undefined ? parseListenAddress(o.plaintextListen, '--plaintext-listen') : undefined;
    if (plaintext) assertPlaintextAddress(plaintext.host);
    if (!isLoopback(debug.host)) this.logger.warn({ address: debug.host }, 'debug server is not on loopback: it exposes config and registry to whoever can reach it');
    return { grpc: grpcAddr, debug, ...(plaintext ? { plaintext } : {}) };
  }

  /**
   * The cluster's intermediate CA: one line naming the file on any problem. A CA that names no
   * trust domain (Istio's tools/certs) takes --trust-domain, else MeshConfig trustDomain.
   */
  private async setupCa(): Promise<void> {
    const given = this.opts.trustDomain ?? pickMeshConfig(this.store.list('MeshConfig'))?.spec.trustDomain;
    this.ca = await loadCaDir(this.opts.caDir, given !== undefined ? { trustDomain: given } : {});
  }

  private async setupConfig(): Promise<void> {
    const o = this.opts;
    // A remote control plane ranks the central's resources above its own files (ADR 0031).
    // Validates host:port (or the central's replicas as host:port,host:port) with a clear usage error.
    if (o.central !== undefined) controlPlaneTarget(o.central, '--central');
    this.centralConfig = o.central !== undefined ? new MemorySource(`central:${o.central}`) : undefined;
    if (this.centralConfig) this.store.addSource(this.centralConfig);
    this.source = new DirectorySource(o.configDir, { ...o.directory, name: `dir:${o.configDir}` });
    this.store.addSource(this.source);
    if (o.store !== undefined && isWatchable(this.state)) await this.addStoreConfig(this.state, o.store);
    try {
      await this.store.start();
    } catch (e) {
      if (isIsleError(e)) throw e;
      throw new IsleError('ERR_FILE_MISSING', `${o.configDir}: cannot read config directory: ${e instanceof Error ? e.message : String(e)}`, { file: o.configDir });
    }
    this.watchConfigErrors();
  }

  /**
   * Replicas: the config files `isle config push` put in the shared store, followed live, as a
   * second source next to the config directory (the ConfigStore reports a resource both define).
   */
  private async addStoreConfig(state: WatchableStore, url: string): Promise<void> {
    const files = new TextFilesSource(`etcd:${url}`);
    const cancel = await state.watch(CONFIG_PREFIX, (key, text) => files.setFile(key.slice(CONFIG_PREFIX.length), text));
    this.offs.push(() => void cancel().catch(() => {}));
    for (const [key, text] of await state.list(CONFIG_PREFIX)) files.setFile(key.slice(CONFIG_PREFIX.length), text);
    this.store.addSource(files);
    this.logger.info({ store: url, files: files.fileNames().length }, 'config: the directory plus the files in the shared store');
  }

  /**
   * Cluster and trust domain are checked against the CA once (they are fixed for the process);
   * everything else is the resolver's, which every later step reads and which follows MeshConfig.
   */
  private setupMesh(): void {
    const o = this.opts;
    const meshes = this.store.list('MeshConfig');
    const mesh = pickMeshConfig(meshes);
    if (meshes.length > 1) {
      this.logger.warn({ meshConfigs: meshes.map((m) => `${m.metadata.name} (${m.source.file}:${m.source.line})`) }, `several MeshConfigs; using ${mesh!.metadata.name}`);
    }
    const cluster = o.cluster ?? mesh?.spec.clusterName ?? this.ca.cluster;
    if (!cluster) throw new IsleError('ERR_USAGE', `no cluster name: pass --cluster or set clusterName in the MeshConfig (${o.caDir} does not name one)`);
    validateClusterName(cluster);
    if (this.ca.cluster !== undefined && this.ca.cluster !== cluster) {
      const from = o.cluster !== undefined ? '--cluster' : 'MeshConfig clusterName';
      throw new IsleError('ERR_USAGE', `${from} ${cluster} does not match ${o.caDir}, which is the intermediate CA of cluster ${this.ca.cluster}`);
    }
    const trustDomain = mesh?.spec.trustDomain ?? this.ca.trustDomain;
    if (trustDomain !== this.ca.trustDomain) {
      throw new IsleError('ERR_CONFIG_INVALID', `MeshConfig trustDomain ${trustDomain} differs from the CA's (${this.ca.trustDomain}) in ${o.caDir}`);
    }
    this.cluster = cluster;
    this.trustDomain = trustDomain;
    this.mesh = new MeshSettingsResolver(
      this.store,
      { clusterName: cluster, trustDomain, ...(o.network !== undefined ? { network: o.network } : {}) },
      (e) => this.logger.error({ err: e }, 'mesh settings listener failed'),
    );
    this.offs.push(
      this.mesh.subscribe((next, prev) => {
        this.logger.info({ meshConfig: next.source, network: next.network, debounceMs: next.debounce, registrationGraceMs: next.registrationGraceMs }, 'mesh settings changed');
        if (next.network !== prev.network) this.refreshLocalGateways();
      }),
    );
  }

  /** What must survive a restart (and, on etcd, what replicas share). */
  private async setupState(): Promise<void> {
    const o = this.opts;
    if (o.stateStore) {
      this.state = o.stateStore;
    } else if (o.store !== undefined) {
      this.state = await EtcdStateStore.open(o.store, {
        onSession: (event, detail) =>
          event === 'lost' ? this.logger.warn({ store: o.store }, `etcd lease of this replica lost: ${detail}`) : this.logger.info({ store: o.store }, `etcd: ${detail}`),
      });
      this.logger.info({ store: o.store }, 'state store: etcd (shared with the other replicas of this cluster)');
    } else {
      this.state = new FileStateStore(o.stateDir ?? join(o.configDir, '.isle', 'state'));
    }
  }

  /**
   * The local shard from the store plus auto-registered proxies. Registrations kept in the state
   * store come back first (each in its grace period), so the first PushContext already has them.
   */
  private async setupRegistry(): Promise<void> {
    this.registry = new Registry({ localCluster: this.cluster, log: (line) => this.logger.warn(line) });
    const graceMs = () => this.opts.graceMs ?? this.mesh.current().registrationGraceMs;
    this.autoRegistry = new AutoRegistry({
      graceMs,
      timers: this.timers,
      onListenerError: (e) => this.logger.error({ err: e }, 'auto-registration listener failed'),
    });
    const persist = {
      store: this.state,
      cluster: this.cluster,
      auto: this.autoRegistry,
      graceMs,
      onError: (err: unknown, key: string) => this.logger.error({ err, registration: key }, 'cannot save auto-registration in the state store'),
      onBadRecord: (key: string, why: string) => this.logger.warn({ record: key }, `state store: registration skipped: ${why}`),
    };
    const restored = await restoreRegistrations(persist);
    if (restored > 0) this.logger.info({ restored }, 'auto-registrations restored from the state store (each in its grace period until its proxy reconnects)');
    this.persister = persistRegistrations(persist);
    if (isWatchable(this.state)) {
      // Replicas: the other replicas' registrations, live.
      const cancel = await followRegistrations({ ...persist, store: this.state });
      this.offs.push(() => void cancel().catch(() => {}));
    }
    this.shardWatch = watchLocalShard({ cluster: this.cluster, store: this.store, registry: this.registry, autoRegistry: this.autoRegistry, mesh: this.mesh });
  }

  /**
   * Config is held until peers have delivered their first complete update (or the settle timeout):
   * a proxy reconnecting after a restart must not be pushed a view missing another cluster's
   * endpoints it is using. Without peers the registry is complete at once.
   */
  private settleWhenPeersSynced(): void {
    const deadline = this.timers.now() + (this.opts.settleTimeoutMs ?? DEFAULT_SETTLE_TIMEOUT_MS);
    const check = () => {
      this.settleTimer = undefined;
      if (this.stopping) return;
      const peers = this.peering?.status() ?? [];
      const waiting = peers.filter((p) => p.lastSyncTime === undefined).map((p) => p.name);
      // A remote control plane also waits for its central's config (VirtualServices… authored there).
      const central = this.centralLink?.status();
      if (central && central.configVersion === '') waiting.push(`central ${central.address}`);
      if (waiting.length === 0 || this.timers.now() >= deadline) {
        if (waiting.length > 0) this.logger.warn({ waiting }, 'peers (or the central control plane) not synced within the settle timeout; pushing without them');
        this.pusher.settle();
        return;
      }
      this.settleTimer = this.timers.setTimeout(check, 50);
    };
    check();
  }

  private setupPush(): void {
    this.credentials = new CredentialStore({
      dir: join(this.opts.configDir, 'credentials'),
      timers: this.timers,
      onChange: () => {
        for (const [k, why] of this.credentials!.problems()) this.logger.error({ credential: k }, `gateway credential rejected: ${why}`);
        this.pusher.requestFullPush('config');
      },
    });
    for (const [k, why] of this.credentials.problems()) this.logger.error({ credential: k }, `gateway credential rejected: ${why}`);
    this.credentials.start();
    this.pusher = new Pusher({
      credentials: () => this.credentials!.get(),
      registry: this.registry,
      store: this.store,
      cache: this.cache,
      autoRegistry: this.autoRegistry,
      mesh: this.mesh,
      trustBundlePem: this.ca.rootBundlePem,
      timers: this.timers,
      metrics: this.metrics,
      logger: this.logger.child({ component: 'push' }),
      ...(this.opts.pushChunkSize !== undefined ? { chunkSize: this.opts.pushChunkSize } : {}),
      ...(this.opts.pushMaxInFlight !== undefined ? { maxInFlight: this.opts.pushMaxInFlight } : {}),
      ...(this.opts.pushMaxInFlightIncremental !== undefined ? { maxInFlightIncremental: this.opts.pushMaxInFlightIncremental } : {}),
      ...(this.opts.pushMaxInFlightBytesIncremental !== undefined ? { maxInFlightBytesIncremental: this.opts.pushMaxInFlightBytesIncremental } : {}),
      networkGateways: () => this.peering?.networkGateways() ?? {},
      settledUpstream: (e) => (e.type === 'deleted' ? e.previous : e.resource).source.file.startsWith('central:'),
      held: true,
    });
  }

  /** Freed response buffers go back to the system when sends go quiet (memtrim.ts; glibc only). */
  private trimMemoryAfterSends(server: XdsServer): void {
    if (this.trimmer === undefined) {
      const trim = mallocTrimmer();
      if (!trim) return;
      const log = this.logger.child({ component: 'memory' });
      const trimmer = new MemoryTrimmer({ trim, timers: this.timers, onTrim: (ms) => log.debug({ ms: Math.round(ms) }, 'malloc_trim') });
      this.trimmer = trimmer;
      this.offs.push(() => trimmer.stop());
    }
    const trimmer = this.trimmer;
    this.offs.push(server.on('send', () => trimmer.activity()));
  }

  /** gRPC: ADS + CA on TLS; ADS alone on the plaintext loopback port. Not bound yet. */
  private async setupServers(addrs: ListenAddresses): Promise<GrpcServers> {
    this.serverCert = await issueServerCert({ ca: this.ca, cluster: this.cluster, listenAddresses: [addrs.grpc.host] });
    const xdsLogger = this.logger.child({ component: 'xds' });
    const defaults = () => proxyDefaultsFrom(this.mesh.current());
    const tls = new XdsServer({ cache: this.cache, typeUrls: SERVED_TYPES, logger: xdsLogger, now: this.now, authenticate: xdsAuthenticator({ trustDomain: this.trustDomain, defaults, mode: 'mtls' }) });
    this.xdsServers.push(tls);
    this.pusher.attach(tls);
    this.watchGatewayProxies(tls);
    const main = new grpc.Server(RECOMMENDED_GRPC_SERVER_OPTIONS);
    this.grpcServers.push(main);
    tls.addToServer(main);
    const caLog = this.logger.child({ component: 'ca' });
    addCertService(
      main,
      createCertService({
        ca: this.ca,
        cluster: this.cluster,
        trustDomain: this.trustDomain,
        now: () => new Date((this.opts.now ?? Date.now)()),
        state: this.state,
        // Read live from the store: deleting a WorkloadGroup/WorkloadEntry refuses the next renewal at once.
        identityAllowed: (ns, sa) =>
          identityHasRegistration(ns, sa, this.store.list('WorkloadGroup') as Resource<WorkloadGroupSpec>[], this.store.list('WorkloadEntry') as Resource<WorkloadEntrySpec>[]),
        maxIdentityLifetimeMs: () => {
          const v = pickMeshConfig(this.store.list('MeshConfig'))?.spec.maxIdentityLifetime;
          return (v !== undefined ? parseDuration(v) : undefined) ?? DEFAULT_MAX_IDENTITY_LIFETIME_MS;
        },
        onIssued: (e) => caLog.info({ spiffeId: e.spiffeId, serial: e.serialNumber, notAfter: e.notAfter.toISOString(), via: e.via, jti: e.jti, peer: e.peer }, 'certificate issued'),
        onRefused: (e) => caLog.warn({ code: grpc.status[e.code], reason: e.reason, message: e.message, peer: e.peer }, 'certificate refused'),
      }),
    );
    this.trimMemoryAfterSends(tls);
    if (!addrs.plaintext) return { main };
    const plain = new XdsServer({ cache: this.cache, typeUrls: SERVED_TYPES, logger: xdsLogger, now: this.now, authenticate: xdsAuthenticator({ trustDomain: this.trustDomain, defaults, mode: 'trust-metadata' }) });
    this.xdsServers.push(plain);
    this.pusher.attach(plain, { trustMetadata: true });
    this.trimMemoryAfterSends(plain);
    const plaintext = new grpc.Server(RECOMMENDED_GRPC_SERVER_OPTIONS);
    this.grpcServers.push(plaintext);
    plain.addToServer(plaintext);
    return { main, plaintext };
  }

  /**
   * Peering, discovery only: our export feed shares the mTLS port (its own service name and auth:
   * control planes of our root only); our subscriptions follow the RemoteCluster resources.
   */
  private setupPeering(main: grpc.Server): void {
    const network = this.mesh.current().network;
    const peerLog = this.logger.child({ component: 'peering' });
    try {
      this.staticGateways = parseGatewayAddresses(this.opts.eastWestGateways ?? []);
    } catch (e) {
      throw new IsleError('ERR_USAGE', `--east-west-gateway: ${e instanceof Error ? e.message : String(e)}`);
    }
    this.peeringExport = new PeeringExport({ registry: this.registry, cluster: this.cluster, network, trustDomain: this.trustDomain, gateways: this.staticGateways, logger: peerLog, now: this.now });
    this.peeringExport.addToServer(main);
    this.central = new CentralServer({
      cluster: this.cluster,
      network,
      trustDomain: this.trustDomain,
      store: this.store,
      mesh: () => this.mesh.current(),
      registry: this.registry,
      onGateways: (c, net, gws) => this.peering?.setPeerGateways(c, net, gws),
      logger: this.logger.child({ component: 'central' }),
      now: this.now,
    });
    this.central.addToServer(main);
    this.peering = new PeeringManager({
      localCluster: this.cluster,
      localNetwork: network,
      localGateways: this.staticGateways,
      registry: this.registry,
      store: this.store,
      tls: () => ({ rootBundlePem: this.ca.rootBundlePem, certChainPem: this.serverCert.chainPem, keyPem: this.serverCert.keyPem, trustDomain: this.trustDomain }),
      timers: this.timers,
      now: this.now,
      ...(this.opts.peerBackoff ? { backoff: this.opts.peerBackoff } : {}),
      logger: peerLog,
    });
    this.offs.push(this.peering.onGatewaysChange(() => this.pusher.requestFullPush('gateways')));
  }

  /** Remote mode (`--central`): the link to the central control plane, started once we serve. */
  private setupCentralLink(): void {
    const o = this.opts;
    if (!this.centralConfig || o.central === undefined) return;
    this.centralLink = new CentralLink({
      address: o.central,
      localCluster: this.cluster,
      localNetwork: this.mesh.current().network,
      trustDomain: this.trustDomain,
      tls: () => ({ rootBundlePem: this.ca.rootBundlePem, certChainPem: this.serverCert.chainPem, keyPem: this.serverCert.keyPem, trustDomain: this.trustDomain }),
      config: this.centralConfig,
      exporter: this.peeringExport!,
      registry: this.registry,
      onGateways: (c, net, gws) => this.peering?.setPeerGateways(c, net, gws),
      timers: this.timers,
      now: this.now,
      ...(o.peerBackoff ? { backoff: o.peerBackoff } : {}),
      logger: this.logger.child({ component: 'central-link' }),
    });
    this.centralLink.start();
  }

  private async bindGrpc(server: grpc.Server, host: string, port: number, creds: grpc.ServerCredentials, what: string): Promise<string> {
    const l = await listenGrpc(server, host, port, creds, what, (e) => this.logger.warn({ err: e, listener: what }, 'accepting a connection failed'));
    this.offs.push(() => l.close());
    return l.address;
  }

  private async listen(servers: GrpcServers, addrs: ListenAddresses): Promise<void> {
    const creds = grpcServerCredentials({ serverCert: this.serverCert, rootBundle: this.ca.rootBundlePem, requireClientCert: false });
    this.addresses.grpc = await this.bindGrpc(servers.main, addrs.grpc.host, addrs.grpc.port, creds, 'xDS + CA, mTLS');
    // Only bound listeners can be watched: a peer or remote under another root is logged here.
    const peerLog = this.logger.child({ component: 'peering' });
    this.offs.push(observeTlsFailures(servers.main, (f) => peerLog.warn({ remote: f.remote }, describeServerTlsFailure(f))));
    // The port limits too (ADR 0043): grpc-js creates its HTTP/2 server at bind.
    const guardLog = this.logger.child({ component: 'port' });
    this.portGuard = guardGrpcServer(servers.main, {
      ...this.opts.portLimits,
      timers: this.timers,
      onEvent: (e) => {
        if (e.kind === 'cap') guardLog.warn({ refused: e.refused, max: e.max }, `unauthenticated connection cap reached (${e.max}): new connections closed at once`);
        else guardLog.info({ remote: e.remote }, e.kind === 'handshake-timeout' ? 'closed: TLS handshake not finished in time' : 'closed: no client certificate or certificate request in time');
      },
    });
    this.offs.push(() => this.portGuard?.close());
    if (servers.plaintext && addrs.plaintext) {
      this.addresses.plaintext = await this.bindGrpc(servers.plaintext, addrs.plaintext.host, addrs.plaintext.port, grpc.ServerCredentials.createInsecure(), 'plaintext xDS');
      this.logger.warn({ address: this.addresses.plaintext }, 'plaintext xDS enabled: it trusts node metadata (tests and benchmarks only)');
    }
  }

  private async setupDebug(addr: { host: string; port: number }): Promise<void> {
    this.debug = new DebugServer({
      xdsServers: this.xdsServers,
      cache: this.cache,
      registry: this.registry,
      configErrors: () => this.store.errors(),
      pushProblems: () => [...undefinedSubsets(this.pusher.pushContext), ...gatewayProblems(this.pusher.pushContext)],
      configVersion: () => this.store.version,
      pusher: this.pusher,
      metrics: this.metrics,
      ready: () => this.ready,
      info: () => ({ cluster: this.cluster, trustDomain: this.trustDomain, addresses: this.addresses }),
      trimMemory: () => this.trimmer?.trimNow(),
      remoteClusters: () => ({
        cluster: this.cluster,
        network: this.mesh.current().network,
        gateways: this.localGateways(),
        remoteClusters: this.peering?.status() ?? [],
        subscribers: this.peeringExport?.subscribers() ?? [],
        ...(this.centralLink ? { central: this.centralLink.status() } : {}),
        remoteControlPlanes: this.central?.status() ?? [],
        remoteClustersSeeCentral: this.mesh.current().remoteClustersSeeCentral,
        ...(this.mesh.current().remoteClustersSeeCentralNamespaces ? { remoteClustersSeeCentralNamespaces: this.mesh.current().remoteClustersSeeCentralNamespaces } : {}),
        networkGateways: this.peering?.networkGateways() ?? {},
      }),
    });
    try {
      this.addresses.debug = await this.debug.listen(addr.host, addr.port);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new IsleError('ERR_USAGE', `cannot listen on ${formatHostPort(addr.host, addr.port)} (debug): ${code === 'EADDRINUSE' ? 'address already in use' : e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** This network's east-west gateways: the configured ones plus connected gateway proxies. */
  localGateways(): GatewayAddress[] {
    const all = [...this.staticGateways, ...this.gatewayStreams.values()];
    const seen = new Set<string>();
    return all.filter((g) => {
      const k = `${g.address}:${g.port}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }

  /**
   * A gateway-mode proxy that connects is this network's east-west gateway on its IP:15443
   * (Istio finds them by the network label on the gateway Service); peers learn it from our export.
   */
  private watchGatewayProxies(xds: XdsServer): void {
    this.offs.push(
      xds.on('connect', ({ proxy }) => {
        const ip = gatewayIp(proxy.node.id);
        if (ip === undefined) return;
        this.gatewayStreams.set(proxy.streamId, { address: ip, port: EAST_WEST_PORT, cluster: this.cluster });
        this.refreshLocalGateways();
      }),
      xds.on('disconnect', ({ proxy }) => {
        if (this.gatewayStreams.delete(proxy.streamId)) this.refreshLocalGateways();
      }),
    );
  }

  /** Tells peering (our export and our view of the mesh) this network's gateways, on the current network. */
  private refreshLocalGateways(): void {
    const network = this.mesh.current().network;
    const gws = this.localGateways();
    this.peeringExport?.setGateways(gws, network);
    this.peering?.setLocal(network, gws);
  }

  /** Logs config problems as they appear and go (with file:line) and keeps the gauge current. */
  private watchConfigErrors(): void {
    let shown = new Set<string>();
    const update = (errors: readonly ConfigError[]) => {
      const now = new Set(errors.map(formatConfigError));
      for (const e of errors) {
        const text = formatConfigError(e);
        if (!shown.has(text)) this.logger[e.severity === 'error' ? 'error' : 'warn']({ file: e.file, line: e.line }, `config rejected: ${text}`);
      }
      for (const text of shown) if (!now.has(text)) this.logger.info(`config problem resolved: ${text}`);
      shown = now;
      this.metrics.configErrors.set(errors.filter((e) => e.severity === 'error').length);
    };
    update(this.store.errors());
    this.offs.push(this.store.subscribeErrors(update));
    const EVENT = { added: 'add', updated: 'update', deleted: 'delete' } as const;
    this.offs.push(this.store.subscribe((events) => {
      for (const e of events) this.metrics.configEvents.inc({ type: (e.type === 'deleted' ? e.previous : e.resource).kind, event: EVENT[e.type] });
    }));
  }

  /** Closes every listener, stream, watcher and timer. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const wasReady = this.ready;
      this.ready = false;
      for (const off of this.offs.splice(0)) off();
      if (this.settleTimer !== undefined) this.timers.clearTimeout(this.settleTimer);
      // Registrations are saved as they are (connected), before the pusher lets go of its
      // proxies: a stopped control plane is not a proxy that left, and the next start restores them.
      await this.persister?.flush();
      this.persister?.stop();
      this.pusher?.stop();
      this.centralLink?.close();
      this.central?.close();
      this.credentials?.stop();
      this.peering?.close();
      this.peeringExport?.close();
      for (const x of this.xdsServers) x.close();
      for (const s of this.grpcServers) s.forceShutdown();
      await this.debug?.close();
      this.shardWatch?.stop();
      this.autoRegistry?.close();
      this.mesh?.stop();
      await this.store.stop();
      await this.state?.close().catch((e: unknown) => this.logger.error({ err: e }, 'closing the state store failed'));
      // A start that failed has already said why; "stopped" would only bury that line.
      if (wasReady) this.logger.info('control plane stopped');
    })();
    return this.stopping;
  }
}
