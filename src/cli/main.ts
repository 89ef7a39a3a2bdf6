import { Command, CommanderError } from 'commander';
import { isIsleError } from '../errors.js';
import type { CliIO } from './io.js';
import { registerCa } from './ca.js';
import { registerAnalyze } from './analyze.js';
import { registerToken } from './token.js';
import { registerControlPlane } from './controlplane.js';
import { registerProxy } from './proxy.js';
import { registerCluster } from './cluster.js';
import { registerStatus } from './status.js';
import { registerDemo } from './demo.js';
import { registerPrecheck } from './precheck.js';
import { registerDescribe } from './describe.js';
import { registerConfig } from './config.js';
import { registerProxyConfig } from './proxyconfig.js';
import { registerBootstrap } from './bootstrap.js';
import { registerDashboard } from './dashboard.js';

/** Output sinks, injectable so commands can be tested in-process. */
export type { CliIO } from './io.js';

const defaultIO: CliIO = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

export function buildProgram(io: CliIO = defaultIO): Command {
  const program = new Command('isle')
    .description('Isle: a multi-cluster service mesh — control planes per cluster, one shared root of trust')
    .version('0.1.0')
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride();
  registerCa(program, io);
  registerAnalyze(program, io);
  registerToken(program, io);
  registerControlPlane(program, io);
  registerProxy(program, io);
  registerCluster(program, io);
  registerStatus(program, io);
  registerDemo(program, io);
  registerPrecheck(program, io);
  registerDescribe(program, io);
  registerConfig(program, io);
  registerProxyConfig(program, io);
  registerBootstrap(program, io);
  registerDashboard(program, io);
  return program;
}

/**
 * Runs the CLI and returns the exit code: 0 ok, 1 failure found (e.g. `analyze` found errors),
 * 2 bad input (usage, unreadable or invalid files).
 */
export async function run(argv: string[], io: CliIO = defaultIO): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return 2;
    }
    if (isIsleError(e)) {
      io.err(`isle: ${e.message}\n`);
      return 2;
    }
    io.err(`isle: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}
