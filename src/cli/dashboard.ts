/**
 * `isle dashboard`: the URL of each control plane's mesh page (its debug port's `/ui`, ADR 0095),
 * checked for reachability; `--open` hands the first one to the desktop's browser.
 */
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { DEMO_STATE_FILE, getJson, unreachable } from '../controlplane/status.js';
import { IsleError } from '../errors.js';
import type { CliIO } from './io.js';
import { demoPlanes } from './status.js';

export interface DashboardPage {
  url: string;
  cluster?: string;
  error?: string;
}

/** `host:port` or a URL → the page URL. */
export function pageUrl(debug: string): string {
  const base = (debug.includes('://') ? debug : `http://${debug}`).replace(/\/+$/, '');
  return `${base}/ui`;
}

export async function dashboardPages(debugAddrs: readonly string[], timeoutMs = 3000): Promise<DashboardPage[]> {
  return Promise.all(
    debugAddrs.map(async (d) => {
      const url = pageUrl(d);
      try {
        const info = (await getJson(`${url.slice(0, -3)}/debug?pretty=false`, timeoutMs)) as { cluster?: unknown };
        return { url, ...(typeof info.cluster === 'string' ? { cluster: info.cluster } : {}) };
      } catch (e) {
        return { url, error: unreachable(e) };
      }
    }),
  );
}

function openInBrowser(url: string, io: CliIO): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  const child = spawn(cmd, [url], { detached: true, stdio: 'ignore' });
  child.on('error', (e) => io.err(`isle: cannot open a browser (${cmd}: ${(e as NodeJS.ErrnoException).code ?? e.message}); open ${url} yourself\n`));
  child.unref();
}

export function registerDashboard(program: Command, io: CliIO): void {
  program
    .command('dashboard')
    .description("the live mesh page of each control plane (its debug port's /ui): clusters, traffic edges, proxies' sync state, peer links")
    .option('--control-plane-debug <addr>', 'debug address of a control plane, host:port or URL (repeatable; default: the running demo)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--dir <dir>', "a demo's directory (isle demo --dir): that demo's control planes")
    .option('--open', 'open the first reachable page in a browser')
    .action(async (o: { controlPlaneDebug: string[]; dir?: string; open?: boolean }) => {
      const addrs = o.controlPlaneDebug.length > 0 ? o.controlPlaneDebug : (await demoPlanes(o.dir)).urls;
      if (addrs.length === 0) {
        throw new IsleError('ERR_USAGE', `no control plane given: pass --control-plane-debug HOST:15014 (or start \`isle demo\`, which writes ${DEMO_STATE_FILE})`);
      }
      const pages = await dashboardPages(addrs);
      for (const p of pages) io.out(`${(p.cluster ?? '?').padEnd(12)} ${p.url}${p.error ? `   unreachable: ${p.error}` : ''}\n`);
      const first = pages.find((p) => !p.error);
      if (!first) {
        process.exitCode = 1;
        return;
      }
      if (o.open) openInBrowser(first.url, io);
    });
}
