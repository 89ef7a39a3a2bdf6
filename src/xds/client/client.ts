/**
 * One discovery client for every Isle subscriber of xDS-shaped feeds (the proxy's ADS stream,
 * peering's export feed, the remote control plane's feed from the central one). It owns what
 * they all need and nothing they differ in:
 *
 * - the gRPC stream (delta or SotW), re-opened after any failure with exponential back-off
 *   (mesh/backoff.ts) while the owner keeps serving its last good state;
 * - nonces, ACK and NACK (every decode error of a response in one NACK, last good kept:
 *   grpc-js-xds's rule), the node sent once per stream;
 * - resource versions: a delta reconnect sends `initial_resource_versions`, a SotW one the
 *   accepted `version_info`, so an unchanged server has nothing to resend;
 * - subscriptions, diffed against what this stream has asked for.
 *
 * What a resource means is the owner's: a table of decoders in the ResourceStore, the names to
 * subscribe to (`subscriptions`), and `onAccepted` for what follows an ACK (graph resolution in
 * the proxy, the registry shard in peering). Kuma's pkg/kds/client splits it the same way: one
 * stream with callbacks per type, the meaning kept in the component that subscribes.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { exponentialBackoff, type Backoff } from '../../mesh/backoff.js';
import { realTimers, type Timers } from '../../mesh/timers.js';
import { adsServiceDefinition } from '../ads.js';
import type { DeltaDiscoveryRequestMsg, DeltaDiscoveryResponseMsg, DiscoveryRequestMsg, DiscoveryResponseMsg, NodeMsg } from '../protos.js';
import type { HandleResult, ResourceStore, Update } from './resources.js';

export type XdsProtocol = 'delta' | 'sotw';

/** google.rpc.Code values used in error_detail. */
const INVALID_ARGUMENT = 3;
const UNIMPLEMENTED = 12;

export type ChannelSpec = OwnChannel | SharedChannel;

/** A channel someone else owns (several streams over one connection); never closed here. */
export interface SharedChannel {
  address: string;
  shared: grpc.Client;
}

export interface OwnChannel {
  address: string;
  credentials: grpc.ChannelCredentials;
  options?: grpc.ChannelOptions;
  /** The channel is reused across reconnects while `key` stays the same; without a key every connect gets a fresh one. */
  key?: string;
}

type AnyRequest = DiscoveryRequestMsg | DeltaDiscoveryRequestMsg;
type AnyResponse = DiscoveryResponseMsg | DeltaDiscoveryResponseMsg;

export interface DiscoveryClientOptions<M> {
  /** Called on every (re)connect, so rotated certificates are used from then on. */
  channel: () => ChannelSpec;
  protocol?: XdsProtocol;
  /** The gRPC method path when it is not ADS's (peering serves delta ADS messages under its own service). */
  path?: string;
  node: NodeMsg;
  store: ResourceStore<M>;
  /**
   * Names to subscribe to per type: `null` while there is nothing to ask for (the type is opened
   * later), `[]` for a legacy wildcard (CDS/LDS), `['*']` for an explicit one. Default `['*']`.
   */
  subscriptions?: (typeUrl: string) => readonly string[] | null;
  /** After an accepted response was ACKed. */
  onAccepted?: (typeUrl: string, result: HandleResult, version: string) => void;
  /** A stream was opened (before its first request is written). */
  onStreamOpen?: () => void;
  /** Human text for a stream failure (default `CODE: details`); `undefined` when the server ended the stream cleanly. */
  describeError?: (e: grpc.ServiceError | undefined) => string;
  backoff?: Backoff;
  timers?: Timers;
  now?: () => number;
}

export interface DiscoveryClientStatus {
  protocol: XdsProtocol;
  address: string;
  connected: boolean;
  /** Wall clock of the first response on the current stream. */
  connectedSince: number | undefined;
  /** Streams opened, including the first. */
  connects: number;
  /** Failed attempts since the last stream that got a response. */
  failures: number;
  lastError: string | undefined;
  /** What this client wrote: first requests and subscription changes, ACKs, NACKs. */
  sent: SentRequests;
}

export interface SentRequests {
  subscribe: number;
  ack: number;
  nack: number;
}

export interface AckEvent {
  typeUrl: string;
  version: string;
  nonce: string;
}

export interface NackEvent extends AckEvent {
  errors: string[];
}

interface StreamState {
  client: grpc.Client;
  call: grpc.ClientDuplexStream<AnyRequest, AnyResponse>;
  nodeSent: boolean;
  nonces: Map<string, string>;
  /** Names last subscribed per type on this stream. */
  sent: Map<string, readonly string[]>;
  closed: boolean;
}

/**
 * Events: `connected` (first response on a stream), `disconnected` (why, retry delay in ms),
 * `ack` (AckEvent), `nack` (NackEvent), `handler-error` (an owner's hook threw).
 */
export class DiscoveryClient<M> extends EventEmitter {
  readonly protocol: XdsProtocol;
  readonly store: ResourceStore<M>;
  private readonly backoff: Backoff;
  private readonly timers: Timers;
  private readonly now: () => number;
  private readonly subs: (typeUrl: string) => readonly string[] | null;
  private stream: StreamState | undefined;
  private channel: { client: grpc.Client; key: string | undefined; owned: boolean } | undefined;
  private reconnectTimer: unknown;
  private stopped = true;
  private address = '';
  private readonly st: Omit<DiscoveryClientStatus, 'address' | 'protocol' | 'sent'>;
  readonly sent: SentRequests = { subscribe: 0, ack: 0, nack: 0 };

  constructor(private readonly opts: DiscoveryClientOptions<M>) {
    super();
    this.protocol = opts.protocol ?? 'delta';
    this.store = opts.store;
    this.backoff = opts.backoff ?? exponentialBackoff();
    this.timers = opts.timers ?? realTimers;
    this.now = opts.now ?? Date.now;
    this.subs = opts.subscriptions ?? (() => ['*']);
    this.st = { connected: false, connectedSince: undefined, connects: 0, failures: 0, lastError: undefined };
  }

  status(): DiscoveryClientStatus {
    return { ...this.st, protocol: this.protocol, address: this.address, sent: { ...this.sent } };
  }

  get connected(): boolean {
    return this.st.connected;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  /** Closes the stream and the channel for good; the store keeps what was accepted. */
  stop(): void {
    this.stopped = true;
    if (this.reconnectTimer !== undefined) this.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.closeStream();
    this.closeChannel();
  }

  /** Drops the stream (and channel) and reconnects at once: a renewed certificate, a new address. */
  reconnect(): void {
    if (this.stopped) return;
    this.closeStream();
    this.closeChannel();
    this.st.failures = 0;
    if (this.reconnectTimer !== undefined) this.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.connect();
  }

  /** Re-reads `subscriptions` for every type and tells the server what changed. */
  updateSubscriptions(): void {
    const s = this.stream;
    if (!s) return;
    for (const typeUrl of this.store.typeUrls) {
      const names = this.subs(typeUrl);
      if (names === null) continue;
      const before = s.sent.get(typeUrl);
      if (!before) {
        this.openType(s, typeUrl);
        continue;
      }
      const was = new Set(before);
      const now = new Set(names);
      const added = names.filter((n) => !was.has(n));
      const removed = before.filter((n) => !now.has(n));
      if (!added.length && !removed.length) continue;
      s.sent.set(typeUrl, [...names]);
      this.sent.subscribe++;
      if (this.protocol === 'delta') {
        this.write(s, { type_url: typeUrl, resource_names_subscribe: added, resource_names_unsubscribe: removed });
      } else {
        const nonce = s.nonces.get(typeUrl);
        this.write(s, { type_url: typeUrl, version_info: this.store.type(typeUrl).version, resource_names: [...names], ...(nonce ? { response_nonce: nonce } : {}) });
      }
    }
  }

  // --- stream ------------------------------------------------------------------------------------

  private openChannel(): grpc.Client {
    const spec = this.opts.channel();
    this.address = spec.address;
    if ('shared' in spec) {
      if (this.channel?.client !== spec.shared) this.closeChannel();
      this.channel = { client: spec.shared, key: 'shared', owned: false };
      return spec.shared;
    }
    if (this.channel && (spec.key === undefined || spec.key !== this.channel.key || !this.channel.owned)) this.closeChannel();
    if (!this.channel) this.channel = { client: new grpc.Client(spec.address, spec.credentials, spec.options ?? {}), key: spec.key, owned: true };
    return this.channel.client;
  }

  private closeChannel(): void {
    if (this.channel?.owned) this.channel.client.close();
    this.channel = undefined;
  }

  private connect(): void {
    if (this.stopped) return;
    let client: grpc.Client;
    try {
      client = this.openChannel();
    } catch (e) {
      this.failed(e instanceof Error ? e.message : String(e));
      return;
    }
    const def = adsServiceDefinition();
    const m = this.protocol === 'delta' ? def.DeltaAggregatedResources : def.StreamAggregatedResources;
    const call = client.makeBidiStreamRequest(
      this.opts.path ?? m.path,
      m.requestSerialize as (v: AnyRequest) => Buffer,
      m.responseDeserialize as (b: Buffer) => AnyResponse,
      new grpc.Metadata(),
      {},
    );
    const s: StreamState = { client, call, nodeSent: false, nonces: new Map(), sent: new Map(), closed: false };
    this.stream = s;
    this.st.connects++;
    this.opts.onStreamOpen?.();
    const end = (why: string): void => {
      if (s.closed || s !== this.stream) return;
      this.closeStream();
      this.failed(why);
    };
    call.on('data', (msg: AnyResponse) => {
      if (s.closed) return;
      if (!this.st.connected) {
        this.st.connected = true;
        this.st.connectedSince = this.now();
        this.st.lastError = undefined;
        this.st.failures = 0;
        this.emit('connected');
      }
      try {
        this.onResponse(s, msg);
      } catch (e) {
        // An owner's hook failed: the stream itself is fine.
        this.emit('handler-error', e);
      }
    });
    const describe = (e: grpc.ServiceError | undefined): string =>
      this.opts.describeError?.(e) ?? (e ? `${grpc.status[e.code] ?? e.code}: ${e.details || e.message}` : 'stream closed by the server');
    call.on('error', (e: grpc.ServiceError) => end(describe(e)));
    call.on('status', (st: grpc.StatusObject) => {
      if (st.code === grpc.status.OK) end(describe(undefined));
    });
    call.on('end', () => end(describe(undefined)));
    for (const t of this.store.typeUrls) this.openType(s, t);
  }

  private failed(why: string): void {
    this.st.lastError = why;
    if (this.stopped) return;
    this.st.failures++;
    const delay = this.backoff(this.st.failures);
    this.emit('disconnected', why, delay);
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
    this.st.connected = false;
    this.st.connectedSince = undefined;
    try {
      s.call.cancel();
    } catch {
      // already gone
    }
    // A channel without a key is this stream's alone.
    if (this.channel && this.channel.key === undefined) this.closeChannel();
  }

  private write(s: StreamState, req: AnyRequest): void {
    if (s.closed) return;
    if (!s.nodeSent) {
      req.node = this.opts.node;
      s.nodeSent = true;
    }
    try {
      s.call.write(req);
    } catch {
      // The stream is failing; its error event reconnects.
    }
  }

  /** First request of a type on a stream (a type with nothing to ask for waits). */
  private openType(s: StreamState, typeUrl: string): void {
    const names = this.subs(typeUrl);
    if (names === null) return;
    s.sent.set(typeUrl, [...names]);
    this.sent.subscribe++;
    if (this.protocol === 'delta') {
      const req: DeltaDiscoveryRequestMsg = { type_url: typeUrl, resource_names_subscribe: [...names] };
      const versions = this.store.resourceVersions(typeUrl);
      if (Object.keys(versions).length) req.initial_resource_versions = versions;
      this.write(s, req);
    } else {
      this.write(s, { type_url: typeUrl, version_info: this.store.type(typeUrl).version, resource_names: [...names] });
    }
  }

  private onResponse(s: StreamState, msg: AnyResponse): void {
    const typeUrl = msg.type_url;
    const nonce = msg.nonce;
    s.nonces.set(typeUrl, nonce);
    let update: Update;
    if (this.protocol === 'delta') {
      const d = msg as DeltaDiscoveryResponseMsg;
      update = { kind: 'delta', version: d.system_version_info ?? '', resources: d.resources ?? [], removed: d.removed_resources ?? [] };
    } else {
      const r = msg as DiscoveryResponseMsg;
      update = { kind: 'sotw', version: r.version_info ?? '', resources: r.resources ?? [] };
    }
    const version = update.version;
    if (!this.store.has(typeUrl)) {
      this.nack(s, typeUrl, nonce, version, [`type ${typeUrl} was not asked for`], UNIMPLEMENTED);
      return;
    }
    const res = this.store.handle(typeUrl, update, nonce);
    if (!res.ack) {
      this.nack(s, typeUrl, nonce, version, res.errors, INVALID_ARGUMENT);
      return;
    }
    this.sent.ack++;
    if (this.protocol === 'delta') this.write(s, { type_url: typeUrl, response_nonce: nonce });
    else this.write(s, { type_url: typeUrl, version_info: version, resource_names: [...(s.sent.get(typeUrl) ?? [])], response_nonce: nonce });
    this.emit('ack', { typeUrl, version, nonce } satisfies AckEvent);
    this.opts.onAccepted?.(typeUrl, res, version);
  }

  private nack(s: StreamState, typeUrl: string, nonce: string, version: string, errors: string[], code: number): void {
    const error_detail = { code, message: errors.join('; ') };
    this.sent.nack++;
    if (this.protocol === 'delta') this.write(s, { type_url: typeUrl, response_nonce: nonce, error_detail });
    else {
      const accepted = this.store.has(typeUrl) ? this.store.type(typeUrl).version : '';
      this.write(s, { type_url: typeUrl, version_info: accepted, resource_names: [...(s.sent.get(typeUrl) ?? [])], response_nonce: nonce, error_detail });
    }
    this.emit('nack', { typeUrl, version, nonce, errors } satisfies NackEvent);
  }
}
