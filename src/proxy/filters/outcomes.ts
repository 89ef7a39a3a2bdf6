/**
 * One table from how a request ended to what the client gets: the status code, Envoy's response
 * flag (access-log short name) and Envoy's local-reply text. Every local reply of the HTTP filter
 * chain goes through it, so the codes and flags cannot drift apart between filters.
 */
import { DEADLINE_EXCEEDED_CODE } from './grpc.js';

export type Outcome =
  | 'bad-request'
  | 'headers-too-large'
  | 'no-route-config'
  | 'no-route'
  | 'no-cluster'
  | 'no-healthy-upstream'
  | 'connect-failure'
  | 'reset'
  | 'overflow'
  | 'route-timeout'
  | 'per-try-timeout'
  | 'fault-abort'
  | 'rbac-denied'
  | 'local-rate-limited'
  | 'rate-limited'
  | 'rate-limit-error'
  | 'internal-error';

export interface OutcomeRow {
  status: number;
  /** Envoy's response flag ('' = none). */
  flag: string;
  /** The local reply body; `detail` is the part that varies. */
  body: (detail: string) => string;
  /**
   * The grpc-status a gRPC request gets instead of the HTTP status's mapping: Envoy answers a
   * gRPC route or per-try timeout with DEADLINE_EXCEEDED (envoyproxy/envoy#44479), not the
   * UNAVAILABLE that 504 maps to.
   */
  grpc?: number;
}

const RESET_PREFIX = 'upstream connect error or disconnect/reset before headers. ';

export const OUTCOMES: Readonly<Record<Outcome, OutcomeRow>> = {
  'bad-request': { status: 400, flag: 'DPE', body: (d) => `isle: ${d}` },
  'headers-too-large': { status: 431, flag: 'DPE', body: () => 'Request Header Fields Too Large' },
  'no-route-config': { status: 404, flag: 'NR', body: (d) => `isle: route configuration "${d}" not loaded` },
  // detail: the whole sentence (no virtual host / no route), it names the host or route.
  'no-route': { status: 404, flag: 'NR', body: (d) => `isle: ${d}` },
  // status: the route's cluster_not_found_response_code, passed by the router.
  'no-cluster': { status: 503, flag: 'NC', body: (d) => `isle: ${d}` },
  'no-healthy-upstream': { status: 503, flag: 'UH', body: () => 'no healthy upstream' },
  // detail: `reset reason: …` or `retried and the latest reset reason: …`.
  'connect-failure': { status: 503, flag: 'UF', body: (d) => `${RESET_PREFIX}${d}` },
  reset: { status: 503, flag: 'UC', body: (d) => `${RESET_PREFIX}${d}` },
  overflow: { status: 503, flag: 'UO', body: (d) => `${RESET_PREFIX}${d}` },
  'route-timeout': { status: 504, flag: 'UT', body: () => 'upstream request timeout', grpc: DEADLINE_EXCEEDED_CODE },
  'per-try-timeout': { status: 504, flag: 'UT', body: () => 'upstream request timeout', grpc: DEADLINE_EXCEEDED_CODE },
  // status: the fault's http_status, passed by the fault filter.
  'fault-abort': { status: 503, flag: 'FI', body: () => 'fault filter abort' },
  // Envoy's RBAC filter answers 403 with this text; it sets no response flag of its own.
  'rbac-denied': { status: 403, flag: '', body: () => 'RBAC: access denied' },
  // Envoy's local_ratelimit answers 429 `local_rate_limited`; the global filter's 429 has no body.
  // status: the filter's configured status, passed by the rate limit filter.
  'local-rate-limited': { status: 429, flag: 'RL', body: () => 'local_rate_limited' },
  'rate-limited': { status: 429, flag: 'RL', body: () => '' },
  // The rate limit service failed and failure_mode_deny is set (status_on_error, default 500).
  'rate-limit-error': { status: 500, flag: 'RLSE', body: () => '' },
  'internal-error': { status: 500, flag: '', body: () => 'isle: internal proxy error' },
};

/** Envoy's flag for a downstream that went away before the response completed. */
export const DOWNSTREAM_DISCONNECT = 'DC';
/** Envoy's flag added when the retries ran out. */
export const RETRIES_EXHAUSTED = 'URX';
/** Envoy's flag for an injected delay. */
export const DELAY_INJECTED = 'DI';
/** Envoy's flag for an upstream that reset after the response started. */
export const UPSTREAM_RESET = 'UC';

export function localReplyFor(o: Outcome, detail = ''): { status: number; flag: string; body: string; grpc: number | undefined } {
  const row = OUTCOMES[o];
  const text = row.body(detail);
  return { status: row.status, flag: row.flag, body: text === '' || text.endsWith('\n') ? text : `${text}\n`, grpc: row.grpc };
}
