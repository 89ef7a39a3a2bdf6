/**
 * Trailers from an HTTP/1.1 app (ADR 0116), on real sockets through two sidecars: a node:http app
 * answers chunked with a trailer section; the server sidecar's inbound listener reads it with the
 * HTTP/1.1 upstream codec and relays it (chunked) over mTLS HTTP/1.1 to the client sidecar, whose
 * outbound listener gives it to an h2c client as a trailing HEADERS frame and to an HTTP/1.1 client
 * as a chunked trailer section. Fields a trailer must not carry are dropped on the way.
 */
import { h2Response } from '../../helpers/h2.js';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { InboundListener } from '../../../src/proxy/listeners/inbound.js';
import { OutboundListener } from '../../../src/proxy/listeners/outbound.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { UpstreamPools } from '../../../src/proxy/upstream/pool.js';
import { BodyDecoder } from '../../../src/proxy/http1/body.js';
import { chain, cluster, emptyGraph, endpoint, endpoints, forward, hcm, inboundListener, istioMtls, listener, roundRobinPicker, route, routeConfig, secretsFor, testPki, vhost } from '../net/fixtures.js';

const CLIENT_IP = '127.0.115.30';
const SERVER_IP = '127.0.115.31';
const WEB = 'web.default.svc.cluster.local';
const WEB_CLUSTER = `outbound|8080||${WEB}`;

let app: http.Server;
let inbound: InboundListener;
let outbound: OutboundListener;
let proxyAddr: string;
const pools: UpstreamPools[] = [];

before(async () => {
  app = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum, x-count' });
    res.write('part one, ');
    res.write('part two');
    res.addTrailers([
      ['X-Checksum', 'abc123'],
      ['x-count', '2'],
      ['x-count', '3'],
      // Never allowed from a trailer: it would rewrite the framing after the fact.
      ['content-length', '999'],
    ]);
    res.end();
    void req;
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const appPort = (app.address() as AddressInfo).port;

  const pki = await testPki();
  const [sleepW, webW] = await Promise.all([pki.workload('default', 'sleep'), pki.workload('default', 'web')]);

  const serverGraph = emptyGraph();
  serverGraph.secrets = secretsFor(webW);
  serverGraph.clusters.set('inbound|8080||', cluster('inbound|8080||', { type: 'STATIC', service: WEB }));
  serverGraph.endpoints.set('inbound|8080||', endpoints('inbound|8080||', [endpoint('127.0.0.1', appPort)]));
  const serverStats = new ProxyStats();
  const serverPools = new UpstreamPools({ stats: serverStats, secrets: () => serverGraph.secrets });
  pools.push(serverPools);
  inbound = new InboundListener(inboundListener(SERVER_IP, 0, 8080, 'STRICT'), { config: () => serverGraph, stats: serverStats, pools: serverPools, pick: roundRobinPicker() });
  const inboundPort = (await inbound.listen()).port;

  // HTTP/1.1 between the sidecars (an `http` port): the trailers cross the mTLS hop chunked.
  const clientGraph = emptyGraph();
  clientGraph.secrets = secretsFor(sleepW);
  clientGraph.clusters.set(WEB_CLUSTER, cluster(WEB_CLUSTER, { tls: istioMtls(`outbound_.8080_._.${WEB}`, [webW.spiffeId]) }));
  clientGraph.endpoints.set(WEB_CLUSTER, endpoints(WEB_CLUSTER, [endpoint(SERVER_IP, inboundPort)]));
  clientGraph.routes.set('15001', routeConfig('15001', [vhost('web', ['web', 'web:8080', WEB], [route('/', forward(WEB_CLUSTER))])]));
  const clientStats = new ProxyStats();
  const clientPools = new UpstreamPools({ stats: clientStats, secrets: () => clientGraph.secrets });
  pools.push(clientPools);
  outbound = new OutboundListener(
    listener('virtualOutbound', CLIENT_IP, 0, [chain('', { kind: 'http', hcm: hcm({ kind: 'rds', routeConfigName: '15001' }, { allowAbsoluteUrl: true }) })], { trafficDirection: 'OUTBOUND' }),
    { config: () => clientGraph, stats: clientStats, pools: clientPools, pick: roundRobinPicker() },
  );
  const a = await outbound.listen();
  proxyAddr = `${a.address}:${a.port}`;
});

after(async () => {
  await Promise.all([outbound?.drain({ timeoutMs: 100 }), inbound?.drain({ timeoutMs: 100 })]);
  for (const p of pools) p.close();
  app?.closeAllConnections();
  app?.close();
});

/** One HTTP/1.1 exchange on a raw socket: the whole response text, chunked framing and all. */
function rawHttp1(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const [host, port] = proxyAddr.split(':');
    const s = net.connect({ host, port: Number(port) });
    let text = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      text += d;
      // The response ends with the empty line after the trailer section.
      if (/\r\n0\r\n(?:[^\r\n]+\r\n)*\r\n$/.test(text)) s.end();
    });
    s.on('end', () => resolve(text));
    s.on('error', reject);
    s.write(request);
  });
}

describe('trailers from an HTTP/1.1 app through two sidecars', () => {
  test('to an h2c client: the body, then the trailers as a HEADERS frame (names lowercased, repeats kept)', async () => {
    const s = http2.connect(`http://${proxyAddr}`);
    try {
      const req = s.request({ ':method': 'GET', ':path': '/t', ':authority': 'web:8080', te: 'trailers' });
      req.end();
      const res = await h2Response(req);
      assert.equal(res.headers[':status'], 200);
      assert.equal(res.body.toString(), 'part one, part two');
      assert.equal(res.trailers['x-checksum'], 'abc123');
      assert.equal(res.trailers['x-count'], '2, 3');
      assert.equal(res.trailers['content-length'], undefined);
    } finally {
      s.close();
    }
  });

  test('to an HTTP/1.1 client: a chunked response whose last chunk carries the trailer section', async () => {
    const text = await rawHttp1('GET /t HTTP/1.1\r\nhost: web:8080\r\nte: trailers\r\nconnection: close\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /\r\ntransfer-encoding: chunked\r\n/i);
    const tail = text.slice(text.lastIndexOf('\r\n0\r\n') + 5);
    assert.match(tail, /^x-checksum: abc123\r\n/m);
    assert.match(tail, /^x-count: 2\r\nx-count: 3\r\n/m);
    assert.doesNotMatch(tail, /content-length/i);
    assert.ok(tail.endsWith('\r\n\r\n'));
  });
});

test('the chunked decoder: trailer fields parsed, forbidden and malformed ones dropped, none → undefined', () => {
  const decode = (wire: string) => {
    const d = new BodyDecoder({ kind: 'chunked' });
    const out: Buffer[] = [];
    const at = d.feed(Buffer.from(wire, 'latin1'), 0, { bodyData: (c) => out.push(Buffer.from(c)) });
    return { at, done: d.done, body: Buffer.concat(out).toString(), trailers: d.trailers };
  };
  const wire = '3\r\nabc\r\n0\r\nGrpc-Status: 0\r\nhost: evil\r\nno colon here\r\nx-a: 1\r\nX-A: 2\r\n\r\nNEXT';
  const r = decode(wire);
  assert.equal(r.done, true);
  assert.equal(r.body, 'abc');
  assert.deepEqual(r.trailers, { 'grpc-status': '0', 'x-a': ['1', '2'] });
  assert.equal(wire.slice(r.at), 'NEXT', 'the bytes after the trailer section stay with the connection');
  assert.equal(decode('3\r\nabc\r\n0\r\n\r\n').trailers, undefined);
});
