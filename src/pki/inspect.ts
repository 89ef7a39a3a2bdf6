import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { IsleError } from '../errors.js';
import {
  basicConstraintsOf,
  certFromDer,
  extKeyUsageNames,
  isSelfSigned,
  keyUsageNames,
  keyUsageOf,
  subjectAltNames,
  subjectOf,
  trustDomainOf,
  type Cert,
} from './certs.js';
import { analyzeCaDir, analyzeRootDir, analyzeWorkloadDir, detectLayout, type Check, type DirAnalysis, type Layout } from './dirs.js';
import { describeKey, parsePrivateKeyPem } from './keys.js';
import { parseCsr } from './csr.js';
import { decodePem, encodePem, errorText } from './pem.js';
import { spiffeIdFromCert } from './spiffe.js';

export interface CertificateInfo {
  kind: 'certificate';
  subject: string;
  issuer: string;
  selfSigned: boolean;
  sans: string[];
  spiffeId?: string | undefined;
  trustDomain?: string | undefined;
  serial: string;
  notBefore: string;
  notAfter: string;
  expired: boolean;
  notYetValid: boolean;
  keyType: string;
  ca: boolean;
  pathLen?: number | undefined;
  keyUsage: string[];
  extKeyUsage: string[];
  sha256: string;
}

export interface PrivateKeyInfo {
  kind: 'private-key';
  keyType: string;
  /** SHA-256 of the public key (SPKI), to match it with a certificate by eye. */
  publicKeySha256: string;
}

export interface CsrInfo {
  kind: 'csr';
  subject: string;
  sans: string[];
  keyType: string;
  signatureValid: boolean;
}

export interface OtherInfo {
  kind: 'other';
  label: string;
}

export type PemItemInfo = CertificateInfo | PrivateKeyInfo | CsrInfo | OtherInfo;

export interface FileReport {
  kind: 'file';
  path: string;
  items: PemItemInfo[];
}

export interface DirReport {
  kind: 'directory';
  path: string;
  layout: Layout;
  files: Array<{ name: string; items: PemItemInfo[] }>;
  checks: Check[];
  consistent: boolean;
  verdict: string;
  error?: { code: string; message: string; file?: string | undefined } | undefined;
}

export type InspectReport = FileReport | DirReport;

/** SHA-256 of a key's SPKI, in the colon-hex form of certificate fingerprints, to match keys by eye. */
function spkiSha256(key: KeyObject): string {
  const der = createPublicKey(key).export({ type: 'spki', format: 'der' });
  return (createHash('sha256').update(der).digest('hex').toUpperCase().match(/.{2}/g) ?? []).join(':');
}

export function describeCert(c: Cert, now: Date = new Date()): CertificateInfo {
  const bc = basicConstraintsOf(c);
  let spiffeId: string | undefined;
  try {
    spiffeId = spiffeIdFromCert(c.node);
  } catch {
    spiffeId = undefined;
  }
  return {
    kind: 'certificate',
    subject: subjectOf(c),
    issuer: c.px.issuer,
    selfSigned: isSelfSigned(c),
    sans: subjectAltNames(c),
    spiffeId,
    trustDomain: bc?.ca ? trustDomainOf(c) : undefined,
    serial: c.px.serialNumber.toUpperCase(),
    notBefore: c.px.notBefore.toISOString(),
    notAfter: c.px.notAfter.toISOString(),
    expired: now > c.px.notAfter,
    notYetValid: now < c.px.notBefore,
    keyType: describeKey(c.node.publicKey),
    ca: bc?.ca ?? false,
    pathLen: bc?.ca ? bc.pathLen : undefined,
    keyUsage: keyUsageNames(keyUsageOf(c)),
    extKeyUsage: extKeyUsageNames(c),
    sha256: c.node.fingerprint256,
  };
}

async function describePem(text: string, where: string, now: Date): Promise<PemItemInfo[]> {
  const items: PemItemInfo[] = [];
  for (const block of decodePem(text, where)) {
    switch (block.label) {
      case 'CERTIFICATE':
        items.push(describeCert(certFromDer(block.der, where), now));
        break;
      case 'PRIVATE KEY':
      case 'EC PRIVATE KEY':
      case 'RSA PRIVATE KEY': {
        const key = parsePrivateKeyPem(encodePem(block.label, block.der), where);
        items.push({ kind: 'private-key', keyType: describeKey(key), publicKeySha256: spkiSha256(key) });
        break;
      }
      case 'CERTIFICATE REQUEST':
      case 'NEW CERTIFICATE REQUEST': {
        let parsed;
        let signatureValid = true;
        try {
          parsed = await parseCsr(encodePem(block.label, block.der));
        } catch (e) {
          if (e instanceof IsleError && /signature/.test(e.message)) signatureValid = false;
          else throw new IsleError('ERR_PEM_INVALID', `${where}: ${errorText(e)}`, { file: where, cause: e });
        }
        items.push({
          kind: 'csr',
          subject: parsed?.csr.subject || '(empty subject)',
          sans: parsed?.requestedSans ?? [],
          keyType: parsed ? describeKey(parsed.publicKey) : 'unknown',
          signatureValid,
        });
        break;
      }
      default:
        items.push({ kind: 'other', label: block.label });
    }
  }
  return items;
}

const VERDICT: Record<Layout, string> = { root: 'consistent root CA', cacerts: 'consistent CA', workload: 'consistent workload identity' };

function dirReport<T>(a: DirAnalysis<T>, now: Date, extra: (v: T) => string): DirReport {
  const files = [
    ...Object.entries(a.certs).filter(([, cs]) => cs.length > 0).map(([name, cs]) => ({ name, items: cs.map((c) => describeCert(c, now)) as PemItemInfo[] })),
    ...Object.entries(a.keys).map(([name, k]) => ({ name, items: [{ kind: 'private-key', keyType: describeKey(k), publicKeySha256: spkiSha256(k) }] as PemItemInfo[] })),
  ];
  const consistent = a.error === undefined;
  return {
    kind: 'directory',
    path: a.dir,
    layout: a.layout,
    files,
    checks: a.checks,
    consistent,
    verdict: consistent ? `${VERDICT[a.layout]} (${extra(a.value as T)})` : `NOT a ${VERDICT[a.layout]}`,
    error: a.error ? { code: a.error.code, message: a.error.message, file: a.error.file } : undefined,
  };
}

/**
 * Describes a PEM file, or checks a directory holding one of Isle's layouts (root, cacerts,
 * workload). Unreadable input throws; an inconsistent directory is a report with `consistent:
 * false` and the first problem in `error`.
 */
export async function inspectPath(path: string, opts: { now?: Date; trustDomain?: string } = {}): Promise<InspectReport> {
  const now = opts.now ?? new Date();
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch {
    throw new IsleError('ERR_FILE_MISSING', `${path}: no such file or directory`, { file: path });
  }
  if (!isDir) {
    const text = await readFile(path, 'utf8');
    return { kind: 'file', path, items: await describePem(text, path, now) };
  }
  const layout = await detectLayout(path);
  switch (layout) {
    case 'cacerts':
      return dirReport(await analyzeCaDir(path, { now, trustDomain: opts.trustDomain }), now, (ca) => `trust domain ${ca.trustDomain}${ca.cluster ? `, cluster ${ca.cluster}` : ''}`);
    case 'root':
      return dirReport(await analyzeRootDir(path, { now, trustDomain: opts.trustDomain }), now, (r) => `trust domain ${r.trustDomain}`);
    case 'workload':
      return dirReport(await analyzeWorkloadDir(path, { now, trustDomain: opts.trustDomain }), now, (w) => w.spiffeId);
    default:
      throw new IsleError('ERR_FILE_MISSING', `${path}: no Isle CA files here (expected root-cert.pem + root-key.pem, Istio cacerts, or key.pem + cert-chain.pem + root-cert.pem)`, { file: path });
  }
}

function certLines(c: CertificateInfo): string[] {
  const state = c.expired ? 'EXPIRED' : c.notYetValid ? 'NOT YET VALID' : 'valid';
  return [
    `  subject:       ${c.subject}`,
    `  issuer:        ${c.issuer}${c.selfSigned ? ' (self-signed)' : ''}`,
    `  SANs:          ${c.sans.join(', ') || '-'}`,
    `  serial:        ${c.serial}`,
    `  validity:      ${c.notBefore} → ${c.notAfter} (${state})`,
    `  key:           ${c.keyType}`,
    `  CA:            ${c.ca ? `yes, ${c.pathLen === undefined ? 'no pathLen limit' : `pathLen ${c.pathLen}`}` : 'no'}`,
    `  key usage:     ${c.keyUsage.join(', ') || '-'}`,
    `  ext key usage: ${c.extKeyUsage.join(', ') || '-'}`,
    `  SHA-256:       ${c.sha256}`,
  ];
}

function itemLines(item: PemItemInfo, index: number): string[] {
  switch (item.kind) {
    case 'certificate':
      return [`certificate #${index + 1}`, ...certLines(item)];
    case 'private-key':
      return [`private key #${index + 1}`, `  key:           ${item.keyType}`, `  public SHA-256: ${item.publicKeySha256}`];
    case 'csr':
      return [
        `certificate request #${index + 1}`,
        `  subject:       ${item.subject}`,
        `  requested SANs: ${item.sans.join(', ') || '-'}`,
        `  key:           ${item.keyType}`,
        `  signature:     ${item.signatureValid ? 'valid' : 'INVALID'}`,
      ];
    case 'other':
      return [`${item.label} #${index + 1} (not inspected)`];
  }
}

const MARK: Record<Check['level'], string> = { ok: '✓', fail: '✗', warn: '!' };

/** The human-readable form printed by `isle ca inspect`. */
export function formatInspectReport(r: InspectReport): string {
  const lines: string[] = [];
  if (r.kind === 'file') {
    lines.push(`${r.path}:`);
    r.items.forEach((item, i) => lines.push(...itemLines(item, i)));
  } else {
    lines.push(`${r.path}: ${r.layout} layout`);
    for (const f of r.files) {
      for (const item of f.items) {
        const summary = item.kind === 'certificate' ? `${item.subject}, until ${item.notAfter}${item.ca ? '' : item.spiffeId ? `, ${item.spiffeId}` : ''}` : item.kind === 'private-key' ? item.keyType : item.kind;
        lines.push(`  ${f.name.padEnd(15)} ${summary}`);
      }
    }
    lines.push('checks:');
    for (const c of r.checks) lines.push(`  ${MARK[c.level]} ${c.text}`);
    lines.push(`verdict: ${r.verdict}`);
  }
  return `${lines.join('\n')}\n`;
}
