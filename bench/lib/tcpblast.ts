/**
 * TCP throughput probe, run as a process inside a namespace:
 * - `sink PORT`: on 0.0.0.0:PORT, counts the bytes of each connection until the client half-closes,
 *   then answers the count and closes; prints `listening`;
 * - `blast HOST PORT MB [GID]`: (as effective gid GID: capture lets the proxy's gid by) sends MB mebibytes, half-closes, waits for the count, prints
 *   `{"bytes":…,"seconds":…,"mbps":…}` (MB/s, 1 MB = 2^20 bytes).
 */
import net from 'node:net';

const [mode, a, b, c] = process.argv.slice(2);
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

if (mode === 'sink') {
  net
    .createServer({ allowHalfOpen: true }, (s) => {
      let n = 0;
      s.on('data', (d: Buffer) => (n += d.length));
      s.on('end', () => s.end(String(n)));
      s.on('error', () => s.destroy());
    })
    .listen(Number(a), '0.0.0.0', () => process.stdout.write('listening\n'));
} else if (mode === 'blast') {
  const gid = process.argv[6];
  if (gid !== undefined) process.setegid!(Number(gid));
  const total = Number(c) * 1048576;
  const s = net.connect({ host: a!, port: Number(b), allowHalfOpen: true });
  let sent = 0;
  let reply = '';
  let t0 = 0n;
  const pump = (): void => {
    while (sent < total) {
      sent += CHUNK.length;
      if (!s.write(CHUNK)) return void s.once('drain', pump);
    }
    s.end();
  };
  s.on('connect', () => {
    t0 = process.hrtime.bigint();
    pump();
  });
  s.on('data', (d: Buffer) => (reply += d.toString()));
  s.on('end', () => {
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const bytes = Number(reply);
    process.stdout.write(JSON.stringify({ bytes, seconds, mbps: bytes / 1048576 / seconds }) + '\n');
    process.exit(bytes === sent ? 0 : 1);
  });
  s.on('error', (e) => {
    process.stderr.write(`blast: ${e.message}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write(`usage: tcpblast sink PORT | blast HOST PORT MB\n`);
  process.exit(2);
}
