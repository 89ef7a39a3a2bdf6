/**
 * The two-sidecar path on real sockets: client (curl -x / HTTP_PROXY) → client sidecar outbound
 * listener → mTLS → server sidecar inbound listener → app on 127.0.0.1. Each workload has its own
 * loopback address, as in universal mode.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { InboundListener } from '../../../src/proxy/listeners/inbound.js';
import { OutboundListener } from '../../../src/proxy/listeners/outbound.js';
import type { ClusterModel, HeaderMutationsModel } from '../../../src/proxy/model.js';
import { localPeer } from '../../../src/proxy/peer.js';
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
  NO_MUTATIONS,
  outboundListener,
  retryPolicy,
  roundRobinPicker,
  route,
  routeConfig,
  run,
  secretsFor,
  seq,
  startApp,
  testPki,
  vhost,
  type TestApp,
  type Workload,
} from '../net/fixtures.js';

const CLIENT_IP = '127.1.0.9';
const SERVER_IP = '127.1.0.5';
const HELLO = 'helloworld.default.svc.cluster.local';
const HELLO_CLUSTER = `outbound|5000||${HELLO}`;
const SNI = `outbound_.5000_._.${HELLO}`;

let sleepW: Workload;
let helloW: Workload;
let app: TestApp;
let app2: TestApp;
const serverGraph = emptyGraph();
const clientGraph = emptyGraph();
const serverStats = new ProxyStats();
const clientStats = new ProxyStats();
let strict: InboundListener;
let permissive: InboundListener;
let outbound: OutboundListener;
let proxy: { host: string; port: number };
let serverPools: UpstreamPools;
let clientPools: UpstreamPools;
const hangs: http.ServerResponse[] = [];

function mutations(m: Partial<HeaderMutationsModel>): HeaderMutationsModel {
  return { ...NO_MUTATIONS, ...m };
}
const add = (key: string, value: string) => ({ key, value, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' as const, keepEmptyValue: false });

function addCluster(c: ClusterModel, eps: Array<[string, number]>): void {
  clientGraph.clusters.set(c.name, c);
  clientGraph.endpoints.set(c.name, endpoints(c.name, eps.map(([a, p]) => endpoint(a, p))));
}

before(async () => {
  const pki = await testPki();
  [sleepW, helloW] = await Promise.all([pki.workload('default', 'sleep'), pki.workload('default', 'helloworld')]);
  const seen = new Map<string, number>();
  const behave = (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    const url = req.url ?? '';
    const n = (seen.get(url) ?? 0) + 1;
    seen.set(url, n);
    if (url.startsWith('/fail-once') && n === 1) {
      res.writeHead(503).end('try again');
      return true;
    }
    if (url.startsWith('/hang-once') && n === 1) return hangs.push(res), true;
    if (/\/hang(\/|$)/.test(url)) return hangs.push(res), true;
    if (url.startsWith('/chunked-big')) {
      // No Content-Length: node:http sends it chunked, in 16 KiB writes.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      for (let i = 0; i < 64; i++) res.write(Buffer.alloc(16 * 1024, i));
      res.end();
      return true;
    }
    if (url.startsWith('/no-content')) {
      res.writeHead(204, { 'x-empty': 'yes' }).end();
      return true;
    }
    if (url.startsWith('/resp-headers')) {
      res.writeHead(200, { 'x-secret': 'no', 'x-keep': 'yes' }).end('ok');
      return true;
    }
    return false;
  };
  app = await startApp('helloworld-v1', '127.0.0.1', behave);
  app2 = await startApp('helloworld-v2', '127.0.0.1', behave);

  // Server sidecar: inbound|5000|| → the app's private port.
  serverGraph.secrets = secretsFor(helloW);
  serverGraph.clusters.set('inbound|5000||', cluster('inbound|5000||', { type: 'STATIC', service: HELLO }));
  serverGraph.endpoints.set('inbound|5000||', endpoints('inbound|5000||', [endpoint('127.0.0.1', app.port)]));
  serverPools = new UpstreamPools({ stats: serverStats, secrets: () => serverGraph.secrets });
  const serverDeps = { config: () => serverGraph, stats: serverStats, pools: serverPools, pick: roundRobinPicker(), identity: { workload: 'helloworld-v1', namespace: 'default', serviceAccount: 'helloworld', cluster: 'cluster-2', labels: { app: 'helloworld', version: 'v1' } }, log: (m: string) => console.error(m) };
  strict = new InboundListener(inboundListener(SERVER_IP, 0, 5000, 'STRICT'), serverDeps);
  permissive = new InboundListener(inboundListener(SERVER_IP, 0, 5000, 'PERMISSIVE'), serverDeps, { inspectTimeoutMs: 2000 });
  const strictPort = (await strict.listen()).port;
  await permissive.listen();

  // Client sidecar.
  clientGraph.secrets = secretsFor(sleepW);
  addCluster(cluster(HELLO_CLUSTER, { tls: istioMtls(SNI, [helloW.spiffeId]) }), [[SERVER_IP, strictPort]]);
  addCluster(cluster('wrong-san', { tls: istioMtls(SNI, ['spiffe://cluster.local/ns/default/sa/not-hello']) }), [[SERVER_IP, strictPort]]);
  addCluster(cluster('empty'), []);
  const dead = await deadPort();
  addCluster(cluster('dead-then-live'), [['127.0.0.1', dead], ['127.0.0.1', app.port]]);
  addCluster(cluster('all-dead'), [['127.0.0.1', dead]]);
  addCluster(cluster('plain-v1'), [['127.0.0.1', app.port]]);
  addCluster(cluster('plain-v2'), [['127.0.0.1', app2.port]]);
  const d = (name: string) => [name, `${name}:80`];
  clientGraph.routes.set(
    '15001',
    routeConfig('15001', [
      vhost('helloworld', ['helloworld', 'helloworld:5000', HELLO, `${HELLO}:5000`], [
        route('/only-here', forward(HELLO_CLUSTER)),
        route('/headers', forward(HELLO_CLUSTER), {
          mutations: mutations({
            requestHeadersToAdd: [add('x-added', 'by-route')],
            requestHeadersToRemove: ['x-remove-me'],
            responseHeadersToAdd: [add('x-resp-added', 'yes')],
            responseHeadersToRemove: ['x-secret'],
          }),
        }),
        route('/resp-headers', forward(HELLO_CLUSTER), { mutations: mutations({ responseHeadersToRemove: ['x-secret'], responseHeadersToAdd: [add('x-resp-added', 'yes')] }) }),
        route('/old', forward(HELLO_CLUSTER, { prefixRewrite: '/new' })),
        route('/slow', forward(HELLO_CLUSTER, { timeoutMs: 200 })),
        route('/redirect', { kind: 'redirect', scheme: undefined, host: 'elsewhere', port: undefined, path: '/there', prefixRewrite: undefined, responseCode: 302, stripQuery: false }),
        route('/direct', { kind: 'direct', status: 418, body: { kind: 'inline', data: 'short and stout' } }),
        route('/', forward(HELLO_CLUSTER)),
      ]),
      vhost('only', d('only'), [route('/yes', forward(HELLO_CLUSTER))]),
      vhost('wrongsan', d('wrongsan'), [route('/', forward('wrong-san'))]),
      vhost('empty', d('empty'), [route('/', forward('empty'))]),
      vhost('nocluster', d('nocluster'), [route('/', forward('not-there'))]),
      vhost('retry-connect', d('retry-connect'), [route('/', forward('dead-then-live', { retryPolicy: retryPolicy(['connect-failure'], 2) }))]),
      vhost('all-dead', d('all-dead'), [route('/', forward('all-dead', { retryPolicy: retryPolicy(['connect-failure'], 2) }))]),
      vhost('flaky', d('flaky'), [route('/', forward('plain-v1', { retryPolicy: retryPolicy(['5xx'], 1) }))]),
      vhost('noretry', d('noretry'), [route('/', forward('plain-v1'))]),
      vhost('pertry', d('pertry'), [route('/', forward('plain-v1', { retryPolicy: retryPolicy(['5xx'], 1, { perTryTimeoutMs: 150 }) }))]),
      vhost('weighted', d('weighted'), [
        route(
          '/',
          forward('', {
            cluster: {
              kind: 'weighted',
              totalWeight: 100,
              clusters: [
                { name: 'plain-v1', weight: 70, mutations: NO_MUTATIONS, hostRewriteLiteral: undefined },
                { name: 'plain-v2', weight: 30, mutations: NO_MUTATIONS, hostRewriteLiteral: undefined },
              ],
            },
          }),
        ),
      ]),
    ]),
  );
  clientPools = new UpstreamPools({ stats: clientStats, secrets: () => clientGraph.secrets });
  outbound = new OutboundListener(outboundListener(CLIENT_IP), {
    config: () => clientGraph,
    stats: clientStats,
    pools: clientPools,
    pick: roundRobinPicker(),
    identity: { workload: 'sleep', namespace: 'default', serviceAccount: 'sleep', principal: sleepW.spiffeId, cluster: 'cluster-1', labels: { app: 'sleep' }, nodeId: 'sidecar~127.1.0.9~sleep.default~default.svc.cluster.local' },
    log: (m: string) => console.error(m),
    // Ten requests through the weighted route land 7 / 3.
    random: seq([0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95]),
  });
  const a = await outbound.listen();
  proxy = { host: a.address, port: a.port };
});

after(async () => {
  for (const r of hangs) r.destroy();
  await Promise.all([outbound.drain({ timeoutMs: 100 }), strict.drain({ timeoutMs: 100 }), permissive.drain({ timeoutMs: 100 })]);
  clientPools.close();
  serverPools.close();
  await Promise.all([app.close(), app2.close()]);
});

const via = (url: string, opts: Parameters<typeof fetch>[1] = {}) => fetch(url, { proxy, ...opts });

describe('two sidecars over mTLS', () => {
  test('curl -x: the app sees the caller SPIFFE id in XFCC, a request id, and no forged XFCC', async () => {
    const r = await run('curl', [
      '-sS',
      '-x',
      `http://${proxy.host}:${proxy.port}`,
      '-H',
      'x-forwarded-client-cert: By=spiffe://evil;URI=spiffe://cluster.local/ns/default/sa/admin',
      'http://helloworld:5000/hello?x=1',
      '-w',
      '\n%{http_code}',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [json, status] = r.stdout.split('\n');
    assert.equal(status, '200', r.stdout);
    const seen = JSON.parse(json!) as { app: string; url: string; headers: Record<string, string> };
    assert.equal(seen.app, 'helloworld-v1');
    assert.equal(seen.url, '/hello?x=1');
    assert.equal(seen.headers.host, 'helloworld:5000');
    const xfcc = seen.headers['x-forwarded-client-cert']!;
    assert.match(xfcc, new RegExp(`^By=${helloW.spiffeId};Hash=[0-9a-f]{64};URI=${sleepW.spiffeId}$`));
    assert.match(seen.headers['x-request-id']!, /^[0-9a-f-]{36}$/);
    // Set by the client sidecar; the server sidecar keeps it (it is not an edge proxy).
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
  });

  test('HTTP_PROXY style absolute-form and origin-form with Host both route; keep-alive works', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const a = await via(`http://${HELLO}:5000/abs`, { agent });
    assert.equal(a.status, 200);
    assert.equal(JSON.parse(a.body).url, '/abs');
    const o = await fetch(`http://${proxy.host}:${proxy.port}/origin`, { headers: { host: 'helloworld' }, agent });
    assert.equal(o.status, 200);
    assert.equal(JSON.parse(o.body).headers.host, 'helloworld');
    // HTTP_PROXY in the environment, as an app would be configured in universal mode.
    const e = (await run('sh', ['-c', `http_proxy=http://${proxy.host}:${proxy.port} curl -sS -o /dev/null -w '%{http_code}' http://helloworld/via-env`])).stdout;
    assert.equal(e, '200');
    agent.destroy();
  });

  test('a POST body streams through both sidecars', async () => {
    const big = 'x'.repeat(300_000);
    const r = await via('http://helloworld/upload', { method: 'POST', body: big, headers: { 'content-type': 'text/plain' } });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).body.length, big.length);
  });

  test('codec shapes through both sidecars: a 1 MiB chunked download, HEAD, 204, a chunked upload', async () => {
    const big = await via('http://helloworld/chunked-big');
    assert.equal(big.status, 200);
    assert.equal(big.headers['transfer-encoding'], 'chunked');
    assert.equal(Buffer.byteLength(big.body, 'latin1'), 1024 * 1024);
    const head = await run('curl', ['-sS', '-I', '-x', `http://${proxy.host}:${proxy.port}`, 'http://helloworld/resp-headers']);
    assert.match(head.stdout, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(head.stdout, /x-resp-added: yes\r\n\r\n$/);
    const none = await via('http://helloworld/no-content');
    assert.equal(none.status, 204);
    assert.equal(none.headers['x-empty'], 'yes');
    assert.equal(none.body, '');
    const got = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: proxy.host, port: proxy.port, method: 'POST', path: 'http://helloworld/upload', headers: { host: 'helloworld' } }, (res) => {
        let out = '';
        res.setEncoding('utf8').on('data', (d: string) => (out += d)).on('end', () => resolve(out));
      });
      req.on('error', reject);
      for (let i = 0; i < 10; i++) req.write('y'.repeat(10_000));
      req.end();
    });
    assert.equal(JSON.parse(got).body.length, 100_000);
  });

  test('more than 100 request headers: 431 from the client sidecar, nothing truncated or forwarded', async () => {
    const before = app.requests.length;
    const args = ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', `http://${proxy.host}:${proxy.port}`];
    for (let i = 0; i < 150; i++) args.push('-H', `x-h${i}: v`);
    const r = await run('curl', [...args, 'http://helloworld/many-headers']);
    assert.equal(r.stdout, '431');
    assert.equal(app.requests.length, before);
    assert.match(await clientStats.metrics(), /istio_requests_total\{[^}]*response_code="431",[^}]*response_flags="DPE"/);
  });

  test('expected SAN mismatch → 503 with Envoy text', async () => {
    const r = await via('http://wrongsan/');
    assert.equal(r.status, 503);
    assert.match(r.body, /^upstream connect error or disconnect\/reset before headers\. reset reason: connection failure, transport failure reason: TLS error/);
  });

  test('unknown host and unknown path → 404 with a clear body; unknown cluster → 503', async () => {
    const h = await via('http://foo/x');
    assert.equal(h.status, 404);
    assert.equal(h.body, 'isle: no route for host "foo"\n');
    const h2 = await run('curl', ['-sS', '-x', `http://${proxy.host}:${proxy.port}`, 'http://foo:8080/']);
    assert.equal(h2.stdout, 'isle: no route for host "foo:8080"\n');
    const p = await via('http://only/no');
    assert.equal(p.status, 404);
    assert.match(p.body, /no route for GET \/no/);
    const c = await via('http://nocluster/');
    assert.equal(c.status, 503);
    assert.match(c.body, /no cluster "not-there"/);
  });

  test('no endpoints → 503 no healthy upstream', async () => {
    const r = await via('http://empty/');
    assert.equal(r.status, 503);
    assert.equal(r.body, 'no healthy upstream\n');
  });

  test('connect failure is retried on another endpoint; attempts are counted', async () => {
    const before = app.requests.length;
    const r = await via('http://retry-connect/rc');
    assert.equal(r.status, 200);
    const seen = app.requests.slice(before).find((q) => q.url === '/rc')!;
    assert.equal(seen.headers['x-envoy-attempt-count'], '2');
    assert.match(await clientStats.metrics(), /envoy_cluster_upstream_rq_retry\{cluster_name="dead-then-live"\} 1/);
    const all = await via('http://all-dead/');
    assert.equal(all.status, 503);
    assert.equal(all.body, 'upstream connect error or disconnect/reset before headers. retried and the latest reset reason: connection failure\n');
    assert.match(await clientStats.metrics(), /envoy_cluster_upstream_rq_retry\{cluster_name="all-dead"\} 2/);
    assert.match(await clientStats.metrics(), /istio_requests_total\{[^}]*destination_service="all-dead",[^}]*response_code="503",[^}]*response_flags="UF,URX"/);
  });

  test('5xx is retried; without a policy the 503 is passed through', async () => {
    const r = await via('http://flaky/fail-once/a');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).headers['x-envoy-attempt-count'], '2');
    const n = await via('http://noretry/fail-once/b');
    assert.equal(n.status, 503);
    assert.equal(n.body, 'try again');
  });

  test('per-try timeout retries; route timeout → 504 upstream request timeout', async () => {
    const t0 = Date.now();
    const r = await via('http://pertry/hang-once/x');
    assert.equal(r.status, 200);
    assert.ok(Date.now() - t0 >= 140);
    const slow = await via('http://helloworld/slow/hang');
    assert.equal(slow.status, 504);
    assert.equal(slow.body, 'upstream request timeout\n');
    const all = await via('http://pertry/hang');
    assert.equal(all.status, 504);
    assert.match(await clientStats.metrics(), /envoy_cluster_upstream_rq_timeout\{cluster_name="outbound\|5000\|\|helloworld.default.svc.cluster.local"\} 1/);
  });

  test('request and response header add/remove; prefix rewrite; redirect; direct response', async () => {
    const r = await via('http://helloworld/headers', { headers: { 'x-remove-me': '1', 'x-keep-me': '2' } });
    const seen = JSON.parse(r.body).headers as Record<string, string>;
    assert.equal(seen['x-added'], 'by-route');
    assert.equal(seen['x-remove-me'], undefined);
    assert.equal(seen['x-keep-me'], '2');
    assert.equal(r.headers['x-resp-added'], 'yes');
    const rh = await via('http://helloworld/resp-headers');
    assert.equal(rh.headers['x-secret'], undefined);
    assert.equal(rh.headers['x-keep'], 'yes');
    assert.equal(rh.headers['x-resp-added'], 'yes');
    const rw = await via('http://helloworld/old/thing?q=1');
    assert.equal(JSON.parse(rw.body).url, '/new/thing?q=1');
    assert.equal(JSON.parse(rw.body).headers['x-envoy-original-path'], '/old/thing?q=1');
    const red = await via('http://helloworld/redirect');
    assert.equal(red.status, 302);
    assert.equal(red.headers.location, 'http://elsewhere/there');
    const dir = await via('http://helloworld/direct');
    assert.equal(dir.status, 418);
    assert.equal(dir.body, 'short and stout');
  });

  test('weighted clusters split 70/30', async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 10; i++) {
      const r = await via('http://weighted/w');
      const name = JSON.parse(r.body).app as string;
      counts[name] = (counts[name] ?? 0) + 1;
    }
    assert.deepEqual(counts, { 'helloworld-v1': 7, 'helloworld-v2': 3 });
  });

  test('CONNECT is refused with 405', async () => {
    const r = await run('curl', ['-sS', '-p', '-x', `http://${proxy.host}:${proxy.port}`, 'http://helloworld:5000/', '-o', '/dev/null', '-w', '%{http_connect}']);
    assert.equal(r.stdout, '405');
  });
});

describe('peer metadata exchange (x-envoy-peer-metadata)', () => {
  test('the app never sees the headers, the client never sees the answer; a client-sent header is replaced', async () => {
    const forged = localPeer({ workload: 'admin', namespace: 'default', serviceAccount: 'admin', cluster: 'evil' }).header!;
    const r = await via('http://helloworld/peer-meta', { headers: { 'x-envoy-peer-metadata': forged, 'x-envoy-peer-metadata-id': 'x' } });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body).headers as Record<string, string>;
    assert.equal(seen['x-envoy-peer-metadata'], undefined);
    assert.equal(seen['x-envoy-peer-metadata-id'], undefined);
    assert.equal(r.headers['x-envoy-peer-metadata'], undefined);
    assert.doesNotMatch(await serverStats.metrics(), /source_workload="admin"/);
  });

  test('over plaintext (PERMISSIVE) a claimed identity is stripped and not believed', async () => {
    const p = permissive.address();
    const forged = localPeer({ workload: 'admin', namespace: 'default', serviceAccount: 'admin', cluster: 'evil' }).header!;
    const r = await fetch(`http://${p.address}:${p.port}/plain-peer`, { headers: { 'x-envoy-peer-metadata': forged } });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).headers['x-envoy-peer-metadata'], undefined);
    const m = await serverStats.metrics();
    assert.doesNotMatch(m, /source_cluster="evil"/);
    assert.match(m, /istio_requests_total\{reporter="destination",source_workload="unknown",[^}]*source_cluster="unknown",[^}]*connection_security_policy="none"\}/);
  });
});

describe('inbound modes', () => {
  test('STRICT closes plaintext; PERMISSIVE serves plaintext (XFCC stripped) and mTLS', async () => {
    const s = strict.address();
    await assert.rejects(fetch(`http://${s.address}:${s.port}/plain`));
    assert.match(await serverStats.metrics(), /isle_listener_downstream_cx_rejected_total\{listener="127.1.0.5_5000",reason="plaintext_refused"\} 1/);

    const p = permissive.address();
    const r = await fetch(`http://${p.address}:${p.port}/plain`, { headers: { 'x-forwarded-client-cert': 'URI=spiffe://forged' } });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).headers['x-forwarded-client-cert'], undefined);
    // The mTLS chain of the same PERMISSIVE port, through the client sidecar.
    const c = clientGraph.endpoints.get(HELLO_CLUSTER)!;
    clientGraph.endpoints.set(HELLO_CLUSTER, endpoints(HELLO_CLUSTER, [endpoint(p.address, p.port)]));
    try {
      const m = await via('http://helloworld/tls-on-permissive');
      assert.equal(m.status, 200);
      assert.match(JSON.parse(m.body).headers['x-forwarded-client-cert'], /URI=spiffe:\/\/cluster.local\/ns\/default\/sa\/sleep$/);
    } finally {
      clientGraph.endpoints.set(HELLO_CLUSTER, c);
    }
  });

  test('a client certificate is required on the mTLS chain', async () => {
    const s = strict.address();
    const r = await run('openssl', ['s_client', '-connect', `${s.address}:${s.port}`, '-servername', SNI, '-CAfile', '/dev/null', '-quiet', '-verify_quiet'], 'GET / HTTP/1.0\r\n\r\n', 5000);
    assert.doesNotMatch(r.stdout, /HTTP\/1\.[01] 200/);
  });

  test('raw socket sending nothing: the inbound listener waits, the client may close', async () => {
    const s = strict.address();
    const sock = net.connect(s.port, s.address);
    await new Promise((r) => sock.once('connect', r));
    sock.destroy();
  });
});

describe('metrics', () => {
  test('istio_requests_total is recorded by both sidecars with Istio labels (peer metadata exchanged)', async () => {
    const client = await clientStats.metrics();
    const S = 'spiffe:\\/\\/cluster.local\\/ns\\/default\\/sa';
    assert.match(
      client,
      new RegExp(
        `istio_requests_total\\{reporter="source",source_workload="sleep",source_workload_namespace="default",source_principal="${S}\\/sleep",source_app="sleep",source_version="unknown",source_canonical_service="sleep",source_canonical_revision="latest",source_cluster="cluster-1",` +
          `destination_workload="helloworld-v1",destination_workload_namespace="default",destination_principal="${S}\\/helloworld",destination_app="helloworld",destination_version="v1",destination_canonical_service="helloworld",destination_canonical_revision="v1",destination_cluster="cluster-2",` +
          `destination_service="helloworld.default.svc.cluster.local",destination_service_name="helloworld",destination_service_namespace="default",request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="mutual_tls"\\} \\d+`,
      ),
    );
    assert.match(client, /istio_requests_total\{[^}]*response_code="404",[^}]*response_flags="NR"/);
    assert.match(client, /istio_requests_total\{[^}]*destination_service="empty",[^}]*response_code="503",[^}]*response_flags="UH"/);
    assert.match(client, /istio_request_duration_milliseconds_bucket\{le="0.5",reporter="source"/);
    assert.match(client, /istio_request_bytes_bucket\{le="\+Inf",reporter="source",[^}]*destination_cluster="cluster-2"[^}]*\} [1-9]/);
    assert.match(client, /istio_response_bytes_sum\{reporter="source",[^}]*destination_cluster="cluster-2"[^}]*\} [1-9]/);
    const server = await serverStats.metrics();
    assert.match(
      server,
      new RegExp(
        `istio_requests_total\\{reporter="destination",source_workload="sleep",source_workload_namespace="default",source_principal="${S}\\/sleep",source_app="sleep",source_version="unknown",source_canonical_service="sleep",source_canonical_revision="latest",source_cluster="cluster-1",` +
          `destination_workload="helloworld-v1",destination_workload_namespace="default",destination_principal="${S}\\/helloworld",destination_app="helloworld",destination_version="v1",destination_canonical_service="helloworld",destination_canonical_revision="v1",destination_cluster="cluster-2",` +
          `destination_service="helloworld.default.svc.cluster.local",destination_service_name="helloworld",destination_service_namespace="default",request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="mutual_tls"\\} \\d+`,
      ),
    );
    assert.match(server, /envoy_cluster_upstream_cx_total\{cluster_name="inbound\|5000\|\|"\} \d+/);
  });
});
