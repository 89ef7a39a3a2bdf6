/**
 * System tools the data-plane benchmark drives (wrk, hey, nginx, haproxy): found on PATH, or installed from
 * Debian with apt-get when missing and running as root (what it runs is printed). Without root a
 * missing tool is reported and its column skipped.
 */
import { spawnSync } from 'node:child_process';

export function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** command → Debian package. */
const PACKAGES: Record<string, string> = { wrk: 'wrk', hey: 'hey', nginx: 'nginx', haproxy: 'haproxy' };

export function ensureTools(cmds: string[], log: (s: string) => void, install = true): Record<string, boolean> {
  const missing = cmds.filter((c) => !has(c));
  if (missing.length > 0 && install) {
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    const pkgs = missing.map((c) => PACKAGES[c] ?? c);
    if (isRoot && has('apt-get')) {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      const run = (args: string[]) => {
        log(`  $ apt-get ${args.join(' ')}`);
        return spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env, timeout: 300_000 }).status === 0;
      };
      if (!run(['install', '-y', '-qq', ...pkgs])) {
        run(['update', '-qq']);
        run(['install', '-y', '-qq', ...pkgs]);
      }
    } else {
      log(`  missing ${missing.join(', ')} and not root (or no apt-get): install ${pkgs.join(' ')} to fill those columns`);
    }
  }
  return Object.fromEntries(cmds.map((c) => [c, has(c)]));
}

/** The first line a tool prints about its version (nginx -v writes to stderr, wrk -v exits 1). */
export function version(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  return (`${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0] ?? cmd).replace(/ Copyright.*$/, '').trim() || cmd;
}
