import type { Command } from 'commander';
import { IsleError } from '../errors.js';
import type { CaptureSettings } from '../proxy/capture/iptables.js';
import type { CliIO } from './io.js';

/** The capture flags `isle proxy --capture` and `isle iptables` share. */
export interface CaptureFlags {
  captureDns: boolean;
  proxyUid: string;
  proxyGid: string;
  excludeOutboundPorts?: string;
  excludeOutboundCidrs?: string;
  excludeInboundPorts?: string;
}

export function captureFlags(cmd: Command, prefix: string): Command {
  return cmd
    .option('--no-capture-dns', `${prefix}leave DNS (port 53) alone`)
    .option('--proxy-uid <uid>', `${prefix}the uid whose connections bypass capture`, '1337')
    .option('--proxy-gid <gid>', `${prefix}the gid whose connections bypass capture (isle proxy --capture runs with it as its effective gid)`, '1337')
    .option('--exclude-outbound-ports <p,...>', `${prefix}outbound destination ports that bypass the sidecar`)
    .option('--exclude-outbound-cidrs <cidr,...>', `${prefix}outbound destination CIDRs that bypass the sidecar`)
    .option('--exclude-inbound-ports <p,...>', `${prefix}inbound ports that reach the workload directly (besides 15008, 15020, 15021, 15090)`);
}

const usage = (m: string): never => {
  throw new IsleError('ERR_USAGE', m);
};

function num(v: string, flag: string, min: number, max: number): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) && n >= min && n <= max ? n : usage(`${flag}: invalid value ${JSON.stringify(v)}`);
}

const list = (v: string | undefined): string[] => (v ?? '').split(',').map((x) => x.trim()).filter(Boolean);

/** The rule settings the flags ask for; bad flags are one-line usage errors before anything changes. */
export async function captureSettingsFrom(o: CaptureFlags): Promise<CaptureSettings> {
  const { captureRules, DEFAULT_EXCLUDED_INBOUND_PORTS } = await import('../proxy/capture/iptables.js');
  const s: CaptureSettings = {
    outboundPort: 15001,
    inboundPort: 15006,
    dnsPort: o.captureDns ? 15053 : undefined,
    proxyUid: num(o.proxyUid, '--proxy-uid', 0, 2 ** 31),
    proxyGid: num(o.proxyGid, '--proxy-gid', 0, 2 ** 31),
    excludeOutboundPorts: list(o.excludeOutboundPorts).map((p) => num(p, '--exclude-outbound-ports', 1, 65535)),
    excludeOutboundCidrs: list(o.excludeOutboundCidrs),
    excludeInboundPorts: [...DEFAULT_EXCLUDED_INBOUND_PORTS, ...list(o.excludeInboundPorts).map((p) => num(p, '--exclude-inbound-ports', 1, 65535))],
  };
  captureRules(s);
  return s;
}

/**
 * `isle iptables`: the capture rules without a proxy. `--dry-run` prints the iptables-restore
 * input; `--remove` deletes Isle's rules (e.g. after a proxy was killed with SIGKILL); plain,
 * installs them (what `isle proxy --capture` does first).
 */
export function registerIptables(program: Command, io: CliIO): void {
  captureFlags(
    program
      .command('iptables')
      .description("install, print or remove the transparent-capture nat rules in this network namespace (Linux, root; isle proxy --capture does this itself)")
      .option('--dry-run', 'print the rules (iptables-restore input) and change nothing')
      .option('--remove', "remove Isle's capture rules and chains"),
    '',
  ).action(async (o: CaptureFlags & { dryRun?: boolean; remove?: boolean }) => {
    const ipt = await import('../proxy/capture/iptables.js');
    if (o.remove) {
      const left = await ipt.removeCapture();
      if (left.length) usage(`could not remove: ${left.join('; ')}`);
      io.out('removed\n');
      return;
    }
    const s = await captureSettingsFrom(o);
    if (o.dryRun) return void io.out(`${ipt.restoreScript(ipt.captureRules(s), [])}# ip6tables-restore --noflush (IPv6, outbound only)\n${ipt.restoreScript(ipt.captureRules6(s), [])}`);
    await ipt.installCapture(s);
    io.out('installed\n');
  });
}
