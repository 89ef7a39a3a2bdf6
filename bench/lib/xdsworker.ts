/**
 * A worker CHILD PROCESS holding many simulated proxies: each one is a real gRPC ADS stream on its
 * own TCP connection (a local subchannel pool per channel), delta or SotW, subscribing the way
 * Envoy does — CDS and LDS wildcard, SDS ROOTCA, then EDS for every EDS cluster and RDS for every
 * route config the listeners name — and ACKing every response at once.
 *
 * It counts the bytes of every response (the gRPC message, before decoding) per proxy and records
 * times on the machine's shared clock (performance.timeOrigin + now), so the parent can compare
 * them with the moment it wrote a change. Driven over the IPC channel (see xdspool.ts). Resources
 * are never decoded beyond their name, except one Cluster and one Listener per name per worker
 * (to learn EDS and RDS names), so a worker stays cheap next to the control plane it measures.
 */
import * as grpc from '@grpc/grpc-js';
import {
  adsServiceDefinition,
  decodeResource,
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  LISTENER_TYPE,
  ROUTE_TYPE,
  SECRET_TYPE,
  type AnyMsg,
  type DeltaDiscoveryResponseMsg,
  type DiscoveryResponseMsg,
  type NodeMsg,
} from '../../src/xds/index.js';
import { readDeltaResponse, readSotwResponse } from './wire.js';
import type { ToWorker, FromWorker, ProxySpec } from './xdspool.js';

const clock = (): number => performance.timeOrigin + performance.now();
const send = (m: FromWorker): void => void process.send!(m);

/** Field 1 (length-delimited) of a message: the `name` of Cluster, Listener, RouteConfiguration, Secret, the `cluster_name` of a ClusterLoadAssignment. */
function firstStringField(buf: Uint8Array): string | undefined {
  if (buf.length < 2 || buf[0] !== 0x0a) return undefined;
  let len = 0;
  let shift = 0;
  let i = 1;
  for (; i < buf.length && i < 6; i++) {
    const b = buf[i]!;
    len |= (b & 0x7f) << shift;
    shift += 7;
    if ((b & 0x80) === 0) break;
  }
  i++;
  if (i + len > buf.length) return undefined;
  return Buffer.from(buf.buffer, buf.byteOffset + i, len).toString('utf8');
}

function nameOf(a: AnyMsg): string {
  const n = firstStringField(a.value);
  if (n !== undefined) return n;
  const d = decodeResource(a);
  return String(d['name'] ?? d['cluster_name'] ?? '');
}

/** cluster name → its EDS service name, or null when it is not an EDS cluster (decoded once per worker). */
const edsOf = new Map<string, string | null>();
/** listener name + bytes length → route config names (decoded once per listener shape). */
const rdsOf = new Map<string, string[]>();

function edsName(name: string, any: AnyMsg | null | undefined): string | null {
  let v = edsOf.get(name);
  if (v === undefined) {
    if (!any) return null;
    const d = decodeResource(any);
    v = d['type'] === 'EDS' ? String((d['eds_cluster_config'] as { service_name?: string } | undefined)?.service_name || d['name']) : null;
    edsOf.set(name, v);
  }
  return v;
}

function routeNames(name: string, any: AnyMsg | null | undefined): string[] {
  if (!any) return [];
  const key = `${name}\0${any.value.length}`;
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
    walk(decodeResource(any));
    v = [...out].sort();
    rdsOf.set(key, v);
  }
  return v;
}

interface Watch {
  id: number;
  type: string;
  name?: string;
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
  private call!: grpc.ClientDuplexStream<never, unknown>;
  private have = new Map<string, Set<string>>();
  /** Resource name → which cluster/listener wanted what (delta keeps state by name). */
  private clusters = new Map<string, string | null>();
  private listeners = new Map<string, string[]>();
  private eds = new Set<string>();
  private rds = new Set<string>();
  private edsKey = '';
  private rdsKey = '';
  private sentNode = false;
  private versions = new Map<string, string>();
  private nonces = new Map<string, string>();

  constructor(
    readonly spec: ProxySpec,
    readonly protocol: 'delta' | 'sotw',
    readonly ch: grpc.Client,
    private readonly watch: () => Watch | undefined,
    private readonly onComplete: (p: Proxy) => void,
    private readonly onWatch: (p: Proxy) => void,
    private readonly onError: (message: string) => void,
  ) {
    this.open();
  }

  /** Opens the ADS stream with a fresh state; like Envoy, a failed stream is reopened after a backoff. */
  private open(): void {
    const protocol = this.protocol;
    const def = adsServiceDefinition();
    const m = protocol === 'delta' ? def.DeltaAggregatedResources : def.StreamAggregatedResources;
    const read = protocol === 'delta' ? readDeltaResponse : readSotwResponse;
    const des = (b: Buffer): unknown => {
      this.count(b.length);
      return read(b);
    };
    this.have = new Map();
    this.clusters = new Map();
    this.listeners = new Map();
    this.eds = new Set();
    this.rds = new Set();
    this.edsKey = '';
    this.rdsKey = '';
    this.sentNode = false;
    this.versions = new Map();
    this.nonces = new Map();
    const call = this.ch.makeBidiStreamRequest(m.path, m.requestSerialize as (v: never) => Buffer, des) as unknown as grpc.ClientDuplexStream<never, unknown>;
    this.call = call;
    call.on('error', (e: grpc.ServiceError) => {
      if (this.closed) return;
      this.errors++;
      this.onError(`${grpc.status[e.code] ?? e.code}: ${e.details}`);
    });
    call.on('status', () => {
      if (this.closed || this.call !== call) return;
      this.reconnects++;
      setTimeout(() => !this.closed && this.open(), 500 + Math.random() * 1000);
    });
    call.on('data', (r: unknown) => (protocol === 'delta' ? this.onDelta(r as DeltaDiscoveryResponseMsg) : this.onSotw(r as DiscoveryResponseMsg)));
    this.subscribe(CLUSTER_TYPE, []);
    this.subscribe(LISTENER_TYPE, []);
    this.subscribe(SECRET_TYPE, ['ROOTCA']);
  }

  private count(n: number): void {
    this.bytes += n;
    this.responses++;
    if (this.watch()) {
      this.watchBytes += n;
      this.watchResponses++;
    }
  }

  private write(req: Record<string, unknown>): void {
    if (!this.sentNode) req['node'] = this.spec.node as NodeMsg;
    this.sentNode = true;
    (this.call as unknown as { write: (x: unknown) => void }).write(req);
  }

  private subscribe(type: string, names: string[]): void {
    if (this.protocol === 'delta') this.write({ type_url: type, resource_names_subscribe: names });
    else this.write({ type_url: type, resource_names: names, version_info: this.versions.get(type) ?? '', response_nonce: this.nonces.get(type) ?? '' });
  }

  private onDelta(r: DeltaDiscoveryResponseMsg): void {
    const t = r.type_url;
    let have = this.have.get(t);
    if (!have) this.have.set(t, (have = new Set()));
    const names: string[] = [];
    for (const x of r.resources) {
      have.add(x.name);
      names.push(x.name);
      if (t === CLUSTER_TYPE) this.clusters.set(x.name, edsName(x.name, x.resource));
      if (t === LISTENER_TYPE) this.listeners.set(x.name, routeNames(x.name, x.resource));
    }
    for (const n of r.removed_resources) {
      have.delete(n);
      if (t === CLUSTER_TYPE) this.clusters.delete(n);
      if (t === LISTENER_TYPE) this.listeners.delete(n);
    }
    this.write({ type_url: t, response_nonce: r.nonce });
    this.after(t, names);
  }

  private onSotw(r: DiscoveryResponseMsg): void {
    const t = r.type_url;
    // LDS/CDS responses are the whole state; EDS/RDS/SDS ones may carry only what changed.
    const have = t === CLUSTER_TYPE || t === LISTENER_TYPE ? new Set<string>() : new Set(this.have.get(t));
    const names: string[] = [];
    if (t === CLUSTER_TYPE) this.clusters.clear();
    if (t === LISTENER_TYPE) this.listeners.clear();
    for (const a of r.resources) {
      const n = nameOf(a);
      have.add(n);
      names.push(n);
      if (t === CLUSTER_TYPE) this.clusters.set(n, edsName(n, a));
      if (t === LISTENER_TYPE) this.listeners.set(n, routeNames(n, a));
    }
    this.have.set(t, have);
    this.versions.set(t, r.version_info);
    this.nonces.set(t, r.nonce);
    const sub = t === ENDPOINT_TYPE ? [...this.eds] : t === ROUTE_TYPE ? [...this.rds] : t === SECRET_TYPE ? ['ROOTCA'] : [];
    this.write({ type_url: t, version_info: r.version_info, response_nonce: r.nonce, resource_names: sub });
    this.after(t, names);
  }

  private after(t: string, names: string[]): void {
    if (t === CLUSTER_TYPE) {
      const want = new Set<string>();
      for (const v of this.clusters.values()) if (v) want.add(v);
      const key = [...want].sort().join('\n');
      if (key !== this.edsKey) {
        this.edsKey = key;
        this.follow(ENDPOINT_TYPE, this.eds, want);
        this.eds = want;
      }
    }
    if (t === LISTENER_TYPE) {
      const want = new Set<string>();
      for (const v of this.listeners.values()) for (const n of v) want.add(n);
      const key = [...want].sort().join('\n');
      if (key !== this.rdsKey) {
        this.rdsKey = key;
        this.follow(ROUTE_TYPE, this.rds, want);
        this.rds = want;
      }
    }
    const w = this.watch();
    if (w && Number.isNaN(this.watchAt) && t === w.type && (w.name === undefined || names.includes(w.name))) {
      this.watchAt = clock();
      this.onWatch(this);
    }
    if (Number.isNaN(this.completeAt) && this.complete()) {
      this.completeAt = clock();
      this.onComplete(this);
    }
  }

  private follow(type: string, old: Set<string>, want: Set<string>): void {
    if (this.protocol === 'sotw') {
      this.subscribe(type, [...want].sort());
      return;
    }
    const add = [...want].filter((n) => !old.has(n));
    const remove = [...old].filter((n) => !want.has(n));
    if (add.length === 0 && remove.length === 0) return;
    this.write({ type_url: type, resource_names_subscribe: add, resource_names_unsubscribe: remove });
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
    try {
      (this.call as unknown as { end: () => void }).end();
      this.call.cancel();
    } catch {
      /* closing */
    }
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
      const creds = grpc.credentials.createInsecure();
      for (const spec of msg.proxies) {
        // A local subchannel pool: every simulated proxy gets its own TCP connection, as Envoys do.
        const ch = new grpc.Client(msg.address, creds, { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 256 << 20 });
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
      watch = { id: msg.id, type: msg.type, ...(msg.name !== undefined ? { name: msg.name } : {}), since: msg.since };
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

send({ ev: 'ready', pid: process.pid });
