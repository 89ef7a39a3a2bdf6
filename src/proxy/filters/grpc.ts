/**
 * gRPC in the HTTP filters: the `grpc-timeout` deadline (Envoy's `max_grpc_timeout`, which Istio
 * sets to the route timeout) and the trailers-only local reply Envoy sends a gRPC client when it
 * ends a call itself. Pure functions; the timer lives on the request's HttpContext.
 */
import type { Headers } from '../http1/head.js';
import type { ForwardActionModel } from '../model.js';

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** `grpc-timeout` (1–8 digits and a unit, gRPC's HTTP/2 spec) in ms; undefined when absent or malformed. */
export function parseGrpcTimeout(v: string | string[] | undefined): number | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/**
 * The deadline of a gRPC request on this route, in ms: its grpc-timeout capped by the route's
 * maximum (0 = no cap); with no grpc-timeout, the maximum itself (0: none). Undefined when the
 * route does not use grpc-timeout at all (then the route timeout applies as to any request).
 */
export function grpcDeadlineMs(action: ForwardActionModel, headers: Headers): number | undefined {
  const max = action.grpcTimeoutHeaderMaxMs;
  if (max === undefined) return undefined;
  const asked = parseGrpcTimeout(headers['grpc-timeout']);
  if (asked === undefined) return max;
  return max > 0 ? Math.min(asked, max) : asked;
}

/** A deadline as grpc-timeout for the upstream (whole milliseconds, at least 1). */
export function formatGrpcTimeout(ms: number): string {
  return `${Math.max(1, Math.ceil(ms))}m`;
}

export const DEADLINE_EXCEEDED = '4';
export const DEADLINE_MESSAGE = 'upstream max stream duration reached';
/** Envoy's response flag for a stream that outlived its max duration. */
export const DEADLINE_FLAG = 'UMSDR';
