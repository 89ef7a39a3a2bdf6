#!/usr/bin/env node
/**
 * Top functions of a V8 CPU profile (`node --cpu-prof`), optionally cut to time windows.
 *
 *   node scripts/cpuprofile-top.mjs FILE.cpuprofile [--windows=F.jsonl --kind=endpoint [--skip=N]] [--top=25]
 *                                   [--inclusive=name1,name2]
 *
 * Windows: one JSON object per line, `{kind, pid, start, end}` in µs of CLOCK_MONOTONIC (what
 * bench/cp-scale.ts writes with ISLE_BENCH_PROF); only samples inside a window of that kind (and
 * of the profile's pid, read from the file name CPU.<date>.<time>.<pid>.….cpuprofile) count; `--skip`
 * drops the first N of them (e.g. a change that overlapped the initial connections).
 * Prints busy time (all but `(idle)`), then self time and inclusive time per function as a share of
 * busy time. A function is name + file:line, so two closures of one name stay apart.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
if (!file) {
  console.log('usage: cpuprofile-top.mjs FILE.cpuprofile [--windows=F.jsonl --kind=K] [--top=N] [--inclusive=a,b]');
  process.exit(0);
}
const opt = (k) => args.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3);
const top = Number(opt('top') ?? 25);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const pid = Number(basename(file).split('.')[3]);
let windows;
if (opt('windows')) {
  const kind = opt('kind');
  windows = readFileSync(opt('windows'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((w) => (kind === undefined || w.kind === kind) && (!Number.isFinite(pid) || w.pid === pid))
    .slice(Number(opt('skip') ?? 0));
}

const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const keyOf = (n) => {
  const f = n.callFrame;
  const url = f.url ? f.url.replace(/^.*\/(dist|node_modules)\//, '$1/') : '';
  return `${f.functionName || '(anonymous)'}${url ? ` ${url}:${f.lineNumber + 1}` : ''}`;
};

const self = new Map();
const incl = new Map();
let busy = 0;
let idle = 0;
let t = prof.startTime;
for (let i = 0; i < prof.samples.length; i++) {
  const dt = prof.timeDeltas[i] ?? 0;
  t += dt;
  if (windows && !windows.some((w) => t >= w.start && t <= w.end)) continue;
  // A sample's weight is the interval until the next sample.
  const w = (prof.timeDeltas[i + 1] ?? dt) / 1000;
  const leaf = byId.get(prof.samples[i]);
  const k = keyOf(leaf);
  if (leaf.callFrame.functionName === '(idle)') {
    idle += w;
    continue;
  }
  busy += w;
  self.set(k, (self.get(k) ?? 0) + w);
  const seen = new Set();
  for (let id = leaf.id; id !== undefined; id = parent.get(id)) {
    const kk = keyOf(byId.get(id));
    if (seen.has(kk)) continue;
    seen.add(kk);
    incl.set(kk, (incl.get(kk) ?? 0) + w);
  }
}
const pct = (v) => `${((100 * v) / busy).toFixed(1).padStart(5)} %`;
const ms = (v) => `${v.toFixed(0).padStart(7)} ms`;
console.log(`${file}${windows ? ` (${windows.length} windows)` : ''}: busy ${busy.toFixed(0)} ms, idle ${idle.toFixed(0)} ms`);
console.log('\nself:');
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(v)} ${pct(v)}  ${k}`);
console.log('\ninclusive:');
const wanted = opt('inclusive')?.split(',');
const rows = [...incl].filter(([k]) => k !== '(root)').sort((a, b) => b[1] - a[1]);
for (const [k, v] of wanted ? rows.filter(([k]) => wanted.some((w) => k.startsWith(w + ' ') || k === w)) : rows.slice(0, top)) console.log(`${ms(v)} ${pct(v)}  ${k}`);
