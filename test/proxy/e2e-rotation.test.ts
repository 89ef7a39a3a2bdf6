/**
 * Issue #4 acceptance, certificate rotation: sidecars started with a short certificate lifetime
 * (`--cert-ttl 8s`) renew at half-life with a fresh key. New connections get the new
 * certificate; a keep-alive connection opened before the rotation keeps working.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { configDir, configDump, curlProxy, makeMesh, startApp, startControlPlane, startProxy, waitFor, type App, type Child, type Mesh, type ProxyChild } from './helpers.js';

const HELLO_IP = '127.1.80.10';
const SLEEP_IP = '127.1.80.9';

let mesh: Mesh;
let cp: Child;
let app: App;
let hello: ProxyChild;
let sleep: ProxyChild;

before(async () => {
  mesh = await makeMesh();
  const started = await startControlPlane(mesh, configDir());
  cp = started.child;
  app = await startApp('helloworld-v1');
  [hello, sleep] = await Promise.all([
    startProxy({ mesh, controlPlane: started.address, ip: HELLO_IP, serviceAccount: 'helloworld', labels: { app: 'helloworld' }, appPorts: { 5000: app.port }, extra: ['--cert-ttl', '8s'] }),
    startProxy({ mesh, controlPlane: started.address, ip: SLEEP_IP, serviceAccount: 'sleep', labels: { app: 'sleep' }, extra: ['--cert-ttl', '8s'] }),
  ]);
  await waitFor('helloworld inbound listener', () => /^listener \S+ inbound 127\.1\.80\.10:5000$/m.test(hello.child.stdout));
});

after(() => {
  for (const p of [hello, sleep]) p?.child.kill('SIGKILL');
  cp?.kill('SIGKILL');
});

function get(agent: https.Agent, path: string): Promise<{ status: number; socket: TLSSocket; serial: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: HELLO_IP, port: 5000, path, agent, headers: { host: 'helloworld:5000' } }, (res) => {
      const socket = res.socket as TLSSocket;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, socket, serial: socket.getPeerCertificate().serialNumber, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('certificate rotation at half-life', () => {
  test('new connections get the new certificate; an open keep-alive connection survives', async () => {
    const client = await mesh.workload('default', 'sleep');
    const agent = new https.Agent({
      keepAlive: true,
      maxSockets: 1,
      cert: client.chainPem,
      key: client.keyPem,
      ca: readFileSync(mesh.rootFile),
      checkServerIdentity: () => undefined,
    });
    try {
      const sleepBefore = (await configDump(sleep))['certificate'].serial as string;
      const first = await get(agent, '/before');
      assert.equal(first.status, 200);
      const before = (await configDump(hello))['certificate'];
      assert.equal(before.serial.toLowerCase(), first.serial.toLowerCase(), 'the listener presents the current certificate');
      assert.ok(Date.parse(before.not_after) - Date.parse(before.not_before) < 6 * 60_000, 'short-lived certificate (8 s + 5 min backdating)');

      const rotated = await waitFor('rotation', async () => {
        const c = (await configDump(hello))['certificate'];
        return c.serial !== before.serial ? c : undefined;
      }, 20_000, 100);
      assert.notEqual(rotated.serial, before.serial);

      const again = await get(agent, '/after-on-old-connection');
      assert.equal(again.status, 200);
      assert.equal(again.reused, true, 'the keep-alive connection was reused');
      assert.equal(again.socket, first.socket);
      assert.equal(again.serial, first.serial, 'the old connection still has the old certificate');

      const fresh = await get(new https.Agent({ cert: client.chainPem, key: client.keyPem, ca: readFileSync(mesh.rootFile), checkServerIdentity: () => undefined }), '/new-connection');
      assert.equal(fresh.status, 200);
      assert.notEqual(fresh.serial.toLowerCase(), first.serial.toLowerCase(), 'a new connection gets a renewed certificate');

      // The sleep sidecar rotated too; its mTLS origination keeps working.
      await waitFor('sleep rotated', async () => (await configDump(sleep))['certificate'].serial !== sleepBefore, 20_000, 100);
      const r = await waitFor('curl after rotation', async () => {
        const x = await curlProxy(`${SLEEP_IP}:15001`, 'http://helloworld:5000/via-sidecars');
        return x.status === 200 ? x : undefined;
      });
      assert.match(r.body, /sa\/sleep/);
    } finally {
      agent.destroy();
    }
  });
});
