/**
 * The benchmark's reference proxies, one process each (argv: kind listenHost upstreamHost:port):
 *
 *   node-http  `http.createServer` → `http.request` on a keep-alive Agent → `pipe`, about the
 *              smallest proxy node:http allows (no TLS, no routing, no headers touched);
 *   pipe       a TCP splice: every accepted connection gets its own upstream connection and the
 *              bytes are piped both ways with no HTTP parsing at all (the ceiling of a Node hop).
 *
 * Prints `listening <host:port>`.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';

const [kind, host, upstream] = process.argv.slice(2) as [string, string, string];
const [uh, up] = [upstream.slice(0, upstream.lastIndexOf(':')), Number(upstream.slice(upstream.lastIndexOf(':') + 1))];

function ready(server: net.Server): void {
  server.listen(0, host, () => {
    const a = server.address() as AddressInfo;
    process.stdout.write(`listening ${a.address}:${a.port}\n`);
  });
}

if (kind === 'node-http') {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const server = http.createServer((req, res) => {
    const p = http.request({ host: uh, port: up, method: req.method, path: req.url, headers: req.headers, agent }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    p.on('error', () => res.destroy());
    req.pipe(p);
  });
  server.keepAliveTimeout = 60_000;
  ready(server);
} else if (kind === 'pipe') {
  const server = net.createServer({ noDelay: true }, (c) => {
    const u = net.connect({ host: uh, port: up, noDelay: true });
    c.pipe(u).pipe(c);
    const kill = (): void => {
      c.destroy();
      u.destroy();
    };
    c.on('error', kill);
    u.on('error', kill);
  });
  ready(server);
} else throw new Error(`unknown reference proxy ${kind}`);
process.on('SIGTERM', () => process.exit(0));
