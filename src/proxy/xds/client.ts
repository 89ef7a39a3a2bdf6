/**
 * The proxy's ADS client: one gRPC stream (delta by default, SotW on request) over mTLS to the
 * control plane, Envoy's subscription pattern (CDS and LDS wildcard, then EDS for the clusters'
 * service names, RDS for the listeners' route configs, SDS for the secrets they name), ACK/NACK
 * per response through XdsState, and the resolved graph handed to `onGraph` only when it is
 * complete. The stream is re-opened with exponential backoff and jitter after any failure;
 * meanwhile the proxy keeps serving its last applied graph. On reconnect a delta stream sends
 * `initial_resource_versions`, a SotW stream the accepted `version_info`, so an unchanged
 * control plane has nothing to resend.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { pino } from 'pino';
import { realTimers, type Timers } from '../../mesh/timers.js';
import {
  adsServiceDefinition,
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  LISTENER_TYPE,
  ROUTE_TYPE,
  SECRET_TYPE,
  shortTypeName,
  type DeltaDiscoveryRequestMsg,
  type DeltaDiscoveryResponseMsg,
  type DiscoveryRequestMsg,
  type DiscoveryResponseMsg,
  type NodeMsg,
} from '../../xds/index.js';
import type { ConfigGraph, SecretModel } from '../model.js';
import { exponentialBackoff, type Backoff } from '../../mesh/backoff.js';
import { XDS_TYPES, XdsState, type Update } from './state.js';

export type XdsProtocol = 'delta' | 'sotw';

/** Envoy's initial_fetch_timeout default. */
export const DEFAULT_INITIAL_FETCH_TIMEOUT_MS = 15_000;

/** google.rpc.Code INVALID_ARGUMENT, what Envoy puts in error_detail of a NACK. */
const INVALID_ARGUMENT = 3;

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

export interface NackEvent {
  typeUrl: string;
  version: string;
  nonce: string;
  errors: string[];
}

type Stream = grpc.ClientDuplexStream<DiscoveryRequestMsg | DeltaDiscoveryRequestMsg, DiscoveryResponseMsg | DeltaDiscoveryResponseMsg>;

interface StreamState {
  client: grpc.Client;
  call: Stream;
  nodeSent: boolean;
  nonces: Map<string, string>;
  /** Names last subscribed per type on this stream. */
  sent: Map<string, Set<string>>;
  /** Types for which a request was sent on this stream. */
  opened: Set<string>;
  closed: boolean;
}

export class XdsClient extends EventEmitter {
  readonly state: XdsState;
  readonly protocol: XdsProtocol;
  private readonly backoff: Backoff;
  private readonly timers: Timers;
  private readonly now: () => number;
  private readonly log: Logger;
  private stream: StreamState | undefined;
  private attempt = 0;
  private reconnectTimer: unknown;
  private warmTimer: unknown;
  private warmingExpired = false;
  private stopped = false;
  private applying: Promise<void> | undefined;
  private reapply = false;
  private current: ConfigGraph | undefined;
  private readonly st: XdsClientStatus;

  constructor(private readonly opts: XdsClientOptions) {
    super();
    this.protocol = opts.protocol ?? 'delta';
    this.backoff = opts.backoff ?? exponentialBackoff();
    this.timers = opts.timers ?? realTimers;
    this.now = opts.now ?? Date.now;
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.state = new XdsState({ ...(opts.localSecrets ? { localSecrets: opts.localSecrets } : {}), now: this.now });
    this.st = {
      protocol: this.protocol,
      address: opts.address,
      connected: false,
      connectedSince: undefined,
      connects: 0,
      lastError: undefined,
      state: 'waiting',
      waitingFor: ['CDS', 'LDS'],
      appliedAt: undefined,
      applyCount: 0,
    };
  }

  /** The graph in use (last applied), if any. */
  get applied(): ConfigGraph | undefined {
    return this.current;
  }

  status(): XdsClientStatus {
    return { ...this.st, waitingFor: [...this.st.waitingFor] };
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  /** Closes the stream for good; the applied graph stays with the caller. */
  stop(): void {
    this.stopped = true;
    if (this.reconnectTimer !== undefined) this.timers.clearTimeout(this.reconnectTimer);
    if (this.warmTimer !== undefined) this.timers.clearTimeout(this.warmTimer);
    this.reconnectTimer = this.warmTimer = undefined;
    this.closeStream();
  }

  /** Drops the stream and reconnects at once (e.g. to present a renewed certificate). */
  reconnect(): void {
    if (this.stopped) return;
    this.closeStream();
    this.attempt = 0;
    if (this.reconnectTimer !== undefined) this.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.connect();
  }

  /** Re-resolves and re-applies (local secrets changed, e.g. after certificate rotation). */
  refresh(): void {
    this.tryApply(true);
  }

  // -------------------------------------------------------------------------------------------
  // stream
  // -------------------------------------------------------------------------------------------

  private connect(): void {
    if (this.stopped) return;
    let client: grpc.Client;
    try {
      client = new grpc.Client(this.opts.address, this.opts.credentials(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.ssl_target_name_override': 'isle-control-plane', ...this.opts.channelOptions });
    } catch (e) {
      this.failed(e instanceof Error ? e.message : String(e));
      return;
    }
    const def = adsServiceDefinition();
    const m = this.protocol === 'delta' ? def.DeltaAggregatedResources : def.StreamAggregatedResources;
    const call = client.makeBidiStreamRequest(
      m.path,
      m.requestSerialize as (v: DiscoveryRequestMsg | DeltaDiscoveryRequestMsg) => Buffer,
      m.responseDeserialize as (b: Buffer) => DiscoveryResponseMsg | DeltaDiscoveryResponseMsg,
      new grpc.Metadata(),
      {},
    ) as Stream;
    const s: StreamState = { client, call, nodeSent: false, nonces: new Map(), sent: new Map(), opened: new Set(), closed: false };
    this.stream = s;
    this.st.connects++;
    call.on('data', (msg: DiscoveryResponseMsg | DeltaDiscoveryResponseMsg) => {
      if (s.closed) return;
      if (!this.st.connected) {
        this.st.connected = true;
        this.st.connectedSince = this.now();
        this.st.lastError = undefined;
        this.attempt = 0;
        this.log.info({ address: this.opts.address, protocol: this.protocol }, 'xDS stream established');
        this.emit('connected');
      }
      try {
        this.onResponse(s, msg);
      } catch (e) {
        this.log.error({ err: e }, 'xDS response handling failed');
      }
    });
    call.on('error', (e: grpc.ServiceError) => {
      if (!s.closed) this.st.lastError = e.details || e.message;
    });
    call.on('status', (status: grpc.StatusObject) => {
      if (s.closed) return;
      this.streamEnded(s, status.code === grpc.status.OK ? 'stream closed by the control plane' : `${grpc.status[status.code] ?? status.code}: ${status.details}`);
    });
    call.on('end', () => {
      if (!s.closed) this.streamEnded(s, 'stream ended');
    });
    for (const t of XDS_TYPES) this.openType(s, t);
  }

  private streamEnded(s: StreamState, why: string): void {
    if (s !== this.stream) return;
    this.closeStream();
    this.failed(why);
  }

  private failed(why: string): void {
    this.st.lastError = why;
    if (this.stopped) return;
    this.attempt++;
    const delay = this.backoff(this.attempt);
    this.log.warn({ reason: why, retryInMs: delay, attempt: this.attempt }, 'xDS stream down; serving the last good config');
    this.emit('disconnected', why);
    this.reconnectTimer = this.timers.setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delay);
  }

  private closeStream(): void {
    const s = this.stream;
    if (!s) return;
    s.closed = true;
    this.stream = undefined;
    if (this.st.connected) {
      this.st.connected = false;
      this.st.connectedSince = undefined;
    }
    try {
      s.call.cancel();
    } catch {
      // already gone
    }
    s.client.close();
  }

  private send(s: StreamState, req: DiscoveryRequestMsg | DeltaDiscoveryRequestMsg): void {
    if (s.closed) return;
    if (!s.nodeSent) {
      req.node = this.opts.node;
      s.nodeSent = true;
    }
    s.call.write(req);
  }

  /** First request of a type on a stream (types with nothing to ask for wait for names). */
  private openType(s: StreamState, typeUrl: string): void {
    const wildcard = typeUrl === CLUSTER_TYPE || typeUrl === LISTENER_TYPE;
    const names = this.state.subscriptions(typeUrl);
    if (!wildcard && names.length === 0) return;
    s.opened.add(typeUrl);
    s.sent.set(typeUrl, new Set(names));
    const t = this.state.type(typeUrl);
    if (this.protocol === 'delta') {
      const req: DeltaDiscoveryRequestMsg = { type_url: typeUrl, resource_names_subscribe: names };
      const versions = this.state.resourceVersions(typeUrl);
      if (Object.keys(versions).length) req.initial_resource_versions = versions;
      this.send(s, req);
    } else {
      this.send(s, { type_url: typeUrl, version_info: t.version, resource_names: names });
    }
  }

  /** After an accepted response: tell the server about new EDS/RDS/SDS names. */
  private updateSubscriptions(s: StreamState): void {
    for (const typeUrl of [ENDPOINT_TYPE, ROUTE_TYPE, SECRET_TYPE]) {
      const names = this.state.subscriptions(typeUrl);
      if (!s.opened.has(typeUrl)) {
        this.openType(s, typeUrl);
        continue;
      }
      const before = s.sent.get(typeUrl) ?? new Set<string>();
      const now = new Set(names);
      const added = names.filter((n) => !before.has(n));
      const removed = [...before].filter((n) => !now.has(n));
      if (!added.length && !removed.length) continue;
      s.sent.set(typeUrl, now);
      if (this.protocol === 'delta') {
        this.send(s, { type_url: typeUrl, resource_names_subscribe: added, resource_names_unsubscribe: removed });
      } else {
        const nonce = s.nonces.get(typeUrl);
        this.send(s, { type_url: typeUrl, version_info: this.state.type(typeUrl).version, resource_names: names, ...(nonce ? { response_nonce: nonce } : {}) });
      }
    }
  }

  private onResponse(s: StreamState, msg: DiscoveryResponseMsg | DeltaDiscoveryResponseMsg): void {
    const typeUrl = msg.type_url;
    const nonce = msg.nonce;
    s.nonces.set(typeUrl, nonce);
    let update: Update;
    let version: string;
    if (this.protocol === 'delta') {
      const d = msg as DeltaDiscoveryResponseMsg;
      version = d.system_version_info ?? '';
      update = { kind: 'delta', version, resources: d.resources ?? [], removed: d.removed_resources ?? [] };
    } else {
      const r = msg as DiscoveryResponseMsg;
      version = r.version_info ?? '';
      update = { kind: 'sotw', version, resources: r.resources ?? [] };
    }
    if (!XDS_TYPES.includes(typeUrl)) {
      this.nack(s, typeUrl, nonce, version, [`unsupported type ${typeUrl}`]);
      return;
    }
    const res = this.state.handle(typeUrl, update, nonce);
    if (!res.ack) {
      this.nack(s, typeUrl, nonce, version, res.errors);
      return;
    }
    this.log.debug({ type: shortTypeName(typeUrl), version, resources: this.state.type(typeUrl).accepted.size }, 'xDS update accepted');
    if (this.protocol === 'delta') this.send(s, { type_url: typeUrl, response_nonce: nonce });
    else this.send(s, { type_url: typeUrl, version_info: version, resource_names: [...(s.sent.get(typeUrl) ?? [])], response_nonce: nonce });
    this.emit('ack', { typeUrl, version, nonce });
    if (res.subscriptionsChanged) this.updateSubscriptions(s);
    this.tryApply(false);
  }

  private nack(s: StreamState, typeUrl: string, nonce: string, version: string, errors: string[]): void {
    const message = errors.join('; ');
    this.log.warn({ type: shortTypeName(typeUrl), version, errors }, 'xDS update rejected (NACK); keeping the last good config');
    const error_detail = { code: INVALID_ARGUMENT, message };
    if (this.protocol === 'delta') this.send(s, { type_url: typeUrl, response_nonce: nonce, error_detail });
    else {
      const t = XDS_TYPES.includes(typeUrl) ? this.state.type(typeUrl).version : '';
      this.send(s, { type_url: typeUrl, version_info: t, resource_names: [...(s.sent.get(typeUrl) ?? [])], response_nonce: nonce, error_detail });
    }
    this.emit('nack', { typeUrl, version, nonce, errors } satisfies NackEvent);
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
      this.st.state = this.current ? 'warming' : 'waiting';
      this.st.waitingFor = r.waiting;
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
    this.st.waitingFor = [];
    if (!force && this.current && sameGraph(this.current, r.graph)) return;
    const graph = r.graph;
    this.applying = (async () => {
      try {
        await this.opts.onGraph(graph);
        this.current = graph;
        this.st.state = 'applied';
        this.st.appliedAt = this.now();
        this.st.applyCount++;
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
