// `isle proxy` is a long-lived sidecar: every module it loads costs RSS for its whole life (ADR
// 0105). Its module graph (static and dynamic imports, from src/cli/main.ts through the proxy
// command) must not reach the control plane, the demo, the config loader or the CA's certificate
// library.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/paths.js';

const root = repoRoot();
const src = join(root, 'src');

/**
 * Files and packages a module loads at run time, following static, side-effect and dynamic imports
 * but not `import type` (erased by tsc), from `from`.
 */
function runtimeGraph(from: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const todo = [from];
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/(?:^|[\s;])(?:import|export)\s(?!type\s)[^'";]*?from\s*'([^']+)'|import\s*'([^']+)'|import\(\s*'([^']+)'\s*\)/g)) {
      const spec = (m[1] ?? m[2] ?? m[3])!;
      if (spec.startsWith('.')) {
        const target = resolve(dirname(f), spec).replace(/\.js$/, '.ts');
        if (existsSync(target)) todo.push(target);
      } else if (!spec.startsWith('node:')) packages.add(spec);
    }
  }
  return { files, packages };
}

test('src/cli/main.ts imports no command module statically (each is loaded only when named)', () => {
  const text = readFileSync(join(src, 'cli', 'main.ts'), 'utf8');
  const staticImports = [...text.matchAll(/^import\s[^;]*?from\s*'(\.[^']+)'/gm)].map((m) => m[1]);
  assert.deepEqual(staticImports.filter((s) => !['../errors.js', './io.js'].includes(s!)), []);
});

test('isle proxy reaches no control-plane, demo, registry, generator, peering or config-loading module, nor etcd3, @peculiar/x509 or yaml', () => {
  const { files, packages } = runtimeGraph(join(src, 'cli', 'proxy.ts'));
  const rel = [...files].map((f) => relative(src, f)).sort();
  assert.ok(rel.includes('proxy/proxy.ts') && rel.includes('xds/protos.ts'), `the walk found the proxy: ${rel.join(', ')}`);
  const forbidden = rel.filter((f) => /^(controlplane|demo|registry|generate|peering|model)\//.test(f) || ['config/load.ts', 'config/parse.ts', 'pki/x509.ts', 'pki/index.ts', 'pki/ca.ts'].includes(f));
  assert.deepEqual(forbidden, []);
  assert.deepEqual([...packages].filter((p) => ['etcd3', '@peculiar/x509', 'yaml'].includes(p)), []);
  assert.ok(packages.has('@grpc/grpc-js') && packages.has('protobufjs'), `packages: ${[...packages].join(', ')}`);
});
