/**
 * The IETF draft 03 rate limit headers Envoy adds with `enable_x_ratelimit_headers: DRAFT_VERSION_03`,
 * from the status closest to its limit: `x-ratelimit-limit: 10, 10;w=1` (the limit, then the quota
 * policy with its window in seconds), `x-ratelimit-remaining: 0`, `x-ratelimit-reset: 1` (seconds
 * until the window resets).
 */
import type { Headers } from '../http1/head.js';
import type { RlsDescriptorStatus, RlsUnit } from '../../xds/rls.js';

const UNIT_SECONDS: Partial<Record<RlsUnit, number>> = { SECOND: 1, MINUTE: 60, HOUR: 3600, DAY: 86_400, MONTH: 2_592_000, YEAR: 31_536_000 };

export function draft03Headers(statuses: readonly RlsDescriptorStatus[] | undefined): Headers | undefined {
  let best: RlsDescriptorStatus | undefined;
  for (const s of statuses ?? []) {
    if (!s.current_limit) continue;
    if (!best || (s.limit_remaining ?? 0) < (best.limit_remaining ?? 0)) best = s;
  }
  if (!best?.current_limit) return undefined;
  const l = best.current_limit;
  const w = UNIT_SECONDS[l.unit];
  const name = l.name ? `;name="${l.name.replace(/["\\\r\n]/g, '')}"` : '';
  const reset = best.duration_until_reset;
  return {
    'x-ratelimit-limit': `${l.requests_per_unit}${w ? `, ${l.requests_per_unit};w=${w}${name}` : ''}`,
    'x-ratelimit-remaining': String(best.limit_remaining ?? 0),
    ...(reset ? { 'x-ratelimit-reset': String(Math.ceil(Number(reset.seconds ?? 0) + Number(reset.nanos ?? 0) / 1e9)) } : {}),
  };
}

/** The same headers for a local token bucket (window = the fill interval). */
export function localDraft03Headers(maxTokens: number, fillIntervalMs: number, remaining: number, msUntilFill: number): Headers {
  const w = Math.max(1, Math.round(fillIntervalMs / 1000));
  return {
    'x-ratelimit-limit': `${maxTokens}, ${maxTokens};w=${w}`,
    'x-ratelimit-remaining': String(Math.max(0, Math.floor(remaining))),
    'x-ratelimit-reset': String(Math.ceil(msUntilFill / 1000)),
  };
}
