/**
 * The contract between the HTTP filters and an upstream pool (HTTP/1.1 `pool.ts`, HTTP/2
 * `h2pool.ts`): one attempt's request, how it ended, and the response body's sink.
 */
import type { Readable } from 'node:stream';
import type tls from 'node:tls';
import type { Framing, Headers } from '../http1/head.js';
import type { ClusterModel, EndpointModel } from '../model.js';
import { UpstreamCounters, type ProxyStats } from '../stats.js';

/**
 * What both pools are, per cluster and TLS configuration: the HTTP/1.1 one (`pool.ts`, keep-alive
 * connections per endpoint) and the HTTP/2 one (`h2pool.ts`, one multiplexed session per
 * endpoint). `owner` is what the pool reports back to (`UpstreamPools`).
 */
export abstract class ClusterPoolBase<Owner> {
  /** The last TLS session ticket: offered on new connections (resumption). */
  session: Buffer | undefined;
  /** Replaced (new TLS material, limits) or its cluster is gone: takes no new requests. */
  retired = false;
  readonly label: { cluster_name: string };
  /** Resolved once per pool: the per-request counters cost no label lookup (ADR 0128). */
  readonly counters: UpstreamCounters;

  constructor(
    readonly owner: Owner,
    readonly stats: ProxyStats,
    readonly clusterName: string,
    readonly tlsId: string | undefined,
    readonly tlsOptions: tls.ConnectionOptions | undefined,
    readonly maxConnections: number,
    readonly idleTimeoutMs: number,
  ) {
    this.label = { cluster_name: clusterName };
    this.counters = new UpstreamCounters(stats, clusterName);
  }

  get secure(): boolean {
    return this.tlsOptions !== undefined;
  }
}

/** Where a response body goes (the downstream response); false from `data` means "pause". */
export interface ResponseSink {
  data(chunk: Buffer): boolean;
  /** The body is complete; `trailers` when the upstream sent some (HTTP/2). */
  end(trailers?: Headers): void;
  /** The upstream broke mid-body. */
  abort(reason: string): void;
}

/** What `send` resolves with on `response`: the head, and the body to pipe or drop. */
export interface UpstreamResponse {
  readonly status: number;
  readonly statusMessage: string;
  /** As received, lower-case names; hop-by-hop ones included. */
  readonly headers: Headers;
  readonly framing: Framing;
  /** The SPIFFE id of the upstream's certificate (TLS only; null: unreadable). */
  readonly peerId: string | undefined | null;
  readonly secure: boolean;
  pipe(sink: ResponseSink): void;
  /** Reads and drops the body (the connection is reused when it ends). */
  resume(): void;
  /** Resumes a body paused by a `data` that returned false. */
  flow(): void;
  /** Gives up on the body (downstream went away): the connection is closed. */
  destroy(): void;
  [Symbol.asyncIterator](): AsyncIterator<Buffer>;
}

export type AttemptOutcome =
  | { kind: 'response'; status: number; response: UpstreamResponse }
  /** TCP refused / unreachable / connect timeout, or the TLS handshake failed (bad peer identity included). */
  | { kind: 'connect-failure'; detail: string }
  /** Connected, then the connection broke before response headers. */
  | { kind: 'reset'; detail: string }
  /** No response headers within the per-try timeout. */
  | { kind: 'timeout' }
  /** Refused by the cluster's circuit breaker before anything was sent. */
  | { kind: 'overflow' }
  /** The caller's signal fired (downstream went away, route timeout). */
  | { kind: 'aborted' };

/** What the outlier detector hears about an attempt (Envoy: external vs local-origin results). */
export type UpstreamResult =
  | { kind: 'http'; status: number }
  | { kind: 'connect-failure' }
  | { kind: 'reset' }
  | { kind: 'timeout' };

export type ResultSink = (cluster: ClusterModel, endpoint: EndpointModel, result: UpstreamResult) => void;

/** The part of AbortSignal `send` uses; `Cancellation` (no EventTarget) is the cheap one. */
export interface CancelSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** A one-shot cancel flag with one listener slot: what an AbortController costs without EventTarget. */
export class Cancellation implements CancelSignal {
  aborted = false;
  private listener: (() => void) | null = null;
  addEventListener(_type: 'abort', listener: () => void): void {
    this.listener = listener;
  }
  removeEventListener(_type: 'abort', listener: () => void): void {
    if (this.listener === listener) this.listener = null;
  }
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const l = this.listener;
    this.listener = null;
    l?.();
  }
}

export interface UpstreamRequest {
  method: string;
  /** Origin-form path with query. */
  path: string;
  /** Lower-case names; `host` included. Hop-by-hop headers must already be removed. */
  headers: Headers;
  /** A Buffer can be sent again (retries); a stream only once. */
  body: Buffer | Readable | null;
  /** 0 = none. Counts until response headers. */
  perTryTimeoutMs?: number;
  signal?: CancelSignal;
}

/** Whether a connection error is the TLS handshake's (reported as `TLS error: …`, as Envoy does). */
export function isTlsError(err: NodeJS.ErrnoException): boolean {
  const code = err.code ?? '';
  return code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code === 'ISLE_ERR_SAN_MISMATCH' || /SSL|TLS|certificate/i.test(err.message);
}

/** What a connection error that came before the connection was up is reported as. */
export function connectErrorDetail(err: NodeJS.ErrnoException): string {
  return isTlsError(err) ? `TLS error: ${err.message}` : `${err.code ?? 'error'}: ${err.message}`;
}

/** A response body as an async iterator (tests, mirrors): pipes it into a queue. */
export async function* bodyChunks(res: Pick<UpstreamResponse, 'pipe'>): AsyncGenerator<Buffer> {
  const chunks: Buffer[] = [];
  let wake: (() => void) | null = null;
  let done = false;
  let error: string | undefined;
  res.pipe({
    data: (c) => (chunks.push(c), wake?.(), true),
    end: () => ((done = true), wake?.()),
    abort: (r) => ((error = r), (done = true), wake?.()),
  });
  for (;;) {
    while (chunks.length) yield chunks.shift()!;
    if (error !== undefined) throw new Error(error);
    if (done) return;
    await new Promise<void>((r) => (wake = r));
    wake = null;
  }
}

/** Drops a response body. */
export const DROP: ResponseSink = { data: () => true, end: () => undefined, abort: () => undefined };

/**
 * Every upstream connection reads into this one buffer (node's `onread`): no 64 KiB allocation,
 * ArrayBuffer and Readable `push`/`data` event (with its `nextTick(maybeReadMore)`) per read
 * (ADRs 0128, 0143). The JS thread reads one socket at a time.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/**
 * The `onread` option of an upstream connection. The bytes are copied once into a buffer of their
 * own (from node's 8 KiB pool when small): body slices travel on to the downstream socket, whose
 * write may queue them, and a partial head or frame waits for the next read. `sink` may change
 * once: an isle-mux connection whose peer chose HTTP/1.1 goes on reading for the HTTP/1.1 pool.
 */
export class UpstreamReads {
  readonly buffer = READ_BUFFER;
  constructor(public sink: (d: Buffer) => void) {}
  readonly callback = (n: number, b: Uint8Array): boolean => {
    const d = Buffer.allocUnsafe(n);
    d.set(b.subarray(0, n));
    this.sink(d);
    return true;
  };
}
