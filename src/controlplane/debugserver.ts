/**
 * The debug and metrics HTTP server (:15014, loopback by default), after istiod's:
 *
 *   /debug/syncz              per proxy: id, cluster, protocol, per type version sent / ACKed / last NACK
 *   /debug/config_dump?proxy= the decoded resources of that proxy's snapshot
 *   /debug/registryz          the registry: shards (stale ones marked), merged services, conflicts
 *   /debug/configz            config errors and warnings (file:line), store version, config pushed with problems
 *   /debug/push_status        the last pushes (kind, reasons, debounce)
 *   /debug/memory             process.memoryUsage(), after a full GC when node runs with --expose-gc
 *                             and malloc_trim (glibc), so RSS shows what is held
 *   /debug/meshz              the mesh page's data: clusters, services, workloads, request edges, proxies' sync state, peer links
 *   /ui                       the mesh page (static HTML + JS polling /debug/meshz; ADR 0095)
 *   /metrics                  Prometheus text
 *   /ready                    200 once the control plane serves
 *
 * JSON is pretty-printed unless `?pretty=false`. Read-only: nothing here changes state.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatConfigError, type ConfigError } from '../config/types.js';
import { registryz } from '../registry/debug.js';
import type { Registry } from '../registry/aggregate.js';
import { decodeResource } from '../xds/codec.js';
import type { SnapshotCache } from '../xds/cache.js';
import type { ProxyStatus, XdsServer } from '../xds/server.js';
import { SERVED_TYPES, shortTypeName } from '../mesh/typeurls.js';
import type { ControlPlaneMetrics } from './metrics.js';
import type { Pusher } from './pusher.js';
import type { PushedProblem } from '../generate/virtualservice.js';
import { MeshStats, scrapeTargets, type MeshStatsOptions } from './meshstats.js';
import { buildMeshz } from './meshz.js';
import type { RemoteClusterz } from './status.js';
import { loadUi, type StaticFile } from './ui.js';

export interface DebugSources {
  xdsServers: readonly XdsServer[];
  cache: SnapshotCache;
  registry: Registry;
  configErrors: () => readonly ConfigError[];
  /** Config that is pushed although it cannot work (a subset no DestinationRule defines). */
  pushProblems?: () => readonly PushedProblem[];
  configVersion: () => number;
  pusher: Pusher;
  metrics: ControlPlaneMetrics;
  ready: () => boolean;
  /** Extra facts for /debug/syncz and the index (cluster, listen addresses). */
  info: () => Record<string, unknown>;
  /** Remote clusters we subscribe to and peers subscribed to us (`istioctl remote-clusters`). */
  remoteClusters?: () => unknown;
  /** How /debug/meshz reads the proxies' request counters (tests inject clocks and fetch). */
  meshStats?: MeshStatsOptions;
  /** The mesh page's files; default: ui/mesh of this package. */
  uiDir?: string;
  /** Returns malloc's free memory to the system (memtrim.ts), before /debug/memory reads RSS. */
  trimMemory?: () => void;
}

export interface SynczEntry {
  id: string;
  cluster: string;
  protocol: string;
  stream: string;
  peer: string;
  connectedSince: string;
  /** `CDS`, `EDS`… → versions. */
  types: Record<string, { sent?: string; acked?: string; subscribed: string[] | '*'; lastNack?: { version: string; message: string; at: string } }>;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function syncz(statuses: readonly ProxyStatus[], clock: (ms: number) => string = iso): SynczEntry[] {
  return statuses
    .map((s) => {
      const types: SynczEntry['types'] = {};
      for (const t of s.types) {
        types[shortTypeName(t.typeUrl)] = {
          ...(t.versionSent !== undefined ? { sent: t.versionSent } : {}),
          ...(t.versionAcked !== undefined ? { acked: t.versionAcked } : {}),
          subscribed: t.wildcard ? '*' : t.names,
          ...(t.lastNack ? { lastNack: { version: t.lastNack.version, message: t.lastNack.message, at: clock(t.lastNack.at) } } : {}),
        };
      }
      return {
        id: s.node.id,
        cluster: s.node.cluster,
        protocol: s.protocol,
        stream: s.streamId,
        peer: s.peer,
        connectedSince: clock(s.connectedSince),
        types,
      };
    })
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export class DebugServer {
  private readonly server: Server;
  private bound: AddressInfo | undefined;
  private readonly meshStats: MeshStats;
  private readonly ui: Map<string, StaticFile> | Error;

  constructor(private readonly src: DebugSources) {
    this.meshStats = new MeshStats(src.meshStats);
    this.ui = loadUi(src.uiDir);
    this.server = createServer((req, res) => {
      void this.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) this.send(res, 500, { error: e instanceof Error ? e.message : String(e) }, true);
        else res.end();
      });
    });
    // Keep-alive sockets of curl or Prometheus must not hold stop() up.
    this.server.keepAliveTimeout = 1000;
  }

  /** Resolves with the bound `host:port`; rejects with the listen error (EADDRINUSE…). */
  listen(host: string, port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        this.bound = this.server.address() as AddressInfo;
        resolve(this.address);
      });
    });
  }

  get address(): string {
    if (!this.bound) return '';
    return this.bound.family === 'IPv6' ? `[${this.bound.address}]:${this.bound.port}` : `${this.bound.address}:${this.bound.port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://debug');
    const pretty = url.searchParams.get('pretty') !== 'false';
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.send(res, 405, { error: 'read-only: use GET' }, pretty);
    const s = this.src;
    switch (url.pathname) {
      case '/ready':
        if (s.ready()) return this.text(res, 200, 'ready\n');
        return this.text(res, 503, 'not ready\n');
      case '/metrics':
        return this.text(res, 200, await s.metrics.text(), s.metrics.contentType);
      case '/debug/syncz':
        return this.send(res, 200, syncz(s.xdsServers.flatMap((x) => x.status())), pretty);
      case '/debug/registryz':
        return this.send(res, 200, registryz(s.registry), pretty);
      case '/debug/configz': {
        const errors = s.configErrors();
        return this.send(
          res,
          200,
          {
            version: s.configVersion(),
            errors: errors.filter((e) => e.severity === 'error').length,
            warnings: errors.filter((e) => e.severity === 'warning').length,
            problems: errors.map((e) => ({ ...e, text: formatConfigError(e) })),
            pushed: (s.pushProblems?.() ?? []).map((x) => ({ ...x, text: `${x.file}:${x.line} ${x.resource}: ${x.message}` })),
          },
          pretty,
        );
      }
      case '/debug/remoteclusterz':
        return this.send(res, 200, s.remoteClusters?.() ?? { remoteClusters: [], subscribers: [] }, pretty);
      case '/debug/push_status':
        return this.send(res, 200, { pushContext: s.pusher.pushContext.version, busy: s.pusher.busy, writes: xdsCounts(s.xdsServers, 'writes'), reads: xdsCounts(s.xdsServers, 'reads'), recent: s.pusher.recentPushes() }, pretty);
      case '/debug/memory': {
        const gc = (globalThis as { gc?: () => void }).gc;
        if (gc) {
          gc();
          gc();
        }
        // What the collections freed goes back to the system too, so RSS shows what is held.
        s.trimMemory?.();
        const proxies = s.xdsServers.reduce((n, x) => n + x.streamCount(), 0);
        return this.send(res, 200, { gcRan: gc !== undefined, streams: proxies, ...process.memoryUsage() }, pretty);
      }
      case '/debug/config_dump': {
        const id = url.searchParams.get('proxy');
        if (!id) return this.send(res, 400, { error: 'missing ?proxy=<node id> (see /debug/syncz)' }, pretty);
        const snap = s.cache.getSnapshot(id);
        if (!snap) return this.send(res, 404, { error: `no snapshot for proxy ${JSON.stringify(id)} (connected: ${s.pusher.proxyKeys().length})` }, pretty);
        const out: Record<string, unknown> = { proxy: id, pushContext: s.pusher.pushContext.version };
        for (const typeUrl of SERVED_TYPES) {
          const t = snap.get(typeUrl);
          if (!t) continue;
          out[shortTypeName(typeUrl)] = {
            typeUrl,
            version: t.version,
            resources: [...t.resources.values()].map((r) => ({ name: r.name, version: r.version, resource: decodeResource(r.any) })),
          };
        }
        return this.send(res, 200, out, pretty);
      }
      case '/debug/meshz':
        return this.send(res, 200, await this.meshz(), pretty);
      case '/ui':
      case '/ui/':
      case '/ui/mesh.js':
      case '/ui/mesh.css': {
        if (this.ui instanceof Error) return this.text(res, 500, `${this.ui.message}\n`);
        const f = this.ui.get(url.pathname)!;
        res.writeHead(200, { 'content-type': f.type, 'cache-control': 'no-store', 'content-security-policy': "default-src 'self'; img-src 'self' data:", 'x-content-type-options': 'nosniff' });
        return void res.end(req.method === 'HEAD' ? undefined : f.body);
      }
      case '/':
      case '/debug':
        // A browser gets the page at /; curl and scripts keep getting the JSON index.
        if (url.pathname === '/' && /\btext\/html\b/.test(req.headers.accept ?? '')) {
          res.writeHead(302, { location: '/ui' });
          return void res.end();
        }
        return this.send(
          res,
          200,
          { ...s.info(), endpoints: ['/ui', '/debug/meshz', '/debug/syncz', '/debug/config_dump?proxy=ID', '/debug/registryz', '/debug/remoteclusterz', '/debug/configz', '/debug/push_status', '/debug/memory', '/metrics', '/ready'] },
          pretty,
        );
      default:
        return this.send(res, 404, { error: `no such endpoint ${url.pathname}; see /debug` }, pretty);
    }
  }

  /** Reads the proxies' counters (at most every few seconds, whoever asks) and assembles the page's data. */
  private async meshz() {
    const s = this.src;
    const statuses = s.xdsServers.flatMap((x) => x.status());
    await this.meshStats.refresh(scrapeTargets(statuses));
    const info = s.info();
    const remote = s.remoteClusters?.() as RemoteClusterz | undefined;
    return buildMeshz({
      cluster: typeof info['cluster'] === 'string' ? info['cluster'] : s.registry.localCluster,
      statuses,
      latest: (key, typeUrl) => s.cache.getSnapshot(key)?.get(typeUrl)?.version,
      registry: s.registry,
      remote,
      traffic: this.meshStats.traffic(),
      now: Date.now(),
    });
  }

  private send(res: ServerResponse, code: number, body: unknown, pretty: boolean): void {
    this.text(res, code, JSON.stringify(body, null, pretty ? 2 : undefined) + '\n', 'application/json; charset=utf-8');
  }

  private text(res: ServerResponse, code: number, body: string, type = 'text/plain; charset=utf-8'): void {
    res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(body);
  }
}

/**
 * Summed over every xDS listener: responses written as shared parts vs copied whole by grpc-js
 * (`writes`, xds/directsend.ts); streams read from the HTTP/2 chunks vs through grpc-js' decoder
 * (`reads`, xds/directrecv.ts).
 */
function xdsCounts(servers: readonly XdsServer[], key: 'writes' | 'reads'): { direct: number; copied: number } {
  const w = { direct: 0, copied: 0 };
  for (const x of servers) {
    w.direct += x[key].direct;
    w.copied += x[key].copied;
  }
  return w;
}
