/**
 * `isle demo --netns`: one Linux network namespace per cluster, joined by a bridge that carries
 * only the control planes' and gateways' addresses (DESIGN §5, "for real isolation"). Needs root
 * and iproute2.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { IsleError } from '../errors.js';
import { NETNS_BRIDGE, type DemoTopology } from './topology.js';

const run = promisify(execFile);

async function ip(...args: string[]): Promise<void> {
  try {
    await run('ip', args);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new IsleError('ERR_USAGE', `ip ${args.join(' ')}: ${(err.stderr ?? err.message).trim()}`);
  }
}

async function quietly(...args: string[]): Promise<void> {
  await run('ip', args).catch(() => undefined);
}

/** Whether this process can make namespaces (root and iproute2). */
export async function netnsSupported(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  try {
    await run('ip', ['-V']);
  } catch {
    return 'iproute2 (`ip`) is not installed';
  }
  return undefined;
}

export async function teardownNetns(topo: DemoTopology): Promise<void> {
  for (const c of topo.clusters) if (c.netns) await quietly('netns', 'del', c.netns);
  await quietly('link', 'del', NETNS_BRIDGE.name);
}

/** Creates the namespaces and the bridge (replacing leftovers of an earlier run). */
export async function setupNetns(topo: DemoTopology): Promise<void> {
  const why = await netnsSupported();
  if (why) throw new IsleError('ERR_USAGE', `--netns: ${why}`);
  await teardownNetns(topo);
  await ip('link', 'add', NETNS_BRIDGE.name, 'type', 'bridge');
  await ip('addr', 'add', `${NETNS_BRIDGE.address}/${NETNS_BRIDGE.prefix}`, 'dev', NETNS_BRIDGE.name);
  await ip('link', 'set', NETNS_BRIDGE.name, 'up');
  for (const [i, c] of topo.clusters.entries()) {
    if (!c.netns) continue;
    const host = `isle-v${i + 1}`;
    await ip('netns', 'add', c.netns);
    await ip('-n', c.netns, 'link', 'set', 'lo', 'up');
    await ip('link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c.netns);
    await ip('link', 'set', host, 'master', NETNS_BRIDGE.name, 'up');
    await ip('-n', c.netns, 'addr', 'add', `${c.gatewayIp}/${NETNS_BRIDGE.prefix}`, 'dev', 'eth0');
    await ip('-n', c.netns, 'link', 'set', 'eth0', 'up');
  }
}
