import type { Command } from 'commander';
import type { CliIO } from './io.js';
import { untilSignal } from './signals.js';

/**
 * `isle demo`: the seed-000 mesh on loopback (see src/demo). `isle demo-app` is the hidden
 * command the demo runs its sample applications with.
 */
export function registerDemo(program: Command, io: CliIO): void {
  program
    .command('demo')
    .description('run seed 000 on this machine: two clusters, two control planes sharing one root, east-west gateways, helloworld v1/v2, sleep — and verify it')
    .option('--scenario <name>', 'which scenario: seed-000, or a traffic-policy scenario (strict-mtls, routing, distribute, failover, authz), or remote-control-plane (seed 001)', 'seed-000')
    .option('--check', 'run the verification, print the result and exit 0 (passed) or 1')
    .option('--dir <dir>', 'where certificates, config, tokens and logs go (default .isle/demo for seed-000, .isle/demo-<scenario> for the others); one demo per directory (<dir>.lock)')
    .option('--log-level <level>', 'log level of the components (their logs are in <dir>/logs)', 'info')
    .option('--netns', "each workload in its own network namespace with a capturing sidecar (plain curl, no proxy settings), each cluster in its own, joined only through control planes and east-west gateways (Linux, root, iptables, curl)")
    .option('--netns-prefix <prefix>', 'with --netns: prefix of the namespace and link names', 'isle-')
    .option('--netns-subnet <a.b.c.0/24>', "with --netns: the subnet joining the clusters' namespaces in the host namespace (the host is .254)", '10.250.0.0/24')
    .option('--observability', "start Debian's prometheus on the demo's scrape config (when installed)")
    .option('--prometheus-listen <addr>', 'where Prometheus listens with --observability', '127.0.0.1:9090')
    .option('--otlp-endpoint <url>', 'every sidecar exports spans over OTLP/HTTP here, e.g. http://127.0.0.1:4318 (Jaeger, OpenTelemetry Collector); MeshConfig tracing, sampling 1')
    .action(async (o: { scenario: string; check?: boolean; dir?: string; logLevel: string; netns?: boolean; netnsPrefix: string; netnsSubnet: string; observability?: boolean; prometheusListen: string; otlpEndpoint?: string }) => {
      const { runDemo } = await import('../demo/demo.js');
      const subnet = /^(\d+\.\d+\.\d+)\.0\/24$/.exec(o.netnsSubnet);
      if (!subnet) {
        const { IsleError } = await import('../errors.js');
        throw new IsleError('ERR_USAGE', `--netns-subnet: ${JSON.stringify(o.netnsSubnet)} is not a /24 (a.b.c.0/24)`);
      }
      const untilStopped = async (): Promise<void> => void (await untilSignal());
      process.exitCode = await runDemo({
        scenario: o.scenario,
        check: o.check ?? false,
        ...(o.dir !== undefined ? { dir: o.dir } : {}),
        logLevel: o.logLevel,
        netns: o.netns ?? false,
        netnsLayout: { prefix: o.netnsPrefix, bridgeNet: subnet[1]! },
        observability: o.observability ?? false,
        prometheusListen: o.prometheusListen,
        ...(o.otlpEndpoint ? { tracing: { endpoint: o.otlpEndpoint, sampling: 1 } } : {}),
        out: io.out,
        untilStopped,
      });
    });

  program
    .command('demo-relay', { hidden: true })
    .description('a TCP relay of the demo: a WAN link with a delay each way, or a Service in front of replicas')
    .requiredOption('--listen <addr>', 'host:port')
    .requiredOption('--target <addrs>', 'host:port[,host:port…] (round robin, a refusing one skipped)')
    .option('--delay-ms <ms>', 'one-way delay added to every chunk', '0')
    .action(async (o: { listen: string; target: string; delayMs: string }) => {
      const { startRelay } = await import('../demo/relay.js');
      const { server, address } = await startRelay({ listen: o.listen, targets: o.target.split(','), delayMs: Number(o.delayMs) });
      io.out(`relaying ${address} -> ${o.target} delay ${o.delayMs}ms\n`);
      await new Promise<void>((resolve) => {
        const on = () => resolve();
        process.once('SIGINT', on);
        process.once('SIGTERM', on);
      });
      server.close();
    });

  program
    .command('demo-app', { hidden: true })
    .description('a sample application of the demo (helloworld, httpbin)')
    .argument('<app>', 'helloworld or httpbin')
    .option('--app-version <v>', 'helloworld version', 'v1')
    .option('--listen <addr>', 'host:port (port 0: any free port)', '127.0.0.1:0')
    .action(async (app: string, o: { appVersion: string; listen: string }) => {
      const { IsleError } = await import('../errors.js');
      if (app !== 'helloworld' && app !== 'httpbin') throw new IsleError('ERR_USAGE', `unknown demo app ${JSON.stringify(app)} (helloworld, httpbin)`);
      const { startHelloworld, startHttpbin } = await import('../demo/app.js');
      const i = o.listen.lastIndexOf(':');
      const at = { host: o.listen.slice(0, i), port: Number(o.listen.slice(i + 1)) };
      const { server, address, instance } = app === 'httpbin' ? await startHttpbin(at) : await startHelloworld({ version: o.appVersion, ...at });
      io.out(`listening ${address} instance ${instance}\n`);
      await new Promise<void>((resolve) => {
        const on = () => resolve();
        process.once('SIGINT', on);
        process.once('SIGTERM', on);
      });
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });
}
