/**
 * A TCP relay for the demo: a WAN link between networks (each chunk delayed by `delayMs` in each
 * direction, order kept), or a Kubernetes-Service-like front for several replicas (connections
 * spread round robin; a replica that refuses is skipped, so a killed one is routed around).
 * TLS passes through untouched: the relay never sees inside the mTLS streams it carries.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { parseHostPort } from '../config/hostport.js';

export interface RelayOptions {
  listen: string;
  targets: readonly string[];
  /** Added to every chunk in each direction (the WAN's one-way latency). */
  delayMs: number;
}

function delayed(from: Socket, to: Socket, delayMs: number): void {
  from.on('data', (chunk: Buffer) => {
    if (delayMs <= 0) to.write(chunk);
    else setTimeout(() => to.writable && to.write(chunk), delayMs);
  });
  from.on('end', () => (delayMs <= 0 ? to.end() : setTimeout(() => to.end(), delayMs)));
}

export function startRelay(o: RelayOptions): Promise<{ server: Server; address: string }> {
  const targets = o.targets.map((t) => {
    const hp = parseHostPort(t);
    if (!hp) throw new Error(`invalid relay target ${JSON.stringify(t)}`);
    return hp;
  });
  let next = 0;
  const server = createServer((client) => {
    client.pause();
    const start = next++ % targets.length;
    const attempt = (i: number): void => {
      if (i >= targets.length) {
        client.destroy();
        return;
      }
      const t = targets[(start + i) % targets.length]!;
      const upstream = connect({ host: t.host, port: t.port });
      upstream.once('error', () => attempt(i + 1));
      upstream.once('connect', () => {
        upstream.removeAllListeners('error');
        const close = () => {
          client.destroy();
          upstream.destroy();
        };
        upstream.on('error', close);
        client.on('error', close);
        upstream.on('close', () => setTimeout(() => client.destroy(), o.delayMs));
        client.on('close', () => setTimeout(() => upstream.destroy(), o.delayMs));
        delayed(client, upstream, o.delayMs);
        delayed(upstream, client, o.delayMs);
        client.resume();
      });
    };
    attempt(0);
  });
  const l = parseHostPort(o.listen, { allowZero: true });
  if (!l) throw new Error(`invalid relay address ${JSON.stringify(o.listen)}`);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(l.port, l.host, () => {
      const a = server.address() as { address: string; port: number };
      resolve({ server, address: `${a.address}:${a.port}` });
    });
  });
}
