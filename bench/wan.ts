/**
 * The seeds' claim (issue 7, part 3): with a simulated WAN between two regions — a delay-injecting
 * TCP relay, 50 ms each way by default — how long does a change take to reach 200 proxies in
 * region 2, and what crosses the WAN, when
 *
 *   (a) one control plane in region 1 serves both regions: every region-2 proxy's xDS stream
 *       crosses the relay;
 *   (b) one control plane per region (multi-primary, discovery-only peering): region-2 proxies
 *       talk to the region-2 control plane; only the two peering connections cross the relay;
 *   (c) a remote control plane (seed 001, `isle control-plane --central`): region-2 proxies talk to
 *       the region-2 remote control plane, which receives mesh config from the central one in
 *       region 1 and pushes its own services back over one connection across the relay; the
 *       central enables `remoteClustersSeeCentral` so region-1 endpoints reach region 2 as in (a).
 *
 * Changes: an endpoint of a region-1 service moves (written to region 1's config), and an endpoint
 * of a region-2 service moves (written where its cluster's config lives: region 1's single control
 * plane in (a) — optimistic for (a), which in Kubernetes would also watch region 2's API server
 * across the WAN — and region 2's own control plane in (b)). Latency runs from the file write to
 * each proxy's ACK (worker processes, shared clock); WAN connections and bytes come from the relay.
 *
 * Env: ISLE_BENCH_WAN_PROXIES (200), ISLE_BENCH_WAN_DELAY_MS (50 each way), ISLE_BENCH_WAN_SERVICES
 * (100 per region), ISLE_BENCH_WAN_ENDPOINTS (1,000 per region), ISLE_BENCH_WAN_CHANGES (5).
 * `--smoke`: 10 proxies, 10 ms, 10 services and 50 endpoints per region, 1 change.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENDPOINT_TYPE } from '../src/xds/index.js';
import { clock, fmt, fmtBytes, loopbackIp, meshPki, percentile, sleep, startControlPlane, table, tempDir, type CommonOptions, type PartResult } from './lib/common.js';
import { DelayRelay, diff, sum, type RelayStats } from './lib/relay.js';
import { sidecarNode, XdsPool } from './lib/xdspool.js';
import { workloadEntryYaml, writeScaleConfig } from './cp-scale.js';

export interface WanOptions extends CommonOptions {
  proxies: number;
  delayMs: number;
  services: number;
  endpoints: number;
  changes: number;
}

export function wanDefaults(smoke: boolean, env: NodeJS.ProcessEnv = process.env): Omit<WanOptions, keyof CommonOptions> {
  const num = (k: string, d: number) => (env[k] ? Number(env[k]) : d);
  return {
    proxies: num('ISLE_BENCH_WAN_PROXIES', smoke ? 10 : 200),
    delayMs: num('ISLE_BENCH_WAN_DELAY_MS', smoke ? 10 : 50),
    services: num('ISLE_BENCH_WAN_SERVICES', smoke ? 10 : 100),
    endpoints: num('ISLE_BENCH_WAN_ENDPOINTS', smoke ? 50 : 1000),
    changes: num('ISLE_BENCH_WAN_CHANGES', smoke ? 1 : 5),
  };
}

const mesh = (cluster: string) => `apiVersion: mesh.isle.dev/v1alpha1
kind: MeshConfig
metadata:
  name: mesh
spec:
  clusterName: ${cluster}
  network: network1
  defaultLocality: ${cluster === 'cluster-1' ? 'region1/zone1' : 'region2/zone1'}
`;

const remoteCluster = (name: string, address: string) => `apiVersion: mesh.isle.dev/v1alpha1
kind: RemoteCluster
metadata:
  name: ${name}
spec:
  address: "${address}"
  network: network1
  discoveryOnly: true
`;

const edsName = (svc: number) => `outbound|80||svc-${svc}.default.svc.cluster.local`;

interface ChangeRow {
  kind: string;
  p50: number;
  p99: number;
  missing: number;
  wanBytesPerChange: number;
}

export interface ScenarioResult {
  scenario: string;
  firstConfigMs: number;
  firstConfigComplete: number;
  /** What crossed the WAN while the region-2 proxies got their first config (and, in (b), the peering sync). */
  wanSetup: RelayStats;
  /** Connections across the WAN open at steady state. */
  wanConnections: number;
  changes: ChangeRow[];
}

function regionConfig(root: string, region: 1 | 2, o: WanOptions): string {
  const d = join(root, `region${region}`);
  mkdirSync(d, { recursive: true });
  writeScaleConfig(d, o.services, o.endpoints, { firstService: region === 1 ? 0 : o.services, ipOctet: region === 1 ? 200 : 210, mesh: mesh(`cluster-${region}`) });
  return d;
}

async function changes(
  pool: XdsPool,
  relays: DelayRelay[],
  o: WanOptions,
  targets: { kind: string; dir: string; svc: number; ipOctet: number }[],
): Promise<ChangeRow[]> {
  const out: ChangeRow[] = [];
  for (const t of targets) {
    const lat: number[] = [];
    let missing = 0;
    const wan: number[] = [];
    for (let i = 0; i < o.changes; i++) {
      const before = sum(...relays.map((r) => r.snapshot()));
      const r = await pool.watch(
        Date.now() + i,
        ENDPOINT_TYPE,
        edsName(t.svc),
        async () => {
          const at = clock();
          const r2 = t.svc !== 0;
          writeFileSync(join(t.dir, r2 ? 'change-endpoint-r2.yaml' : 'change-endpoint.yaml'), workloadEntryYaml(r2 ? 'bench-ep-r2' : 'bench-ep', loopbackIp(t.ipOctet, i + 1), t.svc));
          return at;
        },
        20_000,
        o.smoke ? 100 : 500,
      );
      const d = diff(before, sum(...relays.map((x) => x.snapshot())));
      wan.push(d.bytesUp + d.bytesDown);
      lat.push(...r.latency.filter(Number.isFinite));
      missing += r.missing;
      o.log(`    ${t.kind} ${i + 1}/${o.changes}: p50 ${fmt(percentile(r.latency, 50))} ms, p99 ${fmt(percentile(r.latency, 99))} ms, missing ${r.missing}, WAN ${fmtBytes(d.bytesUp + d.bytesDown)}`);
      await sleep(200);
    }
    out.push({ kind: t.kind, p50: percentile(lat, 50), p99: percentile(lat, 99), missing, wanBytesPerChange: wan.reduce((a, b) => a + b, 0) / wan.length });
  }
  return out;
}

const layout = (n: number) => [
  { protocol: 'delta' as const, count: Math.ceil(n / 2) },
  { protocol: 'delta' as const, count: Math.floor(n / 2) },
];

async function oneControlPlane(o: WanOptions, root: string, caDir: string): Promise<ScenarioResult> {
  const dir = join(root, 'a');
  const r1 = regionConfig(dir, 1, o);
  const r2 = regionConfig(dir, 2, o);
  // One control plane: region 1's MeshConfig only.
  writeFileSync(join(r2, 'mesh.yaml'), '# (the single control plane uses region 1\'s MeshConfig)\n');
  writeFileSync(join(r1, 'change-endpoint.yaml'), workloadEntryYaml('bench-ep', loopbackIp(201, 0), 0));
  writeFileSync(join(r2, 'change-endpoint-r2.yaml'), workloadEntryYaml('bench-ep-r2', loopbackIp(211, 0), o.services));
  const cp = await startControlPlane({ configDir: dir, caDir });
  const relay = await DelayRelay.start(cp.plaintext, o.delayMs);
  const pool = await XdsPool.start(layout(o.proxies));
  try {
    await sleep(300);
    const s0 = relay.snapshot();
    const conn = await pool.connect(relay.address, (i) => sidecarNode(i, { ipOctet: 160, region: 'region2' }), 120_000);
    const setup = diff(s0, relay.snapshot());
    o.log(`  (a) ${o.proxies} region-2 proxies through the WAN: first full config after ${fmt(conn.wallMs)} ms; WAN ${setup.connections} connections, ${fmtBytes(setup.bytesUp + setup.bytesDown)}`);
    await sleep(o.smoke ? 200 : 1000);
    const rows = await changes(pool, [relay], o, [
      { kind: 'region-1 endpoint change', dir: r1, svc: 0, ipOctet: 201 },
      { kind: 'region-2 endpoint change', dir: r2, svc: o.services, ipOctet: 211 },
    ]);
    return { scenario: '(a) one control plane in region 1', firstConfigMs: conn.wallMs, firstConfigComplete: conn.times.filter(Number.isFinite).length, wanSetup: setup, wanConnections: o.proxies, changes: rows };
  } finally {
    await pool.close();
    await relay.close();
    await cp.child.stop();
  }
}

/** Polls `check` every 100 ms until it is true or `timeoutMs` passes; a throw (not up yet) counts as false. */
async function pollUntil(timeoutMs: number, check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await sleep(100);
  }
  return false;
}

async function remoteclusterz<T>(debug: string): Promise<T> {
  return (await (await fetch(`${debug}/debug/remoteclusterz?pretty=false`)).json()) as T;
}

function waitPeers(debug: string, wantServices: number, timeoutMs: number): Promise<boolean> {
  return pollUntil(timeoutMs, async () => {
    const r = await remoteclusterz<{ remoteClusters: { services: number; lastSyncTime?: number }[] }>(debug);
    return r.remoteClusters.length > 0 && r.remoteClusters.every((p) => p.lastSyncTime !== undefined && p.services >= wantServices);
  });
}

async function multiPrimary(o: WanOptions, root: string, caDirs: Map<string, string>): Promise<ScenarioResult> {
  const dir = join(root, 'b');
  const r1 = regionConfig(dir, 1, o);
  const r2 = regionConfig(dir, 2, o);
  writeFileSync(join(r1, 'change-endpoint.yaml'), workloadEntryYaml('bench-ep', loopbackIp(201, 0), 0));
  writeFileSync(join(r2, 'change-endpoint-r2.yaml'), workloadEntryYaml('bench-ep-r2', loopbackIp(211, 0), o.services));
  const cp1 = await startControlPlane({ configDir: r1, caDir: caDirs.get('cluster-1')! });
  const cp2 = await startControlPlane({ configDir: r2, caDir: caDirs.get('cluster-2')! });
  // Each control plane reaches the other's export feed (mTLS) only through the WAN.
  const to1 = await DelayRelay.start(cp1.mtls, o.delayMs);
  const to2 = await DelayRelay.start(cp2.mtls, o.delayMs);
  const pool = await XdsPool.start(layout(o.proxies));
  try {
    const t0 = clock();
    writeFileSync(join(r1, 'remote-clusters.yaml'), remoteCluster('cluster-2', to2.address));
    writeFileSync(join(r2, 'remote-clusters.yaml'), remoteCluster('cluster-1', to1.address));
    const synced = (await waitPeers(cp2.debug, o.services, 60_000)) && (await waitPeers(cp1.debug, o.services, 60_000));
    o.log(`  (b) peering ${synced ? 'synced' : 'NOT synced'} after ${fmt(clock() - t0)} ms`);
    await sleep(500);
    const s0 = sum(to1.snapshot(), to2.snapshot());
    const conn = await pool.connect(cp2.plaintext, (i) => sidecarNode(i, { ipOctet: 160, cluster: 'cluster-2', region: 'region2' }), 120_000);
    const setup = sum(to1.snapshot(), to2.snapshot());
    o.log(`  (b) ${o.proxies} region-2 proxies on the region-2 control plane: first full config after ${fmt(conn.wallMs)} ms; WAN ${setup.connections} connections (peering), ${fmtBytes(setup.bytesUp + setup.bytesDown)} in all, ${fmtBytes(diff(s0, setup).bytesUp + diff(s0, setup).bytesDown)} while the proxies connected`);
    await sleep(o.smoke ? 200 : 1000);
    const rows = await changes(pool, [to1, to2], o, [
      { kind: 'region-1 endpoint change', dir: r1, svc: 0, ipOctet: 201 },
      { kind: 'region-2 endpoint change', dir: r2, svc: o.services, ipOctet: 211 },
    ]);
    return { scenario: '(b) multi-primary, one control plane per region', firstConfigMs: conn.wallMs, firstConfigComplete: conn.times.filter(Number.isFinite).length, wanSetup: setup, wanConnections: setup.connections, changes: rows };
  } finally {
    await pool.close();
    await to1.close();
    await to2.close();
    await cp1.child.stop();
    await cp2.child.stop();
  }
}

function waitRemote(centralDebug: string, remoteDebug: string, wantServices: number, timeoutMs: number): Promise<boolean> {
  type Z = { remoteControlPlanes?: { services: number }[]; central?: { connected: boolean; centralDiscovery?: { services: number; lastSyncTime?: number } } };
  return pollUntil(timeoutMs, async () => {
    const [c, r] = await Promise.all([remoteclusterz<Z>(centralDebug), remoteclusterz<Z>(remoteDebug)]);
    const pushed = (c.remoteControlPlanes ?? []).some((x) => x.services >= wantServices);
    const seen = (r.central?.centralDiscovery?.services ?? 0) >= wantServices;
    return pushed && seen && r.central?.connected === true;
  });
}

async function remoteControlPlane(o: WanOptions, root: string, caDirs: Map<string, string>): Promise<ScenarioResult> {
  const dir = join(root, 'c');
  const r1 = regionConfig(dir, 1, o);
  const r2 = regionConfig(dir, 2, o);
  // The central lets the remote cluster discover its services (as (a) and (b) do).
  writeFileSync(join(r1, 'mesh.yaml'), `${mesh('cluster-1')}  remoteClustersSeeCentral: true\n`);
  writeFileSync(join(r1, 'change-endpoint.yaml'), workloadEntryYaml('bench-ep', loopbackIp(201, 0), 0));
  writeFileSync(join(r2, 'change-endpoint-r2.yaml'), workloadEntryYaml('bench-ep-r2', loopbackIp(211, 0), o.services));
  const cp1 = await startControlPlane({ configDir: r1, caDir: caDirs.get('cluster-1')! });
  // The remote reaches the central only through the WAN.
  const to1 = await DelayRelay.start(cp1.mtls, o.delayMs);
  const t0 = clock();
  const cp2 = await startControlPlane({ configDir: r2, caDir: caDirs.get('cluster-2')!, extra: ['--central', to1.address] });
  const pool = await XdsPool.start(layout(o.proxies));
  try {
    const synced = await waitRemote(cp1.debug, cp2.debug, o.services, 60_000);
    o.log(`  (c) remote control plane ${synced ? 'synced with the central one' : 'NOT synced'} after ${fmt(clock() - t0)} ms`);
    await sleep(500);
    const s0 = to1.snapshot();
    const conn = await pool.connect(cp2.plaintext, (i) => sidecarNode(i, { ipOctet: 160, cluster: 'cluster-2', region: 'region2' }), 120_000);
    const setup = to1.snapshot();
    o.log(`  (c) ${o.proxies} region-2 proxies on the remote control plane: first full config after ${fmt(conn.wallMs)} ms; WAN ${setup.connections} connection(s), ${fmtBytes(setup.bytesUp + setup.bytesDown)} in all, ${fmtBytes(diff(s0, setup).bytesUp + diff(s0, setup).bytesDown)} while the proxies connected`);
    await sleep(o.smoke ? 200 : 1000);
    const rows = await changes(pool, [to1], o, [
      { kind: 'region-1 endpoint change', dir: r1, svc: 0, ipOctet: 201 },
      { kind: 'region-2 endpoint change', dir: r2, svc: o.services, ipOctet: 211 },
    ]);
    return { scenario: '(c) remote control plane', firstConfigMs: conn.wallMs, firstConfigComplete: conn.times.filter(Number.isFinite).length, wanSetup: setup, wanConnections: setup.connections, changes: rows };
  } finally {
    await pool.close();
    await cp2.child.stop();
    await to1.close();
    await cp1.child.stop();
  }
}

export async function runWan(o: WanOptions): Promise<PartResult> {
  const { dir, remove } = tempDir('wan-');
  try {
    const pki = await meshPki(dir, ['cluster-1', 'cluster-2']);
    o.log(`wan: ${o.proxies} proxies in region 2, ${o.delayMs} ms each way, ${o.services} services and ${o.endpoints} endpoints per region`);
    const a = await oneControlPlane(o, dir, pki.caDirs.get('cluster-1')!);
    const b = await multiPrimary(o, dir, pki.caDirs);
    const c = await remoteControlPlane(o, dir, pki.caDirs);
    const results = [a, b, c];
    return { name: 'wan', markdown: wanMarkdown(results, o), data: { options: { ...o, log: undefined }, results }, notes: [] };
  } finally {
    remove();
  }
}

export function wanMarkdown(results: ScenarioResult[], o: Pick<WanOptions, 'proxies' | 'delayMs' | 'services' | 'endpoints'>): string {
  const [a, b, c] = results;
  const col = (s: ScenarioResult | undefined, f: (s: ScenarioResult) => string) => (s ? f(s) : '—');
  const ch = (s: ScenarioResult, kind: string) => s.changes.find((c) => c.kind === kind);
  const lat = (kind: string) => (s: ScenarioResult) => {
    const c = ch(s, kind);
    return c ? `${fmt(c.p50)} / ${fmt(c.p99)}${c.missing ? ` (${c.missing} missed)` : ''}` : '—';
  };
  const wanB = (kind: string) => (s: ScenarioResult) => fmtBytes(ch(s, kind)?.wanBytesPerChange);
  const rows: string[][] = [
    ['region-1 endpoint change → 200 region-2 proxies, p50 / p99 ms', col(a, lat('region-1 endpoint change')), col(b, lat('region-1 endpoint change')), col(c, lat('region-1 endpoint change'))],
    ['region-2 endpoint change → region-2 proxies, p50 / p99 ms', col(a, lat('region-2 endpoint change')), col(b, lat('region-2 endpoint change')), col(c, lat('region-2 endpoint change'))],
    ['first full config of all region-2 proxies', col(a, (s) => `${fmt(s.firstConfigMs)} ms`), col(b, (s) => `${fmt(s.firstConfigMs)} ms`), col(c, (s) => `${fmt(s.firstConfigMs)} ms`)],
    ['connections across the WAN', col(a, (s) => fmt(s.wanConnections)), col(b, (s) => `${fmt(s.wanConnections)} (peering)`), col(c, (s) => `${fmt(s.wanConnections)} (one per replica)`)],
    ['bytes across the WAN: initial sync', col(a, (s) => fmtBytes(s.wanSetup.bytesUp + s.wanSetup.bytesDown)), col(b, (s) => fmtBytes(s.wanSetup.bytesUp + s.wanSetup.bytesDown)), col(c, (s) => fmtBytes(s.wanSetup.bytesUp + s.wanSetup.bytesDown))],
    ['bytes across the WAN per region-1 endpoint change', col(a, wanB('region-1 endpoint change')), col(b, wanB('region-1 endpoint change')), col(c, wanB('region-1 endpoint change'))],
    ['bytes across the WAN per region-2 endpoint change', col(a, wanB('region-2 endpoint change')), col(b, wanB('region-2 endpoint change')), col(c, wanB('region-2 endpoint change'))],
  ].map((r) => r.map((x) => x.replace('200 region-2', `${o.proxies} region-2`)));
  return [
    `${fmt(o.proxies)} simulated proxies (delta xDS, worker processes) in region 2; WAN = a TCP relay adding ${o.delayMs} ms each way (${o.delayMs * 2} ms round trip); ${fmt(o.services)} services and ${fmt(o.endpoints)} endpoints per region; latency from the file write to each proxy's ACK.`,
    '',
    table(['', '(a) one control plane in region 1', '(b) multi-primary, one per region', '(c) remote control plane'], rows),
    '',
    '- In (a) the region-2 change is written to the single control plane\'s own config directory, so only the push crosses the WAN; with Kubernetes the control plane would also watch region 2\'s API server across it.',
    '- In (c) the region-1 change reaches region 2 as discovery from the central (remoteClustersSeeCentral: true); the region-2 change is written to the remote control plane\'s own config, so nothing needs to cross the WAN before region-2 proxies get it (only the export pushed to the central does).',
    '- Changes that arrive from a peer or the central were debounced at their source and skip the local quiet period (ADR 0031).',
    '- The relay delays data, not the TCP handshake.',
  ].join('\n');
}
