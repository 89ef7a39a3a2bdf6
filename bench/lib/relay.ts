/**
 * A delay-injecting TCP relay: a simulated WAN link between two "regions" on loopback. Every chunk
 * is forwarded `delayMs` after it arrived, in order, in each direction (so a round trip costs
 * 2 × delayMs); half-closes and closes are delayed the same way. It counts the connections and the
 * bytes that cross it. Listens on 127.0.0.1 and dials only the loopback target it was given.
 */
import net from 'node:net';

export interface RelayStats {
  connections: number;
  /** Client → target (e.g. region 2 → region 1). */
  bytesUp: number;
  /** Target → client. */
  bytesDown: number;
}

export class DelayRelay {
  readonly stats: RelayStats = { connections: 0, bytesUp: 0, bytesDown: 0 };
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  address = '';

  constructor(
    private readonly target: { host: string; port: number },
    private readonly delayMs: number,
  ) {
    if (!/^127\./.test(target.host)) throw new Error(`relay: refusing a non-loopback target ${target.host}`);
    this.server = net.createServer((client) => this.accept(client));
  }

  static async start(target: string, delayMs: number): Promise<DelayRelay> {
    const i = target.lastIndexOf(':');
    const r = new DelayRelay({ host: target.slice(0, i), port: Number(target.slice(i + 1)) }, delayMs);
    await new Promise<void>((res) => r.server.listen(0, '127.0.0.1', res));
    r.address = `127.0.0.1:${(r.server.address() as net.AddressInfo).port}`;
    return r;
  }

  private pipe(from: net.Socket, to: net.Socket, count: (n: number) => void): void {
    from.on('data', (d: Buffer) => {
      count(d.length);
      setTimeout(() => {
        if (!to.destroyed) to.write(d);
      }, this.delayMs);
    });
    from.on('end', () => setTimeout(() => to.end(), this.delayMs));
    from.on('close', () => setTimeout(() => to.destroy(), this.delayMs + 1));
    from.on('error', () => {});
  }

  private accept(client: net.Socket): void {
    this.stats.connections++;
    client.setNoDelay(true);
    const upstream = net.connect({ host: this.target.host, port: this.target.port });
    upstream.setNoDelay(true);
    this.sockets.add(client).add(upstream);
    client.on('close', () => this.sockets.delete(client));
    upstream.on('close', () => this.sockets.delete(upstream));
    // The connection itself takes one trip: data from the client waits in the socket until then.
    this.pipe(client, upstream, (n) => (this.stats.bytesUp += n));
    this.pipe(upstream, client, (n) => (this.stats.bytesDown += n));
  }

  snapshot(): RelayStats {
    return { ...this.stats };
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((res) => this.server.close(() => res()));
  }
}

export function diff(a: RelayStats, b: RelayStats): RelayStats {
  return { connections: b.connections - a.connections, bytesUp: b.bytesUp - a.bytesUp, bytesDown: b.bytesDown - a.bytesDown };
}

export function sum(...s: RelayStats[]): RelayStats {
  return s.reduce((x, y) => ({ connections: x.connections + y.connections, bytesUp: x.bytesUp + y.bytesUp, bytesDown: x.bytesDown + y.bytesDown }), { connections: 0, bytesUp: 0, bytesDown: 0 });
}
