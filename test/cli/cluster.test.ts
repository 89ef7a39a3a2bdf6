import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIsle } from '../helpers/cli.js';
import { parseConfigText } from '../../src/config/parse.js';

test('isle cluster add writes a valid discovery-only RemoteCluster; list and remove', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'isle-cluster-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const add = await runIsle(['cluster', 'add', 'cluster-2', '--discovery-only', '--address', '127.0.0.1:25012', '--network', 'network2', '--config', dir]);
  assert.equal(add.code, 0, add.stderr);
  const file = join(dir, 'remote-cluster-cluster-2.yaml');
  const parsed = parseConfigText(file, readFileSync(file, 'utf8'));
  assert.deepEqual(parsed.errors, []);
  assert.equal(parsed.resources[0]!.kind, 'RemoteCluster');
  assert.deepEqual(parsed.resources[0]!.spec, { address: '127.0.0.1:25012', network: 'network2', discoveryOnly: true });

  const again = await runIsle(['cluster', 'add', 'cluster-2', '--discovery-only', '--address', '127.0.0.1:1', '--config', dir]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /RemoteCluster cluster-2 already exists \(use --force/);
  const forced = await runIsle(['cluster', 'add', 'cluster-2', '--discovery-only', '--address', '127.0.0.1:1', '--config', dir, '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(readFileSync(file, 'utf8'), /127\.0\.0\.1:1"/);

  const list = await runIsle(['cluster', 'list', '--config', dir]);
  assert.match(list.stdout, /^cluster-2\t127\.0\.0\.1:1\t-\tdiscovery only/m);

  const rm = await runIsle(['cluster', 'remove', 'cluster-2', '--config', dir]);
  assert.equal(rm.code, 0, rm.stderr);
  assert.deepEqual(readdirSync(dir), []);
});

test('isle cluster add refuses a bad name or address with the config error, writing nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'isle-cluster-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bad = await runIsle(['cluster', 'add', 'Cluster_2', '--discovery-only', '--address', '127.0.0.1:25012', '--config', dir]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /RemoteCluster Cluster_2: metadata\.name/);
  const badAddr = await runIsle(['cluster', 'add', 'cluster-2', '--discovery-only', '--address', 'nowhere', '--config', dir]);
  assert.equal(badAddr.code, 2);
  assert.match(badAddr.stderr, /spec\.address/);
  assert.deepEqual(readdirSync(dir), []);
  const missing = await runIsle(['cluster', 'add', 'cluster-2', '--discovery-only', '--address', '127.0.0.1:1', '--config', join(dir, 'nope')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no such config directory/);
});

test('isle cluster remove refuses to delete a file that holds other resources', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'isle-cluster-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'all.yaml'),
    'apiVersion: mesh.isle.dev/v1alpha1\nkind: RemoteCluster\nmetadata: {name: cluster-2}\nspec: {address: "127.0.0.1:1", discoveryOnly: true}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: foo}\n',
  );
  const r = await runIsle(['cluster', 'remove', 'cluster-2', '--config', dir]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /holds other resources/);
  assert.deepEqual(readdirSync(dir), ['all.yaml']);
});

test('isle cluster add without --discovery-only says it is the only mode, writing nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'isle-cluster-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = await runIsle(['cluster', 'add', 'cluster-2', '--address', '127.0.0.1:25012', '--config', dir]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /pass --discovery-only.*service discovery only/);
  assert.deepEqual(readdirSync(dir), []);
});
