import type { Command } from 'commander';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { analyze, analyzeClusters } from '../config/analyze.js';
import { DESCRIPTORS, PLANNED_KINDS } from '../config/descriptors.js';
import { isUnderDir, loadConfig } from '../config/load.js';
import { formatConfigError, type ConfigError } from '../config/types.js';
import type { CliIO } from './io.js';

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function kindsTable(): string {
  const rows = [
    ['KIND', 'API VERSIONS', 'SCOPE', 'TO PEERS', 'WHAT'],
    ...DESCRIPTORS.map((d) => [
      d.kind,
      (d.group ? `${d.group}/` : '') + d.versions.join('|'),
      d.namespaced ? 'namespaced' : 'cluster',
      d.exportToPeers ? 'yes' : 'no',
      d.summary,
    ]),
    ...PLANNED_KINDS.map((d) => [d.kind, `${d.group}/${d.versions.join('|')}`, 'namespaced', 'no', `planned (skipped with a warning today): ${d.summary}`]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => `  ${r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')}`).join('\n');
}

function byPosition(a: ConfigError, b: ConfigError): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  return (a.line ?? 0) - (b.line ?? 0);
}

/**
 * The parser warns about an unknown field (the control plane keeps serving such a resource, as
 * Istio's schema pruning would); analyze fails on it, as `kubectl apply` with strict field
 * validation does: `subset` under `route` instead of `destination` routes to every version.
 */
function strictUnknownField(e: ConfigError): ConfigError {
  return e.severity === 'warning' && /^unknown field\b/.test(e.message) ? { ...e, severity: 'error' } : e;
}

export function registerAnalyze(program: Command, io: CliIO): void {
  program
    .command('analyze')
    .description('Validate mesh config files and check them against each other')
    .argument('[paths...]', 'files or directories (searched recursively for .yaml, .yml, .json)')
    .option('--json', 'print the result as JSON')
    .option('--list-kinds', 'list the kinds Isle reads and exit')
    .option('--allow-unknown-fields', 'report unknown fields as warnings instead of errors')
    .addHelpText(
      'after',
      `\nSeveral directories are analyzed as several clusters: each on its own, then across them.\nUnknown fields are errors (a misplaced field silently changes nothing), unless --allow-unknown-fields.\nOther kinds (Deployment, ConfigMap, ...) are skipped with a warning.\nExit status: 0 clean or warnings only, 1 errors found, 2 a path does not exist.\n\nKinds:\n${kindsTable()}\n`,
    )
    .action(async (paths: string[], opts: { json?: boolean; listKinds?: boolean; allowUnknownFields?: boolean }) => {
      if (opts.listKinds) {
        io.out(`${kindsTable()}\n`);
        return;
      }
      if (paths.length === 0) {
        program.commands.find((c) => c.name() === 'analyze')?.outputHelp({ error: true });
        process.exitCode = 2;
        return;
      }
      const loaded = await loadConfig(paths);
      // Parse problems first in file order, then what the analyzers found, each sorted by position.
      const parsed = opts.allowUnknownFields ? loaded.errors : loaded.errors.map(strictUnknownField);
      const others = loaded.others ?? [];
      // Several directories are several clusters (seed 000's cluster-1/ and cluster-2/).
      const clusterDirs = paths.length > 1 && (await Promise.all(paths.map(async (p) => (await stat(p)).isDirectory()))).every(Boolean);
      const found = clusterDirs
        ? analyzeClusters(
            paths.map((p) => ({ name: basename(p.replace(/\/+$/, '')), resources: loaded.resources.filter((r) => isUnderDir(r.source.file, p)) })),
            analyze,
            { others },
          )
        : analyze(loaded.resources, { others });
      const problems = [...parsed.sort(byPosition), ...found.sort(byPosition)];
      const errors = problems.filter((p) => p.severity === 'error').length;
      const warnings = problems.length - errors;
      // Seed 001: which way discovery goes between this (central) cluster and its remote control planes.
      const mesh = loaded.resources.find((r) => r.kind === 'MeshConfig' && typeof (r.spec as { remoteClustersSeeCentral?: unknown }).remoteClustersSeeCentral === 'boolean');
      const meshSpec = mesh?.spec as { remoteClustersSeeCentral: boolean; remoteClustersSeeCentralNamespaces?: string[] } | undefined;
      const seeCentral = meshSpec?.remoteClustersSeeCentral;
      const only = meshSpec?.remoteClustersSeeCentralNamespaces;
      const direction =
        seeCentral === undefined
          ? undefined
          : seeCentral
            ? `discovery with remote control planes: both ways (remoteClustersSeeCentral: true${only ? `; they see namespaces ${only.join(', ')} only` : ''})`
            : 'discovery with remote control planes: this cluster sees theirs, they do not see this one (asymmetric, remoteClustersSeeCentral: false)';
      if (opts.json) {
        io.out(`${JSON.stringify({ files: loaded.files.length, resources: loaded.resources.length, errors, warnings, problems, ...(direction ? { discovery: direction } : {}) }, null, 2)}\n`);
      } else {
        for (const p of problems) io.out(`${formatConfigError(p)}\n`);
        io.out(`${plural(errors, 'error')}, ${plural(warnings, 'warning')} in ${plural(loaded.files.length, 'file')} (${plural(loaded.resources.length, 'resource')})\n`);
        if (direction) io.out(`${direction}\n`);
      }
      process.exitCode = errors > 0 ? 1 : 0;
    });
}
