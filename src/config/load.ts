/** Files and directories → parsed resources. */
import { readFile, readdir, stat } from 'node:fs/promises';
import { IsleError } from '../errors.js';
import { parseConfigText } from './parse.js';
import type { ParseResult } from './types.js';

const CONFIG_EXT = /\.(ya?ml|json)$/i;

/** Editors' swap, backup and lock files; hidden names also cover Kubernetes' `..data` mount links. */
function skipped(name: string): boolean {
  return name.startsWith('.') || name.startsWith('#') || name.endsWith('~') || /\.(swp|swo|swx|tmp|bak|orig)$/i.test(name);
}

function join(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

async function statOrMissing(path: string) {
  try {
    return await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new IsleError('ERR_FILE_MISSING', `no such file or directory: ${path}`, { file: path, cause: e });
    throw e;
  }
}

/** Whether `file`, as loadConfig names it, was read from under the directory `dir` (as given). */
export function isUnderDir(file: string, dir: string): boolean {
  return file.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/**
 * Config files under `root`, recursively: `.yaml`, `.yml`, `.json`, sorted, without hidden files and
 * directories or editor temp files. Paths start with `root` as given.
 */
export async function listConfigFiles(root: string): Promise<string[]> {
  const st = await statOrMissing(root);
  if (!st.isDirectory()) return CONFIG_EXT.test(root) ? [root] : [];
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    for (const e of entries) {
      if (skipped(e.name)) continue;
      const p = join(dir, e.name);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        const t = await stat(p).catch(() => undefined);
        isDir = t?.isDirectory() ?? false;
        isFile = t?.isFile() ?? false;
      }
      if (isDir) await walk(p);
      else if (isFile && CONFIG_EXT.test(e.name)) found.push(p);
    }
  };
  await walk(root);
  return found.sort();
}

export interface LoadResult extends ParseResult {
  /** Every file read, in order. */
  files: string[];
}

/** Like loadConfigPaths, and says which files it read. */
export async function loadConfig(paths: string[]): Promise<LoadResult> {
  const files: string[] = [];
  for (const p of paths) {
    const st = await statOrMissing(p);
    // A file named explicitly is read whatever its extension: the user asked for it.
    if (st.isDirectory()) files.push(...(await listConfigFiles(p)));
    else files.push(p);
  }
  const result: LoadResult = { files, resources: [], errors: [] };
  for (const f of files) {
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch (e) {
      result.errors.push({ severity: 'error', file: f, message: `cannot read: ${(e as Error).message}` });
      continue;
    }
    const r = parseConfigText(f, text);
    result.resources.push(...r.resources);
    result.errors.push(...r.errors);
    if (r.others) (result.others ??= []).push(...r.others);
  }
  return result;
}

/** Parses files and directories (recursively). A path that does not exist is an IsleError ERR_FILE_MISSING. */
export async function loadConfigPaths(paths: string[]): Promise<ParseResult> {
  const { resources, errors } = await loadConfig(paths);
  return { resources, errors };
}
