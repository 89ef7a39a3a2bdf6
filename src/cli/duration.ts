import { InvalidArgumentError } from 'commander';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/**
 * `90s`, `30m`, `24h`, `7d`, or a bare number of seconds. Its own module so that `isle proxy`
 * (--cert-ttl, --drain-timeout) does not load the `ca` command's module.
 */
export function parseTtl(value: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(value.trim());
  const seconds = m ? Number(m[1]) * (UNIT_SECONDS[m[2] || 's'] ?? 1) : NaN;
  if (!Number.isSafeInteger(seconds) || seconds <= 0) {
    throw new InvalidArgumentError('expected a duration such as 3600s, 90m, 24h or 7d.');
  }
  return seconds;
}
