import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { IsleError } from '../errors.js';
import { grpcBootstrap } from '../mesh/grpcbootstrap.js';
import type { CliIO } from './io.js';

interface GrpcOpts {
  namespace: string;
  serviceAccount: string;
  xdsAddress: string;
  ip?: string;
  workload?: string;
  label: string[];
  network?: string;
  cluster?: string;
  certDir?: string;
  domainSuffix: string;
  out?: string;
  force?: boolean;
}

function collect(v: string, acc: string[]): string[] {
  return [...acc, v];
}

function labelsFrom(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new IsleError('ERR_USAGE', `--label ${JSON.stringify(p)}: expected key=value`);
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}

export function registerBootstrap(program: Command, io: CliIO): void {
  const bootstrap = program.command('bootstrap').description('bootstrap files for clients that talk to the control plane themselves');
  bootstrap
    .command('grpc')
    .description('the GRPC_XDS_BOOTSTRAP file of a proxyless gRPC client (xds:///<service fqdn>:<port>)')
    .requiredOption('--namespace <ns>', "the client's namespace (VirtualService and DestinationRule visibility)")
    .requiredOption('--service-account <sa>', "the client's service account")
    .option('--xds-address <host:port>', "the control plane's plaintext xDS listener (grpc-js-xds has no TLS channel credentials)", '127.0.0.1:15010')
    .option('--ip <addr>', "the client's address, for its node id", '127.0.0.1')
    .option('--workload <name>', 'workload name in the node id (default: the service account)')
    .option('--label <key=value>', 'a workload label (sourceLabels matching); repeatable', collect, [])
    .option('--network <name>', "the client's network (which endpoints it can dial)")
    .option('--cluster <name>', "the client's cluster")
    .option('--cert-dir <dir>', 'cert-chain.pem, key.pem and root-cert.pem for ISTIO_MUTUAL clusters (certificate provider `default`)')
    .option('--domain-suffix <suffix>', 'the mesh domain suffix', 'cluster.local')
    .option('--out <file>', 'write the bootstrap here instead of printing it')
    .option('--force', 'replace an existing --out file')
    .action(async (o: GrpcOpts) => {
      const certDir = o.certDir ? resolve(o.certDir) : undefined;
      const doc = grpcBootstrap({
        xdsAddress: o.xdsAddress,
        namespace: o.namespace,
        serviceAccount: o.serviceAccount,
        ...(o.ip ? { ip: o.ip } : {}),
        ...(o.workload ? { workload: o.workload } : {}),
        labels: labelsFrom(o.label),
        ...(o.network ? { network: o.network } : {}),
        ...(o.cluster ? { cluster: o.cluster } : {}),
        domainSuffix: o.domainSuffix,
        ...(certDir
          ? { certs: { certificateFile: join(certDir, 'cert-chain.pem'), privateKeyFile: join(certDir, 'key.pem'), caCertificateFile: join(certDir, 'root-cert.pem') } }
          : {}),
      });
      const text = `${JSON.stringify(doc, null, 2)}\n`;
      if (!o.out) {
        io.out(text);
        return;
      }
      try {
        await writeFile(o.out, text, { flag: o.force ? 'w' : 'wx' });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new IsleError('ERR_FILE_EXISTS', `${o.out}: exists (use --force to replace it)`, { file: o.out });
        throw e;
      }
      io.out(`wrote ${o.out}: run the client with GRPC_XDS_BOOTSTRAP=${o.out} and target xds:///<name>.<namespace>.svc.${o.domainSuffix}:<port>\n`);
    });
}
