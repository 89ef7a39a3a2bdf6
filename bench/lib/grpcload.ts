/**
 * Closed-loop gRPC load, in a process of its own: `clients` @grpc/grpc-js channels, each keeping
 * `inflight` unary calls outstanding for `seconds`. Prints one JSON line: calls/s, errors and the
 * p50/p99 call latency. argv: target authority|- seconds clients inflight.
 */
import * as grpc from '@grpc/grpc-js';
import { BENCH_GRPC_SERVICE } from './grpcservice.js';

const [target, authority, secs, nClients, nInflight] = process.argv.slice(2);
const seconds = Number(secs ?? 5);
const Client = grpc.makeGenericClientConstructor(BENCH_GRPC_SERVICE, 'Echo');
const opts = authority && authority !== '-' ? { 'grpc.default_authority': authority } : {};
const clients = Array.from({ length: Number(nClients ?? 4) }, () => new Client(target!, grpc.credentials.createInsecure(), opts));
type Say = (req: Buffer, cb: (e: grpc.ServiceError | null) => void) => void;
const req = Buffer.alloc(64, 'r');
const lat: number[] = [];
let errors = 0;
let lastError = '';
let done = 0;
let stop = false;

function loop(c: grpc.Client): Promise<void> {
  return new Promise((resolve) => {
    const one = (): void => {
      if (stop) return resolve();
      const t0 = performance.now();
      (c as unknown as { Say: Say }).Say(req, (e) => {
        if (e) {
          errors++;
          lastError = e.message;
        } else {
          done++;
          lat.push(performance.now() - t0);
        }
        one();
      });
    };
    one();
  });
}

// Warm-up call on each channel (connection, JIT), not counted.
await Promise.all(clients.map((c) => new Promise<void>((r) => (c as unknown as { Say: Say }).Say(req, () => r()))));
const t0 = performance.now();
const loops = clients.flatMap((c) => Array.from({ length: Number(nInflight ?? 8) }, () => loop(c)));
setTimeout(() => (stop = true), seconds * 1000);
await Promise.all(loops);
const elapsed = (performance.now() - t0) / 1000;
lat.sort((a, b) => a - b);
const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor((lat.length * p) / 100))] ?? NaN;
process.stdout.write(JSON.stringify({ rps: done / elapsed, calls: done, errors, lastError, p50: pct(50), p99: pct(99) }) + '\n');
for (const c of clients) c.close();
