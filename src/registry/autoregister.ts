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

/** One workload's change, for consumers that work per key (persistence, incremental shards). */
export interface RegistrationChange {
  /** `namespace/name`. */
  key: string;
  /** The workload now; undefined when it was removed. */
  spec?: WorkloadSpec;
  /** Whether a proxy connection holds it (false: it waits out its grace period). */
  connected: boolean;
  /** Came from the state store (restore(), or another replica's record): already saved there. */
  fromStore?: boolean;
}

export type RegistrationChangeListener = (change: RegistrationChange) => void;

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
  private readonly changeListeners = new Set<RegistrationChangeListener>();
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
      this.changed(key);
      return handle;
    }
    const revived = e.handles.size === 0;
    if (e.timer !== undefined) {
      this.timers.clearTimeout(e.timer);
      delete e.timer;
    }
    e.handles.add(handle);
    if (e.fingerprint !== fingerprint) {
      e.spec = spec;
      e.fingerprint = fingerprint;
      this.changed(key);
    } else if (revived) {
      // Same workload, connected again: the view is unchanged, only its connection state moved.
      this.notifyChange(key, e);
    }
    return handle;
  }

  /** The connection is gone. Idempotent. The workload stays for the grace period unless it re-registers. */
  unregister(handle: RegistrationHandle): void {
    const e = this.entries.get(handle.key);
    if (!e || !e.handles.delete(handle) || e.handles.size > 0) return;
    this.startGrace(handle.key, e, this.graceMs());
  }

  /**
   * Workloads kept from before a restart (the control plane's state store). Each waits out
   * `graceMs` (what is left of its grace period) unless a proxy registers it again; one view
   * change for the whole batch. A workload already registered here is left alone.
   */
  restore(list: readonly { spec: WorkloadSpec; graceMs: number }[]): void {
    let any = false;
    for (const { spec, graceMs } of list) {
      const key = `${spec.namespace}/${spec.name}`;
      if (this.entries.has(key) || graceMs <= 0) continue;
      const e: Entry = { spec, fingerprint: JSON.stringify(spec), handles: new Set() };
      this.entries.set(key, e);
      this.startGrace(key, e, graceMs, false);
      any = true;
    }
    if (any) {
      this.cached = undefined;
      notifyAll(this.listeners, [this.workloads()], this.onListenerError);
      if (this.changeListeners.size > 0) {
        for (const { spec } of list) {
          const key = `${spec.namespace}/${spec.name}`;
          const e = this.entries.get(key);
          if (e && e.spec === spec) notifyAll(this.changeListeners, [{ key, spec, connected: false, fromStore: true }], this.onListenerError);
        }
      }
    }
  }

  /**
   * Another replica's record of `key` (a shared state store): `connected` while a proxy holds it
   * there. A workload connected here is ours and stays; if the other replica's record went away
   * meanwhile, ours is announced again (so it is saved again). Otherwise the other replica's view
   * is taken: connected there → kept without a timer; disconnected or deleted there → it waits out
   * `graceMs` here too, unless a proxy registers it again (here or there).
   */
  applyRemote(key: string, spec: WorkloadSpec | undefined, connected: boolean, graceMs: number): void {
    const e = this.entries.get(key);
    if (e && e.handles.size > 0) {
      if (!spec || !connected) this.notifyChange(key, e);
      return;
    }
    if (spec && connected) {
      if (e?.timer !== undefined) {
        this.timers.clearTimeout(e.timer);
        delete e.timer;
      }
      const fingerprint = JSON.stringify(spec);
      if (!e) this.entries.set(key, { spec, fingerprint, handles: new Set() });
      else if (e.fingerprint === fingerprint) return;
      else Object.assign(e, { spec, fingerprint });
      this.changed(key, true);
      return;
    }
    if (!e) {
      if (!spec || graceMs <= 0) return;
      const fresh: Entry = { spec, fingerprint: JSON.stringify(spec), handles: new Set() };
      this.entries.set(key, fresh);
      this.startGrace(key, fresh, graceMs, false);
      this.changed(key, true);
      return;
    }
    if (e.timer === undefined) this.startGrace(key, e, graceMs, false);
  }

  /** The workload registered under `namespace/name`, if any (connected or in its grace period). */
  spec(key: string): WorkloadSpec | undefined {
    return this.entries.get(key)?.spec;
  }

  private startGrace(key: string, e: Entry, graceMs: number, notify = true): void {
    if (graceMs <= 0) {
      this.expire(key, e);
      return;
    }
    e.timer = this.timers.setTimeout(() => this.expire(key, e), graceMs);
    if (notify) this.notifyChange(key, e);
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
    this.changed(handle.key);
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

  /** Per-workload changes: added, changed, removed, connected again, or disconnected (grace started). */
  subscribeChanges(listener: RegistrationChangeListener): () => void {
    this.changeListeners.add(listener);
    return () => void this.changeListeners.delete(listener);
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
    this.changed(key);
  }

  private changed(key: string, fromStore = false): void {
    this.cached = undefined;
    // The sorted list is built only for whole-list listeners: in a connect storm of N sidecars,
    // sorting every registration per registration was O(N² log N) for nobody (local.ts and
    // persist.ts follow per-workload changes).
    if (this.listeners.size > 0) notifyAll(this.listeners, [this.workloads()], this.onListenerError);
    this.notifyChange(key, this.entries.get(key), fromStore);
  }

  private notifyChange(key: string, e: Entry | undefined, fromStore = false): void {
    if (this.changeListeners.size === 0) return;
    const base: RegistrationChange = e ? { key, spec: e.spec, connected: e.handles.size > 0 } : { key, connected: false };
    const change: RegistrationChange = fromStore ? { ...base, fromStore } : base;
    notifyAll(this.changeListeners, [change], this.onListenerError);
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
