/**
 * Transparent capture, the way `istio-iptables` does it: nat rules in the workload's network
 * namespace send outbound TCP to the sidecar's 15001, inbound TCP to 15006 and DNS (UDP and TCP
 * port 53) to 15053. The proxy's own traffic is recognised by its owner: Isle matches both the
 * uid and the gid (Istio's 1337 by default); `isle proxy --capture` keeps root as its uid (it
 * must remove the rules at exit) and switches its effective gid, so the gid match is the one that
 * exempts it (ADR 0070).
 *
 * The rule set lives in Isle's own chains (ISLE_*), hooked into PREROUTING and OUTPUT by one jump
 * each. Installing is one `iptables-restore --noflush` transaction: the chains are declared
 * (created, or flushed when they exist), filled, and the hooks added only where missing, so a
 * second install rebuilds the same set and a failure leaves the table exactly as it was.
 */
import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import { IsleError } from '../../errors.js';

export interface CaptureSettings {
  /** Where outbound TCP goes (the sidecar's virtualOutbound). */
  outboundPort: number;
  /** Where inbound TCP goes (the capture inbound listener). */
  inboundPort: number;
  /** DNS (port 53, UDP and TCP) is redirected here; undefined: DNS is left alone. */
  dnsPort: number | undefined;
  /** The proxy's uid and gid: its own connections are never captured. */
  proxyUid: number;
  proxyGid: number;
  /** Outbound destination ports that bypass the sidecar. */
  excludeOutboundPorts: readonly number[];
  /** Outbound destination CIDRs that bypass the sidecar (a.b.c.d/n). */
  excludeOutboundCidrs: readonly string[];
  /** Inbound destination ports that reach the workload directly (health, metrics, ssh…). */
  excludeInboundPorts: readonly number[];
}

export const DEFAULT_INBOUND_CAPTURE_PORT = 15006;
export const DEFAULT_DNS_CAPTURE_PORT = 15053;
/** Istio's proxy uid/gid. */
export const DEFAULT_PROXY_ID = 1337;
/** Proxy ports that are never redirected inbound: 15008 (HBONE), 15020/15021 (merged metrics, health), 15090 (Envoy stats). */
export const DEFAULT_EXCLUDED_INBOUND_PORTS: readonly number[] = [15008, 15020, 15021, 15090];

export const CHAINS = {
  inbound: 'ISLE_INBOUND',
  inRedirect: 'ISLE_IN_REDIRECT',
  output: 'ISLE_OUTPUT',
  redirect: 'ISLE_REDIRECT',
  dns: 'ISLE_DNS',
} as const;

/** A jump from a built-in chain into one of Isle's. */
export interface Hook {
  chain: 'PREROUTING' | 'OUTPUT';
  rule: string[];
}

export interface RuleSet {
  /** The chains Isle owns, in declaration order. */
  chains: string[];
  /** `-A CHAIN …` rules for the chains, as argument lists. */
  rules: string[][];
  hooks: Hook[];
}

function validPort(p: number, what: string): void {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new IsleError('ERR_USAGE', `${what}: invalid port ${p}`);
}

/** Checks `a.b.c.d/n`, or an IPv6 prefix (`fd00::/8`), and writes it with its length. */
export function parseCidr(s: string): string {
  if (s.includes(':')) {
    const m6 = /^([0-9a-fA-F:.]+)(?:\/(\d{1,3}))?$/.exec(s.trim());
    if (!m6 || isIP(m6[1]!) !== 6 || (m6[2] !== undefined && Number(m6[2]) > 128)) {
      throw new IsleError('ERR_USAGE', `invalid IPv6 CIDR ${JSON.stringify(s)} (expected an IPv6 address with /n)`);
    }
    return `${m6[1]!.toLowerCase()}/${m6[2] ?? '128'}`;
  }
  const m = /^([0-9.]+)(?:\/(\d{1,2}))?$/.exec(s.trim());
  if (!m || isIP(m[1]!) !== 4 || (m[2] !== undefined && Number(m[2]) > 32)) {
    throw new IsleError('ERR_USAGE', `invalid IPv4 CIDR ${JSON.stringify(s)} (expected a.b.c.d/n)`);
  }
  return m[2] === undefined ? `${m[1]}/32` : `${m[1]}/${m[2]}`;
}

/** Checks every port, id and CIDR of `s` (both families' rule sets start here); the CIDRs, normalized. */
function validCidrs(s: CaptureSettings): string[] {
  for (const [p, what] of [[s.outboundPort, 'outbound port'], [s.inboundPort, 'inbound port']] as const) validPort(p, what);
  if (s.dnsPort !== undefined) validPort(s.dnsPort, 'DNS port');
  for (const p of [...s.excludeOutboundPorts, ...s.excludeInboundPorts]) validPort(p, 'excluded port');
  for (const id of [s.proxyUid, s.proxyGid]) {
    if (!Number.isInteger(id) || id < 0) throw new IsleError('ERR_USAGE', `invalid proxy uid/gid ${id}`);
  }
  return s.excludeOutboundCidrs.map(parseCidr);
}

/** The end of the OUTPUT chain in both families: localhost, excluded CIDRs and ports return; the rest goes to the sidecar. */
function outboundTail(rules: string[][], s: CaptureSettings, localhost: string, cidrs: readonly string[]): void {
  const { output, redirect } = CHAINS;
  rules.push([output, '-d', localhost, '-j', 'RETURN']);
  for (const c of cidrs) rules.push([output, '-d', c, '-j', 'RETURN']);
  for (const p of [...new Set(s.excludeOutboundPorts)].sort((a, b) => a - b)) rules.push([output, '-p', 'tcp', '--dport', String(p), '-j', 'RETURN']);
  rules.push([output, '-j', redirect]);
}

/**
 * The IPv6 rule set (ip6tables) mirrors the outbound half of the IPv4 one: outbound TCP to the
 * sidecar, with the same owner, loopback, CIDR and port exemptions (`::1`, `::6`). Inbound IPv6
 * and DNS over IPv6 are not redirected: the capture inbound listener and the DNS proxy listen on
 * IPv4 only, and a redirect there would drop the traffic instead of leaving it alone (ADR 0118).
 */
export function captureRules6(s: CaptureSettings): RuleSet {
  const cidrs = validCidrs(s).filter((c) => c.includes(':'));
  const uid = String(s.proxyUid);
  const gid = String(s.proxyGid);
  const { output, redirect } = CHAINS;
  const rules: string[][] = [[redirect, '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(s.outboundPort)]];
  rules.push([output, '-o', 'lo', '-s', '::6/128', '-j', 'RETURN']);
  for (const [flag, id] of [['--uid-owner', uid], ['--gid-owner', gid]] as const) {
    rules.push([output, '-o', 'lo', '-m', 'owner', '!', flag, id, '-j', 'RETURN']);
    rules.push([output, '-m', 'owner', flag, id, '-j', 'RETURN']);
  }
  outboundTail(rules, s, '::1/128', cidrs);
  return { chains: [output, redirect], rules, hooks: [{ chain: 'OUTPUT', rule: ['-p', 'tcp', '-j', output] }] };
}

/** The rule set for `s`: pure, so it is tested as data and printed by `isle iptables --dry-run`. */
export function captureRules(s: CaptureSettings): RuleSet {
  const cidrs = validCidrs(s).filter((c) => !c.includes(':'));
  const uid = String(s.proxyUid);
  const gid = String(s.proxyGid);
  const { inbound, inRedirect, output, redirect, dns } = CHAINS;
  const rules: string[][] = [
    [redirect, '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(s.outboundPort)],
    [inRedirect, '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(s.inboundPort)],
  ];
  // Inbound: everything but the excluded ports goes to 15006.
  for (const p of [...new Set([...s.excludeInboundPorts, s.inboundPort])].sort((a, b) => a - b)) rules.push([inbound, '-p', 'tcp', '--dport', String(p), '-j', 'RETURN']);
  rules.push([inbound, '-p', 'tcp', '-j', inRedirect]);
  // Outbound, in istio-iptables' order.
  rules.push([output, '-o', 'lo', '-s', '127.0.0.6/32', '-j', 'RETURN']);
  if (s.dnsPort !== undefined) {
    // The proxy's own DNS (its upstream resolver) must not loop back to itself.
    for (const [flag, id] of [['--uid-owner', uid], ['--gid-owner', gid]] as const) rules.push([output, '-p', 'tcp', '--dport', '53', '-m', 'owner', flag, id, '-j', 'RETURN']);
    rules.push([output, '-p', 'tcp', '--dport', '53', '-j', 'REDIRECT', '--to-ports', String(s.dnsPort)]);
  }
  for (const [flag, id] of [['--uid-owner', uid], ['--gid-owner', gid]] as const) {
    // The proxy calling a local address other than 127.0.0.1 (its own workload's service) goes inbound.
    rules.push([output, '!', '-d', '127.0.0.1/32', '-o', 'lo', '-p', 'tcp', '-m', 'owner', flag, id, '-j', inRedirect]);
    // The app talking to itself over loopback is not the mesh's business.
    rules.push([output, '-o', 'lo', '-m', 'owner', '!', flag, id, '-j', 'RETURN']);
    rules.push([output, '-m', 'owner', flag, id, '-j', 'RETURN']);
  }
  outboundTail(rules, s, '127.0.0.1/32', cidrs);
  const chains: string[] = [inbound, inRedirect, output, redirect];
  const hooks: Hook[] = [
    { chain: 'PREROUTING', rule: ['-p', 'tcp', '-j', inbound] },
    { chain: 'OUTPUT', rule: ['-p', 'tcp', '-j', output] },
  ];
  if (s.dnsPort !== undefined) {
    chains.push(dns);
    for (const [flag, id] of [['--uid-owner', uid], ['--gid-owner', gid]] as const) rules.push([dns, '-m', 'owner', flag, id, '-j', 'RETURN']);
    rules.push([dns, '-p', 'udp', '-j', 'REDIRECT', '--to-ports', String(s.dnsPort)]);
    hooks.push({ chain: 'OUTPUT', rule: ['-p', 'udp', '--dport', '53', '-j', dns] });
  }
  return { chains, rules, hooks };
}

/** The iptables-restore input that installs `set`, given which hooks are already in place. */
export function restoreScript(set: RuleSet, present: readonly boolean[]): string {
  const lines = ['*nat', ...set.chains.map((c) => `:${c} - [0:0]`)];
  for (const r of set.rules) lines.push(['-A', ...r].join(' '));
  set.hooks.forEach((h, i) => {
    if (!present[i]) lines.push(['-A', h.chain, ...h.rule].join(' '));
  });
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** How iptables is run; tests and `ip netns exec` wrappers replace it. */
export type Exec = (cmd: string, args: string[], input?: string) => Promise<{ code: number; stdout: string; stderr: string }>;

export const execDefault: Exec = (cmd, args, input) =>
  new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 127) : 0;
      resolve({ code, stdout: String(stdout), stderr: err && !stderr ? err.message : String(stderr) });
    });
    if (input !== undefined) child.stdin?.end(input);
  });

type Family = 'iptables' | 'ip6tables';

async function hookPresent(exec: Exec, h: Hook, bin: Family = 'iptables'): Promise<boolean> {
  return (await exec(bin, ['-w', '-t', 'nat', '-C', h.chain, ...h.rule])).code === 0;
}

/** Whether ip6tables' nat table can be used here (a kernel without IPv6 nat: IPv6 stays uncaptured). */
export async function ipv6NatAvailable(exec: Exec = execDefault): Promise<boolean> {
  return (await exec('ip6tables', ['-w', '-t', 'nat', '-S', 'OUTPUT'])).code === 0;
}

/**
 * Installs (or rebuilds) the rule sets, IPv4 then IPv6 (when ip6tables' nat table is usable), each
 * in one transaction; throws an IsleError saying why, with nothing of Isle's left installed.
 */
export async function installCapture(s: CaptureSettings, exec: Exec = execDefault): Promise<RuleSet> {
  const set = captureRules(s);
  const set6 = captureRules6(s);
  const probe = await exec('iptables', ['-w', '-t', 'nat', '-S', 'OUTPUT']);
  if (probe.code !== 0) {
    throw new IsleError('ERR_USAGE', `--capture: cannot use iptables' nat table (${firstLine(probe.stderr) || `exit ${probe.code}`}); capture needs root (CAP_NET_ADMIN) in the workload's network namespace`);
  }
  // A DNS-less install over an earlier one with DNS must not leave the DNS hook behind.
  if (s.dnsPort === undefined) await removeCapture(exec, [CHAINS.dns]);
  const present = await Promise.all(set.hooks.map((h) => hookPresent(exec, h)));
  const r = await exec('iptables-restore', ['-w', '--noflush'], restoreScript(set, present));
  if (r.code !== 0) {
    throw new IsleError('ERR_USAGE', `--capture: iptables-restore refused the rule set, nothing was changed: ${r.stderr.trim().split('\n').slice(0, 2).join('; ')}`);
  }
  if (!(await ipv6NatAvailable(exec))) return set;
  const present6 = await Promise.all(set6.hooks.map((h) => hookPresent(exec, h, 'ip6tables')));
  const r6 = await exec('ip6tables-restore', ['-w', '--noflush'], restoreScript(set6, present6));
  if (r6.code !== 0) {
    // The IPv4 half is in place: take it out again, so that a failure changes nothing.
    await removeCapture(exec);
    throw new IsleError('ERR_USAGE', `--capture: ip6tables-restore refused the IPv6 rule set, nothing was changed: ${r6.stderr.trim().split('\n').slice(0, 2).join('; ')}`);
  }
  return set;
}

function firstLine(s: string): string {
  return s.trim().split('\n')[0] ?? '';
}

/**
 * Removes every hook into Isle's chains and the chains themselves (whatever settings installed
 * them), found from the live table so that leftovers of a crashed proxy go too. Best effort:
 * returns what could not be removed.
 */
export async function removeCapture(exec: Exec = execDefault, only?: readonly string[]): Promise<string[]> {
  const failed = await removeFamily(exec, 'iptables', only);
  // IPv6: only where ip6tables' nat table exists (else nothing of Isle's can be there).
  if (await ipv6NatAvailable(exec)) failed.push(...(await removeFamily(exec, 'ip6tables', only)).map((f) => `IPv6: ${f}`));
  return failed;
}

async function removeFamily(exec: Exec, bin: Family, only?: readonly string[]): Promise<string[]> {
  const own = new Set<string>(only ?? Object.values(CHAINS));
  const failed: string[] = [];
  for (const builtin of ['PREROUTING', 'OUTPUT'] as const) {
    const listed = await exec(bin, ['-w', '-t', 'nat', '-S', builtin]);
    if (listed.code !== 0) return [`list ${builtin}: ${firstLine(listed.stderr)}`];
    for (const line of listed.stdout.split('\n')) {
      const parts = line.trim().split(/\s+/);
      const j = parts.indexOf('-j');
      if (parts[0] !== '-A' || j < 0 || !own.has(parts[j + 1] ?? '')) continue;
      const d = await exec(bin, ['-w', '-t', 'nat', '-D', ...parts.slice(1)]);
      if (d.code !== 0) failed.push(`${line.trim()}: ${firstLine(d.stderr)}`);
    }
  }
  const existing = await exec(bin, ['-w', '-t', 'nat', '-S']);
  const chains = [...own].filter((c) => existing.stdout.split('\n').some((l) => l.trim() === `-N ${c}`));
  // Flush all first: one of Isle's chains may jump to another.
  for (const c of chains) await exec(bin, ['-w', '-t', 'nat', '-F', c]);
  for (const c of chains) {
    const x = await exec(bin, ['-w', '-t', 'nat', '-X', c]);
    if (x.code !== 0) failed.push(`delete chain ${c}: ${firstLine(x.stderr)}`);
  }
  return failed;
}

/** The nat table as iptables-save prints it (for `isle iptables --list` and tests). */
export async function listNat(exec: Exec = execDefault, bin: Family = 'iptables'): Promise<string> {
  const r = await exec(bin, ['-w', '-t', 'nat', '-S']);
  if (r.code !== 0) throw new IsleError('ERR_USAGE', `${bin} -t nat -S: ${firstLine(r.stderr)}`);
  return r.stdout;
}
