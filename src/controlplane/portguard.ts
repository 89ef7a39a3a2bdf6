/**
 * Limits on the control plane's mTLS port (issue #11 §4). The port must accept connections
 * without a client certificate (a proxy's first certificate request carries only a token), which
 * made it possible to hold connections open forever without ever authenticating. The guard:
 *
 * - closes a connection whose TLS handshake has not finished within `handshakeTimeoutMs` (10 s);
 * - closes a connection that, within `authTimeoutMs` (30 s) of being accepted, has neither a
 *   verified client certificate and an open stream, nor sent a certificate request
 *   (`CreateCertificate`) — the only thing a connection without a certificate can do;
 * - caps the connections that are not authenticated yet (`maxUnauthenticated`): over the cap a
 *   new connection is closed at once, and the control plane logs it (at most every 10 s, with a
 *   count).
 *
 * grpc-js exposes no connection hooks, so the guard listens on the HTTP/2 servers it bound (the
 * private `http2Servers` map, read defensively, as observeTlsFailures does): `connection` (TCP),
 * `secureConnection` (TLS done) and `stream`.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import type { Timers } from '../mesh/timers.js';
import { CERT_SERVICE_METHOD_PATH } from '../mesh/caclient.js';

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_AUTH_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_UNAUTHENTICATED = 1024;
const CAP_LOG_INTERVAL_MS = 10_000;

export interface PortGuardOptions {
  handshakeTimeoutMs?: number;
  authTimeoutMs?: number;
  maxUnauthenticated?: number;
  timers: Timers;
  /** Called when the cap refuses connections (rate-limited), and when a deadline closes one. */
  onEvent?: (e: PortGuardEvent) => void;
}

export type PortGuardEvent =
  | { kind: 'cap'; refused: number; max: number }
  | { kind: 'handshake-timeout'; remote: string }
  | { kind: 'auth-timeout'; remote: string };

interface Conn {
  raw: Socket;
  remote: string;
  handshake?: unknown;
  auth?: unknown;
  counted: boolean;
  tls?: TLSSocket;
  streamOpen: boolean;
}

export interface PortGuard {
  /** Connections not authenticated yet (for metrics and tests). */
  readonly unauthenticated: number;
  close(): void;
}

type Emitter = { on(e: string, l: (...a: never[]) => void): void; off(e: string, l: (...a: never[]) => void): void };

export function guardGrpcServer(server: grpc.Server, opts: PortGuardOptions): PortGuard {
  const handshakeMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const authMs = opts.authTimeoutMs ?? DEFAULT_AUTH_TIMEOUT_MS;
  const max = opts.maxUnauthenticated ?? DEFAULT_MAX_UNAUTHENTICATED;
  const t = opts.timers;
  const conns = new Map<Socket, Conn>();
  /** `address:port` → connection: the TLS socket's own view, when its `_parent` is not the TCP socket. */
  const byRemote = new Map<string, Conn>();
  const find = (tls: TLSSocket | undefined): Conn | undefined => {
    if (!tls) return undefined;
    const raw = (tls as unknown as { _parent?: Socket })._parent;
    return (raw && conns.get(raw)) || byRemote.get(`${tls.remoteAddress ?? '?'}:${tls.remotePort ?? ''}`);
  };
  let unauthenticated = 0;
  let refusedSinceLog = 0;
  let lastCapLog = -Infinity;
  const offs: (() => void)[] = [];

  const authenticated = (c: Conn) => {
    if (c.auth !== undefined) t.clearTimeout(c.auth);
    if (c.handshake !== undefined) t.clearTimeout(c.handshake);
    delete c.auth;
    delete c.handshake;
    if (c.counted) {
      c.counted = false;
      unauthenticated--;
    }
  };
  const forget = (c: Conn) => {
    authenticated(c);
    conns.delete(c.raw);
    if (byRemote.get(c.remote) === c) byRemote.delete(c.remote);
  };

  const onConnection = (raw: Socket) => {
    const remote = `${raw.remoteAddress ?? '?'}:${raw.remotePort ?? ''}`;
    if (unauthenticated >= max) {
      refusedSinceLog++;
      const now = t.now();
      if (now - lastCapLog >= CAP_LOG_INTERVAL_MS) {
        opts.onEvent?.({ kind: 'cap', refused: refusedSinceLog, max });
        refusedSinceLog = 0;
        lastCapLog = now;
      }
      raw.destroy();
      return;
    }
    const c: Conn = { raw, remote, counted: true, streamOpen: false };
    unauthenticated++;
    conns.set(raw, c);
    byRemote.set(remote, c);
    c.handshake = t.setTimeout(() => {
      delete c.handshake;
      if (c.tls) return;
      opts.onEvent?.({ kind: 'handshake-timeout', remote });
      raw.destroy();
    }, handshakeMs);
    c.auth = t.setTimeout(() => {
      delete c.auth;
      if (!c.counted) return;
      opts.onEvent?.({ kind: 'auth-timeout', remote });
      (c.tls ?? raw).destroy();
      raw.destroy();
    }, authMs);
    raw.once('close', () => forget(c));
  };

  const onSecure = (tls: TLSSocket) => {
    const c = find(tls);
    if (!c) return;
    c.tls = tls;
    if (c.handshake !== undefined) t.clearTimeout(c.handshake);
    delete c.handshake;
  };

  const onStream = (stream: { session?: { socket?: TLSSocket } }, headers: Record<string, unknown>) => {
    const c = find(stream.session?.socket);
    if (!c || !c.counted) return;
    // A verified client certificate with a stream, or a certificate request (all a token holder can do).
    if ((c.tls?.authorized ?? false) || headers[':path'] === CERT_SERVICE_METHOD_PATH) authenticated(c);
  };

  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (servers instanceof Map) {
    for (const h of servers.keys()) {
      const e = h as Partial<Emitter>;
      if (typeof e.on !== 'function' || typeof e.off !== 'function') continue;
      const em = e as Emitter;
      // Before grpc-js's own 'connection' handling matters: a refused socket never reaches TLS.
      em.on('connection', onConnection);
      em.on('secureConnection', onSecure);
      em.on('stream', onStream);
      offs.push(() => {
        em.off('connection', onConnection);
        em.off('secureConnection', onSecure);
        em.off('stream', onStream);
      });
    }
  }

  return {
    get unauthenticated() {
      return unauthenticated;
    },
    close() {
      for (const off of offs.splice(0)) off();
      for (const c of [...conns.values()]) forget(c);
    },
  };
}
