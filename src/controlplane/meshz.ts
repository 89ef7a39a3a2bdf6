/**
 * `/debug/meshz`: everything the mesh page shows, in one JSON document (ADR 0095) — the clusters
 * this control plane knows (its own and its peers'), their services and workloads, the request
 * edges between workloads with rates and error ratios, each connected proxy's sync state per xDS
 * type (ACKed version against the latest in the snapshot), and the health of peering links.
 */
import type { Registry } from '../registry/aggregate.js';
import { shortTypeName } from '../mesh/typeurls.js';
import type { ProxyStatus } from '../xds/server.js';
import type { Edge, MeshTraffic, ProxyScrape } from './meshstats.js';
import { syncState, type RemoteClusterz, type SynczProxy } from './status.js';

/** Lists longer than this are cut (the page is for people; /debug/registryz has everything). */
export const LIST_LIMIT = 1000;

export interface MeshzCluster {
  name: string;
  local: boolean;
  origin: 'local' | 'peer';
  /** A peer's shard kept after its link broke (ADR 0012). */
  stale: boolean;
  network: string;
  services: number;
  workloads: number;
  endpoints: number;
  /** Proxies of this cluster connected to this control plane. */
  proxies: number;
  /** For peers: the link's state (synced, connecting, …); for the local cluster: `local`. */
  link: string;
}

export interface MeshzService {
  hostname: string;
  name: string;
  namespace: string;
  clusters: readonly string[];
  ports: string[];
  workloads: { cluster: string; namespace: string; name: string; endpoints: number; healthy: number }[];
}

export interface MeshzWorkload {
  cluster: string;
  namespace: string;
  name: string;
  address: string;
  app: string;
  version: string;
  serviceAccount: string;
  health: string;
  services: string[];
}

export interface MeshzProxyType {
  /** SYNCED, STALE (ACK or push pending), NACKED, NOT SENT. */
  state: string;
  sent?: string;
  acked?: string;
  /** The version in this proxy's snapshot now: what it will get next. */
  latest?: string;
  nack?: { version: string; message: string; at: string };
}

export interface MeshzProxy {
  id: string;
  cluster: string;
  namespace: string;
  workload: string;
  protocol: string;
  peer: string;
  connectedSince: string;
  types: Record<string, MeshzProxyType>;
  stats: ProxyScrape;
}

export interface Meshz {
  generatedAt: string;
  cluster: string;
  clusters: MeshzCluster[];
  services: MeshzService[];
  workloads: MeshzWorkload[];
  edges: Edge[];
  proxies: MeshzProxy[];
  peering: {
    remoteClusters: (RemoteClusterz['remoteClusters'][number] & { lastSync?: string })[];
    /** Peers reading our export feed: `synced` when each type's sent version is ACKed. */
    subscribers: { cluster: string; state: 'synced' | 'pending'; connectedSince?: string }[];
    central?: RemoteClusterz['central'];
    remoteControlPlanes?: RemoteClusterz['remoteControlPlanes'];
  };
  traffic: { scrapedAt?: string; windowSeconds: number };
  truncated?: { services?: number; workloads?: number; proxies?: number };
}

export interface MeshzInput {
  cluster: string;
  statuses: readonly ProxyStatus[];
  /** The version of `typeUrl` in the snapshot under `key` (ProxyStatus.key). */
  latest: (key: string, typeUrl: string) => string | undefined;
  registry: Registry;
  remote: RemoteClusterz | undefined;
  traffic: MeshTraffic;
  now: number;
}

const iso = (ms: number) => new Date(ms).toISOString();
const str = (v: unknown, d = '') => (typeof v === 'string' ? v : d);

/** ACKed against latest: SYNCED only when the proxy has ACKed what its snapshot holds now. */
export function typeState(t: SynczProxy['types'][string], latest: string | undefined): string {
  const s = syncState(t);
  return s === 'SYNCED' && latest !== undefined && latest !== t.sent ? 'STALE' : s;
}

function cut<T>(list: T[], key: 'services' | 'workloads' | 'proxies', truncated: NonNullable<Meshz['truncated']>): T[] {
  if (list.length <= LIST_LIMIT) return list;
  truncated[key] = list.length - LIST_LIMIT;
  return list.slice(0, LIST_LIMIT);
}

/** What the export feed says of a subscriber (src/peering/export.ts `subscribers()`). */
interface ExportSubscriber {
  cluster: string;
  connectedSince?: number;
  types?: { versionSent?: string; versionAcked?: string }[];
}

function subscriberOf(x: { cluster: string }): Meshz['peering']['subscribers'][number] {
  const s = x as ExportSubscriber;
  const synced = (s.types ?? []).every((t) => t.versionSent === undefined || t.versionSent === t.versionAcked);
  return { cluster: s.cluster, state: synced ? 'synced' : 'pending', ...(typeof s.connectedSince === 'number' ? { connectedSince: iso(s.connectedSince) } : {}) };
}

export function buildMeshz(x: MeshzInput): Meshz {
  const reg = x.registry;
  const peers = x.remote?.remoteClusters ?? [];
  const proxiesByCluster = new Map<string, number>();
  for (const s of x.statuses) proxiesByCluster.set(s.node.cluster, (proxiesByCluster.get(s.node.cluster) ?? 0) + 1);

  const clusters: MeshzCluster[] = reg.clusters().map((name) => {
    const shard = reg.shard(name)!;
    const peer = peers.find((p) => p.name === name);
    const local = name === reg.localCluster;
    let endpoints = 0;
    for (const eps of shard.endpoints.values()) endpoints += eps.length;
    return {
      name,
      local,
      origin: shard.origin,
      stale: reg.isStale(name),
      network: local ? (x.remote?.network ?? '') : (peer?.network ?? shard.workloads[0]?.network ?? ''),
      services: shard.services.size,
      workloads: shard.workloads.length,
      endpoints,
      proxies: proxiesByCluster.get(name) ?? 0,
      link: local ? 'local' : (peer?.state ?? shard.origin),
    };
  });
  // A configured peer that never synced has no shard yet; the page still lists it.
  for (const p of peers) {
    if (clusters.some((c) => c.name === p.name)) continue;
    clusters.push({ name: p.name, local: false, origin: 'peer', stale: false, network: p.network, services: 0, workloads: 0, endpoints: 0, proxies: 0, link: p.state });
  }

  const servicesOf = new Map<string, string[]>();
  const services: MeshzService[] = reg.services().map((svc) => {
    const byWorkload = new Map<string, MeshzService['workloads'][number]>();
    for (const e of reg.allEndpoints(svc.hostname)) {
      const k = `${e.cluster}/${e.serviceAccount.namespace}/${e.workload}`;
      let w = byWorkload.get(k);
      if (!w) byWorkload.set(k, (w = { cluster: e.cluster, namespace: e.serviceAccount.namespace, name: e.workload, endpoints: 0, healthy: 0 }));
      w.endpoints++;
      if (e.health === 'HEALTHY') w.healthy++;
      const list = servicesOf.get(k) ?? [];
      if (!list.includes(svc.hostname)) list.push(svc.hostname);
      servicesOf.set(k, list);
    }
    return {
      hostname: svc.hostname,
      name: svc.name,
      namespace: svc.namespace,
      clusters: svc.clusters,
      ports: svc.ports.map((p) => `${p.port}/${p.protocol}`),
      workloads: [...byWorkload.values()],
    };
  });

  const workloads: MeshzWorkload[] = reg.clusters().flatMap((c) =>
    reg.shard(c)!.workloads.map((w) => ({
      cluster: w.cluster,
      namespace: w.namespace,
      name: w.name,
      address: w.address ?? '',
      app: w.labels['app'] ?? '',
      version: w.labels['version'] ?? '',
      serviceAccount: w.serviceAccount,
      health: w.health,
      services: servicesOf.get(`${w.cluster}/${w.namespace}/${w.name}`) ?? [],
    })),
  );

  const proxies: MeshzProxy[] = x.statuses
    .map((s) => {
      const types: Record<string, MeshzProxyType> = {};
      for (const t of s.types) {
        const latest = x.latest(s.key, t.typeUrl);
        const nack = t.lastNack;
        types[shortTypeName(t.typeUrl)] = {
          state: typeState({ ...(t.versionSent !== undefined ? { sent: t.versionSent } : {}), ...(t.versionAcked !== undefined ? { acked: t.versionAcked } : {}), ...(nack ? { lastNack: nack } : {}) }, latest),
          ...(t.versionSent !== undefined ? { sent: t.versionSent } : {}),
          ...(t.versionAcked !== undefined ? { acked: t.versionAcked } : {}),
          ...(latest !== undefined ? { latest } : {}),
          ...(nack ? { nack: { version: nack.version, message: nack.message, at: iso(nack.at) } } : {}),
        };
      }
      const md = s.node.metadata;
      return {
        id: s.node.id,
        cluster: s.node.cluster,
        namespace: str(md['NAMESPACE']),
        workload: str(md['WORKLOAD_NAME']),
        protocol: s.protocol,
        peer: s.peer,
        connectedSince: iso(s.connectedSince),
        types,
        stats: x.traffic.proxies[s.node.id] ?? { state: 'not read', error: 'not read yet' },
      };
    })
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

  const truncated: NonNullable<Meshz['truncated']> = {};
  const r = x.remote;
  return {
    generatedAt: iso(x.now),
    cluster: x.cluster,
    clusters: clusters.sort((a, b) => Number(b.local) - Number(a.local) || a.name.localeCompare(b.name)),
    services: cut(services, 'services', truncated),
    workloads: cut(workloads, 'workloads', truncated),
    edges: x.traffic.edges,
    proxies: cut(proxies, 'proxies', truncated),
    peering: {
      remoteClusters: peers.map((p) => ({ ...p, ...(p.lastSyncTime !== undefined ? { lastSync: iso(p.lastSyncTime) } : {}) })),
      subscribers: (r?.subscribers ?? []).map(subscriberOf),
      ...(r?.central ? { central: r.central } : {}),
      ...(r?.remoteControlPlanes?.length ? { remoteControlPlanes: r.remoteControlPlanes } : {}),
    },
    traffic: { ...(x.traffic.scrapedAt !== undefined ? { scrapedAt: iso(x.traffic.scrapedAt) } : {}), windowSeconds: x.traffic.windowSeconds },
    ...(Object.keys(truncated).length ? { truncated } : {}),
  };
}
