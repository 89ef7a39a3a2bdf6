/**
 * A worker CHILD PROCESS holding many simulated proxies: each one is a real gRPC ADS stream on its
 * own HTTP/2 connection (grpch2.ts, a minimal gRPC client on node:http2), delta or SotW,
 * subscribing the way Envoy does — CDS and LDS wildcard, SDS ROOTCA, then EDS for every EDS
 * cluster and RDS for every route config the listeners name — and ACKing every response at once.
 *
 * It counts the bytes of every response (the gRPC message, without its 5-byte prefix) per proxy
 * and records times on the machine's shared clock (performance.timeOrigin + now), so the parent
 * can compare them with the moment it wrote a change. Driven over the IPC channel (see
 * xdspool.ts). Responses are scanned in place (wire.ts): resources are never decoded beyond their
 * name, except one Cluster and one Listener per name per worker (to learn EDS and RDS names), and
 * names are small numbers (NameTable), so a worker stays cheap next to the control plane it
 * measures (ADR 0134).
 */
import {
  adsServiceDefinition,
  decodeResource,
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  LISTENER_TYPE,
  ROUTE_TYPE,
  SECRET_TYPE,
  type NodeMsg,
} from '../../src/xds/index.js';
import { Channel, statusName, type Call } from './grpch2.js';
import { deltaRequest, NameTable, NamesCache, ResponseScan, scanDelta, scanSotw, sotwRequest } from './wire.js';
import type { ToWorker, FromWorker, ProxySpec } from './xdspool.js';

const clock = (): number => performance.timeOrigin + performance.now();
const send = (m: FromWorker): void => void process.send!(m);

const names = new NameTable();
const nameOf = (id: number): string => names.names[id]!;
/** Encoded lists of names, shared by the proxies that send the same list (a SotW ACK repeats its subscription). */
const lists = new NamesCache(nameOf);
/** The response being handled (one at a time: each is handled whole before the next is read). */
const scan = new ResponseScan();
const EMPTY = Buffer.alloc(0);
const NO_NAME = names.idOfName('');
const ROOTCA = names.idOfName('ROOTCA');

/** Field `no` naming `ids` in this order, shared through `lists`. */
function namesField(no: number, ids: readonly number[]): Buffer {
  return ids.length === 0 ? EMPTY : lists.get(no, ids);
}

function sameSet(a: ReadonlySet<number>, b: ReadonlySet<number>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

/** Ids in the order of their names (as `[...names].sort()` orders strings). */
function byName(ids: Iterable<number>): number[] {
  return [...ids].sort((x, y) => {
    const a = nameOf(x);
    const b = nameOf(y);
    return a < b ? -1 : a > b ? 1 : 0;
  });
}

/** byName of a set, once per set: SotW proxies of a worker share the sets a repeated response makes (below). */
const sortedOf = new WeakMap<ReadonlySet<number>, number[]>();
function byNameOnce(ids: ReadonlySet<number>): number[] {
  let v = sortedOf.get(ids);
  if (!v) sortedOf.set(ids, (v = byName(ids)));
  return v;
}

/**
 * The last SotW CDS / LDS response of this worker, as what a proxy learns from it. Those responses
 * are the whole state, and every sidecar of the mesh gets the same resources: 500 proxies of a
 * worker each hashed the same thousand names into ids and rebuilt the same sets and maps, the
 * largest cost of a worker in a DestinationRule change (each SotW proxy gets every cluster). A
 * response whose resource bytes are equal to the last one's (one memcmp) is taken as the same:
 * its sets and maps are shared by the proxies, which never change them in place (a SotW CDS or
 * LDS response replaces them whole).
 */
interface WholeState {
  bytes: Buffer;
  have: Set<number>;
  /** cluster → EDS name, or listener → route names. */
  clusters?: Map<number, number>;
  listeners?: Map<number, number[]>;
  /** What the proxy then subscribes to (EDS or RDS names), one set for all. */
  want: Set<number>;
}
const wholeState = new Map<string, WholeState>();

/** The bytes of the resources of the scanned response (first name to last value), or undefined when one lacks either. */
function resourcesRegion(b: Buffer): Buffer | undefined {
  const r = scan.res;
  const n = scan.count;
  if (n === 0 || r[0]! < 0 || r[4 * (n - 1) + 3]! < 0) return undefined;
  for (let k = 0; k < 4 * n; k += 4) if (r[k]! < 0 || r[k + 2]! < 0) return undefined;
  return b.subarray(r[0]!, r[4 * (n - 1) + 3]!);
}

/** cluster name → its EDS service name, or −1 when it is not an EDS cluster (decoded once per worker). */
const edsOf = new Map<number, number>();
/** listener name + bytes length → route config names (decoded once per listener shape). */
const rdsOf = new Map<string, number[]>();

function edsName(id: number, b: Buffer, vs: number, ve: number): number {
  let v = edsOf.get(id);
  if (v === undefined) {
    if (vs < 0) return -1;
    const d = decodeResource({ type_url: CLUSTER_TYPE, value: b.subarray(vs, ve) });
    v = d['type'] === 'EDS' ? names.idOfName(String((d['eds_cluster_config'] as { service_name?: string } | undefined)?.service_name || d['name'])) : -1;
    edsOf.set(id, v);
  }
  return v;
}

function routeNames(id: number, b: Buffer, vs: number, ve: number): number[] {
  if (vs < 0) return [];
  const key = `${id}\0${ve - vs}`;
  let v = rdsOf.get(key);
  if (v === undefined) {
    const out = new Set<string>();
    const walk = (x: unknown): void => {
      if (Array.isArray(x)) x.forEach(walk);
      else if (x && typeof x === 'object') {
        const o = x as Record<string, unknown>;
        const rds = o['rds'] as { route_config_name?: string } | undefined;
        if (rds?.route_config_name) out.add(rds.route_config_name);
        for (const y of Object.values(o)) walk(y);
      }
    };
    walk(decodeResource({ type_url: LISTENER_TYPE, value: b.subarray(vs, ve) }));
    v = [...out].sort().map((n) => names.idOfName(n));
    rdsOf.set(key, v);
  }
  return v;
}

interface Watch {
  id: number;
  type: string;
  /** Id of the resource name watched, −1 for any response of the type. */
  nameId: number;
  since: number;
}

class Proxy {
  readonly startedAt = clock();
  completeAt = NaN;
  bytes = 0;
  responses = 0;
  /** Bytes counted from the current watch's start. */
  watchBytes = 0;
  watchResponses = 0;
  /** First matching response of the current watch. */
  watchAt = NaN;
  errors = 0;
  reconnects = 0;
  private closed = false;
  private call: Call | undefined;
  /** The encoded `node` field of this protocol's request (sent once per stream). */
  private nodeField: Buffer | undefined;
  private have = new Map<string, Set<number>>();
  /** Resource name → which cluster/listener wanted what (delta keeps state by name). */
  private clusters = new Map<number, number>();
  private listeners = new Map<number, number[]>();
  private eds = new Set<number>();
  /**
   * Delta: how many clusters name each EDS name, and the names that came or went with the response
   * being handled. A delta CDS response carries the clusters that changed; walking all thousand to
   * find the EDS names (and diffing the sets) per response was most of a delta worker's time.
   */
  private edsRefs = new Map<number, number>();
  private edsMoved: { added: number[]; removed: number[] } | undefined;
  private rds = new Set<number>();
  /** What a SotW ACK of EDS / RDS names (the subscription in the order it was learnt), encoded once per change of it. */
  private edsAck: Buffer | undefined;
  private rdsAck: Buffer | undefined;
  private sentNode = false;
  private versions = new Map<string, string>();
  private nonces = new Map<string, string>();

  constructor(
    readonly spec: ProxySpec,
    readonly protocol: 'delta' | 'sotw',
    readonly ch: Channel,
    private readonly watch: () => Watch | undefined,
    private readonly onComplete: (p: Proxy) => void,
    private readonly onWatch: (p: Proxy) => void,
    private readonly onError: (message: string) => void,
  ) {
    this.open();
  }

  /** Opens the ADS stream with a fresh state; like Envoy, a failed stream is reopened after a backoff. */
  private open(): void {
    const def = adsServiceDefinition();
    const m = this.protocol === 'delta' ? def.DeltaAggregatedResources : def.StreamAggregatedResources;
    this.nodeField ??= (m.requestSerialize as (v: unknown) => Buffer)({ node: this.spec.node as NodeMsg });
    this.have = new Map();
    this.clusters = new Map();
    this.edsRefs = new Map();
    this.edsMoved = undefined;
    this.listeners = new Map();
    this.eds = new Set();
    this.rds = new Set();
    this.edsAck = this.rdsAck = undefined;
    this.sentNode = false;
    this.versions = new Map();
    this.nonces = new Map();
    const call: Call = this.ch.call(m.path, {
      message: (b, s, e) => this.onMessage(b, s, e),
      end: (code, details) => {
        if (this.closed || this.call !== call) return;
        if (code !== 0) {
          this.errors++;
          this.onError(`${statusName(code)}: ${details}`);
        }
        this.reconnects++;
        setTimeout(() => !this.closed && this.open(), 500 + Math.random() * 1000);
      },
    });
    this.call = call;
    this.subscribe(CLUSTER_TYPE, []);
    this.subscribe(LISTENER_TYPE, []);
    this.subscribe(SECRET_TYPE, [ROOTCA]);
  }

  private onMessage(b: Buffer, s: number, e: number): void {
    this.count(e - s);
    if (this.protocol === 'delta') {
      scanDelta(b, s, e, scan);
      this.onDelta(b);
    } else {
      scanSotw(b, s, e, scan);
      this.onSotw(b);
    }
  }

  private count(n: number): void {
    this.bytes += n;
    this.responses++;
    if (this.watch()) {
      this.watchBytes += n;
      this.watchResponses++;
    }
  }

  /** The node field for the stream's first request, then nothing. */
  private node(): Buffer | undefined {
    if (this.sentNode) return undefined;
    this.sentNode = true;
    return this.nodeField;
  }

  private subscribe(type: string, ids: number[]): void {
    if (this.protocol === 'delta') this.call!.write(deltaRequest(this.node(), type, namesField(3, ids)));
    else this.call!.write(sotwRequest(this.versions.get(type) ?? '', this.node(), namesField(3, ids), type, this.nonces.get(type) ?? ''));
  }

  /** The watched name's id when the watch is on responses of type `t` (−1: any), else −2. */
  private watchedName(t: string): number {
    const w = this.watch();
    return w && Number.isNaN(this.watchAt) && w.type === t ? w.nameId : -2;
  }

  /** Notes the scanned response's resources (of type t) as had; whether the watched name is among them. */
  private take(b: Buffer, t: string, have: Set<number>): boolean {
    const watched = this.watchedName(t);
    let seen = watched === -1;
    const r = scan.res;
    for (let k = 0; k < 4 * scan.count; k += 4) {
      const id = r[k]! < 0 ? NO_NAME : names.idOf(b, r[k]!, r[k + 1]!);
      have.add(id);
      if (id === watched) seen = true;
      if (t === CLUSTER_TYPE) this.setCluster(id, edsName(id, b, r[k + 2]!, r[k + 3]!));
      if (t === LISTENER_TYPE) this.listeners.set(id, routeNames(id, b, r[k + 2]!, r[k + 3]!));
    }
    return seen;
  }

  private onDelta(b: Buffer): void {
    const t = scan.typeUrl;
    let have = this.have.get(t);
    if (!have) this.have.set(t, (have = new Set()));
    const seen = this.take(b, t, have);
    for (let k = 0; k < 2 * scan.removedCount; k += 2) {
      const id = names.idOf(b, scan.removed[k]!, scan.removed[k + 1]!);
      have.delete(id);
      if (t === CLUSTER_TYPE) this.setCluster(id, undefined);
      if (t === LISTENER_TYPE) this.listeners.delete(id);
    }
    this.call!.write(deltaRequest(this.node(), t, EMPTY, EMPTY, scan.nonce));
    this.after(t, seen);
  }

  private onSotw(b: Buffer): void {
    const t = scan.typeUrl;
    // LDS/CDS responses are the whole state; EDS/RDS/SDS ones may carry only what changed.
    const whole = t === CLUSTER_TYPE || t === LISTENER_TYPE;
    const region = whole ? resourcesRegion(b) : undefined;
    const known = region ? wholeState.get(t) : undefined;
    let seen: boolean;
    if (known && known.bytes.equals(region!)) {
      // The worker's last response of this type had these very resources: share what it taught.
      this.have.set(t, known.have);
      if (known.clusters) this.clusters = known.clusters;
      if (known.listeners) this.listeners = known.listeners;
      const watched = this.watchedName(t);
      seen = watched === -1 || known.have.has(watched);
    } else {
      let have = this.have.get(t);
      if (!have || whole) this.have.set(t, (have = new Set()));
      if (t === CLUSTER_TYPE) this.clusters = new Map();
      if (t === LISTENER_TYPE) this.listeners = new Map();
      seen = this.take(b, t, have);
      if (region) {
        const st: WholeState = { bytes: Buffer.from(region), have, want: this.wanted(t) };
        if (t === CLUSTER_TYPE) st.clusters = this.clusters;
        else st.listeners = this.listeners;
        wholeState.set(t, st);
      }
    }
    this.versions.set(t, scan.version);
    this.nonces.set(t, scan.nonce);
    const sub =
      t === ENDPOINT_TYPE ? (this.edsAck ??= namesField(3, [...this.eds])) : t === ROUTE_TYPE ? (this.rdsAck ??= namesField(3, [...this.rds])) : t === SECRET_TYPE ? namesField(3, [ROOTCA]) : EMPTY;
    this.call!.write(sotwRequest(scan.version, this.node(), sub, t, scan.nonce));
    this.after(t, seen);
  }

  /** cluster → EDS name (−1: not EDS; undefined: removed); delta proxies count the names' references. */
  private setCluster(id: number, eds: number | undefined): void {
    const prev = this.clusters.get(id);
    if (eds === undefined) this.clusters.delete(id);
    else this.clusters.set(id, eds);
    if (this.protocol !== 'delta' || prev === eds) return;
    const moved = (this.edsMoved ??= { added: [], removed: [] });
    if (prev !== undefined && prev >= 0) {
      const n = this.edsRefs.get(prev)! - 1;
      if (n > 0) this.edsRefs.set(prev, n);
      else {
        this.edsRefs.delete(prev);
        moved.removed.push(prev);
      }
    }
    if (eds !== undefined && eds >= 0) {
      const n = this.edsRefs.get(eds) ?? 0;
      this.edsRefs.set(eds, n + 1);
      if (n === 0) moved.added.push(eds);
    }
  }

  /** The EDS (after CDS) or RDS (after LDS) names the proxy's clusters or listeners name. */
  private wanted(t: string): Set<number> {
    const known = this.protocol === 'sotw' ? wholeState.get(t) : undefined;
    if (known && (known.clusters ?? known.listeners) === (t === CLUSTER_TYPE ? this.clusters : this.listeners)) return known.want;
    const want = new Set<number>();
    if (t === CLUSTER_TYPE) {
      for (const v of this.clusters.values()) if (v >= 0) want.add(v);
    } else for (const v of this.listeners.values()) for (const n of v) want.add(n);
    return want;
  }

  private after(t: string, seen: boolean): void {
    if (t === CLUSTER_TYPE && this.protocol === 'delta') {
      const m = this.edsMoved;
      this.edsMoved = undefined;
      // A name dropped and named again within one response is neither.
      const added = m ? [...new Set(m.added)].filter((n) => this.edsRefs.has(n) && !this.eds.has(n)) : [];
      const removed = m ? [...new Set(m.removed)].filter((n) => !this.edsRefs.has(n) && this.eds.has(n)) : [];
      if (added.length > 0 || removed.length > 0) {
        for (const n of added) this.eds.add(n);
        for (const n of removed) this.eds.delete(n);
        this.call!.write(deltaRequest(this.node(), ENDPOINT_TYPE, namesField(3, added), namesField(4, removed)));
      }
    } else if (t === CLUSTER_TYPE) {
      const want = this.wanted(t);
      if (want !== this.eds && !sameSet(want, this.eds)) {
        this.follow(ENDPOINT_TYPE, this.eds, want);
        this.eds = want;
        this.edsAck = undefined;
      }
    }
    if (t === LISTENER_TYPE) {
      const want = this.wanted(t);
      if (want !== this.rds && !sameSet(want, this.rds)) {
        this.follow(ROUTE_TYPE, this.rds, want);
        this.rds = want;
        this.rdsAck = undefined;
      }
    }
    if (seen) {
      this.watchAt = clock();
      this.onWatch(this);
    }
    if (Number.isNaN(this.completeAt) && this.complete()) {
      this.completeAt = clock();
      this.onComplete(this);
    }
  }

  private follow(type: string, old: Set<number>, want: Set<number>): void {
    if (this.protocol === 'sotw') {
      this.subscribe(type, byNameOnce(want));
      return;
    }
    const add = [...want].filter((n) => !old.has(n));
    const remove = [...old].filter((n) => !want.has(n));
    if (add.length === 0 && remove.length === 0) return;
    this.call!.write(deltaRequest(this.node(), type, namesField(3, add), namesField(4, remove)));
  }

  private complete(): boolean {
    for (const t of [CLUSTER_TYPE, LISTENER_TYPE, SECRET_TYPE]) if (!this.have.has(t)) return false;
    const e = this.have.get(ENDPOINT_TYPE);
    if (this.eds.size > 0) {
      if (!e) return false;
      for (const n of this.eds) if (!e.has(n)) return false;
    }
    const r = this.have.get(ROUTE_TYPE);
    if (this.rds.size > 0) {
      if (!r) return false;
      for (const n of this.rds) if (!r.has(n)) return false;
    }
    return true;
  }

  close(): void {
    this.closed = true;
    this.call?.cancel();
    this.ch.close();
  }
}

const proxies: Proxy[] = [];
/** Distinct stream errors with their counts (the first 10 kinds). */
const errorKinds = new Map<string, number>();
let watch: Watch | undefined;
let watchPending = 0;
let completePending = 0;
let completeReported = false;

function report(kind: 'complete' | 'watch', final = false): void {
  if (kind === 'complete') {
    completeReported = true;
    send({ ev: 'complete', times: proxies.map((p) => p.completeAt - p.startedAt), completeAt: proxies.map((p) => p.completeAt), bytes: proxies.reduce((n, p) => n + p.bytes, 0), errors: proxies.reduce((n, p) => n + p.errors, 0), errorKinds: Object.fromEntries(errorKinds) });
  } else if (watch) {
    send({ ev: 'watch', id: watch.id, final, at: proxies.map((p) => p.watchAt), bytes: proxies.map((p) => p.watchBytes), responses: proxies.reduce((n, p) => n + p.watchResponses, 0) });
  }
}

process.on('message', (msg: ToWorker) => {
  switch (msg.cmd) {
    case 'connect': {
      for (const spec of msg.proxies) {
        // A channel per simulated proxy: each gets its own TCP connection, as Envoys do.
        const ch = new Channel(msg.address);
        completePending++;
        proxies.push(
          new Proxy(
            spec,
            msg.protocol,
            ch,
            () => watch,
            () => {
              if (--completePending === 0 && !completeReported) report('complete');
            },
            () => {
              if (--watchPending === 0) report('watch');
            },
            (message) => {
              if (errorKinds.has(message) || errorKinds.size < 10) errorKinds.set(message, (errorKinds.get(message) ?? 0) + 1);
            },
          ),
        );
      }
      break;
    }
    case 'collect-complete':
      report('complete');
      break;
    case 'watch':
      watch = { id: msg.id, type: msg.type, nameId: msg.name !== undefined ? names.idOfName(msg.name) : -1, since: msg.since };
      watchPending = proxies.length;
      for (const p of proxies) {
        p.watchAt = NaN;
        p.watchBytes = 0;
        p.watchResponses = 0;
      }
      break;
    case 'collect-watch':
      report('watch', true);
      watch = undefined;
      break;
    case 'close':
      for (const p of proxies) p.close();
      setTimeout(() => process.exit(0), 100).unref();
      break;
  }
});

// The protobuf types are loaded and their decoders compiled before the proxies are timed.
adsServiceDefinition();
for (const t of [CLUSTER_TYPE, LISTENER_TYPE]) decodeResource({ type_url: t, value: EMPTY });
send({ ev: 'ready', pid: process.pid });
