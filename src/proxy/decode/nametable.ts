/**
 * NameTable (Istio's NDS, ADR 0075) → NameTableModel, the hosts the DNS proxy answers for.
 * Everything is checked before anything is used: a host that is not a DNS name, an address that
 * is not an IP, or a Kubernetes entry without its short name and namespace rejects the whole
 * table (NACK naming each problem) and the proxy keeps answering from its last good one.
 */
import { isIP } from 'node:net';
import { isDnsLabel, isDnsName } from '../../config/hosts.js';
import type { DecodeResult } from '../model.js';
import { describe, isObj } from './util.js';

export interface NameEntryModel {
  /** IPv4 and IPv6 addresses, as sent. */
  readonly ips: readonly string[];
  readonly registry: string;
  /** Kubernetes Services only: what `name`, `name.ns` and `name.ns.svc` are derived from. */
  readonly shortname?: string;
  readonly namespace?: string;
}

/** FQDN (lower case, no trailing dot) → entry. */
export type NameTableModel = ReadonlyMap<string, NameEntryModel>;

/** More than any mesh sends; a bigger table is refused rather than held. */
export const MAX_NAME_TABLE_ENTRIES = 200_000;
export { isDnsName };

export function decodeNameTable(obj: unknown): DecodeResult<NameTableModel> {
  if (!isObj(obj)) return { errors: [`NameTable: expected an object, got ${describe(obj)}`] };
  const errors: string[] = [];
  const table = obj['table'] ?? {};
  if (!isObj(table)) return { errors: [`NameTable.table: expected a map, got ${describe(table)}`] };
  const hosts = Object.keys(table);
  if (hosts.length > MAX_NAME_TABLE_ENTRIES) return { errors: [`NameTable.table: ${hosts.length} entries (at most ${MAX_NAME_TABLE_ENTRIES})`] };
  const out = new Map<string, NameEntryModel>();
  for (const host of hosts) {
    const at = `NameTable.table[${JSON.stringify(host)}]`;
    const info: unknown = table[host];
    if (!isDnsName(host)) errors.push(`${at}: not a lower-case DNS name (labels of letters, digits, '-', '_'; no trailing dot)`);
    if (!isObj(info)) {
      errors.push(`${at}: expected an object, got ${describe(info)}`);
      continue;
    }
    const ips = info['ips'] ?? [];
    if (!Array.isArray(ips) || ips.length === 0) {
      errors.push(`${at}.ips: a host needs at least one address`);
      continue;
    }
    ips.forEach((ip: unknown, i) => {
      if (typeof ip !== 'string' || isIP(ip) === 0) errors.push(`${at}.ips[${i}]: ${describe(ip)} is not an IP address`);
    });
    const str = (k: string): string => (typeof info[k] === 'string' ? (info[k] as string) : '');
    const registry = str('registry');
    const shortname = str('shortname');
    const namespace = str('namespace');
    if (registry === 'Kubernetes') {
      if (!isDnsLabel(shortname)) errors.push(`${at}.shortname: ${JSON.stringify(shortname)} is not a DNS label`);
      if (!isDnsLabel(namespace)) errors.push(`${at}.namespace: ${JSON.stringify(namespace)} is not a DNS label`);
      if (isDnsLabel(shortname) && isDnsLabel(namespace) && !host.startsWith(`${shortname}.${namespace}.svc.`)) {
        errors.push(`${at}: a Kubernetes entry must be named <shortname>.<namespace>.svc.<domain>`);
      }
    }
    out.set(host, {
      ips: ips as string[],
      registry,
      ...(registry === 'Kubernetes' ? { shortname, namespace } : {}),
    });
  }
  return errors.length > 0 ? { errors } : { ok: out };
}
