// Per-second table of a sidecar's first seconds of traffic from scripts/v8-timeline.mjs output
// (ADR 0146): CPU, TurboFan compiles (count and their prepare+execute+finalize ms, when the run had
// --trace-opt --redirect-code-traces), scavenges, mark-compacts, young generation size.
//   node scripts/v8-timeline-report.mjs code-<pid>-0.asm [seconds]
import { readFileSync } from 'node:fs';

const [file, secondsArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node scripts/v8-timeline-report.mjs code-<pid>-0.asm [seconds]');
  process.exit(2);
}
const rows = [];
let compiles = 0;
let compileMs = 0;
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (line.startsWith('@T ')) {
    const [, t, ...kv] = line.split(' ');
    rows.push({ t: Number(t), ...Object.fromEntries(kv.map((x) => x.split('=')).map(([k, v]) => [k, Number(v)])), compiles, compileMs });
  } else if (line.startsWith('[completed compiling')) {
    compiles++;
    const m = /took ([\d.]+), ([\d.]+), ([\d.]+) ms/.exec(line);
    if (m) compileMs += Number(m[1]) + Number(m[2]) + Number(m[3]);
  }
}
// Traffic starts at the first 250-ms sample that used > 15 ms of CPU after 3 s of samples.
const i0 = rows.findIndex((r, i) => i >= 12 && r.cpu - rows[i - 1].cpu > 15000);
if (i0 < 0) {
  console.error(`${file}: no traffic found`);
  process.exit(1);
}
const start = rows[i0 - 1];
console.log('second  cpu ms  turbofan fn  turbofan ms  scavenges (ms)  mark-compacts  young MB  rss MB');
for (let s = 0; s < Number(secondsArg ?? 12); s++) {
  const at = (t) => rows.filter((r) => r.t <= t).at(-1);
  const a = at(start.t + s * 1000);
  const b = at(start.t + (s + 1) * 1000);
  if (!b || b === a) break;
  console.log(`${`${s}-${s + 1}`.padEnd(6)}  ${((b.cpu - a.cpu) / 1000).toFixed(0).padStart(6)}  ${String(b.compiles - a.compiles).padStart(11)}  ${(b.compileMs - a.compileMs).toFixed(0).padStart(11)}  ${`${b.scav - a.scav} (${(b.scavMs - a.scavMs).toFixed(1)})`.padStart(14)}  ${String(b.mc - a.mc).padStart(13)}  ${(b.new / 1024).toFixed(0).padStart(8)}  ${(b.rss / 1024).toFixed(0).padStart(6)}`);
}
