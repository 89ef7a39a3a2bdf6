/**
 * Envoy's Aggregated Discovery Service (envoy.service.discovery.v3.AggregatedDiscoveryService),
 * state of the world (StreamAggregatedResources) and delta (DeltaAggregatedResources), as a thin
 * protocol layer over a ConfigWatcher (cache.ts): the cache says what a node should have, this
 * file decides what each stream still needs and keeps the per-type nonce/ACK/NACK bookkeeping.
 *
 * Protocol choices (see docs/decisions/0005-xds-server.md):
 * - Each type has its own nonce. A request quoting the last nonce sent is an ACK, or a NACK when
 *   it carries error_detail. A request quoting any other nonce is stale: SotW ignores it entirely
 *   (the client will send a current one); delta still applies its subscription changes, which are
 *   incremental and would otherwise be lost, but never counts it as an ACK/NACK. Before anything of
 *   a type was sent on the stream, any nonce is accepted as an initial request (a client coming
 *   back from another server instance quotes that server's nonce).
 * - After a NACK nothing is resent: a type is pushed only when the cache holds a version other than
 *   the one last sent (or, SotW, the subscribed names select other resources). The proxy keeps its
 *   last ACKed config; a newer version is sent as soon as it exists. Delta records what it sent as
 *   the proxy's state before the ACK; a NACK of the latest response rolls that record back (the
 *   proxy kept what it had, removals included) and marks the rejected (name, version) pairs, which
 *   are not resent while the cache's version is the one rejected. The next cache version carries
 *   everything the proxy still lacks, a NACKed removal too.
 * - Types the server does not serve are ignored: no response, no watch, a warning once per stream
 *   (what go-control-plane and istiod do), so a newer Envoy asking for an extra type keeps working.
 * - Types pending together are sent in PUSH_ORDER (CDS, EDS, LDS, RDS, SDS): changes arriving in
 *   the same tick are collected and flushed in a microtask.
 */
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { adsServiceDefinition } from './ads.js';
import { diffTypeSnapshots, type ConfigWatcher, type TypeSnapshot, type XdsResource } from './cache.js';
import { keepNames, NAMES_BYTES, shareNames, sharedNames, stepNames, type NamesBytes } from './sotwrequest.js';
import { directWriter, type DirectWriter } from './directsend.js';
import { directReader } from './directrecv.js';
import { deltaAllBytes, deltaResourceBytes, PREENCODED, responseParts, sotwAllBytes, sotwResourceBytes, type Preencoded } from './preencoded.js';
import type {
  AnyMsg,
  DeltaDiscoveryRequestMsg,
  DeltaDiscoveryResponseMsg,
  DiscoveryRequestMsg,
  DiscoveryResponseMsg,
  NodeMsg,
  StatusMsg,
} from './protos.js';
import { ENDPOINT_TYPE, PUSH_ORDER, shortTypeName, WILDCARD_TYPES } from '../mesh/typeurls.js';

/** pino-compatible subset, so a pino logger can be passed as is. */
export interface XdsLogger {
  /** pino's: lets per-ACK debug lines skip building their context when debug is off. */
  isLevelEnabled?(level: string): boolean;
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const silent: XdsLogger = { isLevelEnabled: () => false, debug() {}, info() {}, warn() {}, error() {} };

export interface NodeInfo {
  id: string;
  cluster: string;
  /** node.metadata as plain JSON (Istio puts NAMESPACE, LABELS, NETWORK… here). */
  metadata: Record<string, unknown>;
  locality?: { region?: string; zone?: string; sub_zone?: string };
  userAgent?: string;
}

export interface NackInfo {
  version: string;
  nonce: string;
  code: number;
  message: string;
  at: number;
}

export interface TypeStatus {
  typeUrl: string;
  wildcard: boolean;
  names: string[];
  versionSent?: string;
  nonce?: string;
  sentAt?: number;
  versionAcked?: string;
  ackedAt?: number;
  lastNack?: NackInfo;
}

export type XdsProtocol = 'sotw' | 'delta';

export interface ProxyStatus {
  streamId: string;
  protocol: XdsProtocol;
  node: NodeInfo;
  /** The cache key this stream watches (node id unless `nodeKey` says otherwise). */
  key: string;
  peer: string;
  connectedSince: number;
  /** In push order. */
  types: TypeStatus[];
  /** Type URLs the proxy asked for that this server does not serve. */
  ignoredTypes: string[];
}

interface StreamRef {
  streamId: string;
  protocol: XdsProtocol;
  nodeId: string;
}

export interface SendEvent extends StreamRef {
  typeUrl: string;
  version: string;
  nonce: string;
  resources: number;
  removed: number;
  /** Encoded size of the resources carried (the response's own few fields aside). */
  bytes: number;
  /** The response object as written (its Any values are the cache's shared buffers). */
  response: DiscoveryResponseMsg | DeltaDiscoveryResponseMsg;
}

export interface AckEvent extends StreamRef {
  typeUrl: string;
  version: string;
  nonce: string;
  sentAt: number;
  ackedAt: number;
}

export interface NackEvent extends StreamRef, NackInfo {
  typeUrl: string;
  /** What the proxy still runs, if it ever ACKed this type on this stream. */
  versionAcked?: string;
}

export interface XdsServerEvents {
  connect: (e: { proxy: ProxyStatus }) => void;
  disconnect: (e: { proxy: ProxyStatus; reason: string }) => void;
  send: (e: SendEvent) => void;
  ack: (e: AckEvent) => void;
  nack: (e: NackEvent) => void;
}

export interface XdsServerOptions {
  cache: ConfigWatcher;
  /** Types served, in push order. Default PUSH_ORDER; peering adds its own. */
  typeUrls?: readonly string[];
  /** Types where an empty first subscription means all. Default CDS and LDS. */
  wildcardTypes?: ReadonlySet<string>;
  /** Cache key of a stream; default the node id. */
  nodeKey?: (node: NodeInfo) => string;
  logger?: XdsLogger;
  /** Clock for status and event timestamps (ms). */
  now?: () => number;
  /**
   * Decides, on the first request, whether this stream may speak for `node` (e.g. the SPIFFE id
   * of the client certificate must match the node's namespace and service account). A string is
   * the reason for refusing: the stream ends with PERMISSION_DENIED and that message.
   * Default: every node is accepted.
   */
  authenticate?: (node: NodeInfo, call: grpc.ServerDuplexStream<unknown, unknown>) => string | undefined;
}

/** Server options worth setting on the grpc.Server the ADS service is added to. */
export const RECOMMENDED_GRPC_SERVER_OPTIONS: grpc.ServerOptions = {
  // A DiscoveryRequest is small (names and a node); large ones are abuse or bugs.
  'grpc.max_receive_message_length': 4 * 1024 * 1024,
  // Responses with thousands of endpoints can be big.
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 10_000,
};

type Listeners = { [K in keyof XdsServerEvents]: Set<XdsServerEvents[K]> };

export class XdsServer {
  readonly cache: ConfigWatcher;
  readonly typeUrls: readonly string[];
  private readonly served: ReadonlySet<string>;
  private readonly wildcardTypes: ReadonlySet<string>;
  private readonly nodeKey: (node: NodeInfo) => string;
  readonly logger: XdsLogger;
  readonly now: () => number;
  readonly authenticate: XdsServerOptions['authenticate'];
  private readonly streams = new Map<string, AdsStream>();
  private readonly listeners: Listeners = {
    connect: new Set(),
    disconnect: new Set(),
    send: new Set(),
    ack: new Set(),
    nack: new Set(),
  };
  private streamSeq = 0;
  private nonceSeq = 0;
  /** Nonces from another server instance never match ours. */
  private readonly noncePrefix = randomBytes(4).toString('hex') + '-';
  /** Responses written as shared parts (directsend.ts) vs serialized whole by grpc-js. */
  readonly writes = { direct: 0, copied: 0 };
  /** Streams whose requests are read from the HTTP/2 chunks (directrecv.ts) vs through grpc-js' decoder. */
  readonly reads = { direct: 0, copied: 0 };

  constructor(options: XdsServerOptions) {
    this.cache = options.cache;
    this.typeUrls = options.typeUrls ?? PUSH_ORDER;
    this.served = new Set(this.typeUrls);
    this.wildcardTypes = options.wildcardTypes ?? WILDCARD_TYPES;
    this.nodeKey = options.nodeKey ?? ((n) => n.id);
    this.logger = options.logger ?? silent;
    this.now = options.now ?? Date.now;
    this.authenticate = options.authenticate;
  }

  /** Registers the ADS service; the caller owns the server (credentials, bind, shutdown). */
  addToServer(server: grpc.Server): void {
    server.addService(adsServiceDefinition(), {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequestMsg, DiscoveryResponseMsg>) =>
        this.open('sotw', call),
      DeltaAggregatedResources: (
        call: grpc.ServerDuplexStream<DeltaDiscoveryRequestMsg, DeltaDiscoveryResponseMsg>,
      ) => this.open('delta', call),
    } as grpc.UntypedServiceImplementation);
  }

  /** Subscribes to an event; returns the unsubscribe function. Listener errors are logged, never thrown. */
  on<K extends keyof XdsServerEvents>(event: K, listener: XdsServerEvents[K]): () => void {
    const set = this.listeners[event] as Set<XdsServerEvents[K]>;
    set.add(listener);
    return () => set.delete(listener);
  }

  /** One entry per open stream that has identified its node. */
  status(): ProxyStatus[] {
    const out: ProxyStatus[] = [];
    for (const s of this.streams.values()) {
      const st = s.status();
      if (st) out.push(st);
    }
    return out;
  }

  /** Open streams, including ones that have not sent their first request yet. */
  streamCount(): number {
    return this.streams.size;
  }

  /** Ends every stream with OK (proxies reconnect elsewhere) and drops their watches. */
  close(): void {
    for (const s of [...this.streams.values()]) s.shutdown('server closing');
  }

  // --- internals used by AdsStream -------------------------------------------------------------

  /** @internal */
  emit<K extends keyof XdsServerEvents>(event: K, arg: Parameters<XdsServerEvents[K]>[0]): void {
    for (const l of this.listeners[event]) {
      try {
        (l as (a: typeof arg) => void)(arg);
      } catch (e) {
        this.logger.error({ err: e, event }, 'xDS event listener threw');
      }
    }
  }

  /** @internal Whether debug lines are wanted (asked each time: a pino level can change at run time). */
  debugOn(): boolean {
    return this.logger.isLevelEnabled?.('debug') ?? true;
  }

  /** @internal */
  nextNonce(): string {
    return this.noncePrefix + (++this.nonceSeq).toString(36);
  }

  /** @internal */
  serves(typeUrl: string): boolean {
    return this.served.has(typeUrl);
  }

  /** @internal */
  isWildcardType(typeUrl: string): boolean {
    return this.wildcardTypes.has(typeUrl);
  }

  /** @internal */
  keyOf(node: NodeInfo): string {
    return this.nodeKey(node);
  }

  /** @internal */
  forget(id: string): void {
    this.streams.delete(id);
  }

  private open(protocol: XdsProtocol, call: AnyCall): void {
    const id = `${protocol}-${++this.streamSeq}`;
    this.streams.set(id, new AdsStream(this, id, protocol, call));
  }
}

type AnyCall =
  | grpc.ServerDuplexStream<DiscoveryRequestMsg, DiscoveryResponseMsg>
  | grpc.ServerDuplexStream<DeltaDiscoveryRequestMsg, DeltaDiscoveryResponseMsg>;

interface TypeState {
  readonly typeUrl: string;
  wildcard: boolean;
  names: Set<string>;
  /** SotW: the request bytes `names` came from (shared, sotwrequest.ts); an ACK repeating them is not decoded. */
  namesBytes?: Buffer;
  /** SotW: entries in `namesBytes` (duplicates and `*` included); equal to names.size when it has neither. */
  namesCount?: number;
  /** SotW: how `names` was made from `from` (only the differing entries decoded); used while `from` is what was last sent. */
  namesChange?: { from: ReadonlySet<string>; added: string[]; removed: string[] };
  /** A request of this type has been received (delta: the first one carries initial versions). */
  subscribed: boolean;
  unwatch: () => void;
  nonce?: string;
  /** Version carried by the response with `nonce`. */
  nonceVersion?: string;
  sentAt?: number;
  /** The response with `nonce` got its ACK or NACK already. */
  answered: boolean;
  versionAcked?: string;
  ackedAt?: number;
  lastNack?: NackInfo;
  /**
   * The snapshot the last response was computed from, with the subscription of that moment
   * (`names` is replaced, never mutated, by SotW requests; delta bumps `namesGen`). After every
   * response the proxy holds that snapshot's version of every resource it subscribes to, so the
   * next response is the diff of two snapshots (memoized across streams: cache.ts
   * diffTypeSnapshots) instead of a walk over every subscribed name.
   *
   * SotW EDS sends only the ClusterLoadAssignments whose version changed (Istio's incremental
   * EDS): Envoy keeps those a SotW EDS response leaves out (only LDS and CDS responses are the
   * whole state), so one endpoint change costs bytes proportional to it, not the whole EDS.
   */
  sentSnap?: TypeSnapshot;
  sentNames?: ReadonlySet<string>;
  sentWildcard?: boolean;
  /** Delta: subscription generation (bumped on every subscribe/unsubscribe) and that of `sentSnap`. */
  namesGen: number;
  sentGen?: number;
  /**
   * Delta: what the proxy has, name → resource version. Undefined while that is exactly
   * `sentSnap`'s version of every name it wants (the usual state between subscription changes):
   * a proxy then holds no copy of a thousand-entry map that the shared snapshot already is.
   */
  clientVersions?: Map<string, string>;
  /**
   * Delta, while `clientVersions` is undefined: names subscribed since the last response, when the
   * subscription only gained and lost names since (defined, maybe empty: the marker of that). The
   * proxy holds none of them, whatever `sentSnap` has, and what it dropped it no longer wants, so a
   * thousand-name subscription that gains or loses a name needs no map of its own.
   */
  addedSince?: Set<string>;
  /** Delta: the proxy's versions before the response with `nonce` (undefined: the name was absent), to undo on its NACK. */
  beforeSent?: Map<string, string | undefined>;
  /** Delta: what the last NACKed response carried at cache version `version` (null: a removal); not resent at that version. */
  rejected?: { version: string; items: Map<string, string | null> };
}

const NO_DIFF: { changed: readonly string[]; removed: readonly string[] } = { changed: [], removed: [] };

/** Whether a SotW request's names (`*` aside) are exactly `set`. */
function sameNames(names: readonly string[], set: ReadonlySet<string>): boolean {
  for (const x of names) if (x !== '*' && !set.has(x)) return false;
  // Every name is in the set; the same set when as many distinct ones (a list may repeat names).
  const distinct = new Set(names);
  distinct.delete('*');
  return distinct.size === set.size;
}

class AdsStream {
  private node: NodeInfo | undefined;
  private key = '';
  private connectedSince = 0;
  private readonly peer: string;
  private readonly types = new Map<string, TypeState>();
  private readonly ignored = new Set<string>();
  private readonly pending = new Set<string>();
  private direct: DirectWriter | null | undefined;
  private flushQueued = false;
  private closed = false;

  constructor(
    private readonly server: XdsServer,
    private readonly id: string,
    private readonly protocol: XdsProtocol,
    private readonly call: AnyCall,
  ) {
    let peer = 'unknown';
    try {
      peer = call.getPeer();
    } catch {
      // the peer is only for logs
    }
    this.peer = peer;
    const onRequest = (req: unknown): void => {
      try {
        if (protocol === 'sotw') this.onSotw(req as DiscoveryRequestMsg);
        else this.onDelta(req as DeltaDiscoveryRequestMsg);
      } catch (e) {
        this.server.logger.error({ err: e, stream: id, node: this.node?.id }, 'xDS request handling failed');
        this.reject(grpc.status.INTERNAL, 'internal error handling the request');
      }
    };
    // Requests straight from the HTTP/2 chunks (directrecv.ts; handlers keep no request once they
    // return); grpc-js' own path otherwise. The duplex is read either way: its end comes through it.
    if (directReader(call, onRequest)) this.server.reads.direct++;
    else this.server.reads.copied++;
    call.on('data', onRequest);
    call.on('end', () => {
      // The proxy half-closed: finish our side too, with OK.
      this.shutdown('client ended the stream');
    });
    call.on('cancelled', () => this.cleanup('cancelled'));
    call.on('error', (e: Error) => this.cleanup(`error: ${e.message}`));
    call.on('close', () => this.cleanup('closed'));
  }

  status(): ProxyStatus | undefined {
    if (!this.node) return undefined;
    const types: TypeStatus[] = [];
    for (const typeUrl of this.server.typeUrls) {
      const ts = this.types.get(typeUrl);
      if (!ts) continue;
      const t: TypeStatus = { typeUrl, wildcard: ts.wildcard, names: [...ts.names] };
      if (ts.nonceVersion !== undefined) t.versionSent = ts.nonceVersion;
      if (ts.nonce !== undefined) t.nonce = ts.nonce;
      if (ts.sentAt !== undefined) t.sentAt = ts.sentAt;
      if (ts.versionAcked !== undefined) t.versionAcked = ts.versionAcked;
      if (ts.ackedAt !== undefined) t.ackedAt = ts.ackedAt;
      if (ts.lastNack) t.lastNack = { ...ts.lastNack };
      types.push(t);
    }
    return {
      streamId: this.id,
      protocol: this.protocol,
      node: { ...this.node },
      key: this.key,
      peer: this.peer,
      connectedSince: this.connectedSince,
      types,
      ignoredTypes: [...this.ignored],
    };
  }

  shutdown(reason: string): void {
    if (this.closed) return;
    this.cleanup(reason);
    try {
      this.call.end();
    } catch {
      // already torn down by the transport
    }
  }

  // --- requests ----------------------------------------------------------------------------------

  private onSotw(req: DiscoveryRequestMsg & NamesBytes): void {
    if (this.closed || !this.identify(req.node)) return;
    const ts = this.typeState(req.type_url ?? '');
    if (!ts) return;
    const nonce = req.response_nonce ?? '';
    if (nonce !== '' && ts.nonce !== undefined) {
      if (nonce !== ts.nonce) {
        if (this.server.debugOn()) this.server.logger.debug(this.logCtx(ts, { nonce }), 'xDS ignoring request with a stale nonce');
        return;
      }
      this.answer(ts, req.error_detail);
    }
    // An ACK repeats the subscription: the same bytes need not even be decoded, and the same
    // names keep the same Set, so respondSotw sees the subscription unchanged.
    const bytes = req[NAMES_BYTES];
    if (bytes === undefined || ts.namesBytes === undefined || !bytes.equals(ts.namesBytes)) {
      // A list without `*` or duplicates that gains or loses a few names: only those are decoded.
      const step = bytes && ts.namesBytes ? stepNames(ts.namesBytes, bytes) : undefined;
      const change = step && !ts.wildcard && ts.namesCount === ts.names.size ? step.change : undefined;
      const kept = step ? step.kept : bytes && keepNames(bytes);
      const known = kept && kept.length > 0 ? sharedNames(kept) : undefined;
      if (change && change.count > 0 && !change.added.includes('*')) {
        const from = ts.names;
        if (step!.applied?.from === from) {
          // Another stream made this very step from this very set.
          ts.names = step!.applied.names;
          ts.namesChange = { from, added: step!.applied.added, removed: change.removed };
        } else if (change.removed.length > 0 || change.added.some((n) => !from.has(n))) {
          const intern = this.interner(ts.typeUrl);
          const added = change.added.filter((n) => !from.has(n)).map(intern);
          const names = new Set(from);
          for (const n of change.removed) names.delete(n);
          for (const n of added) names.add(n);
          ts.names = names;
          ts.namesChange = { from, added, removed: change.removed };
          step!.applied = { from, names, added };
          if (names.size === change.count) shareNames(kept!, names, change.count);
        }
        ts.namesCount = change.count;
      } else if (known && known.names.size === known.count) {
        // A list some stream already decoded (without `*` or duplicates): its set is shared.
        ts.wildcard = false;
        if (ts.names !== known.names) {
          ts.names = known.names;
          ts.namesChange = undefined;
        }
        ts.namesCount = known.count;
      } else {
        const names = req.resource_names ?? [];
        ts.wildcard = names.includes('*') || (names.length === 0 && this.server.isWildcardType(ts.typeUrl));
        if (!sameNames(names, ts.names)) {
          const intern = this.interner(ts.typeUrl);
          ts.names = new Set(names.filter((n) => n !== '*').map(intern));
          ts.namesChange = undefined;
        }
        ts.namesCount = names.length;
        if (kept && kept.length > 0 && ts.names.size === names.length) shareNames(kept, ts.names, names.length);
      }
      ts.namesBytes = kept;
    }
    ts.subscribed = true;
    this.schedule(ts.typeUrl);
  }

  private onDelta(req: DeltaDiscoveryRequestMsg): void {
    if (this.closed || !this.identify(req.node)) return;
    const ts = this.typeState(req.type_url ?? '');
    if (!ts) return;
    const nonce = req.response_nonce ?? '';
    if (nonce !== '' && ts.nonce !== undefined) {
      if (nonce === ts.nonce) this.answer(ts, req.error_detail);
      else if (this.server.debugOn()) this.server.logger.debug(this.logCtx(ts, { nonce }), 'xDS stale nonce: not an ACK/NACK');
    }
    const subscribe = req.resource_names_subscribe ?? [];
    const unsubscribe = req.resource_names_unsubscribe ?? [];
    const first = !ts.subscribed;
    const moves = subscribe.length > 0 || unsubscribe.length > 0;
    // Names added to or dropped from a subscription the proxy holds as last sent: the added ones
    // are noted (it has none of them), the dropped ones forgotten; no map of its own is needed.
    const tracked =
      !first &&
      moves &&
      ts.clientVersions === undefined &&
      ts.sentSnap !== undefined &&
      !ts.wildcard &&
      !subscribe.includes('*') &&
      !unsubscribe.includes('*') &&
      (ts.namesGen === ts.sentGen || ts.addedSince !== undefined);
    // Before the subscription moves: what the proxy has is read from the old one.
    const versions = first || (moves && !tracked) ? this.clientVersions(ts) : undefined;
    if (tracked) ts.addedSince ??= new Set();
    if (first) {
      for (const [name, version] of Object.entries(req.initial_resource_versions ?? {})) {
        versions!.set(name, version);
      }
      if (subscribe.length === 0 && this.server.isWildcardType(ts.typeUrl)) ts.wildcard = true;
      ts.subscribed = true;
    }
    const intern = subscribe.length > 0 ? this.interner(ts.typeUrl) : (n: string) => n;
    for (const n of subscribe) {
      if (n === '*') ts.wildcard = true;
      else {
        const name = intern(n);
        if (tracked && !ts.names.has(name)) ts.addedSince!.add(name);
        ts.names.add(name);
      }
    }
    for (const n of unsubscribe) {
      if (n === '*') {
        ts.wildcard = false;
      } else {
        ts.names.delete(n);
        // The proxy drops it itself; forgetting it means a later subscribe sends it again.
        versions?.delete(n);
        ts.addedSince?.delete(n);
      }
    }
    if (moves) ts.namesGen++;
    if (first || moves) this.schedule(ts.typeUrl);
  }

  /** The proxy's versions as a map of their own, built from `sentSnap` when they were implied by it. */
  private clientVersions(ts: TypeState): Map<string, string> {
    if (ts.clientVersions) return ts.clientVersions;
    const m = new Map<string, string>();
    const rs = ts.sentSnap?.resources;
    if (rs && ts.wildcard) for (const [n, r] of rs) m.set(n, r.version);
    else if (rs) {
      for (const n of ts.names) {
        const r = rs.get(n);
        if (r) m.set(n, r.version);
      }
    }
    for (const n of ts.addedSince ?? []) m.delete(n);
    ts.addedSince = undefined;
    return (ts.clientVersions = m);
  }

  /** Drops the proxy's own map when it holds exactly `snap`'s version of every name it wants. */
  private implyClientVersions(ts: TypeState, snap: TypeSnapshot): void {
    const m = ts.clientVersions;
    if (!m) return;
    let wanted = 0;
    // Wanted names missing from `snap` are absent from the map after a response.
    if (ts.wildcard) wanted = snap.resources.size;
    else for (const n of ts.names) if (snap.resources.has(n)) wanted++;
    if (m.size !== wanted) return;
    for (const [n, v] of m) if (snap.resources.get(n)?.version !== v) return;
    ts.clientVersions = undefined;
  }

  /**
   * The cache's own string for a subscribed name: each decoded request carries its own copies of
   * the names (a thousand EDS names per proxy), which would otherwise be held once per stream.
   */
  private interner(typeUrl: string): (name: string) => string {
    const rs = this.server.cache.get(this.key, typeUrl)?.resources;
    return rs ? (name) => rs.get(name)?.name ?? name : (name) => name;
  }

  /** Binds the stream to its node on the first request; false (stream rejected) without one. */
  private identify(node: NodeMsg | undefined): boolean {
    if (this.node) return true;
    if (!node || typeof node.id !== 'string' || node.id === '') {
      this.reject(
        grpc.status.INVALID_ARGUMENT,
        node
          ? 'the first request on an xDS stream must carry node.id (it is empty)'
          : 'the first request on an xDS stream must carry node (with node.id)',
      );
      return false;
    }
    const info: NodeInfo = {
      id: node.id,
      cluster: typeof node.cluster === 'string' ? node.cluster : '',
      metadata: node.metadata && typeof node.metadata === 'object' ? node.metadata : {},
    };
    if (node.locality) info.locality = node.locality;
    if (node.user_agent_name) {
      info.userAgent = node.user_agent_version ? `${node.user_agent_name}/${node.user_agent_version}` : node.user_agent_name;
    }
    let refusal: string | undefined;
    try {
      refusal = this.server.authenticate?.(info, this.call as grpc.ServerDuplexStream<unknown, unknown>);
    } catch (e) {
      refusal = `authentication failed: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (refusal !== undefined) {
      this.reject(grpc.status.PERMISSION_DENIED, refusal);
      return false;
    }
    this.node = info;
    this.key = this.server.keyOf(info);
    this.connectedSince = this.server.now();
    this.server.logger.info({ stream: this.id, node: info.id, peer: this.peer }, 'xDS proxy connected');
    this.server.emit('connect', { proxy: this.status()! });
    return true;
  }

  private typeState(typeUrl: string): TypeState | undefined {
    const existing = this.types.get(typeUrl);
    if (existing) return existing;
    if (!this.server.serves(typeUrl)) {
      if (!this.ignored.has(typeUrl)) {
        this.ignored.add(typeUrl);
        this.server.logger.warn(
          { stream: this.id, node: this.node?.id, typeUrl },
          'xDS ignoring a type this server does not serve',
        );
      }
      return undefined;
    }
    const ts: TypeState = {
      typeUrl,
      wildcard: false,
      names: new Set(),
      subscribed: false,
      answered: false,
      namesGen: 0,
      unwatch: () => {},
    };
    ts.unwatch = this.server.cache.watch(this.key, typeUrl, () => this.schedule(typeUrl));
    this.types.set(typeUrl, ts);
    return ts;
  }

  /** ACK or NACK of the response carrying `ts.nonce`; repeats of it (resubscriptions) count once. */
  private answer(ts: TypeState, error: StatusMsg | undefined): void {
    if (ts.answered) return;
    ts.answered = true;
    const version = ts.nonceVersion ?? '';
    const ref = { streamId: this.id, protocol: this.protocol, nodeId: this.node!.id, typeUrl: ts.typeUrl };
    if (error) {
      const nack: NackInfo = {
        version,
        nonce: ts.nonce ?? '',
        code: error.code ?? 0,
        message: error.message ?? '',
        at: this.server.now(),
      };
      ts.lastNack = nack;
      this.server.logger.warn(
        this.logCtx(ts, { version, error: nack.message, versionAcked: ts.versionAcked }),
        'xDS NACK: proxy rejected config',
      );
      this.rollBack(ts, version);
      const e: NackEvent = { ...ref, ...nack };
      if (ts.versionAcked !== undefined) e.versionAcked = ts.versionAcked;
      this.server.emit('nack', e);
      return;
    }
    ts.beforeSent = undefined;
    ts.versionAcked = version;
    ts.ackedAt = this.server.now();
    if (this.server.debugOn()) this.server.logger.debug(this.logCtx(ts, { version }), 'xDS ACK');
    this.server.emit('ack', { ...ref, version, nonce: ts.nonce ?? '', sentAt: ts.sentAt ?? 0, ackedAt: ts.ackedAt });
  }

  /** Delta NACK: the proxy still has what it had before the rejected response. */
  private rollBack(ts: TypeState, version: string): void {
    const before = ts.beforeSent;
    if (!before) return;
    ts.beforeSent = undefined;
    // The proxy no longer holds the snapshot last sent: its versions need a map of their own.
    const versions = this.clientVersions(ts);
    const items = new Map<string, string | null>();
    for (const [name, prev] of before) {
      items.set(name, versions.get(name) ?? null);
      if (prev === undefined) versions.delete(name);
      else versions.set(name, prev);
    }
    ts.rejected = { version, items };
  }

  // --- responses ---------------------------------------------------------------------------------

  private schedule(typeUrl: string): void {
    if (this.closed) return;
    this.pending.add(typeUrl);
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.flushQueued = false;
    for (const typeUrl of this.server.typeUrls) {
      if (this.closed) return;
      if (!this.pending.delete(typeUrl)) continue;
      const ts = this.types.get(typeUrl);
      if (!ts || !ts.subscribed) continue;
      try {
        if (this.protocol === 'sotw') this.respondSotw(ts);
        else this.respondDelta(ts);
      } catch (e) {
        this.server.logger.error({ ...this.logCtx(ts), err: e }, 'xDS response failed');
      }
    }
  }

  private respondSotw(ts: TypeState): void {
    const snap = this.server.cache.get(this.key, ts.typeUrl);
    if (!snap) return;
    const prev = ts.sentSnap;
    const sameSubscription = prev !== undefined && ts.sentNames === ts.names && ts.sentWildcard === ts.wildcard;
    // Versions are trusted: same version, same subscription → the proxy has all of it.
    if (sameSubscription && prev.version === snap.version) return;
    const resources: AnyMsg[] = [];
    let parts: Uint8Array[] | undefined;
    // The names changed by a few since the last response: work in proportion to those.
    const nc = ts.namesChange;
    const change = nc && prev !== undefined && !ts.wildcard && ts.sentWildcard === false && ts.sentNames === nc.from ? nc : undefined;
    if (ts.wildcard) {
      for (const r of snap.resources.values()) resources.push(r.any);
      parts = sotwAllBytes(snap);
    } else if (prev !== undefined && prev.version === snap.version && !this.selectionChanged(ts, prev, snap, change)) {
      // Only names that select nothing came or went: the selection, and so the response, is the same.
      ts.sentNames = ts.names;
      ts.namesChange = undefined;
      return;
    } else {
      const incremental = ts.typeUrl === ENDPOINT_TYPE && prev !== undefined;
      if (incremental && (sameSubscription || change)) {
        for (const n of diffTypeSnapshots(prev, snap).changed) {
          const r = ts.names.has(n) ? snap.resources.get(n) : undefined;
          if (r) resources.push(r.any);
        }
        // Names new to the subscription that the diff did not list (a listed one is in already).
        if (change && change.added.length > 0) {
          const listed = new Set(diffTypeSnapshots(prev, snap).changed);
          for (const n of change.added) {
            const r = listed.has(n) ? undefined : snap.resources.get(n);
            if (r) resources.push(r.any);
          }
        }
      } else {
        for (const n of ts.names) {
          const r = snap.resources.get(n);
          if (!r) continue;
          if (incremental && ts.sentNames!.has(n) && prev.resources.get(n)?.version === r.version) continue;
          resources.push(r.any);
        }
      }
      parts = resources.length === snap.resources.size ? sotwAllBytes(snap) : resources.map(sotwResourceBytes);
    }
    const nonce = this.server.nextNonce();
    const response: DiscoveryResponseMsg & Preencoded = { version_info: snap.version, resources, type_url: ts.typeUrl, nonce };
    response[PREENCODED] = parts;
    if (!this.write(response)) return;
    ts.sentSnap = snap;
    ts.sentNames = ts.names;
    ts.sentWildcard = ts.wildcard;
    ts.namesChange = undefined;
    this.sent(ts, snap.version, nonce, response, resources.length, 0);
  }

  /** Whether the subscribed names pick other resources of `snap` than the last response's names did. */
  private selectionChanged(ts: TypeState, prev: TypeSnapshot, snap: TypeSnapshot, change?: { added: string[]; removed: string[] }): boolean {
    if (ts.sentWildcard !== ts.wildcard) return true;
    if (change) return change.added.some((n) => snap.resources.has(n)) || change.removed.some((n) => prev.resources.has(n));
    const before = ts.sentNames ?? new Set<string>();
    let picked = 0;
    for (const n of ts.names) {
      if (!snap.resources.has(n)) continue;
      if (!before.has(n)) return true;
      picked++;
    }
    let pickedBefore = 0;
    for (const n of before) if (prev.resources.has(n)) pickedBefore++;
    return picked !== pickedBefore;
  }

  private respondDelta(ts: TypeState): void {
    const snap = this.server.cache.get(this.key, ts.typeUrl);
    if (!snap) return;
    const resources: XdsResource[] = [];
    if (ts.rejected && ts.rejected.version !== snap.version) ts.rejected = undefined;
    const rejected = ts.rejected?.items;
    const wanted = (name: string): boolean => ts.wildcard || ts.names.has(name);
    const prev = ts.sentSnap;
    // Only for names it wants: without a map of its own, the proxy has `prev`'s versions of those.
    // A rejection on record needs the proxy's own versions (rollBack's map), not implied ones.
    if (ts.rejected && ts.addedSince !== undefined) this.clientVersions(ts);
    const added = ts.addedSince;
    const has = (name: string): string | undefined =>
      ts.clientVersions ? ts.clientVersions.get(name) : added?.has(name) ? undefined : prev?.resources.get(name)?.version;
    const consider = (name: string): void => {
      const r = snap.resources.get(name);
      if (r && has(name) !== r.version && rejected?.get(name) !== r.version) resources.push(r);
    };
    const removed: string[] = [];
    if (prev !== undefined && ts.clientVersions === undefined && (ts.sentGen === ts.namesGen || added !== undefined) && ts.sentWildcard === ts.wildcard) {
      // The proxy holds `prev` for every name it wants but the newly added ones: what changed
      // since is the snapshots' diff, plus those names.
      if (prev === snap && added === undefined) return;
      const d = prev === snap ? NO_DIFF : diffTypeSnapshots(prev, snap);
      for (const name of d.changed) if (wanted(name)) consider(name);
      // Those the diff did not list (a listed one was considered above).
      if (added !== undefined && added.size > 0) {
        const listed = new Set(d.changed);
        for (const name of added) if (!listed.has(name)) consider(name);
      }
      for (const name of d.removed) if (wanted(name) && has(name) !== undefined && rejected?.get(name) !== null) removed.push(name);
    } else {
      const versions = this.clientVersions(ts);
      if (ts.wildcard) for (const name of snap.resources.keys()) consider(name);
      for (const name of ts.names) if (!(ts.wildcard && snap.resources.has(name))) consider(name);
      for (const name of versions.keys()) {
        if (!snap.resources.has(name) && wanted(name) && rejected?.get(name) !== null) removed.push(name);
      }
    }
    const synced = (): void => {
      ts.sentSnap = snap;
      ts.sentGen = ts.namesGen;
      ts.addedSince = undefined;
      ts.sentWildcard = ts.wildcard;
      this.implyClientVersions(ts, snap);
    };
    // The first response is sent even when empty: it completes the proxy's initial fetch.
    if (resources.length === 0 && removed.length === 0 && ts.nonce !== undefined) return synced();
    const nonce = this.server.nextNonce();
    const response: DeltaDiscoveryResponseMsg & Preencoded = {
      system_version_info: snap.version,
      resources: resources.map((r) => ({ name: r.name, version: r.version, resource: r.any })),
      type_url: ts.typeUrl,
      removed_resources: removed,
      nonce,
    };
    response[PREENCODED] = resources.length === snap.resources.size ? deltaAllBytes(snap) : resources.map(deltaResourceBytes);
    if (!this.write(response)) return;
    // Only the latest response can be NACKed (an answer quoting an older nonce is stale).
    const before = new Map<string, string | undefined>();
    for (const r of resources) before.set(r.name, has(r.name));
    for (const name of removed) before.set(name, has(name));
    ts.beforeSent = before;
    if (ts.clientVersions) {
      for (const r of resources) ts.clientVersions.set(r.name, r.version);
      for (const name of removed) ts.clientVersions.delete(name);
    }
    synced();
    this.sent(ts, snap.version, nonce, response, resources.length, removed.length);
  }

  private sent(
    ts: TypeState,
    version: string,
    nonce: string,
    response: DiscoveryResponseMsg | DeltaDiscoveryResponseMsg,
    resources: number,
    removed: number,
  ): void {
    ts.nonce = nonce;
    ts.nonceVersion = version;
    ts.sentAt = this.server.now();
    ts.answered = false;
    let bytes = 0;
    for (const part of (response as Preencoded)[PREENCODED] ?? []) bytes += part.length;
    this.server.emit('send', {
      streamId: this.id,
      protocol: this.protocol,
      nodeId: this.node!.id,
      typeUrl: ts.typeUrl,
      version,
      nonce,
      resources,
      removed,
      bytes,
      response,
    });
  }

  private write(response: DiscoveryResponseMsg | DeltaDiscoveryResponseMsg): boolean {
    if (this.closed) return false;
    try {
      // Backpressure is left to the HTTP/2 stream's buffering: one response per type is in flight
      // at most per change, and a slow proxy's buffered responses are superseded, not multiplied.
      if (this.direct === undefined) this.direct = directWriter(this.call) ?? null;
      // Every response of a stream takes the same path, so their order on the wire is kept.
      const done = this.direct?.write(responseParts(this.protocol, response));
      if (done === 'written') this.server.writes.direct++;
      // A cancelled call is torn down by its events; grpc-js would drop the response too.
      if (done === 'written' || done === 'cancelled') return true;
      (this.call as grpc.ServerDuplexStream<unknown, unknown>).write(response);
      this.server.writes.copied++;
      return true;
    } catch (e) {
      this.server.logger.warn({ stream: this.id, node: this.node?.id, err: e }, 'xDS write failed');
      this.cleanup('write failed');
      return false;
    }
  }

  // --- teardown ----------------------------------------------------------------------------------

  private reject(code: grpc.status, details: string): void {
    if (this.closed) return;
    this.server.logger.warn({ stream: this.id, peer: this.peer, code: grpc.status[code], details }, 'xDS stream rejected');
    this.cleanup(`rejected: ${details}`);
    try {
      // grpc-js turns an 'error' emitted by the handler into the call's status.
      this.call.emit('error', Object.assign(new Error(details), { code, details }));
    } catch {
      // the transport is already gone
    }
  }

  private cleanup(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.pending.clear();
    for (const ts of this.types.values()) ts.unwatch();
    const status = this.status();
    this.types.clear();
    this.server.forget(this.id);
    if (status) {
      this.server.logger.info({ stream: this.id, node: status.node.id, reason }, 'xDS proxy disconnected');
      this.server.emit('disconnect', { proxy: status, reason });
    }
  }

  private logCtx(ts: TypeState, extra: object = {}): object {
    return { stream: this.id, node: this.node?.id, type: shortTypeName(ts.typeUrl), ...extra };
  }
}
