/**
 * `isle demo --netns`: each cluster in its own network namespace (its node and network), each
 * workload in a namespace of its own (its pod) whose sidecar captures its traffic, and one bridge
 * in the host namespace joining the clusters through their control planes and gateways (DESIGN
 * §5, ADR 0110). Needs root, iproute2, iptables and curl.
 *
 * Everything made here is named from the topology, so a run after a crash finds and removes what
 * the crashed run left (namespaces, the processes still inside them, links, /etc/netns files).
 */
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { IsleError } from '../errors.js';
import { CAPTURE_TOOLS, captureUnsupported, execIn } from '../proxy/capture/netns.js';
import type { DemoTopology } from './topology.js';

const run = promisify(execFile);

async function ip(...args: string[]): Promise<void> {
  try {
    await run('ip', args);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new IsleError('ERR_USAGE', `--netns: ip ${args.join(' ')}: ${(err.stderr ?? err.message).trim()}`);
  }
}

async function quietly(...args: string[]): Promise<boolean> {
  return run('ip', args).then(
    () => true,
    () => false,
  );
}

/** Why `--netns` cannot run here (not root, a missing tool), or undefined. */
export function netnsSupported(): Promise<string | undefined> {
  // curl is the sleep pod's client: the verification is `curl http://helloworld:5000/hello` inside it.
  return captureUnsupported([...CAPTURE_TOOLS, ['curl', '--version', 'curl']]);
}

/** The pod's resolv.conf, as Kubernetes writes it (`ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf). */
export function podResolvConf(namespace: string): string {
  // The kube-dns address of a default cluster: nothing serves it, the sidecar's capture sends
  // every query to port 53 to its DNS proxy (15053).
  return `search ${namespace}.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n`;
}

/**
 * The cluster namespace as a node: it forwards its pods' packets, masquerades them behind its
 * bridge address, and lets them out only to port 15443 (the east-west gateways): the other
 * clusters' control planes, admin ports and pods stay out of reach.
 */
export function clusterRules(podNet: string): string {
  return [
    '*filter',
    ':FORWARD DROP [0:0]',
    '-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    // Pod to pod on the cluster's own bridge (bridged frames reach FORWARD only with br_netfilter).
    '-A FORWARD -i br0 -o br0 -j ACCEPT',
    '-A FORWARD -i br0 -o eth0 -p tcp --dport 15443 -j ACCEPT',
    '-A FORWARD -i br0 -j REJECT --reject-with icmp-port-unreachable',
    'COMMIT',
    '*nat',
    `-A POSTROUTING -s ${podNet}.0/24 -o eth0 -j MASQUERADE`,
    'COMMIT',
    '',
  ].join('\n');
}

/** Every namespace of the layout (pods first: they hang off their cluster's). */
function namespaces(topo: DemoTopology): string[] {
  return [...topo.workloads.map((w) => w.netns), ...topo.clusters.map((c) => c.netns)].filter((n): n is string => n !== undefined);
}

async function existingNamespaces(): Promise<Set<string>> {
  const { stdout } = await run('ip', ['netns', 'list']).catch(() => ({ stdout: '' }));
  return new Set(stdout.split('\n').map((l) => l.trim().split(/\s+/)[0]!).filter(Boolean));
}

/**
 * Removes the layout's namespaces, links and /etc/netns files. With `killLeftovers`, processes
 * still inside those namespaces (a crashed demo's) are killed first, by the pids `ip netns pids`
 * names. Returns what was found and removed.
 */
export async function teardownNetns(topo: DemoTopology, o: { killLeftovers?: boolean } = {}): Promise<string[]> {
  const found: string[] = [];
  const present = await existingNamespaces();
  for (const ns of namespaces(topo)) {
    if (present.has(ns)) {
      if (o.killLeftovers) {
        const { stdout } = await run('ip', ['netns', 'pids', ns]).catch(() => ({ stdout: '' }));
        const pids = stdout.split(/\s+/).filter((p) => /^\d+$/.test(p)).map(Number).filter((p) => p !== process.pid);
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Already gone.
          }
        }
        if (pids.length > 0) found.push(`${pids.length} process(es) in ${ns}`);
      }
      if (await quietly('netns', 'del', ns)) found.push(`namespace ${ns}`);
    }
    // Only the demo's own pod directories: /etc/netns/<its namespace name>.
    await rm(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  // Deleting a namespace deletes its veth pairs, unless a process still holds the namespace: the
  // host ends go explicitly.
  for (const link of [...Object.values(topo.bridge?.links ?? {}), ...(topo.bridge ? [topo.bridge.name] : [])]) {
    if (await quietly('link', 'del', link)) found.push(`link ${link}`);
  }
  return found;
}

/**
 * Creates the clusters' and pods' namespaces and the bridge, after removing leftovers of an
 * earlier run (returned, to be said). A failure part way removes what was made, then throws.
 * The caller has checked `netnsSupported()` (startDemo does, before anything is locked or written).
 */
export async function setupNetns(topo: DemoTopology): Promise<string[]> {
  const bridge = topo.bridge;
  if (!bridge) throw new IsleError('ERR_USAGE', '--netns: the topology has no bridge');
  const stale = await teardownNetns(topo, { killLeftovers: true });
  try {
    await ip('link', 'add', bridge.name, 'type', 'bridge');
    await ip('addr', 'add', `${bridge.address}/${bridge.prefix}`, 'dev', bridge.name);
    await ip('link', 'set', bridge.name, 'up');
    for (const c of topo.clusters) {
      if (!c.netns || !c.podNet) continue;
      const host = bridge.links[c.name]!;
      await ip('netns', 'add', c.netns);
      await ip('-n', c.netns, 'link', 'set', 'lo', 'up');
      await ip('link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c.netns);
      await ip('link', 'set', host, 'master', bridge.name, 'up');
      await ip('-n', c.netns, 'addr', 'add', `${c.gatewayIp}/${bridge.prefix}`, 'dev', 'eth0');
      await ip('-n', c.netns, 'link', 'set', 'eth0', 'up');
      await ip('-n', c.netns, 'link', 'add', 'br0', 'type', 'bridge');
      await ip('-n', c.netns, 'addr', 'add', `${c.podNet}.1/24`, 'dev', 'br0');
      await ip('-n', c.netns, 'link', 'set', 'br0', 'up');
      const exec = execIn(c.netns);
      const fwd = await exec('sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
      if (fwd.code !== 0) throw new IsleError('ERR_USAGE', `--netns: cannot enable forwarding in ${c.netns}: ${fwd.stderr.trim()}`);
      const rules = await exec('iptables-restore', ['-w'], clusterRules(c.podNet));
      if (rules.code !== 0) throw new IsleError('ERR_USAGE', `--netns: iptables-restore in ${c.netns} refused the cluster's forwarding rules: ${rules.stderr.trim().split('\n')[0]}`);
    }
    const perCluster = new Map<string, number>();
    for (const w of topo.workloads) {
      const c = topo.clusters.find((x) => x.name === w.cluster);
      if (!w.netns || !c?.netns || !c.podNet) continue;
      const n = perCluster.get(c.name) ?? 0;
      perCluster.set(c.name, n + 1);
      const link = `pod${n}`;
      await ip('netns', 'add', w.netns);
      await ip('-n', w.netns, 'link', 'set', 'lo', 'up');
      await ip('-n', c.netns, 'link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', w.netns);
      await ip('-n', c.netns, 'link', 'set', link, 'master', 'br0', 'up');
      await ip('-n', w.netns, 'addr', 'add', `${w.ip}/24`, 'dev', 'eth0');
      await ip('-n', w.netns, 'link', 'set', 'eth0', 'up');
      // A default route, as a pod has: service VIPs (and DNS's 10.96.0.10) must route for the
      // nat OUTPUT rules to see, and redirect, the app's packets.
      await ip('-n', w.netns, 'route', 'add', 'default', 'via', `${c.podNet}.1`);
      await mkdir(`/etc/netns/${w.netns}`, { recursive: true });
      await writeFile(`/etc/netns/${w.netns}/resolv.conf`, podResolvConf(w.namespace));
    }
  } catch (e) {
    await teardownNetns(topo);
    throw e;
  }
  return stale;
}
