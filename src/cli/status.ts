import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { DEMO_STATE_FILE, fetchPlane, formatStatus } from '../controlplane/status.js';
import { IsleError } from '../errors.js';
import type { CliIO } from './io.js';

/** The demo's control planes, and a line naming which demo they are (scenario, directory, pid). */
export async function demoPlanes(dir: string | undefined): Promise<{ urls: string[]; header?: string }> {
  const { readDemoState, isAlive } = await import('../demo/lock.js');
  const state = await readDemoState({ ...(dir !== undefined ? { dir: resolve(dir) } : {}), pointer: DEMO_STATE_FILE });
  if (!state) {
    if (dir !== undefined) throw new IsleError('ERR_USAGE', `no demo state in ${dir} (${join(dir, 'state.json')} not found): is a demo running there?`);
    return { urls: [] };
  }
  const alive = state.pid !== undefined && isAlive(state.pid);
  const header = `Demo ${state.scenario ?? 'seed-000'} in ${state.dir}${state.pid !== undefined ? ` (pid ${state.pid}${alive ? '' : ', not running: this state is stale'})` : ''}\n\n`;
  return { urls: (state.controlPlanes ?? []).map((c) => c.debug), header };
}

export function registerStatus(program: Command, io: CliIO): void {
  program
    .command('status')
    .description("sync state of every proxy per xDS type (like istioctl proxy-status) and each control plane's remote clusters")
    .option('--control-plane <url>', 'debug URL of a control plane (repeatable; default: the running demo)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--dir <dir>', "a demo's directory (isle demo --dir): talk to that demo's control planes")
    .option('--json', 'print JSON')
    .action(async (o: { controlPlane: string[]; json?: boolean; dir?: string }) => {
      const demo = o.controlPlane.length > 0 ? { urls: [] as string[] } : await demoPlanes(o.dir);
      const urls = o.controlPlane.length > 0 ? o.controlPlane : demo.urls;
      if (demo.header && !o.json) io.out(demo.header);
      if (urls.length === 0) {
        throw new IsleError('ERR_USAGE', `no control plane given: pass --control-plane http://HOST:15014 (or start \`isle demo\`, which writes ${DEMO_STATE_FILE})`);
      }
      const planes = await Promise.all(urls.map((u) => fetchPlane(u.includes('://') ? u : `http://${u}`)));
      io.out(o.json ? `${JSON.stringify(planes, null, 2)}\n` : formatStatus(planes));
      if (planes.every((p) => p.error)) process.exitCode = 1;
    });
}
