/**
 * The proxy's admin server (Envoy's :15000) and health server (Istio's :15021). What the admin
 * pages show about config comes from callbacks the proxy wiring supplies, so this file knows
 * nothing about how config is held; it only serves it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProxyStats } from './stats.js';

export const ADMIN_PORT = 15000;
export const HEALTH_PORT = 15021;

export interface AdminOptions {
  /** Default 127.0.0.1: the admin API can dump config and must not be reachable from outside. */
  host?: string;
  /** Default 15000; 0 picks a free port. */
  port?: number;
  stats: ProxyStats;
  /** True once a resolved config is applied (listeners up). */
  ready: () => boolean;
  /** Envoy's /clusters: text, one line per cluster/endpoint fact. */
  clusters?: () => string | Promise<string>;
  /** Envoy's /config_dump: any JSON-serialisable value. */
  configDump?: () => unknown;
  /** POST /drain_listeners: start a graceful drain. */
  drainListeners?: () => Promise<unknown>;
  /** Extra lines appended to /stats/prometheus (e.g. series kept outside this registry). */
  extraMetrics?: () => string | Promise<string>;
  /** Envoy's /listeners: bound listeners and their addresses (host:port). */
  listeners?: () => readonly { name: string; address: string }[];
  /** Envoy's /server_info (JSON). */
  serverInfo?: () => unknown;
  /** /logging: the current level, and a live change (POST /logging?level=debug). */
  logging?: { level(): string; setLevel(level: string): void; levels: readonly string[] };
}

export interface RunningServer {
  readonly server: http.Server;
  readonly address: AddressInfo;
  close(): Promise<void>;
}

function send(res: http.ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-cache' });
  res.end(body);
}

async function listen(server: http.Server, host: string, port: number): Promise<RunningServer> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const ADMIN_PATHS = ['/stats/prometheus[?filter=regex]', '/ready', '/clusters', '/config_dump', '/listeners', '/server_info', '/logging (POST ?level=)', '/drain_listeners (POST)'];

/** `host:port` / `[v6]:port` → Envoy's socket_address. */
function socketAddress(hp: string): { address: string; port_value: number } {
  const i = hp.lastIndexOf(':');
  return { address: hp.slice(0, i).replace(/^\[|\]$/g, ''), port_value: Number(hp.slice(i + 1)) };
}

export function adminHandler(opts: AdminOptions): http.RequestListener {
  return (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://admin');
      const path = url.pathname;
      const query = url.searchParams;
      try {
        if (path === '/stats/prometheus' || path === '/metrics') {
          const f = query.get('filter');
          let filter: RegExp | undefined;
          try {
            filter = f ? new RegExp(f) : undefined;
          } catch (e) {
            return send(res, 400, `invalid filter regex ${JSON.stringify(f)}: ${e instanceof Error ? e.message : String(e)}\n`);
          }
          let text = await opts.stats.metrics(filter);
          if (opts.extraMetrics) text += filterExposition(await opts.extraMetrics(), filter);
          return send(res, 200, text, opts.stats.contentType);
        }
        if (path === '/ready') {
          // Envoy answers its server state: LIVE when serving, PRE_INITIALIZING before.
          return opts.ready() ? send(res, 200, 'LIVE\n') : send(res, 503, 'PRE_INITIALIZING\n');
        }
        if (path === '/clusters') {
          if (!opts.clusters) return send(res, 404, 'no cluster view configured\n');
          return send(res, 200, await opts.clusters());
        }
        if (path === '/config_dump') {
          if (!opts.configDump) return send(res, 404, 'no config dump configured\n');
          return send(res, 200, JSON.stringify(opts.configDump(), replacer, 2) + '\n', 'application/json');
        }
        if (path === '/listeners') {
          if (!opts.listeners) return send(res, 404, 'no listener view configured\n');
          const ls = opts.listeners();
          if (query.get('format') === 'json') {
            const body = { listener_statuses: ls.map((l) => ({ name: l.name, local_address: { socket_address: socketAddress(l.address) } })) };
            return send(res, 200, JSON.stringify(body, null, 2) + '\n', 'application/json');
          }
          return send(res, 200, ls.map((l) => `${l.name}::${l.address}\n`).join(''));
        }
        if (path === '/server_info') {
          if (!opts.serverInfo) return send(res, 404, 'no server info configured\n');
          return send(res, 200, JSON.stringify(opts.serverInfo(), replacer, 2) + '\n', 'application/json');
        }
        if (path === '/logging') {
          if (!opts.logging) return send(res, 404, 'logging not configured\n');
          const level = query.get('level');
          if (level !== null) {
            // Envoy: a change is a POST, so a crawler or a browser prefetch cannot make it.
            if (req.method !== 'POST') return send(res, 405, 'use POST /logging?level=<level>\n');
            if (!opts.logging.levels.includes(level)) return send(res, 400, `unknown level ${JSON.stringify(level)}; one of ${opts.logging.levels.join(', ')}\n`);
            opts.logging.setLevel(level);
          }
          return send(res, 200, `active loggers:\n  isle: ${opts.logging.level()}\n`);
        }
        if (path === '/drain_listeners') {
          if (req.method !== 'POST') return send(res, 405, 'use POST\n');
          if (!opts.drainListeners) return send(res, 404, 'draining not configured\n');
          await opts.drainListeners();
          return send(res, 200, 'OK\n');
        }
        return send(res, 404, `unknown admin path ${path}; try: ${ADMIN_PATHS.join(', ')}\n`);
      } catch (e) {
        send(res, 500, `admin error: ${e instanceof Error ? e.message : String(e)}\n`);
      }
    })();
  };
}

/** The lines of a Prometheus text exposition whose metric name `filter` matches (all without one). */
export function filterExposition(text: string, filter: RegExp | undefined): string {
  if (!filter) return text;
  return text
    .split('\n')
    .filter((l) => {
      const name = l.startsWith('#') ? l.split(' ')[2] : /^[^{\s]+/.exec(l)?.[0];
      return name !== undefined && filter.test(name.replace(/_(bucket|sum|count)$/, ''));
    })
    .map((l) => `${l}\n`)
    .join('');
}

/** Maps, sets and RegExps (all over the proxy model) serialise as something readable. */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries(value);
  if (value instanceof Set) return [...value];
  if (value instanceof RegExp) return value.source;
  return value;
}

export function startAdmin(opts: AdminOptions): Promise<RunningServer> {
  return listen(http.createServer(adminHandler(opts)), opts.host ?? '127.0.0.1', opts.port ?? ADMIN_PORT);
}

export interface HealthOptions {
  /** In universal mode the workload's own address, so a prober can reach it; default 127.0.0.1. */
  host?: string;
  port?: number;
  ready: () => boolean;
}

/** Istio's pilot-agent health endpoint: GET /healthz/ready. */
export function startHealth(opts: HealthOptions): Promise<RunningServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/healthz/ready') return send(res, 404, 'not found\n');
    if (opts.ready()) send(res, 200, '');
    else send(res, 503, 'proxy is not ready\n');
  });
  return listen(server, opts.host ?? '127.0.0.1', opts.port ?? HEALTH_PORT);
}
