/**
 * A small open-loop HTTP load generator (the fallback when `hey` is not installed): requests are
 * scheduled at a fixed rate and latency is measured from each request's scheduled time, so a slow
 * response delays nobody's clock (no coordinated omission). Keep-alive connections, at most
 * `connections` in flight. Bounded: `seconds` of schedule, then at most 5 s to drain.
 *
 *   node loadgen.js <url> <rps> <seconds> <connections> [host header]
 *
 * Prints one JSON line: { sent, ok, errors, seconds, rps, latenciesMs: {p50, p90, p99, max} }.
 */
import http from 'node:http';

const [url, rpsArg, secArg, connArg, hostHeader] = process.argv.slice(2);
const rps = Number(rpsArg);
const seconds = Number(secArg);
const u = new URL(url!);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(connArg ?? 32) });
const lat: number[] = [];
let sent = 0;
let ok = 0;
let errors = 0;
let inflight = 0;
const start = performance.now();
const total = Math.round(rps * seconds);
const interval = 1000 / rps;

function fire(scheduled: number): void {
  sent++;
  inflight++;
  const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, agent, headers: hostHeader ? { host: hostHeader } : {} }, (res) => {
    res.on('data', () => {});
    res.on('end', () => {
      inflight--;
      if (res.statusCode === 200) ok++;
      else errors++;
      lat.push(performance.now() - scheduled);
    });
  });
  req.on('error', () => {
    inflight--;
    errors++;
  });
  req.end();
}

let next = 0;
const tick = setInterval(() => {
  const now = performance.now();
  while (next < total && start + next * interval <= now) fire(start + interval * next++);
  if (next >= total) {
    clearInterval(tick);
    const deadline = performance.now() + 5000;
    const wait = setInterval(() => {
      if (inflight === 0 || performance.now() > deadline) {
        clearInterval(wait);
        lat.sort((a, b) => a - b);
        const p = (q: number) => lat[Math.min(lat.length - 1, Math.max(0, Math.ceil((q / 100) * lat.length) - 1))] ?? NaN;
        const secs = (performance.now() - start) / 1000;
        process.stdout.write(JSON.stringify({ sent, ok, errors, seconds: secs, rps: ok / seconds, latenciesMs: { p50: p(50), p90: p(90), p99: p(99), max: p(100) } }) + '\n');
        agent.destroy();
        process.exit(0);
      }
    }, 10);
  }
}, 1);
