/**
 * `isle demo --scenario strict-mtls` (seed 002, PeerAuthentication): a plaintext client (plain
 * HTTP straight to a helloworld sidecar's inbound port, no sidecar of its own) is accepted under
 * the default PERMISSIVE, refused under a mesh-wide STRICT, accepted again when that is removed,
 * and refused under a namespace STRICT in `default` while a workload in namespace `other` still
 * accepts it. Clients with a sidecar (mTLS) keep working throughout. Each change is a file written
 * into (or removed from) the live config directory.
 */
import type { DemoTopology, DemoWorkload } from '../topology.js';
import { describe, mark, plaintext, removeConfig, requests, serviceYaml, until, workload, writeConfig, type Scenario } from './common.js';
import type { Running } from '../running.js';
import { versionsOf } from '../verify.js';

const TOPOLOGY: DemoTopology = {
  clusters: [{ name: 'cluster-1', network: 'network1', region: 'region1', zone: 'zone1', controlPlane: '127.11.0.1:15012', debug: '127.11.0.1:15014', gatewayIp: '127.11.255.1' }],
  workloads: [
    { cluster: 'cluster-1', name: 'helloworld-v1', app: 'helloworld', version: 'v1', namespace: 'default', serviceAccount: 'helloworld', ip: '127.11.0.10', port: 5000 },
    { cluster: 'cluster-1', name: 'helloworld-other', app: 'helloworld', version: 'other', namespace: 'other', serviceAccount: 'helloworld', ip: '127.11.0.11', port: 5000 },
    { cluster: 'cluster-1', name: 'sleep', app: 'sleep', namespace: 'default', serviceAccount: 'sleep', ip: '127.11.0.20' },
  ],
};

const PUSH_WAIT_MS = 15_000;

function strict(namespace: string, scope: string): string {
  return `# Seed 002: ${scope} strict mTLS.
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: ${namespace}
spec:
  mtls:
    mode: STRICT
`;
}

async function accepts(w: DemoWorkload): Promise<boolean> {
  const a = await plaintext(w.ip, w.port!);
  return a.status === 200 && a.body.startsWith('Hello version:');
}

export const strictMtls: Scenario = {
  name: 'strict-mtls',
  seed: 'seed 002',
  topology: TOPOLOGY,
  config: () => ({
    'remote-clusters.yaml': '',
    'helloworld.yaml': serviceYaml('default') + '---\n' + serviceYaml('other'),
  }),
  verify: async (r: Running, say) => {
    const v1 = workload(r, 'cluster-1', 'helloworld-v1');
    const other = workload(r, 'cluster-1', 'helloworld-other');
    const sleep = workload(r, 'cluster-1', 'sleep');
    let ok = true;
    const check = (cond: boolean, what: string) => {
      ok &&= cond;
      say(`  ${mark(cond)} ${what}\n`);
    };
    const plain = async (w: DemoWorkload) => {
      const a = await plaintext(w.ip, w.port!);
      return a.status === 200 ? a.body : a.status ? `HTTP ${a.status}` : `refused (${a.body.replace(/^error: /, '')})`;
    };
    const mtls = async (): Promise<boolean> => {
      const a = await requests(sleep, 5, 'http://helloworld.default.svc.cluster.local:5000/hello');
      const b = await requests(sleep, 5, 'http://helloworld.other.svc.cluster.local:5000/hello');
      const good = versionsOf(a).get('v1') === 5 && versionsOf(b).get('other') === 5;
      say(`  ${mark(good)} mTLS through sleep's sidecar: default/helloworld ${describe(a)}; other/helloworld ${describe(b)}\n`);
      ok &&= good;
      return good;
    };
    const step = async (title: string, want: { v1: boolean; other: boolean }) => {
      say(`\n${title}\n`);
      const reached = await until(async () => (await accepts(v1)) === want.v1 && (await accepts(other)) === want.other, PUSH_WAIT_MS);
      check(reached && (await accepts(v1)) === want.v1, `plaintext curl http://${v1.ip}:${v1.port}/hello (default/helloworld) → ${await plain(v1)}   (want ${want.v1 ? 'accepted' : 'refused'})`);
      check(reached && (await accepts(other)) === want.other, `plaintext curl http://${other.ip}:${other.port}/hello (other/helloworld) → ${await plain(other)}   (want ${want.other ? 'accepted' : 'refused'})`);
      await mtls();
    };
    const cfg = 'cluster-1';
    say(`\nSleep's sidecar (${sleep.ip}:15001) speaks mTLS; the plaintext client is a bare HTTP request to the workload's address.\n`);
    await until(async () => versionsOf(await requests(sleep, 2, 'http://helloworld.other.svc.cluster.local:5000/hello')).has('other'), 20_000);
    await step('1. default (no PeerAuthentication): PERMISSIVE', { v1: true, other: true });
    await writeConfig(r, cfg, 'peer-authentication-mesh.yaml', strict('istio-system', 'mesh-wide'));
    await step(`2. mesh-wide STRICT: wrote ${r.dir}/${cfg}/peer-authentication-mesh.yaml (PeerAuthentication istio-system/default)`, { v1: false, other: false });
    await removeConfig(r, cfg, 'peer-authentication-mesh.yaml');
    await step('3. mesh-wide STRICT removed: PERMISSIVE again', { v1: true, other: true });
    await writeConfig(r, cfg, 'peer-authentication-default.yaml', strict('default', 'namespace `default`'));
    await step(`4. namespace STRICT: wrote ${r.dir}/${cfg}/peer-authentication-default.yaml (PeerAuthentication default/default)`, { v1: false, other: true });
    return ok;
  },
};
