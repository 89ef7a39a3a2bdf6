import { IsleError } from '../errors.js';

export interface PemBlock {
  /** The word(s) after BEGIN, e.g. `CERTIFICATE`, `PRIVATE KEY`. */
  label: string;
  der: Buffer;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Error messages are one line: whatever a parser said gets its newlines folded away. */
export function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

export function errorText(e: unknown): string {
  return oneLine(e instanceof Error ? e.message : String(e));
}

/**
 * Splits PEM text into blocks. Strict on purpose: a truncated or hand-edited file must be
 * reported here, naming the file, rather than surface later as a TLS failure.
 */
export function decodePem(text: string, where = 'PEM input'): PemBlock[] {
  const blocks: PemBlock[] = [];
  let consumed = 0;
  for (const m of text.matchAll(BLOCK)) {
    const [whole, label, body, endLabel] = m as unknown as [string, string, string, string];
    if (label !== endLabel) {
      throw new IsleError('ERR_PEM_INVALID', `${where}: PEM block BEGIN ${label} ends with END ${endLabel}`, { file: where });
    }
    // RFC 1421 headers (legacy encrypted keys) precede a blank line; they are not base64.
    const lines = body.split(/\r?\n/).filter((l) => l.trim() !== '' && !l.includes(':'));
    const b64 = lines.join('').replace(/\s+/g, '');
    if (b64 === '' || b64.length % 4 !== 0 || !BASE64.test(b64)) {
      throw new IsleError('ERR_PEM_INVALID', `${where}: corrupt PEM block (${label}): body is not valid base64`, { file: where });
    }
    blocks.push({ label, der: Buffer.from(b64, 'base64') });
    consumed = (m.index ?? 0) + whole.length;
  }
  const rest = text.slice(consumed);
  if (rest.includes('-----BEGIN ')) {
    throw new IsleError('ERR_PEM_INVALID', `${where}: corrupt PEM (a BEGIN line without a matching END line)`, { file: where });
  }
  if (blocks.length === 0) {
    throw new IsleError('ERR_PEM_INVALID', `${where}: no PEM data found`, { file: where });
  }
  return blocks;
}

export function encodePem(label: string, der: Uint8Array | ArrayBuffer): string {
  const b64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Joins PEM documents so each starts on its own line (files are concatenations of PEMs). */
export function joinPem(...pems: string[]): string {
  return pems.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join('');
}
