/**
 * The control plane's durable state: small keyed records that must survive a restart (single-use
 * token ids, auto-registrations) and, with replicas, be shared between them. One interface, three
 * engines: in memory (tests), a file in the control plane's state directory (the embedded
 * default), and etcd (`--store etcd://…`, replicas). Keys are `/`-separated paths such as
 * `tokens/<jti>` or `registrations/<cluster>/<ns>/<name>`; values are strings (JSON by convention).
 *
 * Expiry is part of the contract because both users need it: a token id is remembered until the
 * token itself expires, and a registration lease ends when its proxy stops renewing it.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { IsleError } from '../errors.js';

/**
 * Config files in a shared store (`isle config push DIR --store …`): `config/<path in DIR>` →
 * the file's text. Control-plane replicas started with the same `--store` serve them.
 */
export const CONFIG_PREFIX = 'config/';

export interface PutOptions {
  /** Absolute expiry (ms since the epoch, `Date.now()` clock); the record vanishes after it. */
  expiresAt?: number;
  /**
   * The record lives while this process does: on a shared store (etcd) it is bound to the
   * process's lease, so it goes a lease TTL after the process dies. Local engines keep it (a
   * restarted process restores it, which is the point of saving it).
   */
  ephemeral?: boolean;
}

export interface StateStore {
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string, opts?: PutOptions): Promise<void>;
  /** Writes only when the key is absent (or expired); false when it was present. Atomic per store. */
  putIfAbsent(key: string, value: string, opts?: PutOptions): Promise<boolean>;
  delete(key: string): Promise<void>;
  /** Every live record whose key starts with `prefix`, sorted by key. */
  list(prefix: string): Promise<Map<string, string>>;
  close(): Promise<void>;
}

/** A store other replicas write to, with change notifications (the etcd engine). */
export interface WatchableStore extends StateStore {
  /** `listener(key, value)` for every put (value) or delete/expiry (undefined) under `prefix`; resolves to the cancel function. */
  watch(prefix: string, listener: (key: string, value: string | undefined) => void): Promise<() => Promise<void>>;
}

export function isWatchable(store: StateStore): store is WatchableStore {
  return typeof (store as Partial<WatchableStore>).watch === 'function';
}

interface Entry {
  v: string;
  /** Expiry, ms since the epoch. */
  x?: number;
}

/** Records in a Map; `persist` (when given) is called with the whole table after every change. */
export class MemoryStateStore implements StateStore {
  protected readonly entries = new Map<string, Entry>();

  constructor(protected readonly now: () => number = Date.now) {}

  private live(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e && e.x !== undefined && e.x <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  /** Called after every change; the returned promise settles when the change is durable. */
  protected changed(): Promise<void> | void {}

  async get(key: string): Promise<string | undefined> {
    return this.live(key)?.v;
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<void> {
    // The table changes synchronously (so putIfAbsent stays atomic); durability may follow.
    this.entries.set(key, opts.expiresAt === undefined ? { v: value } : { v: value, x: opts.expiresAt });
    await this.changed();
  }

  async putIfAbsent(key: string, value: string, opts: PutOptions = {}): Promise<boolean> {
    if (this.live(key)) return false;
    await this.put(key, value, opts);
    return true;
  }

  async delete(key: string): Promise<void> {
    if (this.entries.delete(key)) await this.changed();
  }

  async list(prefix: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const k of [...this.entries.keys()].sort()) {
      if (!k.startsWith(prefix)) continue;
      const e = this.live(k);
      if (e) out.set(k, e.v);
    }
    return out;
  }

  async close(): Promise<void> {}
}

/**
 * The embedded default: one JSON file (`<dir>/state.json`), rewritten atomically (write a
 * temporary file, then rename), so a crash leaves either the old or the new table, never half of
 * one. Writes are coalesced: the first change after a quiet spell is written on the next turn,
 * later ones at most every `minWriteIntervalMs` (default 100 ms), so two thousand proxies
 * registering one by one cost a few dozen whole-file writes, not two thousand (each is O(records)).
 * Each put/delete resolves once the write holding it is done.
 */
export class FileStateStore extends MemoryStateStore {
  readonly file: string;
  private scheduled: Promise<void> | undefined;
  private lastWrite = -Infinity;
  private readonly minWriteIntervalMs: number;

  constructor(dir: string, now: () => number = Date.now, opts: { minWriteIntervalMs?: number } = {}) {
    super(now);
    this.minWriteIntervalMs = opts.minWriteIntervalMs ?? 100;
    this.file = join(dir, 'state.json');
    let text: string | undefined;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new IsleError('ERR_STATE', `${this.file}: cannot read: ${(e as Error).message}`);
    }
    if (text !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (e) {
        throw new IsleError('ERR_STATE', `${this.file}: not valid JSON (${(e as Error).message}); move it aside to start with empty state`);
      }
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new IsleError('ERR_STATE', `${this.file}: expected an object of records`);
      for (const [k, e] of Object.entries(parsed as Record<string, unknown>)) {
        const entry = e as Partial<Entry> | null;
        if (!entry || typeof entry.v !== 'string' || (entry.x !== undefined && typeof entry.x !== 'number')) {
          throw new IsleError('ERR_STATE', `${this.file}: record ${JSON.stringify(k)}: expected {"v": string, "x"?: number}`);
        }
        this.entries.set(k, entry.x === undefined ? { v: entry.v } : { v: entry.v, x: entry.x });
      }
    }
  }

  protected override changed(): Promise<void> {
    this.scheduled ??= new Promise<void>((resolve, reject) => {
      const run = () => {
        this.scheduled = undefined;
        this.lastWrite = performance.now();
        try {
          this.write();
          resolve();
        } catch (e) {
          reject(new IsleError('ERR_STATE', `${this.file}: cannot write: ${(e as Error).message}`));
        }
      };
      const wait = this.lastWrite + this.minWriteIntervalMs - performance.now();
      if (wait <= 0) setImmediate(run);
      else setTimeout(run, wait);
    });
    return this.scheduled;
  }

  /** Waits for a pending write. */
  override async close(): Promise<void> {
    await this.scheduled;
  }

  private write(): void {
    const now = this.now();
    const table: Record<string, Entry> = Object.create(null) as Record<string, Entry>;
    for (const [k, e] of this.entries) if (e.x === undefined || e.x > now) table[k] = e;
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(table), { mode: 0o600 });
    renameSync(tmp, this.file);
  }
}
