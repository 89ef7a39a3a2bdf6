/**
 * The proxy's xDS client in process, against the real XdsServer + SnapshotCache over real gRPC
 * (plaintext here; mTLS is covered end to end): delta and SotW, ACK/NACK with all errors and the
 * last good version kept, subscriptions following clusters and listeners, warming (RDS, EDS,
 * initial fetch timeout), reconnect with injected backoff and delta's initial_resource_versions.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { ManualTimers } from '../../../src/mesh/timers.js';
import type { ConfigGraph } from '../../../src/proxy/model.js';
import { exponentialBackoff, XdsClient, XdsState, type XdsProtocol } from '../../../src/proxy/xds/index.js';
import {
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  HTTP_CONNECTION_MANAGER_TYPE,
  LISTENER_TYPE,
  makeResource,
  ROUTE_TYPE,
  ROUTER_TYPE,
  SECRET_TYPE,
  SnapshotCache,
  toAny,
  XdsServer,
  type SendEvent,
  type XdsResource,
} from '../../../src/xds/index.js';

const ADS = { ads: {}, resource_api_version: 'V3' };
const NODE_ID = 'sidecar~127.1.81.1~sleep.default~default.svc.cluster.local';

function listener(name: string, rds: string): XdsResource {
  return makeResource(LISTENER_TYPE, {
    name,
    address: { socket_address: { address: '127.1.81.1', port_value: 15001 } },
    traffic_direction: 'OUTBOUND',
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HTTP_CONNECTION_MANAGER_TYPE,
              stat_prefix: 'out',
              rds: { config_source: ADS, route_config_name: rds },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
            },
          },
        ],
      },
    ],
  });
}
const cluster = (name: string): XdsResource => makeResource(CLUSTER_TYPE, { name, type: 'EDS', eds_cluster_config: { eds_config: ADS, service_name: name } });
const cla = (name: string, port: number): XdsResource =>
  makeResource(ENDPOINT_TYPE, { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] });
const route = (name: string, cl: string, regex?: string): XdsResource =>
  makeResource(ROUTE_TYPE, { name, virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: regex ? { safe_regex: { regex } } : { prefix: '/' }, route: { cluster: cl } }] }] });

interface Server {
  address: string;
  xds: XdsServer;
  sends: SendEvent[];
  close(): void;
}
const servers: Server[] = [];
after(() => servers.forEach((s) => s.close()));

async function serve(cache: SnapshotCache, address = '127.0.0.1:0'): Promise<Server> {
  const xds = new XdsServer({ cache });
  const sends: SendEvent[] = [];
  xds.on('send', (e) => sends.push(e));
  const g = new grpc.Server();
  xds.addToServer(g);
  const port = await new Promise<number>((res, rej) => g.bindAsync(address, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const s = {
    address: `127.0.0.1:${port}`,
    xds,
    sends,
    close() {
      xds.close();
      g.forceShutdown();
    },
  };
  servers.push(s);
  return s;
}

async function until<T>(what: string, f: () => T | undefined | false, ms = 8000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function client(address: string, protocol: XdsProtocol, graphs: ConfigGraph[], extra: Partial<ConstructorParameters<typeof XdsClient>[0]> = {}): XdsClient {
  const c = new XdsClient({
    address,
    credentials: () => grpc.credentials.createInsecure(),
    node: { id: NODE_ID, metadata: { NAMESPACE: 'default' } },
    protocol,
    onGraph: (g) => void graphs.push(g),
    backoff: () => 20,
    ...extra,
  });
  return c;
}

function seed(cache: SnapshotCache): void {
  cache.setResources(NODE_ID, CLUSTER_TYPE, 'c1', [cluster('a')]);
  cache.setResources(NODE_ID, ENDPOINT_TYPE, 'e1', [cla('a', 1001)]);
  cache.setResources(NODE_ID, LISTENER_TYPE, 'l1', [listener('out', 'r')]);
  cache.setResources(NODE_ID, ROUTE_TYPE, 'r1', [route('r', 'a')]);
  cache.setResources(NODE_ID, SECRET_TYPE, 's1', []);
}

for (const protocol of ['delta', 'sotw'] as const) {
  describe(`XdsClient (${protocol})`, () => {
    test('applies a resolved graph, NACKs a bad update with all errors and keeps the last good one', async () => {
      const cache = new SnapshotCache();
      seed(cache);
      const srv = await serve(cache);
      const graphs: ConfigGraph[] = [];
      const c = client(srv.address, protocol, graphs);
      c.start();
      try {
        const g = await until('first graph', () => graphs[0]);
        assert.deepEqual([...g.listeners.keys()], ['out']);
        assert.deepEqual([...g.endpoints.get('a')!.priorities[0]!.localities[0]!.endpoints].map((e) => e.key), ['127.0.0.1:1001']);
        // EDS and RDS were subscribed by name, following CDS and LDS.
        assert.deepEqual(c.state.subscriptions(ENDPOINT_TYPE), ['a']);
        assert.deepEqual(c.state.subscriptions(ROUTE_TYPE), ['r']);

        // Two bad regexes in one update: one NACK carrying both errors.
        const nacks: { errors: string[] }[] = [];
        c.on('nack', (n) => nacks.push(n));
        const twoBad = makeResource(ROUTE_TYPE, {
          name: 'r',
          virtual_hosts: [
            { name: 'v1', domains: ['one'], routes: [{ match: { safe_regex: { regex: '(bad' } }, route: { cluster: 'a' } }] },
            { name: 'v2', domains: ['two'], routes: [{ match: { safe_regex: { regex: '[also-bad' } }, route: { cluster: 'a' } }] },
          ],
        });
        cache.setResources(NODE_ID, ROUTE_TYPE, 'r2', [twoBad]);
        const n = await until('NACK', () => nacks[0]);
        assert.equal(n.errors.length, 2);
        const st = await until('server saw the NACK', () => srv.xds.status()[0]?.types.find((t) => t.typeUrl === ROUTE_TYPE)?.lastNack);
        assert.match(st.message, /virtual_hosts\[0\]\.routes\[0\]\.match\.safe_regex\.regex: invalid regular expression/);
        assert.match(st.message, /virtual_hosts\[1\]\.routes\[0\]\.match\.safe_regex\.regex: invalid regular expression/);
        assert.equal(c.state.type(ROUTE_TYPE).version, 'r1');
        assert.equal(c.state.type(ROUTE_TYPE).lastRejected?.version, 'r2');
        assert.equal(graphs.length, 1, 'nothing applied');

        // A good update after that applies.
        cache.setResources(NODE_ID, CLUSTER_TYPE, 'c3', [cluster('a'), cluster('b')]);
        cache.setResources(NODE_ID, ENDPOINT_TYPE, 'e3', [cla('a', 1001), cla('b', 1002)]);
        const g2 = await until('graph with b', () => graphs.find((x) => x.clusters.has('b') && x.endpoints.get('b')?.priorities.length));
        assert.ok(g2.endpoints.get('b'));
      } finally {
        c.stop();
      }
    });

    test('reconnects with backoff while serving the last graph; converges after the restart', async () => {
      const cache = new SnapshotCache();
      seed(cache);
      let srv = await serve(cache);
      const graphs: ConfigGraph[] = [];
      const attempts: number[] = [];
      const c = client(srv.address, protocol, graphs, { backoff: (n) => (attempts.push(n), 30) });
      c.start();
      try {
        await until('first graph', () => graphs[0]);
        const port = srv.address.split(':')[1];
        srv.close();
        await until('two failed attempts', () => attempts.length >= 2);
        assert.deepEqual(attempts.slice(0, 2), [1, 2]);
        assert.equal(c.status().connected, false);
        assert.equal(c.applied, graphs[0], 'the last graph stays in use');

        cache.setResources(NODE_ID, ENDPOINT_TYPE, 'e2', [cla('a', 2002)]);
        srv = await serve(cache, `127.0.0.1:${port}`);
        const g = await until('converged', () => graphs.find((x) => x.endpoints.get('a')?.priorities[0]?.localities[0]?.endpoints[0]?.port === 2002));
        assert.ok(g);
        assert.equal(c.status().connected, true);
        if (protocol === 'delta') {
          // initial_resource_versions: unchanged resources are not sent again.
          await until('EDS sent', () => srv.sends.find((s) => s.typeUrl === ENDPOINT_TYPE));
          const cds = srv.sends.filter((s) => s.typeUrl === CLUSTER_TYPE);
          assert.ok(cds.every((s) => s.resources === 0), `CDS resent: ${JSON.stringify(cds.map((s) => s.resources))}`);
        }
      } finally {
        c.stop();
      }
    });
  });
}

describe('XdsState', () => {
  const any = (r: XdsResource) => r.any;

  test('warming: a listener waits for its RDS, a new cluster for its EDS, until the initial fetch timeout', async () => {
    const s = new XdsState();
    assert.equal(s.resolve(undefined).kind, 'warming');
    assert.ok(s.handle(CLUSTER_TYPE, { kind: 'sotw', version: '1', resources: [any(cluster('a'))] }, 'n1').ack);
    assert.ok(s.handle(LISTENER_TYPE, { kind: 'sotw', version: '1', resources: [any(listener('out', 'r'))] }, 'n2').ack);
    const w = s.resolve(undefined);
    assert.equal(w.kind, 'warming');
    assert.deepEqual(w.kind === 'warming' && w.waiting.sort(), ['EDS "a"', 'listener "out": filter_chains[0]: route_config "r" (RDS) not received'].sort());
    s.handle(ROUTE_TYPE, { kind: 'sotw', version: '1', resources: [any(route('r', 'a'))] }, 'n3');
    const w2 = s.resolve(undefined);
    assert.deepEqual(w2.kind === 'warming' && w2.waiting, ['EDS "a"']);
    const expired = s.resolve(undefined, true);
    assert.equal(expired.kind, 'ready');
  });

  test('SDS: ROOTCA always, names from listeners and clusters, never what the proxy holds itself', () => {
    const local = [{ kind: 'tls-certificate' as const, name: 'default', certificate: { certificateChain: { kind: 'inline' as const, data: 'x' }, privateKey: { kind: 'inline' as const, data: 'y' } } }];
    const s = new XdsState({ localSecrets: () => local });
    const c = makeResource(CLUSTER_TYPE, {
      name: 'm',
      type: 'EDS',
      eds_cluster_config: { eds_config: ADS },
      transport_socket: {
        name: 'tls',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
          common_tls_context: {
            tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: ADS }],
            validation_context_sds_secret_config: { name: 'other-ca', sds_config: ADS },
          },
        },
      },
    });
    assert.ok(s.handle(CLUSTER_TYPE, { kind: 'sotw', version: '1', resources: [c.any] }, 'n').ack);
    assert.deepEqual(s.subscriptions(SECRET_TYPE), ['ROOTCA', 'other-ca']);
  });

  test('delta: removals apply, a wrong type_url or a name mismatch is an error, EDS of a removed cluster is dropped', () => {
    const s = new XdsState();
    const d = (version: string, rs: XdsResource[], removed: string[] = []) => ({ kind: 'delta' as const, version, resources: rs.map((r) => ({ name: r.name, version: r.version, resource: r.any })), removed });
    assert.ok(s.handle(CLUSTER_TYPE, d('1', [cluster('a'), cluster('b')]), 'n').ack);
    assert.ok(s.handle(ENDPOINT_TYPE, d('1', [cla('a', 1), cla('b', 2)]), 'n').ack);
    assert.ok(s.handle(CLUSTER_TYPE, d('2', [], ['b']), 'n').ack);
    assert.deepEqual([...s.type(CLUSTER_TYPE).accepted.keys()], ['a']);
    assert.deepEqual([...s.type(ENDPOINT_TYPE).accepted.keys()], ['a']);
    const wrong = s.handle(CLUSTER_TYPE, { kind: 'delta', version: '3', resources: [{ name: 'x', version: 'v', resource: toAny(ROUTE_TYPE, { name: 'x' }) }], removed: [] }, 'n');
    assert.equal(wrong.ack, false);
    assert.match(wrong.errors[0]!, /type_url/);
    const mismatch = s.handle(CLUSTER_TYPE, { kind: 'delta', version: '4', resources: [{ name: 'y', version: 'v', resource: cluster('z').any }], removed: [] }, 'n');
    assert.match(mismatch.errors[0]!, /named "z"/);
    assert.equal(s.type(CLUSTER_TYPE).version, '2');
  });

  test('SotW: CDS is the whole state, an EDS response may carry only what changed (incremental EDS)', () => {
    const s = new XdsState();
    assert.ok(s.handle(CLUSTER_TYPE, { kind: 'sotw', version: '1', resources: [cluster('a').any, cluster('b').any] }, 'n').ack);
    assert.ok(s.handle(ENDPOINT_TYPE, { kind: 'sotw', version: '1', resources: [cla('a', 1).any, cla('b', 2).any] }, 'n').ack);
    assert.ok(s.handle(ENDPOINT_TYPE, { kind: 'sotw', version: '2', resources: [cla('a', 3).any] }, 'n').ack);
    assert.deepEqual([...s.type(ENDPOINT_TYPE).accepted.keys()].sort(), ['a', 'b'], 'b kept');
    assert.ok(s.handle(CLUSTER_TYPE, { kind: 'sotw', version: '2', resources: [cluster('a').any] }, 'n').ack);
    assert.deepEqual([...s.type(CLUSTER_TYPE).accepted.keys()], ['a'], 'a CDS response replaces');
    assert.deepEqual([...s.type(ENDPOINT_TYPE).accepted.keys()], ['a'], "the removed cluster's EDS is pruned");
  });

  test('an update that breaks cross-resource rules (validate_clusters) is rejected; warming is not an error', () => {
    const s = new XdsState();
    s.handle(CLUSTER_TYPE, { kind: 'sotw', version: '1', resources: [cluster('a').any] }, 'n');
    const strict = makeResource(ROUTE_TYPE, { name: 'r', validate_clusters: true, virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'nope' } }] }] });
    const r = s.handle(ROUTE_TYPE, { kind: 'sotw', version: '1', resources: [strict.any] }, 'n');
    assert.equal(r.ack, false);
    assert.match(r.errors.join(), /unknown cluster "nope"/);
  });
});

describe('XdsClient timers', () => {
  test('a new EDS cluster starts without endpoints after the initial fetch timeout', async () => {
    const cache = new SnapshotCache();
    cache.setResources(NODE_ID, CLUSTER_TYPE, 'c1', [cluster('a')]);
    cache.setResources(NODE_ID, LISTENER_TYPE, 'l1', []);
    const srv = await serve(cache);
    const timers = new ManualTimers();
    const graphs: ConfigGraph[] = [];
    const c = client(srv.address, 'delta', graphs, { timers, initialFetchTimeoutMs: 15_000 });
    c.start();
    try {
      await until('warming on EDS', () => c.status().waitingFor.includes('EDS "a"'));
      timers.advance(14_999);
      assert.equal(graphs.length, 0);
      timers.advance(1);
      const g = await until('applied', () => graphs[0]);
      assert.deepEqual(g.endpoints.get('a')?.priorities, []);
    } finally {
      c.stop();
    }
  });

  test('exponentialBackoff grows, is capped and jittered', () => {
    const b = exponentialBackoff({ baseMs: 100, maxMs: 1000, random: () => 0.999 });
    assert.deepEqual([1, 2, 3, 4, 5, 10].map((n) => Math.round(b(n) / 10) * 10), [100, 200, 400, 800, 1000, 1000]);
    const lo = exponentialBackoff({ baseMs: 100, maxMs: 1000, random: () => 0 });
    assert.equal(lo(1), 50);
  });
});
