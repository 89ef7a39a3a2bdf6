/**
 * Issue #4 acceptance, east-west gateway: a gateway-mode `isle proxy` on 15443 routes on the TLS
 * ClientHello's SNI without terminating TLS. `openssl s_client -servername
 * outbound_.5000_._.helloworld.default.svc.cluster.local` with a workload certificate completes
 * mTLS with the helloworld sidecar through it; plaintext and an unknown SNI are closed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  configDir,
  getText,
  makeMesh,
  run,
  startApp,
  startControlPlane,
  startProxy,
  waitFor,
  type App,
  type Child,
  type Mesh,
  type ProxyChild,
} from './helpers.js';
import net from 'node:net';

const HELLO_IP = '127.1.78.10';
const GW_IP = '127.1.78.1';
const SNI = 'outbound_.5000_._.helloworld.default.svc.cluster.local';

let mesh: Mesh;
let cp: Child;
let app: App;
let hello: ProxyChild;
let gw: ProxyChild;
let gwAddr: string;

before(async () => {
  mesh = await makeMesh();
  const started = await startControlPlane(mesh, configDir());
  cp = started.child;
  app = await startApp('helloworld-v1');
  hello = await startProxy({ mesh, controlPlane: started.address, ip: HELLO_IP, serviceAccount: 'helloworld', labels: { app: 'helloworld' }, appPorts: { 5000: app.port } });
  gw = await startProxy({ mesh, controlPlane: started.address, ip: GW_IP, serviceAccount: 'istio-eastwestgateway', mode: 'gateway', namespace: 'istio-system', ready: false, extra: ['--gateway-port', '0'] });
  // The gateway's listener appears once the helloworld sidecar is registered (a local service).
  gwAddr = (await gw.child.line(/^listener \S+ gateway (\S+)$/m))[1]!;
});

after(() => {
  for (const p of [hello, gw]) p?.child.kill('SIGKILL');
  cp?.kill('SIGKILL');
});

function sClient(servername: string, cert: { certFile: string; keyFile: string }): Promise<{ code: number; stdout: string; stderr: string }> {
  const [host, port] = [gwAddr.slice(0, gwAddr.lastIndexOf(':')), gwAddr.slice(gwAddr.lastIndexOf(':') + 1)];
  return run(
    'openssl',
    ['s_client', '-connect', `${host}:${port}`, '-servername', servername, '-cert', cert.certFile, '-cert_chain', cert.certFile, '-key', cert.keyFile, '-CAfile', mesh.rootFile, '-verify_return_error', '-ign_eof'],
    { input: 'GET /through-gateway HTTP/1.1\r\nHost: helloworld:5000\r\nConnection: close\r\n\r\n', timeoutMs: 15_000 },
  );
}

/** Connects, sends `data`, resolves with what came back before the gateway closed. */
function rawExchange(data: Buffer | string): Promise<{ received: number; closed: boolean }> {
  const [host, port] = [gwAddr.slice(0, gwAddr.lastIndexOf(':')), Number(gwAddr.slice(gwAddr.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    let received = 0;
    const s = net.connect(port, host, () => s.write(data));
    s.on('data', (d) => (received += d.length));
    s.on('error', () => {});
    s.on('close', () => resolve({ received, closed: true }));
    s.setTimeout(10_000, () => reject(new Error('gateway did not close the connection')));
  });
}

describe('east-west gateway (SNI passthrough)', () => {
  test('openssl s_client with a workload certificate completes mTLS with the helloworld sidecar through the gateway', async () => {
    const sleep = await mesh.workload('default', 'sleep');
    let last: unknown;
    const r = await waitFor('an HTTP answer through the gateway', async () => {
      const x = await sClient(SNI, sleep);
      last = x;
      return x.stdout.includes('HTTP/1.1 200') ? x : undefined;
    }, 10_000).catch(async (e: Error) => {
      throw new Error(`${e.message}\nlast: ${JSON.stringify(last)}\nclusters: ${(await getText(`${gw.admin}/clusters`)).text}\ngw: ${gw.child.stderr.slice(-3000)}\nhello: ${hello.child.stdout} ${hello.child.stderr.slice(-3000)}`);
    });
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
    assert.match(r.stdout, /"app":"helloworld-v1"/);
    // The app saw the caller's identity: mTLS was terminated by the sidecar, not the gateway.
    assert.match(r.stdout, /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
    assert.match(r.stdout, /"path":"\/through-gateway"/);
    const stats = await getText(`${gw.admin}/stats/prometheus`);
    assert.match(stats.text, new RegExp(`isle_gateway_connections_total\\{sni="${SNI.replace(/\./g, '\\.')}"`));
  });

  test('plaintext and an unknown SNI are closed and counted', async () => {
    const plain = await rawExchange('GET / HTTP/1.1\r\nHost: helloworld\r\n\r\n');
    assert.deepEqual(plain, { received: 0, closed: true });
    const sleep = await mesh.workload('default', 'sleep');
    const unknown = await sClient('outbound_.5000_._.nosuch.default.svc.cluster.local', sleep);
    assert.doesNotMatch(unknown.stdout, /HTTP\/1\.1 200/);
    assert.match(unknown.stdout, /no peer certificate available/);
    const stats = await getText(`${gw.admin}/stats/prometheus`);
    assert.match(stats.text, /isle_gateway_rejected_total\{reason="plaintext"\} 1/);
    assert.match(stats.text, /isle_gateway_rejected_total\{reason="unknown_sni"\} 1/);
  });
});
