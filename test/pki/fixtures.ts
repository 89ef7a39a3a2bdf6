// Shared helpers of the PKI tests (not a test file): temp dirs, openssl, directory snapshots,
// and one mesh of CAs per test process, built with the real library.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import {
  caFiles,
  createCsr,
  createIntermediate,
  createRoot,
  signWorkloadCsr,
  type IssuingCa,
  type RootCa,
  type SignedWorkload,
  type WorkloadIdentity,
  writeFilesAtomic,
} from '../../src/pki/index.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix = 'isle-pki-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function openssl(args: string[], cwd?: string): Run {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Writes PEM text to a fresh temp file and returns its path (for openssl). */
export function pemFile(content: string, name = 'file.pem'): string {
  const p = join(tempDir(), name);
  writeFileSync(p, content);
  return p;
}

/** The first certificate of a PEM chain (a leaf out of cert-chain.pem). */
export function firstPem(chainPem: string): string {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/.exec(chainPem);
  if (!m) throw new Error('no certificate in chain');
  return m[0].endsWith('\n') ? m[0] : `${m[0]}\n`;
}

/** `openssl verify -CAfile root -untrusted chain leaf`, the acceptance check of the issue. */
export function opensslVerify(rootBundlePem: string, chainPem: string, leafPem = firstPem(chainPem), at?: Date): Run {
  const d = tempDir();
  const attime = at ? ['-attime', String(Math.floor(at.getTime() / 1000))] : [];
  writeFileSync(join(d, 'root-cert.pem'), rootBundlePem);
  writeFileSync(join(d, 'cert-chain.pem'), chainPem);
  writeFileSync(join(d, 'leaf.pem'), leafPem);
  return openssl(['verify', '-x509_strict', ...attime, '-CAfile', 'root-cert.pem', '-untrusted', 'cert-chain.pem', 'leaf.pem'], d);
}

export type Snapshot = Record<string, { mode: number; content: string }>;

/** Names, modes and contents of every file under `dir` (undefined when it does not exist). */
export function snapshot(dir: string): Snapshot | undefined {
  let names: string[];
  try {
    names = readdirSync(dir, { recursive: true }) as string[];
  } catch {
    return undefined;
  }
  const out: Snapshot = {};
  for (const n of names.sort()) {
    const p = join(dir, n);
    const st = statSync(p);
    out[n] = { mode: st.mode & 0o777, content: st.isDirectory() ? '<dir>' : readFileSync(p, 'utf8') };
  }
  return out;
}

export interface Mesh {
  root: RootCa;
  c1: IssuingCa;
  c2: IssuingCa;
  /** An unrelated root, same trust domain and subject: only the signature tells them apart. */
  foreignRoot: RootCa;
  foreignCa: IssuingCa;
}

let mesh: Promise<Mesh> | undefined;

export function meshCa(): Promise<Mesh> {
  mesh ??= (async () => {
    const root = await createRoot();
    const foreignRoot = await createRoot();
    const [c1, c2, foreignCa] = await Promise.all([
      createIntermediate({ root, cluster: 'cluster-1' }),
      createIntermediate({ root, cluster: 'cluster-2' }),
      createIntermediate({ root: foreignRoot, cluster: 'cluster-1' }),
    ]);
    return { root, c1, c2, foreignRoot, foreignCa };
  })();
  return mesh;
}

export function identity(namespace: string, serviceAccount: string, trustDomain = 'cluster.local'): WorkloadIdentity {
  return { trustDomain, namespace, serviceAccount };
}

/** A workload the way a proxy gets one: key made locally, CSR signed by the CA. */
export async function workload(ca: IssuingCa, id: WorkloadIdentity, opts: { ttlSeconds?: number; now?: Date; keyType?: 'ec-p256' | 'rsa-2048' } = {}): Promise<SignedWorkload & { keyPem: string }> {
  const { csrPem, keyPem } = await createCsr({ identity: id, keyType: opts.keyType });
  const signed = await signWorkloadCsr({ ca, csrPem, identity: id, ttlSeconds: opts.ttlSeconds, now: opts.now });
  return { ...signed, keyPem };
}

export interface BadCaCase {
  name: string;
  dir: string;
  /** The file the error must name. */
  file: string;
  code: string;
  message: RegExp;
}

async function writeCa(dir: string, ca: Pick<IssuingCa, 'certPem' | 'keyPem' | 'chainPem' | 'rootBundlePem'>): Promise<void> {
  await writeFilesAtomic(dir, caFiles(ca));
}

/** A CA certificate for `subject` signed by `root` with the real openssl, and its key. */
export function opensslChild(root: RootCa, ext: string, subject: string): { certPem: string; keyPem: string } {
  const d = tempDir();
  writeFileSync(join(d, 'root.pem'), root.certPem);
  writeFileSync(join(d, 'root-key.pem'), root.keyPem);
  writeFileSync(join(d, 'ext.cnf'), `[v3]\n${ext}\n`);
  let r = openssl(['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', 'key.pem', '-subj', subject, '-out', 'req.pem'], d);
  if (r.status !== 0) throw new Error(r.stderr);
  r = openssl(['x509', '-req', '-in', 'req.pem', '-CA', 'root.pem', '-CAkey', 'root-key.pem', '-CAcreateserial', '-days', '30', '-extfile', 'ext.cnf', '-extensions', 'v3', '-out', 'cert.pem'], d);
  if (r.status !== 0) throw new Error(r.stderr);
  return { certPem: readFileSync(join(d, 'cert.pem'), 'utf8'), keyPem: readFileSync(join(d, 'key.pem'), 'utf8') };
}

/**
 * Broken `cacerts` directories, one per failure the issue lists, each made the way it happens
 * in real life (a truncated copy, the wrong key, an old intermediate, an openssl-made non-CA…).
 */
export async function badCaDirs(): Promise<BadCaCase[]> {
  const { root, c1, c2, foreignRoot } = await meshCa();
  const base = tempDir('isle-bad-');
  const cases: BadCaCase[] = [];
  const add = async (name: string, ca: Pick<IssuingCa, 'certPem' | 'keyPem' | 'chainPem' | 'rootBundlePem'>, file: string, code: string, message: RegExp, mutate?: (dir: string) => void) => {
    const dir = join(base, name);
    await writeCa(dir, ca);
    mutate?.(dir);
    cases.push({ name, dir, file: join(dir, file), code, message });
  };

  await add('corrupt-pem', c1, 'ca-cert.pem', 'ERR_PEM_INVALID', /corrupt/, (dir) => {
    // A copy that lost a line: still base64, no longer DER.
    const p = join(dir, 'ca-cert.pem');
    const lines = readFileSync(p, 'utf8').split('\n');
    lines.splice(3, 1);
    writeFileSync(p, lines.join('\n'));
  });
  await add('key-mismatch', { ...c1, keyPem: c2.keyPem }, 'ca-key.pem', 'ERR_KEY_MISMATCH', /private key does not match .*ca-cert\.pem/);

  const past = new Date(Date.now() - 2 * 365 * 24 * 3600 * 1000);
  const oldRoot = await createRoot({ now: past });
  const expired = await createIntermediate({ root: oldRoot, cluster: 'old', days: 30, now: past });
  await add('expired', expired, 'ca-cert.pem', 'ERR_CERT_EXPIRED', /expired on/);

  const future = new Date(Date.now() + 30 * 24 * 3600 * 1000);
  const early = await createIntermediate({ root, cluster: 'early', now: future });
  await add('not-yet-valid', early, 'ca-cert.pem', 'ERR_CERT_EXPIRED', /not valid before/);

  const leafish = opensslChild(root, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature', '/O=cluster.local/L=cluster-9/CN=not a CA');
  await add('not-ca', { certPem: leafish.certPem, keyPem: leafish.keyPem, chainPem: leafish.certPem + root.certPem, rootBundlePem: root.certPem }, 'ca-cert.pem', 'ERR_CERT_NOT_CA', /not a CA certificate/);

  await add('missing-file', c1, 'cert-chain.pem', 'ERR_FILE_MISSING', /missing/, (dir) => rmSync(join(dir, 'cert-chain.pem')));
  await add('foreign-root', { ...c1, rootBundlePem: foreignRoot.certPem }, 'cert-chain.pem', 'ERR_CHAIN_INVALID', /does not verify to .*root-cert\.pem/);
  return cases;
}
