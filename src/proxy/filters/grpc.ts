/**
 * gRPC in the HTTP filters: the `grpc-timeout` deadline (Envoy's `max_grpc_timeout`, which Istio
 * sets to the route timeout) and what Envoy's local replies become for a gRPC request (HTTP 200,
 * trailers-only, `grpc-status` mapped from the HTTP status, the reply text as `grpc-message`).
 * Pure functions; the timer and the reply itself live on the request's HttpContext.
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

/** DEADLINE_EXCEEDED as a number (local replies) and as the `grpc-status` value. */
export const DEADLINE_EXCEEDED_CODE = 4;
export const DEADLINE_EXCEEDED = String(DEADLINE_EXCEEDED_CODE);
export const DEADLINE_MESSAGE = 'upstream max stream duration reached';
/** Envoy's response flag for a stream that outlived its max duration. */
export const DEADLINE_FLAG = 'UMSDR';

/**
 * Envoy's test for a gRPC request (`Grpc::Common::hasGrpcContentType`): `application/grpc`, alone
 * or with a `+codec` suffix. gRPC-Web (`application/grpc-web…`) is not gRPC here: its clients read
 * the status from a body frame, which a trailers-only reply does not have.
 */
export function isGrpcContentType(ct: string | string[] | undefined): boolean {
  if (typeof ct !== 'string' || !ct.startsWith('application/grpc')) return false;
  const next = ct.charCodeAt(16);
  // End, `+proto`, or parameters (`; charset=…`).
  return Number.isNaN(next) || next === 43 /* + */ || next === 59 /* ; */;
}

/** gRPC's HTTP → gRPC status mapping (grpc/doc/http-grpc-status-mapping.md), as Envoy applies it. */
export function httpToGrpcStatus(status: number): number {
  switch (status) {
    case 400:
      return 13; // INTERNAL
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return 7; // PERMISSION_DENIED
    case 404:
      return 12; // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return 14; // UNAVAILABLE
    default:
      return 2; // UNKNOWN
  }
}

/**
 * A `grpc-message` value: the text without its final newline, UTF-8, every byte outside
 * 0x20–0x7E and `%` percent-encoded (gRPC's HTTP/2 protocol spec).
 */
export function grpcMessage(text: string): string {
  const t = text.endsWith('\n') ? text.slice(0, -1) : text;
  let plain = true;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return t;
  let out = '';
  for (const b of Buffer.from(t, 'utf8')) out += b < 0x20 || b > 0x7e || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  return out;
}
