/**
 * What a peer's feed (subscribed by us, or pushed to us by a remote control plane) means for the
 * registry: the peer's shard, network and east-west gateways, read from the accepted resources of
 * the feed's ResourceStore. Everything the peer says about itself is checked: endpoints and
 * workloads must be the peer's own cluster (a peer cannot inject endpoints for us or a third one).
 */
import type { GatewayAddress } from '../model/pushcontext.js';
import { LABEL_NETWORK, type Endpoint, type RegistryProblem, type Service, type Workload } from '../registry/model.js';
import type { Shard } from '../registry/shard.js';
import type { ResourceStore } from '../xds/client/index.js';
import { endpointFromWire, PEER_CLUSTER_TYPE, PEER_ENDPOINTS_TYPE, PEER_SERVICE_TYPE, PEER_WORKLOAD_TYPE, type ClusterWire, type EndpointsWire, type PeeringResources } from './wire.js';

/** What a feed's accepted resources look like to the shard builder: one store, or several merged. */
export type FeedStore = Pick<ResourceStore<PeeringResources>, 'values'>;

/**
 * Several replicas' feeds of one cluster as one: services, workloads and the cluster by name (the
 * replicas read the same config, so a name means the same thing), and a service's endpoints as the
 * union of every replica's list (a proxy auto-registered at one replica is known only there).
 */
export function unionFeed(stores: readonly FeedStore[]): FeedStore {
  if (stores.length === 1) return stores[0]!;
  const endpoints = (): Map<string, EndpointsWire> => {
    const out = new Map<string, EndpointsWire>();
    for (const s of stores) {
      for (const [host, e] of s.values(PEER_ENDPOINTS_TYPE)) {
        const have = out.get(host);
        if (!have) {
          out.set(host, e);
          continue;
        }
        const key = (x: EndpointsWire['endpoints'][number]) => `${x.workload}|${x.address ?? ''}|${x.port}|${x.portName}`;
        const seen = new Set(have.endpoints.map(key));
        out.set(host, { hostname: host, endpoints: [...have.endpoints, ...e.endpoints.filter((x) => !seen.has(key(x)))] });
      }
    }
    return out;
  };
  return {
    values: <K extends keyof PeeringResources & string>(t: K): Map<string, PeeringResources[K]> =>
      (t === PEER_ENDPOINTS_TYPE ? endpoints() : new Map(stores.flatMap((s) => [...s.values(t)]))) as Map<string, PeeringResources[K]>,
  };
}

/** The peer's own description (one resource, named by the cluster). */
export function feedInfo(store: FeedStore): ClusterWire | undefined {
  return store.values(PEER_CLUSTER_TYPE).values().next().value;
}

/** The network the peer's endpoints are on: announced, else configured, else ''. */
export function feedNetwork(store: FeedStore, configured: string | undefined): string {
  return feedInfo(store)?.network || configured || '';
}

export function feedGateways(peer: string, store: FeedStore): GatewayAddress[] {
  return (feedInfo(store)?.gateways ?? []).map((g) => ({ address: g.address, port: g.port, cluster: peer }));
}

/** A peer's shard from its feed, in buildShard's shape: sorted, every service with an endpoints entry. */
export function feedShard(
  peer: string,
  store: FeedStore,
  configuredNetwork: string | undefined,
  /** Only these namespaces' services and workloads (a central's per-namespace discovery); undefined: all. */
  namespaces?: ReadonlySet<string>,
): { shard: Shard; warnings: string[] } {
  const seen = (ns: string) => namespaces === undefined || namespaces.has(ns);
  const problems: RegistryProblem[] = [];
  const network = feedNetwork(store, configuredNetwork);
  const warnings: string[] = [];
  const info = feedInfo(store);
  if (info?.network && configuredNetwork && info.network !== configuredNetwork) {
    warnings.push(`RemoteCluster ${peer} says network ${configuredNetwork}, the peer announces ${info.network}; using ${info.network}`);
  }
  const withNetwork = <T extends { network: string; labels: Readonly<Record<string, string>> }>(x: T): T => {
    if (x.network || !network) return x;
    return { ...x, network, labels: x.labels[LABEL_NETWORK] ? x.labels : { ...x.labels, [LABEL_NETWORK]: network } };
  };

  const workloads: Workload[] = [];
  for (const [key, w] of [...store.values(PEER_WORKLOAD_TYPE)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (w.cluster !== peer) {
      problems.push({ cluster: peer, resource: key, message: `peer ${peer} exported workload ${key} of cluster ${w.cluster}; ignored (a peer exports only its own cluster)` });
      continue;
    }
    if (seen(w.namespace)) workloads.push(withNetwork(w));
  }
  const services = new Map<string, Service>();
  const endpoints = new Map<string, Endpoint[]>();
  const wireServices = store.values(PEER_SERVICE_TYPE);
  const wireEndpoints = store.values(PEER_ENDPOINTS_TYPE);
  for (const hostname of [...wireServices.keys()].sort()) {
    const s = wireServices.get(hostname)!;
    if (!seen(s.namespace)) continue;
    services.set(hostname, {
      ...s,
      hostname,
      ports: s.ports,
      addresses: s.addresses,
      clusterAddresses: { [peer]: s.addresses },
      clusters: [peer],
    });
    const eps: Endpoint[] = [];
    for (const e of wireEndpoints.get(hostname)?.endpoints ?? []) {
      if (e.cluster !== peer) {
        problems.push({ cluster: peer, hostname, resource: e.workload, message: `peer ${peer} exported an endpoint of ${hostname} in cluster ${e.cluster}; ignored (a peer exports only its own cluster)` });
        continue;
      }
      eps.push(withNetwork(endpointFromWire(hostname, e, e.network)));
    }
    endpoints.set(hostname, eps);
  }
  return { shard: { cluster: peer, origin: 'peer', services, endpoints, workloads, problems }, warnings };
}
