/** `isle dashboard`: page URLs from debug addresses; an unreachable control plane is named, exit 1. (The reachable case runs in test/demo/meshpage.test.ts.) */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { run } from '../../src/cli/main.js';
import { pageUrl } from '../../src/cli/dashboard.js';

test('pageUrl: host:port or URL → /ui', () => {
  assert.equal(pageUrl('127.95.5.1:15014'), 'http://127.95.5.1:15014/ui');
  assert.equal(pageUrl('http://127.95.5.1:15014/'), 'http://127.95.5.1:15014/ui');
  assert.equal(pageUrl('https://cp.example:8443'), 'https://cp.example:8443/ui');
});

test('isle dashboard: an unreachable control plane is reported and the exit code is 1', async () => {
  // A port that was just free: nothing listens there.
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.95.5.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  const out: string[] = [];
  const prev = process.exitCode;
  const code = await run(['node', 'isle', 'dashboard', '--control-plane-debug', `127.95.5.1:${port}`], { out: (x) => void out.push(x), err: (x) => void out.push(x) });
  process.exitCode = prev;
  assert.equal(code, 1, out.join(''));
  assert.match(out.join(''), new RegExp(`http://127\\.95\\.5\\.1:${port}/ui   unreachable: ECONNREFUSED`));
});
