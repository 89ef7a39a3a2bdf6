/**
 * `isle demo --scenario authz` (seed 000's two clusters on two networks, AuthorizationPolicy):
 * the same policies are written into both clusters' config directories, and sleep in each
 * cluster calls helloworld, whose v1 is in cluster-1 and v2 in cluster-2:
 *
 * 1. allow-nothing (`spec: {}`): every request is refused, 403 `RBAC: access denied`.
 * 2. allow by principal `cluster.local/ns/default/sa/sleep`: both versions answer both sleeps.
 *    A call that crosses networks goes through the other cluster's east-west gateway (SNI
 *    passthrough, mTLS end to end), so the principal the destination sidecar sees is the calling
 *    sleep's own SPIFFE id, not the gateway's: otherwise this step would still be refused.
 * 3. deny by path `/admin`: /hello keeps working everywhere, /admin is refused everywhere.
 */
import type { DemoTopology, DemoWorkload } from '../topology.js';
import { describe as describeAnswers, mark, requests, until, workload, writeConfig, type Scenario } from './common.js';
import type { Running } from '../running.js';
import { versionsOf, type Answer } from '../verify.js';

const TOPOLOGY: DemoTopology = {
  clusters: [
    { name: 'cluster-1', network: 'network1', region: 'region1', zone: 'zone1', controlPlane: '127.15.1.1:15012', debug: '127.15.1.1:15014', gatewayIp: '127.15.1.255' },
    { name: 'cluster-2', network: 'network2', region: 'region2', zone: 'zone1', controlPlane: '127.15.2.1:15012', debug: '127.15.2.1:15014', gatewayIp: '127.15.2.255' },
  ],
  workloads: [
    { cluster: 'cluster-1', name: 'helloworld-v1', app: 'helloworld', version: 'v1', namespace: 'default', serviceAccount: 'helloworld', ip: '127.15.1.10', port: 5000 },
    { cluster: 'cluster-2', name: 'helloworld-v2', app: 'helloworld', version: 'v2', namespace: 'default', serviceAccount: 'helloworld', ip: '127.15.2.10', port: 5000 },
    { cluster: 'cluster-1', name: 'sleep', app: 'sleep', namespace: 'default', serviceAccount: 'sleep', ip: '127.15.1.20' },
    { cluster: 'cluster-2', name: 'sleep', app: 'sleep', namespace: 'default', serviceAccount: 'sleep', ip: '127.15.2.20' },
  ],
};

const PUSH_WAIT_MS = 20_000;
const N = 12;
const URL = 'http://helloworld.default.svc.cluster.local:5000';

const ALLOW_NOTHING = `# Istio's allow-nothing: an ALLOW policy without rules matches nothing, so nothing is allowed.
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: default
spec: {}
`;

const ALLOW_SLEEP = `# Allow sleep's identity (its SPIFFE id, from the peer certificate), whichever cluster it calls from.
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-sleep
  namespace: default
spec:
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
`;

const DENY_ADMIN = `# DENY is evaluated before ALLOW: /admin is refused even to sleep.
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-admin
  namespace: default
spec:
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin", "/admin/*"]
`;

const denied = (a: readonly Answer[]) => a.length > 0 && a.every((x) => x.status === 403 && x.body === 'RBAC: access denied');

export const authz: Scenario = {
  name: 'authz',
  seed: 'seed 000',
  topology: TOPOLOGY,
  config: () => ({}),
  verify: async (r: Running, say) => {
    const sleeps: DemoWorkload[] = [workload(r, 'cluster-1', 'sleep'), workload(r, 'cluster-2', 'sleep')];
    let ok = true;
    const check = (cond: boolean, what: string) => {
      ok &&= cond;
      say(`  ${mark(cond)} ${what}\n`);
    };
    const both = (a: readonly Answer[]) => {
      const v = versionsOf(a);
      return a.every((x) => x.status === 200) && v.has('v1') && v.has('v2');
    };
    const everywhere = async (path: string, pred: (a: readonly Answer[]) => boolean) => {
      for (const s of sleeps) if (!pred(await requests(s, N, `${URL}${path}`))) return false;
      return true;
    };
    const show = async (path: string, pred: (a: readonly Answer[]) => boolean, want: string) => {
      for (const s of sleeps) {
        const a = await requests(s, N, `${URL}${path}`);
        check(pred(a), `sleep in ${s.cluster} → GET ${path}: ${describeAnswers(a)}   (want ${want})`);
      }
    };
    const write = async (file: string, text: string) => {
      for (const c of r.topo.clusters) await writeConfig(r, c.name, file, text);
    };

    say('\nsleep in each cluster calls helloworld (v1 in cluster-1, v2 in cluster-2; the other cluster through its east-west gateway).\n');
    check(await until(() => everywhere('/hello', both), 60_000), 'before any policy: both sleeps reach v1 and v2');

    say(`\n1. allow-nothing: wrote authz-allow-nothing.yaml into ${r.topo.clusters.map((c) => `${r.dir}/${c.name}`).join(' and ')}\n`);
    await write('authz-allow-nothing.yaml', ALLOW_NOTHING);
    await until(() => everywhere('/hello', denied), PUSH_WAIT_MS);
    await show('/hello', denied, '403 RBAC: access denied from every version');

    say('\n2. allow by principal cluster.local/ns/default/sa/sleep (authz-allow-sleep.yaml, both clusters)\n');
    await write('authz-allow-sleep.yaml', ALLOW_SLEEP);
    await until(() => everywhere('/hello', both), PUSH_WAIT_MS);
    await show('/hello', both, 'v1 and v2 answer: the cross-cluster caller is seen as sleep, not as the gateway');

    say('\n3. deny by path /admin (authz-deny-admin.yaml, both clusters): DENY before ALLOW\n');
    await write('authz-deny-admin.yaml', DENY_ADMIN);
    await until(() => everywhere('/admin', denied), PUSH_WAIT_MS);
    await show('/admin', denied, '403 from every version');
    await show('/hello', both, 'still v1 and v2');
    return ok;
  },
};
