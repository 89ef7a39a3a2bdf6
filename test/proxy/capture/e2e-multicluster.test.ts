/**
 * TCP across clusters with capture: two control planes (cluster-1/network1, cluster-2/network2,
 * one root CA) peered for discovery, a TCP echo service whose only endpoint is in cluster-2 behind
 * its east-west gateway, and a sleep workload in cluster-1. Everything runs in network namespaces
 * this test creates; both sidecars run `--capture`. A plain TCP client in the sleep namespace
 * dials the service address: its sidecar carries the bytes over mTLS to cluster-2's gateway
 * (SNI passthrough on 15443), which hands them to the echo sidecar.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { caFiles, createIntermediate, writeFilesAtomic, type IssuingCa } from '../../../src/pki/index.js';
import { createToken } from '../../../src/mesh/token.js';
import { makeMesh, tempDir, waitFor, type Mesh } from '../helpers.js';
import { clusterMeshYaml, workloadGroupYaml } from '../../helpers/config.js';
import { cliEntry } from '../../helpers/paths.js';
import { captureUnsupported, NsProcess, Topology } from './netns.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'child.js');
const CP1 = '10.70.2.1';
const CP2 = '10.70.2.2';
const GW2 = '10.70.2.3';
const ECHO = '10.70.2.10';
const SLEEP = '10.70.2.20';
const ECHO_VIP = '10.96.71.11';

const ECHO_SVC = `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  clusterIP: ${ECHO_VIP}
  selector: {app: echo}
  ports: [{name: tcp-echo, port: 9000}]
`;

const remote = (name: string, address: string, network: string): string => `apiVersion: mesh.isle.dev/v1alpha1
kind: RemoteCluster
metadata: {name: ${name}}
spec: {address: "${address}", network: ${network}, discoveryOnly: true}
`;

const why = await captureUnsupported();
if (why) process.stdout.write(`# skipping capture multi-cluster test: ${why}\n`);

describe('TCP across clusters through the east-west gateway, with capture', { skip: why }, () => {
  const topo = new Topology('x');
  const procs: NsProcess[] = [];
  let mesh: Mesh;
  let ca2: IssuingCa;
  let ns: Record<'cp1' | 'cp2' | 'gw2' | 'echo' | 'sleep', string>;
  let gw: NsProcess;

  const start = (where: string, args: string[]): NsProcess => {
    const p = new NsProcess(where, process.execPath, args);
    procs.push(p);
    return p;
  };
  const tokenFile = (ca: IssuingCa, cluster: string, namespace: string, sa: string): string => {
    const f = join(tempDir('isle-capx-tok-'), 'token');
    writeFileSync(f, createToken({ ca, namespace, serviceAccount: sa, cluster, ttlSeconds: 3600 }).token + '\n', { mode: 0o600 });
    return f;
  };
  const proxyArgs = (cp: string, token: string, ip: string, namespace: string, sa: string, network: string, extra: string[]): string[] => [
    cliEntry(), 'proxy', '--control-plane', `${cp}:15012`, '--token', token, '--ca-bundle', mesh.rootFile, '--ip', ip, '--namespace', namespace,
    '--service-account', sa, '--network', network, '--admin', '127.0.0.1:15000', '--health', '127.0.0.1:15021', '--log-level', 'warn', '--drain-timeout', '1s', ...extra,
  ];

  before(async () => {
    await topo.create();
    ns = {
      cp1: await topo.add('cp1', CP1),
      cp2: await topo.add('cp2', CP2),
      gw2: await topo.add('gw2', GW2),
      echo: await topo.add('echo', ECHO),
      sleep: await topo.add('sleep', SLEEP),
    };
    mesh = await makeMesh();
    ca2 = await createIntermediate({ root: mesh.root, cluster: 'cluster-2' });
    const ca2Dir = tempDir('isle-capx-ca2-');
    await writeFilesAtomic(ca2Dir, caFiles(ca2), { force: true });
    const dirs = [tempDir('isle-capx-c1-'), tempDir('isle-capx-c2-')];
    for (const [i, d] of dirs.entries()) {
      writeFileSync(join(d, 'mesh.yaml'), clusterMeshYaml(`cluster-${i + 1}`, `network${i + 1}`));
      writeFileSync(join(d, 'echo.yaml'), ECHO_SVC);
      writeFileSync(join(d, 'groups.yaml'), [
        workloadGroupYaml('echo', 'echo', { app: 'echo' }, { addresses: ['10.70.0.0/16'] }),
        workloadGroupYaml('sleep', 'sleep', { app: 'sleep' }, { addresses: ['10.70.0.0/16'] }),
      ].join('---\n'));
    }
    writeFileSync(join(dirs[0]!, 'cluster-2.yaml'), remote('cluster-2', `${CP2}:15012`, 'network2'));
    writeFileSync(join(dirs[1]!, 'cluster-1.yaml'), remote('cluster-1', `${CP1}:15012`, 'network1'));
    const cps = [
      start(ns.cp1, [cliEntry(), 'control-plane', '--config', dirs[0]!, '--ca', mesh.caDir, '--listen', `${CP1}:15012`, '--debug-listen', '127.0.0.1:0', '--log-level', 'warn']),
      start(ns.cp2, [cliEntry(), 'control-plane', '--config', dirs[1]!, '--ca', ca2Dir, '--listen', `${CP2}:15012`, '--debug-listen', '127.0.0.1:0', '--east-west-gateway', `${GW2}:15443`, '--log-level', 'warn']),
    ];
    await Promise.all(cps.map((c) => c.waitFor(/xds\+ca mtls/)));
    const app = start(ns.echo, [CHILD, 'echo-server', '19000', '127.0.0.1']);
    await app.waitFor(/listening/);
    const echo = start(ns.echo, proxyArgs(CP2, tokenFile(ca2, 'cluster-2', 'default', 'echo'), ECHO, 'default', 'echo', 'network2', ['--labels', 'app=echo', '--app-port', '9000=19000', '--capture']));
    gw = start(ns.gw2, proxyArgs(CP2, tokenFile(ca2, 'cluster-2', 'istio-system', 'istio-eastwestgateway'), GW2, 'istio-system', 'istio-eastwestgateway', 'network2', ['--mode', 'gateway']));
    const sleep = start(ns.sleep, proxyArgs(CP1, mesh.token('default', 'sleep'), SLEEP, 'default', 'sleep', 'network1', ['--labels', 'app=sleep', '--capture']));
    await Promise.all([echo.waitFor(/^ready$/m), sleep.waitFor(/^ready$/m), gw.waitFor(/^listener \S+ gateway /m)]);
  });

  after(async () => {
    for (const p of procs.reverse()) await p.stop('SIGKILL', 2000);
    await topo.destroy();
  });

  test('a plain TCP client in cluster-1 reaches the echo service in cluster-2', async () => {
    const connect = (): Promise<string> =>
      new Promise((resolve) =>
        execFile('ip', ['netns', 'exec', ns.sleep, process.execPath, CHILD, 'connect', ECHO_VIP, '9000'], { timeout: 15_000 }, (_e, stdout) => resolve(String(stdout).trim())),
      );
    let last = '';
    await waitFor('echo through the gateway', async () => ((last = await connect()) === 'reply ping' ? true : undefined), 30_000, 500).catch((e: Error) => {
      throw new Error(`${e.message}; last: ${last}`);
    });
    const gwStats = await new Promise<string>((resolve) =>
      execFile('ip', ['netns', 'exec', ns.gw2, 'curl', '-s', 'http://127.0.0.1:15000/stats/prometheus'], (_e, stdout) => resolve(String(stdout))),
    );
    // The gateway saw the sidecar's mTLS SNI for the echo port, and did not terminate it.
    assert.match(gwStats, /isle_gateway_connections_total\{sni="outbound_\.9000_\._\.echo\.default\.svc\.cluster\.local"[^}]*\} [1-9]/);
  });
});
