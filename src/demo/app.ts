/**
 * The demo's applications, as Istio's samples: helloworld answers
 * `Hello version: v1, instance: helloworld-v1-<id>` on /hello. Each runs as its own process
 * (`isle demo-app`), listening on 127.0.0.1 on a private port behind its sidecar (DESIGN §5).
 */
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface HelloworldOptions {
  version: string;
  /** Pod-like instance name; default `helloworld-<version>-<random>`. */
  instance?: string;
  host?: string;
  port?: number;
}

export function podName(deployment: string): string {
  // Kubernetes-style: <deployment>-<replicaset hash>-<pod suffix>.
  return `${deployment}-${randomBytes(5).toString('hex').slice(0, 10)}-${randomBytes(3).toString('hex').slice(0, 5)}`;
}

/** Starts helloworld; resolves with the server and its bound address. */
export function startHelloworld(o: HelloworldOptions): Promise<{ server: Server; address: string; instance: string }> {
  const instance = o.instance ?? podName(`helloworld-${o.version}`);
  const server = createServer((req, res) => {
    if (req.url === '/hello' || req.url?.startsWith('/hello?')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`Hello version: ${o.version}, instance: ${instance}\n`);
      return;
    }
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    if (req.url === '/headers') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.headers, null, 2) + '\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
  return listenApp(server, o, instance);
}

/** httpbin's teapot, as `curl httpbin:8000/status/418` prints it (seed 001's verification). */
export const TEAPOT = `
    -=[ teapot ]=-

       _...._
     .'  _ _ \`.
    | ."\` ^ \`". _,
    \\_;\`"---"\`|//
      |       ;/
      \\_     _/
        \`"""\`
`;

/** A small httpbin: `/status/<code>` answers with that status (418: the teapot), `/get` and `/headers` echo. */
export function startHttpbin(o: { host?: string; port?: number; instance?: string }): Promise<{ server: Server; address: string; instance: string }> {
  const instance = o.instance ?? podName('httpbin');
  const server = createServer((req, res) => {
    const status = /^\/status\/(\d{3})(?:\?|$)/.exec(req.url ?? '');
    if (status) {
      const code = Number(status[1]);
      res.writeHead(code, { 'content-type': 'text/plain', 'x-more-info': 'http://tools.ietf.org/html/rfc2324' });
      res.end(code === 418 ? TEAPOT : '');
      return;
    }
    if (req.url === '/get' || req.url === '/headers') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ headers: req.headers, url: req.url, instance }, null, 2) + '\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
  return listenApp(server, o, instance);
}

function listenApp(server: Server, o: { host?: string; port?: number }, instance: string): Promise<{ server: Server; address: string; instance: string }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => {
      const a = server.address() as AddressInfo;
      resolve({ server, address: `${a.address}:${a.port}`, instance });
    });
  });
}
