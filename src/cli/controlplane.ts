import type { Command } from 'commander';
import type { CliIO } from './io.js';
import { untilSignal } from './signals.js';

interface ControlPlaneFlags {
  config: string;
  ca: string;
  cluster?: string;
  network?: string;
  trustDomain?: string;
  listen: string;
  debugListen: string;
  plaintextListen?: string;
  eastWestGateway: string[];
  central?: string;
  stateDir?: string;
  store?: string;
  maxUnauthenticatedConnections: string;
  logLevel: string;
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/**
 * `isle control-plane`: runs until SIGINT/SIGTERM, then stops cleanly (exit 0). Prints one line per
 * bound address on stdout (`<name> <host:port>`); logs (pino JSON) go to stderr. A port in use or a
 * bad CA/config directory is a one-line error and exit 2.
 */
export function registerControlPlane(program: Command, io: CliIO): void {
  program
    .command('control-plane')
    .description("run a cluster's control plane: config dir → registry → xDS (ADS, mTLS) + certificate service, debug/metrics")
    .requiredOption('--config <dir>', 'config directory (YAML/JSON, watched live)')
    .requiredOption('--ca <dir>', "the cluster's cacerts directory (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem)")
    .option('--cluster <name>', "cluster name (default: MeshConfig clusterName, else the CA's cluster)")
    .option('--network <name>', 'network of this cluster (default: MeshConfig network)')
    .option('--trust-domain <domain>', "trust domain for a CA that names none, e.g. Istio's tools/certs cacerts (default: MeshConfig trustDomain)")
    .option('--listen <addr>', 'xDS + certificate service over mTLS (port 0: any free port)', '127.0.0.1:15012')
    .option('--debug-listen <addr>', 'debug and metrics HTTP server', '127.0.0.1:15014')
    .option('--plaintext-listen <addr>', 'plaintext xDS that trusts node metadata, loopback only (tests and benchmarks); off by default')
    .option('--east-west-gateway <addr>', "this network's east-west gateway as other networks dial it (host:15443; repeatable); connected gateway proxies are added automatically", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--central <addr>', "run as a remote control plane of this cluster: mesh resources come from the central control plane at host:port (its :15012; its replicas as host:port,host:port) and win over local files; this cluster's services are pushed to it over the same mTLS connection")
    .option('--state-dir <dir>', 'where auto-registrations, used token ids and certificate lineage survive restarts (default: <config>/.isle/state)')
    .option('--store <url>', 'etcd://host:port[,host:port…][/keyspace]: state shared by the replicas of this cluster (registrations, used token ids) instead of --state-dir; one key space per cluster')
    .option('--max-unauthenticated-connections <n>', 'cap on connections to the mTLS port that have not authenticated yet (no client certificate, no certificate request); over it new ones are closed and logged', '1024')
    .option('--log-level <level>', `log level (${LEVELS.join(', ')})`, 'info')
    .action(async (o: ControlPlaneFlags) => {
      const { IsleError } = await import('../errors.js');
      const positive = (v: string, flag: string): number => {
        const n = /^\d+$/.test(v) ? Number(v) : NaN;
        if (!Number.isSafeInteger(n) || n < 1) throw new IsleError('ERR_USAGE', `${flag}: expected a whole number ≥ 1, got ${JSON.stringify(v)}`);
        return n;
      };
      if (!LEVELS.includes(o.logLevel)) throw new IsleError('ERR_USAGE', `--log-level: unknown level ${JSON.stringify(o.logLevel)} (${LEVELS.join(', ')})`);
      const [{ pino, destination }, { ControlPlane }, grpc] = await Promise.all([import('pino'), import('../controlplane/controlplane.js'), import('@grpc/grpc-js')]);
      // Logs to stderr, synchronously, so nothing is lost on exit and stdout stays the address list.
      const logger = pino({ level: o.logLevel }, destination({ fd: 2, sync: true }));
      // grpc-js prints its own errors to stderr (e.g. a failed bind, which ControlPlane reports in
      // one line itself); route them through the logger at debug level.
      const grpcLog = logger.child({ component: 'grpc-js' });
      grpc.setLogger({ error: (...args: unknown[]) => grpcLog.debug(args.map(String).join(' ')) });
      const cp = await ControlPlane.start({
        configDir: o.config,
        caDir: o.ca,
        ...(o.cluster !== undefined ? { cluster: o.cluster } : {}),
        ...(o.network !== undefined ? { network: o.network } : {}),
        ...(o.trustDomain !== undefined ? { trustDomain: o.trustDomain } : {}),
        listen: o.listen,
        debugListen: o.debugListen,
        ...(o.plaintextListen !== undefined ? { plaintextListen: o.plaintextListen } : {}),
        eastWestGateways: o.eastWestGateway,
        ...(o.central !== undefined ? { central: o.central } : {}),
        ...(o.stateDir !== undefined ? { stateDir: o.stateDir } : {}),
        ...(o.store !== undefined ? { store: o.store } : {}),
        portLimits: { maxUnauthenticated: positive(o.maxUnauthenticatedConnections, '--max-unauthenticated-connections') },
        logger,
      });
      const a = cp.addresses;
      io.out(`cluster ${cp.cluster}\n`);
      io.out(`xds+ca mtls ${a.grpc}\n`);
      if (a.plaintext) io.out(`xds plaintext ${a.plaintext}\n`);
      io.out(`debug http://${a.debug}\n`);
      if (o.central !== undefined) io.out(`central ${o.central}\n`);
      const signal = await untilSignal();
      logger.info({ signal }, 'stopping');
      await cp.stop();
      io.out('stopped\n');
    });
}
