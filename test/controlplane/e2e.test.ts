// End to end over real gRPC + TLS on 127.0.0.1: xDS authentication by client certificate, the
// token → CreateCertificate → ADS-over-mTLS flow, start-up errors, and `isle control-plane` as a
// real child process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { certServiceClientConstructor, requestCertificate } from '../../src/mesh/caclient.js';
import { ControlPlane } from '../../src/controlplane/controlplane.js';
import { createCsr, spiffeIdFromCert } from '../../src/pki/index.js';
import { runIsle } from '../helpers/cli.js';
import { cliEntry } from '../helpers/paths.js';
import { channel, configDir, getJson, inSync, meshPki, sidecarNode, SimProxy, startPlane, waitUntil, workloadCert, type Plane } from './helpers.js';

const closers: (() => void)[] = [];
after(() => {
  for (const c of closers) c();
});

function sim(protocol: 'sotw' | 'delta', ch: grpc.Client, node: ReturnType<typeof sidecarNode>): SimProxy {
  const p = new SimProxy(protocol, ch, node);
  closers.push(() => p.close());
  return p;
}

async function refused(p: SimProxy): Promise<grpc.StatusObject> {
  return (p.sotw ?? p.delta)!.status;
}

describe('xDS authentication on the mTLS port', { concurrency: true }, () => {
  let plane: Plane;
  before(async () => {
    plane = await startPlane({ plaintextListen: '127.0.0.1:0' });
  });

  it('a proxy with the workload certificate of default/sleep connects and syncs', async () => {
    const { ca, root } = await meshPki();
    const cert = await workloadCert(ca, 'default', 'sleep');
    const p = sim('delta', channel(plane.cp.addresses.grpc, { rootPem: root.certPem, cert }), sidecarNode(201));
    await waitUntil(() => inSync(plane.cp, p.id), 'sleep in sync');
  });

  it('a proxy claiming another service account than its certificate is refused with PERMISSION_DENIED', async () => {
    const { ca, root } = await meshPki();
    const cert = await workloadCert(ca, 'default', 'sleep');
    const p = sim('sotw', channel(plane.cp.addresses.grpc, { rootPem: root.certPem, cert }), sidecarNode(202, { serviceAccount: 'helloworld' }));
    const st = await refused(p);
    assert.equal(st.code, grpc.status.PERMISSION_DENIED);
    assert.match(st.details, /claims namespace default and service account helloworld .* client certificate is spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
    assert.equal(plane.cp.cache.get(p.id, 'type.googleapis.com/envoy.config.cluster.v3.Cluster'), undefined, 'no snapshot for a refused node');
  });

  it('a proxy without a client certificate is refused with PERMISSION_DENIED', async () => {
    const { root } = await meshPki();
    const p = sim('sotw', channel(plane.cp.addresses.grpc, { rootPem: root.certPem }), sidecarNode(203));
    const st = await refused(p);
    assert.equal(st.code, grpc.status.PERMISSION_DENIED);
    assert.match(st.details, /client certificate is required/);
  });

  it('a client of a foreign root cannot handshake; a foreign certificate is never taken as verified', async () => {
    const { foreignCa, foreignRoot, root } = await meshPki();
    const cert = await workloadCert(foreignCa, 'default', 'sleep');
    // Trusting only its own root, it cannot verify the control plane: the TLS handshake fails.
    const p = sim('sotw', channel(plane.cp.addresses.grpc, { rootPem: foreignRoot.certPem, cert }), sidecarNode(204));
    const st = await refused(p);
    assert.equal(st.code, grpc.status.UNAVAILABLE, st.details);
    // Trusting the mesh root but presenting the foreign certificate: the server asks for client
    // certificates without requiring them (the CA must serve token holders), so TLS completes,
    // but the certificate does not verify and the stream is refused.
    const q = sim('sotw', channel(plane.cp.addresses.grpc, { rootPem: root.certPem, cert }), sidecarNode(205));
    const st2 = await refused(q);
    assert.equal(st2.code, grpc.status.PERMISSION_DENIED);
    assert.match(st2.details, /verified client certificate is required/);
  });

  it('the plaintext loopback port trusts node metadata (tests and benchmarks only)', async () => {
    const p = sim('sotw', channel(plane.cp.addresses.plaintext!), sidecarNode(206, { namespace: 'other', serviceAccount: 'anyone' }));
    await waitUntil(() => inSync(plane.cp, p.id), 'plaintext proxy in sync');
    const reg = await getJson<{ shards: { endpoints: unknown[] }[]; services: unknown[] }>(`${plane.debugUrl}/debug/registryz`);
    assert.equal(reg.status, 200);
  });
});

describe('certificate flow end to end: isle token create → CreateCertificate on :15012 → ADS over mTLS', () => {
  it('a proxy with only a token gets its certificate and then its config', async () => {
    const { caDir, root } = await meshPki();
    const plane = await startPlane();
    const tok = await runIsle(['token', 'create', '--ca', caDir, '--namespace', 'default', '--service-account', 'sleep', '--cluster', 'cluster-1', '--ttl', '10m']);
    assert.equal(tok.code, 0, tok.stderr);
    const token = tok.stdout.trim();

    const Ctor = certServiceClientConstructor();
    const caClient = new Ctor(plane.cp.addresses.grpc, grpc.credentials.createSsl(Buffer.from(root.certPem)), {
      'grpc.ssl_target_name_override': 'isle-control-plane.cluster-1',
    });
    closers.push(() => caClient.close());
    const { csrPem, keyPem } = await createCsr({ identity: { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'sleep' } });
    const chain = await requestCertificate(caClient, { csrPem, token });
    assert.ok(chain.length >= 3, 'leaf, intermediate, root');
    assert.equal(spiffeIdFromCert(chain[0]!), 'spiffe://cluster.local/ns/default/sa/sleep');

    const cert = { keyPem, chainPem: chain.slice(0, -1).join('') };
    const p = sim('delta', channel(plane.cp.addresses.grpc, { rootPem: root.certPem, cert }), sidecarNode(77));
    await waitUntil(() => inSync(plane.cp, p.id), 'the proxy syncs over mTLS with its new certificate');
    // Over mTLS too, responses go onto the HTTP/2 stream as shared parts, never copied whole (xds/directsend.ts).
    // Requests are read from the HTTP/2 chunks too, not through grpc-js' decoder (xds/directrecv.ts).
    const push = await getJson<{ writes: { direct: number; copied: number }; reads: { direct: number; copied: number } }>(`${plane.debugUrl}/debug/push_status?pretty=false`);
    assert.ok(push.body.writes.direct >= 5, JSON.stringify(push.body.writes));
    assert.equal(push.body.writes.copied, 0);
    assert.ok(push.body.reads.direct >= 1, JSON.stringify(push.body.reads));
    assert.equal(push.body.reads.copied, 0);
    assert.ok(plane.logs.some((l) => l.msg === 'certificate issued' && l['spiffeId'] === 'spiffe://cluster.local/ns/default/sa/sleep'));
    assert.ok(!JSON.stringify(plane.logs).includes(token), 'the token is never logged');
  });
});

describe('start-up errors', { concurrency: true }, () => {
  it('refuses a cluster name that is not the CA intermediate’s', async () => {
    const { caDir } = await meshPki();
    await assert.rejects(
      ControlPlane.start({ configDir: configDir(), caDir, cluster: 'cluster-2', listen: '127.0.0.1:0', debugListen: '127.0.0.1:0' }),
      /--cluster cluster-2 does not match .*intermediate CA of cluster cluster-1/,
    );
  });

  it('refuses a plaintext listener off loopback', async () => {
    const { caDir } = await meshPki();
    await assert.rejects(
      ControlPlane.start({ configDir: configDir(), caDir, listen: '127.0.0.1:0', debugListen: '127.0.0.1:0', plaintextListen: '0.0.0.0:0' }),
      /plaintext xDS .* only listen on loopback/,
    );
  });

  it('fails fast on a bad CA directory with a one-line error', async () => {
    await assert.rejects(ControlPlane.start({ configDir: configDir(), caDir: configDir(), listen: '127.0.0.1:0', debugListen: '127.0.0.1:0' }), (e: Error) => {
      assert.equal(e.name, 'IsleError');
      assert.ok(!e.message.includes('\n'), e.message);
      return true;
    });
  });
});

describe('isle control-plane (child process)', () => {
  it('starts on ephemeral ports, prints its addresses, serves /ready, stops on SIGTERM with exit 0', async () => {
    const { caDir } = await meshPki();
    const child = spawn(process.execPath, [cliEntry(), 'control-plane', '--config', configDir(), '--ca', caDir, '--listen', '127.0.0.1:0', '--debug-listen', '127.0.0.1:0', '--log-level', 'warn'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    closers.push(() => child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitUntil(() => /^debug http:\/\/\S+$/m.test(stdout), `the addresses on stdout (stdout: ${stdout}, stderr: ${stderr})`, 20_000);
    const grpcAddr = /^xds\+ca mtls (127\.0\.0\.1:\d+)$/m.exec(stdout)?.[1];
    const debug = /^debug (http:\/\/127\.0\.0\.1:\d+)$/m.exec(stdout)?.[1];
    assert.ok(grpcAddr && !grpcAddr.endsWith(':0'), stdout);
    assert.ok(debug, stdout);
    const ready = await fetch(`${debug}/ready`);
    assert.equal(ready.status, 200);
    assert.equal(await ready.text(), 'ready\n');
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    assert.match(stdout, /^stopped$/m);
  });

  it('a port in use is a one-line error naming the address, exit 2', async () => {
    const { caDir } = await meshPki();
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    closers.push(() => blocker.close());
    const port = (blocker.address() as { port: number }).port;
    const r = await runIsle(['control-plane', '--config', configDir(), '--ca', caDir, '--listen', `127.0.0.1:${port}`, '--debug-listen', '127.0.0.1:0']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port} .*address already in use`));
  });
});

describe('memory per connected proxy, measured in a control-plane child process', () => {
  it('50 proxies (25 SotW, 25 delta) on the plaintext loopback port: heap and RSS per proxy (printed)', async () => {
    const { caDir } = await meshPki();
    const child = spawn(
      process.execPath,
      ['--expose-gc', cliEntry(), 'control-plane', '--config', configDir(), '--ca', caDir, '--listen', '127.0.0.1:0', '--debug-listen', '127.0.0.1:0', '--plaintext-listen', '127.0.0.1:0', '--log-level', 'warn'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    closers.push(() => child.kill('SIGKILL'));
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.resume();
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitUntil(() => /^debug http:\/\/\S+$/m.test(stdout), 'the addresses on stdout', 20_000);
    const plain = /^xds plaintext (\S+)$/m.exec(stdout)![1]!;
    const debug = /^debug (\S+)$/m.exec(stdout)![1]!;
    type Mem = { gcRan: boolean; heapUsed: number; rss: number };
    // Warm up: one proxy makes the first PushContext's shared resources and loads the protos.
    const warm = sim('sotw', channel(plain), sidecarNode(150));
    const synced = async (n: number) => {
      const s = (await getJson<{ types: Record<string, { sent?: string; acked?: string }> }[]>(`${debug}/debug/syncz?pretty=false`)).body;
      return s.length === n && s.every((p) => ['CDS', 'EDS', 'LDS', 'RDS', 'SDS'].every((t) => p.types[t]?.acked !== undefined && p.types[t]!.acked === p.types[t]!.sent));
    };
    await waitUntilAsync(() => synced(1), 'warm-up proxy synced');
    const before = (await getJson<Mem>(`${debug}/debug/memory`)).body;
    assert.equal(before.gcRan, true);
    const list: SimProxy[] = [];
    for (let i = 0; i < 50; i++) list.push(sim(i % 2 === 0 ? 'sotw' : 'delta', channel(plain), sidecarNode(100 + i)));
    await waitUntilAsync(() => synced(51), 'all 50 synced');
    const afterMem = (await getJson<Mem>(`${debug}/debug/memory`)).body;
    console.log(
      `[measure] control-plane child process, memory per connected proxy (50 proxies, after GC): heap ${((afterMem.heapUsed - before.heapUsed) / 50 / 1024).toFixed(1)} KiB, RSS ${((afterMem.rss - before.rss) / 50 / 1024).toFixed(1)} KiB`,
    );
    for (const p of [warm, ...list]) p.close();
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});

async function waitUntilAsync(pred: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
