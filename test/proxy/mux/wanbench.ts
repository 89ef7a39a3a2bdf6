/**
 * Not a test: the one-off measurement behind ADR 0138's auto-tuning figures (issue 12). A client
 * sidecar's outbound listener → DelayRelay (a simulated WAN, `delayMs` each way) → a server
 * sidecar's inbound listener (mux on, or off: HTTP/1.1) → an app; a large response and a large
 * request body, MB/s each. Does nothing unless run as
 * `node dist/test/proxy/mux/wanbench.js run [bytes=32000000] [delayMs=25]`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { DelayRelay } from '../../../bench/lib/relay.js';
import { InboundListener } from '../../../src/proxy/listeners/inbound.js';
import { OutboundListener } from '../../../src/proxy/listeners/outbound.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { UpstreamPools } from '../../../src/proxy/upstream/pool.js';
import { cluster, emptyGraph, endpoint, endpoints, forward, inboundListener, istioMtls, outboundListener, roundRobinPicker, route, routeConfig, secretsFor, testPki, vhost } from '../net/fixtures.js';

const HELLO = 'helloworld.default.svc.cluster.local';
const SNI = `outbound_.5000_._.${HELLO}`;

/** Writes `bytes` bytes of `block` with backpressure, then ends. */
function writeAll(w: Writable, bytes: number, block: Buffer): void {
  let left = bytes;
  const more = (): void => {
    while (left > 0) {
      const n = Math.min(block.length, left);
      left -= n;
      if (!w.write(block.subarray(0, n))) return void w.once('drain', more);
    }
    w.end();
  };
  more();
}

async function main(bytes: number, delayMs: number): Promise<void> {
  const pki = await testPki();
  const [sleepW, helloW] = await Promise.all([pki.workload('default', 'sleep'), pki.workload('default', 'helloworld')]);
  const block = Buffer.alloc(64 * 1024, 7);
  const app = http.createServer((req, res) => {
    let got = 0;
    req.on('data', (c: Buffer) => (got += c.length));
    req.on('end', () => {
      if (req.url === '/up') return void res.end(String(got));
      res.writeHead(200, { 'content-length': String(bytes) });
      writeAll(res, bytes, block);
    });
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const stats = new ProxyStats();
  const serverGraph = emptyGraph();
  serverGraph.secrets = secretsFor(helloW);
  serverGraph.clusters.set('inbound|5000||', cluster('inbound|5000||', { type: 'STATIC', service: HELLO }));
  serverGraph.endpoints.set('inbound|5000||', endpoints('inbound|5000||', [endpoint('127.0.0.1', (app.address() as AddressInfo).port)]));
  const serverPools = new UpstreamPools({ stats, secrets: () => serverGraph.secrets, mux: true });
  const deps = { config: () => serverGraph, stats, pools: serverPools, pick: roundRobinPicker(), identity: { workload: 'helloworld-v1', namespace: 'default', serviceAccount: 'helloworld', cluster: 'cluster-2', labels: {} }, log: () => undefined };
  const muxServer = new InboundListener(inboundListener('127.0.66.20', 0, 5000, 'STRICT'), { ...deps, mux: true });
  const h1Server = new InboundListener(inboundListener('127.0.66.21', 0, 5000, 'STRICT'), { ...deps, mux: false });
  const [mp, hp] = await Promise.all([muxServer.listen(), h1Server.listen()]);
  const muxRelay = await DelayRelay.start(`127.0.66.20:${mp.port}`, delayMs);
  const h1Relay = await DelayRelay.start(`127.0.66.21:${hp.port}`, delayMs);
  const clientGraph = emptyGraph();
  clientGraph.secrets = secretsFor(sleepW);
  const mtls = istioMtls(SNI, [helloW.spiffeId]);
  for (const [name, relay] of [['mux', muxRelay], ['h1', h1Relay]] as const) {
    const [host, port] = relay.address.split(':');
    clientGraph.clusters.set(name, cluster(name, { tls: mtls }));
    clientGraph.endpoints.set(name, endpoints(name, [endpoint(host!, Number(port))]));
  }
  clientGraph.routes.set('15001', routeConfig('15001', [vhost('mux', ['mux'], [route('/', forward('mux'))]), vhost('h1', ['h1'], [route('/', forward('h1'))])]));
  const clientPools = new UpstreamPools({ stats, secrets: () => clientGraph.secrets, mux: true });
  const outbound = new OutboundListener(outboundListener('127.0.66.22'), {
    config: () => clientGraph,
    stats,
    pools: clientPools,
    pick: roundRobinPicker(),
    identity: { workload: 'sleep', namespace: 'default', serviceAccount: 'sleep', principal: sleepW.spiffeId, cluster: 'cluster-1', labels: {}, nodeId: 'sidecar~127.0.66.22~sleep.default~default.svc.cluster.local' },
    log: () => undefined,
  });
  const proxy = await outbound.listen();

  /** One request through the client sidecar; bytes received (response) or sent (upload), seconds. */
  const once = (host: string, path: string, upload: number): Promise<number> =>
    new Promise((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const req = http.request({ host: proxy.address, port: proxy.port, method: upload ? 'POST' : 'GET', path: `http://${host}${path}`, headers: { host, ...(upload ? { 'content-length': String(upload) } : {}) } }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => resolve(Number(process.hrtime.bigint() - t0) / 1e9));
      });
      req.on('error', reject);
      writeAll(req, upload, block);
    });
  for (const host of ['mux', 'h1']) {
    await once(host, '/warm', 0); // the connection and its handshake are not part of the figure
    const down = await once(host, '/down', 0);
    const up = await once(host, '/up', bytes);
    console.log(`${host}: ${bytes} bytes, ${delayMs} ms each way: response ${(bytes / 1e6 / down).toFixed(1)} MB/s (${down.toFixed(2)} s), request body ${(bytes / 1e6 / up).toFixed(1)} MB/s (${up.toFixed(2)} s)`);
  }
  const snap = clientPools.snapshot().map((s) => `${s.cluster}: mux ${JSON.stringify(s.mux)}`);
  console.log(snap.join('; '));
  await Promise.all([outbound.drain({ timeoutMs: 100 }), muxServer.drain({ timeoutMs: 100 }), h1Server.drain({ timeoutMs: 100 })]);
  clientPools.close();
  serverPools.close();
  await Promise.all([muxRelay.close(), h1Relay.close()]);
  app.closeAllConnections();
  app.close();
}

if (process.argv[2] === 'run') {
  main(Number(process.argv[3] ?? 32_000_000), Number(process.argv[4] ?? 25)).catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
