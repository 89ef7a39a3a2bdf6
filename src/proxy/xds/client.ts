/**
 * The proxy's ADS client: the generic DiscoveryClient (one gRPC stream, delta by default, SotW on
 * request; nonces, ACK/NACK, back-off, resource versions) with the proxy's decoders and
 * subscriptions plugged in — Envoy's pattern: CDS and LDS wildcard, then EDS for the clusters'
 * service names, RDS for the listeners' route configs, SDS for the secrets they name — and the
 * resolved graph handed to `onGraph` only when it is complete. While the stream is down the proxy
 * keeps serving its last applied graph.
 */
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { pino } from 'pino';
import { realTimers, type Timers } from '../../mesh/timers.js';
import { CLUSTER_TYPE, LISTENER_TYPE, NAME_TABLE_TYPE, shortTypeName, type NodeMsg } from '../../xds/index.js';
import { DiscoveryClient, type AckEvent, type NackEvent, type XdsProtocol } from '../../xds/client/index.js';
import type { ConfigGraph, SecretModel } from '../model.js';
import type { NameTableModel } from '../decode/index.js';
import type { Backoff } from '../../mesh/backoff.js';
import { XdsState, type ProxyResources } from './state.js';

export type { NackEvent, XdsProtocol } from '../../xds/client/index.js';

/** Envoy's initial_fetch_timeout default. */
export const DEFAULT_INITIAL_FETCH_TIMEOUT_MS = 15_000;

export interface XdsClientOptions {
  /** host:port of the control plane. */
  address: string;
  /** Called for every (re)connection, so a rotated certificate is used from then on. */
  credentials: () => grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  node: NodeMsg;
  protocol?: XdsProtocol;
  backoff?: Backoff;
  /** How long a new EDS cluster waits for its endpoints before it starts with none. */
  initialFetchTimeoutMs?: number;
  /** Secrets the proxy holds itself (`default`); call `refresh()` when they change. */
  localSecrets?: () => readonly SecretModel[];
  /** Applies a resolved graph; calls are serialised (never two at once). */
  onGraph: (graph: ConfigGraph) => void | Promise<void>;
  /**
   * Subscribes to Istio's NDS name table (a wildcard) and hands each accepted table here, apart
   * from the graph: the DNS proxy's names never wait for listeners or clusters, nor they for it.
   */
  onNameTable?: (table: NameTableModel) => void;
  logger?: Logger;
  timers?: Timers;
  /** Wall clock for /config_dump timestamps. */
  now?: () => number;
}

export interface XdsClientStatus {
  protocol: XdsProtocol;
  address: string;
  connected: boolean;
  connectedSince: number | undefined;
  /** Streams opened, including the first. */
  connects: number;
  lastError: string | undefined;
  /** 'waiting' (nothing applied yet), 'warming' (an update is held), 'applied'. */
  state: 'waiting' | 'warming' | 'applied';
  waitingFor: string[];
  appliedAt: number | undefined;
  applyCount: number;
}

/** Events: `connected`, `disconnected` (why), `ack`, `nack` (NackEvent), `applied` (graph), `apply-error`. */
export class XdsClient extends EventEmitter {
  readonly state: XdsState;
  readonly protocol: XdsProtocol;
  private readonly stream: DiscoveryClient<ProxyResources>;
  private readonly timers: Timers;
  private readonly now: () => number;
  private readonly log: Logger;
  private warmTimer: unknown;
  private warmingExpired = false;
  private applying: Promise<void> | undefined;
  private reapply = false;
  private current: ConfigGraph | undefined;
  private readonly applyState: Pick<XdsClientStatus, 'state' | 'waitingFor' | 'appliedAt' | 'applyCount'>;

  constructor(private readonly opts: XdsClientOptions) {
    super();
    this.protocol = opts.protocol ?? 'delta';
    this.timers = opts.timers ?? realTimers;
    this.now = opts.now ?? Date.now;
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.state = new XdsState({ ...(opts.localSecrets ? { localSecrets: opts.localSecrets } : {}), now: this.now });
    this.applyState = { state: 'waiting', waitingFor: ['CDS', 'LDS'], appliedAt: undefined, applyCount: 0 };
    this.stream = new DiscoveryClient<ProxyResources>({
      channel: () => ({
        address: opts.address,
        credentials: opts.credentials(),
        options: { 'grpc.use_local_subchannel_pool': 1, 'grpc.ssl_target_name_override': 'isle-control-plane', ...opts.channelOptions },
      }),
      protocol: this.protocol,
      node: opts.node,
      store: this.state,
      subscriptions: (typeUrl) => {
        const names = this.state.subscriptions(typeUrl);
        if (typeUrl === NAME_TABLE_TYPE) return opts.onNameTable ? [] : null;
        const wildcard = typeUrl === CLUSTER_TYPE || typeUrl === LISTENER_TYPE;
        return wildcard || names.length > 0 ? names : null;
      },
      onAccepted: (typeUrl, res, version) => {
        this.log.debug({ type: shortTypeName(typeUrl), version, resources: this.state.type(typeUrl).accepted.size }, 'xDS update accepted');
        if (typeUrl === NAME_TABLE_TYPE) {
          opts.onNameTable?.(this.state.nameTable());
          return;
        }
        if ((res as { subscriptionsChanged?: boolean }).subscriptionsChanged) this.stream.updateSubscriptions();
        this.tryApply(false);
      },
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
      timers: this.timers,
      now: this.now,
    });
    this.stream.on('connected', () => {
      this.log.info({ address: opts.address, protocol: this.protocol }, 'xDS stream established');
      this.emit('connected');
    });
    this.stream.on('disconnected', (why: string, retryInMs: number) => {
      this.log.warn({ reason: why, retryInMs, attempt: this.stream.status().failures }, 'xDS stream down; serving the last good config');
      this.emit('disconnected', why);
    });
    this.stream.on('ack', (e: AckEvent) => this.emit('ack', e));
    this.stream.on('nack', (e: NackEvent) => {
      this.log.warn({ type: shortTypeName(e.typeUrl), version: e.version, errors: e.errors }, 'xDS update rejected (NACK); keeping the last good config');
      this.emit('nack', e);
    });
    this.stream.on('handler-error', (e: unknown) => this.log.error({ err: e }, 'xDS response handling failed'));
  }

  /** The graph in use (last applied), if any. */
  get applied(): ConfigGraph | undefined {
    return this.current;
  }

  status(): XdsClientStatus {
    const s = this.stream.status();
    return {
      protocol: s.protocol,
      address: this.opts.address,
      connected: s.connected,
      connectedSince: s.connectedSince,
      connects: s.connects,
      lastError: s.lastError,
      ...this.applyState,
      waitingFor: [...this.applyState.waitingFor],
    };
  }

  start(): void {
    this.stream.start();
  }

  /** Closes the stream for good; the applied graph stays with the caller. */
  stop(): void {
    if (this.warmTimer !== undefined) this.timers.clearTimeout(this.warmTimer);
    this.warmTimer = undefined;
    this.stream.stop();
  }

  /** Drops the stream and reconnects at once (e.g. to present a renewed certificate). */
  reconnect(): void {
    this.stream.reconnect();
  }

  /** Re-resolves and re-applies (local secrets changed, e.g. after certificate rotation). */
  refresh(): void {
    this.tryApply(true);
  }

  // -------------------------------------------------------------------------------------------
  // applying
  // -------------------------------------------------------------------------------------------

  private tryApply(force: boolean): void {
    if (this.applying) {
      this.reapply = true;
      return;
    }
    const r = this.state.resolve(this.current, this.warmingExpired);
    if (r.kind === 'warming') {
      this.applyState.state = this.current ? 'warming' : 'waiting';
      this.applyState.waitingFor = r.waiting;
      const onlyEds = r.waiting.every((w) => w.startsWith('EDS '));
      if (onlyEds && this.warmTimer === undefined) {
        this.warmTimer = this.timers.setTimeout(() => {
          this.warmTimer = undefined;
          this.warmingExpired = true;
          this.tryApply(false);
        }, this.opts.initialFetchTimeoutMs ?? DEFAULT_INITIAL_FETCH_TIMEOUT_MS);
      }
      return;
    }
    if (r.kind === 'error') {
      // Only reachable when local secrets changed into something inconsistent.
      this.log.error({ errors: r.errors }, 'config does not resolve; keeping the applied one');
      return;
    }
    if (this.warmTimer !== undefined) this.timers.clearTimeout(this.warmTimer);
    this.warmTimer = undefined;
    this.warmingExpired = false;
    this.applyState.waitingFor = [];
    if (!force && this.current && sameGraph(this.current, r.graph)) return;
    const graph = r.graph;
    this.applying = (async () => {
      try {
        await this.opts.onGraph(graph);
        this.current = graph;
        this.applyState.state = 'applied';
        this.applyState.appliedAt = this.now();
        this.applyState.applyCount++;
        this.emit('applied', graph);
      } catch (e) {
        this.log.error({ err: e }, 'applying config failed');
        this.emit('apply-error', e);
      }
    })().finally(() => {
      this.applying = undefined;
      if (this.reapply) {
        this.reapply = false;
        this.tryApply(force);
      }
    });
  }

  /** Resolves when no apply is running (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.applying) await this.applying;
  }
}

/** Same model objects everywhere: nothing to do. Models are rebuilt only when xDS changed. */
function sameGraph(a: ConfigGraph, b: ConfigGraph): boolean {
  const same = <T>(x: ReadonlyMap<string, T>, y: ReadonlyMap<string, T>): boolean => x.size === y.size && [...x].every(([k, v]) => y.get(k) === v);
  return same(a.listeners, b.listeners) && same(a.routes, b.routes) && same(a.clusters, b.clusters) && same(a.endpoints, b.endpoints) && same(a.secrets, b.secrets);
}
