// A probe preloaded into a sidecar (ADR 0146) with `node --import <this file>` — in the
// dataplane bench: ISLE_BENCH_SIDECAR_NODE_ARGS="--import $PWD/scripts/v8-timeline.mjs
// --trace-opt --redirect-code-traces". Every 250 ms it appends a line `@T <epoch ms> cpu=<µs>
// new=<KB> … scav=<n> scavMs=… mc=<n> mcMs=… rss=<KB>` to code-<pid>-0.asm in the working
// directory, the file V8's --redirect-code-traces writes its optimization trace to, so compile
// events and the timeline interleave in time order. scripts/v8-timeline-report.mjs summarizes it.
// Costs the process a few µs per GC and a write per 250 ms; never on in production.
import { appendFileSync } from 'node:fs';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

const file = `${process.env.V8_TIMELINE_DIR ?? process.cwd()}/code-${process.pid}-0.asm`;
const gc = { s: 0, sMs: 0, m: 0, mMs: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      gc.s++;
      gc.sMs += e.duration;
    } else if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
      gc.m++;
      gc.mMs += e.duration;
    }
  }
}).observe({ entryTypes: ['gc'] });
setInterval(() => {
  const u = process.cpuUsage();
  const sp = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s]));
  const kb = (n) => Math.round(n / 1024);
  appendFileSync(file, `@T ${Date.now()} cpu=${u.user + u.system} new=${kb(sp.new_space.space_size)} old=${kb(sp.old_space.space_size)} heap=${kb(v8.getHeapStatistics().total_heap_size)} scav=${gc.s} scavMs=${gc.sMs.toFixed(1)} mc=${gc.m} mcMs=${gc.mMs.toFixed(1)} rss=${kb(process.memoryUsage.rss())}\n`);
}, 250).unref();
