/**
 * A small two-cluster world for the generator tests, written as registry model objects directly
 * (not through the registry) so the goldens change only when the generators do.
 */
import { buildPushContext, type PushContext, type PushContextInput } from '../../src/model/pushcontext.js';
import { formatProxyId, proxyFromNode, withInbound, type Proxy } from '../../src/model/proxy.js';
import type { DestinationRuleSpec } from '../../src/config/kinds/networking.js';
import type { Resource } from '../../src/config/types.js';
import { topologyLabels, type Endpoint, type Health, type Locality, type Service, type ServicePort } from '../../src/registry/model.js';

const src = { file: 'test.yaml', line: 1 };

export function svc(name: string, namespace: string, ports: ServicePort[], extra: Partial<Service> = {}): Service {
  return {
    hostname: `${name}.${namespace}.svc.cluster.local`,
    name,
    namespace,
    ports,
    addresses: [],
    clusterAddresses: {},
    resolution: 'STATIC',
    location: 'MESH_INTERNAL',
    kind: 'Service',
    clusters: ['cluster-1'],
    ...extra,
  };
}

export const loc = (region: string, zone = '', subzone = ''): Locality => ({ region, zone, subzone });

export interface EpOpts {
  address?: string;
  port: number;
  servicePort: number;
  portName: string;
  cluster?: string;
  network?: string;
  locality?: Locality;
  sa?: string;
  labels?: Record<string, string>;
  health?: Health;
  weight?: number;
  workload: string;
}

export function ep(s: Service, o: EpOpts): Endpoint {
  const cluster = o.cluster ?? 'cluster-1';
  const network = o.network ?? 'network1';
  const locality = o.locality ?? loc('us-east', 'us-east-1a');
  return {
    hostname: s.hostname,
    portName: o.portName,
    servicePort: o.servicePort,
    ...(o.address !== undefined ? { address: o.address } : {}),
    port: o.port,
    cluster,
    network,
    locality,
    serviceAccount: { namespace: s.namespace, name: o.sa ?? 'default' },
    labels: topologyLabels(o.labels ?? {}, { locality, network, cluster }),
    health: o.health ?? 'HEALTHY',
    ...(o.weight !== undefined ? { weight: o.weight } : {}),
    workload: o.workload,
    source: 'WorkloadEntry',
  };
}

/** helloworld: http 5000 and grpc 9000 → 9090; v1 in cluster-1 (network1), v2 in cluster-2 (network2). */
export const helloworld = svc('helloworld', 'sample', [
  { name: 'http', port: 5000, targetPort: 5000, protocol: 'HTTP' },
  { name: 'grpc', port: 9000, targetPort: 9090, protocol: 'GRPC' },
], { clusters: ['cluster-1', 'cluster-2'] });

export const sleep = svc('sleep', 'sample', [{ name: 'http', port: 80, targetPort: 8080, protocol: 'HTTP' }]);

/** Spread over three regions for the locality test. */
export const reviews = svc('reviews', 'bookinfo', [{ name: 'http', port: 9080, targetPort: 9080, protocol: 'HTTP' }]);

export const extStatic = svc('ext-static', 'sample', [{ name: 'http', port: 8080, targetPort: 8080, protocol: 'HTTP' }], {
  hostname: 'api.partner.example',
  kind: 'ServiceEntry',
  location: 'MESH_EXTERNAL',
  resolution: 'STATIC',
  addresses: ['240.0.0.10'],
});

export const extDns = svc('httpbin', 'sample', [
  { name: 'http', port: 80, targetPort: 80, protocol: 'HTTP' },
  { name: 'tls', port: 443, targetPort: 443, protocol: 'TLS' },
], { hostname: 'httpbin.org', kind: 'ServiceEntry', location: 'MESH_EXTERNAL', resolution: 'DNS' });

export const extRoundRobin = svc('ip-api', 'sample', [{ name: 'http', port: 80, targetPort: 80, protocol: 'HTTP' }], {
  hostname: 'ip-api.com',
  kind: 'ServiceEntry',
  location: 'MESH_EXTERNAL',
  resolution: 'DNS_ROUND_ROBIN',
});

const hwEndpoints = (s: Service, sp: number, tp: number, name: string): Endpoint[] => [
  ep(s, { address: '127.1.0.10', port: tp, servicePort: sp, portName: name, sa: 'helloworld', labels: { app: 'helloworld', version: 'v1' }, workload: 'helloworld-v1' }),
  ep(s, {
    address: '127.2.0.10', port: tp, servicePort: sp, portName: name, cluster: 'cluster-2', network: 'network2',
    locality: loc('us-west', 'us-west-1a'), sa: 'helloworld', labels: { app: 'helloworld', version: 'v2' }, workload: 'helloworld-v2',
  }),
];

export const endpoints: Endpoint[] = [
  ...hwEndpoints(helloworld, 5000, 5000, 'http'),
  ...hwEndpoints(helloworld, 9000, 9090, 'grpc'),
  ep(sleep, { address: '127.1.0.20', port: 8080, servicePort: 80, portName: 'http', sa: 'sleep', labels: { app: 'sleep' }, workload: 'sleep' }),
  // Three regions, two zones in one, weights and an unhealthy endpoint.
  ep(reviews, { address: '127.1.0.31', port: 9080, servicePort: 9080, portName: 'http', sa: 'reviews', locality: loc('us-east', 'us-east-1a'), labels: { app: 'reviews' }, workload: 'reviews-a1' }),
  ep(reviews, { address: '127.1.0.32', port: 9080, servicePort: 9080, portName: 'http', sa: 'reviews', locality: loc('us-east', 'us-east-1a'), weight: 3, labels: { app: 'reviews' }, workload: 'reviews-a2' }),
  ep(reviews, { address: '127.1.0.33', port: 9080, servicePort: 9080, portName: 'http', sa: 'reviews', locality: loc('us-east', 'us-east-1b', 'rack-7'), labels: { app: 'reviews' }, workload: 'reviews-b1' }),
  ep(reviews, { address: '127.1.0.34', port: 9080, servicePort: 9080, portName: 'http', sa: 'reviews-legacy', locality: loc('eu-west', 'eu-west-1a'), health: 'UNHEALTHY', labels: { app: 'reviews' }, workload: 'reviews-c1' }),
  ep(reviews, { address: '127.1.0.35', port: 9080, servicePort: 9080, portName: 'http', sa: 'reviews', locality: loc('ap-south', 'ap-south-1a'), weight: 2, labels: { app: 'reviews' }, workload: 'reviews-d1' }),
  ep(extStatic, { address: '10.10.0.2', port: 8080, servicePort: 8080, portName: 'http', network: '', locality: loc(''), workload: 'ext-static-1' }),
  ep(extStatic, { address: '10.10.0.1', port: 8080, servicePort: 8080, portName: 'http', network: '', locality: loc(''), workload: 'ext-static-0' }),
  ep(extDns, { address: 'httpbin.org', port: 80, servicePort: 80, portName: 'http', network: '', locality: loc(''), workload: 'httpbin.org' }),
  ep(extDns, { address: 'httpbin.org', port: 443, servicePort: 443, portName: 'tls', network: '', locality: loc(''), workload: 'httpbin.org' }),
  ep(extRoundRobin, { address: 'ip-api.com', port: 80, servicePort: 80, portName: 'http', network: '', locality: loc(''), workload: 'ip-api.com' }),
];

export const helloworldDr: Resource<DestinationRuleSpec> = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'DestinationRule',
  metadata: { name: 'helloworld', namespace: 'sample' },
  spec: { host: 'helloworld', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] },
  source: src,
};

export const ROOT_PEM = '-----BEGIN CERTIFICATE-----\nTUlJQnRlc3Ryb290\n-----END CERTIFICATE-----\n';

export function push(over: Partial<PushContextInput> = {}): PushContext {
  return buildPushContext({
    version: 'v1',
    mesh: { trustDomain: 'cluster.local', clusterName: 'cluster-1', network: 'network1', rootNamespace: 'istio-system' },
    services: [helloworld, sleep, reviews, extStatic, extDns, extRoundRobin],
    endpoints,
    destinationRules: [helloworldDr],
    networkGateways: { network2: [{ address: '127.2.0.100', port: 15443, cluster: 'cluster-2' }] },
    trustBundlePem: ROOT_PEM,
    ...over,
  });
}

export function sidecar(p: PushContext, ip: string, workload: string, namespace: string, metadata: Record<string, unknown> = {}): Proxy {
  return withInbound(
    proxyFromNode(
      {
        id: formatProxyId('sidecar', ip, workload, namespace),
        metadata: { NAMESPACE: namespace, NETWORK: 'network1', CLUSTER_ID: 'cluster-1', ...metadata },
        locality: { region: 'us-east', zone: 'us-east-1a' },
      },
      { cluster: 'cluster-1' },
    ),
    p,
  );
}

/** helloworld-v1's sidecar: the app listens on 127.0.0.1:15000 for 5000 and 127.0.0.1:19090 for 9090. */
export function helloworldSidecar(p: PushContext): Proxy {
  return sidecar(p, '127.1.0.10', 'helloworld-v1', 'sample', {
    SERVICE_ACCOUNT: 'helloworld',
    LABELS: { app: 'helloworld', version: 'v1' },
    APP_PORTS: { '5000': 15000, '9090': '19090' },
  });
}

export function sleepSidecar(p: PushContext, extra: Record<string, unknown> = {}): Proxy {
  return sidecar(p, '127.1.0.20', 'sleep', 'sample', { SERVICE_ACCOUNT: 'sleep', LABELS: { app: 'sleep' }, ...extra });
}

export function eastWestGateway(p: PushContext): Proxy {
  return withInbound(
    proxyFromNode(
      {
        id: formatProxyId('gateway', '127.1.0.100', 'istio-eastwestgateway', 'istio-system'),
        metadata: { NAMESPACE: 'istio-system', NETWORK: 'network1', CLUSTER_ID: 'cluster-1', LABELS: { istio: 'eastwestgateway' } },
      },
      { cluster: 'cluster-1' },
    ),
    p,
  );
}
