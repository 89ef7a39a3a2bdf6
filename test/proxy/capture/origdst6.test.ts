/**
 * SO_ORIGINAL_DST for IPv6 (`IP6T_SO_ORIGINAL_DST` at `SOL_IPV6`), the first piece of IPv6
 * capture: in a network namespace this test creates (`isle-ge-v6`), an ip6tables nat rule
 * redirects connections to a ULA address to a local server on `::`, which reads the original
 * destination through koffi; an IPv4 connection to the same dual-stack server still reads IPv4.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { decodeSockaddrIn6 } from '../../../src/proxy/net/origdst.js';
import { captureUnsupported, NsProcess } from './netns.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'child.js');
const NS = 'isle-ge-v6';
const ULA = 'fd00:15:6e::2';

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    }),
  );
}
const inNs = (cmd: string, args: string[]) => run('ip', ['netns', 'exec', NS, cmd, ...args]);

test('sockaddr_in6 decoding: port, canonical address text; another family is refused', () => {
  const b = Buffer.alloc(28);
  b.writeUInt16LE(10, 0);
  b.writeUInt16BE(5000, 2);
  Buffer.from([0xfd, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]).copy(b, 8);
  assert.deepEqual(decodeSockaddrIn6(b), { address: 'fd00:15::2', port: 5000 });
  b.writeUInt16LE(2, 0);
  assert.equal(decodeSockaddrIn6(b), undefined);
});

let why = await captureUnsupported();
if (!why && (await run('ip6tables', ['--version'])).code !== 0) why = 'ip6tables is not installed';
if (why) process.stdout.write(`# skipping IPv6 original destination test: ${why}\n`);

describe('IPv6 original destination in a network namespace', { skip: why }, () => {
  let server: NsProcess | undefined;

  before(async () => {
    await run('ip', ['netns', 'del', NS]);
    const steps = [['netns', 'add', NS], ['-n', NS, 'link', 'set', 'lo', 'up'], ['-n', NS, '-6', 'addr', 'add', `${ULA}/128`, 'dev', 'lo'], ['-n', NS, 'addr', 'add', '10.96.6.6/32', 'dev', 'lo']];
    for (const args of steps) {
      const r = await run('ip', args);
      assert.equal(r.code, 0, `ip ${args.join(' ')}: ${r.stderr}`);
    }
    const rule = await inNs('ip6tables', ['-w', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', `${ULA}/128`, '--dport', '5000', '-j', 'REDIRECT', '--to-ports', '15001']);
    assert.equal(rule.code, 0, rule.stderr);
    const v4 = await inNs('iptables', ['-w', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '10.96.6.6/32', '--dport', '5000', '-j', 'REDIRECT', '--to-ports', '15001']);
    assert.equal(v4.code, 0, v4.stderr);
    // Dual stack on `::`, as a capture listener would have to be.
    server = new NsProcess(NS, process.execPath, [CHILD, 'origdst-server', '15001', '::']);
    await server.waitFor(/listening/);
  });

  after(async () => {
    await server?.stop('SIGKILL', 2000);
    await run('ip', ['netns', 'del', NS]);
  });

  test('a redirected IPv6 connection reads [ULA]:5000; an IPv4 one on the same socket its IPv4 address', async () => {
    const r6 = await inNs(process.execPath, [CHILD, 'connect', ULA, '5000']);
    assert.equal(r6.stdout.trim(), 'reply ping');
    await server!.waitFor(new RegExp(`origdst ${ULA}:5000`));
    const r4 = await inNs(process.execPath, [CHILD, 'connect', '10.96.6.6', '5000']);
    assert.equal(r4.stdout.trim(), 'reply ping');
    await server!.waitFor(/origdst 10\.96\.6\.6:5000/);
  });
});
