import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { IsleError } from '../errors.js';
import { grpcBootstrap } from '../mesh/grpcbootstrap.js';
import type { CliIO } from './io.js';
import { untilSignal } from './signals.js';

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
  controlPlane?: string;
  token?: string;
  caBundle?: string;
  trustDomain: string;
  certTtl?: string;
  xdsRelay?: string;
}

async function readText(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new IsleError('ERR_USAGE', `${flag}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

/**
 * Gets the workload certificate from the control plane's certificate service (key made here, CSR,
 * bootstrap token first), writes it where the bootstrap's file_watcher provider reads it, and keeps
 * renewing it (at half-life, like `isle proxy`) until stopped.
 */
async function startCertAgent(o: GrpcOpts, certDir: string, io: CliIO) {
  if (!o.token || !o.caBundle) throw new IsleError('ERR_USAGE', '--control-plane needs --token FILE and --ca-bundle FILE');
  if (!/^\S+:\d{1,5}$/.test(o.controlPlane!)) throw new IsleError('ERR_USAGE', `--control-plane: invalid address ${JSON.stringify(o.controlPlane)} (use host:port)`);
  const token = (await readText(o.token, '--token')).trim();
  const rootPem = await readText(o.caBundle, '--ca-bundle');
  if (!rootPem.includes('-----BEGIN CERTIFICATE-----')) throw new IsleError('ERR_USAGE', `--ca-bundle: ${o.caBundle} holds no PEM certificate`);
  const ttl = o.certTtl !== undefined ? Number(/^(\d+)s?$/.exec(o.certTtl)?.[1] ?? NaN) : undefined;
  if (ttl !== undefined && !(ttl > 0)) throw new IsleError('ERR_USAGE', `--cert-ttl: ${JSON.stringify(o.certTtl)} is not a number of seconds`);
  const [{ Identity }, { writeFilesAtomic, CERT_MODE, KEY_MODE }] = await Promise.all([import('../proxy/identity.js'), import('../pki/files.js')]);
  const identity = new Identity({
    address: o.controlPlane!,
    identity: { trustDomain: o.trustDomain, namespace: o.namespace, serviceAccount: o.serviceAccount },
    rootPem,
    token,
    ...(ttl !== undefined ? { ttlSeconds: ttl } : {}),
  });
  const write = async (m: { chainPem: string; keyPem: string; rootPem: string; serial: string; notAfter: number }): Promise<void> => {
    await writeFilesAtomic(
      certDir,
      [
        { name: 'key.pem', content: m.keyPem, mode: KEY_MODE },
        { name: 'cert-chain.pem', content: m.chainPem, mode: CERT_MODE },
        { name: 'root-cert.pem', content: m.rootPem, mode: CERT_MODE },
      ],
      { force: true },
    );
    io.out(`certificate ${identity.spiffeId} serial ${m.serial} until ${new Date(m.notAfter).toISOString()} in ${certDir}\n`);
  };
  await write(await identity.bootstrap());
  identity.on('rotated', (m: Parameters<typeof write>[0]) => void write(m).catch((e: unknown) => io.err(`isle: writing the renewed certificate failed: ${e instanceof Error ? e.message : String(e)}\n`)));
  identity.on('renew-error', (e: unknown) => io.err(`isle: certificate renewal failed (retrying): ${e instanceof Error ? e.message : String(e)}\n`));
  return identity;
}

async function untilSignalled(): Promise<void> {
  // The renewal timer does not hold the process open (it is unref'd for the proxy); this does.
  const alive = setInterval(() => undefined, 1 << 30);
  await untilSignal();
  clearInterval(alive);
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
    .option('--control-plane <host:port>', "with --cert-dir: get the workload certificate from this mTLS address (certificate service) and keep renewing it until stopped")
    .option('--token <file>', 'bootstrap token for the first certificate (isle token create)')
    .option('--ca-bundle <file>', 'root-cert.pem: trust anchors for the control plane')
    .option('--trust-domain <td>', 'the mesh trust domain', 'cluster.local')
    .option('--cert-ttl <seconds>', 'certificate lifetime to ask for (the CA may give less)')
    .option('--xds-relay <host:port>', "with --control-plane: relay the client's xDS from this loopback address to the control plane's mTLS port with the workload certificate (the bootstrap then points here, as istio-agent does)")
    .action(async (o: GrpcOpts) => {
      const certDir = o.certDir ? resolve(o.certDir) : undefined;
      if (o.controlPlane && !certDir) throw new IsleError('ERR_USAGE', '--control-plane: also give --cert-dir, where the certificate is kept');
      if (o.controlPlane && !o.out) throw new IsleError('ERR_USAGE', '--control-plane: also give --out (stdout carries progress while it runs)');
      if (o.xdsRelay !== undefined) {
        if (!o.controlPlane) throw new IsleError('ERR_USAGE', '--xds-relay: needs --control-plane (where it relays to)');
        const host = o.xdsRelay.slice(0, Math.max(0, o.xdsRelay.lastIndexOf(':'))).replace(/^\[(.*)\]$/, '$1');
        if (!(host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) || !/:\d{1,5}$/.test(o.xdsRelay)) {
          throw new IsleError('ERR_USAGE', `--xds-relay: ${JSON.stringify(o.xdsRelay)} must be a loopback host:port (whoever reaches the relay speaks with the workload's certificate)`);
        }
      }
      const identity = o.controlPlane ? await startCertAgent(o, certDir!, io) : undefined;
      let relay: { address: string; close(): void } | undefined;
      if (identity && o.xdsRelay !== undefined) {
        const [{ startXdsRelay }, { CONTROL_PLANE_CHANNEL_OPTIONS }] = await Promise.all([import('../proxy/xdsrelay.js'), import('../proxy/identity.js')]);
        relay = await startXdsRelay({ upstream: o.controlPlane!, credentials: () => identity.credentials(), channelOptions: CONTROL_PLANE_CHANNEL_OPTIONS, listen: o.xdsRelay });
        io.out(`xds relay ${relay.address} -> ${o.controlPlane} (mTLS as ${identity.spiffeId})\n`);
      }
      const doc = grpcBootstrap({
        xdsAddress: relay?.address ?? o.xdsAddress,
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
        identity?.stop();
        relay?.close();
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new IsleError('ERR_FILE_EXISTS', `${o.out}: exists (use --force to replace it)`, { file: o.out });
        throw e;
      }
      io.out(`wrote ${o.out}: run the client with GRPC_XDS_BOOTSTRAP=${o.out} and target xds:///<name>.<namespace>.svc.${o.domainSuffix}:<port>\n`);
      if (!identity) return;
      await untilSignalled();
      identity.stop();
      relay?.close();
    });
}
