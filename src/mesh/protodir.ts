import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository's `proto/` directory holding `marker` (a path inside it), found by walking up from
 * this compiled file to the folder with package.json, so it works from dist/, from a private
 * outDir and from an installed package. Undefined when there is none.
 */
export function findProtoDir(marker: string): string | undefined {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let d = start; ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'proto', marker))) return join(d, 'proto');
    if (dirname(d) === d) return undefined;
  }
}
