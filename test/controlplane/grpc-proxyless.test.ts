// Proxyless gRPC, end to end: a real @grpc/grpc-js-xds client (gRPC's own xDS resolver and load
// balancing) with a bootstrap written by the real `isle bootstrap grpc`, against a real control
// plane over its plaintext xDS port, calling real grpc-js servers on loopback addresses: plaintext
// ones, and mTLS ones (workload certificates from the mesh CA) once a DestinationRule says
// ISTIO_MUTUAL, with the client's certificate from the bootstrap's file_watcher provider.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { XdsChannelCredentials } from '@grpc/grpc-js-xds';
import { runIsle } from '../helpers/cli.js';
import { spawnIsle } from '../helpers/spawn.js';
import { repoRoot } from '../helpers/paths.js';
import { spawn } from 'node:child_process';
import { createToken } from '../../src/mesh/token.js';
import { configDir, meshPki, startPlane, tempDir, workloadCert, workloadEntryYaml, type Plane } from './helpers.js';
import { workloadGroupYaml } from '../helpers/config.js';

const SERVICE_YAML = `apiVersion: v1
kind: Service
metadata:
  name: greeter
  namespace: default
spec:
  selector:
    app: greeter
  ports:
  - name: grpc
    port: 50051
`;

const SECURE_YAML = `apiVersion: v1
kind: Service
metadata:
  name: secure
  namespace: default
spec:
  selector:
    app: secure
  ports:
  - name: grpc
    port: 50052
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: secure
  namespace: default
spec:
  host: secure
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
`;

const DR_YAML = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: greeter
  namespace: default
spec:
  host: greeter
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
`;

const vsYaml = (v1: number, v2: number): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: greeter
  namespace: default
spec:
  hosts: [greeter]
  http:
  - route:
    - destination: {host: greeter, subset: v1}
      weight: ${v1}
    - destination: {host: greeter, subset: v2}
      weight: ${v2}
`;

const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const HELLO: grpc.ServiceDefinition = {
  Hello: { path: '/test.Greeter/Hello', requestStream: false, responseStream: false, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize, originalName: 'Hello' },
};

const SECURE = ['127.1.0.24', '127.1.0.25'];

const BACKENDS = [
  { name: 'greeter-v1a', ip: '127.1.0.21', version: 'v1' },
  { name: 'greeter-v1b', ip: '127.1.0.22', version: 'v1' },
  { name: 'greeter-v2', ip: '127.1.0.23', version: 'v2' },
];

async function serve(name: string, ip: string, port = 50051, creds = grpc.ServerCredentials.createInsecure()): Promise<grpc.Server> {
  const s = new grpc.Server();
  s.addService(HELLO, {
    Hello: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      // Over mTLS, the server names the client identity it verified.
      const peer = call.getAuthContext()?.sslPeerCertificate?.subjectaltname;
      cb(null, Buffer.from(peer ? `${name} ${peer}` : name));
    },
  });
  await new Promise<void>((res, rej) => s.bindAsync(`${ip}:${port}`, creds, (e) => (e ? rej(e) : res())));
  return s;
}

describe('proxyless gRPC (grpc-js-xds)', () => {
  let plane: Plane;
  let client: grpc.Client;
  const servers: grpc.Server[] = [];

  const call = (): Promise<string> =>
    new Promise((res, rej) =>
      client.makeUnaryRequest('/test.Greeter/Hello', raw.serialize, raw.deserialize, Buffer.alloc(0), { deadline: Date.now() + 5000 }, (e, v) => (e ? rej(e) : res(v!.toString()))),
    );
  async function counts(n: number): Promise<Map<string, number>> {
    const m = new Map<string, number>();
    // In batches: in parallel like a real client, without 1,000 RPCs in flight at once.
    for (let i = 0; i < n; i += 50) for (const who of await Promise.all(Array.from({ length: Math.min(50, n - i) }, call))) m.set(who, (m.get(who) ?? 0) + 1);
    return m;
  }
  async function until(pred: (m: Map<string, number>) => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 15_000;
    let last = new Map<string, number>();
    while (Date.now() < deadline) {
      last = await counts(40).catch((e: Error) => new Map([[`error: ${e.message}`, 0]]));
      if (pred(last)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify([...last])}`);
  }

  before(async () => {
    const { ca, root } = await meshPki();
    for (const b of BACKENDS) servers.push(await serve(b.name, b.ip));
    const serverCert = await workloadCert(ca, 'default', 'secure');
    const serverCreds = grpc.ServerCredentials.createSsl(Buffer.from(root.certPem), [{ cert_chain: Buffer.from(serverCert.chainPem), private_key: Buffer.from(serverCert.keyPem) }], true);
    for (const ip of SECURE) servers.push(await serve(`secure-${ip}`, ip, 50052, serverCreds));
    const extra: Record<string, string> = { 'greeter.yaml': SERVICE_YAML, 'greeter-dr.yaml': DR_YAML, 'secure.yaml': SECURE_YAML };
    for (const b of BACKENDS) extra[`${b.name}.yaml`] = workloadEntryYaml(b.name, b.ip, 'greeter', { app: 'greeter', version: b.version });
    // The CA renews certificates only for identities that config allows (a WorkloadGroup).
    extra['client2-group.yaml'] = workloadGroupYaml('client2', 'client2', { app: 'client2' });
    SECURE.forEach((ip, i) => (extra[`secure-${i}.yaml`] = workloadEntryYaml(`secure-${i}`, ip, 'secure', { app: 'secure' })));
    plane = await startPlane({ plaintextListen: '127.0.0.1:0', configDir: configDir(extra) });
    // The client's certificate where the bootstrap's file_watcher provider reads it.
    const dir = tempDir('isle-grpc-bootstrap-');
    const clientCert = await workloadCert(ca, 'default', 'client');
    writeFileSync(join(dir, 'cert-chain.pem'), clientCert.chainPem);
    writeFileSync(join(dir, 'key.pem'), clientCert.keyPem);
    writeFileSync(join(dir, 'root-cert.pem'), root.certPem);
    const file = join(dir, 'bootstrap.json');
    const r = await runIsle(['bootstrap', 'grpc', '--namespace', 'default', '--service-account', 'client', '--ip', '127.1.0.40', '--xds-address', plane.cp.addresses.plaintext!, '--cert-dir', dir, '--out', file]);
    assert.equal(r.code, 0, r.stderr);
    // grpc-js-xds reads the bootstrap once per process, when the first xds: channel resolves.
    process.env['GRPC_XDS_BOOTSTRAP'] = file;
    (await import('@grpc/grpc-js-xds')).register();
    client = new grpc.Client('xds:///greeter.default.svc.cluster.local:50051', grpc.credentials.createInsecure());
  });
  after(() => {
    client?.close();
    for (const s of servers) s.forceShutdown();
  });

  it("reaches the service's endpoints and spreads over all of them", async () => {
    await until((m) => m.size === 3, 'all three endpoints');
    const m = await counts(300);
    for (const b of BACKENDS) assert.ok((m.get(b.name) ?? 0) >= 50, `round robin reaches ${b.name}: ${JSON.stringify([...m])}`);
  });

  it('follows a 70/30 VirtualService over subsets (±5 % over 1,000 calls)', async () => {
    writeFileSync(join(plane.configDir, 'greeter-vs.yaml'), vsYaml(70, 30));
    // Applied once v2 drops clearly below its unrouted third (a quarter of calls to one of three).
    await until((m) => (m.get('greeter-v2') ?? 0) < 40 * 0.45 && m.size === 3, 'the 70/30 split');
    const m = await counts(1000);
    const v2 = (m.get('greeter-v2') ?? 0) / 1000;
    assert.ok(Math.abs(v2 - 0.3) <= 0.05, `v2 got ${(v2 * 100).toFixed(1)} % (want 30 ± 5): ${JSON.stringify([...m])}`);
    assert.ok((m.get('greeter-v1a') ?? 0) > 0 && (m.get('greeter-v1b') ?? 0) > 0, 'subset v1 spreads over its two endpoints');
  });

  it('ISTIO_MUTUAL: mTLS with the provider certificate, the server sees the client identity', async () => {
    const secure = new grpc.Client('xds:///secure.default.svc.cluster.local:50052', new XdsChannelCredentials(grpc.credentials.createInsecure()));
    try {
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const reply = await new Promise<string>((res, rej) =>
          secure.makeUnaryRequest('/test.Greeter/Hello', raw.serialize, raw.deserialize, Buffer.alloc(0), { deadline: Date.now() + 10_000 }, (e, v) => (e ? rej(e) : res(v!.toString()))),
        );
        assert.match(reply, /^secure-127\.1\.0\.2[45] URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/client$/);
        seen.add(reply.split(' ')[0]!);
      }
      assert.equal(seen.size, 2, 'both mTLS endpoints');
      // The plaintext greeter still works on the same xDS credentials' fallback.
    } finally {
      secure.close();
    }
  });

  it('isle bootstrap grpc --control-plane --xds-relay: certificate from the CA service for the provider, renewed; a client in another process gets xDS over the mTLS port through the relay', async () => {
    const { ca, root } = await meshPki();
    const dir = tempDir('isle-grpc-certs-');
    writeFileSync(join(dir, 'token'), createToken({ ca, namespace: 'default', serviceAccount: 'client2', cluster: 'cluster-1', ttlSeconds: 600 }).token);
    writeFileSync(join(dir, 'root.pem'), root.certPem);
    const certDir = join(dir, 'certs');
    const p = spawnIsle([
      'bootstrap', 'grpc', '--namespace', 'default', '--service-account', 'client2', '--xds-address', plane.cp.addresses.plaintext!,
      '--cert-dir', certDir, '--out', join(dir, 'bootstrap.json'),
      '--control-plane', plane.cp.addresses.grpc, '--token', join(dir, 'token'), '--ca-bundle', join(dir, 'root.pem'), '--cert-ttl', '4',
      '--xds-relay', '127.0.0.1:0',
    ]);
    try {
      const first = await p.waitForLine(/^certificate /, 15_000).catch((e: Error) => assert.fail(`${e.message}: ${p.output()}`));
      assert.match(first, /^certificate spiffe:\/\/cluster\.local\/ns\/default\/sa\/client2 serial /);
      const leaf = new X509Certificate(readFileSync(join(certDir, 'cert-chain.pem')));
      assert.match(leaf.subjectAltName ?? '', /spiffe:\/\/cluster\.local\/ns\/default\/sa\/client2/);
      assert.equal(statSync(join(certDir, 'key.pem')).mode & 0o777, 0o600);
      const serial = leaf.serialNumber;
      // Renewed at half of a few seconds' life: a new certificate in the same files.
      await p.waitForLine(new RegExp(`^certificate .* serial (?!${serial})`), 15_000).catch((e: Error) => assert.fail(`${e.message}: ${p.output()}`));
      assert.notEqual(new X509Certificate(readFileSync(join(certDir, 'cert-chain.pem'))).serialNumber, serial);

      await p.waitForLine(/^wrote /, 5000);
      const boot = JSON.parse(readFileSync(join(dir, 'bootstrap.json'), 'utf8')) as { xds_servers: { server_uri: string }[] };
      const relayed = boot.xds_servers[0]!.server_uri;
      assert.notEqual(relayed, plane.cp.addresses.plaintext, 'the bootstrap points at the relay');
      // grpc-js-xds reads one bootstrap per process: this client runs in its own.
      const script = `
        import * as grpc from '@grpc/grpc-js';
        import { register } from '@grpc/grpc-js-xds';
        register();
        const c = new grpc.Client('xds:///greeter.default.svc.cluster.local:50051', grpc.credentials.createInsecure());
        const id = (b) => b;
        const call = () => new Promise((res, rej) => c.makeUnaryRequest('/test.Greeter/Hello', id, id, Buffer.alloc(0), { deadline: Date.now() + 10000 }, (e, v) => (e ? rej(e) : res(v.toString()))));
        const out = [];
        for (let i = 0; i < 20; i++) out.push(await call());
        console.log(JSON.stringify(out));`;
      // Asynchronously: the control plane runs in this process and must keep answering. The
      // client stays connected after its calls until killed, so its xDS stream can be looked at.
      const c = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot(), env: { ...process.env, GRPC_XDS_BOOTSTRAP: join(dir, 'bootstrap.json') } });
      try {
        let stderr = '';
        c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const line = await new Promise<string>((res, rej) => {
          let stdout = '';
          const t = setTimeout(() => rej(new Error(`no reply within 30 s: ${stderr.slice(0, 400)}`)), 30_000);
          c.stdout.setEncoding('utf8').on('data', (d: string) => {
            stdout += d;
            if (!stdout.includes('\n')) return;
            clearTimeout(t);
            res(stdout.trim());
          });
          c.on('close', (code) => (clearTimeout(t), rej(new Error(`client exited ${code}: ${stderr.slice(0, 400)}`))));
        });
        const replies = JSON.parse(line) as string[];
        assert.equal(replies.length, 20);
        for (const r of replies) assert.match(r, /^greeter-v/);
        // Its stream reached the control plane on the mTLS listener, as the certificate's identity.
        const mtlsNodes = plane.cp.xdsServers[0]!.status().map((st) => st.node.id);
        assert.ok(mtlsNodes.some((id) => id.includes('client2.default')), `an mTLS xDS stream for client2: ${mtlsNodes.join(', ')}`);
      } finally {
        c.kill('SIGKILL');
      }
    } finally {
      await p.stop();
    }
    assert.equal(p.child.exitCode, 0, p.output());
  });

  it('a subset route sends everything to that subset', async () => {
    writeFileSync(join(plane.configDir, 'greeter-vs.yaml'), vsYaml(0, 100));
    await until((m) => m.size === 1 && m.has('greeter-v2'), 'only v2');
    const m = await counts(200);
    assert.deepEqual([...m], [['greeter-v2', 200]]);
  });
});
