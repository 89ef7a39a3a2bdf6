/**
 * VirtualService `tcp` matches on `destinationSubnets`, through the captured outbound path with
 * real processes in network namespaces this test creates (control plane, a sleep workload with
 * `isle proxy --capture`, a workload serving two TCP services behind its sidecar). A plain client
 * in the sleep namespace connects to the `echo` service's VIP and to its pod address: only the
 * pod address is in the route's subnet, so only that connection is sent to `alt` (ADR 0117).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { makeMesh, MESH_YAML, tempDir, waitFor, type Mesh } from '../helpers.js';
import { workloadGroupYaml } from '../../helpers/config.js';
import { cliEntry } from '../../helpers/paths.js';
import { captureUnsupported, NsProcess, Topology } from './netns.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'child.js');
const CP = '10.71.1.1';
const APP = '10.71.1.10';
const SLEEP = '10.71.1.20';
const ECHO_VIP = '10.96.71.11';
// IPv6 (ULA) on the same links: an address the mesh does not know, reached through the sidecar.
const APP6 = 'fd00:71::10';
const SLEEP6 = 'fd00:71::20';
const ALT_VIP = '10.96.71.12';

// Both services are plain TCP ports (no HTTP chain): the bytes curl sends are routed as TCP.
const CONFIG = `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  clusterIP: ${ECHO_VIP}
  selector: {app: backend}
  ports: [{name: tcp-echo, port: 9000}]
---
apiVersion: v1
kind: Service
metadata: {name: alt, namespace: default}
spec:
  clusterIP: ${ALT_VIP}
  selector: {app: backend}
  ports: [{name: tcp-alt, port: 9001}]
`;

// Written once both sidecars run: a full push then carries the pod address (an endpoint-only push
// does not rebuild virtualOutbound's address matches; see the report of issue 14).
const VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  tcp:
  - match:
    - destinationSubnets: [${APP}/32]
    route:
    - destination: {host: alt, port: {number: 9001}}
  - route:
    - destination: {host: echo, port: {number: 9000}}
`;

const why = await captureUnsupported();
if (why) process.stdout.write(`# skipping destinationSubnets capture test: ${why}\n`);

describe('tcp destinationSubnets on captured outbound traffic', { skip: why }, () => {
  const topo = new Topology('ge');
  const procs: NsProcess[] = [];
  let mesh: Mesh;
  let ns: Record<'cp' | 'app' | 'sleep', string>;
  let dir: string;

  const exec = (where: string, cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) =>
      execFile('ip', ['netns', 'exec', where, cmd, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      }),
    );
  const start = (where: string, args: string[]): NsProcess => {
    const p = new NsProcess(where, process.execPath, args);
    procs.push(p);
    return p;
  };
  const proxy = (where: string, ip: string, sa: string, labels: string, extra: string[] = []): NsProcess =>
    start(where, [
      cliEntry(), 'proxy', '--control-plane', `${CP}:15012`, '--token', mesh.token('default', sa), '--ca-bundle', mesh.rootFile,
      '--ip', ip, '--namespace', 'default', '--service-account', sa, '--labels', labels, '--network', 'network1',
      '--admin', '127.0.0.1:15000', '--health', '127.0.0.1:15021', '--log-level', 'warn', '--drain-timeout', '1s', '--capture', ...extra,
    ]);
  /** Which backend answers a plain HTTP request sent to `host:port` (routed as TCP). */
  const backendAt = async (host: string, port: number): Promise<string | undefined> => {
    const r = await exec(ns.sleep, 'curl', ['-sS', '--max-time', '5', `http://${host}:${port}/`]);
    if (r.code !== 0) return undefined;
    try {
      return (JSON.parse(r.stdout) as { app: string }).app;
    } catch {
      return undefined;
    }
  };

  before(async () => {
    await topo.create();
    ns = { cp: await topo.add('cp', CP), app: await topo.add('app', APP), sleep: await topo.add('sleep', SLEEP) };
    mesh = await makeMesh();
    dir = tempDir('isle-ge-config-');
    writeFileSync(join(dir, 'mesh.yaml'), MESH_YAML);
    writeFileSync(join(dir, 'services.yaml'), CONFIG);
    writeFileSync(join(dir, 'groups.yaml'), [
      workloadGroupYaml('backend', 'backend', { app: 'backend' }, { addresses: ['10.71.0.0/16'] }),
      workloadGroupYaml('sleep', 'sleep', { app: 'sleep' }, { addresses: ['10.71.0.0/16'] }),
    ].join('---\n'));
    const cp = start(ns.cp, [cliEntry(), 'control-plane', '--config', dir, '--ca', mesh.caDir, '--listen', `${CP}:15012`, '--debug-listen', '127.0.0.1:0', '--log-level', 'warn']);
    await cp.waitFor(/xds\+ca mtls/);
    for (const [where, addr] of [[ns.app, APP6], [ns.sleep, SLEEP6]] as const) {
      const r = await exec(where, 'ip', ['-6', 'addr', 'add', `${addr}/64`, 'dev', 'eth0', 'nodad']);
      assert.equal(r.code, 0, r.stderr);
    }
    const apps = [
      start(ns.app, [CHILD, 'http-server', '19000', 'echo', '127.0.0.1']),
      start(ns.app, [CHILD, 'http-server', '19001', 'alt', '127.0.0.1']),
      start(ns.app, [CHILD, 'echo-server', '7777', '::']),
    ];
    await Promise.all(apps.map((a) => a.waitFor(/listening/)));
    const backend = proxy(ns.app, APP, 'backend', 'app=backend', ['--app-port', '9000=19000', '--app-port', '9001=19001']);
    const sleep = proxy(ns.sleep, SLEEP, 'sleep', 'app=sleep');
    await Promise.all([backend.waitFor(/^ready$/m), sleep.waitFor(/^ready$/m)]);
    writeFileSync(join(dir, 'vs.yaml'), VS);
  });

  after(async () => {
    for (const p of procs.reverse()) await p.stop('SIGKILL', 2000);
    await topo.destroy();
  });

  test('the VIP is outside the subnet: the catch-all route (echo)', async () => {
    assert.equal(await waitFor('echo by its VIP', async () => ((await backendAt(ECHO_VIP, 9000)) === 'echo' ? 'echo' : undefined), 30_000, 200), 'echo');
  });

  test('IPv6: ip6tables rules are installed and an IPv6 connection goes through the sidecar (passthrough)', async () => {
    const rules = await exec(ns.sleep, 'ip6tables', ['-w', '-t', 'nat', '-S']);
    assert.match(rules.stdout, /-A OUTPUT -p tcp -j ISLE_OUTPUT/);
    assert.match(rules.stdout, /-A ISLE_REDIRECT -p tcp -j REDIRECT --to-ports 15001/);
    const r = await exec(ns.sleep, process.execPath, [CHILD, 'connect', APP6, '7777']);
    assert.equal(r.stdout.trim(), 'reply ping');
    const stats = (await exec(ns.sleep, 'curl', ['-s', 'http://127.0.0.1:15000/stats/prometheus'])).stdout;
    assert.match(stats, /envoy_cluster_upstream_cx_total\{cluster_name="PassthroughCluster"\} [1-9]/);
  });

  test('the pod address is inside it: the subnet route (alt); alt by its own VIP is untouched', async () => {
    assert.equal(await waitFor('alt by the pod address', async () => ((await backendAt(APP, 9000)) === 'alt' ? 'alt' : undefined), 30_000, 200), 'alt');
    assert.equal(await backendAt(ALT_VIP, 9001), 'alt');
    // And the VIP still goes to echo afterwards (no chain was shared between the two).
    assert.equal(await backendAt(ECHO_VIP, 9000), 'echo');
  });
});
