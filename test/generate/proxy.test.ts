import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bindAddress, formatProxyId, parseProxyId, proxyFromNode, withInbound } from '../../src/model/proxy.js';
import { inboundClusterName, outboundClusterName, outboundSni, parseOutboundName } from '../../src/mesh/names.js';
import { helloworldSidecar, push } from './fixtures.js';

describe('proxy model', () => {
  it('parses Istio node ids', () => {
    assert.deepEqual(parseProxyId('sidecar~127.1.0.10~helloworld-v1.sample~sample.svc.cluster.local'), {
      type: 'sidecar', ip: '127.1.0.10', podName: 'helloworld-v1.sample', namespace: 'sample', domain: 'sample.svc.cluster.local',
    });
    assert.equal(parseProxyId('router~10.0.0.1~gw.istio-system~istio-system.svc.cluster.local').type, 'gateway');
    assert.equal(formatProxyId('gateway', '10.0.0.1', 'gw', 'istio-system'), 'router~10.0.0.1~gw.istio-system~istio-system.svc.cluster.local');
    for (const bad of ['sidecar~1.2.3.4~x.ns', 'waypoint~1.2.3.4~x.ns~ns.svc.cluster.local', 'sidecar~nope~x.ns~ns.svc.cluster.local']) {
      assert.throws(() => parseProxyId(bad), { code: 'ERR_IDENTITY' });
    }
  });

  it('reads Istio node metadata, node locality first', () => {
    const p = proxyFromNode(
      {
        id: 'sidecar~127.1.0.10~hw.sample~sample.svc.cluster.local',
        metadata: {
          NAMESPACE: 'sample', SERVICE_ACCOUNT: 'helloworld', INSTANCE_IPS: '127.1.0.10, 127.1.0.11',
          LABELS: { app: 'helloworld', 'topology.kubernetes.io/region': 'eu', 'topology.kubernetes.io/zone': 'eu-1' },
          NETWORK: 'network1', CLUSTER_ID: 'cluster-9', APP_PORTS: '{"5000":15000}',
        },
        locality: { zone: 'eu-2' },
      },
      { cluster: 'cluster-1', locality: { region: 'x', zone: 'y', subzone: 'z' } },
    );
    assert.deepEqual(p.ips, ['127.1.0.10', '127.1.0.11']);
    assert.deepEqual(p.locality, { region: 'eu', zone: 'eu-2', subzone: 'z' });
    assert.equal(p.cluster, 'cluster-9');
    assert.equal(p.serviceAccount, 'helloworld');
    assert.equal(p.workloadName, 'hw');
    assert.deepEqual(p.appPorts, { 5000: 15000 });
    assert.equal(bindAddress(p), '127.1.0.10');
    assert.equal(bindAddress({ ...p, ip: '10.0.0.1' }), '0.0.0.0');
    assert.throws(() => proxyFromNode({ id: p.id, metadata: { APP_PORTS: { a: 1 } } }, { cluster: 'c' }), { code: 'ERR_IDENTITY' });
  });

  it('derives inbound ports from the endpoints at its address, on its network', () => {
    const pc = push();
    const hw = helloworldSidecar(pc);
    assert.deepEqual(
      hw.inbound.map((i) => [i.hostname, i.port, i.targetPort, i.appPort, i.protocol]),
      [
        ['helloworld.sample.svc.cluster.local', 5000, 5000, 15000, 'HTTP'],
        ['helloworld.sample.svc.cluster.local', 9000, 9090, 19090, 'GRPC'],
      ],
    );
    // Same address on another network is another workload.
    assert.deepEqual(withInbound({ ...hw, network: 'network2', inbound: [] }, pc).inbound, []);
    assert.ok(Object.isFrozen(pc) && Object.isFrozen(hw));
  });

  it('names', () => {
    const h = 'helloworld.sample.svc.cluster.local';
    assert.equal(outboundClusterName(5000, h, 'v1'), `outbound|5000|v1|${h}`);
    assert.equal(outboundSni(5000, h), `outbound_.5000_._.${h}`);
    assert.equal(inboundClusterName(9090), 'inbound|9090||');
    assert.deepEqual(parseOutboundName(outboundSni(5000, h, 'v1')), { port: 5000, subset: 'v1', hostname: h });
    assert.deepEqual(parseOutboundName(outboundClusterName(5000, h)), { port: 5000, subset: '', hostname: h });
    assert.equal(parseOutboundName('inbound|5000||'), undefined);
  });
});
