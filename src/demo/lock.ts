/**
 * One demo per directory (issue 16 part 4.1). A demo takes `<dir>.lock` (beside its directory, so
 * the lock outlives the fresh start that empties the directory) holding its pid; a second demo
 * on the same directory refuses while that pid lives, and takes over a stale lock. Each demo
 * writes its state (`<dir>/state.json`: scenario, pid, control planes) for `isle status --dir`,
 * and the shared pointer `.isle/demo.json` (what `isle status` reads without flags) only when no
 * other live demo owns it.
 *
 * Restarting a demo empties its directory; files the user added to the config directories are
 * kept: `userFiles` collects them before, `restoreFiles` writes them back into the fresh tree.
 */
import { readdir, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { IsleError } from '../errors.js';

export interface DemoStateFile {
  dir: string;
  scenario: string;
  pid: number;
  startedAt: string;
  controlPlanes: { cluster: string; grpc: string; debug: string }[];
}

/** `.isle/demo` for seed 000, `.isle/demo-<scenario>` for the others: scenarios can run side by side. */
export function defaultDemoDir(scenario: string): string {
  return scenario === 'seed-000' ? '.isle/demo' : `.isle/demo-${scenario}`;
}

export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, owned by someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface LockBody {
  pid: number;
  scenario: string;
  startedAt: string;
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Takes `<dir>.lock`; throws a usage error naming the running demo. Returns the release. */
export async function acquireDemoLock(dir: string, scenario: string, pid = process.pid): Promise<() => Promise<void>> {
  const file = `${dir}.lock`;
  await mkdir(dirname(file), { recursive: true });
  const body: LockBody = { pid, scenario, startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(file, JSON.stringify(body), { flag: 'wx' });
      return async () => {
        const cur = await readJson<LockBody>(file);
        if (cur?.pid === pid) await rm(file, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const cur = await readJson<LockBody>(file);
      if (cur && cur.pid !== pid && isAlive(cur.pid)) {
        throw new IsleError(
          'ERR_USAGE',
          `a demo (scenario ${cur.scenario}, pid ${cur.pid}, started ${cur.startedAt}) is running in ${dir}; its files are left alone. Stop it first (Ctrl-C in its terminal, or kill ${cur.pid}), or pass --dir for another directory`,
        );
      }
      // Stale (its process is gone) or ours: take it over.
      await rm(file, { force: true });
    }
  }
  throw new IsleError('ERR_USAGE', `cannot take the demo lock ${file}`);
}

/** Writes `<dir>/state.json` and, unless another live demo owns it, the shared pointer. */
export async function writeDemoState(state: DemoStateFile, pointer: string): Promise<void> {
  await writeFile(join(state.dir, 'state.json'), JSON.stringify(state, null, 2));
  const cur = await readJson<DemoStateFile>(pointer);
  if (cur && cur.dir !== state.dir && isAlive(cur.pid)) return;
  await mkdir(dirname(pointer), { recursive: true });
  await writeFile(pointer, JSON.stringify(state, null, 2));
}

/** Removes the shared pointer if it is this demo's. */
export async function clearDemoState(dir: string, pointer: string): Promise<void> {
  const cur = await readJson<DemoStateFile>(pointer);
  if (!cur || cur.dir === dir) await rm(pointer, { force: true });
}

/** The state of the demo in `dir`, or the one the pointer names. */
export async function readDemoState(opts: { dir?: string; pointer: string }): Promise<DemoStateFile | undefined> {
  return readJson<DemoStateFile>(opts.dir !== undefined ? join(opts.dir, 'state.json') : opts.pointer);
}

async function walk(root: string, d: string, out: string[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(d, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(d, e.name);
    if (e.isDirectory()) await walk(root, p, out);
    else if (e.isFile()) out.push(relative(root, p));
  }
}

export interface KeptFile {
  /** Relative to the demo directory. */
  path: string;
  data: Buffer;
  mode: number;
}

/** Files under `<dir>/<configDir>/` that the demo does not write itself (`generated`: relative paths). */
export async function userFiles(dir: string, configDirs: readonly string[], generated: ReadonlySet<string>): Promise<KeptFile[]> {
  const out: KeptFile[] = [];
  for (const c of configDirs) {
    const files: string[] = [];
    await walk(dir, join(dir, c), files);
    for (const f of files.sort()) {
      if (generated.has(f)) continue;
      const abs = join(dir, f);
      out.push({ path: f, data: await readFile(abs), mode: (await stat(abs)).mode & 0o777 });
    }
  }
  return out;
}

export async function restoreFiles(dir: string, files: readonly KeptFile[]): Promise<void> {
  for (const f of files) {
    await mkdir(dirname(join(dir, f.path)), { recursive: true });
    await writeFile(join(dir, f.path), f.data, { mode: f.mode });
  }
}
