/** Envoy retry_on evaluation and jittered exponential back-off. */
import type { RetryPolicyModel } from '../model.js';
import type { Random } from './router.js';

export type AttemptOutcome =
  | { readonly kind: 'response'; readonly status: number; readonly grpcStatus?: number; readonly envoyRateLimited?: boolean }
  /** Could not connect (refused, TLS handshake failure, connect timeout). */
  | { readonly kind: 'connect-failure' }
  /** Upstream reset/closed the stream after connecting, before a complete response. */
  | { readonly kind: 'reset' }
  /** HTTP/2 REFUSED_STREAM. */
  | { readonly kind: 'refused-stream' }
  /** per_try_timeout fired. */
  | { readonly kind: 'per-try-timeout' };

const GRPC: Record<number, string> = { 1: 'cancelled', 4: 'deadline-exceeded', 8: 'resource-exhausted', 13: 'internal', 14: 'unavailable' };

/** Whether this outcome is retriable under the policy (the caller counts attempts). */
export function isRetriable(p: RetryPolicyModel, o: AttemptOutcome): boolean {
  const on = p.retryOn;
  switch (o.kind) {
    case 'connect-failure':
    case 'reset':
    case 'refused-stream':
    case 'per-try-timeout':
      // Envoy retries any reset under 5xx / gateway-error / reset; the narrower ones add their own.
      if (on.has('5xx') || on.has('gateway-error') || on.has('reset')) return true;
      if (o.kind === 'connect-failure') return on.has('connect-failure');
      if (o.kind === 'refused-stream') return on.has('refused-stream');
      return false;
    case 'response': {
      const s = o.status;
      if (on.has('5xx') && s >= 500) return true;
      if (on.has('gateway-error') && (s === 502 || s === 503 || s === 504)) return true;
      if (on.has('retriable-4xx') && s === 409) return true;
      if (on.has('retriable-status-codes') && p.retriableStatusCodes.has(s)) return true;
      if (on.has('envoy-ratelimited') && o.envoyRateLimited) return true;
      const g = o.grpcStatus === undefined ? undefined : GRPC[o.grpcStatus];
      return g !== undefined && on.has(g as never);
    }
  }
}

/** Delay before retry number `retry` (1-based): uniform in [0, min(base·2^(retry-1), max)). */
export function backoffMs(p: RetryPolicyModel, retry: number, random: Random): number {
  const ceiling = Math.min(p.backoffBaseMs * 2 ** Math.max(0, retry - 1), p.backoffMaxMs);
  return Math.floor(random() * ceiling);
}
