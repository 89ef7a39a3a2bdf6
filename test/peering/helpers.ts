/**
 * Helpers of the peering tests (not a test file): "control-plane-like" clusters in one process,
 * each a Registry with a local shard, a PeeringExport on a real grpc-js server with the cluster's
 * :15012 credentials (real certificates from a shared root), and a PeeringManager fed by a
 * ConfigStore of RemoteCluster resources.
 */
import * as grpc from '@grpc/grpc-js';
import { MemorySource, type MemoryResource } from '../../src/config/sources/memory.js';
import { ConfigStore } from '../../src/config/store.js';
import type { Resource } from '../../src/config/types.js';
import { grpcServerCredentials, issueServerCert, type ServerCert } from '../../src/controlplane/servercert.js';
import { describeServerTlsFailure, observeTlsFailures, PeeringExport, PeeringManager, type PeerStatus } from '../../src/peering/index.js';
import { createCsr, createIntermediate, createRoot, signWorkloadCsr, type IssuingCa, type RootCa } from '../../src/pki/index.js';
import { buildShard, Registry, type RegistryChange } from '../../src/registry/index.js';
import { RECOMMENDED_GRPC_SERVER_OPTIONS, type XdsLogger } from '../../src/xds/server.js';

export interface Pki {
  root: RootCa;
  foreignRoot: RootCa;
  cas: Record<string, IssuingCa>;
  foreignCa: IssuingCa;
}

let pki: Promise<Pki> | undefined;

/** One root with cluster-1 and cluster-2 (and cluster-3) intermediates, plus a foreign root's cluster-2. */
export function meshPki(): Promise<Pki> {
  pki ??= (async () => {
    const [root, foreignRoot] = await Promise.all([createRoot(), createRoot()]);
    const [c1, c2, c3, foreignCa] = await Promise.all([
      createIntermediate({ root, cluster: 'cluster-1' }),
      createIntermediate({ root, cluster: 'cluster-2' }),
      createIntermediate({ root, cluster: 'cluster-3' }),
      createIntermediate({ root: foreignRoot, cluster: 'cluster-2' }),
    ]);
    return { root, foreignRoot, cas: { 'cluster-1': c1, 'cluster-2': c2, 'cluster-3': c3 }, foreignCa };
  })();
  return pki;
}

export async function workloadCert(ca: IssuingCa, namespace: string, serviceAccount: string): Promise<{ keyPem: string; chainPem: string }> {
  const identity = { trustDomain: ca.trustDomain, namespace, serviceAccount };
  const { csrPem, keyPem } = await createCsr({ identity });
  const signed = await signWorkloadCsr({ ca, csrPem, identity });
  return { keyPem, chainPem: signed.chainPem };
}

export interface LogLine {
  level: string;
  msg: string;
  obj: Record<string, unknown>;
}

export function recordingLogger(lines: LogLine[]): XdsLogger {
  const rec = (level: string) => (obj: object, msg: string) => void lines.push({ level, msg, obj: obj as Record<string, unknown> });
  return { debug: () => {}, info: rec('info'), warn: rec('warn'), error: rec('error') };
}

const src = { file: 'test.yaml', line: 1 };

export function service(name: string, namespace = 'default', port = 5000): Resource {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { selector: { app: name }, ports: [{ name: 'http', port, targetPort: port }] },
    source: src,
  };
}

export function workloadEntry(name: string, app: string, address: string, extra: Record<string, unknown> = {}, namespace = 'default'): Resource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: { name, namespace },
    spec: { address, labels: { app, version: String(extra['version'] ?? 'v1') }, serviceAccount: app, locality: 'region-1/zone-1', ...extra },
    source: src,
  };
}

export function serviceEntry(host: string, namespace = 'default'): Resource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: host.replace(/\./g, '-'), namespace },
    spec: { hosts: [host], ports: [{ number: 443, name: 'tls', protocol: 'TLS' }], resolution: 'DNS', location: 'MESH_EXTERNAL' },
    source: src,
  };
}

export function remoteCluster(name: string, address: string, network?: string): MemoryResource {
  return {
    apiVersion: 'mesh.isle.dev/v1alpha1',
    kind: 'RemoteCluster',
    metadata: { name },
    spec: { address, ...(network ? { network } : {}), discoveryOnly: true },
  };
}

export interface TestCluster {
  name: string;
  network: string;
  ca: IssuingCa;
  serverCert: ServerCert;
  registry: Registry;
  exporter: PeeringExport;
  manager: PeeringManager;
  /** RemoteCluster resources of this cluster's config. */
  config: MemorySource;
  store: ConfigStore;
  address: string;
  logs: LogLine[];
  /** Replaces the local shard (what watchLocalShard does on a config change). */
  setLocal(resources: Resource[]): RegistryChange | undefined;
  /** The control plane goes away: listener closed, streams cut. */
  stopServer(): void;
  /** The control plane comes back on the same address. */
  startServer(): Promise<void>;
  close(): Promise<void>;
}

export interface ClusterOptions {
  name: string;
  network: string;
  ca: IssuingCa;
  gateways?: { address: string; port: number }[];
  resources?: Resource[];
  /** Port to bind (0 = ephemeral). */
  port?: number;
}

export async function startCluster(o: ClusterOptions): Promise<TestCluster> {
  const logs: LogLine[] = [];
  const logger = recordingLogger(logs);
  const serverCert = await issueServerCert({ ca: o.ca, cluster: o.name, listenAddresses: ['127.0.0.1'] });
  const registry = new Registry({ localCluster: o.name, log: () => {} });
  let local = o.resources ?? [];
  const setLocal = (resources: Resource[]) => {
    local = resources;
    return registry.setShard(o.name, buildShard(o.name, { network: o.network }, { resources: local }));
  };
  setLocal(local);
  const config = new MemorySource(`${o.name}-remotes`);
  const store = new ConfigStore();
  store.addSource(config);
  await store.start();

  let exporter!: PeeringExport;
  let server: grpc.Server | undefined;
  let offTls: () => void = () => {};
  let port = o.port ?? 0;
  const startServer = async () => {
    exporter = new PeeringExport({ registry, cluster: o.name, network: o.network, trustDomain: o.ca.trustDomain, gateways: o.gateways ?? [], logger });
    c.exporter = exporter;
    server = new grpc.Server(RECOMMENDED_GRPC_SERVER_OPTIONS);
    exporter.addToServer(server);
    const creds = grpcServerCredentials({ serverCert, rootBundle: o.ca.rootBundlePem, requireClientCert: false });
    port = await new Promise<number>((resolve, reject) => server!.bindAsync(`127.0.0.1:${port}`, creds, (err, p) => (err ? reject(err) : resolve(p))));
    c.address = `127.0.0.1:${port}`;
    offTls = observeTlsFailures(server, (f) => logs.push({ level: 'warn', msg: describeServerTlsFailure(f), obj: { remote: f.remote } }));
  };
  const stopServer = () => {
    offTls();
    exporter.close();
    server?.forceShutdown();
    server = undefined;
  };

  const manager = new PeeringManager({
    localCluster: o.name,
    localNetwork: o.network,
    localGateways: o.gateways ?? [],
    registry,
    tls: { rootBundlePem: o.ca.rootBundlePem, certChainPem: serverCert.chainPem, keyPem: serverCert.keyPem, trustDomain: o.ca.trustDomain },
    store,
    backoff: () => 50,
    logger,
  });

  const c: TestCluster = {
    name: o.name,
    network: o.network,
    ca: o.ca,
    serverCert,
    registry,
    exporter: undefined as unknown as PeeringExport,
    manager,
    config,
    store,
    address: '',
    logs,
    setLocal,
    stopServer,
    startServer,
    async close() {
      manager.close();
      if (server) stopServer();
      await store.stop();
    },
  };
  await startServer();
  manager.start();
  return c;
}

/** Resolves when `pred` holds, checked now and on every event `subscribe` delivers. */
export function waitFor(subscribe: (l: () => void) => () => void, pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  if (pred()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const off = subscribe(() => {
      if (!pred()) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

export function waitForPeer(c: TestCluster, peer: string, pred: (s: PeerStatus) => boolean, what: string, timeoutMs?: number): Promise<void> {
  const cur = () => c.manager.status().find((s) => s.name === peer);
  return waitFor((l) => c.manager.onStatus(l), () => { const s = cur(); return s !== undefined && pred(s); }, `${c.name}: ${what}`, timeoutMs);
}

export function waitForRegistry(c: TestCluster, pred: () => boolean, what: string, timeoutMs?: number): Promise<void> {
  return waitFor((l) => c.registry.subscribe(l), pred, `${c.name}: ${what}`, timeoutMs);
}

/** Resolves when a log line matching `re` is recorded (polling: logs have no event). */
export async function waitForLog(c: { logs: LogLine[]; name: string }, re: RegExp, timeoutMs = 10_000): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = c.logs.find((l) => re.test(l.msg));
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`${c.name}: no log line matching ${re} within ${timeoutMs} ms; got:\n${c.logs.map((l) => `  ${l.level} ${l.msg}`).join('\n')}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
