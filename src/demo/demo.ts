/**
 * `isle demo`: seed 000 on one machine, out of real separate processes — a root and two
 * intermediates, two control planes that add each other for service discovery only, two east-west
 * gateways, helloworld v1 in cluster-1 and v2 in cluster-2, sleep in each — then seed 000's
 * verification from both clusters.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { caFiles, createIntermediate, createRoot, rootFiles, writeFilesAtomic, type IssuingCa } from '../pki/index.js';
import { bindProblem } from '../mesh/bindprobe.js';
import { createToken } from '../mesh/token.js';
import { IsleError } from '../errors.js';
import { fetchPlane, formatStatus, DEMO_STATE_FILE } from '../controlplane/status.js';
import { Supervisor, type Managed } from './supervisor.js';
import { netnsSupported, setupNetns, teardownNetns } from './netns.js';
import { checkNetnsLayout, clusterConfig, DEFAULT_NETNS_LAYOUT, netnsTopology, SEED_000, workloadGroupOf, type DemoCluster, type DemoTopology, type DemoTracing, type DemoWorkload, type NetnsLayout } from './topology.js';
import { curlIn, helloLoop, versionsOf, type Answer } from './verify.js';
import { SCENARIO_CATALOG } from './scenarios/catalog.js';
import type { Running } from './running.js';
import { acquireDemoLock, clearDemoState, defaultDemoDir, restoreFiles, userFiles, writeDemoState } from './lock.js';
import type { ChildProcess } from 'node:child_process';
import { findPrometheus, prometheusArgs, startPrometheus, writePrometheusConfig } from './prometheus.js';

export interface DemoOptions {
  /** Where certificates, config directories, tokens and logs go. Default `.isle/demo`. */
  dir?: string;
  /** Run the verification, print the result and stop (exit code says whether it passed). */
  check?: boolean;
  scenario?: string;
  out: (s: string) => void;
  /** Resolves when the user wants to stop (Ctrl-C); not used with `check`. */
  untilStopped?: () => Promise<unknown>;
  logLevel?: string;
  /**
   * Each cluster in its own network namespace, each workload in its own (a pod's) with a capturing
   * sidecar, the clusters joined only through control planes and gateways (root; ADR 0110).
   */
  netns?: boolean;
  /** Namespace names and the bridge subnet with `netns` (two demos side by side need different ones). */
  netnsLayout?: NetnsLayout;
  /**
   * Resolves when the user asks to stop (Ctrl-C), at any time: during start-up it stops what was
   * started (namespaces included) and the start fails with ERR_INTERRUPTED.
   */
  stopRequested?: Promise<unknown>;
  /** Start Debian's `prometheus` on the written scrape config (when the binary is present). */
  observability?: boolean;
  /** Prometheus's listen address with `observability`. Default 127.0.0.1:9090. */
  prometheusListen?: string;
  /** Scrape interval written into prometheus.yml. Default 5s. */
  scrapeInterval?: string;
  /** Every sidecar exports spans over OTLP/HTTP here (MeshConfig `tracing`, ADR 0085). */
  tracing?: DemoTracing;
  /** Seed 000 on other addresses (tests give each suite its own loopback range). */
  topology?: DemoTopology;
}

export const SCENARIOS: Record<string, string> = {
  'seed-000': 'two clusters on two networks, two control planes sharing one root, east-west gateways (default)',
  ...SCENARIO_CATALOG,
};

const EAST_WEST_PORT = 15443;
const OUTBOUND_PORT = 15001;

export type { Running } from './running.js';

/**
 * A sleep pod's `curl` loop: on the host through its sidecar's outbound proxy (`curl -x`), or,
 * with `--netns`, plain `curl` inside its own namespace, captured by its sidecar.
 */
export async function sleepRequests(sleep: DemoWorkload, n: number, url = 'http://helloworld:5000/hello', cancelled: () => boolean = () => false): Promise<Answer[]> {
  if (!sleep.netns) return helloLoop(sleep.ip, OUTBOUND_PORT, n, url);
  const out: Answer[] = [];
  for (let i = 0; i < n && !cancelled(); i++) out.push(await curlIn(sleep.netns, url));
  return out;
}

/** The seed's verification command, as the user would type it for `sleep`. */
export function sleepCommand(sleep: DemoWorkload, url = 'http://helloworld:5000/hello'): string {
  return sleep.netns ? `ip netns exec ${sleep.netns} curl -s ${url}` : `curl -x http://${sleep.ip}:${OUTBOUND_PORT} ${url}`;
}

function clusterOf(topo: DemoTopology, name: string): DemoCluster {
  const c = topo.clusters.find((x) => x.name === name);
  if (!c) throw new Error(`unknown cluster ${name}`);
  return c;
}

/** Every address the demo binds, checked up front so a taken one is named before anything starts. */
export function addressesToBind(topo: DemoTopology): string[] {
  const out: string[] = (topo.relays ?? []).map((x) => x.listen);
  for (const c of topo.clusters) {
    for (const cp of c.replicas ?? [{ controlPlane: c.controlPlane, debug: c.debug }]) out.push(cp.controlPlane, cp.debug);
    out.push(`${c.gatewayIp}:${EAST_WEST_PORT}`, `${c.gatewayIp}:15000`, `${c.gatewayIp}:15021`);
  }
  for (const w of topo.workloads) {
    out.push(`${w.ip}:15000`, `${w.ip}:15021`);
    out.push(w.port !== undefined ? `${w.ip}:${w.port}` : `${w.ip}:${OUTBOUND_PORT}`);
  }
  return out;
}

async function checkAddresses(topo: DemoTopology): Promise<void> {
  const found = await Promise.all(addressesToBind(topo).map(async (a) => ({ a, why: await bindProblem(a) })));
  const problems = found.filter((f) => f.why !== undefined).map((f) => `${f.a} is ${f.why}`);
  if (problems.length > 0) {
    throw new IsleError('ERR_USAGE', `cannot start the demo: ${problems.join('; ')} (is another \`isle demo\` running? stop it first)`);
  }
}

/** A bootstrap token for one identity, as `isle token create --out` writes it (mode 0600). */
async function writeToken(r: Pick<Running, 'dir' | 'cas'>, key: string, cluster: string, namespace: string, serviceAccount: string): Promise<string> {
  const { token } = await createToken({ ca: r.cas.get(cluster)!, namespace, serviceAccount, cluster, ttlSeconds: 24 * 3600 });
  const file = join(r.dir, 'tokens', `${key.replace(/[^a-zA-Z0-9.-]+/g, '_')}.jwt`);
  await writeFile(file, token, { mode: 0o600 });
  return file;
}

function proxyArgs(o: {
  mode: 'sidecar' | 'gateway' | 'ingress';
  cluster: DemoCluster;
  locality?: string | undefined;
  rootCert: string;
  token: string;
  ip: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  workloadGroup?: string;
  /** The workload name in metrics (Istio: the Deployment's name). */
  workload?: string;
  appPort?: [number, string];
  /** Transparent capture: the sidecar installs iptables rules in its own (the pod's) namespace. */
  capture?: boolean;
  logLevel: string;
}): string[] {
  const labels = Object.entries(o.labels).map(([k, v]) => `${k}=${v}`).join(',');
  return [
    'proxy',
    '--mode', o.mode,
    '--control-plane', o.cluster.controlPlane,
    '--ca-bundle', o.rootCert,
    '--token', o.token,
    '--ip', o.ip,
    '--namespace', o.namespace,
    '--service-account', o.serviceAccount,
    '--cluster', o.cluster.name,
    '--network', o.cluster.network,
    '--locality', o.locality ?? `${o.cluster.region}/${o.cluster.zone}`,
    '--admin', `${o.ip}:15000`,
    '--health', `${o.ip}:15021`,
    '--log-level', o.logLevel,
    ...(labels ? ['--labels', labels] : []),
    ...(o.workloadGroup ? ['--workload-group', o.workloadGroup] : []),
    ...(o.workload ? ['--workload', o.workload] : []),
    ...(o.appPort ? ['--app-port', `${o.appPort[0]}=${o.appPort[1].split(':').pop()}`] : []),
    ...(o.capture ? ['--capture'] : []),
  ];
}

/** Sends requests until every version answers (the clusters have converged) or the deadline passes. */
async function converge(r: Running, sleep: DemoWorkload, want: readonly string[], deadlineMs: number, cancelled: () => boolean): Promise<boolean> {
  const until = Date.now() + deadlineMs;
  const seen = new Set<string>();
  while (Date.now() < until && !cancelled()) {
    for (const v of versionsOf(await sleepRequests(sleep, 4, undefined, cancelled)).keys()) seen.add(v);
    if (want.every((v) => seen.has(v))) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

async function gatewayTraffic(topo: DemoTopology): Promise<string[]> {
  const lines: string[] = [];
  for (const c of topo.clusters) {
    let text = '';
    try {
      const r = await fetch(`http://${c.gatewayIp}:15000/stats/prometheus`, { signal: AbortSignal.timeout(2000) });
      text = await r.text();
    } catch (e) {
      lines.push(`  ${c.name} east-west gateway ${c.gatewayIp}:${EAST_WEST_PORT}: stats unavailable (${e instanceof Error ? e.message : String(e)})`);
      continue;
    }
    let connections = 0;
    let bytes = 0;
    let rejected = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith('#')) continue;
      const m = /^(\S+?)(\{[^}]*\})?\s+([0-9.e+]+)$/.exec(line);
      if (!m) continue;
      const [, name, , value] = m;
      if (/gateway.*connections_total$/.test(name!) || /gateway.*forwarded.*total$/.test(name!)) connections += Number(value);
      else if (/gateway.*bytes.*total$/.test(name!)) bytes += Number(value);
      else if (/gateway.*rejected.*total$/.test(name!)) rejected += Number(value);
    }
    lines.push(`  ${c.name.padEnd(10)} east-west gateway ${c.gatewayIp}:${EAST_WEST_PORT}   ${connections} connections passed through, ${bytes} bytes, ${rejected} refused`);
  }
  return lines;
}

/** Starts (or restarts) a cluster's control plane process (every replica); resolves when they serve. */
export async function startControlPlane(r: Running, c: DemoCluster): Promise<Managed> {
  const replicas = c.replicas ?? [{ controlPlane: c.controlPlane, debug: c.debug }];
  const started: Managed[] = [];
  for (const [i, cp] of replicas.entries()) {
    const { managed } = await r.sup.start({
      name: c.replicas ? `${c.name}-control-plane-${i + 1}` : `${c.name}-control-plane`,
      args: [
        'control-plane', '--config', join(r.dir, c.name), '--ca', join(r.dir, 'certs', c.name), '--listen', cp.controlPlane, '--debug-listen', cp.debug,
        '--east-west-gateway', `${c.gatewayIp}:${EAST_WEST_PORT}`, ...(c.central ? ['--central', c.central] : []), '--log-level', r.logLevel,
      ],
      ready: /^debug (\S+)/,
      ...(c.netns ? { netns: c.netns } : {}),
    });
    started.push(managed);
  }
  return started[0]!;
}

/**
 * Starts one workload: its app (helloworld) on a private port, then its sidecar, which gets its
 * certificate with a bootstrap token and its config from its cluster's control plane.
 */
/**
 * An ingress gateway in cluster `c` at `ip` (Istio's istio-ingressgateway, in istio-system with
 * its labels): it serves the Gateways of that cluster's config whose selector matches them.
 */
export async function startIngress(r: Running, c: DemoCluster, ip: string): Promise<Managed> {
  const sa = 'istio-ingressgateway-service-account';
  const token = await writeToken(r, `${c.name}/ingressgateway`, c.name, 'istio-system', sa);
  const { managed } = await r.sup.start({
    name: `${c.name}-ingressgateway`,
    args: proxyArgs({ mode: 'ingress', cluster: c, rootCert: r.rootCert, token, ip, namespace: 'istio-system', serviceAccount: sa, labels: { istio: 'ingressgateway', app: 'istio-ingressgateway' }, logLevel: r.logLevel }),
    ready: /^ready/,
    ...(c.netns ? { netns: c.netns } : {}),
  });
  return managed;
}

export async function startWorkload(r: Running, w: DemoWorkload): Promise<void> {
  const c = clusterOf(r.topo, w.cluster);
  // A pod's own namespace (app and sidecar share it, the sidecar captures), else its cluster's.
  const netns = w.netns ?? c.netns;
  let appPort: [number, string] | undefined;
  if (w.app !== 'sleep') {
    const { match } = await r.sup.start({ name: `${w.cluster}-${w.name}-app`, args: ['demo-app', w.app, ...(w.version ? ['--app-version', w.version] : [])], ready: /^listening (\S+) instance (\S+)/, ...(netns ? { netns } : {}) });
    r.appAddress.set(`${w.cluster}/${w.name}`, match[1]!);
    appPort = [w.port!, match[1]!];
  }
  // A workload added at run time joins as on a VM (Istio's guide): its WorkloadGroup goes into
  // the cluster's config first; the sidecar registers once the control plane has read it.
  if (!r.topo.workloads.some((x) => x.cluster === w.cluster && x.name === w.name)) {
    await writeFile(join(r.dir, w.cluster, `workload-group-${w.name}.yaml`), workloadGroupOf(w, c));
  }
  const token = await writeToken(r, `${w.cluster}/${w.name}`, w.cluster, w.namespace, w.serviceAccount);
  await r.sup.start({
    name: `${w.cluster}-${w.name}-sidecar`,
    args: proxyArgs({ mode: 'sidecar', cluster: c, locality: w.locality, rootCert: r.rootCert, token, ip: w.ip, namespace: w.namespace, serviceAccount: w.serviceAccount, labels: { app: w.app, ...(w.version ? { version: w.version } : {}) }, workloadGroup: w.name, workload: w.name, ...(appPort ? { appPort } : {}), capture: w.netns !== undefined, logLevel: r.logLevel }),
    ready: /^ready/,
    ...(netns ? { netns } : {}),
  });
}

export async function startDemo(o: DemoOptions): Promise<{ running: Running; ok: boolean; stop: () => Promise<void> }> {
  const scenario = o.scenario ?? 'seed-000';
  if (!(scenario in SCENARIOS)) {
    throw new IsleError('ERR_USAGE', `unknown scenario ${JSON.stringify(scenario)}; available: ${Object.keys(SCENARIOS).join(', ')}`);
  }
  // Traffic-policy scenarios (src/demo/scenarios): their own topology, config and verification.
  const def = scenario === 'seed-000' ? undefined : (await import('./scenarios/index.js')).scenarioByName(scenario);
  if (def && o.netns) throw new IsleError('ERR_USAGE', `--netns runs seed 000 only, not --scenario ${scenario}`);
  const base = o.topology ?? SEED_000;
  if (o.netns) {
    // Before anything is written or locked: not root, or a missing tool, is named at once.
    const why = (o.netnsLayout && checkNetnsLayout(o.netnsLayout, base.clusters.length)) || (await netnsSupported());
    if (why) throw new IsleError('ERR_USAGE', `--netns: ${why}`);
  }
  const topo = def ? def.topology : o.netns ? netnsTopology(base, o.netnsLayout ?? DEFAULT_NETNS_LAYOUT) : base;
  const dir = resolve(o.dir ?? defaultDemoDir(scenario));
  // Before anything touches the directory: a demo running there keeps its files.
  const release = await acquireDemoLock(dir, scenario);
  try {
    return await startLocked(o, { scenario, def, topo, dir, release });
  } catch (e) {
    // Whatever step failed, no namespace, link or pod resolv.conf is left half built.
    if (o.netns) await teardownNetns(topo);
    await release();
    throw e;
  }
}

async function startLocked(
  o: DemoOptions,
  x: { scenario: string; def: Awaited<ReturnType<typeof import('./scenarios/index.js')['scenarioByName']>> | undefined; topo: DemoTopology; dir: string; release: () => Promise<void> },
): Promise<{ running: Running; ok: boolean; stop: () => Promise<void> }> {
  const { scenario, def, topo, dir } = x;
  const say = o.out;
  const logLevel = o.logLevel ?? 'info';
  // Ctrl-C during start-up: the step under way finishes, then everything started is stopped.
  let interrupted = false;
  void o.stopRequested?.then(() => (interrupted = true));
  const checkpoint = (): void => {
    if (interrupted) throw new IsleError('ERR_STATE', 'interrupted while starting; everything started was stopped');
  };
  say(def ? `Isle demo — ${def.seed}, scenario ${scenario}: ${SCENARIOS[scenario]}\n` : `Isle demo — seed 000: ${SCENARIOS[scenario]}\n`);
  if (o.netns) {
    const stale = await setupNetns(topo);
    if (stale.length > 0) say(`  ! removed what an earlier run left: ${stale.join(', ')}\n`);
    say(`  ✓ network namespaces ${topo.clusters.map((c) => `${c.netns} (pods ${c.podNet}.0/24)`).join(', ')}, joined by ${topo.bridge!.name} only through control planes and gateways (${topo.clusters.map((c) => c.gatewayIp).join(', ')})\n`);
    say(`  ✓ one namespace per workload: ${topo.workloads.map((w) => w.netns).join(', ')}\n`);
  } else {
    await checkAddresses(topo);
  }

  // Fresh state each run; the directory is the user's to edit while the demo runs, so files the
  // user added to the config directories are kept across the fresh start (and said so).
  const generated = new Set(topo.clusters.flatMap((c) => Object.keys({ ...clusterConfig(topo, c), ...(def ? def.config(topo, c) : {}) }).map((f) => join(c.name, f))));
  const kept = await userFiles(dir, topo.clusters.map((c) => c.name), generated);
  await rm(dir, { recursive: true, force: true });
  for (const d of ['certs', 'tokens', 'logs', ...topo.clusters.map((c) => c.name)]) await mkdir(join(dir, d), { recursive: true });

  // 1. One root, one intermediate per cluster (seed 000 step 1: "reuse the root certificate").
  const root = await createRoot({ trustDomain: 'cluster.local' });
  await writeFilesAtomic(join(dir, 'certs', 'root'), rootFiles(root), { force: true });
  const cas = new Map<string, IssuingCa>();
  for (const c of topo.clusters) {
    const ca = await createIntermediate({ root, cluster: c.name });
    cas.set(c.name, ca);
    await writeFilesAtomic(join(dir, 'certs', c.name), caFiles(ca), { force: true });
  }
  const rootCert = join(dir, 'certs', 'root', 'root-cert.pem');
  say(`  ✓ shared root and intermediates for ${topo.clusters.map((c) => c.name).join(', ')}   ${join(dir, 'certs')}\n`);

  // 2. Config directories: MeshConfig, RemoteClusters (discovery only), the sample Services.
  for (const c of topo.clusters) {
    const files = { ...clusterConfig(topo, c, o.tracing), ...(def ? def.config(topo, c) : {}) };
    for (const [file, text] of Object.entries(files)) if (text !== '') await writeFile(join(dir, c.name, file), text);
  }
  if (kept.length > 0) {
    await restoreFiles(dir, kept);
    say(`  ! kept ${kept.length} file(s) you added to the config directories: ${kept.map((f) => f.path).join(', ')} (remove them to run the plain demo)\n`);
  }

  const exits: string[] = [];
  const sup = new Supervisor(join(dir, 'logs'), (m: Managed, code, signal) => {
    if (running.expectedExits?.has(m)) return;
    const msg = `  ! ${m.spec.name} exited unexpectedly (${signal ?? `code ${code}`}); log: ${m.logFile}\n`;
    exits.push(msg);
    say(msg);
  });
  const running: Running = { topo, dir, sup, appAddress: new Map(), cas, rootCert, logLevel, expectedExits: new Set() };
  let prometheus: ChildProcess | undefined;
  const stop = async () => {
    if (prometheus && prometheus.exitCode === null) {
      const p = prometheus;
      await new Promise<void>((r) => {
        p.once('exit', () => r());
        p.kill('SIGTERM');
      });
    }
    await sup.stopAll();
    await clearDemoState(dir, DEMO_STATE_FILE);
    if (o.netns) await teardownNetns(topo);
    await x.release();
  };
  try {
    // 3. Relays (WAN links, replica fronts), then control planes, each with its own CA and config.
    for (const x of topo.relays ?? []) {
      await sup.start({ name: `relay-${x.name}`, args: ['demo-relay', '--listen', x.listen, '--target', x.targets.join(','), '--delay-ms', String(x.delayMs)], ready: /^relaying / });
      say(`  ✓ relay ${x.name}   ${x.listen} → ${x.targets.join(', ')}${x.delayMs ? `   ${x.delayMs} ms each way` : ''}\n`);
    }
    for (const c of topo.clusters) {
      checkpoint();
      await startControlPlane(running, c);
      if (c.replicas) {
        say(`  ✓ ${c.name} remote control plane, ${c.replicas.length} replicas   ${c.replicas.map((x) => x.controlPlane).join(', ')} behind ${c.controlPlane}${c.central ? `   central ${c.central}` : ''}   debug ${c.replicas.map((x) => `http://${x.debug}`).join(', ')}   network ${c.network}\n`);
      } else {
        say(`  ✓ ${c.name} control plane   ${c.controlPlane} (mTLS: xDS, CA, peering)   debug http://${c.debug}   network ${c.network}\n`);
      }
    }
    // `isle status --dir` reads <dir>/state.json; without flags, the pointer (unless another live demo owns it).
    await writeDemoState(
      { dir, scenario, pid: process.pid, startedAt: new Date().toISOString(), controlPlanes: topo.clusters.map((c) => ({ cluster: c.name, grpc: c.controlPlane, debug: `http://${c.debug}` })) },
      DEMO_STATE_FILE,
    );

    // 4. East-west gateways.
    for (const c of topo.clusters) {
      checkpoint();
      const token = await writeToken(running, `${c.name}/eastwestgateway`, c.name, 'istio-system', 'isle-eastwestgateway');
      await sup.start({
        name: `${c.name}-eastwestgateway`,
        args: proxyArgs({ mode: 'gateway', cluster: c, rootCert, token, ip: c.gatewayIp, namespace: 'istio-system', serviceAccount: 'isle-eastwestgateway', labels: { istio: 'eastwestgateway', 'topology.istio.io/network': c.network }, logLevel }),
        ready: /^ready/,
        ...(c.netns ? { netns: c.netns } : {}),
      });
      say(`  ✓ ${c.name} east-west gateway   ${c.gatewayIp}:${EAST_WEST_PORT} (SNI passthrough)\n`);
    }

    // 5. Workloads: the app process, then its sidecar.
    for (const w of topo.workloads) {
      checkpoint();
      await startWorkload(running, w);
      say(`  ✓ ${w.cluster} ${w.name.padEnd(14)} ${w.ip}${w.port ? `:${w.port}` : ''}   sidecar (spiffe://cluster.local/ns/${w.namespace}/sa/${w.serviceAccount})\n`);
    }

    checkpoint();
    // 6. Prometheus: file_sd targets for every proxy and control plane; started with --observability.
    const prom = await writePrometheusConfig(dir, topo, o.scrapeInterval);
    const listen = o.prometheusListen ?? '127.0.0.1:9090';
    const bin = o.observability ? findPrometheus() : undefined;
    if (bin) {
      prometheus = await startPrometheus(bin, prom, listen, join(dir, 'logs', 'prometheus.log'));
      say(`  ✓ prometheus   http://${listen}   (targets ${prom.targets}; graph: http://${listen}/graph)\n`);
    } else {
      if (o.observability) say('  ! --observability: no `prometheus` binary on PATH (Debian: apt-get install prometheus)\n');
      say(`  ✓ prometheus scrape config ${prom.config}   run: prometheus ${prometheusArgs(prom, listen).join(' ')}\n`);
    }
  } catch (e) {
    await stop();
    throw e;
  }

  // 7. Seed 000's verification, from both clusters (a scenario runs its own instead).
  const versions = [...new Set(topo.workloads.filter((w) => w.version).map((w) => w.version!))].sort();
  let ok = true;
  if (def) {
    try {
      ok = await def.verify(running, say);
    } catch (e) {
      ok = false;
      say(`  ✗ scenario ${scenario} failed: ${e instanceof Error ? e.message : String(e)}\n`);
    }
  }
  for (const sleep of def ? [] : topo.workloads.filter((w) => w.app === 'sleep')) {
    if (interrupted) break;
    await converge(running, sleep, versions, 20_000, () => interrupted);
    say(
      sleep.netns
        ? `\nFrom ${sleep.cluster}: ${sleepCommand(sleep)}   (10 times, in sleep's own network namespace: no proxy settings, its sidecar captures the connection and answers the DNS query)\n`
        : `\nFrom ${sleep.cluster}: sh -c 'for i in $(seq 1 10); do ${sleepCommand(sleep, 'helloworld:5000/hello')}; done'\n`,
    );
    const answers: Answer[] = await sleepRequests(sleep, 10, undefined, () => interrupted);
    for (const a of answers) say(`${a.status === 200 ? a.body : `HTTP ${a.status} ${a.body}`}\n`);
    const seen = versionsOf(answers);
    const missing = versions.filter((v) => !seen.has(v));
    if (missing.length === 0) say(`  ✓ ${versions.map((v) => `${v}: ${seen.get(v)}`).join(', ')} — responses alternate between the clusters\n`);
    else {
      ok = false;
      say(`  ✗ no answer from ${missing.join(', ')} within 10 requests\n`);
    }
  }
  if (exits.length > 0 || interrupted) ok = false;

  // 8. Status: clusters, proxies and their sync state, remote clusters, gateway traffic.
  say('\nClusters\n');
  for (const c of topo.clusters) say(`  ${c.name.padEnd(10)} network ${c.network}   control plane ${c.controlPlane}   gateway ${c.gatewayIp}:${EAST_WEST_PORT}   config ${join(dir, c.name)}\n`);
  const planes = await Promise.all(topo.clusters.flatMap((c) => (c.replicas ?? [c]).map((x) => fetchPlane(`http://${x.debug}`))));
  say('\nProxies and remote clusters (isle status)\n');
  say(formatStatus(planes).replace(/^/gm, '  ').replace(/ +$/gm, ''));
  say('\nGateway traffic\n');
  for (const l of await gatewayTraffic(topo)) say(`${l}\n`);
  return { running, ok, stop };
}

/** Runs the demo as the CLI does: verification, then (unless `check`) keeps running until stopped. */
export async function runDemo(o: DemoOptions): Promise<number> {
  // Listening for Ctrl-C from the start: an interrupted start-up still removes what it made.
  const stopRequested = o.stopRequested ?? o.untilStopped?.() ?? new Promise(() => {});
  const { ok, stop, running } = await startDemo({ ...o, stopRequested });
  if (o.check) {
    await stop();
    o.out(ok ? '\ndemo check passed\n' : '\ndemo check FAILED\n');
    return ok ? 0 : 1;
  }
  const sleep = running.topo.workloads.find((w: DemoWorkload) => w.app === 'sleep')!;
  o.out(
    `\nThe mesh keeps running. Try:\n` +
      `  ${sleepCommand(sleep)}\n` +
      (sleep.netns ? `  ip netns exec ${sleep.netns} getent hosts helloworld   (the sidecar's DNS proxy answers)\n` : '') +
      `  npx isle status\n` +
      `  the mesh page: ${running.topo.clusters.map((c) => `http://${c.debug}/ui`).join(' or ')} (npx isle dashboard --open)\n` +
      `  edit ${running.topo.clusters.map((c) => `${join(running.dir, c.name)}/*.yaml`).join(' or ')} (watched live)\n` +
      `  logs in ${join(running.dir, 'logs')}\n` +
      `Press Ctrl-C to stop.\n`,
  );
  await stopRequested;
  o.out('\nstopping…\n');
  await stop();
  o.out('stopped\n');
  return ok ? 0 : 1;
}
