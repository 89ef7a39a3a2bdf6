/**
 * Helpers of the control-plane tests (not a test file): a real CA and config directory in temp
 * dirs, a ControlPlane on ephemeral ports, TLS channels with workload certificates, and simulated
 * proxies that subscribe the way Envoy does (CDS/LDS wildcard, then EDS for the EDS clusters and
 * RDS for the route configs the listeners name, SDS ROOTCA) and ACK everything.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { ControlPlane, type ControlPlaneOptions } from '../../src/controlplane/controlplane.js';
import { caFiles, createCsr, createIntermediate, createRoot, signWorkloadCsr, writeFilesAtomic, type IssuingCa, type RootCa } from '../../src/pki/index.js';
import {
  CLUSTER_TYPE,
  decodeResource,
  ENDPOINT_TYPE,
  LISTENER_TYPE,
  ROUTE_TYPE,
  SECRET_TYPE,
  type DeltaDiscoveryResponseMsg,
  type DiscoveryResponseMsg,
  type NodeMsg,
} from '../../src/xds/index.js';
import { DeltaClient, SotwClient } from '../xds/helpers.js';
import { HELLOWORLD_YAML, meshYaml, workloadEntryYaml, workloadGroupYaml } from '../helpers/config.js';

export { waitUntil } from '../xds/helpers.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix = 'isle-cp-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export interface Pki {
  root: RootCa;
  ca: IssuingCa;
  caDir: string;
  foreignRoot: RootCa;
  foreignCa: IssuingCa;
}

let pki: Promise<Pki> | undefined;

/** One mesh per test process: a root, cluster-1's intermediate written as a cacerts dir, and a foreign root. */
export function meshPki(): Promise<Pki> {
  pki ??= (async () => {
    const [root, foreignRoot] = await Promise.all([createRoot(), createRoot()]);
    const [ca, foreignCa] = await Promise.all([createIntermediate({ root, cluster: 'cluster-1' }), createIntermediate({ root: foreignRoot, cluster: 'cluster-1' })]);
    const caDir = tempDir('isle-cacerts-');
    await writeFilesAtomic(caDir, caFiles(ca), { force: true });
    return { root, ca, caDir, foreignRoot, foreignCa };
  })();
  return pki;
}

/** Another cluster's intermediate under the mesh root, written as a cacerts dir (a remote or peer control plane). */
export async function clusterCaDir(cluster: string, root?: RootCa): Promise<string> {
  const ca = await createIntermediate({ root: root ?? (await meshPki()).root, cluster });
  const dir = tempDir(`isle-cacerts-${cluster}-`);
  await writeFilesAtomic(dir, caFiles(ca), { force: true });
  return dir;
}

export interface WorkloadCert {
  keyPem: string;
  chainPem: string;
}

/** A workload certificate the way a proxy gets one: key made here, CSR signed by the CA. */
export async function workloadCert(ca: IssuingCa, namespace: string, serviceAccount: string): Promise<WorkloadCert> {
  const identity = { trustDomain: ca.trustDomain, namespace, serviceAccount };
  const { csrPem, keyPem } = await createCsr({ identity });
  const signed = await signWorkloadCsr({ ca, csrPem, identity });
  return { keyPem, chainPem: signed.chainPem };
}

export const MESH_YAML = meshYaml({ quiet: '50ms', max: '2s' });
export { HELLOWORLD_YAML, workloadEntryYaml, workloadGroupYaml };

export function configDir(extra: Record<string, string> = {}): string {
  const d = tempDir('isle-config-');
  writeFileSync(join(d, 'mesh.yaml'), MESH_YAML);
  writeFileSync(join(d, 'helloworld.yaml'), HELLOWORLD_YAML);
  writeFileSync(join(d, 'helloworld-v1.yaml'), workloadEntryYaml('helloworld-v1', '127.1.0.10'));
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(d, name), text);
  return d;
}

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export interface Plane {
  cp: ControlPlane;
  configDir: string;
  logs: LogLine[];
  debugUrl: string;
}

const planes: ControlPlane[] = [];
after(async () => {
  for (const p of planes) await p.stop();
});

export async function startPlane(opts: Partial<ControlPlaneOptions> = {}): Promise<Plane> {
  const { caDir } = await meshPki();
  const logs: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) });
  const dir = opts.configDir ?? configDir();
  const cp = await ControlPlane.start({
    configDir: dir,
    caDir,
    listen: '127.0.0.1:0',
    debugListen: '127.0.0.1:0',
    logger,
    directory: { rescanIntervalMs: 500 },
    ...opts,
  });
  planes.push(cp);
  return { cp, configDir: dir, logs, debugUrl: `http://${cp.addresses.debug}` };
}

/** A channel of its own (own TCP/TLS connection), with a workload certificate when given. */
export function channel(address: string, tls?: { rootPem: string; cert?: WorkloadCert }): grpc.Client {
  const opts: grpc.ChannelOptions = { 'grpc.use_local_subchannel_pool': 1 };
  if (!tls) return new grpc.Client(address, grpc.credentials.createInsecure(), opts);
  const creds = grpc.credentials.createSsl(
    Buffer.from(tls.rootPem),
    tls.cert ? Buffer.from(tls.cert.keyPem) : null,
    tls.cert ? Buffer.from(tls.cert.chainPem) : null,
  );
  return new grpc.Client(address, creds, { ...opts, 'grpc.ssl_target_name_override': 'isle-control-plane.cluster-1' });
}

export function sidecarNode(i: number, opts: { namespace?: string; serviceAccount?: string; labels?: Record<string, string>; ip?: string } = {}): NodeMsg {
  const ns = opts.namespace ?? 'default';
  const ip = opts.ip ?? `127.1.1.${i}`;
  return {
    id: `sidecar~${ip}~sleep-${i}.${ns}~${ns}.svc.cluster.local`,
    cluster: 'cluster-1',
    metadata: {
      NAMESPACE: ns,
      SERVICE_ACCOUNT: opts.serviceAccount ?? 'sleep',
      LABELS: opts.labels ?? { app: 'sleep' },
    },
  };
}

function edsNames(clusters: Record<string, unknown>[]): string[] {
  return clusters
    .filter((c) => c['type'] === 'EDS')
    .map((c) => String((c['eds_cluster_config'] as { service_name?: string } | undefined)?.service_name || c['name']))
    .sort();
}

function routeNames(listeners: Record<string, unknown>[]): string[] {
  const out = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const rds = o['rds'] as { route_config_name?: string } | undefined;
      if (rds?.route_config_name) out.add(rds.route_config_name);
      for (const x of Object.values(o)) walk(x);
    }
  };
  walk(listeners);
  return [...out].sort();
}

export interface Received {
  type: string;
  version: string;
  names: string[];
  removed: string[];
  at: number;
}

/** A proxy that follows Envoy's subscription pattern and ACKs every response. */
export class SimProxy {
  readonly received: Received[] = [];
  readonly sotw?: SotwClient;
  readonly delta?: DeltaClient;
  private eds = '';
  private rds = '';

  constructor(
    readonly protocol: 'sotw' | 'delta',
    readonly ch: grpc.Client,
    readonly node: NodeMsg,
  ) {
    if (protocol === 'sotw') {
      const c = new SotwClient(ch, node, { autoAck: true });
      this.sotw = c;
      c.call.on('data', (r: DiscoveryResponseMsg) => {
        this.received.push({ type: r.type_url, version: r.version_info, names: r.resources.map((a) => nameOf(decodeResource(a))), removed: [], at: performance.now() });
        const state = [...(c.state.get(r.type_url)?.values() ?? [])];
        if (r.type_url === CLUSTER_TYPE) this.follow(ENDPOINT_TYPE, edsNames(state));
        if (r.type_url === LISTENER_TYPE) this.follow(ROUTE_TYPE, routeNames(state));
      });
      c.request(CLUSTER_TYPE);
      c.request(LISTENER_TYPE);
      c.request(SECRET_TYPE, ['ROOTCA']);
    } else {
      const c = new DeltaClient(ch, node, { autoAck: true });
      this.delta = c;
      const decoded = new Map<string, Map<string, Record<string, unknown>>>();
      c.call.on('data', (r: DeltaDiscoveryResponseMsg) => {
        this.received.push({ type: r.type_url, version: r.system_version_info, names: r.resources.map((x) => x.name), removed: [...r.removed_resources], at: performance.now() });
        let m = decoded.get(r.type_url);
        if (!m) decoded.set(r.type_url, (m = new Map()));
        for (const x of r.resources) m.set(x.name, decodeResource(x.resource!));
        for (const n of r.removed_resources) m.delete(n);
        if (r.type_url === CLUSTER_TYPE) this.follow(ENDPOINT_TYPE, edsNames([...m.values()]));
        if (r.type_url === LISTENER_TYPE) this.follow(ROUTE_TYPE, routeNames([...m.values()]));
      });
      c.subscribe(CLUSTER_TYPE);
      c.subscribe(LISTENER_TYPE);
      c.subscribe(SECRET_TYPE, ['ROOTCA']);
    }
  }

  private follow(type: string, names: string[]): void {
    const key = names.join('\n');
    if (type === ENDPOINT_TYPE ? key === this.eds : key === this.rds) return;
    if (type === ENDPOINT_TYPE) this.eds = key;
    else this.rds = key;
    if (this.sotw) this.sotw.request(type, names);
    else this.delta!.subscribe(type, names);
  }

  get id(): string {
    return this.node.id!;
  }

  /** Responses received since `from` (an index into `received`). */
  since(from: number): Received[] {
    return this.received.slice(from);
  }

  close(): void {
    if (this.sotw) this.sotw.close();
    else this.delta!.close();
    this.ch.close();
  }
}

function nameOf(d: Record<string, unknown>): string {
  return String(d['name'] ?? d['cluster_name']);
}

export const ALL = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE];

/** True when every type the cache holds for the proxy has been ACKed at the cache's version. */
export function inSync(cp: ControlPlane, id: string): boolean {
  const st = cp.xdsServers.flatMap((x) => x.status()).find((s) => s.node.id === id);
  if (!st) return false;
  for (const t of ALL) {
    const v = cp.cache.get(id, t)?.version;
    if (v === undefined) return false;
    if (st.types.find((x) => x.typeUrl === t)?.versionAcked !== v) return false;
  }
  return true;
}

export async function getJson<T = unknown>(url: string): Promise<{ status: number; body: T }> {
  const r = await fetch(url);
  const text = await r.text();
  return { status: r.status, body: (r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text) as T };
}
