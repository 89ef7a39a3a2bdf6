import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildPushContext, type GatewayAddress, type PushContext } from '../../src/model/pushcontext.js';
import { topologyLabels, type Endpoint, type Health, type Locality } from '../../src/registry/model.js';
import { generateEndpoints, outboundLoadAssignments, sameNetworkOnly } from '../../src/generate/index.js';
import { isNetworkAware, unreachableEndpoints } from '../../src/generate/network.js';
import { ENDPOINT_TYPE } from '../../src/mesh/typeurls.js';
import { helloworld, helloworldSidecar, push as fixturePush } from './fixtures.js';
import { assertGolden } from './golden.js';

const loc = (region: string, zone = '', subzone = ''): Locality => ({ region, zone, subzone });

function ep(o: { address?: string; cluster: string; network: string; locality: Locality; version: string; workload: string; health?: Health; weight?: number }): Endpoint {
  return {
    hostname: helloworld.hostname,
    portName: 'http',
    servicePort: 5000,
    ...(o.address !== undefined ? { address: o.address } : {}),
    port: 5000,
    cluster: o.cluster,
    network: o.network,
    locality: o.locality,
    serviceAccount: { namespace: 'sample', name: 'helloworld' },
    labels: topologyLabels({ app: 'helloworld', version: o.version }, o),
    health: o.health ?? 'HEALTHY',
    ...(o.weight !== undefined ? { weight: o.weight } : {}),
    workload: o.workload,
    source: o.cluster === 'cluster-1' ? 'WorkloadEntry' : 'peer',
  };
}

const east = loc('us-east', 'us-east-1a');
const westA = loc('us-west', 'us-west-1a');
const westB = loc('us-west', 'us-west-1b');

/** v1 in cluster-1 (network1), v2 in cluster-2 (network2, two zones, one unhealthy), v3 in cluster-3 (network3). */
const endpoints: Endpoint[] = [
  ep({ address: '127.1.0.10', cluster: 'cluster-1', network: 'network1', locality: east, version: 'v1', workload: 'helloworld-v1-a' }),
  ep({ address: '127.1.0.11', cluster: 'cluster-1', network: 'network1', locality: east, version: 'v1', workload: 'helloworld-v1-b' }),
  ep({ address: '127.2.0.10', cluster: 'cluster-2', network: 'network2', locality: westA, version: 'v2', workload: 'helloworld-v2-a' }),
  ep({ address: '127.2.0.11', cluster: 'cluster-2', network: 'network2', locality: westA, version: 'v2', workload: 'helloworld-v2-b' }),
  ep({ address: '127.2.0.12', cluster: 'cluster-2', network: 'network2', locality: westA, version: 'v2', workload: 'helloworld-v2-c', health: 'UNHEALTHY' }),
  // Reachable only through its gateway: no address at all.
  ep({ cluster: 'cluster-2', network: 'network2', locality: westB, version: 'v2', workload: 'helloworld-v2-d', weight: 2 }),
  ep({ address: '127.3.0.10', cluster: 'cluster-3', network: 'network3', locality: loc('eu-west', 'eu-west-1a'), version: 'v3', workload: 'helloworld-v3-a' }),
];

const gw2: GatewayAddress = { address: '127.2.0.100', port: 15443, cluster: 'cluster-2' };

function push(networkGateways: Record<string, GatewayAddress[]>, eps: Endpoint[] = endpoints): PushContext {
  return buildPushContext({
    version: 'net',
    mesh: { trustDomain: 'cluster.local', clusterName: 'cluster-1', network: 'network1' },
    services: [{ ...helloworld, ports: [helloworld.ports[0]!] }],
    endpoints: eps,
    networkGateways,
  });
}

const cla = (p: PushContext, network = 'network1') => outboundLoadAssignments(p, network);
type Lb = { endpoint: { address: { socket_address: { address: string; port_value: number } } }; health_status: string; load_balancing_weight: number };
type Group = { locality?: Record<string, string>; lb_endpoints: Lb[]; load_balancing_weight: number };
const groups = (p: PushContext, network = 'network1') => (cla(p, network)[0]!['endpoints'] ?? []) as Group[];

describe('multi-network EDS (network.ts)', () => {
  it('two networks: network2 behind its gateway, weighted by endpoints per locality, health aggregated; network3 without a gateway dropped', () => {
    const p = push({ network1: [], network2: [gw2] });
    assertGolden('eds-network-two-networks', ENDPOINT_TYPE, cla(p));
    const g = groups(p);
    assert.deepEqual(g.map((x) => x.locality), [{ region: 'us-east', zone: 'us-east-1a' }, { region: 'us-west', zone: 'us-west-1a' }, { region: 'us-west', zone: 'us-west-1b' }]);
    const [e, wa, wb] = g as [Group, Group, Group];
    assert.deepEqual(e.lb_endpoints.map((l) => l.endpoint.address.socket_address.address), ['127.1.0.10', '127.1.0.11']);
    // Two healthy of three in us-west-1a: the gateway stands for two.
    assert.deepEqual(wa.lb_endpoints, [{ endpoint: { address: { socket_address: { address: '127.2.0.100', port_value: 15443 } } }, health_status: 'HEALTHY', load_balancing_weight: 2 }]);
    assert.equal(wb.lb_endpoints[0]!.load_balancing_weight, 2);
    assert.ok(!JSON.stringify(g).includes('127.2.0.1"') && !JSON.stringify(g).includes('127.3.'));
    assert.deepEqual(unreachableEndpoints(p, 'network1'), [{ hostname: helloworld.hostname, servicePort: 5000, network: 'network3', endpoints: 1 }]);
  });

  it('one network: everything direct (seed 000 "same VPC"), named or unnamed', () => {
    const same = endpoints.map((e) => ({ ...e, network: 'network1' }));
    const p = push({ network1: [{ address: '127.1.0.100', port: 15443 }] }, same);
    assertGolden('eds-network-one-network', ENDPOINT_TYPE, cla(p));
    assert.ok(!JSON.stringify(cla(p)).includes('15443'));
    const flat = endpoints.map((e) => ({ ...e, network: '' }));
    const pf = push({}, flat);
    assert.equal(isNetworkAware(pf, ''), false);
    assert.equal(groups(pf, '').flatMap((x) => x.lb_endpoints).length, 6, 'every endpoint with an address, whatever its cluster');
    assert.deepEqual(unreachableEndpoints(pf, ''), []);
  });

  it('a network without a gateway: its endpoints are dropped and reported', () => {
    const p = push({ network1: [] });
    assertGolden('eds-network-no-gateway', ENDPOINT_TYPE, cla(p));
    assert.deepEqual(
      unreachableEndpoints(p, 'network1').map((u) => [u.network, u.endpoints]),
      [['network2', 4], ['network3', 1]],
    );
  });

  it('several gateways share the weight; all weights scale to stay integers', () => {
    const p = push({ network1: [], network2: [gw2, { address: '127.2.0.101', port: 15443, cluster: 'cluster-2' }], network3: [{ address: '127.3.0.100', port: 15443 }] });
    const g = groups(p);
    const w = (x: Group) => x.lb_endpoints.map((l) => [l.endpoint.address.socket_address.address, l.load_balancing_weight]);
    assert.deepEqual(w(g[0]!), [['127.3.0.100', 2]]);
    assert.deepEqual(w(g[1]!), [['127.1.0.10', 2], ['127.1.0.11', 2]]);
    assert.deepEqual(w(g[2]!), [['127.2.0.100', 2], ['127.2.0.101', 2]]);
    assert.deepEqual(w(g[3]!), [['127.2.0.100', 2], ['127.2.0.101', 2]]);
  });

  it('all endpoints behind a gateway unhealthy: the gateway endpoint is unhealthy (draining wins over unhealthy)', () => {
    const sick = endpoints.map((e) => (e.network === 'network2' ? { ...e, health: (e.workload.endsWith('-d') ? 'DRAINING' : 'UNHEALTHY') as Health } : e));
    const g = groups(push({ network1: [], network2: [gw2] }, sick));
    assert.equal(g[1]!.lb_endpoints[0]!.health_status, 'UNHEALTHY');
    assert.equal(g[1]!.lb_endpoints[0]!.load_balancing_weight, 3);
    assert.equal(g[2]!.lb_endpoints[0]!.health_status, 'DRAINING');
  });

  it('the rule applies only when networkGateways names the proxy network; the pre-peering fixture keeps same-network-only', () => {
    const p = fixturePush();
    assert.equal(isNetworkAware(p, 'network1'), false);
    assert.deepEqual(generateEndpoints(p, helloworldSidecar(p)), outboundLoadAssignments(p, 'network1', sameNetworkOnly));
    const q = fixturePush({ networkGateways: { network1: [], network2: [gw2] } });
    const hw = generateEndpoints(q, helloworldSidecar(q)).find((c) => c['cluster_name'] === 'outbound|5000||helloworld.sample.svc.cluster.local');
    assert.match(JSON.stringify(hw), /127\.2\.0\.100/);
  });
});
