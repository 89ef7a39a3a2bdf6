import { Command, CommanderError } from 'commander';
import { isIsleError } from '../errors.js';
import type { CliIO } from './io.js';
/** Output sinks, injectable so commands can be tested in-process. */
export type { CliIO } from './io.js';

const defaultIO: CliIO = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

type Register = (program: Command, io: CliIO) => void;

/**
 * Every subcommand's module, imported only when needed: `isle proxy` is a long-lived sidecar, and
 * each module loaded costs its RSS for the life of the process (the demo, the config analyzer and
 * @peculiar/x509 behind the CA commands were ~20 MB of a sidecar that never ran them, ADR 0105).
 * Order = order in `isle --help`; `names` are the top-level command names (and aliases) a module
 * registers (`x` is shared: every module adding an `x` subcommand lists it).
 */
const COMMANDS: ReadonlyArray<readonly [names: readonly string[], load: () => Promise<Register>]> = [
  [['ca'], async () => (await import('./ca.js')).registerCa],
  [['analyze'], async () => (await import('./analyze.js')).registerAnalyze],
  [['token'], async () => (await import('./token.js')).registerToken],
  [['control-plane'], async () => (await import('./controlplane.js')).registerControlPlane],
  [['proxy'], async () => (await import('./proxy.js')).registerProxy],
  [['iptables'], async () => (await import('./iptables.js')).registerIptables],
  [['cluster'], async () => (await import('./cluster.js')).registerCluster],
  [['status'], async () => (await import('./status.js')).registerStatus],
  [['demo', 'demo-relay', 'demo-app'], async () => (await import('./demo.js')).registerDemo],
  [['x'], async () => (await import('./precheck.js')).registerPrecheck],
  [['describe'], async () => (await import('./describe.js')).registerDescribe],
  [['config'], async () => (await import('./config.js')).registerConfig],
  [['proxy-config', 'pc'], async () => (await import('./proxyconfig.js')).registerProxyConfig],
  [['bootstrap'], async () => (await import('./bootstrap.js')).registerBootstrap],
  [['dashboard'], async () => (await import('./dashboard.js')).registerDashboard],
  [['ratelimit'], async () => (await import('./ratelimit.js')).registerRateLimit],
];

/**
 * The program with the subcommand named in `argv` registered, or every subcommand when argv names
 * none of them (help, version, a typo: commander then lists or suggests from all of them).
 */
export async function buildProgram(argv: readonly string[] = [], io: CliIO = defaultIO): Promise<Command> {
  const program = new Command('isle')
    .description('Isle: a multi-cluster service mesh — control planes per cluster, one shared root of trust')
    .version('0.1.0')
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride();
  const named = argv.slice(2).find((a) => !a.startsWith('-'));
  const some = COMMANDS.filter(([names]) => named !== undefined && names.includes(named));
  for (const [, load] of some.length > 0 ? some : COMMANDS) (await load())(program, io);
  return program;
}

/**
 * Runs the CLI and returns the exit code: 0 ok, 1 failure found (e.g. `analyze` found errors),
 * 2 bad input (usage, unreadable or invalid files).
 */
export async function run(argv: string[], io: CliIO = defaultIO): Promise<number> {
  try {
    const program = await buildProgram(argv, io);
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
