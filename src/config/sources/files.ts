/**
 * Config files held somewhere other than a directory (the etcd store of control-plane replicas):
 * file name → text, pushed in with setFile as they change. Each file follows the directory
 * source's rules: parsed whole, a file with errors keeps serving its last good resources (and says
 * so), files merge in name order and the first definition of a key wins.
 */
import { parseConfigText } from '../parse.js';
import type { ConfigError } from '../types.js';
import { EMPTY_SNAPSHOT, mergeFiles, nextContribution, notifyAll, type ConfigSource, type FileContribution, type SnapshotListener, type SourceSnapshot } from './source.js';

export class TextFilesSource implements ConfigSource {
  readonly name: string;
  private readonly files = new Map<string, FileContribution & { text: string }>();
  private readonly listeners = new Set<SnapshotListener>();
  private current: SourceSnapshot = EMPTY_SNAPSHOT;
  private scheduled = false;
  private stopped = false;

  constructor(name: string) {
    this.name = name;
  }

  async start(): Promise<void> {
    this.stopped = false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
  }

  snapshot(): SourceSnapshot {
    return this.current;
  }

  subscribe(listener: SnapshotListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Names of the files held, sorted. */
  fileNames(): string[] {
    return [...this.files.keys()].sort();
  }

  /** A file's new text, or undefined when it was removed. Unchanged text changes nothing. */
  setFile(file: string, text: string | undefined): void {
    const prev = this.files.get(file);
    if (text === undefined) {
      if (!this.files.delete(file)) return;
    } else {
      if (prev?.text === text) return;
      let parsed;
      try {
        parsed = parseConfigText(file, text);
      } catch (err) {
        parsed = { resources: [], errors: [{ severity: 'error' as const, file, message: `parser failed: ${(err as Error).message}` }] as ConfigError[] };
      }
      const bad = parsed.errors.some((e) => e.severity === 'error');
      this.files.set(file, { text, ...nextContribution(file, prev?.good, bad ? undefined : parsed.resources, parsed.errors) });
    }
    const merged = mergeFiles(this.fileNames().map((f) => this.files.get(f)!));
    this.current = Object.freeze({ resources: merged.resources, errors: Object.freeze(merged.errors) });
    if (this.scheduled) return;
    this.scheduled = true;
    // One delivery per burst (a `config push` of many files arrives as many watch events).
    queueMicrotask(() => {
      this.scheduled = false;
      if (!this.stopped) notifyAll(this.listeners, [this.current]);
    });
  }
}
