/**
 * Helpers of the proxy end-to-end tests (not a test file): a mesh PKI written as a cacerts dir,
 * config dirs, the control plane and proxies as real child processes of the compiled CLI, small
 * node:http apps, curl, openssl, and waiting on conditions (never fixed sleeps).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { createToken } from '../../src/mesh/token.js';
import { caFiles, createCsr, createIntermediate, createRoot, signWorkloadCsr, writeFilesAtomic, type IssuingCa, type RootCa } from '../../src/pki/index.js';
import * as grpc from '@grpc/grpc-js';
import { addCertService, createCertService } from '../../src/controlplane/certservice.js';
import { grpcServerCredentials, issueServerCert } from '../../src/controlplane/servercert.js';
import { SnapshotCache, XdsServer } from '../../src/xds/index.js';
import { cliEntry } from '../helpers/paths.js';
import { HELLOWORLD_YAML, meshYaml, workloadEntryYaml, workloadGroupYaml } from '../helpers/config.js';

const dirs: string[] = [];
const children = new Set<ChildProcess>();
const servers = new Set<http.Server>();
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix = 'isle-px-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export async function waitFor<T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastErr ? ` (last error: ${lastErr instanceof Error ? lastErr.message : String(lastErr)})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// ---------------------------------------------------------------------------------------------
// PKI and config
// ---------------------------------------------------------------------------------------------

export interface Mesh {
  root: RootCa;
  ca: IssuingCa;
  caDir: string;
  rootFile: string;
  /** A token file for ns/sa. */
  token(namespace: string, serviceAccount: string): string;
  /** A workload certificate made from a CSR, written as files (cert chain, key, root). */
  workload(namespace: string, serviceAccount: string): Promise<{ certFile: string; keyFile: string; chainPem: string; keyPem: string; spiffeId: string }>;
}

export async function makeMesh(): Promise<Mesh> {
  const root = await createRoot({ trustDomain: 'cluster.local' });
  const ca = await createIntermediate({ root, cluster: 'cluster-1' });
  const caDir = tempDir('isle-px-cacerts-');
  await writeFilesAtomic(caDir, caFiles(ca), { force: true });
  const rootFile = join(caDir, 'root-cert.pem');
  const files = tempDir('isle-px-files-');
  let n = 0;
  return {
    root,
    ca,
    caDir,
    rootFile,
    token(namespace, serviceAccount) {
      const { token } = createToken({ ca, namespace, serviceAccount, cluster: 'cluster-1', ttlSeconds: 3600 });
      const f = join(files, `token-${++n}`);
      writeFileSync(f, token + '\n', { mode: 0o600 });
      return f;
    },
    async workload(namespace, serviceAccount) {
      const identity = { trustDomain: 'cluster.local', namespace, serviceAccount };
      const { csrPem, keyPem } = await createCsr({ identity });
      const signed = await signWorkloadCsr({ ca, csrPem, identity, ttlSeconds: 3600 });
      const certFile = join(files, `wl-${++n}.pem`);
      const keyFile = join(files, `wl-${n}.key`);
      writeFileSync(certFile, signed.chainPem);
      writeFileSync(keyFile, keyPem, { mode: 0o600 });
      return { certFile, keyFile, chainPem: signed.chainPem, keyPem, spiffeId: signed.spiffeId };
    },
  };
}

export const MESH_YAML = meshYaml({ quiet: '30ms', max: '1s' });
export { HELLOWORLD_YAML, workloadEntryYaml, workloadGroupYaml };

/**
 * The groups the test sidecars auto-register through. They dial the control plane from
 * 127.0.0.1 but register their own 127.x address, so the groups allow loopback addresses.
 */
export const TEST_GROUPS_YAML = [
  workloadGroupYaml('helloworld', 'helloworld', { app: 'helloworld', version: 'v1' }, { addresses: ['127.0.0.0/8'] }),
  workloadGroupYaml('sleep', 'sleep', { app: 'sleep' }, { addresses: ['127.0.0.0/8'] }),
  workloadGroupYaml('slowapp', 'slowapp', { app: 'slowapp' }, { addresses: ['127.0.0.0/8'] }),
].join('---\n');

export function configDir(extra: Record<string, string> = {}, groups = TEST_GROUPS_YAML): string {
  const d = tempDir('isle-px-config-');
  writeFileSync(join(d, 'mesh.yaml'), MESH_YAML);
  writeFileSync(join(d, 'helloworld.yaml'), HELLOWORLD_YAML);
  if (groups) writeFileSync(join(d, 'workload-groups.yaml'), groups);
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(d, name), text);
  return d;
}

// ---------------------------------------------------------------------------------------------
// child processes
// ---------------------------------------------------------------------------------------------

export class Child {
  readonly proc: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[]) {
    this.proc = spawn(process.execPath, [cliEntry(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.proc);
    this.proc.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.proc.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Waits for a stdout line matching `re`; fails early if the process exits. */
  async line(re: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return waitFor(
      `${re} on stdout`,
      () => {
        const m = this.stdout.match(re);
        if (m) return m;
        if (!this.alive) throw new Error(`process exited (${this.proc.exitCode ?? this.proc.signalCode}); stderr: ${this.stderr.slice(-2000)}`);
        return undefined;
      },
      timeoutMs,
      20,
    );
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.alive) this.proc.kill(signal);
  }
}

export interface ControlPlaneChild extends Child {
  address: string;
}

export async function startControlPlane(mesh: Mesh, config: string, listen = '127.0.0.1:0', extra: string[] = []): Promise<{ child: Child; address: string }> {
  const child = new Child(['control-plane', '--config', config, '--ca', mesh.caDir, '--listen', listen, '--debug-listen', '127.0.0.1:0', '--log-level', 'warn', ...extra]);
  const m = await child.line(/^xds\+ca mtls (\S+)$/m);
  return { child, address: m[1]! };
}

export interface ProxyChild {
  child: Child;
  admin: string;
  health: string;
  listeners: Map<string, string>;
}

export interface ProxyArgs {
  mesh: Mesh;
  controlPlane: string;
  ip: string;
  namespace?: string;
  serviceAccount: string;
  mode?: 'sidecar' | 'gateway';
  labels?: Record<string, string>;
  appPorts?: Record<number, number>;
  extra?: string[];
  /** Wait for `ready` (default true). */
  ready?: boolean;
}

export async function startProxy(a: ProxyArgs): Promise<ProxyChild> {
  const ns = a.namespace ?? 'default';
  const args = [
    'proxy',
    '--mode', a.mode ?? 'sidecar',
    '--control-plane', a.controlPlane,
    '--token', a.mesh.token(ns, a.serviceAccount),
    '--ca-bundle', a.mesh.rootFile,
    '--ip', a.ip,
    '--namespace', ns,
    '--service-account', a.serviceAccount,
    '--admin', '127.0.0.1:0',
    '--health', '127.0.0.1:0',
    '--network', 'network1',
    '--log-level', 'warn',
    '--drain-timeout', '3s',
  ];
  if (a.labels) args.push('--labels', Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(','));
  for (const [p, ap] of Object.entries(a.appPorts ?? {})) args.push('--app-port', `${p}=${ap}`);
  args.push(...(a.extra ?? []));
  const child = new Child(args);
  const admin = (await child.line(/^admin (\S+)$/m))[1]!;
  const health = (await child.line(/^health (\S+)$/m))[1]!;
  if (a.ready !== false) await child.line(/^ready$/m);
  const listeners = new Map<string, string>();
  for (const m of child.stdout.matchAll(/^listener (\S+) \S+ (\S+)$/gm)) listeners.set(m[1]!, m[2]!);
  return { child, admin, health, listeners };
}

export interface HelloSleep {
  mesh: Mesh;
  dir: string;
  cp: Child;
  cpAddress: string;
  app: App;
  /** The helloworld sidecar: it registers itself (label app=helloworld), so it is the endpoint. */
  hello: ProxyChild;
  /** The client sidecar. */
  sleep: ProxyChild;
}

/** A control plane, the helloworld app behind its sidecar, and a sleep sidecar: the usual end-to-end cast. */
export async function startHelloSleep(ips: { hello: string; sleep: string }): Promise<HelloSleep> {
  const mesh = await makeMesh();
  const dir = configDir();
  const { child: cp, address: cpAddress } = await startControlPlane(mesh, dir);
  const app = await startApp('helloworld-v1');
  const [hello, sleep] = await Promise.all([
    startProxy({ mesh, controlPlane: cpAddress, ip: ips.hello, serviceAccount: 'helloworld', labels: { app: 'helloworld', version: 'v1' }, appPorts: { 5000: app.port } }),
    startProxy({ mesh, controlPlane: cpAddress, ip: ips.sleep, serviceAccount: 'sleep', labels: { app: 'sleep' } }),
  ]);
  return { mesh, dir, cp, cpAddress, app, hello, sleep };
}

/**
 * A control plane and two sidecars for the gRPC end-to-end tests: echo (its app, a gRPC server on
 * `appPort`, behind port 50051) and sleep (the client side); `files` adds the services' config.
 */
export async function startEchoSleep(ips: { echo: string; sleep: string }, files: Record<string, string>, appPort: number): Promise<{ cp: Child; echo: ProxyChild; sleep: ProxyChild; outbound: string }> {
  const mesh = await makeMesh();
  const groups = [
    workloadGroupYaml('echo', 'echo', { app: 'echo' }, { addresses: ['127.0.0.0/8'] }),
    workloadGroupYaml('sleep', 'sleep', { app: 'sleep' }, { addresses: ['127.0.0.0/8'] }),
  ].join('---\n');
  const { child: cp, address: cpAddress } = await startControlPlane(mesh, configDir(files, groups));
  const [echo, sleep] = await Promise.all([
    startProxy({ mesh, controlPlane: cpAddress, ip: ips.echo, serviceAccount: 'echo', labels: { app: 'echo' }, appPorts: { 50051: appPort } }),
    startProxy({ mesh, controlPlane: cpAddress, ip: ips.sleep, serviceAccount: 'sleep', labels: { app: 'sleep' } }),
  ]);
  return { cp, echo, sleep, outbound: sleep.listeners.get('virtualOutbound')! };
}

/** The proxy's xDS connection as its admin reports it. */
export async function xdsState(p: ProxyChild): Promise<{ connected: boolean; connects: number }> {
  const x = (await configDump(p))['xds'] as { connected: boolean; connects: number };
  return { connected: x.connected, connects: x.connects };
}

/** Waits until every proxy is connected again, each after more connects than `before` counted. */
export async function waitReconnected(proxies: ProxyChild[], before: { connects: number }[]): Promise<void> {
  await waitFor(
    'every sidecar reconnected',
    async () => (await Promise.all(proxies.map(xdsState))).every((x, i) => x.connected && x.connects > before[i]!.connects),
    30_000,
    100,
  );
}

/** Current listeners printed by a proxy. */
export function listenersOf(p: ProxyChild): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of p.child.stdout.matchAll(/^listener (\S+) \S+ (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

export async function getText(url: string): Promise<{ status: number; text: string }> {
  const r = await fetch(url);
  return { status: r.status, text: await r.text() };
}

/** /config_dump as loosely typed JSON (tests index into it freely). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Dump = Record<string, any>;

export async function configDump(p: ProxyChild): Promise<Dump> {
  const r = await fetch(`${p.admin}/config_dump`);
  // Envoy's ConfigDump (`configs`) plus Isle's facts under `isle`, flattened for the tests.
  const d = (await r.json()) as Dump;
  return { ...d['isle'], configs: d['configs'] };
}

// ---------------------------------------------------------------------------------------------
// apps and clients
// ---------------------------------------------------------------------------------------------

export interface App {
  port: number;
  seen: { headers: http.IncomingHttpHeaders; url: string }[];
  server: http.Server;
}

/** An app on 127.0.0.1:<free port> answering JSON: its name, the path and the XFCC it saw. */
export async function startApp(name: string, body?: (req: http.IncomingMessage) => string): Promise<App> {
  const seen: App['seen'] = [];
  const server = http.createServer((req, res) => {
    seen.push({ headers: req.headers, url: req.url ?? '' });
    const text = body ? body(req) : JSON.stringify({ app: name, path: req.url, xfcc: req.headers['x-forwarded-client-cert'] ?? null });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
  servers.add(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, seen, server };
}

export function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = execFile(cmd, args, { timeout: opts.timeoutMs ?? 15_000, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    if (opts.input !== undefined) p.stdin?.end(opts.input);
    else p.stdin?.end();
  });
}

/** `curl -x http://<proxy> <url>`: status line code and body. */
export async function curlProxy(proxy: string, url: string, extra: string[] = []): Promise<{ code: number; status: number; body: string; stderr: string }> {
  const r = await run('curl', ['-sS', '--max-time', '10', '-x', `http://${proxy}`, '-w', '\n%{http_code}', ...extra, url]);
  const i = r.stdout.lastIndexOf('\n');
  return { code: r.code, status: Number(r.stdout.slice(i + 1)) || 0, body: r.stdout.slice(0, i), stderr: r.stderr };
}

// ---------------------------------------------------------------------------------------------
// a hand-driven ADS server (what the control plane's generators would never send)
// ---------------------------------------------------------------------------------------------

export interface TestAds {
  address: string;
  cache: SnapshotCache;
  xds: XdsServer;
  close(): void;
}

/**
 * XdsServer + SnapshotCache + the real certificate service on one mTLS gRPC port, with a server
 * certificate from the mesh's intermediate (so the proxy's control-plane identity check passes).
 */
export async function startTestAds(mesh: Mesh): Promise<TestAds> {
  const serverCert = await issueServerCert({ ca: mesh.ca, cluster: 'cluster-1', listenAddresses: ['127.0.0.1'] });
  const cache = new SnapshotCache();
  const xds = new XdsServer({ cache });
  const server = new grpc.Server();
  xds.addToServer(server);
  addCertService(server, createCertService({ ca: mesh.ca, cluster: 'cluster-1', trustDomain: 'cluster.local' }));
  const creds = grpcServerCredentials({ serverCert, rootBundle: mesh.ca.rootBundlePem, requireClientCert: false });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
  return {
    address: `127.0.0.1:${port}`,
    cache,
    xds,
    close() {
      xds.close();
      server.forceShutdown();
    },
  };
}
