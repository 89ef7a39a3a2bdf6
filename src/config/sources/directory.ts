import { createHash } from 'node:crypto';
import { watch, type FSWatcher, type Stats } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { IsleError } from '../../errors.js';
import { listConfigFiles } from '../load.js';
import { parseConfigText } from '../parse.js';
import type { ConfigError, Resource } from '../types.js';
import { EMPTY_SNAPSHOT, mergeFiles, nextContribution, notifyAll, type ConfigSource, type SnapshotListener, type SourceSnapshot } from './source.js';

/** The time functions DirectorySource uses, injectable so that tests can drive the debounce. */
export interface SourceTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: SourceTimers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface DirectorySourceOptions {
  /** Defaults to `dir:<root>`. */
  name?: string;
  /** Quiet time that closes a burst of fs events (ms). */
  debounceMs?: number;
  /** A burst is processed at the latest this long after its first event, so a busy writer cannot delay changes past 1 s. */
  maxDelayMs?: number;
  /** Safety-net rescan (stat every file, re-read changed ones). 0 turns it off. */
  rescanIntervalMs?: number;
  /**
   * How long a file that used to hold resources must stay empty before that emptiness is believed.
   * Editors that save in place truncate first and write second; reading in between must not delete.
   */
  emptyGraceMs?: number;
  /** Set false where inotify does not work (some network filesystems): the rescan then does all the work. */
  watch?: boolean;
  timers?: SourceTimers;
}

interface FileState {
  display: string;
  /** inode, size and mtime: a new inode catches swapped symlinks and rename-over saves in the same tick. */
  stamp: string;
  hash: string;
  /** The resources of the last version of this file that had no errors. */
  good: readonly Resource[];
  errors: readonly ConfigError[];
  emptySince?: number;
}

interface Work {
  /** Re-list the tree, re-sync watchers and re-read every file whose stat stamp moved. */
  full: boolean;
  /** Absolute paths that fs events named; read even if their stat looks unchanged. */
  paths: Set<string>;
}

const READ_CONCURRENCY = 16;

/**
 * A directory tree of config files, watched live. See docs/decisions/0004-config-sources.md.
 *
 * Every directory gets its own non-recursive watcher (recursive fs.watch is unreliable on Linux
 * across Node 20 releases). Events only say *that* something changed: each burst re-lists the tree
 * when anything was created, removed or renamed, and re-reads just the files that events named or
 * that are new; a periodic stat-based rescan catches what the watchers missed.
 */
export class DirectorySource implements ConfigSource {
  readonly name: string;
  /** Settles after the initial load (rejects if the root is not a readable directory). */
  readonly ready: Promise<void>;

  private readonly root: string;
  private readonly absRoot: string;
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly rescanIntervalMs: number;
  private readonly emptyGraceMs: number;
  private readonly timers: SourceTimers;
  private readonly watchEnabled: boolean;

  private readonly state = new Map<string, FileState>();
  private readonly watchers = new Map<string, { watcher: FSWatcher; id: string }>();
  private readonly listeners = new Set<SnapshotListener>();
  private readonly pendingTimers = new Set<unknown>();
  private readonly watchProblems = new Map<string, ConfigError>();
  private current: SourceSnapshot = EMPTY_SNAPSHOT;
  private rootError: ConfigError | undefined;

  private work: Work = { full: false, paths: new Set() };
  private burstTimer: unknown;
  private burstStart: number | undefined;
  private rescanTimer: unknown;
  private running: Promise<void> | undefined;
  private started = false;
  private stopped = false;
  private resolveReady!: () => void;
  private rejectReady!: (err: unknown) => void;

  constructor(root: string, opts: DirectorySourceOptions = {}) {
    this.root = root;
    this.absRoot = resolve(root);
    this.name = opts.name ?? `dir:${root}`;
    // Short: it only has to join the events of one save (inotify delivers a write + rename within
    // a millisecond or two); the push debounce after it (MeshConfig debounce.quiet) is the real quiet
    // period and merges whatever a longer save splits, and two windows in a row add up on every
    // local change (issue 18: local p99 ≤ 100 ms + debounce; 15 ms here was 10 ms of that).
    this.debounceMs = opts.debounceMs ?? 5;
    this.maxDelayMs = Math.max(this.debounceMs, opts.maxDelayMs ?? 250);
    this.rescanIntervalMs = opts.rescanIntervalMs ?? 2000;
    this.emptyGraceMs = opts.emptyGraceMs ?? 150;
    this.timers = opts.timers ?? realTimers;
    this.watchEnabled = opts.watch ?? true;
    this.ready = new Promise<void>((res, rej) => {
      this.resolveReady = res;
      this.rejectReady = rej;
    });
    // Callers that only use start() must not get an unhandled rejection from `ready`.
    this.ready.catch(() => {});
  }

  start(): Promise<void> {
    if (this.started) return this.ready;
    this.started = true;
    void this.initialLoad();
    return this.ready;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const { watcher } of this.watchers.values()) watcher.close();
    this.watchers.clear();
    for (const t of [this.burstTimer, this.rescanTimer, ...this.pendingTimers]) {
      if (t !== undefined) this.timers.clearTimeout(t);
    }
    this.pendingTimers.clear();
    this.burstTimer = this.rescanTimer = undefined;
    // Let an in-flight sync finish so nothing touches the filesystem after stop() resolves.
    await this.running?.catch(() => {});
    // A sync that was running may have added watchers before it saw `stopped`.
    for (const { watcher } of this.watchers.values()) watcher.close();
    this.watchers.clear();
    if (this.started) this.rejectReady(new IsleError('ERR_USAGE', `${this.name}: stopped before the initial load finished`));
  }

  snapshot(): SourceSnapshot {
    return this.current;
  }

  subscribe(listener: SnapshotListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Current errors and warnings of all files (a file with errors is served at its last good version). */
  errors(): readonly ConfigError[] {
    return this.current.errors;
  }

  /** The config files found, as display paths (root as given + relative path), sorted. */
  files(): string[] {
    return [...this.state.values()].map((f) => f.display).sort(compare);
  }

  /** Number of directories currently watched (for diagnostics and tests). */
  watchedDirectories(): number {
    return this.watchers.size;
  }

  private async initialLoad(): Promise<void> {
    try {
      const st = await stat(this.absRoot).catch(() => undefined);
      if (!st?.isDirectory()) {
        throw new IsleError('ERR_FILE_MISSING', `${this.root}: config directory not found`, { file: this.root });
      }
      this.work.full = true;
      await this.kick();
      if (this.stopped) return;
      this.scheduleRescan();
      this.resolveReady();
    } catch (err) {
      this.rejectReady(err);
    }
  }

  private onFsEvent(dir: string, event: string, name: string | Buffer | null): void {
    if (this.stopped) return;
    if (name === null) {
      this.work.full = true;
    } else if (event === 'rename' && name.toString() === basename(dir)) {
      // How inotify reports the watched directory itself deleted or moved. Its inode may be reused
      // at once by a directory recreated under the same path, so the identity check in
      // syncWatchers cannot be relied on: drop the watcher now and let the sync make a new one.
      // (A child named like its directory triggers this too; re-watching it is harmless.)
      this.dropWatcher(dir);
      this.work.full = true;
    } else {
      const abs = join(dir, name.toString());
      this.work.paths.add(abs);
      // Only an in-place modification of a file we already track can skip the listing.
      if (event !== 'change' || !this.state.has(abs)) this.work.full = true;
    }
    this.scheduleBurst();
  }

  private scheduleBurst(): void {
    if (this.stopped) return;
    const now = this.timers.now();
    this.burstStart ??= now;
    const due = Math.min(now + this.debounceMs, this.burstStart + this.maxDelayMs);
    if (this.burstTimer !== undefined) this.timers.clearTimeout(this.burstTimer);
    this.burstTimer = this.timers.setTimeout(() => {
      this.burstTimer = undefined;
      this.burstStart = undefined;
      void this.kick();
    }, Math.max(0, due - now));
  }

  private scheduleRescan(): void {
    if (this.stopped || this.rescanIntervalMs <= 0) return;
    const t = this.timers.setTimeout(() => {
      this.rescanTimer = undefined;
      this.work.full = true;
      void this.kick().finally(() => this.scheduleRescan());
    }, this.rescanIntervalMs);
    // The watchers keep a daemon alive; the safety-net timer alone should not.
    (t as { unref?: () => void }).unref?.();
    this.rescanTimer = t;
  }

  private later(ms: number, fn: () => void): void {
    const t = this.timers.setTimeout(() => {
      this.pendingTimers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    this.pendingTimers.add(t);
  }

  /** Runs pending work, one sync at a time; work that arrives meanwhile is picked up by the same loop. */
  private kick(): Promise<void> {
    if (this.running) return this.running;
    // With nothing to do the loop below would finish synchronously, its `finally` would run before
    // the assignment, and `running` would stay set to a settled promise: every later kick a no-op.
    if (this.stopped || !(this.work.full || this.work.paths.size > 0)) return Promise.resolve();
    this.running = (async () => {
      try {
        while (!this.stopped && (this.work.full || this.work.paths.size > 0)) {
          const w = this.work;
          this.work = { full: false, paths: new Set() };
          try {
            await this.sync(w);
          } catch (err) {
            // A bug here must not stop the watching for good: report it, and let the next change retry.
            this.setRootError(`internal error while syncing: ${(err as Error).message}`);
            this.publish();
          }
        }
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async sync(w: Work): Promise<void> {
    let changed = false;
    let toRead: string[];
    if (w.full) {
      let listed: string[];
      try {
        // Watch first, list second: a file created between the two is then seen by a watcher.
        await this.syncWatchers();
        listed = (await listConfigFiles(this.absRoot)).map((p) => resolve(this.absRoot, p));
        changed = this.setRootError(undefined) || changed;
      } catch (err) {
        // Losing the whole tree (unmounted, permissions) is far more likely a mistake than an intent
        // to delete every resource, so the last state is kept and the problem reported.
        if (this.setRootError(`cannot read config directory: ${(err as Error).message}`)) this.publish();
        return;
      }
      const present = new Set(listed);
      for (const abs of [...this.state.keys()]) {
        if (!present.has(abs)) {
          this.state.delete(abs);
          changed = true;
        }
      }
      // Every listed file is stat'ed, not only those events named: a swapped symlink (Kubernetes
      // ConfigMap mounts replace `..data`) changes files whose own names no event mentions.
      toRead = listed;
    } else {
      toRead = [...w.paths].filter((p) => this.state.has(p));
    }
    for (let i = 0; i < toRead.length; i += READ_CONCURRENCY) {
      const batch = toRead.slice(i, i + READ_CONCURRENCY);
      const results = await Promise.all(batch.map((p) => this.readOne(p, !w.paths.has(p))));
      if (results.some(Boolean)) changed = true;
      if (this.stopped) return;
    }
    if (changed) this.publish();
  }

  /** Re-reads one file; returns whether its state changed. */
  private async readOne(abs: string, trustStat: boolean): Promise<boolean> {
    const prev = this.state.get(abs);
    let text: string;
    let stamp: string;
    try {
      const st = await stat(abs);
      if (!st.isFile()) return this.forget(abs);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (trustStat && prev && prev.emptySince === undefined && stamp === prev.stamp) return false;
      text = await readFile(abs, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Gone between listing and reading: the event for the removal triggers the listing that drops it.
      if (code === 'ENOENT' || code === 'ENOTDIR') return this.forget(abs);
      return this.record(abs, prev, { stamp: '', hash: '' }, undefined, [
        { severity: 'error', file: this.display(abs), message: `cannot read file: ${(err as Error).message}` },
      ]);
    }
    const hash = createHash('sha256').update(text).digest('hex');
    if (prev && prev.hash === hash) {
      prev.stamp = stamp;
      if (prev.emptySince === undefined) return false;
      // Content is back to what we serve: the truncation was a transient of an in-place save.
      delete prev.emptySince;
      return false;
    }
    if (text.trim() === '' && prev && prev.good.length > 0 && this.emptyGraceMs > 0) {
      const now = this.timers.now();
      if (prev.emptySince === undefined) prev.emptySince = now;
      const waited = now - prev.emptySince;
      if (waited < this.emptyGraceMs) {
        this.later(this.emptyGraceMs - waited, () => {
          this.work.paths.add(abs);
          void this.kick();
        });
        return false;
      }
    }
    const display = this.display(abs);
    let parsed;
    try {
      parsed = parseConfigText(display, text);
    } catch (err) {
      // The parser promises not to throw; if it does, the file is still only reported, never fatal.
      parsed = { resources: [], errors: [{ severity: 'error' as const, file: display, message: `parser failed: ${(err as Error).message}` }] };
    }
    const bad = parsed.errors.some((e) => e.severity === 'error');
    return this.record(abs, prev, { stamp, hash }, bad ? undefined : parsed.resources, parsed.errors);
  }

  /** Stores a new version of a file; `resources` undefined means "invalid: keep the last good ones". */
  private record(
    abs: string,
    prev: FileState | undefined,
    meta: { stamp: string; hash: string },
    resources: readonly Resource[] | undefined,
    errors: readonly ConfigError[],
  ): boolean {
    const display = this.display(abs);
    this.state.set(abs, { display, ...meta, ...nextContribution(display, prev?.good, resources, errors) });
    return true;
  }

  private forget(abs: string): boolean {
    return this.state.delete(abs);
  }

  private setRootError(message: string | undefined): boolean {
    const before = this.rootError?.message;
    this.rootError = message === undefined ? undefined : { severity: 'error', file: this.root, message };
    return before !== message;
  }

  /** Rebuilds the snapshot: files in sorted path order, the first definition of a key wins. */
  private publish(): void {
    const files = [...this.state.values()].sort((a, b) => compare(a.display, b.display));
    const errors: ConfigError[] = this.rootError ? [this.rootError] : [];
    errors.push(...this.watchProblems.values());
    const merged = mergeFiles(files, errors);
    this.current = Object.freeze({ resources: merged.resources, errors: Object.freeze(merged.errors) });
    if (!this.stopped) notifyAll(this.listeners, [this.current]);
  }

  private async syncWatchers(): Promise<void> {
    if (!this.watchEnabled) return;
    const dirs = await this.listDirectories();
    for (const [dir, { watcher, id }] of this.watchers) {
      // A different inode under the same path (directory deleted and recreated, or a swapped
      // symlink) needs a new watcher: the old one still watches the vanished directory.
      if (dirs.get(dir) !== id) {
        watcher.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of this.watchProblems.keys()) if (!dirs.has(dir)) this.watchProblems.delete(dir);
    for (const [dir, id] of dirs) {
      if (this.stopped) return;
      if (!this.watchers.has(dir)) this.addWatcher(dir, id);
    }
  }

  private addWatcher(dir: string, id: string): void {
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, { persistent: true }, (event, name) => this.onFsEvent(dir, event, name));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Vanished since it was listed: the listing that follows will not include it either. Anything
      // else (ENOSPC: out of inotify watches) leaves the directory to the rescan, which users must know.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        this.watchProblems.set(dir, {
          severity: 'warning',
          file: this.display(dir),
          message: `cannot watch directory (${code ?? (err as Error).message}); its changes are only seen by the periodic rescan`,
        });
      }
      return;
    }
    this.watchProblems.delete(dir);
    watcher.on('error', () => {
      watcher.close();
      if (this.watchers.get(dir)?.watcher === watcher) this.watchers.delete(dir);
      this.work.full = true;
      this.scheduleBurst();
    });
    this.watchers.set(dir, { watcher, id });
  }

  private dropWatcher(dir: string): void {
    this.watchers.get(dir)?.watcher.close();
    this.watchers.delete(dir);
  }

  /**
   * The root and every non-hidden directory below it (hidden ones hold no config, by the loader's
   * rules), following symlinked directories as the loader does, each real directory once; mapped
   * to the directory's identity (device and inode).
   */
  private async listDirectories(): Promise<Map<string, string>> {
    const rootSt = await stat(this.absRoot);
    const out = new Map<string, string>([[this.absRoot, dirId(rootSt)]]);
    const seen = new Set(out.values());
    const queue = [this.absRoot];
    while (queue.length > 0) {
      const dir = queue.pop()!;
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (dir === this.absRoot) throw err;
        continue;
      }
      for (const e of entries) {
        if (e.name.startsWith('.') || !(e.isDirectory() || e.isSymbolicLink())) continue;
        const sub = join(dir, e.name);
        const st = await stat(sub).catch(() => undefined);
        if (!st?.isDirectory()) continue;
        const id = dirId(st);
        if (seen.has(id)) continue;
        seen.add(id);
        out.set(sub, id);
        queue.push(sub);
      }
    }
    return out;
  }

  private display(abs: string): string {
    return join(this.root, relative(this.absRoot, abs));
  }
}

/** Device, inode and birth time: inode numbers alone are reused as soon as a directory is deleted. */
function dirId(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.birthtimeMs}`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
