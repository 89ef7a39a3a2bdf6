import { randomBytes } from 'node:crypto';
import { link, lstat, mkdir, open, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { IsleError } from '../errors.js';
import type { IssuingCa, RootCa } from './ca.js';
import { errorText } from './pem.js';

export interface OutputFile {
  name: string;
  content: string;
  mode: number;
}

export const CERT_MODE = 0o644;
/** Private keys are readable by their owner only. */
export const KEY_MODE = 0o600;

export const ROOT_FILES = { cert: 'root-cert.pem', key: 'root-key.pem' } as const;
export const CA_FILES = { cert: 'ca-cert.pem', key: 'ca-key.pem', chain: 'cert-chain.pem', root: 'root-cert.pem' } as const;
export const WORKLOAD_FILES = { key: 'key.pem', chain: 'cert-chain.pem', root: 'root-cert.pem' } as const;

export function rootFiles(root: Pick<RootCa, 'certPem' | 'keyPem'>): OutputFile[] {
  return [
    { name: ROOT_FILES.cert, content: root.certPem, mode: CERT_MODE },
    { name: ROOT_FILES.key, content: root.keyPem, mode: KEY_MODE },
  ];
}

export function caFiles(ca: Pick<IssuingCa, 'certPem' | 'keyPem' | 'chainPem' | 'rootBundlePem'>): OutputFile[] {
  return [
    { name: CA_FILES.cert, content: ca.certPem, mode: CERT_MODE },
    { name: CA_FILES.key, content: ca.keyPem, mode: KEY_MODE },
    { name: CA_FILES.chain, content: ca.chainPem, mode: CERT_MODE },
    { name: CA_FILES.root, content: ca.rootBundlePem, mode: CERT_MODE },
  ];
}

export function workloadFiles(w: { keyPem: string; chainPem: string; rootBundlePem: string }): OutputFile[] {
  return [
    { name: WORKLOAD_FILES.key, content: w.keyPem, mode: KEY_MODE },
    { name: WORKLOAD_FILES.chain, content: w.chainPem, mode: CERT_MODE },
    { name: WORKLOAD_FILES.root, content: w.rootBundlePem, mode: CERT_MODE },
  ];
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** mkdir -p that reports the directories it created, outermost first, so they can be undone. */
async function makeDirs(dir: string): Promise<string[]> {
  if (await exists(dir)) {
    const st = await stat(dir);
    if (!st.isDirectory()) throw new IsleError('ERR_USAGE', `${dir}: exists and is not a directory`, { file: dir });
    return [];
  }
  const parent = dirname(dir);
  const created = parent === dir ? [] : await makeDirs(parent);
  await mkdir(dir);
  return [...created, dir];
}

async function writeNew(path: string, content: string, mode: number): Promise<void> {
  const fh = await open(path, 'wx', mode);
  try {
    // The mode given to open() is filtered by the umask; a key must be 0600 whatever it is.
    await fh.chmod(mode);
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes a set of files as one change. Refuses (before touching anything) if a file exists and
 * `force` is not set. Content goes to temporary files in the same directory first, then each is
 * renamed over its target; replaced files are kept as hard links until every rename succeeded,
 * so any failure puts the previous files back and removes what was created. Returns the paths.
 */
export async function writeFilesAtomic(dir: string, files: OutputFile[], opts: { force?: boolean } = {}): Promise<string[]> {
  const targets = files.map((f) => join(dir, f.name));
  if (!opts.force) {
    for (const t of targets) {
      if (await exists(t)) throw new IsleError('ERR_FILE_EXISTS', `${t}: already exists (use --force to replace it)`, { file: t });
    }
  }
  const createdDirs = await makeDirs(dir);
  const tag = `${process.pid}.${randomBytes(4).toString('hex')}`;
  const temps = files.map((f) => join(dir, `.${f.name}.${tag}.tmp`));
  const backups = files.map((f) => join(dir, `.${f.name}.${tag}.bak`));
  const backedUp: boolean[] = files.map(() => false);
  const renamed: boolean[] = files.map(() => false);
  try {
    for (let i = 0; i < files.length; i++) await writeNew(temps[i]!, files[i]!.content, files[i]!.mode);
    for (let i = 0; i < files.length; i++) {
      if (await exists(targets[i]!)) {
        await link(targets[i]!, backups[i]!);
        backedUp[i] = true;
      }
    }
    for (let i = 0; i < files.length; i++) {
      await rename(temps[i]!, targets[i]!);
      renamed[i] = true;
    }
  } catch (e) {
    for (let i = files.length - 1; i >= 0; i--) {
      if (renamed[i]) {
        if (backedUp[i]) await rename(backups[i]!, targets[i]!).catch(() => undefined);
        else await unlink(targets[i]!).catch(() => undefined);
      }
    }
    await Promise.all([...temps, ...backups].map((p) => rm(p, { force: true })));
    for (const d of createdDirs.reverse()) await rmdir(d).catch(() => undefined);
    if (e instanceof IsleError) throw e;
    throw new IsleError('ERR_USAGE', `${dir}: cannot write files (${errorText(e)}); nothing was changed`, { file: dir, cause: e });
  }
  await Promise.all(backups.filter((_, i) => backedUp[i]).map((p) => unlink(p).catch(() => undefined)));
  return targets;
}

/**
 * Fails early, before any key is generated, when `write` would refuse. `writeFilesAtomic`
 * checks again, since files may appear meanwhile.
 */
export async function assertWritable(dir: string, names: string[], opts: { force?: boolean } = {}): Promise<void> {
  if (await exists(dir)) {
    if (!(await stat(dir)).isDirectory()) throw new IsleError('ERR_USAGE', `${dir}: exists and is not a directory`, { file: dir });
  }
  if (opts.force) return;
  for (const n of names) {
    const t = join(dir, n);
    if (await exists(t)) throw new IsleError('ERR_FILE_EXISTS', `${t}: already exists (use --force to replace it)`, { file: t });
  }
}
