/**
 * The rate limit service's configuration, in envoyproxy/ratelimit's format:
 *
 *     domain: productpage-ratelimit
 *     descriptors:
 *       - key: PATH
 *         value: /productpage
 *         rate_limit: { unit: minute, requests_per_unit: 1 }
 *       - key: PATH                       # any other value: its own counter per value
 *         rate_limit: { unit: minute, requests_per_unit: 100 }
 *       - key: remote_address
 *         descriptors:                    # nested: a descriptor with two entries
 *           - key: PATH
 *             rate_limit: { unit: second, requests_per_unit: 10 }
 *
 * Matching is envoyproxy/ratelimit's: entry by entry, a node with the same key and value wins over
 * one with the key and no value; the limit is the last matched node's `rate_limit`. Unknown fields
 * are errors (a mistyped `requests_per_unit` would silently mean "no limit").
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { IsleError } from '../errors.js';
import type { RlsEntry } from '../xds/rls.js';

export type LimitUnit = 'SECOND' | 'MINUTE' | 'HOUR' | 'DAY';

export const UNIT_SECONDS: Readonly<Record<LimitUnit, number>> = { SECOND: 1, MINUTE: 60, HOUR: 3600, DAY: 86_400 };

export interface RateLimit {
  readonly unit: LimitUnit;
  readonly requestsPerUnit: number;
  readonly name?: string;
  /** `unlimited: true`: matched, never limited, never counted. */
  readonly unlimited: boolean;
}

export interface DescriptorNode {
  readonly key: string;
  readonly value?: string;
  readonly rateLimit?: RateLimit;
  /** Counted and reported, never enforced (envoyproxy/ratelimit's shadow_mode). */
  readonly shadowMode: boolean;
  readonly descriptors: readonly DescriptorNode[];
}

export interface DomainConfig {
  readonly domain: string;
  readonly descriptors: readonly DescriptorNode[];
}

/** domain → config. */
export type RateLimitConfig = ReadonlyMap<string, DomainConfig>;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class Problems {
  readonly list: string[] = [];
  constructor(readonly where: string) {}
  add(path: string, msg: string): void {
    this.list.push(`${this.where}: ${path}: ${msg}`);
  }
}

function known(p: Problems, o: Obj, path: string, fields: readonly string[]): void {
  for (const k of Object.keys(o)) if (!fields.includes(k)) p.add(`${path}${path ? '.' : ''}${k}`, `unknown field (known: ${fields.join(', ')})`);
}

function rateLimit(p: Problems, v: unknown, path: string): RateLimit | undefined {
  if (!isObj(v)) return void p.add(path, 'expected a mapping');
  known(p, v, path, ['unit', 'requests_per_unit', 'name', 'unlimited']);
  const unlimited = v['unlimited'] === true;
  if (v['unlimited'] !== undefined && typeof v['unlimited'] !== 'boolean') p.add(`${path}.unlimited`, 'expected true or false');
  const u = typeof v['unit'] === 'string' ? v['unit'].toUpperCase() : '';
  if (!unlimited && !(u in UNIT_SECONDS)) p.add(`${path}.unit`, `must be one of second, minute, hour, day (got ${JSON.stringify(v['unit'])})`);
  const n = v['requests_per_unit'];
  if (!unlimited && !(typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 4_294_967_295)) {
    p.add(`${path}.requests_per_unit`, `expected an integer >= 0 (got ${JSON.stringify(n)})`);
  }
  const name = v['name'];
  if (name !== undefined && typeof name !== 'string') p.add(`${path}.name`, 'expected a string');
  return {
    unit: (u in UNIT_SECONDS ? u : 'SECOND') as LimitUnit,
    requestsPerUnit: typeof n === 'number' ? n : 0,
    unlimited,
    ...(typeof name === 'string' ? { name } : {}),
  };
}

function descriptors(p: Problems, v: unknown, path: string): DescriptorNode[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return p.add(path, 'expected a list'), [];
  const seen = new Set<string>();
  return v.map((d, i) => {
    const at = `${path}[${i}]`;
    if (!isObj(d)) {
      p.add(at, 'expected a mapping');
      return { key: '', shadowMode: false, descriptors: [] };
    }
    known(p, d, at, ['key', 'value', 'rate_limit', 'descriptors', 'shadow_mode', 'detailed_metric']);
    const key = d['key'];
    if (typeof key !== 'string' || key === '') p.add(`${at}.key`, 'must be a non-empty string');
    const value = d['value'];
    if (value !== undefined && typeof value !== 'string') p.add(`${at}.value`, 'expected a string (quote numbers)');
    const id = `${String(key)}\0${value === undefined ? '' : String(value)}`;
    if (seen.has(id)) p.add(at, `duplicate descriptor key ${JSON.stringify(key)}${value === undefined ? '' : ` value ${JSON.stringify(value)}`}`);
    seen.add(id);
    const shadow = d['shadow_mode'];
    if (shadow !== undefined && typeof shadow !== 'boolean') p.add(`${at}.shadow_mode`, 'expected true or false');
    return {
      key: typeof key === 'string' ? key : '',
      ...(typeof value === 'string' ? { value } : {}),
      ...(d['rate_limit'] !== undefined ? { rateLimit: rateLimit(p, d['rate_limit'], `${at}.rate_limit`) } : {}),
      shadowMode: shadow === true,
      descriptors: descriptors(p, d['descriptors'], `${at}.descriptors`),
    };
  });
}

/** One domain's config from a parsed YAML document; throws IsleError listing every problem. */
export function parseDomainConfig(doc: unknown, where: string): DomainConfig {
  const p = new Problems(where);
  if (!isObj(doc)) throw new IsleError('ERR_CONFIG_INVALID', `${where}: expected a mapping with domain and descriptors`);
  known(p, doc, '', ['domain', 'descriptors']);
  const domain = doc['domain'];
  if (typeof domain !== 'string' || domain === '') p.add('domain', 'must be a non-empty string');
  const ds = descriptors(p, doc['descriptors'], 'descriptors');
  if (p.list.length) throw new IsleError('ERR_CONFIG_INVALID', p.list.join('\n'));
  return { domain: domain as string, descriptors: ds };
}

/** Every domain of every file (YAML, several documents allowed); a domain defined twice is an error. */
export function loadRateLimitConfig(files: readonly string[], read: (f: string) => string = (f) => readFileSync(f, 'utf8')): RateLimitConfig {
  const out = new Map<string, DomainConfig>();
  for (const file of files) {
    let text: string;
    try {
      text = read(file);
    } catch (e) {
      throw new IsleError('ERR_FILE_MISSING', `${file}: ${(e as Error).message}`, { file });
    }
    parseAllDocuments(text).forEach((doc, i) => {
      const where = `${file}${i > 0 ? ` (document ${i + 1})` : ''}`;
      if (doc.errors.length) throw new IsleError('ERR_CONFIG_INVALID', `${where}: ${doc.errors[0]!.message}`, { file });
      const js: unknown = doc.toJS();
      if (js === null || js === undefined) return;
      const d = parseDomainConfig(js, where);
      if (out.has(d.domain)) throw new IsleError('ERR_CONFIG_INVALID', `${where}: domain ${JSON.stringify(d.domain)} is defined twice`, { file });
      out.set(d.domain, d);
    });
  }
  if (out.size === 0) throw new IsleError('ERR_CONFIG_INVALID', `no rate limit domain in ${files.join(', ')}`);
  return out;
}

export interface MatchedLimit {
  readonly limit: RateLimit;
  readonly shadowMode: boolean;
  /** `domain_k1_v1_k2_v2` (envoyproxy/ratelimit's cache key, before the window). */
  readonly key: string;
}

/** The limit for one request descriptor, or undefined when the config has none for it. */
export function matchDescriptor(cfg: DomainConfig, entries: readonly RlsEntry[]): MatchedLimit | undefined {
  let level: readonly DescriptorNode[] = cfg.descriptors;
  let node: DescriptorNode | undefined;
  let key = cfg.domain;
  for (const e of entries) {
    node = level.find((d) => d.key === e.key && d.value === e.value) ?? level.find((d) => d.key === e.key && d.value === undefined);
    if (!node) return undefined;
    key += `_${e.key}_${e.value}`;
    level = node.descriptors;
  }
  if (!node?.rateLimit) return undefined;
  return { limit: node.rateLimit, shadowMode: node.shadowMode, key };
}

