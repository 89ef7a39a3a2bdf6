/**
 * Graceful drain: stop accepting, let in-flight work finish (bounded), then close what is left.
 * Listeners count their in-flight requests/connections in an InflightTracker so drain knows when
 * it may stop waiting; idle keep-alive connections are closed at once because nothing is lost.
 */
import type { Server as NetServer, Socket } from 'node:net';

export class InflightTracker {
  private n = 0;
  private waiters: Array<() => void> = [];

  /** Returns the function to call exactly once when the work ends (extra calls are ignored). */
  begin(): () => void {
    this.n++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.n--;
      if (this.n === 0) for (const w of this.waiters.splice(0)) w();
    };
  }

  get count(): number {
    return this.n;
  }

  /** Resolves true when nothing is in flight, false if `timeoutMs` passes first. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.n === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      this.waiters.push(done);
    });
  }
}

/** The sockets a server accepted, so drain can destroy what outlives the grace period. */
export class SocketSet {
  readonly sockets = new Set<Socket>();
  add(s: Socket): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
  }
  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
  }
}

/** An HTTP engine connections were handed to (node:http's Server or the proxy's HTTP/1.1 codec). */
export interface HttpEngine {
  /** From now on, responses close their connections. */
  close(): void;
  closeIdleConnections(): void;
  closeAllConnections(): void;
}

export interface DrainOptions {
  /** Longest wait for in-flight work; Envoy's --drain-time-s is 600 s, Isle defaults to 5 s. */
  timeoutMs?: number;
}

export interface DrainResult {
  /** True when everything finished by itself; false when some work was cut off. */
  clean: boolean;
  /** In-flight work still running when the deadline passed. */
  cutOff: number;
}

/**
 * Drains one listener. `servers` stop accepting at once; `http` servers (the HTTP engines that
 * connections are handed to) have their idle keep-alive connections closed; after the in-flight
 * work ends, or the deadline, every remaining socket is destroyed.
 */
export async function drain(
  parts: { servers: NetServer[]; http?: HttpEngine[]; sockets?: SocketSet; inflight: InflightTracker },
  opts: DrainOptions = {},
): Promise<DrainResult> {
  const closed = parts.servers.map(
    (s) =>
      new Promise<void>((resolve) => {
        if (!s.listening) return resolve();
        s.close(() => resolve());
      }),
  );
  for (const h of parts.http ?? []) {
    // A handed-over connection never counts as the HTTP server's listening socket, so close()
    // is only to make Node answer `Connection: close` on what is still in flight.
    h.close();
    h.closeIdleConnections();
  }
  const clean = await parts.inflight.idle(opts.timeoutMs ?? 5000);
  const cutOff = parts.inflight.count;
  for (const h of parts.http ?? []) h.closeAllConnections();
  parts.sockets?.destroyAll();
  await Promise.all(closed);
  return { clean, cutOff };
}
