/**
 * Issue 11 §1, the attack as found: a process holding only the `sleep` certificate connects to the
 * control plane claiming `LABELS {app: helloworld}` and its own address, with a fake helloworld
 * behind it. Real control plane, real sidecars, real apps. The impostor must receive none of the
 * requests sent to helloworld, and its identity must be in no SAN list.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configDir, configDump, curlProxy, getText, makeMesh, startApp, startControlPlane, startProxy, waitFor, workloadGroupYaml, type Child, type Mesh, type ProxyChild } from '../proxy/helpers.js';

const HELLO_IP = '127.1.88.10';
const SLEEP_IP = '127.1.88.20';
const IMPOSTOR_IP = '127.1.88.66';
const IMPOSTOR2_IP = '127.1.88.67';
const HELLO_CLUSTER = 'outbound|5000||helloworld.default.svc.cluster.local';

let mesh: Mesh;
let cp: Child;
const proxies: ProxyChild[] = [];

// Address proof is not what stops the impostor here: every group allows all loopback addresses,
// so only the identity check can keep it out.
const GROUPS = [
  workloadGroupYaml('helloworld', 'helloworld', { app: 'helloworld', version: 'v1' }, { addresses: ['127.0.0.0/8'] }),
  workloadGroupYaml('sleep', 'sleep', { app: 'sleep' }, { addresses: ['127.0.0.0/8'] }),
].join('---\n');

before(async () => {
  mesh = await makeMesh();
  const started = await startControlPlane(mesh, configDir({}, GROUPS));
  cp = started.child;
  const real = await startApp('helloworld-real');
  const fake = await startApp('IMPOSTOR');
  proxies.push(
    ...(await Promise.all([
      startProxy({ mesh, controlPlane: started.address, ip: HELLO_IP, serviceAccount: 'helloworld', labels: { app: 'helloworld' }, appPorts: { 5000: real.port } }),
      startProxy({ mesh, controlPlane: started.address, ip: SLEEP_IP, serviceAccount: 'sleep', labels: { app: 'sleep' } }),
      // The attack of the issue: sleep's certificate, helloworld's labels, its own address.
      startProxy({ mesh, controlPlane: started.address, ip: IMPOSTOR_IP, serviceAccount: 'sleep', labels: { app: 'helloworld', version: 'v1' }, appPorts: { 5000: fake.port } }),
      // The same, naming the helloworld WorkloadGroup outright.
      startProxy({ mesh, controlPlane: started.address, ip: IMPOSTOR2_IP, serviceAccount: 'sleep', labels: { app: 'helloworld' }, appPorts: { 5000: fake.port }, extra: ['--workload-group', 'helloworld'] }),
    ])),
  );
});

after(() => {
  for (const p of proxies) p.child.kill('SIGKILL');
  cp?.kill('SIGKILL');
});

describe('registration bound to identity', () => {
  test('a sleep-certificate proxy claiming app=helloworld receives no helloworld traffic and is in no SAN list', async () => {
    const [, sleep, impostor] = proxies;
    await waitFor('helloworld reachable', async () => (await curlProxy(`${SLEEP_IP}:15001`, 'http://helloworld:5000/')).status === 200);
    const answers: string[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await curlProxy(`${SLEEP_IP}:15001`, 'http://helloworld:5000/');
      assert.equal(r.status, 200, r.body);
      answers.push((JSON.parse(r.body) as { app: string }).app);
    }
    assert.deepEqual([...new Set(answers)], ['helloworld-real'], 'no request reached the impostor');

    const clusters = await getText(`${sleep!.admin}/clusters`);
    const hwLines = clusters.text.split('\n').filter((l) => l.startsWith(`${HELLO_CLUSTER}::`) && /::health_flags::/.test(l));
    assert.deepEqual(hwLines.map((l) => l.split('::')[1]), [`${HELLO_IP}:5000`]);

    // The cluster as Envoy's ClustersConfigDump shows it: its SAN matchers are what sleep accepts.
    const dump = await configDump(sleep!);
    const clustersDump = (dump['configs'] as { '@type': string; dynamic_active_clusters?: { cluster: { name: string } }[] }[]).find((c) => c['@type'].endsWith('ClustersConfigDump'));
    const cds = clustersDump?.dynamic_active_clusters?.find((c) => c.cluster.name === HELLO_CLUSTER)?.cluster;
    assert.ok(cds, 'the helloworld cluster is in the config dump');
    const text = JSON.stringify(cds);
    assert.match(text, /spiffe:\/\/cluster\.local\/ns\/default\/sa\/helloworld/);
    assert.doesNotMatch(text, /sa\/sleep/, 'the impostor identity is not accepted for helloworld');

    // The impostor still got config (it is a client like any other), but no inbound listener for helloworld.
    assert.doesNotMatch(impostor!.child.stdout, /inbound 127\.1\.88\.66:5000/);
    assert.doesNotMatch(proxies[3]!.child.stdout, /inbound 127\.1\.88\.67:5000/);
    assert.match(cp.stderr + cp.stdout, /WorkloadGroup default\/helloworld is for service account helloworld, the proxy's certificate is for sleep/);
  });
});
