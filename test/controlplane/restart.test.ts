/**
 * Issue 13, "no outage on restart", with real processes: a control plane, the helloworld sidecar
 * (its endpoint exists only because it auto-registered) and a client sidecar with traffic running.
 * The control plane is SIGKILLed and restarted on the same port: its state directory brings the
 * registration back, so the client is never pushed an empty helloworld, and not one request fails.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getText, startControlPlane, startHelloSleep, waitFor, waitReconnected, xdsState, type Child, type HelloSleep } from '../proxy/helpers.js';
import { expectNoFailures, HttpLoad } from '../helpers/load.js';

const SLEEP_IP = '127.1.78.9';
const HELLO_IP = '127.1.78.10';

let cast: HelloSleep;
/** The control plane now (replaced by the restart). */
let cp: Child;

before(async () => {
  cast = await startHelloSleep({ hello: HELLO_IP, sleep: SLEEP_IP });
  cp = cast.cp;
});

after(() => {
  cast?.hello.child.kill('SIGKILL');
  cast?.sleep.child.kill('SIGKILL');
  cp?.kill('SIGKILL');
});

describe('control plane restart under load', () => {
  test('SIGKILL, restart on the same port: registrations come back from the state directory and no request fails', async () => {
    const { mesh, dir, cpAddress, hello, sleep } = cast;
    await waitFor('helloworld routable', async () => (await getText(`${sleep.admin}/clusters`)).text.includes(`::${HELLO_IP}:5000::health_flags::`), 30_000, 100);
    const load = new HttpLoad(`${SLEEP_IP}:15001`, 'http://helloworld:5000/hello');
    await waitFor('traffic flowing', () => load.result.ok >= 20);
    assert.ok(existsSync(join(dir, '.isle', 'state', 'state.json')), 'registrations are saved in <config>/.isle/state');
    const before = await Promise.all([xdsState(sleep), xdsState(hello)]);

    cp.kill('SIGKILL');
    await cp.exited;
    await waitFor('both sidecars notice', async () => !(await xdsState(sleep)).connected && !(await xdsState(hello)).connected);
    const port = cpAddress.split(':').pop()!;
    ({ child: cp } = await startControlPlane(mesh, dir, `127.0.0.1:${port}`));
    // Reconnected to the new process (back-off is capped at 10 s, with jitter).
    await waitReconnected([sleep, hello], before);
    await expectNoFailures(load, waitFor);
    const t = (await getText(`${sleep.admin}/clusters`)).text;
    assert.ok(t.includes(`::${HELLO_IP}:5000::health_flags::`), 'helloworld still an endpoint');
  });
});
