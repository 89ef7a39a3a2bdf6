/**
 * `isle demo --scenario routing` (seed 003): helloworld v1 in cluster-1, v2 and v3 in cluster-2
 * (namespace `hello`). cluster-1 reaches cluster-2 as the ServiceEntry `helloworld.hello.global`
 * (MESH_INTERNAL, DNS, the endpoint is cluster-2's east-west gateway on 15443); the seed's
 * DestinationRules name the subsets, and its VirtualService sends `end-user: jason` 70/30 to
 * v2/v3 in the other cluster and everyone else to the local v1.
 */
import { Resolver } from 'node:dns/promises';
import { DNS_PROXY_PORT } from '../../mesh/names.js';
import type { DemoCluster, DemoTopology } from '../topology.js';
import { versionsOf } from '../verify.js';
import { describe, mark, requests, serviceAccountYaml, serviceYaml, until, withinShares, workload, type Scenario } from './common.js';

const TOPOLOGY: DemoTopology = {
  clusters: [
    { name: 'cluster-1', network: 'network1', region: 'region1', zone: 'zone1', controlPlane: '127.12.1.1:15012', debug: '127.12.1.1:15014', gatewayIp: '127.12.1.255' },
    { name: 'cluster-2', network: 'network2', region: 'region2', zone: 'zone1', controlPlane: '127.12.2.1:15012', debug: '127.12.2.1:15014', gatewayIp: '127.12.2.255' },
  ],
  workloads: [
    { cluster: 'cluster-1', name: 'helloworld-v1', app: 'helloworld', version: 'v1', namespace: 'hello', serviceAccount: 'helloworld', ip: '127.12.1.10', port: 5000 },
    { cluster: 'cluster-2', name: 'helloworld-v2', app: 'helloworld', version: 'v2', namespace: 'hello', serviceAccount: 'helloworld', ip: '127.12.2.10', port: 5000 },
    { cluster: 'cluster-2', name: 'helloworld-v3', app: 'helloworld', version: 'v3', namespace: 'hello', serviceAccount: 'helloworld', ip: '127.12.2.11', port: 5000 },
    { cluster: 'cluster-1', name: 'sleep', app: 'sleep', namespace: 'hello', serviceAccount: 'sleep', ip: '127.12.1.20' },
  ],
};

const JASON_REQUESTS = 1000;
const OTHER_REQUESTS = 100;
const TOLERANCE = 5;
const URL = 'http://helloworld.hello.svc.cluster.local:5000/hello';
const GLOBAL_HOST = 'helloworld.hello.global';
const GLOBAL_ADDRESS = '127.255.0.8';

/** `host`'s A records from the sidecar's DNS proxy (as a pod with DNS capture would ask it); [] until they exist. */
async function resolveVia(sidecarIp: string, host: string): Promise<string[]> {
  const r = new Resolver({ timeout: 1000, tries: 1 });
  r.setServers([`${sidecarIp}:${DNS_PROXY_PORT}`]);
  return r.resolve4(host).catch(() => []);
}

/**
 * Istio 1.x's east-west gateway rewrote the SNI `….hello.global` to `….hello.svc.cluster.local`;
 * Isle's gateway lists the `.global` form of each filter chain's name instead (ADR 0015), so the
 * seed's DestinationRule works as written. Setting this pins each subset's SNI explicitly
 * (DestinationRule `tls.sni`), for gateways that know only the `.svc.cluster.local` names.
 */
const GLOBAL_SNI = false;

function sniPolicy(subset: string): string {
  return `    trafficPolicy:
      tls:
        mode: ISTIO_MUTUAL
        # cluster-2's gateway routes on the SNI: name the subset as cluster-2 knows it.
        sni: outbound_.5000_.${subset}_.helloworld.hello.svc.cluster.local
`;
}

function cluster1Config(remote: DemoCluster): Record<string, string> {
  return {
    'helloworld-global.yaml': `# Seed 003: cluster-2's helloworld, reached through its east-west gateway.
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: helloworld
  namespace: hello
spec:
  hosts:
  - helloworld.hello.global
  location: MESH_INTERNAL
  ports:
  - name: http1
    number: 5000
    protocol: http
  resolution: DNS
  addresses:
  - 127.255.0.8
  endpoints:
  - address: ${remote.gatewayIp}
    ports:
      http1: 15443
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: helloworld-global
  namespace: hello
spec:
  host: helloworld.hello.global
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
  subsets:
  - name: v2
    labels:
      version: v2
${GLOBAL_SNI ? sniPolicy('v2') : ''}  - name: v3
    labels:
      version: v3
${GLOBAL_SNI ? sniPolicy('v3') : ''}`,
    'helloworld-dr.yaml': `apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: helloworld
  namespace: hello
spec:
  host: helloworld.hello.svc.cluster.local
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
  subsets:
  - name: v1
    labels:
      version: v1
`,
    'helloworld-vs.yaml': `# Seed 003: jason → 70 % v2, 30 % v3 (cluster-2); everyone else → the local v1.
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: helloworld
  namespace: hello
spec:
  hosts:
  - helloworld.hello.svc.cluster.local
  - helloworld.hello.global
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: helloworld.hello.global
        subset: v2
      weight: 70
    - destination:
        host: helloworld.hello.global
        subset: v3
      weight: 30
  - route:
    - destination:
        host: helloworld.hello.svc.cluster.local
        subset: v1
`,
  };
}

const CLUSTER2_DR = `apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: helloworld
  namespace: hello
spec:
  host: helloworld.hello.svc.cluster.local
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
  subsets:
  - name: v2
    labels:
      version: v2
  - name: v3
    labels:
      version: v3
`;

export const routing: Scenario = {
  name: 'routing',
  seed: 'seed 003',
  topology: TOPOLOGY,
  config: (topo, c) => ({
    'helloworld.yaml': serviceYaml('hello'),
    'sleep.yaml': serviceAccountYaml('sleep', 'hello'),
    ...(c.name === 'cluster-1' ? cluster1Config(topo.clusters.find((x) => x.name === 'cluster-2')!) : { 'helloworld-dr.yaml': CLUSTER2_DR }),
  }),
  verify: async (r, say) => {
    const sleep = workload(r, 'cluster-1', 'sleep');
    const jason = { 'end-user': 'jason' };
    say(`\nFrom cluster-1's sleep (namespace hello): curl -x http://${sleep.ip}:15001 -H 'end-user: jason' ${URL}\n`);
    // Wait until the clusters have converged: jason reaches both v2 and v3, others reach v1.
    const seen = new Set<string>();
    const converged = await until(async () => {
      for (const v of versionsOf(await requests(sleep, 6, URL, jason)).keys()) seen.add(v);
      for (const v of versionsOf(await requests(sleep, 1, URL)).keys()) seen.add(v);
      return ['v1', 'v2', 'v3'].every((v) => seen.has(v));
    }, 30_000);
    if (!converged) {
      say(`  ✗ not converged within 30 s: saw only ${[...seen].sort().join(', ') || 'errors'}\n`);
      return false;
    }
    // The seed's `.global` name, resolved the way the app would: by the sidecar's DNS proxy (15053).
    let resolved: string[] = [];
    await until(async () => (resolved = await resolveVia(sleep.ip, GLOBAL_HOST)).length > 0, 10_000);
    const dnsOk = resolved.length === 1 && resolved[0] === GLOBAL_ADDRESS;
    say(`  ${mark(dnsOk)} DNS ${sleep.ip}:${DNS_PROXY_PORT}: ${GLOBAL_HOST} → ${resolved.join(', ') || 'no answer'}   (want the ServiceEntry address ${GLOBAL_ADDRESS})\n`);
    // jason's requests go to that address; the sidecar knows it as the ServiceEntry's and applies the seed's VirtualService.
    const globalUrl = `http://${resolved[0] ?? GLOBAL_ADDRESS}:5000/hello`;
    say(`  curl -x http://${sleep.ip}:15001 -H 'end-user: jason' ${globalUrl}\n`);
    const jasonAnswers = await requests(sleep, JASON_REQUESTS, globalUrl, jason);
    const jasonOk = withinShares(jasonAnswers, { v2: 70, v3: 30 }, TOLERANCE);
    say(`  ${mark(jasonOk)} end-user: jason, ${JASON_REQUESTS} requests   ${describe(jasonAnswers)}   (want v2 70 %, v3 30 %, ± ${TOLERANCE} %)\n`);
    const others = await requests(sleep, OTHER_REQUESTS, URL);
    const othersOk = versionsOf(others).get('v1') === OTHER_REQUESTS;
    say(`  ${mark(othersOk)} everyone else, ${OTHER_REQUESTS} requests   ${describe(others)}   (want all v1, the local cluster)\n`);
    return converged && dnsOk && jasonOk && othersOk;
  },
};
