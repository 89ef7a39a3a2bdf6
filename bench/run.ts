/**
 * `npm run bench [-- NAME…] [--smoke]`: runs the benchmarks (all, or the named parts: cp-scale,
 * cp-resilience, dataplane, dataplane-tcp, wan), prints their tables, and writes bench/results/<name>-<date>.json (raw data and
 * the machine) plus bench/results/latest.md (the tables of the last full-size run of each part).
 * Never fails on numbers: the exit code is 1 only when a part could not run at all.
 *
 * Sizes: see each part's header; `--key=value` sets ISLE_BENCH_KEY (e.g. `--sizes=100,500`).
 * `--smoke` is the tiny CI size (bench/smoke.test.ts) and writes nothing unless `--write`.
 * ISLE_BENCH_PROF=<dir> writes CPU profiles of every isle process (control planes, sidecars).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpResilienceDefaults, runCpResilience } from './cp-resilience.js';
import { cpScaleDefaults, runCpScale } from './cp-scale.js';
import { dataplaneDefaults, runDataplane } from './dataplane.js';
import { dataplaneTcpDefaults, runDataplaneTcp } from './dataplane-tcp.js';
import { clock, describeMachine, machine, type CommonOptions, type PartResult } from './lib/common.js';
import { runWan, wanDefaults } from './wan.js';

const here = dirname(fileURLToPath(import.meta.url));
/** bench/results in the source tree (dist/bench/run.js → ../../bench/results). */
export const RESULTS_DIR = resolve(here, '..', '..', 'bench', 'results');

export const PARTS = ['cp-scale', 'cp-resilience', 'dataplane', 'dataplane-tcp', 'wan'] as const;
export type PartName = (typeof PARTS)[number];

export async function runPart(name: PartName, common: CommonOptions): Promise<PartResult> {
  switch (name) {
    case 'cp-scale':
      return runCpScale({ ...common, ...cpScaleDefaults(common.smoke) });
    case 'cp-resilience':
      return runCpResilience({ ...common, ...cpResilienceDefaults(common.smoke) });
    case 'dataplane':
      return runDataplane({ ...common, ...dataplaneDefaults(common.smoke) });
    case 'dataplane-tcp':
      return runDataplaneTcp({ ...common, ...dataplaneTcpDefaults(common.smoke) });
    case 'wan':
      return runWan({ ...common, ...wanDefaults(common.smoke) });
  }
}

const TITLES: Record<PartName, string> = {
  'cp-scale': 'Control-plane scale',
  'cp-resilience': 'Control plane killed under load',
  dataplane: 'Data plane',
  'dataplane-tcp': 'Data plane, TCP throughput (capture)',
  wan: 'One control plane across a WAN vs multi-primary vs a remote control plane',
};

function updateLatest(file: string, name: PartName, section: string): void {
  const start = `<!-- ${name} -->`;
  const end = `<!-- /${name} -->`;
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Isle benchmarks: latest results\n\nWritten by `npm run bench` (bench/run.ts); raw data in bench/results/*.json. Targets: DESIGN.md §8.\n';
  const block = `${start}\n${section}\n${end}`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) text = text.slice(0, i) + block + text.slice(j + end.length);
  else {
    text = text.trimEnd() + '\n\n';
    // Keep the parts in their usual order.
    text += block + '\n';
  }
  writeFileSync(file, text.trimEnd() + '\n');
}

async function main(argv: string[]): Promise<number> {
  const smoke = argv.includes('--smoke');
  // --key=value sets ISLE_BENCH_KEY (e.g. --sizes=100,500 --wan-proxies=50 --dp-seconds=5).
  for (const a of argv) {
    const m = /^--([a-z][a-z-]*)=(.*)$/.exec(a);
    if (m) process.env[`ISLE_BENCH_${m[1]!.toUpperCase().replace(/-/g, '_')}`] = m[2]!;
  }
  const names = argv.filter((a) => !a.startsWith('--'));
  for (const n of names) {
    if (!(PARTS as readonly string[]).includes(n)) {
      console.error(`unknown benchmark ${JSON.stringify(n)} (use ${PARTS.join(', ')})`);
      return 2;
    }
  }
  const parts = (names.length ? names : [...PARTS]) as PartName[];
  // Smoke runs write nothing unless asked (--write); --no-write keeps a full run out of bench/results.
  const results = argv.includes('--no-write') || (smoke && !argv.includes('--write')) ? undefined : RESULTS_DIR;
  const log = (s: string) => console.log(s);
  let failed = 0;
  const started = clock();
  for (const name of parts) {
    const m0 = machine();
    console.log(`\n== ${TITLES[name]} (${name}${smoke ? ', smoke size' : ''}) ==`);
    console.log(`machine: ${describeMachine(m0)}`);
    const t0 = clock();
    let r: PartResult;
    try {
      r = await runPart(name, { smoke, log });
    } catch (e) {
      failed++;
      console.error(`${name}: could not run: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      continue;
    }
    const m1 = machine();
    const seconds = (clock() - t0) / 1000;
    const date = new Date().toISOString().replace(/[:.]/g, '-');
    const header = `Machine: ${describeMachine(m0)} (load average after: ${m1.loadAverage.join(' ')}); ${seconds.toFixed(0)} s; ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC${smoke ? '; SMOKE SIZE' : ''}.`;
    console.log(`\n${r.markdown}\n\n${header}`);
    if (results) {
      mkdirSync(results, { recursive: true });
      const file = join(results, `${name}${smoke ? '-smoke' : ''}-${date}.json`);
      writeFileSync(file, JSON.stringify({ name, smoke, date: new Date().toISOString(), seconds, machine: { before: m0, after: m1 }, data: r.data, notes: r.notes }, null, 2) + '\n');
      console.log(`wrote ${file}`);
      if (!smoke) updateLatest(join(results, 'latest.md'), name, `## ${TITLES[name]}\n\n\`npm run bench -- ${name}\`. ${header}\n\n${r.markdown}`);
    }
  }
  console.log(`\nbench: ${parts.join(', ')} in ${((clock() - started) / 1000).toFixed(0)} s`);
  return failed ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // Ctrl-C / SIGTERM run the 'exit' hooks, which kill every child process the parts started.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
