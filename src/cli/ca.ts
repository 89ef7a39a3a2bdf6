import { InvalidArgumentError, Option, type Command } from 'commander';
import { IsleError } from '../errors.js';
import { CA_FILES, KEY_MODE, ROOT_FILES, WORKLOAD_FILES, type OutputFile } from '../pki/files.js';
import { KEY_TYPES, type KeyType } from '../pki/key-types.js';
import { DEFAULT_TRUST_DOMAIN } from '../pki/spiffe.js';
import type { CliIO } from './io.js';
import { parseTtl } from './duration.js';

/**
 * The crypto stack (@peculiar/x509 and its ASN.1 schemas) loads only when a `ca` command runs,
 * so other commands do not pay its start-up time.
 */
const pki = () => import('../pki/index.js');

function parseDays(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 36500) {
    throw new InvalidArgumentError('expected a whole number of days between 1 and 36500.');
  }
  return Number(value);
}

function keyOption(description: string, defaultValue?: KeyType): Option {
  const o = new Option('--key <type>', description).choices(KEY_TYPES);
  return defaultValue ? o.default(defaultValue) : o;
}

async function write(io: CliIO, dir: string, files: OutputFile[], force: boolean): Promise<void> {
  const { writeFilesAtomic } = await pki();
  const written = await writeFilesAtomic(dir, files, { force });
  for (const [i, path] of written.entries()) {
    io.out(`wrote ${path}${files[i]!.mode === KEY_MODE ? ' (private key, mode 0600)' : ''}\n`);
  }
}

interface RootOpts {
  out: string;
  trustDomain: string;
  key: KeyType;
  days: number;
  force?: boolean;
}

interface IntermediateOpts {
  root: string;
  cluster: string;
  out: string;
  days: number;
  key?: KeyType;
  force?: boolean;
}

interface WorkloadOpts {
  ca: string;
  namespace: string;
  serviceAccount: string;
  ttl: number;
  key: KeyType;
  out: string;
  force?: boolean;
  trustDomain?: string;
}

export function registerCa(program: Command, io: CliIO): void {
  const ca = program
    .command('ca')
    .description('manage the mesh PKI: one offline root, an intermediate CA per cluster, workload certificates');

  ca.command('root')
    .description(`create the offline root CA (${ROOT_FILES.cert}, ${ROOT_FILES.key})`)
    .requiredOption('--out <dir>', 'directory to write to')
    .option('--trust-domain <domain>', 'SPIFFE trust domain', DEFAULT_TRUST_DOMAIN)
    .addOption(keyOption('key type', 'ec-p256'))
    .option('--days <n>', 'validity in days', parseDays, 3650)
    .option('--force', 'replace existing files')
    .action(async (o: RootOpts) => {
      const { assertWritable, createRoot, rootFiles } = await pki();
      await assertWritable(o.out, Object.values(ROOT_FILES), { force: o.force });
      const root = await createRoot({ trustDomain: o.trustDomain, keyType: o.key, days: o.days });
      io.out(`root CA for trust domain ${root.trustDomain} (${o.key}), valid until ${root.notAfter.toISOString()}\n`);
      await write(io, o.out, rootFiles(root), o.force ?? false);
    });

  ca.command('intermediate')
    .description(`create a cluster's intermediate CA signed by the root (Istio cacerts: ${Object.values(CA_FILES).join(', ')})`)
    .requiredOption('--root <dir>', `directory holding ${ROOT_FILES.cert} and ${ROOT_FILES.key}`)
    .requiredOption('--cluster <name>', 'cluster name (goes into the subject, L=)')
    .requiredOption('--out <dir>', 'directory to write to')
    .option('--days <n>', "validity in days (never past the root's)", parseDays, 365)
    .addOption(keyOption("key type (default: the root's)"))
    .option('--force', 'replace existing files')
    .action(async (o: IntermediateOpts) => {
      const { assertWritable, caFiles, createIntermediate, loadRootDir } = await pki();
      const root = await loadRootDir(o.root);
      await assertWritable(o.out, Object.values(CA_FILES), { force: o.force });
      const inter = await createIntermediate({ root, cluster: o.cluster, days: o.days, keyType: o.key });
      io.out(`intermediate CA for cluster ${o.cluster}, trust domain ${inter.trustDomain}, valid until ${inter.notAfter.toISOString()}\n`);
      if (inter.capped) io.out(`note: --days ${o.days} would outlive the root; capped at the root's expiry\n`);
      await write(io, o.out, caFiles(inter), o.force ?? false);
    });

  ca.command('workload')
    .description(`issue a workload certificate (${Object.values(WORKLOAD_FILES).join(', ')}) from a cluster CA, for tests and operators`)
    .requiredOption('--ca <dir>', 'cacerts directory of the signing cluster')
    .requiredOption('--namespace <ns>', 'namespace of the workload')
    .requiredOption('--service-account <sa>', 'service account of the workload')
    .option('--ttl <duration>', "lifetime, e.g. 1h, 24h, 7d (never past the CA's expiry)", parseTtl, 86400)
    .addOption(keyOption('key type of the workload', 'ec-p256'))
    .requiredOption('--out <dir>', 'directory to write to')
    .option('--force', 'replace existing files')
    .option('--trust-domain <domain>', "trust domain, for a CA that names none (Istio's tools/certs make O=Istio CAs)")
    .action(async (o: WorkloadOpts) => {
      const { assertWritable, createCsr, loadCaDir, signWorkloadCsr, workloadFiles } = await pki();
      const signer = await loadCaDir(o.ca, { trustDomain: o.trustDomain });
      await assertWritable(o.out, Object.values(WORKLOAD_FILES), { force: o.force });
      const identity = { trustDomain: signer.trustDomain, namespace: o.namespace, serviceAccount: o.serviceAccount };
      // Same path as a proxy and the control plane: the key stays here, only the CSR is signed.
      const { csrPem, keyPem } = await createCsr({ identity, keyType: o.key });
      const now = new Date();
      const signed = await signWorkloadCsr({ ca: signer, csrPem, identity, ttlSeconds: o.ttl, now });
      io.out(`${signed.spiffeId}, valid until ${signed.notAfter.toISOString()}\n`);
      if (signed.notAfter.getTime() < Math.floor(now.getTime() / 1000) * 1000 + o.ttl * 1000) {
        io.out(`note: --ttl would outlive the CA; capped at the CA's expiry\n`);
      }
      await write(io, o.out, workloadFiles({ keyPem, chainPem: signed.chainPem, rootBundlePem: signed.rootBundlePem }), o.force ?? false);
    });

  ca.command('inspect')
    .description('describe a PEM file, or check a root / cacerts / workload directory for consistency')
    .argument('<path>', 'PEM file or directory')
    .option('--json', 'machine-readable output')
    .option('--trust-domain <domain>', "trust domain, for a CA that names none (Istio's tools/certs make O=Istio CAs)")
    .action(async (path: string, o: { json?: boolean; trustDomain?: string }) => {
      const { formatInspectReport, inspectPath } = await pki();
      const report = await inspectPath(path, { trustDomain: o.trustDomain });
      io.out(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatInspectReport(report));
      if (report.kind === 'directory' && report.error) {
        throw new IsleError(report.error.code as IsleError['code'], report.error.message, { file: report.error.file });
      }
    });
}
