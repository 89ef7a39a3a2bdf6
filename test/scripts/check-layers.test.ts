// The layer check behind `npm run lint`: a real run of scripts/check-layers.mjs over the real src/
// (clean) and over small trees that break a rule (each must fail and name the offending import).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { repoRoot } from '../helpers/paths.js';

const script = join(repoRoot(), 'scripts', 'check-layers.mjs');
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tree(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'isle-layers-'));
  dirs.push(d);
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(join(d, p)), { recursive: true });
    writeFileSync(join(d, p), text);
  }
  return d;
}

function run(srcDir: string): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [script, srcDir], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout + r.stderr };
}

describe('check-layers', () => {
  it("passes on the repository's own src/", () => {
    const r = run(join(repoRoot(), 'src'));
    assert.equal(r.code, 0, r.out);
  });

  it('fails on an upward import (generate → controlplane)', () => {
    const d = tree({
      'controlplane/pusher.ts': "export const x = 1;\n",
      'generate/cds.ts': "import { x } from '../controlplane/pusher.js';\nexport const y = x;\n",
    });
    const r = run(d);
    assert.equal(r.code, 1);
    assert.match(r.out, /generate\/cds\.ts: imports .*controlplane\/pusher\.ts — "generate" may not import "controlplane"/);
  });

  it('fails on a sideways import between process layers (proxy → peering)', () => {
    const d = tree({ 'peering/wire.ts': 'export type W = 1;\n', 'proxy/proxy.ts': "import type { W } from '../peering/wire.js';\nexport type P = W;\n" });
    const r = run(d);
    assert.equal(r.code, 1);
    assert.match(r.out, /"proxy" may not import "peering"/);
  });

  it('fails on a cycle inside one layer, type-only imports included', () => {
    const d = tree({
      'proxy/a.ts': "import type { B } from './b.js';\nexport type A = B | 1;\n",
      'proxy/b.ts': "import type { A } from './a.js';\nexport type B = A | 2;\n",
    });
    const r = run(d);
    assert.equal(r.code, 1);
    assert.match(r.out, /import cycle: .*proxy\/a\.ts ↔ .*proxy\/b\.ts/);
  });

  it('fails on a folder that is not in the layer table', () => {
    const r = run(tree({ 'utils/x.ts': 'export const x = 1;\n' }));
    assert.equal(r.code, 1);
    assert.match(r.out, /layer "utils" is not in the layer table/);
  });
});
