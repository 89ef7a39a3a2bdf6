/**
 * Auto-registrations in the control plane's state store, so a restart does not forget the
 * workloads whose proxies are about to reconnect (issue 13: a restarted control plane used to push
 * every client an empty endpoint list for services whose sidecars had not re-registered yet).
 *
 * One record per workload, `registrations/<cluster>/<namespace>/<name>`:
 *   {"spec": WorkloadSpec, "disconnectedAt"?: ms}
 * A connected workload's record has no expiry. A disconnected one carries when its grace period
 * ends (`expiresAt`), so a store that outlives us (a restart, another replica) drops it on time.
 * On start, every record is restored into the AutoRegistry in its grace period: the rest of its
 * grace if it was already disconnected, a whole one if its proxy was connected when we died.
 *
 * Writes are coalesced per key and issued one batch at a time: a burst of connects costs one
 * write per workload at most, and the last state of a key always wins.
 */
import type { StateStore, WatchableStore } from '../mesh/state.js';
import type { AutoRegistry, RegistrationChange } from './autoregister.js';
import type { WorkloadSpec } from './shard.js';

export const REGISTRATIONS_PREFIX = 'registrations/';

export function registrationsPrefix(cluster: string): string {
  return `${REGISTRATIONS_PREFIX}${cluster}/`;
}

interface Record_ {
  spec: WorkloadSpec;
  /** Wall-clock ms when its last connection closed; absent while connected. */
  disconnectedAt?: number;
}

export interface PersistOptions {
  store: StateStore;
  cluster: string;
  auto: AutoRegistry;
  /** Current grace period (MeshConfig registrationGracePeriod). */
  graceMs: () => number;
  /** Wall clock (ms since the epoch): expiries in the store are absolute. */
  now?: () => number;
  onError?: (err: unknown, key: string) => void;
  /** Records that cannot be read back (logged, skipped). */
  onBadRecord?: (key: string, why: string) => void;
}

function parseRecord(text: string): Record_ | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return `not JSON: ${(e as Error).message}`;
  }
  const r = v as Partial<Record_> | null;
  if (!r || typeof r !== 'object' || !r.spec || typeof r.spec !== 'object') return 'expected {"spec": {...}}';
  const s = r.spec;
  if (typeof s.name !== 'string' || typeof s.namespace !== 'string' || typeof s.address !== 'string') return 'spec needs name, namespace and address';
  if (r.disconnectedAt !== undefined && typeof r.disconnectedAt !== 'number') return 'disconnectedAt must be a number';
  return r as Record_;
}

/** Reads the cluster's registrations into `auto`, each in its grace period. Returns how many. */
export async function restoreRegistrations(opts: PersistOptions): Promise<number> {
  const now = (opts.now ?? Date.now)();
  const grace = opts.graceMs();
  const records = await opts.store.list(registrationsPrefix(opts.cluster));
  const list: { spec: WorkloadSpec; graceMs: number }[] = [];
  for (const [key, text] of records) {
    const r = parseRecord(text);
    if (typeof r === 'string') {
      opts.onBadRecord?.(key, r);
      continue;
    }
    const graceMs = r.disconnectedAt === undefined ? grace : r.disconnectedAt + grace - now;
    if (graceMs > 0) list.push({ spec: r.spec, graceMs });
  }
  opts.auto.restore(list);
  return list.length;
}

export interface RegistrationPersister {
  /** Resolves when every change seen so far is written. */
  flush(): Promise<void>;
  stop(): void;
}

/** Mirrors every registration change into the store from now on. */
export function persistRegistrations(opts: PersistOptions): RegistrationPersister {
  const now = opts.now ?? Date.now;
  const prefix = registrationsPrefix(opts.cluster);
  const pending = new Map<string, { change: RegistrationChange; at: number }>();
  let running: Promise<void> | undefined;
  let stopped = false;

  const writeOne = async (key: string, change: RegistrationChange, at: number): Promise<void> => {
    const storeKey = `${prefix}${key}`;
    if (!change.spec) return opts.store.delete(storeKey);
    if (change.connected) return opts.store.put(storeKey, JSON.stringify({ spec: change.spec }), { ephemeral: true });
    const record: Record_ = { spec: change.spec, disconnectedAt: at };
    return opts.store.put(storeKey, JSON.stringify(record), { expiresAt: at + Math.max(0, opts.graceMs()) });
  };

  const pump = async (): Promise<void> => {
    while (pending.size > 0 && !stopped) {
      const batch = [...pending];
      pending.clear();
      await Promise.all(
        batch.map(([key, { change, at }]) =>
          writeOne(key, change, at).catch((e: unknown) => opts.onError?.(e, key)),
        ),
      );
    }
    running = undefined;
  };

  const off = opts.auto.subscribeChanges((change) => {
    if (stopped || change.fromStore) return;
    pending.set(change.key, { change, at: now() });
    running ??= Promise.resolve().then(pump);
  });

  return {
    flush: async () => {
      while (running) await running;
    },
    stop: () => {
      stopped = true;
      off();
    },
  };
}

/**
 * Replicas sharing a store: every other replica's registration record reaches `auto`
 * (AutoRegistry.applyRemote), so a proxy that moves here after its replica died finds the
 * workloads of the proxies that have not moved yet. Returns the cancel function.
 */
export async function followRegistrations(opts: PersistOptions & { store: WatchableStore }): Promise<() => Promise<void>> {
  const now = opts.now ?? Date.now;
  const prefix = registrationsPrefix(opts.cluster);
  const apply = (storeKey: string, text: string | undefined) => {
    const key = storeKey.slice(prefix.length);
    if (text === undefined) {
      opts.auto.applyRemote(key, undefined, false, opts.graceMs());
      return;
    }
    const r = parseRecord(text);
    if (typeof r === 'string') {
      opts.onBadRecord?.(storeKey, r);
      return;
    }
    const connected = r.disconnectedAt === undefined;
    opts.auto.applyRemote(key, r.spec, connected, connected ? 0 : r.disconnectedAt! + opts.graceMs() - now());
  };
  const cancel = await opts.store.watch(prefix, apply);
  // Records that are there already: one held by a live replica (connected) must not wait out the
  // grace period restoreRegistrations gave it. One whose replica died goes with that replica's
  // lease, which the watch sees as a delete.
  for (const [storeKey, text] of await opts.store.list(prefix)) apply(storeKey, text);
  return cancel;
}
