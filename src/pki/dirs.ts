import type { KeyObject } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { IsleError, isIsleError, type IsleErrorCode } from '../errors.js';
import type { IssuingCa, RootCa } from './ca.js';
import {
  basicConstraintsOf,
  caProblem,
  clusterOf,
  isSelfSigned,
  keyUsageOf,
  keyUsageNames,
  parseCertPem,
  parseCertsPem,
  sameCert,
  subjectOf,
  trustDomainOf,
  validityProblem,
  type Cert,
} from './certs.js';
import { CA_FILES, ROOT_FILES, WORKLOAD_FILES } from './files.js';
import { describeKey, parsePrivateKeyPem } from './keys.js';
import { joinPem } from './pem.js';
import { parseSpiffeId, spiffeIdFromCert } from './spiffe.js';
import { verifyChain } from './verify.js';

export type Layout = 'root' | 'cacerts' | 'workload';

export interface Check {
  level: 'ok' | 'fail' | 'warn';
  text: string;
  code?: IsleErrorCode | undefined;
  file?: string | undefined;
}

export interface DirAnalysis<T> {
  dir: string;
  layout: Layout;
  checks: Check[];
  /** The first failure, as the error a loader throws. */
  error?: IsleError | undefined;
  /** Set only when every check passed. */
  value?: T | undefined;
  /** Parsed certificates per file name (for reports). */
  certs: Record<string, Cert[]>;
  keys: Record<string, KeyObject>;
}

export interface LoadOptions {
  now?: Date;
  /** The trust domain when the certificates name none (CAs made by other tools); a different one they name is an error. */
  trustDomain?: string;
}

export interface WorkloadMaterial {
  keyPem: string;
  chainPem: string;
  rootBundlePem: string;
  spiffeId: string;
  trustDomain: string;
  notBefore: Date;
  notAfter: Date;
}

const DAY_MS = 24 * 60 * 60 * 1000;

function until(c: Cert, now: Date): string {
  const left = c.px.notAfter.getTime() - now.getTime();
  const days = Math.floor(left / DAY_MS);
  const hours = Math.floor(left / (DAY_MS / 24));
  const text = days >= 2 ? `${days} days` : `${hours} hour${hours === 1 ? '' : 's'}`;
  return `valid until ${c.px.notAfter.toISOString()} (${text} left)`;
}

function caFlags(c: Cert): string {
  const bc = basicConstraintsOf(c);
  const pathLen = bc?.pathLen === undefined ? 'no pathLen limit' : `pathLen ${bc.pathLen}`;
  return `CA:${bc?.ca ? 'true' : 'false'}, ${pathLen}, ${keyUsageNames(keyUsageOf(c)).join('+') || 'no keyUsage'}`;
}

/**
 * Collects check results. Checks run independently as far as their inputs allow, so a report
 * shows everything that is wrong; loaders throw the first failure.
 */
class Checks {
  readonly list: Check[] = [];
  first: IsleError | undefined;

  pass(text: string): void {
    this.list.push({ level: 'ok', text });
  }

  warn(text: string, file?: string): void {
    this.list.push({ level: 'warn', text, file });
  }

  fail(code: IsleErrorCode, message: string, file?: string): void {
    this.failWith(new IsleError(code, message, { file }));
  }

  failWith(e: IsleError): void {
    this.list.push({ level: 'fail', text: e.message, code: e.code, file: e.file });
    this.first ??= e;
  }

  /** Runs `fn`; an IsleError becomes a failed check, other errors are bugs and propagate. */
  try<T>(fn: () => T, okText: (v: T) => string): T | undefined {
    try {
      const v = fn();
      this.pass(okText(v));
      return v;
    } catch (e) {
      if (!isIsleError(e)) throw e;
      this.failWith(e);
      return undefined;
    }
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function readIn(checks: Checks, path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') checks.fail('ERR_FILE_MISSING', `${path}: missing`, path);
    else if (code === 'EISDIR') checks.fail('ERR_PEM_INVALID', `${path}: is a directory, expected a PEM file`, path);
    else checks.fail('ERR_FILE_MISSING', `${path}: cannot read (${code ?? String(e)})`, path);
    return undefined;
  }
}

async function keyModeCheck(checks: Checks, path: string): Promise<void> {
  try {
    const mode = (await stat(path)).mode & 0o777;
    if ((mode & 0o077) !== 0) checks.warn(`${path}: mode 0${mode.toString(8)}, readable by others (chmod 600 it)`, path);
  } catch {
    // Already reported as missing.
  }
}

function checkValidity(checks: Checks, c: Cert, path: string, now: Date): void {
  const invalid = validityProblem(c, now);
  if (invalid) checks.fail('ERR_CERT_EXPIRED', `${path}: ${invalid} ("${subjectOf(c)}")`, path);
  else checks.pass(`${path}: ${until(c, now)}`);
}

function checkKeyMatch(checks: Checks, key: KeyObject, keyPath: string, cert: Cert, certPath: string): boolean {
  if (cert.node.checkPrivateKey(key)) {
    checks.pass(`${keyPath} matches ${certPath}`);
    return true;
  }
  checks.fail('ERR_KEY_MISMATCH', `${keyPath}: private key does not match ${certPath}`, keyPath);
  return false;
}

function checkRoots(checks: Checks, roots: Cert[], path: string, now: Date): boolean {
  const before = checks.list.length;
  const failed = () => checks.list.slice(before).some((c) => c.level === 'fail');
  for (const r of roots) {
    const notCa = caProblem(r);
    if (notCa) checks.fail('ERR_CERT_NOT_CA', `${path}: "${subjectOf(r)}" is ${notCa.replace(/^not a CA certificate/, 'not a CA')}`, path);
    else if (!isSelfSigned(r)) checks.fail('ERR_CHAIN_INVALID', `${path}: "${subjectOf(r)}" is not a self-signed root`, path);
    const invalid = validityProblem(r, now);
    if (invalid) checks.fail('ERR_CERT_EXPIRED', `${path}: root ${invalid} ("${subjectOf(r)}")`, path);
  }
  if (!failed()) {
    const soonest = roots.reduce((a, b) => (b.px.notAfter < a.px.notAfter ? b : a));
    checks.pass(`${path}: ${roots.length} self-signed root${roots.length === 1 ? '' : 's'}, ${until(soonest, now)}`);
  }
  return !failed();
}

function checkIssuer(checks: Checks, c: Cert, path: string): boolean {
  const notCa = caProblem(c);
  if (notCa) {
    checks.fail('ERR_CERT_NOT_CA', `${path}: ${notCa}`, path);
    return false;
  }
  checks.pass(`${path}: ${caFlags(c)}`);
  return true;
}

/** Verifies `chain` (first = the cert of interest) to `roots`, reporting against `chainPath`. */
function checkChain(checks: Checks, chain: Cert[], chainPath: string, roots: Cert[], rootPath: string, now: Date, leafIsIssuer: boolean): Cert | undefined {
  try {
    const verified = verifyChain(chain[0]!, chain.slice(1), roots, now, { leafIsIssuer });
    checks.pass(`${chainPath} verifies to ${rootPath} ("${subjectOf(verified.root)}")`);
    return verified.root;
  } catch (e) {
    if (!isIsleError(e)) throw e;
    checks.fail(e.code, `${chainPath}: does not verify to ${rootPath}: ${e.message}`, chainPath);
    return undefined;
  }
}

function checkTrustDomain(checks: Checks, cert: Cert, path: string, anchor: Cert | undefined, given: string | undefined): string | undefined {
  // A trust domain given by the caller fills in for a CA that names none (Istio's tools/certs make
  // O=Istio CAs); it never overrides one the certificate names, so a wrong flag cannot re-label a CA.
  const own = trustDomainOf(cert);
  if (given !== undefined && own !== undefined && own !== given) {
    checks.fail('ERR_IDENTITY', `${path}: the certificate names trust domain ${own}, not ${given}`, path);
    return undefined;
  }
  const td = own ?? given;
  if (!td) {
    checks.fail('ERR_IDENTITY', `${path}: no trust domain (neither a spiffe://<td> URI SAN nor O=<td>; for a CA made by other tools, such as Istio's tools/certs, give it with --trust-domain or MeshConfig trustDomain)`, path);
    return undefined;
  }
  const anchorTd = anchor ? trustDomainOf(anchor) : undefined;
  if (anchorTd !== undefined && anchorTd !== td) {
    checks.fail('ERR_IDENTITY', `${path}: trust domain ${td} differs from its root's (${anchorTd})`, path);
    return undefined;
  }
  checks.pass(`trust domain ${td}`);
  return td;
}

function analysis<T>(dir: string, layout: Layout, checks: Checks, value: T | undefined, certs: Record<string, Cert[]>, keys: Record<string, KeyObject>): DirAnalysis<T> {
  return { dir, layout, checks: checks.list, error: checks.first, value: checks.first ? undefined : value, certs, keys };
}

async function missingDir<T>(dir: string, layout: Layout): Promise<DirAnalysis<T> | undefined> {
  if (await isDirectory(dir)) return undefined;
  const checks = new Checks();
  checks.fail('ERR_FILE_MISSING', `${dir}: no such directory`, dir);
  return analysis<T>(dir, layout, checks, undefined, {}, {});
}

/** Checks a `cacerts` directory (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem). */
export async function analyzeCaDir(dir: string, opts: LoadOptions = {}): Promise<DirAnalysis<IssuingCa>> {
  const gone = await missingDir<IssuingCa>(dir, 'cacerts');
  if (gone) return gone;
  const now = opts.now ?? new Date();
  const checks = new Checks();
  const p = {
    cert: join(dir, CA_FILES.cert),
    key: join(dir, CA_FILES.key),
    chain: join(dir, CA_FILES.chain),
    root: join(dir, CA_FILES.root),
  };
  const text = {
    cert: await readIn(checks, p.cert),
    key: await readIn(checks, p.key),
    chain: await readIn(checks, p.chain),
    root: await readIn(checks, p.root),
  };
  const cert = text.cert === undefined ? undefined : checks.try(() => parseCertPem(text.cert!, p.cert), (c) => `${p.cert}: certificate "${subjectOf(c)}"`);
  const key = text.key === undefined ? undefined : checks.try(() => parsePrivateKeyPem(text.key!, p.key), (k) => `${p.key}: ${describeKey(k)} private key`);
  const chain = text.chain === undefined ? undefined : checks.try(() => parseCertsPem(text.chain!, p.chain), (cs) => `${p.chain}: ${cs.length} certificate${cs.length === 1 ? '' : 's'}`);
  const roots = text.root === undefined ? undefined : checks.try(() => parseCertsPem(text.root!, p.root), (cs) => `${p.root}: ${cs.length} certificate${cs.length === 1 ? '' : 's'}`);
  if (key) await keyModeCheck(checks, p.key);

  if (cert && key) checkKeyMatch(checks, key, p.key, cert, p.cert);
  if (cert) {
    checkIssuer(checks, cert, p.cert);
    checkValidity(checks, cert, p.cert, now);
  }
  const rootsOk = roots ? checkRoots(checks, roots, p.root, now) : false;
  let anchor: Cert | undefined;
  if (cert && chain) {
    if (!sameCert(chain[0]!, cert)) {
      checks.fail('ERR_CHAIN_INVALID', `${p.chain}: does not start with the certificate in ${p.cert}`, p.chain);
    } else if (roots && rootsOk) {
      anchor = checkChain(checks, chain, p.chain, roots, p.root, now, true);
    }
  }
  const trustDomain = cert ? checkTrustDomain(checks, cert, p.cert, anchor, opts.trustDomain) : undefined;

  const value: IssuingCa | undefined =
    cert && key && chain && roots && trustDomain
      ? {
          certPem: cert.pem,
          keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string,
          chainPem: joinPem(...chain.map((c) => c.pem)),
          rootBundlePem: joinPem(...roots.map((c) => c.pem)),
          trustDomain,
          cluster: clusterOf(cert),
          notBefore: cert.px.notBefore,
          notAfter: cert.px.notAfter,
        }
      : undefined;
  return analysis(dir, 'cacerts', checks, value, { [CA_FILES.cert]: cert ? [cert] : [], [CA_FILES.chain]: chain ?? [], [CA_FILES.root]: roots ?? [] }, key ? { [CA_FILES.key]: key } : {});
}

/** Checks a root directory (root-cert.pem, root-key.pem). */
export async function analyzeRootDir(dir: string, opts: LoadOptions = {}): Promise<DirAnalysis<RootCa>> {
  const gone = await missingDir<RootCa>(dir, 'root');
  if (gone) return gone;
  const now = opts.now ?? new Date();
  const checks = new Checks();
  const p = { cert: join(dir, ROOT_FILES.cert), key: join(dir, ROOT_FILES.key) };
  const certText = await readIn(checks, p.cert);
  const keyText = await readIn(checks, p.key);
  const cert = certText === undefined ? undefined : checks.try(() => parseCertPem(certText, p.cert), (c) => `${p.cert}: certificate "${subjectOf(c)}"`);
  const key = keyText === undefined ? undefined : checks.try(() => parsePrivateKeyPem(keyText, p.key), (k) => `${p.key}: ${describeKey(k)} private key`);
  if (key) await keyModeCheck(checks, p.key);
  if (cert && key) checkKeyMatch(checks, key, p.key, cert, p.cert);
  let trustDomain: string | undefined;
  if (cert) {
    if (checkIssuer(checks, cert, p.cert)) {
      if (isSelfSigned(cert)) checks.pass(`${p.cert}: self-signed`);
      else checks.fail('ERR_CHAIN_INVALID', `${p.cert}: not self-signed (a root signs its own certificate)`, p.cert);
    }
    checkValidity(checks, cert, p.cert, now);
    trustDomain = checkTrustDomain(checks, cert, p.cert, undefined, opts.trustDomain);
  }
  const value: RootCa | undefined =
    cert && key && trustDomain
      ? { certPem: cert.pem, keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string, trustDomain, notBefore: cert.px.notBefore, notAfter: cert.px.notAfter }
      : undefined;
  return analysis(dir, 'root', checks, value, { [ROOT_FILES.cert]: cert ? [cert] : [] }, key ? { [ROOT_FILES.key]: key } : {});
}

/** Checks a workload directory (key.pem, cert-chain.pem = leaf + intermediates, root-cert.pem). */
export async function analyzeWorkloadDir(dir: string, opts: LoadOptions = {}): Promise<DirAnalysis<WorkloadMaterial>> {
  const gone = await missingDir<WorkloadMaterial>(dir, 'workload');
  if (gone) return gone;
  const now = opts.now ?? new Date();
  const checks = new Checks();
  const p = { key: join(dir, WORKLOAD_FILES.key), chain: join(dir, WORKLOAD_FILES.chain), root: join(dir, WORKLOAD_FILES.root) };
  const keyText = await readIn(checks, p.key);
  const chainText = await readIn(checks, p.chain);
  const rootText = await readIn(checks, p.root);
  const key = keyText === undefined ? undefined : checks.try(() => parsePrivateKeyPem(keyText, p.key), (k) => `${p.key}: ${describeKey(k)} private key`);
  const chain = chainText === undefined ? undefined : checks.try(() => parseCertsPem(chainText, p.chain), (cs) => `${p.chain}: ${cs.length} certificate${cs.length === 1 ? '' : 's'} (leaf first)`);
  const roots = rootText === undefined ? undefined : checks.try(() => parseCertsPem(rootText, p.root), (cs) => `${p.root}: ${cs.length} certificate${cs.length === 1 ? '' : 's'}`);
  if (key) await keyModeCheck(checks, p.key);
  const leaf = chain?.[0];
  if (leaf && key) checkKeyMatch(checks, key, p.key, leaf, `the leaf in ${p.chain}`);
  let spiffeId: string | undefined;
  if (leaf) {
    if (basicConstraintsOf(leaf)?.ca) checks.fail('ERR_CHAIN_INVALID', `${p.chain}: the leaf is a CA certificate`, p.chain);
    spiffeId = checks.try(
      () => {
        const id = spiffeIdFromCert(leaf.node);
        if (!id) throw new IsleError('ERR_IDENTITY', `${p.chain}: the leaf has no SPIFFE ID (URI SAN spiffe://…)`, { file: p.chain });
        parseSpiffeId(id);
        return id;
      },
      (id) => `${p.chain}: identity ${id}`,
    );
    checkValidity(checks, leaf, `${p.chain} (leaf)`, now);
  }
  const rootsOk = roots ? checkRoots(checks, roots, p.root, now) : false;
  let trustDomain: string | undefined;
  if (chain && roots && rootsOk) {
    const anchor = checkChain(checks, chain, p.chain, roots, p.root, now, false);
    if (anchor && spiffeId) {
      trustDomain = parseSpiffeId(spiffeId).trustDomain;
      const anchorTd = trustDomainOf(anchor);
      if (anchorTd !== undefined && anchorTd !== trustDomain) {
        checks.fail('ERR_IDENTITY', `${p.chain}: identity ${spiffeId} is not in the trust domain of its root (${anchorTd})`, p.chain);
      }
    }
  }
  const value: WorkloadMaterial | undefined =
    key && chain && roots && leaf && spiffeId && trustDomain
      ? {
          keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string,
          chainPem: joinPem(...chain.map((c) => c.pem)),
          rootBundlePem: joinPem(...roots.map((c) => c.pem)),
          spiffeId,
          trustDomain,
          notBefore: leaf.px.notBefore,
          notAfter: leaf.px.notAfter,
        }
      : undefined;
  return analysis(dir, 'workload', checks, value, { [WORKLOAD_FILES.chain]: chain ?? [], [WORKLOAD_FILES.root]: roots ?? [] }, key ? { [WORKLOAD_FILES.key]: key } : {});
}

/** Which layout a directory holds, judged by file names; undefined when none fits. */
export async function detectLayout(dir: string): Promise<Layout | undefined> {
  const names = new Set(await readdir(dir));
  if (names.has(CA_FILES.cert) || names.has(CA_FILES.key)) return 'cacerts';
  if (names.has(ROOT_FILES.key)) return 'root';
  if (names.has(WORKLOAD_FILES.key)) return 'workload';
  if (names.has(CA_FILES.chain)) return 'cacerts';
  if (names.has(ROOT_FILES.cert)) return 'root';
  return undefined;
}

function orThrow<T>(a: DirAnalysis<T>): T {
  if (a.error) throw a.error;
  return a.value!;
}

/** Loads and validates a `cacerts` directory; throws the first problem as a one-line IsleError naming the file. */
export async function loadCaDir(dir: string, opts: LoadOptions = {}): Promise<IssuingCa> {
  return orThrow(await analyzeCaDir(dir, opts));
}

export async function loadRootDir(dir: string, opts: LoadOptions = {}): Promise<RootCa> {
  return orThrow(await analyzeRootDir(dir, opts));
}

export async function loadWorkloadDir(dir: string, opts: LoadOptions = {}): Promise<WorkloadMaterial> {
  return orThrow(await analyzeWorkloadDir(dir, opts));
}
