/**
 * `isle demo --scenario remote-control-plane` (seed 001, ASM's remote control plane): cluster-1
 * runs the central control plane, where mesh resources are authored; cluster-2 (another network)
 * runs two replicas of a remote control plane behind one address, which serve xDS and
 * certificates to cluster-2's proxies locally and reach the central one only over a WAN relay
 * adding 50 ms each way. httpbin and sleep run in cluster-2, helloworld and sleep in cluster-1.
 *
 * cluster-2's workloads are declared as WorkloadEntries in its config directory, which both
 * replicas read (the part Kubernetes' API server plays for istiod replicas): an auto-registered
 * proxy is known only to the replica it is connected to.
 */
import { fetchPlane, formatStatus } from '../../controlplane/status.js';
import type { Running } from '../running.js';
import { clusterConfig, type DemoTopology } from '../topology.js';
import type { Answer } from '../verify.js';
import { mark, until, viaSidecar, workload, writeConfig, type Scenario } from './common.js';

const C1 = { cp: '127.31.0.1:15012', debug: '127.31.0.1:15014' };
const REPLICAS = [
  { controlPlane: '127.32.0.2:15012', debug: '127.32.0.2:15014' },
  { controlPlane: '127.32.0.3:15012', debug: '127.32.0.3:15014' },
];
const WAN_TO_CENTRAL = '127.32.250.1:15012';
export const WAN_DELAY_MS = 50;

const TOPOLOGY: DemoTopology = {
  clusters: [
    { name: 'cluster-1', network: 'network1', region: 'region1', zone: 'zone1', controlPlane: C1.cp, debug: C1.debug, gatewayIp: '127.31.255.1' },
    { name: 'cluster-2', network: 'network2', region: 'region2', zone: 'zone1', controlPlane: '127.32.0.1:15012', debug: REPLICAS[0]!.debug, gatewayIp: '127.32.255.1', replicas: REPLICAS, central: WAN_TO_CENTRAL },
  ],
  workloads: [
    { cluster: 'cluster-1', name: 'helloworld-v1', app: 'helloworld', version: 'v1', namespace: 'default', serviceAccount: 'helloworld', ip: '127.31.0.10', port: 5000 },
    { cluster: 'cluster-1', name: 'sleep', app: 'sleep', namespace: 'default', serviceAccount: 'sleep', ip: '127.31.0.20' },
    { cluster: 'cluster-2', name: 'httpbin', app: 'httpbin', namespace: 'default', serviceAccount: 'httpbin', ip: '127.32.0.10', port: 8000 },
    { cluster: 'cluster-2', name: 'sleep', app: 'sleep', namespace: 'default', serviceAccount: 'sleep', ip: '127.32.0.20' },
  ],
  relays: [
    // The only link between the networks' control planes: the remote replicas dial the central through it.
    { name: 'wan-cluster-2-to-central', listen: WAN_TO_CENTRAL, targets: [C1.cp], delayMs: WAN_DELAY_MS },
    // cluster-2's control-plane Service: proxies dial one address, either replica answers.
    { name: 'cluster-2-control-plane', listen: '127.32.0.1:15012', targets: REPLICAS.map((x) => x.controlPlane), delayMs: 0 },
  ],
};

const PUSH_WAIT_MS = 20_000;

function workloadEntry(name: string, ip: string, sa: string, app: string): string {
  return `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ${name}, namespace: default}
spec:
  address: ${ip}
  serviceAccount: ${sa}
  labels: {app: ${app}}
`;
}

/** Seed 001's httpbin Service and, as the cluster's "API server", its pods. */
const CLUSTER_2_WORKLOADS = `apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: default, labels: {app: httpbin}}
spec:
  selector: {app: httpbin}
  ports:
  - {name: http, port: 8000}
---
${workloadEntry('httpbin-127-32-0-10', '127.32.0.10', 'httpbin', 'httpbin')}---
${workloadEntry('sleep-127-32-0-20', '127.32.0.20', 'sleep', 'sleep')}`;

/** Written in cluster-2 itself: the seed's warning, "resources may be overwritten". */
const LOCAL_VS = `# Authored in the remote cluster: once the central control plane has a VirtualService of the
# same name, this one is reported as a conflict and not applied.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin]
  http:
  - route:
    - destination: {host: httpbin}
`;

const CENTRAL_VS = `# Authored at the central control plane only: /teapot is rewritten to /status/418 in every cluster.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.default.svc.cluster.local]
  http:
  - match:
    - uri: {prefix: /teapot}
    rewrite: {uri: /status/418}
    route:
    - destination: {host: httpbin.default.svc.cluster.local}
  - route:
    - destination: {host: httpbin.default.svc.cluster.local}
`;

const isTeapot = (a: Answer): boolean => a.status === 418 && a.body.includes('teapot');
const short = (a: Answer): string => (a.status ? `HTTP ${a.status}${a.body ? ` ${a.body.split('\n').find((l) => l.trim()) ?? ''}`.trimEnd() : ''}` : a.body);

export const remoteControlPlane: Scenario = {
  name: 'remote-control-plane',
  seed: 'seed 001',
  topology: TOPOLOGY,
  // No RemoteClusters: the clusters are joined by the central link only.
  config: (_topo, c): Record<string, string> =>
    c.name === 'cluster-1' ? { 'remote-clusters.yaml': '' } : { 'remote-clusters.yaml': '', 'helloworld.yaml': '', 'httpbin.yaml': CLUSTER_2_WORKLOADS, 'local-vs.yaml': LOCAL_VS },
  verify: async (r: Running, say) => {
    const sleep2 = workload(r, 'cluster-2', 'sleep');
    const sleep1 = workload(r, 'cluster-1', 'sleep');
    let ok = true;
    const check = (cond: boolean, what: string) => {
      ok &&= cond;
      say(`  ${mark(cond)} ${what}\n`);
    };
    const curl = (url: string, from = sleep2) => viaSidecar(from, url);
    const HTTPBIN = 'http://httpbin:8000';

    say(`\n1. From cluster-2: curl -x http://${sleep2.ip}:15001 ${HTTPBIN}/status/418\n`);
    await until(async () => isTeapot(await curl(`${HTTPBIN}/status/418`)), PUSH_WAIT_MS);
    const teapot = await curl(`${HTTPBIN}/status/418`);
    say(teapot.body.replace(/^/gm, '    ') + '\n');
    check(isTeapot(teapot), `HTTP ${teapot.status} with the teapot: cluster-2's proxies got their config and certificates from the remote control plane`);

    say(`\n2. A VirtualService authored only at the central control plane (wrote ${r.dir}/cluster-1/vs-httpbin.yaml)\n`);
    const before = await curl(`${HTTPBIN}/teapot`);
    const t0 = Date.now();
    await writeConfig(r, 'cluster-1', 'vs-httpbin.yaml', CENTRAL_VS);
    const reached = await until(async () => isTeapot(await curl(`${HTTPBIN}/teapot`)), PUSH_WAIT_MS, 50);
    check(reached, `cluster-2 routing changed: /teapot was ${short(before)}, now ${short(await curl(`${HTTPBIN}/teapot`))} (${Date.now() - t0} ms after the write, across the ${WAN_DELAY_MS} ms WAN)`);

    say(`\n3. From cluster-1: curl -x http://${sleep1.ip}:15001 ${HTTPBIN}/status/418 (through both east-west gateways)\n`);
    await until(async () => isTeapot(await curl(`${HTTPBIN}/status/418`, sleep1)), PUSH_WAIT_MS);
    check(isTeapot(await curl(`${HTTPBIN}/status/418`, sleep1)), `cluster-1 reaches cluster-2's httpbin: the remote control plane exported it to the central one`);

    say(`\n4. Asymmetric discovery: cluster-2 → cluster-1's helloworld\n`);
    const hello = 'http://helloworld.default.svc.cluster.local:5000/hello';
    const blocked = await curl(hello);
    check(blocked.status !== 200, `before: ${short(blocked)} (cluster-2 does not see the central cluster's services)`);
    const mesh1 = clusterConfig(r.topo, r.topo.clusters[0]!)['mesh.yaml']!;
    await writeConfig(r, 'cluster-1', 'mesh.yaml', `${mesh1}  remoteClustersSeeCentral: true\n`);
    await until(async () => (await curl(hello)).status === 200, PUSH_WAIT_MS);
    const open = await curl(hello);
    check(open.status === 200 && open.body.startsWith('Hello version: v1'), `after remoteClustersSeeCentral: true in cluster-1's MeshConfig: ${short(open)}`);

    say('\n   isle status\n');
    const planes = await Promise.all([C1.debug, ...REPLICAS.map((x) => x.debug)].map((d) => fetchPlane(`http://${d}`)));
    const text = formatStatus(planes);
    say(text.slice(Math.max(0, text.indexOf('CONTROL PLANE   ROLE'))).replace(/^/gm, '   ').replace(/ +$/gm, ''));
    const overridden = planes.slice(1).some((p) => (p.overridden ?? []).some((o) => o.includes('local-vs.yaml')));
    check(overridden, "cluster-2's own VirtualService httpbin is reported as overridden by the central one, not applied");

    say('\n5. The central control plane stops\n');
    const central = r.sup.processes.find((p) => p.spec.name === 'cluster-1-control-plane' && !p.exited);
    if (central) {
      (r.expectedExits ??= new Set()).add(central);
      await r.sup.stopOne(central);
    }
    const during = await Promise.all(Array.from({ length: 10 }, () => curl(`${HTTPBIN}/teapot`)));
    check(during.every(isTeapot), `cluster-2 keeps serving with the central down: ${during.filter(isTeapot).length}/10 teapots (central config kept)`);

    say('\n6. One remote replica is killed while cluster-2 sends requests\n');
    const replica = r.sup.processes.find((p) => p.spec.name === 'cluster-2-control-plane-1' && !p.exited);
    const left = await fetchPlane(`http://${REPLICAS[1]!.debug}`);
    const answers: Answer[] = [];
    const load = (async () => {
      const end = Date.now() + 4000;
      while (Date.now() < end) answers.push(await curl(`${HTTPBIN}/status/418`));
    })();
    await new Promise((res) => setTimeout(res, 500));
    if (replica) {
      (r.expectedExits ??= new Set()).add(replica);
      await r.sup.stopOne(replica);
    }
    await load;
    const failed = answers.filter((a) => !isTeapot(a));
    check(answers.length > 0 && failed.length === 0, `${answers.length} requests during the kill, ${failed.length} failed${failed.length ? ` (${[...new Set(failed.map(short))].join('; ')})` : ''}`);
    const moved = await until(async () => (await fetchPlane(`http://${REPLICAS[1]!.debug}`)).proxies.length >= 3, 10_000);
    check(moved, `cluster-2's proxies reconnected to the other replica (${(await fetchPlane(`http://${REPLICAS[1]!.debug}`)).proxies.length} connected, ${left.proxies.length} before the kill)`);
    return ok;
  },
};
