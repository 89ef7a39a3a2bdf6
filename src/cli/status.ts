import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { DEMO_STATE_FILE, fetchPlane, formatStatus } from '../controlplane/status.js';
import { IsleError } from '../errors.js';
import type { CliIO } from './io.js';

async function demoPlanes(): Promise<string[]> {
  try {
    const state = JSON.parse(await readFile(DEMO_STATE_FILE, 'utf8')) as { controlPlanes?: { debug: string }[] };
    return (state.controlPlanes ?? []).map((c) => c.debug);
  } catch {
    return [];
  }
}

export function registerStatus(program: Command, io: CliIO): void {
  program
    .command('status')
    .description("sync state of every proxy per xDS type (like istioctl proxy-status) and each control plane's remote clusters")
    .option('--control-plane <url>', 'debug URL of a control plane (repeatable; default: the running demo)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--json', 'print JSON')
    .action(async (o: { controlPlane: string[]; json?: boolean }) => {
      const urls = o.controlPlane.length > 0 ? o.controlPlane : await demoPlanes();
      if (urls.length === 0) {
        throw new IsleError('ERR_USAGE', `no control plane given: pass --control-plane http://HOST:15014 (or start \`isle demo\`, which writes ${DEMO_STATE_FILE})`);
      }
      const planes = await Promise.all(urls.map((u) => fetchPlane(u.includes('://') ? u : `http://${u}`)));
      io.out(o.json ? `${JSON.stringify(planes, null, 2)}\n` : formatStatus(planes));
      if (planes.every((p) => p.error)) process.exitCode = 1;
    });
}
