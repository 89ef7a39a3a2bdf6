/**
 * The client side's destination_* labels when the destination sidecar answers itself (its app is
 * down: 503), and grpc_response_status from a `grpc-status` response header (ADR 0050). Two
 * sidecars on real sockets over mTLS, on 127.95.4.x.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { InboundListener } from '../../../src/proxy/listeners/inbound.js';
import { OutboundListener } from '../../../src/proxy/listeners/outbound.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { UpstreamPools } from '../../../src/proxy/upstream/pool.js';
import {
  cluster,
  deadPort,
  emptyGraph,
  endpoint,
  endpoints,
  fetch,
  forward,
  inboundListener,
  istioMtls,
  outboundListener,
  roundRobinPicker,
  route,
  routeConfig,
  secretsFor,
  startApp,
  testPki,
  vhost,
  type TestApp,
} from '../net/fixtures.js';

const CLIENT_IP = '127.95.4.9';
const SERVER_IP = '127.95.4.5';
const HELLO = 'helloworld.default.svc.cluster.local';
const SNI = `outbound_.5000_._.${HELLO}`;

const clientStats = new ProxyStats();
const serverStats = new ProxyStats();
let app: TestApp;
let inbound: InboundListener;
let downInbound: InboundListener;
let outbound: OutboundListener;
let pools: UpstreamPools[] = [];
let proxy: { host: string; port: number };

before(async () => {
  const pki = await testPki();
  const [sleepW, helloW] = await Promise.all([pki.workload('default', 'sleep'), pki.workload('default', 'helloworld')]);
  app = await startApp('helloworld-v1', '127.0.0.1', (req, res) => {
    if (!req.url?.startsWith('/grpc')) return false;
    // A trailers-only gRPC answer: the status travels in the response headers.
    res.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'unavailable' }).end();
    return true;
  });

  // Two server sidecars of the same workload: one in front of the app, one whose app is down.
  const serverGraph = emptyGraph();
  serverGraph.secrets = secretsFor(helloW);
  serverGraph.clusters.set('inbound|5000||', cluster('inbound|5000||', { type: 'STATIC', service: HELLO }));
  serverGraph.endpoints.set('inbound|5000||', endpoints('inbound|5000||', [endpoint('127.0.0.1', app.port)]));
  const downGraph = emptyGraph();
  downGraph.secrets = secretsFor(helloW);
  downGraph.clusters.set('inbound|5000||', cluster('inbound|5000||', { type: 'STATIC', service: HELLO }));
  downGraph.endpoints.set('inbound|5000||', endpoints('inbound|5000||', [endpoint('127.0.0.1', await deadPort())]));
  const identity = { workload: 'helloworld-v1', namespace: 'default', serviceAccount: 'helloworld', cluster: 'cluster-2', labels: { app: 'helloworld', version: 'v1' } };
  const serverPools = new UpstreamPools({ stats: serverStats, secrets: () => serverGraph.secrets });
  const downPools = new UpstreamPools({ stats: serverStats, secrets: () => downGraph.secrets });
  inbound = new InboundListener(inboundListener(SERVER_IP, 0, 5000, 'STRICT'), { config: () => serverGraph, stats: serverStats, pools: serverPools, pick: roundRobinPicker(), identity });
  downInbound = new InboundListener(inboundListener(SERVER_IP, 0, 5000, 'STRICT'), { config: () => downGraph, stats: serverStats, pools: downPools, pick: roundRobinPicker(), identity });
  const upPort = (await inbound.listen()).port;
  const downPort = (await downInbound.listen()).port;

  const clientGraph = emptyGraph();
  clientGraph.secrets = secretsFor(sleepW);
  const tls = istioMtls(SNI, [helloW.spiffeId]);
  clientGraph.clusters.set('up', cluster('up', { tls, service: HELLO }));
  clientGraph.endpoints.set('up', endpoints('up', [endpoint(SERVER_IP, upPort)]));
  clientGraph.clusters.set('down', cluster('down', { tls, service: HELLO }));
  clientGraph.endpoints.set('down', endpoints('down', [endpoint(SERVER_IP, downPort)]));
  clientGraph.routes.set('15001', routeConfig('15001', [vhost('up', ['up'], [route('/', forward('up'))]), vhost('down', ['down'], [route('/', forward('down'))])]));
  const clientPools = new UpstreamPools({ stats: clientStats, secrets: () => clientGraph.secrets });
  pools = [serverPools, downPools, clientPools];
  outbound = new OutboundListener(outboundListener(CLIENT_IP), {
    config: () => clientGraph,
    stats: clientStats,
    pools: clientPools,
    pick: roundRobinPicker(),
    identity: { workload: 'sleep', namespace: 'default', serviceAccount: 'sleep', principal: sleepW.spiffeId, cluster: 'cluster-1', labels: { app: 'sleep' } },
  });
  const a = await outbound.listen();
  proxy = { host: a.address, port: a.port };
});

after(async () => {
  await Promise.all([outbound.drain({ timeoutMs: 100 }), inbound.drain({ timeoutMs: 100 }), downInbound.drain({ timeoutMs: 100 })]);
  for (const p of pools) p.close();
  await app.close();
});

/** The client sidecar's istio_requests_total line for a response code. */
async function clientSeries(code: number): Promise<string> {
  const line = (await clientStats.metrics()).split('\n').find((l) => l.startsWith('istio_requests_total{') && l.includes(`response_code="${code}"`));
  assert.ok(line, `no client series with response_code ${code}:\n${await clientStats.metrics()}`);
  return line;
}

test("the destination sidecar's own 503 (its app is down) still names it as the destination on the client side", async () => {
  const r = await fetch('http://down/x', { proxy });
  assert.equal(r.status, 503);
  assert.equal(r.headers['x-envoy-peer-metadata'], undefined, 'the client sidecar strips the exchange header');
  const line = await clientSeries(503);
  assert.match(line, /reporter="source"/);
  assert.match(line, /destination_workload="helloworld-v1",destination_workload_namespace="default",destination_principal="spiffe:\/\/cluster.local\/ns\/default\/sa\/helloworld",destination_app="helloworld",destination_version="v1"/);
  assert.match(line, /destination_cluster="cluster-2"/);
  // The server side recorded the same request as its own local reply.
  assert.match(await serverStats.metrics(), /istio_requests_total\{reporter="destination",source_workload="sleep",[^}]*response_code="503",[^}]*response_flags="UF"/);
});

test('grpc_response_status comes from the grpc-status response header', async () => {
  const r = await fetch('http://up/grpc/helloworld.Greeter/SayHello', { proxy, method: 'POST', headers: { 'content-type': 'application/grpc' }, body: '\0\0\0\0\0' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['grpc-status'], '14');
  const lines = (await clientStats.metrics()).split('\n').filter((l) => l.startsWith('istio_requests_total{') && l.includes('request_protocol="grpc"'));
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(lines[0]!, /response_code="200",grpc_response_status="14"/);
  assert.match(lines[0]!, /destination_workload="helloworld-v1"/);
  const server = (await serverStats.metrics()).split('\n').filter((l) => l.startsWith('istio_requests_total{') && l.includes('request_protocol="grpc"'));
  assert.match(server.join('\n'), /grpc_response_status="14"/);
  // Plain HTTP answers keep Istio's empty value.
  assert.match(await clientSeries(503), /grpc_response_status=""/);
});
