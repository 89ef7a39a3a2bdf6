/**
 * Helper process for the capture tests, run inside a namespace (`ip netns exec`):
 * - `origdst-server PORT`: listens on 0.0.0.0:PORT, prints `origdst <addr>:<port>` per connection
 *   (or `origdst none`), and echoes what it reads;
 * - `echo-server PORT [HOST]`: a TCP echo server on HOST:PORT (0.0.0.0), prints `listening`;
 * - `http-server PORT NAME [HOST]`: answers every request with JSON naming NAME, the Host and XFCC;
 * - `connect HOST PORT [GID]`: connects (as that effective gid when given), sends `ping`, prints
 *   what came back (`reply <text>`), `closed` (closed without a reply) or `error <code>`.
 */
import http from 'node:http';
import net from 'node:net';
import { originalDst } from '../../../src/proxy/net/origdst.js';

const [mode, a, b, c] = process.argv.slice(2);

if (mode === 'origdst-server' || mode === 'echo-server') {
  const server = net.createServer((s) => {
    if (mode === 'origdst-server') {
      const d = originalDst(s);
      process.stdout.write(`origdst ${d ? `${d.address}:${d.port}` : 'none'}\n`);
    }
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  server.listen(Number(a), b ?? '0.0.0.0', () => process.stdout.write('listening\n'));
} else if (mode === 'http-server') {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ app: b, host: req.headers.host, xfcc: req.headers['x-forwarded-client-cert'] ?? null }));
  });
  server.listen(Number(a), c ?? '0.0.0.0', () => process.stdout.write('listening\n'));
} else if (mode === 'connect') {
  if (c !== undefined) process.setegid!(Number(c));
  const s = net.connect({ host: a!, port: Number(b) });
  s.setTimeout(3000, () => {
    process.stdout.write('error ETIMEDOUT\n');
    process.exit(0);
  });
  s.on('connect', () => s.write('ping'));
  s.on('data', (d) => {
    process.stdout.write(`reply ${d.toString()}\n`);
    process.exit(0);
  });
  s.on('close', () => {
    process.stdout.write('closed\n');
    process.exit(0);
  });
  s.on('error', (e: NodeJS.ErrnoException) => {
    process.stdout.write(`error ${e.code ?? e.message}\n`);
    process.exit(0);
  });
} else if (mode !== undefined) {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
// No mode: `node --test dist/test/` runs every file under test/, this one too; nothing to do.
