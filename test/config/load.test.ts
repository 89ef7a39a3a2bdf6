import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listConfigFiles, loadConfig, loadConfigPaths } from '../../src/config/load.js';
import { isIsleError } from '../../src/errors.js';

const NS = (name: string) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${name}}\n`;

describe('loading config files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'isle-load-'));
    await mkdir(join(dir, 'b', 'deep'), { recursive: true });
    await mkdir(join(dir, '.git'));
    await mkdir(join(dir, '..2024_01_01'));
    const files: Record<string, string> = {
      'a.yaml': NS('a'),
      'b/c.yml': NS('c'),
      'b/deep/d.json': '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}}',
      'b/README.md': '# not config',
      '.hidden.yaml': NS('hidden'),
      '.git/config.yaml': NS('git'),
      '..2024_01_01/x.yaml': NS('x'),
      'a.yaml~': NS('backup'),
      '.#a.yaml': NS('lock'),
      'a.yaml.swp': 'junk',
      'e.yaml.tmp': NS('tmp'),
      'Z.YAML': NS('upper'),
    };
    for (const [f, text] of Object.entries(files)) await writeFile(join(dir, f), text);
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('lists config files recursively, sorted, without hidden and temp files', async () => {
    assert.deepEqual(await listConfigFiles(dir), [`${dir}/Z.YAML`, `${dir}/a.yaml`, `${dir}/b/c.yml`, `${dir}/b/deep/d.json`]);
  });

  it('names files with the root as the caller wrote it', async () => {
    assert.deepEqual(await listConfigFiles(`${dir}/b/`), [`${dir}/b/c.yml`, `${dir}/b/deep/d.json`]);
  });

  it('loads directories and files together', async () => {
    const r = await loadConfig([join(dir, 'b'), join(dir, 'a.yaml'), join(dir, 'e.yaml.tmp')]);
    assert.deepEqual(r.files, [`${dir}/b/c.yml`, `${dir}/b/deep/d.json`, join(dir, 'a.yaml'), join(dir, 'e.yaml.tmp')]);
    assert.deepEqual(r.resources.map((x) => x.metadata.name), ['c', 'd', 'a', 'tmp']);
    assert.deepEqual(r.errors, []);
    assert.equal(r.resources[0]!.source.file, `${dir}/b/c.yml`);
  });

  it('a missing path is ERR_FILE_MISSING naming it', async () => {
    const missing = join(dir, 'nope');
    await assert.rejects(loadConfigPaths([join(dir, 'a.yaml'), missing]), (e: unknown) => {
      assert.ok(isIsleError(e));
      assert.equal(e.code, 'ERR_FILE_MISSING');
      assert.match(e.message, new RegExp(missing));
      return true;
    });
    await assert.rejects(listConfigFiles(missing), (e: unknown) => isIsleError(e) && e.code === 'ERR_FILE_MISSING');
  });
});
