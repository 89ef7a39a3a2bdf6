/**
 * Capture rules with real iptables in network namespaces this test creates: install, idempotence,
 * rollback on a refused rule set, removal; and SO_ORIGINAL_DST read through koffi on a connection
 * the rules redirected, while the proxy's gid bypasses them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { captureRules, captureRules6, installCapture, listNat, removeCapture, restoreScript, type CaptureSettings, type Exec } from '../../../src/proxy/capture/iptables.js';
import { decodeSockaddrIn } from '../../../src/proxy/net/origdst.js';
import { captureUnsupported, execIn, NsProcess, Topology } from './netns.js';
import { runIsle } from '../../helpers/cli.js';
import { cliEntry } from '../../helpers/paths.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'child.js');

const SETTINGS: CaptureSettings = {
  outboundPort: 15001,
  inboundPort: 15006,
  dnsPort: 15053,
  proxyUid: 1337,
  proxyGid: 1337,
  excludeOutboundPorts: [2379],
  excludeOutboundCidrs: ['10.99.0.0/16'],
  excludeInboundPorts: [15021, 22],
};

describe('capture rules as data', () => {
  test('outbound, inbound, DNS and the exclusions are all there, proxy owner first', () => {
    const set = captureRules(SETTINGS);
    const text = set.rules.map((r) => r.join(' '));
    assert.ok(text.includes('ISLE_REDIRECT -p tcp -j REDIRECT --to-ports 15001'));
    assert.ok(text.includes('ISLE_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006'));
    assert.ok(text.includes('ISLE_INBOUND -p tcp --dport 22 -j RETURN'));
    assert.ok(text.includes('ISLE_OUTPUT -d 10.99.0.0/16 -j RETURN'));
    assert.ok(text.includes('ISLE_OUTPUT -p tcp --dport 2379 -j RETURN'));
    assert.ok(text.includes('ISLE_DNS -p udp -j REDIRECT --to-ports 15053'));
    const gidReturn = text.indexOf('ISLE_OUTPUT -m owner --gid-owner 1337 -j RETURN');
    assert.ok(gidReturn >= 0 && gidReturn < text.indexOf('ISLE_OUTPUT -j ISLE_REDIRECT'));
    assert.deepEqual(set.hooks.map((h) => h.chain), ['PREROUTING', 'OUTPUT', 'OUTPUT']);
    // Hooks already present are not added again.
    assert.equal(restoreScript(set, [true, true, true]).includes('-A OUTPUT'), false);
    assert.equal(captureRules({ ...SETTINGS, dnsPort: undefined }).rules.some((r) => r.includes('15053')), false);
  });

  test('IPv6: the outbound half with ::1/::6, IPv6 exclusions only; IPv4 rules never see an IPv6 CIDR', () => {
    const s = { ...SETTINGS, excludeOutboundCidrs: ['10.99.0.0/16', 'FD00:99::/32'] };
    const text = captureRules6(s).rules.map((r) => r.join(' '));
    assert.ok(text.includes('ISLE_REDIRECT -p tcp -j REDIRECT --to-ports 15001'));
    assert.ok(text.includes('ISLE_OUTPUT -o lo -s ::6/128 -j RETURN'));
    assert.ok(text.includes('ISLE_OUTPUT -d ::1/128 -j RETURN'));
    assert.ok(text.includes('ISLE_OUTPUT -d fd00:99::/32 -j RETURN'));
    assert.ok(text.includes('ISLE_OUTPUT -m owner --gid-owner 1337 -j RETURN'));
    assert.equal(text.some((t) => t.includes('10.99.0.0') || t.includes('15006') || t.includes('15053')), false);
    assert.deepEqual(captureRules6(s).hooks, [{ chain: 'OUTPUT', rule: ['-p', 'tcp', '-j', 'ISLE_OUTPUT'] }]);
    assert.equal(captureRules(s).rules.some((r) => r.join(' ').includes('fd00')), false);
    assert.throws(() => captureRules({ ...SETTINGS, excludeOutboundCidrs: ['fd00::/200'] }), /invalid IPv6 CIDR "fd00::\/200"/);
  });

  test('bad settings are refused before iptables runs', () => {
    assert.throws(() => captureRules({ ...SETTINGS, excludeOutboundCidrs: ['10.0.0.0/40'] }), /invalid IPv4 CIDR "10.0.0.0\/40"/);
    assert.throws(() => captureRules({ ...SETTINGS, excludeOutboundPorts: [70000] }), /excluded port: invalid port 70000/);
  });

  test('isle iptables --dry-run prints the rule set; bad flags are one-line errors, exit 2', async () => {
    const r = await runIsle(['iptables', '--dry-run', '--no-capture-dns', '--exclude-outbound-ports', '2379']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\*nat\n/);
    assert.match(r.stdout, /-A ISLE_OUTPUT -p tcp --dport 2379 -j RETURN/);
    assert.doesNotMatch(r.stdout, /15053/);
    assert.match(r.stdout, /# ip6tables-restore --noflush \(IPv6, outbound only\)\n\*nat\n[^]*-A ISLE_OUTPUT -d ::1\/128 -j RETURN/);
    const bad = await runIsle(['iptables', '--dry-run', '--exclude-outbound-cidrs', '10.0.0.0/40']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid IPv4 CIDR "10\.0\.0\.0\/40"/);
  });

  test('sockaddr_in decoding', () => {
    const b = Buffer.from([2, 0, 0x13, 0x88, 10, 96, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(decodeSockaddrIn(b), { address: '10.96.0.7', port: 5000 });
    assert.equal(decodeSockaddrIn(Buffer.from([10, 0, 0, 0, 0, 0, 0, 0])), undefined);
  });
});

const why = await captureUnsupported();
if (why) process.stdout.write(`# skipping capture iptables tests: ${why}\n`);

describe('capture rules in a network namespace', { skip: why }, () => {
  const topo = new Topology('i');
  let a: string;
  let b: string;
  let exec: Exec;
  const procs: NsProcess[] = [];

  before(async () => {
    await topo.create();
    a = await topo.add('a', '10.70.0.1');
    b = await topo.add('b', '10.70.0.2');
    exec = execIn(a);
  });

  after(async () => {
    for (const p of procs) await p.stop('SIGKILL');
    await topo.destroy();
  });

  const isleLines = async (): Promise<string[]> => (await listNat(exec)).split('\n').filter((l) => l.includes('ISLE_'));

  test('install twice gives one rule set; removal leaves nothing', async () => {
    await installCapture(SETTINGS, exec);
    const first = await isleLines();
    assert.ok(first.includes('-A OUTPUT -p tcp -j ISLE_OUTPUT'));
    assert.ok(first.includes('-A PREROUTING -p tcp -j ISLE_INBOUND'));
    assert.ok(first.some((l) => l.includes('-A OUTPUT -p udp') && l.includes('ISLE_DNS')));
    await installCapture(SETTINGS, exec);
    assert.deepEqual(await isleLines(), first);
    // Without DNS, a rebuild drops the DNS chain and its hook.
    await installCapture({ ...SETTINGS, dnsPort: undefined }, exec);
    assert.equal((await isleLines()).some((l) => l.includes('ISLE_DNS')), false);
    assert.deepEqual(await removeCapture(exec), []);
    assert.deepEqual(await isleLines(), []);
  });

  test('a rule set iptables refuses changes nothing and says why', async () => {
    await installCapture(SETTINGS, exec);
    const before = await listNat(exec);
    // A real iptables-restore failure: the last rule jumps to a chain that does not exist.
    const broken: Exec = (cmd, args, input) => exec(cmd, args, cmd === 'iptables-restore' && input ? input.replace('COMMIT', '-A ISLE_OUTPUT -j ISLE_NO_SUCH_CHAIN\nCOMMIT') : input);
    await assert.rejects(installCapture({ ...SETTINGS, excludeOutboundPorts: [1234] }, broken), /iptables-restore refused the rule set, nothing was changed: .*ISLE_NO_SUCH_CHAIN/);
    assert.equal(await listNat(exec), before);
    await removeCapture(exec);
    // From a clean table too: still nothing of Isle's.
    await assert.rejects(installCapture(SETTINGS, broken), /nothing was changed/);
    assert.deepEqual(await isleLines(), []);
  });

  test('without the nat table (no privileges), install explains', async () => {
    const denied: Exec = async () => ({ code: 4, stdout: '', stderr: 'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n' });
    await assert.rejects(installCapture(SETTINGS, denied), /Permission denied.*capture needs root/);
  });

  test('SO_ORIGINAL_DST of a redirected connection; the proxy gid is not captured', async () => {
    await installCapture({ ...SETTINGS, dnsPort: undefined }, exec);
    const catcher = new NsProcess(a, process.execPath, [CHILD, 'origdst-server', '15001']);
    const peer = new NsProcess(b, process.execPath, [CHILD, 'echo-server', '7777']);
    procs.push(catcher, peer);
    await Promise.all([catcher.waitFor(/listening/), peer.waitFor(/listening/)]);
    const connect = async (host: string, port: number, gid?: number): Promise<string> => {
      const { stdout } = await promisified(process.execPath, [CHILD, 'connect', host, String(port), ...(gid !== undefined ? [String(gid)] : [])]);
      return stdout.trim();
    };
    // An app (root, gid 0) dialing any address leaving the namespace lands on 15001.
    assert.equal(await connect('10.96.3.4', 5000), 'reply ping');
    await catcher.waitFor(/origdst 10\.96\.3\.4:5000/);
    // The proxy (gid 1337) reaches the real peer.
    assert.equal(await connect('10.70.0.2', 7777, 1337), 'reply ping');
    assert.equal(catcher.out.match(/origdst/g)?.length, 1);
    // Excluded ports bypass: nothing listens on 10.70.0.2:2379.
    assert.match(await connect('10.70.0.2', 2379), /error ECONNREFUSED/);
    // A connection that was not redirected reports its own destination (the listener itself).
    assert.equal(await connect('127.0.0.1', 15001), 'reply ping');
    await catcher.waitFor(/origdst 127\.0\.0\.1:15001/);
    // Leftovers (a proxy killed with SIGKILL) go with `isle iptables --remove`.
    const removed = await exec(process.execPath, [cliEntry(), 'iptables', '--remove']);
    assert.equal(removed.stdout, 'removed\n', removed.stderr);
    assert.deepEqual(await isleLines(), []);
    assert.match(await connect('10.70.0.2', 7777), /reply ping/);
  });

  function promisified(cmd: string, args: string[]): Promise<{ stdout: string }> {
    return new Promise((resolve, reject) =>
      execFile('ip', ['netns', 'exec', a, cmd, ...args], { timeout: 20_000 }, (err, stdout) => (err ? reject(err) : resolve({ stdout: String(stdout) }))),
    );
  }
});
