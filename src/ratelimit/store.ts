/**
 * Fixed-window counters in Redis, as envoyproxy/ratelimit keeps them: one key per descriptor and
 * window (`<domain>_<k>_<v>…_<window start, unix seconds>`), `INCRBY` + `EXPIRE` in one MULTI so a
 * counter never outlives its window. Connects to one Redis (`redis://…`) or through Sentinel
 * (ioredis follows a failover to the new master).
 *
 * A down Redis must fail the call fast (the proxy then fails open or closed as configured), not
 * queue it: no offline queue, one attempt, a command timeout.
 */
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { IsleError } from '../errors.js';

export interface CounterStore {
  /** Adds `hits` to each key (expiring after `ttlSeconds`) and returns the new values, in order. */
  increment(keys: readonly { key: string; ttlSeconds: number }[], hits: number): Promise<number[]>;
  close(): Promise<void>;
}

export interface RedisTarget {
  /** `redis://[:password@]host:port[/db]`. */
  url?: string;
  /** Sentinel addresses `host:port`. */
  sentinels?: readonly string[];
  /** The master set name the Sentinels watch (`mymaster`). */
  sentinelName?: string;
  /** Redis AUTH password (also used for the Sentinels when they require it). */
  password?: string;
  /** Per-command timeout; default 500 ms. */
  commandTimeoutMs?: number;
}

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new IsleError('ERR_USAGE', `invalid Sentinel address ${JSON.stringify(s)} (use host:port)`);
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

export function redisOptions(t: RedisTarget): RedisOptions {
  const common: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: t.commandTimeoutMs ?? 500,
    // Keep reconnecting in the background; calls meanwhile fail at once.
    retryStrategy: (n) => Math.min(n * 100, 2000),
    lazyConnect: false,
    ...(t.password ? { password: t.password } : {}),
  };
  if (t.sentinels && t.sentinels.length > 0) {
    if (!t.sentinelName) throw new IsleError('ERR_USAGE', '--sentinel needs --sentinel-name (the master set name, e.g. mymaster)');
    return { ...common, sentinels: t.sentinels.map(hostPort), name: t.sentinelName, ...(t.password ? { sentinelPassword: t.password } : {}) };
  }
  if (!t.url) throw new IsleError('ERR_USAGE', 'give --redis redis://host:port or --sentinel host:port,… with --sentinel-name');
  let u: URL;
  try {
    u = new URL(t.url);
  } catch {
    throw new IsleError('ERR_USAGE', 'invalid --redis URL (use redis://host:port)');
  }
  if (u.protocol !== 'redis:') throw new IsleError('ERR_USAGE', `--redis: unsupported scheme ${u.protocol} (use redis://host:port)`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  return {
    ...common,
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 6379,
    db: Number.isInteger(db) ? db : 0,
    ...(u.password && !t.password ? { password: decodeURIComponent(u.password) } : {}),
  };
}

export function readPasswordFile(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new IsleError('ERR_FILE_MISSING', `${file}: ${(e as Error).message}`, { file });
  }
}

export class RedisCounterStore implements CounterStore {
  readonly redis: Redis;

  constructor(target: RedisTarget, onError?: (e: Error) => void) {
    this.redis = new Redis(redisOptions(target));
    // ioredis emits 'error' on every failed reconnect; unhandled it would crash the process.
    this.redis.on('error', (e: Error) => onError?.(e));
  }

  async increment(keys: readonly { key: string; ttlSeconds: number }[], hits: number): Promise<number[]> {
    if (keys.length === 0) return [];
    const m = this.redis.multi();
    for (const k of keys) m.incrby(k.key, hits).expire(k.key, k.ttlSeconds);
    const res = await m.exec();
    if (!res) throw new Error('redis: transaction aborted');
    const out: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      const [err, v] = res[i * 2]!;
      if (err) throw err;
      out.push(Number(v));
    }
    return out;
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

/** In-memory counters with the same key scheme (unit tests of the service without Redis). */
export class MemoryCounterStore implements CounterStore {
  private readonly counts = new Map<string, { n: number; expires: number }>();
  constructor(private readonly now: () => number = Date.now) {}
  async increment(keys: readonly { key: string; ttlSeconds: number }[], hits: number): Promise<number[]> {
    const t = this.now();
    return keys.map((k) => {
      const c = this.counts.get(k.key);
      const n = (c && c.expires > t ? c.n : 0) + hits;
      this.counts.set(k.key, { n, expires: t + k.ttlSeconds * 1000 });
      return n;
    });
  }
  async close(): Promise<void> {}
}
