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

export interface PutOptions {
  /** Absolute expiry (ms since the epoch, `Date.now()` clock); the record vanishes after it. */
  expiresAt?: number;
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

  protected changed(): void {}

  async get(key: string): Promise<string | undefined> {
    return this.live(key)?.v;
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<void> {
    this.entries.set(key, opts.expiresAt === undefined ? { v: value } : { v: value, x: opts.expiresAt });
    this.changed();
  }

  async putIfAbsent(key: string, value: string, opts: PutOptions = {}): Promise<boolean> {
    if (this.live(key)) return false;
    await this.put(key, value, opts);
    return true;
  }

  async delete(key: string): Promise<void> {
    if (this.entries.delete(key)) this.changed();
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
 * temporary file, then rename) on every change, so a crash leaves either the old or the new table,
 * never half of one. Records are few (token ids, registrations), so whole-file writes are cheap.
 */
export class FileStateStore extends MemoryStateStore {
  readonly file: string;

  constructor(dir: string, now: () => number = Date.now) {
    super(now);
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

  protected override changed(): void {
    const now = this.now();
    const table: Record<string, Entry> = Object.create(null) as Record<string, Entry>;
    for (const [k, e] of this.entries) if (e.x === undefined || e.x > now) table[k] = e;
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(table), { mode: 0o600 });
    renameSync(tmp, this.file);
  }
}
