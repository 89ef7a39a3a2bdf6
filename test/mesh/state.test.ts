import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileStateStore, MemoryStateStore } from '../../src/mesh/state.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'isle-state-'));
  dirs.push(d);
  return d;
}

describe('state store', () => {
  it('putIfAbsent admits a key once, again only after it expires', async () => {
    let now = 1000;
    const s = new MemoryStateStore(() => now);
    assert.equal(await s.putIfAbsent('tokens/a', '1', { expiresAt: 2000 }), true);
    assert.equal(await s.putIfAbsent('tokens/a', '2'), false);
    assert.equal(await s.get('tokens/a'), '1');
    now = 2000;
    assert.equal(await s.get('tokens/a'), undefined);
    assert.equal(await s.putIfAbsent('tokens/a', '3'), true);
  });

  it('list returns live records under a prefix, sorted', async () => {
    let now = 0;
    const s = new MemoryStateStore(() => now);
    await s.put('reg/b', 'B');
    await s.put('reg/a', 'A');
    await s.put('reg/c', 'C', { expiresAt: 5 });
    await s.put('tokens/x', 'X');
    now = 10;
    assert.deepEqual([...(await s.list('reg/'))], [['reg/a', 'A'], ['reg/b', 'B']]);
    await s.delete('reg/a');
    assert.deepEqual([...(await s.list('reg/')).keys()], ['reg/b']);
  });

  it('the file store survives a reopen, drops expired records, and writes mode 0600', async () => {
    const d = tmp();
    let now = 0;
    const a = new FileStateStore(d, () => now);
    await a.put('tokens/j1', 'used', { expiresAt: 100 });
    await a.put('reg/w', '{"ip":"127.1.0.10"}');
    assert.equal(statSync(join(d, 'state.json')).mode & 0o777, 0o600);
    const b = new FileStateStore(d, () => now);
    assert.equal(await b.putIfAbsent('tokens/j1', 'again'), false);
    assert.equal(await b.get('reg/w'), '{"ip":"127.1.0.10"}');
    now = 200;
    await b.put('reg/x', '1');
    assert.deepEqual(Object.keys(JSON.parse(readFileSync(join(d, 'state.json'), 'utf8'))).sort(), ['reg/w', 'reg/x']);
  });

  it('a corrupt state file is a clear error naming the file', () => {
    const d = tmp();
    writeFileSync(join(d, 'state.json'), '{nope');
    assert.throws(() => new FileStateStore(d), (e: Error) => e.message.includes(join(d, 'state.json')) && /not valid JSON/.test(e.message));
    writeFileSync(join(d, 'state.json'), '{"k": {"v": 3}}');
    assert.throws(() => new FileStateStore(d), /record "k": expected/);
  });

  it('keys named like Object.prototype members are plain keys', async () => {
    const d = tmp();
    const s = new FileStateStore(d);
    await s.put('__proto__', 'p');
    await s.put('constructor', 'c');
    const r = new FileStateStore(d);
    assert.equal(await r.get('__proto__'), 'p');
    assert.equal(await r.get('constructor'), 'c');
  });
});
