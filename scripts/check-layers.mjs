#!/usr/bin/env node
// Fails (exit 1) on an import that goes up a layer, sideways between sibling layers, or closes a
// cycle anywhere in src/. Runs as part of `npm run lint`. The layer table is DESIGN §2 /
// docs/architecture.md; a layer may import itself and the layers listed for it.
//   node scripts/check-layers.mjs [srcDir]
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** layer → the layers it may import (besides itself). Lower layers first. */
export const ALLOWED = {
  errors: [],
  config: ['errors'],
  pki: ['errors'],
  mesh: ['errors', 'config', 'pki'],
  registry: ['errors', 'config', 'pki', 'mesh'],
  model: ['errors', 'config', 'pki', 'mesh', 'registry'],
  generate: ['errors', 'config', 'pki', 'mesh', 'registry', 'model'],
  xds: ['errors', 'config', 'pki', 'mesh'],
  peering: ['errors', 'config', 'pki', 'mesh', 'registry', 'model', 'generate', 'xds'],
  proxy: ['errors', 'config', 'pki', 'mesh', 'xds'],
  ratelimit: ['errors', 'config', 'pki', 'mesh', 'xds'],
  controlplane: ['errors', 'config', 'pki', 'mesh', 'registry', 'model', 'generate', 'xds', 'peering'],
  demo: ['errors', 'config', 'pki', 'mesh', 'registry', 'model', 'generate', 'xds', 'peering', 'proxy', 'controlplane'],
  cli: ['errors', 'config', 'pki', 'mesh', 'registry', 'model', 'generate', 'xds', 'peering', 'proxy', 'ratelimit', 'controlplane', 'demo'],
};

const IMPORT_RE = /(?:^|[\s;])(?:import|export)\s(?:type\s)?[^'";]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

function listTs(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listTs(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** file → imported files (resolved .ts paths within src). */
export function importGraph(srcDir) {
  const graph = new Map();
  for (const f of listTs(srcDir)) {
    const text = readFileSync(f, 'utf8');
    const deps = [];
    for (const m of text.matchAll(IMPORT_RE)) {
      const spec = m[1] ?? m[2];
      const target = resolve(dirname(f), spec).replace(/\.js$/, '.ts');
      if (existsSync(target)) deps.push(target);
    }
    graph.set(resolve(f), deps);
  }
  return graph;
}

export function layerOf(srcDir, file) {
  const rel = relative(resolve(srcDir), file);
  const first = rel.split(/[\\/]/)[0];
  return first.replace(/\.ts$/, '');
}

export function check(srcDir) {
  const graph = importGraph(srcDir);
  const problems = [];
  const rel = (f) => relative(process.cwd(), f);
  for (const [f, deps] of graph) {
    const a = layerOf(srcDir, f);
    if (!(a in ALLOWED)) {
      problems.push(`${rel(f)}: layer "${a}" is not in the layer table (scripts/check-layers.mjs)`);
      continue;
    }
    for (const d of deps) {
      const b = layerOf(srcDir, d);
      if (a !== b && !ALLOWED[a].includes(b)) problems.push(`${rel(f)}: imports ${rel(d)} — "${a}" may not import "${b}" (allowed: ${ALLOWED[a].join(', ') || 'nothing'})`);
    }
  }
  // Cycles: Tarjan's strongly connected components over the file graph.
  let index = 0;
  const idx = new Map(), low = new Map(), onStack = new Set(), stack = [];
  const sccs = [];
  const strong = (v) => {
    idx.set(v, index); low.set(v, index); index++; stack.push(v); onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) { strong(w); low.set(v, Math.min(low.get(v), low.get(w))); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const comp = [];
      let w;
      do { w = stack.pop(); onStack.delete(w); comp.push(w); } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) sccs.push(comp);
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) strong(v);
  for (const c of sccs) problems.push(`import cycle: ${c.map(rel).sort().join(' ↔ ')}`);
  return problems;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const srcDir = process.argv[2] ?? 'src';
  const problems = check(srcDir);
  for (const p of problems) console.error(p);
  if (problems.length > 0) {
    console.error(`check-layers: ${problems.length} problem(s) in ${srcDir}`);
    process.exit(1);
  }
  console.log(`check-layers: ${srcDir} imports only downward, no cycles`);
}
