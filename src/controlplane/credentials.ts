/**
 * Gateway TLS credentials in universal mode (ADR 0060): Istio reads a Gateway server's
 * `credentialName` from a Kubernetes Secret in the gateway's namespace; Isle reads the same keys
 * from files, `<config dir>/credentials/<namespace>/<name>/`:
 *
 *   tls.crt   certificate chain (PEM)          (Istio's generic-secret names cert, key, cacert
 *   tls.key   private key (PEM)                 are accepted too)
 *   ca.crt    client CAs, for tls.mode MUTUAL (optional)
 *
 * The directory is scanned at start and every `intervalMs`; a change (mtime or size) re-reads it
 * and calls `onChange` so the control plane pushes. A credential that cannot be read or is not PEM
 * keeps its last good value and is reported by `problems()`. Key material is never logged.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { GatewayCredential } from '../model/pushcontext.js';
import type { Timers } from '../mesh/timers.js';

const NAMES = { cert: ['tls.crt', 'cert'], key: ['tls.key', 'key'], ca: ['ca.crt', 'cacert'] } as const;

export interface CredentialStoreOptions {
  /** `<config dir>/credentials`. */
  dir: string;
  timers: Timers;
  intervalMs?: number;
  onChange?: () => void;
}

function listDirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  } catch {
    return [];
  }
}

function firstFile(dir: string, names: readonly string[]): string | undefined {
  for (const n of names) {
    try {
      if (statSync(join(dir, n)).isFile()) return join(dir, n);
    } catch {
      // next name
    }
  }
  return undefined;
}

export class CredentialStore {
  private current = new Map<string, GatewayCredential>();
  private readonly errors = new Map<string, string>();
  private fingerprint = '';
  private handle: unknown;
  private stopped = false;

  constructor(private readonly o: CredentialStoreOptions) {
    this.scan();
  }

  /** `<namespace>/<name>` → credential (the last good one of each). */
  get(): ReadonlyMap<string, GatewayCredential> {
    return this.current;
  }

  /** Credentials that could not be loaded: `<namespace>/<name>` → why (file named, no key material). */
  problems(): ReadonlyMap<string, string> {
    return this.errors;
  }

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      if (this.scan()) this.o.onChange?.();
      this.handle = this.o.timers.setTimeout(tick, this.o.intervalMs ?? 2000);
    };
    this.handle = this.o.timers.setTimeout(tick, this.o.intervalMs ?? 2000);
  }

  stop(): void {
    this.stopped = true;
    if (this.handle !== undefined) this.o.timers.clearTimeout(this.handle);
  }

  /** Re-reads when anything moved; true when the set of credentials changed. */
  scan(): boolean {
    const entries: [string, string][] = [];
    for (const ns of listDirs(this.o.dir)) for (const name of listDirs(join(this.o.dir, ns))) entries.push([`${ns}/${name}`, join(this.o.dir, ns, name)]);
    const fp = entries
      .map(([k, d]) => {
        const stats = [...NAMES.cert, ...NAMES.key, ...NAMES.ca].map((n) => {
          try {
            const st = statSync(join(d, n));
            return `${n}:${st.mtimeMs}:${st.size}`;
          } catch {
            return '';
          }
        });
        return `${k}|${stats.join(',')}`;
      })
      .join('\n');
    if (fp === this.fingerprint) return false;
    this.fingerprint = fp;
    const next = new Map<string, GatewayCredential>();
    this.errors.clear();
    for (const [key, d] of entries) {
      try {
        next.set(key, readCredential(d));
      } catch (e) {
        this.errors.set(key, e instanceof Error ? e.message : String(e));
        const last = this.current.get(key);
        if (last) next.set(key, last);
      }
    }
    this.current = next;
    return true;
  }
}

/** One credential directory; throws a one-line error naming the file. */
export function readCredential(dir: string): GatewayCredential {
  const certFile = firstFile(dir, NAMES.cert);
  const keyFile = firstFile(dir, NAMES.key);
  if (!certFile) throw new Error(`${dir}: no tls.crt (or cert)`);
  if (!keyFile) throw new Error(`${dir}: no tls.key (or key)`);
  const certChainPem = readFileSync(certFile, 'utf8');
  const keyPem = readFileSync(keyFile, 'utf8');
  if (!/-----BEGIN CERTIFICATE-----/.test(certChainPem)) throw new Error(`${certFile}: not a PEM certificate`);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyPem)) throw new Error(`${keyFile}: not a PEM private key`);
  const caFile = firstFile(dir, NAMES.ca);
  const caPem = caFile ? readFileSync(caFile, 'utf8') : undefined;
  if (caFile && !/-----BEGIN CERTIFICATE-----/.test(caPem!)) throw new Error(`${caFile}: not a PEM certificate`);
  return { certChainPem, keyPem, ...(caPem ? { caPem } : {}) };
}
