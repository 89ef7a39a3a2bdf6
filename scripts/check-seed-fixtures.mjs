#!/usr/bin/env node
// CI check: the seed texts copied into test/fixtures/seeds/ must still be byte-identical to
// ../shared/seeds/ when that folder exists (a clone without it skips the check, and the tests
// never need it). Exit 1 with the drifted file names otherwise.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const shared = resolve(root, '..', 'shared', 'seeds');
const fixtures = join(root, 'test', 'fixtures', 'seeds');

if (!existsSync(shared)) {
  console.log(`seed fixtures: ${shared} not present; nothing to compare`);
  process.exit(0);
}

const seeds = readdirSync(shared).filter((f) => f.endsWith('.txt')).sort();
const copies = readdirSync(fixtures).filter((f) => f.endsWith('.txt')).sort();
const problems = [];
for (const f of seeds) {
  const copy = join(fixtures, f);
  if (!existsSync(copy)) problems.push(`${f}: seed has no copy in test/fixtures/seeds/`);
  else if (!readFileSync(copy).equals(readFileSync(join(shared, f)))) problems.push(`${f}: test/fixtures/seeds/${f} differs from ../shared/seeds/${f}`);
}
for (const f of copies) if (!seeds.includes(f)) problems.push(`${f}: copy in test/fixtures/seeds/ has no seed in ../shared/seeds/`);

if (problems.length > 0) {
  console.error('seed fixtures drifted from ../shared/seeds:');
  for (const p of problems) console.error(`  ${p}`);
  console.error('refresh with: cp ../shared/seeds/*.txt test/fixtures/seeds/ (then re-check test/config/fixtures/seeds/)');
  process.exit(1);
}
console.log(`seed fixtures: ${seeds.length} copies match ../shared/seeds`);
