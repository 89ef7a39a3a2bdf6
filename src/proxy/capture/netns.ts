/**
 * What running workloads in network namespaces with capture needs, shared by `isle demo --netns`,
 * the capture tests and the TCP data-plane bench: a preflight that names what is missing, and an
 * `Exec` that runs commands (iptables, curl…) inside a named namespace.
 */
import { execFile } from 'node:child_process';
import type { Exec } from './iptables.js';

/** Tools a capturing sidecar in a namespace needs: iproute2 for the namespace, iptables for the rules. */
export const CAPTURE_TOOLS: readonly (readonly [cmd: string, arg: string, pkg: string])[] = [
  ['ip', '-V', 'iproute2'],
  ['iptables', '--version', 'iptables'],
  ['iptables-restore', '--version', 'iptables'],
];

const runs = (cmd: string, arg: string): Promise<boolean> => new Promise((resolve) => execFile(cmd, [arg], { timeout: 10_000 }, (err) => resolve(!err)));

/**
 * Why namespaces with capture cannot be used here (Linux, root, and each of `tools`), or
 * undefined. The reason names what is missing and the Debian package that brings it.
 */
export async function captureUnsupported(tools: readonly (readonly [string, string, string])[] = CAPTURE_TOOLS): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'network namespaces and capture need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces and iptables capture need root (run as root, or with CAP_NET_ADMIN and CAP_SYS_ADMIN)';
  const missing: string[] = [];
  for (const [cmd, arg, pkg] of tools) if (!(await runs(cmd, arg))) missing.push(`\`${cmd}\` (apt-get install ${pkg})`);
  return missing.length > 0 ? `not installed: ${missing.join(', ')}` : undefined;
}

/** Runs commands inside the named namespace (`ip netns exec NS …`); `env` replaces the environment. */
export function execIn(ns: string, env?: NodeJS.ProcessEnv, timeoutMs = 30_000): Exec {
  return (cmd, args, input) =>
    new Promise((resolve) => {
      const child = execFile('ip', ['netns', 'exec', ns, cmd, ...args], { timeout: timeoutMs, ...(env ? { env } : {}) }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 127) : 0;
        resolve({ code, stdout: String(stdout), stderr: err && !stderr ? err.message : String(stderr) });
      });
      if (input !== undefined) child.stdin?.end(input);
    });
}
