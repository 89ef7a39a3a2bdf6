/**
 * The StateStore on etcd (`--store etcd://host:port[,host:port…][/keyspace]`): what control-plane
 * replicas of one cluster share. Every key lives under `/isle/state/`, or `/isle/<keyspace>/state/`
 * when the URL names one (several clusters on one etcd); a record is JSON `{"v", "x"?}` as in the
 * file engine. The first control plane to use a key space records its cluster there
 * (`claimCluster`): a control plane of another cluster pointed at it is refused, since it would
 * serve that cluster's registrations and config as its own.
 *
 * Expiry: a record with `expiresAt` is attached to an etcd lease of its remaining time (rounded up
 * to whole seconds, etcd's unit), so etcd deletes it even when no replica is left to do so; reads
 * also check `x`, so a record is gone at `expiresAt` exactly, not up to a second later.
 *
 * putIfAbsent is one etcd transaction: it compares the key's create revision (absent) or, for a
 * record that expired but whose lease has not fired yet, its mod revision; two replicas racing
 * for the same token id cannot both win.
 */
import { Etcd3, type IOptions, type Lease } from 'etcd3';
import { formatHostPort, parseHostPort } from '../config/hostport.js';
import { IsleError } from '../errors.js';
import type { PutOptions, WatchableStore } from './state.js';

/** The key that names the cluster whose replicas use a key space. */
const CLUSTER_KEY = 'meta/cluster';

interface Entry {
  v: string;
  x?: number;
}

export interface EtcdUrl {
  /** `http://host:port` per member. */
  hosts: string[];
  /** The member list as written (`h1:2379,h2:2379`). */
  members: string;
  /** The key prefix every record lives under. */
  prefix: string;
}

/**
 * `etcd://h1:2379,h2:2379[/keyspace]` → members as `http://h:p` and the key prefix (`/isle/state/`,
 * or `/isle/<keyspace>/state/`); a clear error otherwise.
 */
export function parseEtcdUrl(url: string): EtcdUrl {
  const m = /^etcd:\/\/([^/?#\s]+)(?:\/([^/?#\s]*))?\/?$/.exec(url.trim());
  if (!m) throw new IsleError('ERR_USAGE', `--store: ${JSON.stringify(url)} is not an etcd address (use etcd://host:port[,host:port…][/keyspace])`);
  const keyspace = m[2] ?? '';
  if (keyspace !== '' && !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(keyspace)) {
    throw new IsleError('ERR_USAGE', `--store: key space ${JSON.stringify(keyspace)} in ${url} must be a DNS label (lowercase letters, digits, '-'), e.g. the cluster name`);
  }
  const hosts = m[1]!.split(',').map((member) => {
    const hp = parseHostPort(member);
    if (!hp) throw new IsleError('ERR_USAGE', `--store: invalid etcd member ${JSON.stringify(member)} in ${url} (use host:port)`);
    return `http://${formatHostPort(hp.host, hp.port)}`;
  });
  return { hosts, members: m[1]!, prefix: keyspace === '' ? '/isle/state/' : `/isle/${keyspace}/state/` };
}

export interface EtcdStateStoreOptions {
  /** Wall clock (ms since the epoch). */
  now?: () => number;
  /** Per-call deadline (default 5 s): a lost quorum is an error, never a hang. */
  timeoutMs?: number;
  /** Extra etcd3 client options (tests). */
  client?: Partial<IOptions>;
  /** TTL of this process's lease for `ephemeral` records (default 10 s): how long they outlive a crash. */
  sessionTtlSeconds?: number;
  /** Delay between attempts to write the ephemeral records again after the lease was lost (default 1 s). */
  reannounceRetryMs?: number;
  /** The lease was lost (`lost`) or its records were written again under a new one (`reannounced`). */
  onSession?: (event: 'lost' | 'reannounced', detail: string) => void;
}

export class EtcdStateStore implements WatchableStore {
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly members: string;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly sessionTtl: number;
  private session: Lease | undefined;
  /** This process's ephemeral records (key → value): written again under a new lease when the old one is lost. */
  private readonly ephemeral = new Map<string, string>();
  private reannounceTimer: NodeJS.Timeout | undefined;
  private reannouncing = false;
  private closed = false;

  constructor(
    readonly url: string,
    private readonly o: EtcdStateStoreOptions = {},
  ) {
    const opts = o;
    this.now = opts.now ?? Date.now;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.sessionTtl = opts.sessionTtlSeconds ?? 10;
    const { hosts, members, prefix } = parseEtcdUrl(url);
    this.members = members;
    this.prefix = prefix;
    this.client = new Etcd3({ hosts, dialTimeout: this.timeoutMs, ...opts.client });
  }

  /**
   * Binds the key space to `cluster`: the first control plane records it, replicas of the same
   * cluster find their own name, and a control plane of another cluster is refused before it
   * serves anything (it would take that cluster's registrations and config for its own).
   */
  async claimCluster(cluster: string): Promise<void> {
    if (await this.putIfAbsent(CLUSTER_KEY, cluster)) return;
    const holder = await this.get(CLUSTER_KEY);
    if (holder === undefined || holder === cluster) return;
    throw new IsleError(
      'ERR_USAGE',
      `--store ${this.url}: that key space holds the state of cluster ${holder}, and this control plane is cluster ${cluster}. ` +
        `Replicas of one cluster share a key space; give each cluster its own: --store etcd://${this.members}/${cluster}`,
    );
  }

  /** Opens the store and proves it answers (a start with an unreachable etcd fails in one line). */
  static async open(url: string, opts: EtcdStateStoreOptions = {}): Promise<EtcdStateStore> {
    const s = new EtcdStateStore(url, opts);
    try {
      await s.call(() => s.client.get(`${s.prefix}.probe`).string());
    } catch (e) {
      await s.close();
      throw e;
    }
    return s;
  }

  private deadline(): { deadline: number } {
    return { deadline: Date.now() + this.timeoutMs };
  }

  private async call<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw new IsleError('ERR_STATE', `etcd ${this.url}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private decode(text: string | null | undefined): Entry | undefined {
    if (text === null || text === undefined) return undefined;
    let e: Entry;
    try {
      e = JSON.parse(text) as Entry;
    } catch {
      return undefined;
    }
    if (typeof e?.v !== 'string') return undefined;
    return e.x !== undefined && e.x <= this.now() ? undefined : e;
  }

  private encode(value: string, opts: PutOptions): string {
    return JSON.stringify(opts.expiresAt === undefined ? { v: value } : { v: value, x: opts.expiresAt });
  }

  /** A lease that ends at `expiresAt` (whole seconds, at least 1), or undefined for no expiry. */
  private async leaseFor(opts: PutOptions): Promise<string | undefined> {
    if (opts.ephemeral && opts.expiresAt === undefined) {
      // One lease for all of this process's ephemeral records, kept alive by the client: one
      // keep-alive per TTL/3 whatever the number of records.
      if (!this.session) {
        const lease = this.client.lease(this.sessionTtl, { autoKeepAlive: true });
        // Lost (etcd unreachable longer than the TTL, or revoked): etcd dropped its records. They
        // are this process's connected proxies, so they are written again under a new lease as
        // soon as etcd answers; waiting for the next registration change would leave the other
        // replicas without them.
        lease.on('lost', (err: Error) => {
          if (this.session !== lease) return;
          this.session = undefined;
          // A lease granted during a re-announce that fails is lost too: that attempt retries itself.
          if (this.reannouncing) return;
          this.o.onSession?.('lost', `${err.message}; ${this.ephemeral.size} registration record(s) to write again`);
          this.scheduleReannounce(0);
        });
        this.session = lease;
      }
      return this.session.grant();
    }
    if (opts.expiresAt === undefined) return undefined;
    const ttl = Math.max(1, Math.ceil((opts.expiresAt - this.now()) / 1000));
    const r = await this.client.leaseClient.leaseGrant({ TTL: ttl }, this.deadline());
    return String(r.ID);
  }

  private scheduleReannounce(delayMs: number): void {
    if (this.closed || this.reannounceTimer) return;
    this.reannounceTimer = setTimeout(() => {
      this.reannounceTimer = undefined;
      void this.reannounce();
    }, delayMs);
    this.reannounceTimer.unref();
  }

  private async reannounce(): Promise<void> {
    let written = 0;
    this.reannouncing = true;
    try {
      for (const [key, value] of [...this.ephemeral]) {
        // Deleted or rewritten meanwhile: that write already holds the current state.
        if (this.closed || this.ephemeral.get(key) !== value) continue;
        await this.put(key, value, { ephemeral: true });
        written++;
      }
      if (written > 0) this.o.onSession?.('reannounced', `${written} registration record(s) written again under a new lease`);
    } catch {
      this.scheduleReannounce(this.o.reannounceRetryMs ?? 1_000);
    } finally {
      this.reannouncing = false;
    }
  }

  /** Remembers what a put left in etcd under this process's session lease. */
  private track(key: string, value: string, opts: PutOptions): void {
    if (opts.ephemeral && opts.expiresAt === undefined) this.ephemeral.set(key, value);
    else this.ephemeral.delete(key);
  }

  async get(key: string): Promise<string | undefined> {
    return this.call(async () => this.decode(await this.client.get(this.prefix + key).options(this.deadline()).string())?.v);
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<void> {
    await this.call(async () => {
      const lease = await this.leaseFor(opts);
      const b = this.client.put(this.prefix + key).value(this.encode(value, opts)).options(this.deadline());
      await (lease !== undefined ? b.lease(lease) : b).exec();
    });
    this.track(key, value, opts);
  }

  async putIfAbsent(key: string, value: string, opts: PutOptions = {}): Promise<boolean> {
    return this.call(async () => {
      const k = this.prefix + key;
      const cur = await this.client.get(k).options(this.deadline()).exec();
      const kv = cur.kvs[0];
      if (kv && this.decode(kv.value.toString()) !== undefined) return false;
      const lease = await this.leaseFor(opts);
      const put = this.client.put(k).value(this.encode(value, opts));
      const txn = kv ? this.client.if(k, 'Mod', '==', Number(kv.mod_revision)) : this.client.if(k, 'Create', '==', 0);
      const r = await txn
        .options(this.deadline())
        .then(lease !== undefined ? put.lease(lease) : put)
        .commit();
      if (r.succeeded) this.track(key, value, opts);
      return r.succeeded;
    });
  }

  async delete(key: string): Promise<void> {
    this.ephemeral.delete(key);
    await this.call(() => this.client.delete().key(this.prefix + key).options(this.deadline()).exec());
  }

  async list(prefix: string): Promise<Map<string, string>> {
    return this.call(async () => {
      const all = await this.client.getAll().prefix(this.prefix + prefix).options(this.deadline()).strings();
      const out = new Map<string, string>();
      for (const k of Object.keys(all).sort()) {
        const e = this.decode(all[k]);
        if (e) out.set(k.slice(this.prefix.length), e.v);
      }
      return out;
    });
  }

  /**
   * Calls `listener` with the key (without the store prefix) of every record under `prefix` that
   * another writer (or this one) puts or deletes; what other replicas do reaches us this way.
   */
  async watch(prefix: string, listener: (key: string, value: string | undefined) => void): Promise<() => Promise<void>> {
    const w = await this.call(() => this.client.watch().prefix(this.prefix + prefix).create());
    w.on('put', (kv) => listener(kv.key.toString().slice(this.prefix.length), this.decode(kv.value.toString())?.v));
    w.on('delete', (kv) => listener(kv.key.toString().slice(this.prefix.length), undefined));
    return () => w.cancel();
  }

  async close(): Promise<void> {
    // The session lease is not revoked: a stopping replica's registrations outlive it by the lease
    // TTL, like a crashed one's, so proxies moving to another replica find their workloads there.
    this.closed = true;
    clearTimeout(this.reannounceTimer);
    this.session?.release();
    this.client.close();
  }
}
