/**
 * The seed-000 topology on loopback, as data: two clusters on two networks, each with its own
 * control plane and east-west gateway; helloworld v1 in cluster-1, v2 in cluster-2, and sleep in
 * both. Every workload has its own loopback address (DESIGN §5): cluster-1 is 127.1.x.y and
 * cluster-2 is 127.2.x.y, so endpoints look as they would in Kubernetes.
 */

export interface DemoCluster {
  name: string;
  network: string;
  region: string;
  zone: string;
  /** The control plane's mTLS port (xDS + CA + peering feed). */
  controlPlane: string;
  debug: string;
  /** The east-west gateway's address; it listens on `<gatewayIp>:15443`. */
  gatewayIp: string;
  /** Network namespace the cluster runs in (`isle demo --netns`); absent: the host's loopback. */
  netns?: string;
  /** With `netns`: the first three octets of the cluster's pod network (its namespace is .1). */
  podNet?: string;
  /**
   * Control-plane replicas (seed 001's `replicas: 2`): each listens on its own address, and
   * `controlPlane` is then a relay in front of them (a Service VIP). `debug` is the first one's.
   */
  replicas?: { controlPlane: string; debug: string }[];
  /** Run as a remote control plane of this central one (`--central`), host:port. */
  central?: string;
}

/** A TCP relay the demo starts first: a WAN link with a delay, or a front for replicas. */
export interface DemoRelay {
  name: string;
  listen: string;
  targets: string[];
  delayMs: number;
}

export interface DemoWorkload {
  cluster: string;
  /** Deployment-like name, e.g. helloworld-v1. */
  name: string;
  app: 'helloworld' | 'httpbin' | 'sleep';
  version?: string;
  namespace: string;
  serviceAccount: string;
  ip: string;
  /** The service port the workload serves (its sidecar listens on `<ip>:<port>`). */
  port?: number;
  /** `region/zone` of the workload when it differs from its cluster's (locality scenarios). */
  locality?: string;
  /** Its own network namespace, a pod's (`isle demo --netns`): the sidecar captures its traffic. */
  netns?: string;
}

export interface DemoTopology {
  clusters: DemoCluster[];
  workloads: DemoWorkload[];
  relays?: DemoRelay[];
  /** `--netns`: the bridge joining the clusters' namespaces. */
  bridge?: NetnsBridge;
}

export const SEED_000: DemoTopology = {
  clusters: [
    { name: 'cluster-1', network: 'network1', region: 'region1', zone: 'zone1', controlPlane: '127.1.0.1:15012', debug: '127.1.0.1:15014', gatewayIp: '127.1.255.1' },
    { name: 'cluster-2', network: 'network2', region: 'region2', zone: 'zone1', controlPlane: '127.2.0.1:15012', debug: '127.2.0.1:15014', gatewayIp: '127.2.255.1' },
  ],
  workloads: [
    { cluster: 'cluster-1', name: 'helloworld-v1', app: 'helloworld', version: 'v1', namespace: 'default', serviceAccount: 'helloworld', ip: '127.1.0.10', port: 5000 },
    { cluster: 'cluster-2', name: 'helloworld-v2', app: 'helloworld', version: 'v2', namespace: 'default', serviceAccount: 'helloworld', ip: '127.2.0.10', port: 5000 },
    { cluster: 'cluster-1', name: 'sleep', app: 'sleep', namespace: 'default', serviceAccount: 'sleep', ip: '127.1.0.20' },
    { cluster: 'cluster-2', name: 'sleep', app: 'sleep', namespace: 'default', serviceAccount: 'sleep', ip: '127.2.0.20' },
  ],
};

/**
 * Names and addresses of `isle demo --netns` (ADR 0110). Only the bridge and the links into it
 * live in the host's namespace, so two demos side by side need different prefixes and subnets.
 */
export interface NetnsLayout {
  /** Prefix of every namespace and host link (`<prefix>cluster-1`, `<prefix>br0`, `<prefix>v1`). */
  prefix: string;
  /** First three octets of the /24 joining the clusters: cluster N is .N, the host .254. */
  bridgeNet: string;
}

export const DEFAULT_NETNS_LAYOUT: NetnsLayout = { prefix: 'isle-', bridgeNet: '10.250.0' };

/** Cluster N's pod network is POD_NET.N.0/24 (its namespace routes it at .1; pods from .10 on). */
export const POD_NET = '10.251';

/** The host side of the clusters' bridge (`--netns`). */
export interface NetnsBridge {
  name: string;
  address: string;
  prefix: number;
  /** The host end of each cluster's veth pair, by cluster name. */
  links: Record<string, string>;
}

/** Checks a layout (names must fit Linux's 15-byte interface names; the subnet must not be a pod network). */
export function checkNetnsLayout(l: NetnsLayout, clusters: number): string | undefined {
  if (!/^[a-z][a-z0-9-]{0,9}$/.test(l.prefix)) return `--netns-prefix: ${JSON.stringify(l.prefix)} must be 1-10 of a-z, 0-9, - (starting with a letter): interface names are at most 15 bytes`;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(l.bridgeNet);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) return `--netns-subnet: ${JSON.stringify(`${l.bridgeNet}.0/24`)} is not an IPv4 /24 (a.b.c.0/24)`;
  const [a, b, c] = m.slice(1).map(Number) as [number, number, number];
  if (`${a}.${b}` === POD_NET && c >= 1 && c <= clusters) return `--netns-subnet: ${l.bridgeNet}.0/24 is cluster ${c}'s pod network (${POD_NET}.1-${clusters}.0/24 are taken)`;
  if (a === 127 || a === 0 || a >= 224) return `--netns-subnet: ${l.bridgeNet}.0/24 is not a private unicast network`;
  return undefined;
}

/**
 * The same topology with each workload in its own network namespace, as a pod: cluster N's
 * namespace is its node and network (control plane, east-west gateway, a bridge for its pods at
 * POD_NET.N.1, NAT for the pods' way out), and the clusters' namespaces are joined by one bridge
 * in the host namespace carrying only the control planes' and gateways' addresses (bridgeNet.N).
 * Pods are not routable from the bridge, and their way out of their cluster reaches only port
 * 15443 (the gateways), so cross-network traffic can only pass through the east-west gateways.
 */
export function netnsTopology(base: DemoTopology, layout: NetnsLayout = DEFAULT_NETNS_LAYOUT): DemoTopology {
  const links: Record<string, string> = {};
  const clusters = base.clusters.map((c, i) => {
    const ip = `${layout.bridgeNet}.${i + 1}`;
    links[c.name] = `${layout.prefix}v${i + 1}`;
    return { ...c, controlPlane: `${ip}:15012`, debug: `${ip}:15014`, gatewayIp: ip, netns: `${layout.prefix}${c.name}`, podNet: `${POD_NET}.${i + 1}` };
  });
  const next = new Map<string, number>();
  const workloads = base.workloads.map((w) => {
    const c = clusters.find((x) => x.name === w.cluster);
    if (!c) throw new Error(`workload ${w.name}: unknown cluster ${w.cluster}`);
    const host = next.get(c.name) ?? 10;
    next.set(c.name, host + 1);
    return { ...w, ip: `${c.podNet}.${host}`, netns: `${layout.prefix}${w.cluster}-${w.name}` };
  });
  return { clusters, workloads, bridge: { name: `${layout.prefix}br0`, address: `${layout.bridgeNet}.254`, prefix: 24, links } };
}

/** The WorkloadGroup a demo workload joins through (named like the workload; its one address listed). */
export function workloadGroupOf(w: DemoWorkload, cluster: DemoCluster): string {
  return `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: ${w.name}
  namespace: ${w.namespace}
  annotations:
    isle.dev/workload-addresses: "${w.ip}"
spec:
  metadata:
    labels:
      app: ${w.app}
${w.version ? `      version: ${w.version}\n` : ''}  template:
    serviceAccount: ${w.serviceAccount}
    network: ${cluster.network}
${w.locality ? `    locality: ${w.locality}\n` : ''}`;
}

/**
 * One WorkloadGroup per workload of the cluster (named like the workload), and one for the
 * east-west gateway: a group is also what keeps an identity allowed to renew its certificate.
 */
export function workloadGroups(topo: DemoTopology, cluster: DemoCluster): string {
  const gateway = `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: istio-eastwestgateway
  namespace: istio-system
spec:
  metadata:
    labels:
      istio: eastwestgateway
  template:
    serviceAccount: isle-eastwestgateway
    network: ${cluster.network}
`;
  return [gateway, ...topo.workloads.filter((w) => w.cluster === cluster.name).map((w) => workloadGroupOf(w, cluster))].join('---\n');
}

/** `isle demo` with tracing: MeshConfig's short form in every cluster (ADR 0085). */
export interface DemoTracing {
  /** OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318. */
  endpoint: string;
  /** Fraction of new traces sampled; default 1 (every request). */
  sampling?: number;
}

/** One cluster's config directory: the files `isle demo` writes (and the user may edit live). */
export function clusterConfig(topo: DemoTopology, cluster: DemoCluster, tracing?: DemoTracing): Record<string, string> {
  const peers = topo.clusters.filter((c) => c.name !== cluster.name);
  return {
    'mesh.yaml': `# This cluster's control plane settings.
apiVersion: mesh.isle.dev/v1alpha1
kind: MeshConfig
metadata:
  name: mesh
spec:
  clusterName: ${cluster.name}
  network: ${cluster.network}
  defaultLocality: ${cluster.region}/${cluster.zone}
${tracing ? `  # Spans of every sidecar to an OTLP/HTTP collector (Jaeger, OpenTelemetry Collector: port 4318).
  tracing:
    otlp: {endpoint: "${tracing.endpoint}"}
    sampling: ${tracing.sampling ?? 1}
` : ''}`,
    // Seed 000 step 2: add every other cluster "for service discovery only".
    'remote-clusters.yaml': peers
      .map(
        (p) => `# Added for service discovery only: we read ${p.name}'s services and endpoints, never push to it.
apiVersion: mesh.isle.dev/v1alpha1
kind: RemoteCluster
metadata:
  name: ${p.name}
spec:
  address: "${p.controlPlane}"
  network: ${p.network}
  discoveryOnly: true
`,
      )
      .join('---\n'),
    // Istio's samples/helloworld and samples/sleep Services, in both clusters (namespace sameness).
    'helloworld.yaml': `apiVersion: v1
kind: Service
metadata:
  name: helloworld
  namespace: default
  labels:
    app: helloworld
    service: helloworld
spec:
  ports:
  - port: 5000
    name: http
  selector:
    app: helloworld
`,
    // Istio's VM guide: each workload joins through a WorkloadGroup. The group, not the sidecar,
    // says which labels (so which services) and which locality its endpoint has; the sidecar
    // registers only if its certificate is the group's service account. The demo's sidecars dial
    // their control plane from 127.0.0.1, so each group lists the one address it may register.
    'workload-groups.yaml': workloadGroups(topo, cluster),
    // sleep is a client only: its identity, no Service (the seed's port-80 Service would need root to bind).
    'sleep.yaml': `apiVersion: v1
kind: ServiceAccount
metadata:
  name: sleep
  namespace: default
`,
  };
}
