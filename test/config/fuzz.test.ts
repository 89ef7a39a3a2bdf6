import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../helpers/paths.js';
import { listConfigFiles } from '../../src/config/load.js';
import { parseConfigText } from '../../src/config/parse.js';
import { analyze } from '../../src/config/analyze.js';
import { formatConfigError, type Resource } from '../../src/config/types.js';
import { seededRandom } from '../../src/proxy/lb/random.js';

/**
 * Seeded, bounded mutation fuzzing of the config parser and analyzers: the same cases on every
 * run (change SEED to explore), a few hundred of them, each of which must end in findings, never
 * an exception. The test's timeout is the hang guard.
 */
const SEED = 0x15_1e_17;
const CASES = 400;


type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

const ODD_VALUES: unknown[] = [
  null, '', ' ', 0, -1, 1.5, 1e308, -1e308, 1e23, '99999999999999999999999s', '1e308s', '-1s', 'NaN', true,
  [], {}, [[[]]], { a: { b: { c: {} } } }, 'x'.repeat(5000), '*', '*.', '..', '/', '::', '\u0000', '\u202e', '${x}',
  '__proto__', 'constructor', 'toString', { __proto__x: 1 }, [null], [1, 'a', {}],
];
const TEXT_INSERTS = ['\t', ':', '- ', '[', ']', '{', '}', '"', "'", '&a ', '*a', '<<: *a', '? ', '|', '>', '#', '---\n', '\n  ', '!!binary ', '%YAML 1.2\n'];

async function corpus(): Promise<{ file: string; text: string }[]> {
  const root = repoRoot();
  const files = [join(root, 'test', 'fixtures', 'config', 'every-kind.yaml'), ...(await listConfigFiles(join(root, 'test', 'config', 'fixtures', 'seeds')))];
  return files.map((file) => ({ file, text: readFileSync(file, 'utf8') }));
}

function mutateText(r: Rand, text: string): string {
  const lines = text.split('\n');
  const i = Math.floor(r() * lines.length);
  switch (Math.floor(r() * 6)) {
    case 0:
      lines.splice(i, 1);
      break;
    case 1:
      lines.splice(i, 0, lines[i] ?? '');
      break;
    case 2: {
      const l = lines[i] ?? '';
      const at = Math.floor(r() * (l.length + 1));
      lines[i] = l.slice(0, at) + pick(r, TEXT_INSERTS) + l.slice(at);
      break;
    }
    case 3:
      lines[i] = (lines[i] ?? '').replace(/^ +/, (m) => ' '.repeat(Math.max(0, m.length + pick(r, [-2, -1, 1, 2]))));
      break;
    case 4:
      return text.slice(0, Math.floor(r() * text.length));
    default:
      lines[i] = (lines[i] ?? '').replace(/: .*$/, `: ${JSON.stringify(pick(r, ODD_VALUES))}`);
  }
  return lines.join('\n');
}

/** Changes one value, deletes one key or duplicates one list item somewhere in the object tree. */
function mutateTree(r: Rand, v: unknown, depth = 0): unknown {
  if (Array.isArray(v)) {
    if (v.length === 0 || r() < 0.15) return r() < 0.5 ? [...v, ...v] : pick(r, ODD_VALUES);
    const i = Math.floor(r() * v.length);
    const out = [...v];
    out[i] = mutateTree(r, v[i], depth + 1);
    return out;
  }
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 0 || (depth > 0 && r() < 0.15)) return pick(r, ODD_VALUES);
    const k = pick(r, keys);
    const out: Record<string, unknown> = { ...(v as Record<string, unknown>) };
    if (r() < 0.15) delete out[k];
    else out[k] = mutateTree(r, out[k], depth + 1);
    return out;
  }
  return pick(r, ODD_VALUES);
}

describe('config fuzzing (seeded mutations of the fixtures)', () => {
  it(`${CASES} mutated files: every one parses and analyzes to findings, never an exception`, { timeout: 120_000 }, async () => {
    const r = seededRandom(SEED);
    const files = await corpus();
    const base: Resource[] = files.flatMap((f) => parseConfigText(f.file, f.text).resources);
    let findings = 0;
    for (let n = 0; n < CASES; n++) {
      const f = pick(r, files);
      let text: string;
      if (r() < 0.5) {
        text = mutateText(r, f.text);
        if (r() < 0.3) text = mutateText(r, text);
      } else {
        const docs = parseAllDocuments(f.text).map((d) => d.toJS() as unknown);
        const i = Math.floor(r() * docs.length);
        docs[i] = mutateTree(r, docs[i]);
        text = JSON.stringify(docs);
      }
      const what = `case ${n} (seed ${SEED}, from ${f.file})`;
      try {
        const parsed = parseConfigText('case.yaml', text);
        const found = analyze([...base.filter((x) => x.source.file !== f.file), ...parsed.resources]);
        for (const e of [...parsed.errors, ...found]) {
          assert.equal(typeof e.message, 'string', what);
          assert.ok(e.message.length > 0, what);
          assert.ok(!/TypeError|undefined is not|is not a function|Cannot read/.test(e.message), `${what}: ${formatConfigError(e)}`);
          formatConfigError(e);
          findings++;
        }
      } catch (e) {
        assert.fail(`${what} threw ${e instanceof Error ? e.stack : String(e)}\n--- input ---\n${text.slice(0, 2000)}`);
      }
    }
    assert.ok(findings > CASES / 2, `the mutations found only ${findings} problems; are they mutating?`);
  });

  it('an alias bomb is refused, not expanded', { timeout: 60_000 }, () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 0; i < 9; i++) lines.push(`${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)}]`);
    const r = parseConfigText('bomb.yaml', lines.join('\n'));
    assert.equal(r.resources.length, 0);
    assert.equal(r.errors.length, 1);
  });
});
