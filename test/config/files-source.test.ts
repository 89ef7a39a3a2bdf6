import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TextFilesSource } from '../../src/config/sources/files.js';
import { ConfigStore } from '../../src/config/store.js';
import { formatConfigError } from '../../src/config/types.js';

const ns = (name: string) => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n`;
const tick = () => new Promise((r) => setTimeout(r, 5));

describe('TextFilesSource (config files from a shared store)', () => {
  it('a file with errors keeps serving its last good version; the first file by name wins a key; removal removes', async () => {
    const src = new TextFilesSource('etcd:test');
    const store = new ConfigStore();
    store.addSource(src);
    src.setFile('b.yaml', ns('x'));
    src.setFile('a.yaml', `${ns('x')}---\n${ns('y')}`);
    await store.start();
    assert.deepEqual(store.list('Namespace').map((r) => `${r.metadata.name}@${r.source.file}`).sort(), ['x@a.yaml', 'y@a.yaml']);
    assert.deepEqual(store.errors().map(formatConfigError), ['b.yaml:1 Namespace x: defined again; the definition at a.yaml:1 wins']);
    src.setFile('a.yaml', 'kind: [');
    await tick();
    assert.deepEqual(store.list('Namespace').map((r) => r.metadata.name).sort(), ['x', 'y'], 'last good kept');
    assert.ok(store.errors().some((e) => e.file === 'a.yaml' && /still serving its last good version \(2 resources\)/.test(e.message)));
    src.setFile('a.yaml', undefined);
    await tick();
    assert.deepEqual(store.list('Namespace').map((r) => `${r.metadata.name}@${r.source.file}`), ['x@b.yaml']);
    await store.stop();
  });
});
