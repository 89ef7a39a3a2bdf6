/**
 * Access logs (ADR 0051): Envoy's file access logger with its format strings. A format is
 * compiled once when the listener is decoded (an operator Isle cannot fill is a NACK, never a
 * silent `-`), and a request only pays for it when the HCM has an access log.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Headers } from './http1/head.js';

/** What one finished request offers the formatter. */
export interface AccessLogEntry {
  startMs: number;
  method: string;
  path: string;
  authority: string;
  protocol: string;
  requestHeaders: Headers;
  responseHeaders: Headers | undefined;
  responseCode: number;
  responseFlags: string;
  bytesReceived: number;
  bytesSent: number;
  durationMs: number;
  upstreamHost: string | undefined;
  upstreamCluster: string | undefined;
  downstreamLocal: string | undefined;
  downstreamRemote: string | undefined;
  sni: string | undefined;
  routeName: string | undefined;
  /** The gRPC status (trailers, or a trailers-only response), as its number; undefined: not gRPC or none. */
  grpcStatus?: string | undefined;
  /** Response trailers as received (HTTP/2). */
  responseTrailers?: Headers | undefined;
}

const GRPC_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

/** Envoy's %GRPC_STATUS(X)%: CAMEL_STRING (default, `NotFound`), SNAKE_STRING (`NOT_FOUND`) or NUMBER. */
function grpcStatusOp(format: string): Op {
  if (!['CAMEL_STRING', 'SNAKE_STRING', 'NUMBER'].includes(format)) throw new Error(`unsupported access log operator %GRPC_STATUS(${format})%`);
  return (e) => {
    const g = e.grpcStatus;
    if (g === undefined || g === '') return undefined;
    const snake = GRPC_NAMES[Number(g)];
    if (format === 'NUMBER' || snake === undefined) return g;
    if (format === 'SNAKE_STRING' || snake === 'OK') return snake;
    return snake.toLowerCase().replace(/(^|_)([a-z])/g, (_m, _u: string, c: string) => c.toUpperCase());
  };
}

type Op = (e: AccessLogEntry) => string | number | undefined;

const header = (h: Headers | undefined, name: string): string | undefined => {
  const v = h?.[name];
  return v === undefined ? undefined : typeof v === 'string' ? v : v.join(',');
};

function reqHeader(e: AccessLogEntry, name: string): string | undefined {
  if (name === ':method') return e.method;
  if (name === ':path') return e.path;
  if (name === ':authority') return e.authority;
  return header(e.requestHeaders, name);
}

const SIMPLE: Record<string, Op> = {
  START_TIME: (e) => new Date(e.startMs).toISOString(),
  PROTOCOL: (e) => e.protocol,
  RESPONSE_CODE: (e) => e.responseCode,
  RESPONSE_FLAGS: (e) => e.responseFlags,
  // Isle does not track these details yet: Envoy prints `-` when it has none, and so does Isle.
  RESPONSE_CODE_DETAILS: () => undefined,
  CONNECTION_TERMINATION_DETAILS: () => undefined,
  UPSTREAM_TRANSPORT_FAILURE_REASON: () => undefined,
  UPSTREAM_LOCAL_ADDRESS: () => undefined,
  BYTES_RECEIVED: (e) => e.bytesReceived,
  BYTES_SENT: (e) => e.bytesSent,
  DURATION: (e) => Math.round(e.durationMs),
  UPSTREAM_HOST: (e) => e.upstreamHost,
  UPSTREAM_CLUSTER: (e) => e.upstreamCluster,
  DOWNSTREAM_LOCAL_ADDRESS: (e) => e.downstreamLocal,
  DOWNSTREAM_REMOTE_ADDRESS: (e) => e.downstreamRemote,
  REQUESTED_SERVER_NAME: (e) => e.sni,
  ROUTE_NAME: (e) => e.routeName,
};

/** `%OP%` → a function; throws naming the operator when Isle cannot fill it. */
function compileOp(op: string): Op {
  const simple = SIMPLE[op];
  if (simple) return simple;
  const g = /^GRPC_STATUS(?:\(([A-Z_]+)\))?$/.exec(op);
  if (g) return grpcStatusOp(g[1] ?? 'CAMEL_STRING');
  const m = /^(REQ|RESP|TRAILER)\(([^)?]+)(?:\?([^)]+))?\)(?::(\d+))?$/.exec(op);
  if (!m) throw new Error(`unsupported access log operator %${op}%`);
  const main = m[2]!.toLowerCase();
  const alt = m[3]?.toLowerCase();
  const max = m[4] ? Number(m[4]) : undefined;
  const cut = (v: string | undefined) => (v !== undefined && max !== undefined ? v.slice(0, max) : v);
  if (m[1] === 'REQ') return (e) => cut(reqHeader(e, main) ?? (alt ? reqHeader(e, alt) : undefined));
  if (m[1] === 'TRAILER') return (e) => cut(header(e.responseTrailers, main) ?? (alt ? header(e.responseTrailers, alt) : undefined));
  return (e) => cut(header(e.responseHeaders, main) ?? (alt ? header(e.responseHeaders, alt) : undefined));
}

type Segment = string | Op;

function compileText(format: string): Segment[] {
  const out: Segment[] = [];
  const re = /%([A-Z_]+(?:\([^)]*\))?(?::\d+)?)%/g;
  let last = 0;
  for (let m = re.exec(format); m; m = re.exec(format)) {
    if (m.index > last) out.push(format.slice(last, m.index));
    out.push(compileOp(m[1]!));
    last = m.index + m[0].length;
  }
  if (last < format.length) out.push(format.slice(last));
  return out;
}

/** A compiled format: text (Envoy's `-` for a missing value) or JSON (missing → null). */
export type AccessLogFormatter = (e: AccessLogEntry) => string;

export function compileTextFormat(format: string): AccessLogFormatter {
  const segs = compileText(format);
  return (e) => {
    let s = '';
    for (const x of segs) {
      if (typeof x === 'string') s += x;
      else {
        const v = x(e);
        s += v === undefined || v === '' ? '-' : String(v);
      }
    }
    return s;
  };
}

export function compileJsonFormat(format: Readonly<Record<string, string>>): AccessLogFormatter {
  const fields = Object.entries(format).map(([k, v]) => {
    const segs = compileText(v);
    // A value that is exactly one operator keeps its type (numbers stay numbers), as in Envoy.
    return [k, segs.length === 1 && typeof segs[0] === 'function' ? segs[0] : compileTextFormat(v)] as const;
  });
  return (e) => {
    const o: Record<string, unknown> = {};
    for (const [k, f] of fields) {
      const v = typeof f === 'function' ? f(e) : f;
      o[k] = v === undefined || v === '' ? null : v;
    }
    return `${JSON.stringify(o)}\n`;
  };
}

export interface AccessLogModel {
  readonly path: string;
  readonly encoding: 'TEXT' | 'JSON';
  readonly format: AccessLogFormatter;
}

const streams = new Map<string, WriteStream | NodeJS.WriteStream>();

/** Appends a line to the log's file (`/dev/stdout` and `/dev/stderr` are the process's own). */
export function writeAccessLog(log: AccessLogModel, e: AccessLogEntry): void {
  let s = streams.get(log.path);
  if (!s) {
    s = log.path === '/dev/stdout' ? process.stdout : log.path === '/dev/stderr' ? process.stderr : createWriteStream(log.path, { flags: 'a' });
    s.on('error', () => streams.delete(log.path));
    streams.set(log.path, s);
  }
  s.write(log.format(e));
}
