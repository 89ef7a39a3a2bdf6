/**
 * A reused bootstrap token is refused, over real processes: `isle proxy` bootstraps with a token
 * file, a second `isle proxy` with the same file is refused (and exits with the reason), and so is
 * a third after the control plane restarted on the same state directory.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Child, configDir, makeMesh, startControlPlane, startProxy, type Mesh } from './helpers.js';

const children: Child[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

function proxyWithToken(mesh: Mesh, controlPlane: string, token: string, ip: string): Child {
  const c = new Child([
    'proxy', '--control-plane', controlPlane, '--token', token, '--ca-bundle', mesh.rootFile, '--ip', ip,
    '--namespace', 'default', '--service-account', 'sleep', '--admin', '127.0.0.1:0', '--health', '127.0.0.1:0', '--log-level', 'warn',
  ]);
  children.push(c);
  return c;
}

describe('single-use bootstrap tokens', () => {
  test('the second proxy with the same token file is refused, also after a control-plane restart', async () => {
    const mesh = await makeMesh();
    const dir = configDir();
    const cp1 = await startControlPlane(mesh, dir);
    children.push(cp1.child);
    const token = mesh.token('default', 'sleep');
    const first = await startProxy({ mesh, controlPlane: cp1.address, ip: '127.1.81.20', serviceAccount: 'sleep', extra: ['--token', token] });
    children.push(first.child);

    const second = proxyWithToken(mesh, cp1.address, token, '127.1.81.21');
    const exit = await second.exited;
    assert.notEqual(exit.code, 0);
    assert.match(second.stderr, /already used \(tokens are single-use/);

    cp1.child.kill('SIGTERM');
    await cp1.child.exited;
    const cp2 = await startControlPlane(mesh, dir);
    children.push(cp2.child);
    const third = proxyWithToken(mesh, cp2.address, token, '127.1.81.22');
    assert.notEqual((await third.exited).code, 0);
    assert.match(third.stderr, /already used/);
  });
});
