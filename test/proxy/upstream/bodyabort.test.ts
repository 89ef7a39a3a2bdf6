/**
 * A streamed request body cut short by the downstream (it disconnects mid-body) while the
 * HTTP/1.1 upstream attempt is sending it: the attempt fails, the sidecar lives on.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { OutboundListener } from '../../../src/proxy/listeners/outbound.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { UpstreamPools } from '../../../src/proxy/upstream/pool.js';
import { cluster, emptyGraph, endpoint, endpoints, fetch, forward, outboundListener, roundRobinPicker, route, routeConfig, vhost } from '../net/fixtures.js';

const CLIENT_IP = '127.0.66.30';
let app: http.Server;
let outbound: OutboundListener;
let pools: UpstreamPools;
let proxy: { host: string; port: number };
let appGotPart: () => void = () => undefined;
const appGotPartP = new Promise<void>((r) => (appGotPart = r));
let appBodyEnded: (how: string) => void = () => undefined;
const appBodyEndedP = new Promise<string>((r) => (appBodyEnded = r));

before(async () => {
  app = http.createServer((req, res) => {
    if (req.url === '/slow') return void req.resume(); // never answers
    if (req.url !== '/up') return void res.end('ok');
    let got = 0;
    req.on('data', (c: Buffer) => {
      got += c.length;
      if (got >= 1000) appGotPart();
    });
    req.on('end', () => appBodyEnded('end'));
    req.on('close', () => appBodyEnded('close'));
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const graph = emptyGraph();
  graph.clusters.set('app', cluster('app'));
  graph.endpoints.set('app', endpoints('app', [endpoint('127.0.0.1', (app.address() as AddressInfo).port)]));
  graph.routes.set('15001', routeConfig('15001', [vhost('app', ['app'], [route('/slow', forward('app', { timeoutMs: 100 })), route('/', forward('app'))])]));
  const stats = new ProxyStats();
  pools = new UpstreamPools({ stats, secrets: () => graph.secrets });
  outbound = new OutboundListener(outboundListener(CLIENT_IP), {
    config: () => graph,
    stats,
    pools,
    pick: roundRobinPicker(),
    identity: { workload: 'sleep', namespace: 'default', serviceAccount: 'sleep', principal: 'spiffe://cluster.local/ns/default/sa/sleep', cluster: 'cluster-1', labels: {}, nodeId: 'sidecar~127.0.66.30~sleep.default~default.svc.cluster.local' },
    log: () => undefined,
  });
  const a = await outbound.listen();
  proxy = { host: a.address, port: a.port };
});

after(async () => {
  await outbound.drain({ timeoutMs: 100 });
  pools.close();
  app.closeAllConnections();
  app.close();
});

test('a downstream that disconnects in the middle of a streamed request body does not take the sidecar down', async () => {
  const s = net.connect({ host: proxy.host, port: proxy.port });
  await new Promise<void>((r) => s.once('connect', r));
  s.write('POST http://app/up HTTP/1.1\r\nhost: app\r\ncontent-length: 1000000\r\n\r\n');
  s.write(Buffer.alloc(100_000, 1));
  await appGotPartP;
  s.destroy();
  assert.equal(await appBodyEndedP, 'close', 'the app sees the request cut short, not a complete body');
  // The sidecar still answers.
  const r = await fetch('http://app/after', { proxy });
  assert.equal(r.status, 200);
  assert.equal(r.body, 'ok');
});

test('a body cut short after its attempt timed out (504 sent) does not take the sidecar down either', async () => {
  const s = net.connect({ host: proxy.host, port: proxy.port });
  await new Promise<void>((r) => s.once('connect', r));
  let answer = '';
  const answered = new Promise<void>((r) => s.on('data', (d: Buffer) => ((answer += d.toString('latin1')), r())));
  s.write('POST http://app/slow HTTP/1.1\r\nhost: app\r\ncontent-length: 1000000\r\n\r\n');
  s.write(Buffer.alloc(100_000, 1));
  await answered;
  assert.match(answer, /^HTTP\/1\.1 504/);
  s.destroy();
  const r = await fetch('http://app/after', { proxy });
  assert.equal(r.status, 200);
});
