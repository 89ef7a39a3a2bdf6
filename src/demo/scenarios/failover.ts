/**
 * `isle demo --scenario failover` (seed 002): the mesh-wide DestinationRule with `failover from
 * region1 to region2` and outlier detection (consecutive5xxErrors 1; a short interval and ejection
 * time for the demo). The local helloworld's app goes down (its sidecar answers 503, outlier
 * detection ejects it) → traffic moves to region2; region2's goes down → region3; region1's app
 * comes back → traffic returns to region1 once its ejection time is over.
 */
import type { Answer } from '../verify.js';
import { versionsOf } from '../verify.js';
import { describe, mark, requests, startApp, stopApp, until, workload, type Scenario } from './common.js';
import { threeRegions } from './locality-common.js';

const URL = 'http://helloworld:5000/hello';
const BASE_EJECTION_S = 3;
const SAMPLE = 20;

const GLOBAL_DR = `# Seed 002: cluster-wide failover (all services); short interval and ejection time for the demo.
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
        failover:
        - from: region1
          to: region2
    outlierDetection:
      baseEjectionTime: ${BASE_EJECTION_S}s
      consecutive5xxErrors: 1
      interval: 1s
      maxEjectionPercent: 100
`;

export const failover: Scenario = {
  name: 'failover',
  seed: 'seed 002',
  topology: threeRegions('127.14'),
  config: () => ({ 'remote-clusters.yaml': '', 'global-destinationrule.yaml': GLOBAL_DR }),
  verify: async (r, say) => {
    const sleep = workload(r, 'cluster-1', 'sleep');
    const [v1, v2] = [workload(r, 'cluster-1', 'helloworld-v1'), workload(r, 'cluster-1', 'helloworld-v2')];
    let ok = true;
    // Polls until a whole sample is answered by `want`; prints what the transition cost and the sample.
    const expect = async (title: string, want: string, ms: number) => {
      say(`\n${title}\n`);
      const during: Answer[] = [];
      let sample: Answer[] = [];
      const reached = await until(async () => {
        sample = await requests(sleep, SAMPLE, URL);
        if (versionsOf(sample).get(want) === SAMPLE) return true;
        during.push(...sample);
        return false;
      }, ms, 200);
      if (during.length > 0) say(`    while moving: ${during.length} requests   ${describe(during)}\n`);
      say(`  ${mark(reached)} ${SAMPLE} requests   ${describe(sample)}   (want all ${want})\n`);
      ok &&= reached;
    };
    say(`\nFrom region1's sleep: curl -x http://${sleep.ip}:15001 ${URL}   (v1 = region1, v2 = region2, v3 = region3)\n`);
    await expect('1. all healthy: the local region serves', 'v1', 30_000);
    await stopApp(r, v1);
    await expect(`2. region1's helloworld app stopped (its sidecar answers 503, outlier detection ejects it): failover to region2`, 'v2', 20_000);
    await stopApp(r, v2);
    await expect(`3. region2's helloworld app stopped too: on to region3`, 'v3', 20_000);
    await startApp(r, v1);
    await expect(`4. region1's app back: traffic returns after its ejection time (${BASE_EJECTION_S} s × ejections)`, 'v1', 40_000);
    return ok;
  },
};
