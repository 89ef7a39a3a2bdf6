import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** The repository root (the folder holding package.json), wherever the tests were compiled to. */
export function repoRoot(): string {
  for (let d = process.cwd(); ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'src'))) return d;
    if (dirname(d) === d) break;
  }
  return resolve(here, '..', '..', '..');
}

/** Verbatim copies of the seed texts (test/fixtures/seeds/README.md); tests never read the shared design folder beside the repository. */
export function seedsDir(): string {
  return resolve(repoRoot(), 'test', 'fixtures', 'seeds');
}

/** The compiled CLI entry, next to this compiled helper: <outDir>/src/cli/bin.js. */
export function cliEntry(): string {
  return resolve(here, '..', '..', 'src', 'cli', 'bin.js');
}
