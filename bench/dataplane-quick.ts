/**
 * Quick data-plane measurement, kept for its command line (now a thin wrapper of bench/dataplane.ts,
 * which absorbed it): direct vs nginx vs one sidecar pair with mTLS, fixed rate and maximum rate.
 *
 *   npx tsc -p tsconfig.json --outDir .build-px && node .build-px/bench/dataplane-quick.js [seconds] [connections]
 *
 * Same as `npm run bench -- dataplane --dp-seconds=S --dp-connections=C --no-write`, without the
 * build. ISLE_BENCH_PROF=<dir> writes CPU profiles of the isle processes when they exit.
 */
import { dataplaneDefaults, runDataplane } from './dataplane.js';

const seconds = Number(process.argv[2] ?? 8);
const connections = Number(process.argv[3] ?? 16);
const r = await runDataplane({ ...dataplaneDefaults(false), seconds, connections, smoke: false, log: (s) => console.log(s) });
console.log(`\n${r.markdown}`);
