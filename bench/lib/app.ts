/**
 * The benchmark's upstream app, in a process of its own: node:http answering every request with
 * 1 KB (keep-alive). Prints `listening <host:port>` on stdout. argv: [host] [bytes].
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const host = process.argv[2] ?? '127.0.0.1';
const body = Buffer.alloc(Number(process.argv[3] ?? 1024), 'x');
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, host, () => {
  const a = server.address() as AddressInfo;
  process.stdout.write(`listening ${a.address}:${a.port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
