/**
 * Real gRPC plumbing for the xDS tests: an ADS server on 127.0.0.1 with an ephemeral port, and
 * small SotW / delta clients that behave like Envoy's (ACK with the accepted version, NACK with
 * error_detail and the previous version), built on grpc-js and the same protos.
 */
import * as grpc from '@grpc/grpc-js';
import { WILDCARD_TYPES } from '../../src/mesh/typeurls.js';
import {
  adsServiceDefinition,
  decodeResource,
  makeResource,
  makeSnapshot,
  SnapshotCache,
  XdsServer,
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  LISTENER_TYPE,
  ROUTE_TYPE,
  SECRET_TYPE,
  HTTP_CONNECTION_MANAGER_TYPE,
  ROUTER_TYPE,
  type DeltaDiscoveryRequestMsg,
  type DeltaDiscoveryResponseMsg,
  type DiscoveryRequestMsg,
  type DiscoveryResponseMsg,
  type NodeMsg,
  type Snapshot,
  type XdsLogger,
  type XdsResource,
  type XdsServerOptions,
} from '../../src/xds/index.js';

export const ALL_TYPES = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE];

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

export interface Harness {
  address: string;
  grpcServer: grpc.Server;
  xds: XdsServer;
  cache: SnapshotCache;
  logs: LogEntry[];
  close(): Promise<void>;
}

export async function startServer(
  opts: { grpcOptions?: grpc.ServerOptions; xds?: Partial<XdsServerOptions>; address?: string } = {},
): Promise<Harness> {
  const logs: LogEntry[] = [];
  const rec =
    (level: LogEntry['level']) =>
    (obj: object, msg: string): void => {
      logs.push({ level, obj: obj as Record<string, unknown>, msg });
    };
  const logger: XdsLogger = { debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error') };
  const cache = new SnapshotCache();
  const xds = new XdsServer({ cache, logger, ...opts.xds });
  const grpcServer = new grpc.Server(opts.grpcOptions);
  xds.addToServer(grpcServer);
  const port = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(opts.address ?? '127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    grpcServer,
    xds,
    cache,
    logs,
    async close() {
      xds.close();
      grpcServer.forceShutdown();
    },
  };
}

export function newChannel(address: string): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure());
}

export async function waitUntil(pred: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A FIFO of stream messages with awaitable reads. */
class Inbox<T> {
  private readonly items: T[] = [];
  private readonly waiters: { pred: (t: T) => boolean; resolve: (t: T) => void }[] = [];
  ended: Error | undefined;

  push(t: T): void {
    const i = this.waiters.findIndex((w) => w.pred(t));
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(t);
    else this.items.push(t);
  }

  fail(e: Error): void {
    this.ended = e;
  }

  size(): number {
    return this.items.length;
  }

  take(pred: (t: T) => boolean, what: string, timeoutMs: number): Promise<T> {
    const i = this.items.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.items.splice(i, 1)[0]!);
    return new Promise<T>((resolve, reject) => {
      const w = {
        pred,
        resolve: (t: T) => {
          clearTimeout(timer);
          resolve(t);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timed out waiting for ${what}${this.ended ? ` (stream ended: ${this.ended.message})` : ''}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }
}

function streamStatus<T extends grpc.ClientDuplexStream<never, unknown>>(call: T): Promise<grpc.StatusObject> {
  return new Promise((resolve) => call.on('status', resolve));
}

export class SotwClient {
  readonly call: grpc.ClientDuplexStream<DiscoveryRequestMsg, DiscoveryResponseMsg>;
  readonly status: Promise<grpc.StatusObject>;
  private readonly inbox = new Inbox<DiscoveryResponseMsg>();
  private sentNode = false;
  /** What an Envoy would remember per type: accepted version, last nonce, subscription. */
  readonly accepted = new Map<string, string>();
  readonly nonces = new Map<string, string>();
  readonly names = new Map<string, string[]>();
  /** Applied (ACKed) state, decoded: type → name → resource. */
  readonly state = new Map<string, Map<string, Record<string, unknown>>>();
  error: grpc.ServiceError | undefined;

  constructor(
    readonly channel: grpc.Client,
    readonly node: NodeMsg,
    readonly opts: { autoAck?: boolean } = {},
  ) {
    const m = adsServiceDefinition().StreamAggregatedResources;
    this.call = channel.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize);
    this.status = streamStatus(this.call as never);
    this.call.on('error', (e: grpc.ServiceError) => {
      this.error = e;
      this.inbox.fail(e);
    });
    this.call.on('data', (r: DiscoveryResponseMsg) => {
      if (this.opts.autoAck) this.ack(r);
      this.inbox.push(r);
    });
  }

  send(req: DiscoveryRequestMsg): void {
    if (!this.sentNode && req.node === undefined) req = { ...req, node: this.node };
    this.sentNode = true;
    this.call.write(req);
  }

  request(typeUrl: string, names: string[] = []): void {
    this.names.set(typeUrl, names);
    this.send({
      type_url: typeUrl,
      resource_names: names,
      version_info: this.accepted.get(typeUrl) ?? '',
      response_nonce: this.nonces.get(typeUrl) ?? '',
    });
  }

  ack(r: DiscoveryResponseMsg): void {
    // LDS/CDS responses are the whole state; EDS/RDS/SDS ones may carry only what changed.
    const m = WILDCARD_TYPES.has(r.type_url) ? new Map<string, Record<string, unknown>>() : new Map(this.state.get(r.type_url));
    for (const a of r.resources) {
      const d = decodeResource(a);
      m.set(String(d['name'] ?? d['cluster_name']), d);
    }
    this.state.set(r.type_url, m);
    this.accepted.set(r.type_url, r.version_info);
    this.nonces.set(r.type_url, r.nonce);
    this.send({
      type_url: r.type_url,
      version_info: r.version_info,
      response_nonce: r.nonce,
      resource_names: this.names.get(r.type_url) ?? [],
    });
  }

  nack(r: DiscoveryResponseMsg, message: string): void {
    this.nonces.set(r.type_url, r.nonce);
    this.send({
      type_url: r.type_url,
      version_info: this.accepted.get(r.type_url) ?? '',
      response_nonce: r.nonce,
      resource_names: this.names.get(r.type_url) ?? [],
      error_detail: { code: grpc.status.INVALID_ARGUMENT, message },
    });
  }

  next(typeUrl?: string, timeoutMs = 8000): Promise<DiscoveryResponseMsg> {
    return this.inbox.take((r) => !typeUrl || r.type_url === typeUrl, `a ${typeUrl ?? 'any'} response`, timeoutMs);
  }

  pending(): number {
    return this.inbox.size();
  }

  close(): void {
    this.call.cancel();
  }
}

export class DeltaClient {
  readonly call: grpc.ClientDuplexStream<DeltaDiscoveryRequestMsg, DeltaDiscoveryResponseMsg>;
  readonly status: Promise<grpc.StatusObject>;
  private readonly inbox = new Inbox<DeltaDiscoveryResponseMsg>();
  private sentNode = false;
  /** Applied state: type → name → resource version. */
  readonly versions = new Map<string, Map<string, string>>();
  readonly systemVersion = new Map<string, string>();
  error: grpc.ServiceError | undefined;

  constructor(
    readonly channel: grpc.Client,
    readonly node: NodeMsg,
    readonly opts: { autoAck?: boolean } = {},
  ) {
    const m = adsServiceDefinition().DeltaAggregatedResources;
    this.call = channel.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize);
    this.status = streamStatus(this.call as never);
    this.call.on('error', (e: grpc.ServiceError) => {
      this.error = e;
      this.inbox.fail(e);
    });
    this.call.on('data', (r: DeltaDiscoveryResponseMsg) => {
      if (this.opts.autoAck) this.ack(r);
      this.inbox.push(r);
    });
  }

  send(req: DeltaDiscoveryRequestMsg): void {
    if (!this.sentNode && req.node === undefined) req = { ...req, node: this.node };
    this.sentNode = true;
    this.call.write(req);
  }

  subscribe(typeUrl: string, names: string[] = [], initial?: Record<string, string>): void {
    this.send({
      type_url: typeUrl,
      resource_names_subscribe: names,
      ...(initial ? { initial_resource_versions: initial } : {}),
    });
  }

  unsubscribe(typeUrl: string, names: string[]): void {
    for (const n of names) this.versions.get(typeUrl)?.delete(n);
    this.send({ type_url: typeUrl, resource_names_unsubscribe: names });
  }

  ack(r: DeltaDiscoveryResponseMsg): void {
    let m = this.versions.get(r.type_url);
    if (!m) this.versions.set(r.type_url, (m = new Map()));
    for (const res of r.resources) m.set(res.name, res.version);
    for (const n of r.removed_resources) m.delete(n);
    this.systemVersion.set(r.type_url, r.system_version_info);
    this.send({ type_url: r.type_url, response_nonce: r.nonce });
  }

  nack(r: DeltaDiscoveryResponseMsg, message: string): void {
    this.send({
      type_url: r.type_url,
      response_nonce: r.nonce,
      error_detail: { code: grpc.status.INVALID_ARGUMENT, message },
    });
  }

  next(typeUrl?: string, timeoutMs = 8000): Promise<DeltaDiscoveryResponseMsg> {
    return this.inbox.take((r) => !typeUrl || r.type_url === typeUrl, `a delta ${typeUrl ?? 'any'} response`, timeoutMs);
  }

  pending(): number {
    return this.inbox.size();
  }

  close(): void {
    this.call.cancel();
  }
}

// --- fixtures ------------------------------------------------------------------------------------
// `tag` lands in a string field, so resources with different tags have different bytes.

export function cluster(name: string, tag = '', extra: Record<string, unknown> = {}): XdsResource {
  return makeResource(CLUSTER_TYPE, {
    name,
    alt_stat_name: `${name}${tag}`,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: name },
    connect_timeout: '1s',
    ...extra,
  });
}

export function endpoints(clusterName: string, ips: string[], tag = ''): XdsResource {
  return makeResource(ENDPOINT_TYPE, {
    cluster_name: clusterName,
    endpoints: [
      {
        locality: { region: 'r1', zone: 'z1', sub_zone: tag },
        lb_endpoints: ips.map((ip) => ({
          endpoint: { address: { socket_address: { address: ip, port_value: 8080 } } },
        })),
      },
    ],
  });
}

export function listener(name: string, routeName: string, tag = ''): XdsResource {
  return makeResource(LISTENER_TYPE, {
    name,
    address: { socket_address: { address: '0.0.0.0', port_value: 15001 } },
    stat_prefix: `${name}${tag}`,
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HTTP_CONNECTION_MANAGER_TYPE,
              stat_prefix: name,
              rds: { route_config_name: routeName, config_source: { ads: {}, resource_api_version: 'V3' } },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
            },
          },
        ],
      },
    ],
  });
}

export function route(name: string, clusterName: string, tag = ''): XdsResource {
  return makeResource(ROUTE_TYPE, {
    name,
    virtual_hosts: [
      { name: `vh${tag}`, domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: clusterName } }] },
    ],
  });
}

export function secret(name: string, tag = ''): XdsResource {
  return makeResource(SECRET_TYPE, {
    name,
    validation_context: { trusted_ca: { inline_string: `-----BEGIN CERTIFICATE-----\n${tag}\n` } },
  });
}

/** A full five-type snapshot at `version`; every resource's bytes depend on `tag`. */
export function fullSnapshot(version: string, tag = version): Snapshot {
  return makeSnapshot({
    [CLUSTER_TYPE]: { version, resources: [cluster('c1', tag)] },
    [ENDPOINT_TYPE]: { version, resources: [endpoints('c1', ['10.0.0.1'], tag)] },
    [LISTENER_TYPE]: { version, resources: [listener('l1', 'r1', tag)] },
    [ROUTE_TYPE]: { version, resources: [route('r1', 'c1', tag)] },
    [SECRET_TYPE]: { version, resources: [secret('root', tag)] },
  });
}

/** What a client subscribes to for fullSnapshot: wildcard CDS/LDS, named EDS/RDS/SDS. */
export const FULL_SUBSCRIPTION: [string, string[]][] = [
  [CLUSTER_TYPE, []],
  [ENDPOINT_TYPE, ['c1']],
  [LISTENER_TYPE, []],
  [ROUTE_TYPE, ['r1']],
  [SECRET_TYPE, ['root']],
];
