import { chmod, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Command } from 'commander';
import { IsleError } from '../errors.js';
import { KEY_MODE } from '../pki/files.js';
import { parseTtl } from './duration.js';
import type { CliIO } from './io.js';

// Loaded only when a token command runs, like the `ca` commands, to keep other commands fast.
const tokens = () => import('../mesh/token.js');
const pki = () => import('../pki/index.js');

interface CreateOpts {
  ca: string;
  namespace: string;
  serviceAccount: string;
  cluster: string;
  ttl: number;
  reusable?: string;
  out?: string;
  force?: boolean;
}

/** Written beside the target then renamed, so a reader never sees half a token. */
async function writeSecret(path: string, content: string, force: boolean): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fh = await open(tmp, 'wx', KEY_MODE);
  try {
    await fh.writeFile(content);
    // open()'s mode is filtered by the umask; a bearer credential must be 0600 whatever it is.
    await fh.chmod(KEY_MODE);
  } finally {
    await fh.close();
  }
  try {
    if (!force && (await exists(path))) throw new IsleError('ERR_FILE_EXISTS', `${path}: exists (use --force to replace it)`, { file: path });
    await rename(tmp, path);
    await chmod(path, KEY_MODE);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

async function tokenFrom(arg: string): Promise<string> {
  if (JWT_SHAPE.test(arg.trim())) return arg.trim();
  try {
    return (await readFile(arg, 'utf8')).trim();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new IsleError('ERR_FILE_MISSING', `${arg}: neither a token nor a readable file (${code ?? String(e)})`, { file: arg });
  }
}

function when(seconds: unknown): string {
  return typeof seconds === 'number' && Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : JSON.stringify(seconds);
}

export function registerToken(program: Command, io: CliIO): void {
  const token = program
    .command('token')
    .description('bootstrap tokens: a proxy with no certificate yet proves its identity to the certificate service with one');

  token
    .command('create')
    .description("mint a token for one workload identity, signed with the cluster's intermediate CA key")
    .requiredOption('--ca <dir>', "the cluster's cacerts directory (ca-cert.pem, ca-key.pem, …)")
    .requiredOption('--namespace <ns>', 'namespace of the workload')
    .requiredOption('--service-account <sa>', 'service account of the workload')
    .requiredOption('--cluster <name>', "cluster the token is for (must be the CA's cluster)")
    .option('--ttl <duration>', 'lifetime, e.g. 30m, 1h, 24h, 7d', parseTtl, 3600)
    .option('--reusable <n>', 'let the token mint up to N certificates (default: single use; its id is remembered until it expires)')
    .option('--out <file>', 'write the token to this file (mode 0600) instead of printing it')
    .option('--force', 'replace an existing --out file')
    .action(async (o: CreateOpts) => {
      const [{ createToken }, { loadCaDir }] = await Promise.all([tokens(), pki()]);
      const ca = await loadCaDir(o.ca);
      if (ca.cluster !== undefined && ca.cluster !== o.cluster) {
        throw new IsleError('ERR_USAGE', `--cluster ${o.cluster} does not match ${o.ca}, which is the intermediate of cluster ${ca.cluster}`);
      }
      // A CA made by other tools may not name its cluster (no L=); then the operator's word stands.
      let uses = 1;
      if (o.reusable !== undefined) {
        uses = /^\d+$/.test(o.reusable) ? Number(o.reusable) : NaN;
        if (!Number.isSafeInteger(uses) || uses < 1) throw new IsleError('ERR_USAGE', `--reusable: expected a whole number of uses ≥ 1, got ${JSON.stringify(o.reusable)}`);
      }
      const created = createToken({ ca, namespace: o.namespace, serviceAccount: o.serviceAccount, cluster: o.cluster, ttlSeconds: o.ttl, uses });
      const summary = `token for ${created.claims.sub} in cluster ${o.cluster}, expires ${when(created.claims.exp)}, ${uses === 1 ? 'single use' : `up to ${uses} uses`}`;
      if (o.out) {
        await writeSecret(o.out, `${created.token}\n`, o.force ?? false);
        io.out(`${summary}\nwrote ${o.out} (bearer token, mode 0600)\n`);
      } else {
        io.out(`${created.token}\n`);
        io.err(`${summary}\n`);
      }
      if (created.capped) io.err(`note: --ttl would outlive the CA; capped at the CA's expiry\n`);
    });

  token
    .command('inspect')
    .description('decode a token (the value or a file holding it) and show its claims; the signature is never printed')
    .argument('<token-or-file>', 'the token, or a file holding it')
    .option('--ca <dir>', 'also verify the signature and claims with this cacerts directory')
    .option('--cluster <name>', "cluster to verify for (default: the CA's)")
    .option('--json', 'machine-readable output')
    .action(async (arg: string, o: { ca?: string; cluster?: string; json?: boolean }) => {
      const { decodeToken, verifyToken } = await tokens();
      const decoded = decodeToken(await tokenFrom(arg));
      let verification = 'not checked (pass --ca DIR to verify)';
      let failure: IsleError | undefined;
      if (o.ca) {
        const ca = await (await pki()).loadCaDir(o.ca);
        const cluster = o.cluster ?? ca.cluster;
        if (!cluster) throw new IsleError('ERR_USAGE', `${o.ca} does not name its cluster; pass --cluster`);
        try {
          const v = verifyToken(decoded.signingInput + '.' + decoded.signature.toString('base64url'), { ca, cluster });
          verification = `valid for ${v.spiffeId} in cluster ${v.cluster}`;
        } catch (e) {
          if (!(e instanceof IsleError)) throw e;
          verification = `INVALID: ${e.message}`;
          failure = e;
        }
      }
      const { alg, typ, kid } = decoded.header;
      const p = decoded.payload;
      if (o.json) {
        io.out(`${JSON.stringify({ header: decoded.header, claims: p, signatureBytes: decoded.signature.length, verification }, null, 2)}\n`);
      } else {
        const now = Date.now() / 1000;
        const state = typeof p.exp === 'number' ? (p.exp < now ? ' (expired)' : '') : '';
        const lines = [
          `header:    alg=${String(alg)}${typ ? ` typ=${String(typ)}` : ''}${kid ? ` kid=${String(kid)}` : ''}`,
          `subject:   ${String(p.sub)}`,
          `cluster:   ${String(p.cluster)}`,
          `issuer:    ${String(p.iss)}`,
          `audience:  ${JSON.stringify(p.aud)}`,
          `issued:    ${when(p.iat)}`,
          `expires:   ${when(p.exp)}${state}`,
          `token id:  ${String(p.jti)}`,
          `signature: ${decoded.signature.length} bytes, ${verification}`,
        ];
        io.out(`${lines.join('\n')}\n`);
      }
      if (failure) process.exitCode = 1;
    });
}
