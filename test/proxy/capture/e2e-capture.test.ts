/**
 * Transparent capture end to end, in network namespaces this test creates: a control plane, a
 * sleep workload and a helloworld workload (HTTP on 5000, TCP echo on 9000), each sidecar running
 * `isle proxy --capture`, and an external server the mesh does not know. From the sleep namespace,
 * plain clients (no proxy settings) reach the services by their addresses: HTTP through the HCM
 * with mTLS (the app sees the caller's SPIFFE id), TCP through mTLS too; the unknown server passes
 * through under ALLOW_ANY and is refused under REGISTRY_ONLY; TLS sent to the HTTP port fails
 * fast; the rules are gone once the sidecar exits.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { makeMesh, MESH_YAML, tempDir, waitFor, type Mesh } from '../helpers.js';
import { workloadGroupYaml } from '../../helpers/config.js';
import { cliEntry } from '../../helpers/paths.js';
import { captureUnsupported, NsProcess, Topology } from './netns.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'child.js');
const CP = '10.70.1.1';
const HELLO = '10.70.1.10';
const SLEEP = '10.70.1.20';
const EXT = '10.70.1.30';
const HELLO_VIP = '10.96.70.10';
const ECHO_VIP = '10.96.70.11';

const SERVICES = `apiVersion: v1
kind: Service
metadata: {name: helloworld, namespace: default}
spec:
  clusterIP: ${HELLO_VIP}
  selector: {app: helloworld}
  ports: [{name: http, port: 5000}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  clusterIP: ${ECHO_VIP}
  selector: {app: helloworld}
  ports: [{name: tcp-echo, port: 9000}]
`;

const why = await captureUnsupported();
if (why) process.stdout.write(`# skipping capture end-to-end tests: ${why}\n`);

describe('transparent capture end to end', { skip: why }, () => {
  const topo = new Topology('e');
  const procs: NsProcess[] = [];
  let mesh: Mesh;
  let dir: string;
  let ns: Record<'cp' | 'hello' | 'sleep' | 'ext', string>;
  let sleepProxy: NsProcess;

  const exec = (where: string, cmd: string, args: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) =>
      execFile('ip', ['netns', 'exec', where, cmd, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      }),
    );
  const start = (where: string, args: string[], node = true): NsProcess => {
    const p = new NsProcess(where, node ? process.execPath : args[0]!, node ? args : args.slice(1));
    procs.push(p);
    return p;
  };
  const proxy = (where: string, ip: string, sa: string, labels: string, extra: string[] = []): NsProcess =>
    start(where, [
      cliEntry(), 'proxy', '--control-plane', `${CP}:15012`, '--token', mesh.token('default', sa), '--ca-bundle', mesh.rootFile,
      '--ip', ip, '--namespace', 'default', '--service-account', sa, '--labels', labels, '--network', 'network1',
      '--admin', '127.0.0.1:15000', '--health', '127.0.0.1:15021', '--log-level', 'warn', '--drain-timeout', '1s', '--capture', ...extra,
    ]);
  const startCp = (): NsProcess => start(ns.cp, [cliEntry(), 'control-plane', '--config', dir, '--ca', mesh.caDir, '--listen', `${CP}:15012`, '--debug-listen', '127.0.0.1:0', '--log-level', 'warn']);
  const connect = async (host: string, port: number): Promise<string> => (await exec(ns.sleep, process.execPath, [CHILD, 'connect', host, String(port)])).stdout.trim();
  const sleepStats = async (): Promise<string> => (await exec(ns.sleep, 'curl', ['-s', 'http://127.0.0.1:15000/stats/prometheus'])).stdout;

  before(async () => {
    await topo.create();
    ns = {
      cp: await topo.add('cp', CP),
      hello: await topo.add('hello', HELLO),
      sleep: await topo.add('sleep', SLEEP),
      ext: await topo.add('ext', EXT),
    };
    // `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf: the app asks 127.0.0.1, port 53 is
    // captured to the sidecar's DNS proxy.
    mkdirSync(`/etc/netns/${ns.sleep}`, { recursive: true });
    writeFileSync(`/etc/netns/${ns.sleep}/resolv.conf`, 'nameserver 127.0.0.1\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:2 attempts:1\n');
    mesh = await makeMesh();
    dir = tempDir('isle-cap-config-');
    writeFileSync(join(dir, 'mesh.yaml'), MESH_YAML);
    writeFileSync(join(dir, 'services.yaml'), SERVICES);
    writeFileSync(join(dir, 'groups.yaml'), [
      workloadGroupYaml('helloworld', 'helloworld', { app: 'helloworld', version: 'v1' }, { addresses: ['10.70.0.0/16'] }),
      workloadGroupYaml('sleep', 'sleep', { app: 'sleep' }, { addresses: ['10.70.0.0/16'] }),
    ].join('---\n'));
    const cp = startCp();
    await cp.waitFor(/xds\+ca mtls/);
    const apps = [
      start(ns.hello, [CHILD, 'http-server', '18080', 'helloworld', '127.0.0.1']),
      start(ns.hello, [CHILD, 'echo-server', '19000', '127.0.0.1']),
      start(ns.ext, [CHILD, 'echo-server', '7777']),
    ];
    await Promise.all(apps.map((a) => a.waitFor(/listening/)));
    const hello = proxy(ns.hello, HELLO, 'helloworld', 'app=helloworld,version=v1', ['--app-port', '5000=18080', '--app-port', '9000=19000']);
    sleepProxy = proxy(ns.sleep, SLEEP, 'sleep', 'app=sleep');
    await Promise.all([hello.waitFor(/^ready$/m), sleepProxy.waitFor(/^ready$/m)]);
  });

  after(async () => {
    for (const p of procs.reverse()) await p.stop('SIGKILL', 2000);
    await topo.destroy();
    if (ns?.sleep) rmSync(`/etc/netns/${ns.sleep}`, { recursive: true, force: true });
  });

  test('plain HTTP to the service address goes through both sidecars with mTLS', async () => {
    const r = await waitFor('HTTP through capture', async () => {
      const c = await exec(ns.sleep, 'curl', ['-sS', '--max-time', '5', `http://${HELLO_VIP}:5000/hello`]);
      return c.code === 0 && c.stdout.includes('"app":"helloworld"') ? c.stdout : undefined;
    });
    const body = JSON.parse(r) as { host: string; xfcc: string | null };
    assert.equal(body.host, `${HELLO_VIP}:5000`);
    assert.match(body.xfcc ?? '', /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
  });

  test('plain `curl http://helloworld:5000/hello`: the name resolves through the captured DNS', async () => {
    const r = await waitFor('curl by name', async () => {
      const c = await exec(ns.sleep, 'curl', ['-sS', '--max-time', '5', 'http://helloworld:5000/hello']);
      return c.code === 0 && c.stdout.includes('"app":"helloworld"') ? c.stdout : undefined;
    });
    assert.match(r, /"host":"helloworld:5000"/);
    assert.match(r, /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
  });

  test("DNS to a resolver elsewhere (a pod's kube-dns 10.96.0.10) is captured and answered as that resolver", async () => {
    // The UDP answer must come back from the address the app asked, or the app drops it: the
    // DNS proxy answers from 127.0.0.1, which conntrack maps back to 10.96.0.10:53.
    const script = "const r=new (require('dns').Resolver)({timeout:3000,tries:1});r.setServers(['10.96.0.10']);r.resolve4('helloworld.default.svc.cluster.local',(e,a)=>{console.log(e?e.code:a.join(','))})";
    const r = await exec(ns.sleep, process.execPath, ['-e', script]);
    assert.equal(r.stdout.trim(), HELLO_VIP, r.stderr);
  });

  test('plain TCP to a TCP service goes through the sidecars (mTLS upstream)', async () => {
    assert.equal(await waitFor('TCP echo', async () => ((await connect(ECHO_VIP, 9000)) === 'reply ping' ? 'reply ping' : undefined)), 'reply ping');
    const stats = await sleepStats();
    assert.match(stats, /envoy_cluster_upstream_cx_total\{cluster_name="outbound\|9000\|\|echo\.default\.svc\.cluster\.local"\} [1-9]/);
    assert.match(stats, /istio_tcp_connections_opened_total\{[^}]*connection_security_policy="mutual_tls"[^}]*\} [1-9]/);
  });

  test('TLS sent to the HTTP port fails fast instead of hanging', async () => {
    const r = await exec(ns.sleep, 'curl', ['-sS', '-k', '--max-time', '8', `https://${HELLO_VIP}:5000/`]);
    assert.notEqual(r.code, 0);
    assert.notEqual(r.code, 28, `curl timed out: ${r.stderr}`);
  });

  test('unknown destinations: ALLOW_ANY passes through, REGISTRY_ONLY refuses and counts', async () => {
    assert.equal(await connect(EXT, 7777), 'reply ping');
    writeFileSync(join(dir, 'mesh.yaml'), MESH_YAML + '  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n');
    // Accepted by the sidecar (the client cannot tell before), then closed without a byte.
    assert.equal(await waitFor('REGISTRY_ONLY applied', async () => ((await connect(EXT, 7777)) === 'closed' ? 'closed' : undefined)), 'closed');
    assert.match(await sleepStats(), /isle_listener_downstream_cx_rejected_total\{[^}]*reason="registry_only"[^}]*\} [1-9]/);
    // Mesh services still work.
    assert.equal(await connect(ECHO_VIP, 9000), 'reply ping');
  });

  test('the rules are removed when the sidecar exits', async () => {
    const isle = async (): Promise<string[]> => (await exec(ns.sleep, 'iptables', ['-t', 'nat', '-S'])).stdout.split('\n').filter((l) => l.includes('ISLE_'));
    assert.ok((await isle()).length > 5);
    assert.equal(await sleepProxy.stop('SIGTERM'), 0);
    assert.match(sleepProxy.out, /stopped/);
    assert.deepEqual(await isle(), []);
  });
});
