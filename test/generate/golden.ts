/**
 * Golden files: pretty JSON with sorted keys, one file per case, under
 * test/generate/golden/ in the SOURCE tree (tests run with cwd = repo root, wherever they
 * were compiled to). `UPDATE_GOLDEN=1` rewrites them.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { decodeResource, toAny } from '../../src/xds/codec.js';
import { repoRoot } from '../helpers/paths.js';

export function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(o).sort().map((k) => [k, sortKeys(o[k])]));
  }
  return v;
}

export function canonical(v: unknown): string {
  return JSON.stringify(sortKeys(v), null, 2) + '\n';
}

export function goldenPath(name: string): string {
  return join(repoRoot(), 'test', 'generate', 'golden', `${name}.json`);
}

/** Each resource must encode as `typeUrl` and decode back to the very same object. */
export function assertRoundTrip(typeUrl: string, resources: readonly Record<string, unknown>[]): void {
  for (const r of resources) {
    const back = decodeResource(toAny(typeUrl, r));
    assert.deepEqual(sortKeys(back), sortKeys(JSON.parse(JSON.stringify(r))), `round trip of ${String(r['name'] ?? r['cluster_name'])}`);
  }
}

/** Compares `resources` with the golden `name`, after checking they round-trip through the protos. */
export function assertGolden(name: string, typeUrl: string, resources: readonly Record<string, unknown>[]): void {
  assertRoundTrip(typeUrl, resources);
  const file = goldenPath(name);
  const text = canonical({ type_url: typeUrl, resources });
  if (process.env['UPDATE_GOLDEN'] === '1') {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    return;
  }
  if (!existsSync(file)) assert.fail(`golden file ${file} is missing: run the tests with UPDATE_GOLDEN=1 to create it, then review it`);
  assert.equal(text, readFileSync(file, 'utf8'), `${name} differs from ${file} (UPDATE_GOLDEN=1 rewrites it; review the diff)`);
}
