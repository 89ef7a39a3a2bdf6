/**
 * Runs the demo's real processes: each component is its own `node …/bin.js <command>` child with
 * its output in a log file, started when a line on its stdout says it is ready, and stopped in
 * reverse order with SIGTERM (SIGKILL after a grace period).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IsleError } from '../errors.js';

/** The compiled CLI entry next to this module (dist/src/cli/bin.js). */
export const CLI_ENTRY = fileURLToPath(new URL('../cli/bin.js', import.meta.url));

export interface ProcessSpec {
  /** Short unique name, e.g. `cluster-1/control-plane`; also the log file name. */
  name: string;
  args: string[];
  /** A stdout line matching this means the process is up; its match is returned. */
  ready: RegExp;
  /** Default 20 s. */
  readyTimeoutMs?: number;
  /** Runs the process inside this network namespace (`ip netns exec NS …`). */
  netns?: string;
}

export interface Managed {
  spec: ProcessSpec;
  child: ChildProcess;
  logFile: string;
  /** Every stdout line so far. */
  lines: string[];
  exited: boolean;
}

export class Supervisor {
  private readonly procs: Managed[] = [];
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly logDir: string,
    private readonly onExit: (m: Managed, code: number | null, signal: NodeJS.Signals | null) => void = () => {},
  ) {}

  get processes(): readonly Managed[] {
    return this.procs;
  }

  /** Starts a process and waits for its ready line; a process that exits first fails with its last words. */
  start(spec: ProcessSpec): Promise<{ managed: Managed; match: RegExpMatchArray }> {
    const logFile = join(this.logDir, `${spec.name.replace(/[^a-zA-Z0-9.-]+/g, '_')}.log`);
    const log: WriteStream = createWriteStream(logFile, { flags: 'a' });
    // `ip netns exec` execs the command after entering the namespace, so the child pid (and the
    // signals sent to it) is the node process's own.
    const [cmd, argv] = spec.netns
      ? ['ip', ['netns', 'exec', spec.netns, process.execPath, CLI_ENTRY, ...spec.args]]
      : [process.execPath, [CLI_ENTRY, ...spec.args]];
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
    const m: Managed = { spec, child, logFile, lines: [], exited: false };
    this.procs.push(m);
    let stderrTail = '';
    let buf = '';
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        reject(new IsleError('ERR_USAGE', `${spec.name} did not become ready within ${(spec.readyTimeoutMs ?? 20_000) / 1000} s (log: ${logFile})`));
      }, spec.readyTimeoutMs ?? 20_000);
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        log.write(d);
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          m.lines.push(line);
          const match = line.match(spec.ready);
          if (match && !settled) {
            settled = true;
            clearTimeout(timer);
            resolve({ managed: m, match });
          }
        }
      });
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        log.write(d);
        stderrTail = (stderrTail + d).slice(-4000);
      });
      child.on('exit', (code, signal) => {
        m.exited = true;
        log.end();
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          // The CLI's own one-line error (`isle: …`) says best why it could not start.
          const why = stderrTail.split('\n').filter((l) => l.startsWith('isle: ')).pop() ?? stderrTail.trim().split('\n').pop() ?? `exit ${code ?? signal}`;
          reject(new IsleError('ERR_USAGE', `${spec.name} failed to start: ${why.replace(/^isle: /, '')} (log: ${logFile})`));
          return;
        }
        if (!this.stopping) this.onExit(m, code, signal);
      });
    });
  }

  /** Stops one process (SIGTERM, then SIGKILL after `graceMs`). */
  async stopOne(m: Managed, graceMs = 5000): Promise<void> {
    if (m.exited) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => m.child.kill('SIGKILL'), graceMs);
      m.child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      m.child.kill('SIGTERM');
    });
  }

  /** Stops everything, newest first (clients before servers). Idempotent. */
  stopAll(graceMs = 5000): Promise<void> {
    this.stopping ??= (async () => {
      for (const m of [...this.procs].reverse()) await this.stopOne(m, graceMs);
    })();
    return this.stopping;
  }
}
