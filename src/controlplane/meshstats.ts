/**
 * The traffic half of the mesh page (ADR 0095): the control plane reads `istio_requests_total`
 * from its connected proxies' admin servers (`/stats/prometheus?filter=…`, Envoy's filter) when
 * the page asks, at most once per `minIntervalMs`, and turns the samples of the last `windowMs`
 * into edges (source workload → destination service/workload) with request rates and error
 * ratios. Nothing is scraped while nobody looks.
 *
 * Where a proxy's admin server is comes from its node metadata (`ISLE_ADMIN_ADDRESS`), a claim:
 * it is only used when its host is one of the proxy's own addresses (`scrapeTargets`), the
 * request is a GET of a fixed path with a short timeout and a size cap, and only
 * `istio_requests_total` lines are read from the answer.
 */
import { isIP } from 'node:net';
import { formatHostPort, parseHostPort } from '../config/hostport.js';
import { ADMIN_ADDRESS_METADATA } from '../mesh/names.js';
import type { ProxyStatus } from '../xds/server.js';

const METRIC = 'istio_requests_total';
const STATS_PATH = `/stats/prometheus?filter=${encodeURIComponent(`^${METRIC}$`)}`;

export interface ScrapeTarget {
  /** Node id. */
  id: string;
  /** The stats URL, or why there is none. */
  url?: string;
  problem?: string;
}

/** `127.0.0.1:5432`, `ipv4:127.0.0.1:5432`, `[::1]:5432` → the IP; undefined otherwise. */
export function peerIp(peer: string): string | undefined {
  const hp = parseHostPort(peer.replace(/^ipv[46]:/, ''));
  return hp && isIP(hp.host) ? hp.host : undefined;
}

const isLoopback = (ip: string) => ip === '::1' || ip.startsWith('127.');
const isUnspecified = (ip: string) => ip === '0.0.0.0' || ip === '::';

/** One target per connected proxy (node id), with the admin address checked against the proxy's own addresses. */
export function scrapeTargets(statuses: readonly ProxyStatus[]): ScrapeTarget[] {
  const out = new Map<string, ScrapeTarget>();
  for (const s of statuses) {
    if (out.has(s.node.id)) continue;
    out.set(s.node.id, targetOf(s));
  }
  return [...out.values()];
}

function targetOf(s: ProxyStatus): ScrapeTarget {
  const id = s.node.id;
  const md = s.node.metadata;
  const raw = Object.prototype.hasOwnProperty.call(md, ADMIN_ADDRESS_METADATA) ? md[ADMIN_ADDRESS_METADATA] : undefined;
  if (typeof raw !== 'string') return { id, problem: `no admin address in node metadata (${ADMIN_ADDRESS_METADATA})` };
  const hp = parseHostPort(raw);
  if (!hp || !isIP(hp.host)) return { id, problem: `admin address ${JSON.stringify(raw)} is not an IP:port` };
  const ips = new Set<string>();
  const instance = typeof md['INSTANCE_IPS'] === 'string' ? md['INSTANCE_IPS'].split(',').map((x) => x.trim()) : [];
  for (const ip of [id.split('~')[1] ?? '', ...instance]) if (isIP(ip)) ips.add(ip);
  const from = peerIp(s.peer);
  if (from) ips.add(from);
  let host = hp.host;
  if (isUnspecified(host)) {
    const first = [...ips][0];
    if (!first) return { id, problem: `admin listens on ${raw} and the proxy has no address to reach it at` };
    host = first;
  }
  // Loopback is the proxy's own host only when it dialled us from loopback (same machine).
  const ok = ips.has(host) || (isLoopback(host) && from !== undefined && isLoopback(from));
  if (!ok) return { id, problem: `admin address ${raw} is not one of the proxy's addresses (${[...ips].join(', ') || 'none'}): not read` };
  return { id, url: `http://${formatHostPort(host, hp.port)}${STATS_PATH}` };
}

/** Label sets of `istio_requests_total` lines in a Prometheus text exposition, with their values. */
export function parseRequestsTotal(text: string): { key: string; labels: Record<string, string>; value: number }[] {
  const out: { key: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${METRIC}{`) && !line.startsWith(`${METRIC} `)) continue;
    const close = line.lastIndexOf('}');
    const key = close > 0 ? line.slice(METRIC.length + 1, close) : '';
    const value = Number(line.slice(close > 0 ? close + 1 : METRIC.length).trim().split(/\s+/)[0]);
    if (!Number.isFinite(value)) continue;
    const labels: Record<string, string> = {};
    for (const m of key.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[m[1]!] = m[2]!.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    out.push({ key, labels, value });
  }
  return out;
}

export interface EdgeEnd {
  cluster: string;
  namespace: string;
  workload: string;
}

export interface Edge {
  source: EdgeEnd;
  destination: EdgeEnd & { service: string };
  /** Whose counters these are: the source sidecar's when this control plane has it, else the destination's. */
  reporter: 'source' | 'destination';
  protocol: string;
  /** Since the reporting proxies started. */
  requests: number;
  errors: number;
  /** Requests per second over the window; absent until two samples exist. */
  rps?: number;
  /** Errors / requests over the window (absent without traffic in it). */
  errorRatio?: number;
  /** Node ids of the proxies whose counters make the edge. */
  proxies: string[];
}

export interface Series {
  labels: Record<string, string>;
  value: number;
}

export interface Sample {
  at: number;
  series: Map<string, Series>;
}

/** 5xx, no response (0), or a gRPC status other than OK: Kiali's notion of an error. */
export function isError(labels: Record<string, string>): boolean {
  const code = Number(labels['response_code'] ?? '0');
  const grpc = labels['grpc_response_status'] ?? '';
  return code >= 500 || code === 0 || (grpc !== '' && grpc !== '0');
}

const end = (l: Record<string, string>, side: 'source' | 'destination'): EdgeEnd => ({
  cluster: l[`${side}_cluster`] ?? 'unknown',
  namespace: l[`${side}_workload_namespace`] ?? 'unknown',
  workload: l[`${side}_workload`] ?? 'unknown',
});

interface Acc {
  edge: Edge;
  windowRequests: number;
  windowErrors: number;
  hasWindow: boolean;
}

/**
 * Pure: edges from each proxy's samples (oldest first). The rate of a proxy's series is its
 * increase from the proxy's oldest sample to its newest (a counter reset counts from zero).
 */
export function edgesFrom(history: ReadonlyMap<string, readonly Sample[]>): Edge[] {
  const byReporter = { source: new Map<string, Acc>(), destination: new Map<string, Acc>() };
  for (const [proxy, samples] of history) {
    const newest = samples[samples.length - 1];
    if (!newest) continue;
    const base = samples.length > 1 ? samples[0] : undefined;
    const dt = base ? (newest.at - base.at) / 1000 : 0;
    for (const [key, s] of newest.series) {
      const l = s.labels;
      const reporter = l['reporter'] === 'destination' ? 'destination' : 'source';
      const source = end(l, 'source');
      const destination = { ...end(l, 'destination'), service: l['destination_service'] ?? 'unknown' };
      const protocol = l['request_protocol'] ?? 'http';
      const k = [source.cluster, source.namespace, source.workload, destination.cluster, destination.namespace, destination.workload, destination.service, protocol].join('\u0001');
      const map = byReporter[reporter];
      let a = map.get(k);
      if (!a) {
        a = { edge: { source, destination, reporter, protocol, requests: 0, errors: 0, proxies: [] }, windowRequests: 0, windowErrors: 0, hasWindow: false };
        map.set(k, a);
      }
      const err = isError(l);
      a.edge.requests += s.value;
      if (err) a.edge.errors += s.value;
      if (!a.edge.proxies.includes(proxy)) a.edge.proxies.push(proxy);
      if (base && dt > 0) {
        const before = base.series.get(key)?.value ?? 0;
        const d = s.value >= before ? s.value - before : s.value;
        a.hasWindow = true;
        a.windowRequests += d;
        if (err) a.windowErrors += d;
        a.edge.rps = (a.edge.rps ?? 0) + d / dt;
      }
    }
  }
  const out: Edge[] = [];
  // An edge whose source sidecar we read is counted by it; the destination's count of the same
  // edge would be the same requests again.
  for (const a of byReporter.source.values()) out.push(finish(a));
  for (const [k, a] of byReporter.destination) if (!byReporter.source.has(k)) out.push(finish(a));
  return out.sort((x, y) => (y.rps ?? 0) - (x.rps ?? 0) || y.requests - x.requests || edgeName(x).localeCompare(edgeName(y)));
}

function finish(a: Acc): Edge {
  const e = a.edge;
  if (a.hasWindow && a.windowRequests > 0) e.errorRatio = a.windowErrors / a.windowRequests;
  e.proxies.sort();
  return e;
}

const edgeName = (e: Edge) => `${e.source.cluster}/${e.source.workload}>${e.destination.cluster}/${e.destination.workload}/${e.destination.service}`;

export type FetchText = (url: string, timeoutMs: number, maxBytes: number) => Promise<string>;

/** GET with a timeout and a size cap (a proxy's answer is a claim; it does not get to fill our memory). */
export const fetchText: FetchText = async (url, timeoutMs, maxBytes) => {
  const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  if (!r.body) return '';
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) {
    n += c.byteLength;
    if (n > maxBytes) throw new Error(`answer larger than ${maxBytes} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
};

export interface MeshStatsOptions {
  now?: () => number;
  fetchText?: FetchText;
  /** Rates are over this window. Default 60 s. */
  windowMs?: number;
  /** Scrape at most this often, however often the page polls. Default 2 s. */
  minIntervalMs?: number;
  timeoutMs?: number;
  maxBytes?: number;
  concurrency?: number;
  /** Proxies read per refresh at most (the rest are listed as not read). Default 500. */
  maxProxies?: number;
  /**
   * No new reads start after this long into a refresh (unreachable admin servers must not hold
   * the page up for minutes); the next refresh starts with the proxies skipped. Default 4 s.
   */
  budgetMs?: number;
}

export interface ProxyScrape {
  state: 'ok' | 'error' | 'not read';
  error?: string;
  lastScrape?: number;
  series?: number;
}

export interface MeshTraffic {
  edges: Edge[];
  /** Node id → how reading its stats went. */
  proxies: Record<string, ProxyScrape>;
  scrapedAt?: number;
  windowSeconds: number;
}

export class MeshStats {
  private readonly history = new Map<string, Sample[]>();
  private readonly status = new Map<string, ProxyScrape>();
  private lastRefresh = -Infinity;
  /** Where the next refresh starts in the list of readable proxies (rotates past those a refresh skipped). */
  private cursor = 0;
  private inflight: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly fetch: FetchText;
  private readonly o: Required<Omit<MeshStatsOptions, 'now' | 'fetchText'>>;

  constructor(opts: MeshStatsOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.fetch = opts.fetchText ?? fetchText;
    this.o = {
      windowMs: opts.windowMs ?? 60_000,
      minIntervalMs: opts.minIntervalMs ?? 2_000,
      timeoutMs: opts.timeoutMs ?? 1_500,
      maxBytes: opts.maxBytes ?? 8 * 1024 * 1024,
      concurrency: opts.concurrency ?? 16,
      maxProxies: opts.maxProxies ?? 500,
      budgetMs: opts.budgetMs ?? 4_000,
    };
  }

  /** Reads the targets unless that was done less than `minIntervalMs` ago; callers share one refresh. */
  refresh(targets: readonly ScrapeTarget[]): Promise<void> {
    if (this.inflight) return this.inflight;
    if (this.now() - this.lastRefresh < this.o.minIntervalMs) return Promise.resolve();
    this.inflight = this.scrapeAll(targets).finally(() => {
      this.lastRefresh = this.now();
      this.inflight = undefined;
    });
    return this.inflight;
  }

  traffic(): MeshTraffic {
    return {
      edges: edgesFrom(this.history),
      proxies: Object.fromEntries(this.status),
      ...(Number.isFinite(this.lastRefresh) ? { scrapedAt: this.lastRefresh } : {}),
      windowSeconds: this.o.windowMs / 1000,
    };
  }

  private async scrapeAll(targets: readonly ScrapeTarget[]): Promise<void> {
    const ids = new Set(targets.map((t) => t.id));
    // Disconnected proxies leave the page with their counters.
    for (const id of [...this.history.keys()]) if (!ids.has(id)) this.history.delete(id);
    for (const id of [...this.status.keys()]) if (!ids.has(id)) this.status.delete(id);
    const readable = targets.filter((t) => t.url !== undefined);
    for (const t of targets) if (!t.url) this.status.set(t.id, { state: 'not read', error: t.problem ?? 'no admin address' });
    for (const t of readable.slice(this.o.maxProxies)) {
      this.status.set(t.id, { state: 'not read', error: `more than ${this.o.maxProxies} proxies: only the first ${this.o.maxProxies} are read` });
      this.history.delete(t.id);
    }
    const list = readable.slice(0, this.o.maxProxies);
    const start = list.length ? this.cursor % list.length : 0;
    const queue = [...list.slice(start), ...list.slice(0, start)];
    const began = this.now();
    let read = 0;
    const worker = async () => {
      for (let t = queue.shift(); t; t = queue.shift()) {
        if (this.now() - began >= this.o.budgetMs) {
          if (!this.status.has(t.id)) this.status.set(t.id, { state: 'not read', error: `not reached within ${this.o.budgetMs} ms of reading proxies; next time` });
          continue;
        }
        read++;
        await this.scrapeOne(t.id, t.url!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency, queue.length) }, worker));
    this.cursor = start + read;
  }

  private async scrapeOne(id: string, url: string): Promise<void> {
    const prev = this.status.get(id);
    try {
      const text = await this.fetch(url, this.o.timeoutMs, this.o.maxBytes);
      const at = this.now();
      const series = new Map<string, Series>();
      for (const s of parseRequestsTotal(text)) series.set(s.key, { labels: s.labels, value: s.value });
      const h = this.history.get(id) ?? [];
      h.push({ at, series });
      // Keep the newest sample older than the window as the baseline, so the rate covers it all.
      while (h.length > 2 && h[1]!.at <= at - this.o.windowMs) h.shift();
      this.history.set(id, h);
      this.status.set(id, { state: 'ok', lastScrape: at, series: series.size });
    } catch (e) {
      const error = e instanceof Error ? (e.name === 'TimeoutError' ? `timed out after ${this.o.timeoutMs} ms` : (e as { cause?: { code?: string } }).cause?.code ?? e.message) : String(e);
      this.status.set(id, { state: 'error', error, ...(prev?.lastScrape !== undefined ? { lastScrape: prev.lastScrape } : {}) });
    }
  }
}
