/**
 * Issue #4 acceptance: an invalid update (a route with a bad regex; a cluster without a name) is
 * NACKed with every error, traffic keeps flowing on the old config, and /config_dump shows the
 * last good version, the rejected one and the errors. The control plane's generators never emit
 * such resources, so a hand-driven ADS server (XdsServer + SnapshotCache, real mTLS and the real
 * certificate service) serves them to a real `isle proxy` child process. Also: warming (a
 * listener waits for its RDS; a new cluster waits for its EDS) and delta removal.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { formatProxyId } from '../../src/model/proxy.js';
import {
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  HTTP_CONNECTION_MANAGER_TYPE,
  LISTENER_TYPE,
  makeResource,
  resourceFromAny,
  ROUTE_TYPE,
  ROUTER_TYPE,
  SECRET_TYPE,
  toAny,
  type XdsResource,
} from '../../src/xds/index.js';
import { configDump, curlProxy, makeMesh, startApp, startProxy, startTestAds, waitFor, type App, type Mesh, type ProxyChild, type TestAds } from './helpers.js';

const IP = '127.1.79.9';
const NODE = formatProxyId('sidecar', IP, 'sleep', 'default');
const ADS = { ads: {}, resource_api_version: 'V3' };

let mesh: Mesh;
let ads: TestAds;
let appA: App;
let appB: App;
let proxy: ProxyChild;
let outbound: string;

function listener(): XdsResource {
  return makeResource(LISTENER_TYPE, {
    name: 'virtualOutbound',
    address: { socket_address: { address: IP, port_value: 15001 } },
    traffic_direction: 'OUTBOUND',
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HTTP_CONNECTION_MANAGER_TYPE,
              stat_prefix: 'outbound_http_proxy',
              rds: { config_source: ADS, route_config_name: '15001' },
              http_protocol_options: { allow_absolute_url: true },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
            },
          },
        ],
      },
    ],
  });
}

function cluster(name: string): XdsResource {
  return makeResource(CLUSTER_TYPE, { name, type: 'EDS', connect_timeout: '1s', eds_cluster_config: { eds_config: ADS, service_name: name } });
}

function cla(name: string, port: number): XdsResource {
  return makeResource(ENDPOINT_TYPE, {
    cluster_name: name,
    endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
  });
}

function routes(vhosts: { domain: string; cluster: string; regex?: string }[]): XdsResource {
  return makeResource(ROUTE_TYPE, {
    name: '15001',
    virtual_hosts: vhosts.map((v) => ({
      name: v.domain,
      domains: [v.domain],
      routes: [{ match: v.regex !== undefined ? { safe_regex: { regex: v.regex } } : { prefix: '/' }, route: { cluster: v.cluster } }],
    })),
  });
}

function set(typeUrl: string, version: string, resources: XdsResource[]): void {
  ads.cache.setResources(NODE, typeUrl, version, resources);
}

before(async () => {
  mesh = await makeMesh();
  ads = await startTestAds(mesh);
  [appA, appB] = await Promise.all([startApp('a'), startApp('b')]);
  set(CLUSTER_TYPE, 'c1', [cluster('a')]);
  set(ENDPOINT_TYPE, 'e1', [cla('a', appA.port)]);
  set(LISTENER_TYPE, 'l1', [listener()]);
  set(ROUTE_TYPE, 'r1', [routes([{ domain: 'a', cluster: 'a' }])]);
  set(SECRET_TYPE, 's1', []);
  proxy = await startProxy({ mesh, controlPlane: ads.address, ip: IP, serviceAccount: 'sleep', extra: ['--workload', 'sleep', '--outbound-port', '0'] });
  outbound = proxy.listeners.get('virtualOutbound')!;
});

after(() => {
  proxy?.child.kill('SIGKILL');
  ads?.close();
});

async function appOf(host: string): Promise<string> {
  const r = await curlProxy(outbound, `http://${host}/x`);
  return r.status === 200 ? (JSON.parse(r.body) as { app: string }).app : `status ${r.status}`;
}

function nackOf(type: string): { version: string; message: string } | undefined {
  const st = ads.xds.status().find((s) => s.node.id === NODE);
  const t = st?.types.find((x) => x.typeUrl === type);
  return t?.lastNack ? { version: t.lastNack.version, message: t.lastNack.message } : undefined;
}

describe('NACK and warming against a hand-driven ADS server', () => {
  test('the first config applies', async () => {
    assert.equal(await appOf('a'), 'a');
  });

  test('a route with a bad regex is NACKed; traffic stays on the old routes; config_dump shows both', async () => {
    set(ROUTE_TYPE, 'r2-bad', [routes([{ domain: 'a', cluster: 'a', regex: '/(unclosed' }])]);
    const nack = await waitFor('RDS NACK', () => nackOf(ROUTE_TYPE));
    assert.equal(nack.version, 'r2-bad');
    assert.match(nack.message, /regex/i);
    assert.equal(await appOf('a'), 'a');
    const dump = await configDump(proxy);
    assert.equal(dump['types'].RDS.last_good.version_info, 'r1');
    assert.equal(dump['types'].RDS.last_rejected.version_info, 'r2-bad');
    assert.match(dump['types'].RDS.last_rejected.error, /regex/i);
  });

  test('a cluster without a name is NACKed with all the errors of the update', async () => {
    const nameless = resourceFromAny('nameless', toAny(CLUSTER_TYPE, { type: 'STATIC', connect_timeout: '1s' }));
    const badLb = resourceFromAny('bad-lb', toAny(CLUSTER_TYPE, { name: 'bad-lb', type: 'EDS', connect_timeout: '1s' }));
    set(CLUSTER_TYPE, 'c2-bad', [cluster('a'), nameless, badLb]);
    const nack = await waitFor('CDS NACK', () => nackOf(CLUSTER_TYPE));
    assert.equal(nack.version, 'c2-bad');
    assert.match(nack.message, /cluster without a name/);
    assert.match(nack.message, /bad-lb.*eds_cluster_config/);
    assert.equal(await appOf('a'), 'a');
    const dump = await configDump(proxy);
    assert.equal(dump['types'].CDS.last_good.version_info, 'c1');
    assert.deepEqual(dump['types'].CDS.last_good.resources.map((r: { name: string }) => r.name), ['a']);
    assert.equal(dump['types'].CDS.last_rejected.version_info, 'c2-bad');
    assert.equal(dump['types'].CDS.last_rejected.errors.length, 2);
  });

  test('warming: a new route to a new cluster applies only once the cluster has its endpoints', async () => {
    // Fix the bad updates and add cluster b, but hold back b's endpoints.
    set(CLUSTER_TYPE, 'c3', [cluster('a'), cluster('b')]);
    set(ROUTE_TYPE, 'r3', [routes([{ domain: 'a', cluster: 'a' }, { domain: 'b', cluster: 'b' }])]);
    await waitFor('CDS c3 and RDS r3 ACKed', async () => {
      const d = await configDump(proxy);
      return d['types'].CDS.last_good.version_info === 'c3' && d['types'].RDS.last_good.version_info === 'r3';
    });
    const held = await configDump(proxy);
    assert.equal(held['xds'].state, 'warming');
    assert.deepEqual(held['xds'].waitingFor, ['EDS "b"']);
    assert.equal(await appOf('b'), 'status 404', 'the held graph is not applied: host b is unknown');
    set(ENDPOINT_TYPE, 'e3', [cla('a', appA.port), cla('b', appB.port)]);
    assert.equal(await waitFor('b served', async () => ((await appOf('b')) === 'b' ? 'b' : undefined)), 'b');
    assert.equal(await appOf('a'), 'a');
  });

  test('delta removal: a removed cluster and route go away together', async () => {
    set(ROUTE_TYPE, 'r4', [routes([{ domain: 'a', cluster: 'a' }])]);
    set(CLUSTER_TYPE, 'c4', [cluster('a')]);
    await waitFor('b gone', async () => ((await appOf('b')) === 'status 404' ? true : undefined));
    const dump = await configDump(proxy);
    assert.deepEqual(dump['types'].EDS.last_good.resources.map((r: { name: string }) => r.name), ['a']);
    assert.equal(await appOf('a'), 'a');
  });
});
