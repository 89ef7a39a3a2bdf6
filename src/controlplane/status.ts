/**
 * A client of control planes' debug servers: reads `/debug/syncz` and `/debug/remoteclusterz` and
 * renders the status table that `isle status` and `isle demo` print.
 */
/** What `/debug/syncz` returns per proxy (src/controlplane/debugserver.ts). */
export interface SynczProxy {
  id: string;
  cluster: string;
  protocol: string;
  types: Record<string, { sent?: string; acked?: string; lastNack?: { version: string; message: string } }>;
}

/** What `/debug/remoteclusterz` returns (src/controlplane/controlplane.ts). */
export interface RemoteClusterz {
  cluster: string;
  network: string;
  gateways: { address: string; port: number }[];
  remoteClusters: {
    name: string;
    address: string;
    network: string;
    state: string;
    lastError?: string;
    lastSyncTime?: number;
    services: number;
    endpoints: number;
  }[];
  subscribers: { cluster: string }[];
  /** Remote mode: the link to the central control plane (src/peering/centrallink.ts). */
  central?: {
    address: string;
    centralCluster?: string;
    connected: boolean;
    lastError?: string;
    resources: number;
    remoteClustersSeeCentral: boolean;
    seeCentralNamespaces?: string[];
    lastRejected?: { version: string; errors: string[] };
  };
  /** Central mode: the remote control planes connected (src/peering/central.ts). */
  remoteControlPlanes?: { cluster: string; configStreams: number; pushStreams: number; state: string; services: number; endpoints: number; lastSyncTime?: number }[];
  remoteClustersSeeCentral?: boolean;
  remoteClustersSeeCentralNamespaces?: string[];
}

export interface PlaneStatus {
  url: string;
  /** Set when the control plane could not be reached. */
  error?: string;
  proxies: SynczProxy[];
  remote?: RemoteClusterz;
  /** Local config the central control plane's overrides (from /debug/configz). */
  overridden?: string[];
  /** Config pushed although it cannot work, e.g. an undefined subset (from /debug/configz). */
  pushed?: string[];
}

const TYPES = ['CDS', 'LDS', 'EDS', 'RDS', 'SDS'];

/** istioctl proxy-status's words: SYNCED, NOT SENT, STALE, and the NACK when there is one. */
export function syncState(t: SynczProxy['types'][string] | undefined): string {
  if (!t || t.sent === undefined) return 'NOT SENT';
  if (t.lastNack && t.lastNack.version === t.sent) return 'NACKED';
  if (t.acked === t.sent) return 'SYNCED';
  return 'STALE';
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('   ').trimEnd()).join('\n');
}

function ago(ms: number | undefined, now: number): string {
  if (ms === undefined) return '-';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

/** Pure: the status report for a set of control planes. */
export function formatStatus(planes: readonly PlaneStatus[], now = Date.now()): string {
  const out: string[] = [];
  const proxyRows = [['NAME', 'CLUSTER', ...TYPES, 'XDS', 'CONTROL PLANE']];
  for (const p of planes) {
    const cpName = p.remote?.cluster ?? p.url;
    for (const x of [...p.proxies].sort((a, b) => (a.id < b.id ? -1 : 1))) {
      proxyRows.push([x.id, x.cluster, ...TYPES.map((t) => syncState(x.types[t])), x.protocol, cpName]);
    }
  }
  out.push(proxyRows.length > 1 ? table(proxyRows) : 'no proxies connected');
  const nacks = planes.flatMap((p) =>
    p.proxies.flatMap((x) => Object.entries(x.types).filter(([, t]) => t.lastNack).map(([type, t]) => `  ${x.id} ${type} v${t.lastNack!.version}: ${t.lastNack!.message}`)),
  );
  if (nacks.length > 0) out.push('', 'last NACKs:', ...nacks);
  const pushed = planes.flatMap((p) => (p.pushed ?? []).map((t) => `  ${p.remote?.cluster ?? p.url}: ${t}`));
  if (pushed.length > 0) out.push('', 'pushed with problems (requests on these routes fail):', ...pushed);

  out.push('');
  const rcRows = [['CONTROL PLANE', 'REMOTE CLUSTER', 'ADDRESS', 'NETWORK', 'STATUS', 'LAST SYNC', 'SERVICES', 'ENDPOINTS']];
  for (const p of planes) {
    for (const r of p.remote?.remoteClusters ?? []) {
      rcRows.push([p.remote!.cluster, r.name, r.address, r.network || '-', r.state + (r.lastError && r.state !== 'synced' ? ` (${r.lastError})` : ''), ago(r.lastSyncTime, now), String(r.services), String(r.endpoints)]);
    }
  }
  out.push(rcRows.length > 1 ? table(rcRows) : 'no remote clusters');
  const central = formatCentral(planes, now);
  if (central) out.push('', central);
  const down = planes.filter((p) => p.error);
  if (down.length > 0) out.push('', ...down.map((p) => `unreachable: ${p.url}: ${p.error}`));
  return out.join('\n') + '\n';
}

const inNamespaces = (ns: readonly string[] | undefined): string => (ns ? ` (namespaces ${ns.join(', ')})` : '');

/** Seed 001: who is central, who is remote, and which way discovery goes. */
function formatCentral(planes: readonly PlaneStatus[], now: number): string | undefined {
  const rows = [['CONTROL PLANE', 'ROLE', 'PEER', 'STATUS', 'REPLICAS', 'SERVICES', 'LAST SYNC', 'DISCOVERY']];
  const notes: string[] = [];
  for (const p of planes) {
    const r = p.remote;
    if (!r) continue;
    if (r.central) {
      const c = r.central;
      const status = c.connected ? 'connected' : `down, serving last config${c.lastError ? ` (${c.lastError})` : ''}`;
      const sees = c.remoteClustersSeeCentral ? `sees central${inNamespaces(c.seeCentralNamespaces)}` : 'does not see central (asymmetric)';
      rows.push([r.cluster, 'remote', `${c.centralCluster ?? '?'} at ${c.address}`, status, '-', `${c.resources} resources`, '-', sees]);
      if (c.lastRejected) notes.push(`  ${r.cluster}: rejected central config v${c.lastRejected.version}: ${c.lastRejected.errors.join('; ')}`);
    }
    for (const x of r.remoteControlPlanes ?? []) {
      const sees = r.remoteClustersSeeCentral ? `both ways${inNamespaces(r.remoteClustersSeeCentralNamespaces)}` : `${r.cluster} sees ${x.cluster} only`;
      rows.push([r.cluster, 'central', x.cluster, x.state, `${x.pushStreams} pushing, ${x.configStreams} subscribed`, String(x.services), ago(x.lastSyncTime, now), sees]);
    }
    for (const o of p.overridden ?? []) notes.push(`  ${r.cluster}: not applied, central config wins: ${o}`);
  }
  if (rows.length === 1 && notes.length === 0) return undefined;
  return [rows.length > 1 ? table(rows) : '', ...(notes.length ? ['central control plane notes:', ...notes] : [])].filter((l) => l !== '').join('\n');
}

/** GET a debug endpoint's JSON; non-2xx and timeouts throw. */
export async function getJson(url: string, timeoutMs: number): Promise<unknown> {
  const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  return r.json();
}

/** Reads one control plane's debug server; an unreachable one is reported, not fatal. */
export async function fetchPlane(url: string, timeoutMs = 3000): Promise<PlaneStatus> {
  const base = url.replace(/\/+$/, '');
  try {
    const [proxies, remote, configz] = await Promise.all([getJson(`${base}/debug/syncz`, timeoutMs), getJson(`${base}/debug/remoteclusterz`, timeoutMs), getJson(`${base}/debug/configz`, timeoutMs)]);
    const problems = (configz as { problems?: { text: string }[] }).problems ?? [];
    const overridden = problems.map((x) => x.text).filter((t) => /also defined by source central:/.test(t));
    const pushed = ((configz as { pushed?: { text: string }[] }).pushed ?? []).map((x) => x.text);
    return { url: base, proxies: proxies as SynczProxy[], remote: remote as RemoteClusterz, ...(overridden.length ? { overridden } : {}), ...(pushed.length ? { pushed } : {}) };
  } catch (e) {
    return { url: base, proxies: [], error: unreachable(e) };
  }
}

/** Why a debug endpoint could not be read, in one word where fetch gives one (ECONNREFUSED, …). */
export function unreachable(e: unknown): string {
  const cause = (e as { cause?: { code?: string; errors?: { code?: string }[] } }).cause;
  return cause?.code ?? cause?.errors?.[0]?.code ?? (e instanceof Error ? e.message : String(e));
}

/** The file `isle demo` writes so `isle status` finds its control planes without flags. */
export const DEMO_STATE_FILE = '.isle/demo.json';
