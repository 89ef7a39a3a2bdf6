/**
 * The mesh page's static files (`ui/mesh/` at the package root: plain HTML, CSS and an ES module,
 * no build step), read once when the debug server starts. Served at `/ui` by the debug server.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface StaticFile {
  body: Buffer;
  type: string;
}

/** URL path → file name under ui/mesh, and its content type. */
const FILES: Record<string, [string, string]> = {
  '/ui': ['index.html', 'text/html; charset=utf-8'],
  '/ui/': ['index.html', 'text/html; charset=utf-8'],
  '/ui/mesh.js': ['mesh.js', 'text/javascript; charset=utf-8'],
  '/ui/mesh.css': ['mesh.css', 'text/css; charset=utf-8'],
};

/** `ui/mesh` of the package this module belongs to (src/… when run from source, dist/src/… when built). */
export function uiDir(from = dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let d = from, i = 0; i < 6; i++, d = dirname(d)) {
    const candidate = join(d, 'ui', 'mesh');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
  }
  return undefined;
}

/** The page's files by URL path; an error (naming where it looked) when they are missing. */
export function loadUi(dir = uiDir()): Map<string, StaticFile> | Error {
  if (!dir) return new Error(`the mesh page's files (ui/mesh/index.html) were not found above ${dirname(fileURLToPath(import.meta.url))}`);
  const out = new Map<string, StaticFile>();
  try {
    for (const [path, [file, type]] of Object.entries(FILES)) out.set(path, { body: readFileSync(join(dir, file)), type });
  } catch (e) {
    return new Error(`cannot read the mesh page from ${dir}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return out;
}
