/**
 * Auto-registration: a proxy that connected with a valid token (checked by the xDS server, not
 * here) and sent its metadata becomes a workload of the local shard until it disconnects, plus a
 * grace period. The grace period exists because a disconnect is usually a reconnect (control plane
 * restart, network blip, moving to another replica): dropping the endpoint at once would make every
 * client see it vanish and reappear, two pushes for nothing.
 */
import { isIP } from 'node:net';
import { notifyAll, rethrowAsync } from '../config/sources/source.js';
import { IsleError } from '../errors.js';
import { realTimers, type Timers } from '../mesh/timers.js';
import type { Health, Labels } from './model.js';
import { cmp, type WorkloadSpec } from './shard.js';

export interface ProxyMetadata {
  namespace: string;
  serviceAccount: string;
  address: string;
  /** Default `<serviceAccount>-<address>` (sanitized): stable across reconnects of the same proxy. */
  name?: string;
  labels?: Labels;
  /** `region/zone/subzone`. */
  locality?: string;
  network?: string;
  cluster?: string;
  ports?: Readonly<Record<string, number>>;
  health?: Health;
  weight?: number;
}


/** Returned by `register`; pass it back to `unregister`. One per connection. */
export interface RegistrationHandle {
  /** `namespace/name` of the workload. */
  readonly key: string;
}

export type AutoRegistryListener = (workloads: readonly WorkloadSpec[]) => void;

export interface AutoRegistryOptions {
  /** How long a workload outlives its last connection (a function: read when the connection closes). Default 10 s. */
  graceMs?: number | (() => number);
  timers?: Timers;
  /** Receives what a listener throws. Default: rethrown asynchronously. */
  onListenerError?: (err: unknown) => void;
}

interface Entry {
  spec: WorkloadSpec;
  fingerprint: string;
  handles: Set<RegistrationHandle>;
  timer?: unknown;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export const DEFAULT_GRACE_MS = 10_000;

export class AutoRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<AutoRegistryListener>();
  private readonly graceMs: () => number;
  private readonly timers: Timers;
  private readonly onListenerError: (err: unknown) => void;
  private cached: readonly WorkloadSpec[] | undefined;

  constructor(opts: AutoRegistryOptions = {}) {
    const grace = opts.graceMs ?? DEFAULT_GRACE_MS;
    this.graceMs = typeof grace === 'function' ? grace : () => grace;
    this.timers = opts.timers ?? realTimers;
    this.onListenerError = opts.onListenerError ?? rethrowAsync;
  }

  /**
   * Registers (or re-registers) the workload of one proxy connection. Several live connections of
   * the same workload share it; new metadata replaces the old. Throws IsleError on bad metadata.
   */
  register(meta: ProxyMetadata): RegistrationHandle {
    const spec = toSpec(meta);
    const key = `${spec.namespace}/${spec.name}`;
    const handle: RegistrationHandle = Object.freeze({ key });
    const fingerprint = JSON.stringify(spec);
    const e = this.entries.get(key);
    if (!e) {
      this.entries.set(key, { spec, fingerprint, handles: new Set([handle]) });
      this.changed();
      return handle;
    }
    if (e.timer !== undefined) {
      this.timers.clearTimeout(e.timer);
      delete e.timer;
    }
    e.handles.add(handle);
    if (e.fingerprint !== fingerprint) {
      e.spec = spec;
      e.fingerprint = fingerprint;
      this.changed();
    }
    return handle;
  }

  /** The connection is gone. Idempotent. The workload stays for the grace period unless it re-registers. */
  unregister(handle: RegistrationHandle): void {
    const e = this.entries.get(handle.key);
    if (!e || !e.handles.delete(handle) || e.handles.size > 0) return;
    const graceMs = this.graceMs();
    if (graceMs <= 0) {
      this.expire(handle.key, e);
      return;
    }
    e.timer = this.timers.setTimeout(() => this.expire(handle.key, e), graceMs);
  }

  /**
   * Like unregister, but without the grace period: the registration is no longer allowed (its
   * WorkloadGroup went or stopped matching), which is a revocation, not a reconnect.
   */
  revoke(handle: RegistrationHandle): void {
    const e = this.entries.get(handle.key);
    if (!e || !e.handles.delete(handle) || e.handles.size > 0) return;
    if (e.timer !== undefined) this.timers.clearTimeout(e.timer);
    delete e.timer;
    this.expire(handle.key, e);
  }

  /** Readiness as the proxy reports it (health checks of the app). */
  setHealth(handle: RegistrationHandle, health: Health): void {
    const e = this.entries.get(handle.key);
    if (!e || !e.handles.has(handle) || (e.spec.health ?? 'HEALTHY') === health) return;
    e.spec = { ...e.spec, health };
    e.fingerprint = JSON.stringify(e.spec);
    this.changed();
  }

  /** Current workloads, sorted by namespace/name (including those in their grace period). */
  workloads(): readonly WorkloadSpec[] {
    this.cached ??= Object.freeze([...this.entries].sort(([a], [b]) => cmp(a, b)).map(([, e]) => e.spec));
    return this.cached;
  }

  /** Whether the workload has no live connection and waits out its grace period. */
  inGracePeriod(key: string): boolean {
    return this.entries.get(key)?.timer !== undefined;
  }

  subscribe(listener: AutoRegistryListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Cancels pending grace timers (shutdown). Workloads stay as they are. */
  close(): void {
    for (const e of this.entries.values()) {
      if (e.timer !== undefined) this.timers.clearTimeout(e.timer);
      delete e.timer;
    }
  }

  private expire(key: string, e: Entry): void {
    // A re-register between scheduling and firing replaced or revived the entry.
    if (this.entries.get(key) !== e || e.handles.size > 0) return;
    this.entries.delete(key);
    this.changed();
  }

  private changed(): void {
    this.cached = undefined;
    const list = this.workloads();
    notifyAll(this.listeners, [list], this.onListenerError);
  }
}

function toSpec(meta: ProxyMetadata): WorkloadSpec {
  const bad = (what: string, v: unknown): never => {
    throw new IsleError('ERR_CONFIG_INVALID', `auto-registration: invalid ${what} ${JSON.stringify(v)}`);
  };
  if (typeof meta.namespace !== 'string' || !DNS_LABEL.test(meta.namespace)) bad('namespace', meta.namespace);
  if (typeof meta.serviceAccount !== 'string' || !DNS_LABEL.test(meta.serviceAccount)) bad('service account', meta.serviceAccount);
  if (typeof meta.address !== 'string' || isIP(meta.address) === 0) bad('address', meta.address);
  const name = meta.name ?? `${meta.serviceAccount}-${meta.address}`.toLowerCase().replace(/[^a-z0-9-]+/g, '-');
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) bad('name', name);
  if (meta.locality !== undefined && !/^[^/]+(\/[^/]+){0,2}$/.test(meta.locality)) bad('locality', meta.locality);
  for (const [n, p] of Object.entries(meta.ports ?? {})) if (!Number.isInteger(p) || p < 1 || p > 65535) bad(`port ${n}`, p);
  return {
    name,
    namespace: meta.namespace,
    address: meta.address,
    // Sorted so the same labels in another order do not count as a change.
    labels: Object.fromEntries(Object.entries(meta.labels ?? {}).sort(([a], [b]) => cmp(a, b))),
    serviceAccount: meta.serviceAccount,
    ...(meta.locality ? { locality: meta.locality } : {}),
    ...(meta.network ? { network: meta.network } : {}),
    ...(meta.cluster ? { cluster: meta.cluster } : {}),
    ports: { ...(meta.ports ?? {}) },
    health: meta.health ?? 'HEALTHY',
    ...(meta.weight !== undefined ? { weight: meta.weight } : {}),
  };
}
