import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoRoot, seedsDir } from '../helpers/paths.js';
import { listConfigFiles, loadConfigPaths } from '../../src/config/load.js';
import { parseConfigText } from '../../src/config/parse.js';
import { analyze } from '../../src/config/analyze.js';
import { formatConfigError } from '../../src/config/types.js';

/** Fixtures stay in the source tree; tests run from the repository root, wherever they compiled to. */
function fixturesDir(...parts: string[]): string {
  return join(repoRoot(), 'test', 'config', 'fixtures', ...parts);
}

function seedText(prefix: string): string {
  const name = readdirSync(seedsDir()).find((f) => f.startsWith(`${prefix}_`) && f.endsWith('.txt'));
  assert.ok(name, `seed ${prefix} not found in ${seedsDir()}`);
  return readFileSync(join(seedsDir(), name), 'utf8');
}

const SEEDS = ['000', '001', '002', '003'];

describe('seed fixtures', () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}: every file parses and validates with no errors`, async () => {
      const files = await listConfigFiles(fixturesDir('seeds', seed));
      assert.ok(files.length > 0);
      for (const f of files) {
        const r = parseConfigText(f, readFileSync(f, 'utf8'));
        assert.deepEqual(r.errors.filter((e) => e.severity === 'error').map(formatConfigError), [], f);
      }
    });

    // The fixtures must stay what the seed says: every meaningful line occurs in the seed text
    // (seed 000 prints its YAML on one line, so lines are matched as substrings). Lines changed on
    // purpose say so with a `# fixture:` comment; the file saying NOT from the seed is skipped.
    it(`seed ${seed}: fixture lines really occur in the seed`, async () => {
      const seedFlat = seedText(seed).replace(/\t/g, ' ');
      for (const f of await listConfigFiles(fixturesDir('seeds', seed))) {
        const text = readFileSync(f, 'utf8');
        if (text.includes('NOT from the seed')) continue;
        const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#') && !l.includes('# fixture:'));
        assert.ok(lines.length > 3, f);
        for (const l of lines) assert.ok(seedFlat.includes(l), `${relative(fixturesDir(), f)}: ${JSON.stringify(l)} is not in seed ${seed}`);
      }
    });
  }

  it('seed 000: Kubernetes kinds are read, the Deployment is skipped with a warning', async () => {
    const r = await loadConfigPaths([fixturesDir('seeds', '000')]);
    assert.deepEqual(r.resources.map((x) => `${x.kind} ${x.metadata.namespace}/${x.metadata.name}`), ['ServiceAccount default/sleep', 'Service default/sleep']);
    assert.deepEqual(r.errors.map((e) => e.message), ['kind Deployment (apps/v1) is not used by Isle; ignored']);
  });

  it('seed 002: locality settings keep their values', () => {
    const f = fixturesDir('seeds', '002', 'destination-rule-distribute.yaml');
    const r = parseConfigText(f, readFileSync(f, 'utf8'));
    const spec = r.resources[0]!.spec as { host: string; trafficPolicy: { loadBalancer: { localityLbSetting: { distribute: { from: string; to: Record<string, number> }[] } } } };
    assert.equal(r.resources[0]!.metadata.name, 'global');
    assert.equal(spec.host, '*.cluster.local');
    assert.deepEqual(spec.trafficPolicy.loadBalancer.localityLbSetting.distribute, [{ from: 'region1/*', to: { 'region1/*': 70, 'region2/*': 20, 'region3/*': 10 } }]);
  });

  it('seed 003: cluster-1 config analyzes clean (subsets, .global hosts, 70/30 split)', async () => {
    const r = await loadConfigPaths([fixturesDir('seeds', '003', 'cluster-1')]);
    assert.deepEqual(r.errors.filter((e) => e.severity === 'error'), []);
    assert.deepEqual(analyze(r.resources).map(formatConfigError), []);
    assert.equal(r.resources.filter((x) => x.kind === 'ServiceEntry').length, 2);
  });

  it('seed 002: the original tab-indented distribute block gets one clear error at the tab line', () => {
    const lines = seedText('002').split('\n');
    const tabLine = lines.findIndex((l) => l.startsWith('\t\tdistribute:'));
    assert.ok(tabLine > 0, 'the seed still has its tab-indented line');
    let start = tabLine;
    while (!lines[start - 1]!.includes('<<EOF')) start--;
    let end = tabLine;
    while (lines[end] !== 'EOF') end++;
    const block = lines.slice(start, end).join('\n');

    const expectedLine = tabLine - start + 1;
    assert.equal(expectedLine, 12);
    assert.deepEqual(parseConfigText('distribute.yaml', block).errors.map(formatConfigError), [
      'distribute.yaml:12: tab character used for indentation (YAML allows spaces only)',
    ]);

    // Padded so that lines are the seed's own: the error points at the seed's line.
    const padded = '\n'.repeat(start) + block;
    assert.deepEqual(parseConfigText('seed-002.txt', padded).errors.map(formatConfigError), [
      `seed-002.txt:${tabLine + 1}: tab character used for indentation (YAML allows spaces only)`,
    ]);
  });
});
