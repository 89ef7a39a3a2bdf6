/**
 * `isle demo --scenario distribute` (seed 002): the mesh-wide DestinationRule (istio-system,
 * `*.cluster.local`) with `distribute: from region1/* to region1/* 70, region2/* 20, region3/* 10`
 * and outlier detection; 2,000 requests from region1 land 70/20/10 within ± 5 %.
 */
import { versionsOf } from '../verify.js';
import { describe, mark, requests, until, withinShares, workload, type Scenario } from './common.js';
import { threeRegions } from './locality-common.js';

const REQUESTS = 2000;
const TOLERANCE = 5;
const URL = 'http://helloworld:5000/hello';

// Seed 002's YAML, with the tab before `distribute` fixed.
const GLOBAL_DR = `# Seed 002: cluster-wide weighted distribution (all services).
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: global
  namespace: istio-system
spec:
  host: "*.cluster.local"
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        enabled: true
        distribute:
        - from: region1/*
          to:
            "region1/*": 70
            "region2/*": 20
            "region3/*": 10
    outlierDetection:
      baseEjectionTime: 600s
      consecutive5xxErrors: 1
      interval: 10s
      maxEjectionPercent: 100
`;

export const distribute: Scenario = {
  name: 'distribute',
  seed: 'seed 002',
  topology: threeRegions('127.13'),
  config: () => ({ 'remote-clusters.yaml': '', 'global-destinationrule.yaml': GLOBAL_DR }),
  verify: async (r, say) => {
    const sleep = workload(r, 'cluster-1', 'sleep');
    say(`\nFrom region1's sleep: ${REQUESTS} × curl -x http://${sleep.ip}:15001 ${URL}   (v1 = region1, v2 = region2, v3 = region3)\n`);
    const seen = new Set<string>();
    const converged = await until(async () => {
      for (const v of versionsOf(await requests(sleep, 10, URL)).keys()) seen.add(v);
      return ['v1', 'v2', 'v3'].every((v) => seen.has(v));
    }, 30_000);
    if (!converged) {
      say(`  ✗ not converged within 30 s: saw only ${[...seen].sort().join(', ') || 'errors'}\n`);
      return false;
    }
    const answers = await requests(sleep, REQUESTS, URL);
    const ok = withinShares(answers, { v1: 70, v2: 20, v3: 10 }, TOLERANCE);
    say(`  ${mark(ok)} ${describe(answers)}   (want region1 70 %, region2 20 %, region3 10 %, ± ${TOLERANCE} %)\n`);
    return ok;
  },
};
