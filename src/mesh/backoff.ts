/**
 * Reconnect delays: exponential with full-range jitter ("decorrelated" enough for a mesh of
 * proxies restarting together), capped. Injectable so tests run without waiting.
 */
export interface BackoffOptions {
  /** First delay before jitter (default 500 ms). */
  baseMs?: number;
  /**
   * Cap before jitter (default 10 s): after a control-plane restart every proxy is back within
   * 10 s, and the jitter spreads them so the new process is not hit by all of them at once.
   */
  maxMs?: number;
  random?: () => number;
}

/** attempt 1, 2, … → delay in ms: base × 2^(attempt-1), capped, then scaled by a factor in [0.5, 1). */
export type Backoff = (attempt: number) => number;

export const DEFAULT_BACKOFF_CAP_MS = 10_000;

export function exponentialBackoff(opts: BackoffOptions = {}): Backoff {
  const base = opts.baseMs ?? 500;
  const max = opts.maxMs ?? DEFAULT_BACKOFF_CAP_MS;
  const random = opts.random ?? Math.random;
  return (attempt) => {
    const raw = Math.min(max, base * 2 ** Math.max(0, Math.min(30, attempt - 1)));
    return Math.round(raw * (0.5 + random() / 2));
  };
}
