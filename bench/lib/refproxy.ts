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
 *   mux-mtls-client, mux-mtls-server (same certificates): the mTLS splice with every accepted
 *              connection multiplexed over ONE TLS connection between the hops (8-byte frame
 *              header: connection id, length), and each hop's writes to that connection coalesced
 *              per event-loop turn into one write. Not a proxy anyone should run (no flow control,
 *              head-of-line blocking); it measures what coalescing writes across concurrent
 *              requests on the mTLS leg could save in Node (ADR 0130).
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

/** Bytes both ways between two sockets, Nagle off; an error on either ends both. */
function splice(c: net.Socket, u: net.Socket): void {
  c.setNoDelay(true);
  u.setNoDelay(true);
  c.pipe(u).pipe(c);
  const kill = (): void => {
    c.destroy();
    u.destroy();
  };
  c.on('error', kill);
  u.on('error', kill);
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
  const server = net.createServer({ noDelay: true }, (c) => splice(c, net.connect({ host: uh, port: up, noDelay: true })));
  ready(server);
} else if (kind === 'pipe-mtls-client' || kind === 'pipe-mtls-server') {
  if (!certDir) throw new Error(`${kind} needs a certificate directory`);
  const side = kind === 'pipe-mtls-client' ? 'client' : 'server';
  const creds = { ca: readFileSync(join(certDir, 'ca.pem')), cert: readFileSync(join(certDir, `${side}.crt`)), key: readFileSync(join(certDir, `${side}.key`)), minVersion: 'TLSv1.3' as const };
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
} else if (kind === 'mux-mtls-client' || kind === 'mux-mtls-server') {
  if (!certDir) throw new Error(`${kind} needs a certificate directory`);
  const side = kind === 'mux-mtls-client' ? 'client' : 'server';
  const creds = { ca: readFileSync(join(certDir, 'ca.pem')), cert: readFileSync(join(certDir, `${side}.crt`)), key: readFileSync(join(certDir, `${side}.key`)), minVersion: 'TLSv1.3' as const };
  /** Frames for the TLS leg, written once per event-loop turn. */
  const out: Buffer[] = [];
  let scheduled = false;
  let leg: net.Socket | undefined;
  const flush = (): void => {
    scheduled = false;
    if (out.length === 1) leg!.write(out[0]!);
    else leg!.write(Buffer.concat(out));
    out.length = 0;
  };
  const send = (id: number, d: Buffer): void => {
    const h = Buffer.allocUnsafe(8);
    h.writeUInt32BE(id, 0);
    h.writeUInt32BE(d.length, 4);
    out.push(h, d);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  const plain = new Map<number, net.Socket>();
  let pending: Buffer = Buffer.alloc(0);
  const demux = (d: Buffer, open: (id: number) => net.Socket | undefined): void => {
    pending = pending.length ? Buffer.concat([pending, d]) : d;
    while (pending.length >= 8) {
      const len = pending.readUInt32BE(4);
      if (pending.length < 8 + len) break;
      const id = pending.readUInt32BE(0);
      const s = plain.get(id) ?? open(id);
      s?.write(pending.subarray(8, 8 + len));
      pending = pending.subarray(8 + len);
    }
  };
  const attach = (id: number, s: net.Socket): net.Socket => {
    s.setNoDelay(true);
    plain.set(id, s);
    s.on('data', (d: Buffer) => send(id, d));
    s.on('error', () => s.destroy());
    s.on('close', () => plain.delete(id));
    return s;
  };
  if (side === 'client') {
    leg = tls.connect({ ...creds, host: uh, port: up, servername: 'helloworld', rejectUnauthorized: true });
    leg.setNoDelay(true);
    leg.on('data', (d: Buffer) => demux(d, () => undefined));
    let next = 1;
    ready(net.createServer({ noDelay: true }, (c) => void attach(next++, c)));
  } else {
    const server = tls.createServer({ ...creds, requestCert: true, rejectUnauthorized: true }, (t) => {
      leg = t;
      t.setNoDelay(true);
      t.on('data', (d: Buffer) => demux(d, (id) => attach(id, net.connect({ host: uh, port: up, noDelay: true }))));
    });
    ready(server);
  }
} else throw new Error(`unknown reference proxy ${kind}`);
process.on('SIGTERM', () => process.exit(0));
