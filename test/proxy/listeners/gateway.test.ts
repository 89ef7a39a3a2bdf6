/**
 * East-west gateway: SNI passthrough on real sockets. openssl s_client (a third-party TLS
 * client) completes mTLS with the server sidecar *through* the gateway, which never holds a key.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { GatewayListener, UnknownSniWarnings } from '../../../src/proxy/listeners/gateway.js';
import { InboundListener } from '../../../src/proxy/listeners/inbound.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { UpstreamPools } from '../../../src/proxy/upstream/pool.js';
import {
  chain,
  cluster,
  emptyGraph,
  endpoint,
  endpoints,
  inboundListener,
  istioMtls,
  listener,
  roundRobinPicker,
  run,
  secretsFor,
  startApp,
  testPki,
  type TestApp,
  type Workload,
} from '../net/fixtures.js';

const HELLO = 'helloworld.default.svc.cluster.local';
const SNI = `outbound_.5000_._.${HELLO}`;
const GW_IP = '127.2.0.200';
const SERVER_IP = '127.2.0.5';

let dir: string;
let sleepW: Workload;
let helloW: Workload;
let app: TestApp;
let sidecar: InboundListener;
let gateway: GatewayListener;
let gw: net.AddressInfo;
const gwStats = new ProxyStats();
const gwLogs: string[] = [];
const sidecarStats = new ProxyStats();
let sidecarPools: UpstreamPools;
let gwPools: UpstreamPools;

before(async () => {
  const pki = await testPki();
  [sleepW, helloW] = await Promise.all([pki.workload('default', 'sleep'), pki.workload('default', 'helloworld')]);
  dir = mkdtempSync(join(tmpdir(), 'isle-gw-'));
  writeFileSync(join(dir, 'cert-chain.pem'), sleepW.certChainPem);
  writeFileSync(join(dir, 'key.pem'), sleepW.keyPem);
  writeFileSync(join(dir, 'root-cert.pem'), sleepW.rootPem);
  app = await startApp('helloworld-v2');

  const sg = emptyGraph();
  sg.secrets = secretsFor(helloW);
  sg.clusters.set('inbound|5000||', cluster('inbound|5000||'));
  sg.endpoints.set('inbound|5000||', endpoints('inbound|5000||', [endpoint('127.0.0.1', app.port)]));
  sidecarPools = new UpstreamPools({ stats: sidecarStats, secrets: () => sg.secrets });
  sidecar = new InboundListener(inboundListener(SERVER_IP, 0, 5000, 'STRICT'), { config: () => sg, stats: sidecarStats, pools: sidecarPools, pick: roundRobinPicker() });
  const sc = await sidecar.listen();

  // The gateway: no secrets at all, one passthrough chain per local service/subset.
  const gg = emptyGraph();
  gg.clusters.set(SNI, cluster(SNI));
  gg.endpoints.set(SNI, endpoints(SNI, [endpoint(sc.address, sc.port)]));
  const model = listener(`${GW_IP}_15443`, GW_IP, 0, [chain(SNI, { kind: 'tcp', tcpProxy: { statPrefix: SNI, cluster: { kind: 'cluster', name: SNI }, idleTimeoutMs: 0 } }, { serverNames: [SNI] })], {
    kind: 'sni-passthrough',
    tlsInspector: true,
    sniClusters: new Map([[SNI, SNI]]),
  });
  gwPools = new UpstreamPools({ stats: gwStats, secrets: () => gg.secrets });
  gateway = new GatewayListener(model, { config: () => gg, stats: gwStats, pools: gwPools, pick: roundRobinPicker(), log: (m) => void gwLogs.push(m) }, { inspectTimeoutMs: 1000 });
  gw = await gateway.listen();
});

after(async () => {
  await Promise.all([gateway.drain({ timeoutMs: 100 }), sidecar.drain({ timeoutMs: 100 })]);
  sidecarPools.close();
  gwPools.close();
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

test('openssl s_client completes mTLS with the sidecar through the gateway', async () => {
  const r = await run(
    'openssl',
    [
      's_client',
      '-connect',
      `${gw.address}:${gw.port}`,
      '-servername',
      SNI,
      '-cert',
      join(dir, 'cert-chain.pem'),
      // -cert sends only the leaf; the intermediate must come along for the sidecar to verify.
      '-cert_chain',
      join(dir, 'cert-chain.pem'),
      '-key',
      join(dir, 'key.pem'),
      '-CAfile',
      join(dir, 'root-cert.pem'),
      '-verify_return_error',
      '-quiet',
    ],
    'GET /through-gw HTTP/1.1\r\nHost: helloworld:5000\r\nConnection: close\r\n\r\n',
  );
  assert.match(r.stdout, /^HTTP\/1\.1 200 OK/, r.stderr);
  // The body may be chunked; the JSON object is one chunk.
  const body = JSON.parse(/\{.*\}/s.exec(r.stdout)![0]) as { url: string; headers: Record<string, string> };
  assert.equal(body.url, '/through-gw');
  assert.match(body.headers['x-forwarded-client-cert']!, new RegExp(`^By=${helloW.spiffeId};Hash=[0-9a-f]+;URI=${sleepW.spiffeId}$`));
  const m = await gwStats.metrics();
  assert.match(m, new RegExp(`isle_gateway_connections_total\\{sni="${SNI}",cluster="${SNI}"\\} 1`));
  const up = new RegExp(`isle_gateway_bytes_total\\{sni="${SNI}",cluster="${SNI}",direction="upstream"\\} (\\d+)`).exec(m);
  const down = new RegExp(`isle_gateway_bytes_total\\{sni="${SNI}",cluster="${SNI}",direction="downstream"\\} (\\d+)`).exec(m);
  assert.ok(up && Number(up[1]) > 200, m);
  assert.ok(down && Number(down[1]) > 500, m);
});

test('a sidecar upstream pool reaches the service through the gateway (cross-network path)', async () => {
  const stats = new ProxyStats();
  const pools = new UpstreamPools({ stats, secrets: () => secretsFor(sleepW) });
  const c = cluster(`outbound|5000||${HELLO}`, { tls: istioMtls(SNI, [helloW.spiffeId]) });
  const o = await pools.send({ method: 'GET', path: '/x-net', headers: { host: 'helloworld:5000' }, body: null }, c, endpoint(gw.address, gw.port));
  assert.equal(o.kind, 'response');
  if (o.kind === 'response') {
    const chunks: Buffer[] = [];
    for await (const ch of o.response) chunks.push(ch as Buffer);
    assert.equal(JSON.parse(Buffer.concat(chunks).toString()).url, '/x-net');
  }
  pools.close();
});

async function closedWithoutData(write: (s: net.Socket) => void): Promise<number> {
  const s = net.connect(gw.port, gw.address);
  s.on('error', () => {});
  let got = 0;
  s.on('data', (c: Buffer) => (got += c.length));
  await new Promise((r) => s.once('connect', r));
  write(s);
  await new Promise((r) => s.once('close', r));
  return got;
}

test('plaintext, unknown SNI and no SNI are closed and counted', async () => {
  assert.equal(await closedWithoutData((s) => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')), 0);
  const unknown = await new Promise<Error | undefined>((resolve) => {
    const t = tls.connect({ host: gw.address, port: gw.port, servername: 'outbound_.5000_._.nope.default.svc.cluster.local', rejectUnauthorized: false });
    t.once('secureConnect', () => resolve(undefined));
    t.once('error', (e) => resolve(e));
  });
  assert.ok(unknown, 'handshake must fail');
  const noSni = await new Promise<Error | undefined>((resolve) => {
    const t = tls.connect({ host: gw.address, port: gw.port, rejectUnauthorized: false });
    t.once('secureConnect', () => resolve(undefined));
    t.once('error', (e) => resolve(e));
  });
  assert.ok(noSni);
  const m = await gwStats.metrics();
  assert.match(m, /isle_gateway_rejected_total\{reason="plaintext"\} 1/);
  assert.match(m, /isle_gateway_rejected_total\{reason="unknown_sni"\} 1/);
  assert.match(m, /isle_gateway_rejected_total\{reason="no_sni"\} 1/);
  // The unknown SNI is said at warn level (the deps' log), naming the name and the likely cause.
  assert.equal(gwLogs.length, 1, gwLogs.join('\n'));
  assert.match(gwLogs[0]!, /unknown SNI "outbound_\.5000_\._\.nope\.default\.svc\.cluster\.local": .*subset missing in this cluster/);
});

test('unknown-SNI warnings are rate-limited: once per name per window, a cap per window, the rest counted', () => {
  const lines: string[] = [];
  let now = 0;
  const w = new UnknownSniWarnings((m) => void lines.push(m), () => now, 10_000, 3);
  for (let i = 0; i < 5; i++) w.report('gw', 'a');
  assert.equal(lines.length, 1, 'the same name once per window');
  for (const n of ['b', 'c', 'd', 'e']) w.report('gw', n);
  assert.equal(lines.length, 3, 'at most 3 lines per window');
  now = 10_000;
  w.report('gw', 'a');
  assert.equal(lines.length, 4, 'a again in the next window');
  // d and e were left out after the last line (c).
  assert.match(lines[3]!, /\(2 more unknown-SNI connections not logged since the last warning\)/);
});

test('a ClientHello split over several TCP segments is still routed', async () => {
  // Capture a real ClientHello, then replay it to the gateway in small pieces.
  const capture = net.createServer();
  await new Promise<void>((r) => capture.listen(0, '127.0.0.1', () => r()));
  const hello = new Promise<Buffer>((resolve) => capture.once('connection', (s) => s.once('data', (d: Buffer) => (resolve(d), s.destroy()))));
  const t = tls.connect({ host: '127.0.0.1', port: (capture.address() as net.AddressInfo).port, servername: SNI });
  t.on('error', () => {});
  const bytes = await hello;
  capture.close();
  const before = /isle_gateway_connections_total\{[^}]*\} (\d+)/.exec(await gwStats.metrics())?.[1] ?? '0';
  const s = net.connect(gw.port, gw.address);
  s.setNoDelay(true);
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  for (let i = 0; i < bytes.length; i += 50) {
    s.write(bytes.subarray(i, i + 50));
    await new Promise((r) => setTimeout(r, 5));
  }
  // The sidecar answers with its ServerHello: proof the bytes reached it intact.
  const reply = await new Promise<Buffer>((resolve) => s.once('data', resolve));
  assert.equal(reply[0], 0x16);
  s.destroy();
  const afterCount = /isle_gateway_connections_total\{[^}]*\} (\d+)/.exec(await gwStats.metrics())?.[1];
  assert.equal(Number(afterCount), Number(before) + 1);
});
