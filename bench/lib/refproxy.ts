/**
 * The benchmark's reference proxies, one process each (argv: kind listenHost upstreamHost:port):
 *
 *   node-http  `http.createServer` → `http.request` on a keep-alive Agent → `pipe`, about the
 *              smallest proxy node:http allows (no TLS, no routing, no headers touched);
 *   pipe       a TCP splice: every accepted connection gets its own upstream connection and the
 *              bytes are piped both ways with no HTTP parsing at all (the ceiling of a Node hop).
 *   pipe-mtls-client, pipe-mtls-server (argv adds the certificate directory of bench/lib/haproxy.ts'
 *              `haproxyCerts`): the same splice with mutual TLS 1.3 between the two hops — the
 *              client side accepts plain TCP and connects with its certificate, verifying the
 *              server's (CA and name `helloworld`); the server side requires and verifies a client
 *              certificate and connects plain TCP to the app. No HTTP work at all: the Node floor of
 *              "two sidecars with mTLS".
 *
 * Prints `listening <host:port>`.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';

const [kind, host, upstream, certDir] = process.argv.slice(2) as [string, string, string, string | undefined];
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
} else if (kind === 'pipe-mtls-client' || kind === 'pipe-mtls-server') {
  if (!certDir) throw new Error(`${kind} needs a certificate directory`);
  const side = kind === 'pipe-mtls-client' ? 'client' : 'server';
  const creds = { ca: readFileSync(join(certDir, 'ca.pem')), cert: readFileSync(join(certDir, `${side}.crt`)), key: readFileSync(join(certDir, `${side}.key`)), minVersion: 'TLSv1.3' as const };
  const splice = (c: net.Socket, u: net.Socket): void => {
    c.setNoDelay(true);
    u.setNoDelay(true);
    c.pipe(u).pipe(c);
    const kill = (): void => {
      c.destroy();
      u.destroy();
    };
    c.on('error', kill);
    u.on('error', kill);
  };
  if (side === 'client') {
    // One session for every connection to the peer: resumption, as the sidecars do (ADR 0025).
    let session: Buffer | undefined;
    const server = net.createServer({ noDelay: true }, (c) => {
      const u = tls.connect({ ...creds, host: uh, port: up, servername: 'helloworld', rejectUnauthorized: true, ...(session ? { session } : {}) });
      u.on('session', (s: Buffer) => (session = s));
      splice(c, u);
    });
    ready(server);
  } else {
    const server = tls.createServer({ ...creds, requestCert: true, rejectUnauthorized: true }, (c) => splice(c, net.connect({ host: uh, port: up, noDelay: true })));
    ready(server);
  }
} else throw new Error(`unknown reference proxy ${kind}`);
process.on('SIGTERM', () => process.exit(0));
