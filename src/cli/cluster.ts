import { existsSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { parseConfigText } from '../config/parse.js';
import { formatConfigError } from '../config/types.js';
import { IsleError } from '../errors.js';
import type { CliIO } from './io.js';

/** The RemoteCluster a control plane reads to add a peer for service discovery only. */
export function remoteClusterYaml(name: string, address: string, network?: string): string {
  return [
    '# Added by `isle cluster add`: discovery only — we read this cluster\'s services and endpoints, never push to it.',
    'apiVersion: mesh.isle.dev/v1alpha1',
    'kind: RemoteCluster',
    'metadata:',
    `  name: ${name}`,
    'spec:',
    `  address: "${address}"`,
    ...(network ? [`  network: ${network}`] : []),
    '  discoveryOnly: true',
    '',
  ].join('\n');
}

async function remoteClustersIn(dir: string): Promise<{ name: string; file: string }[]> {
  const loaded = await loadConfig([dir]);
  return loaded.resources.filter((r) => r.kind === 'RemoteCluster').map((r) => ({ name: r.metadata.name, file: r.source.file }));
}

export function registerCluster(program: Command, io: CliIO): void {
  const cluster = program.command('cluster').description('peer clusters of this control plane (RemoteCluster resources in its config directory)');

  cluster
    .command('add')
    .description('add a cluster for service discovery only: writes a RemoteCluster into the config directory (a running control plane picks it up live)')
    .argument('<name>', "the peer's cluster name (must match its intermediate CA)")
    .requiredOption('--address <host:port>', "the peer control plane's mTLS port (its --listen)")
    .requiredOption('--config <dir>', "this control plane's config directory")
    .option('--network <name>', "the peer's network")
    .option('--discovery-only', 'read its services and endpoints, never push to it (required: the only peering mode)')
    .option('--force', 'replace an existing RemoteCluster of that name')
    .action(async (name: string, o: { address: string; config: string; network?: string; force?: boolean; discoveryOnly?: boolean }) => {
      if (!o.discoveryOnly) {
        throw new IsleError(
          'ERR_USAGE',
          'isle cluster add: pass --discovery-only. Peering between control planes is for service discovery only (this control plane reads the peer\'s services and endpoints and never pushes config to it); there is no other mode to assume. For a control plane that takes its config from a central one, run the remote control plane instead.',
        );
      }
      if (!existsSync(o.config)) throw new IsleError('ERR_FILE_MISSING', `${o.config}: no such config directory`, { file: o.config });
      const file = join(o.config, `remote-cluster-${name}.yaml`);
      const text = remoteClusterYaml(name, o.address, o.network);
      // Validate through the same parser the control plane uses, so a bad name or address is
      // refused here with the control plane's own message rather than rejected later.
      const parsed = parseConfigText(file, text);
      const errors = parsed.errors.filter((e) => e.severity === 'error');
      if (errors.length > 0) throw new IsleError('ERR_CONFIG_INVALID', errors.map(formatConfigError).join('; '));
      const existing = (await remoteClustersIn(o.config)).find((r) => r.name === name);
      if (existing && !o.force) throw new IsleError('ERR_FILE_EXISTS', `${existing.file}: RemoteCluster ${name} already exists (use --force to replace it)`, { file: existing.file });
      if (existing && existing.file !== file) await rm(existing.file);
      const tmp = `${file}.tmp-${process.pid}`;
      await writeFile(tmp, text);
      await rename(tmp, file);
      io.out(`wrote ${file}: ${name} at ${o.address}${o.network ? ` (network ${o.network})` : ''}, discovery only\n`);
    });

  cluster
    .command('remove')
    .description('remove a peer cluster: deletes its RemoteCluster file (its endpoints are dropped)')
    .argument('<name>')
    .requiredOption('--config <dir>', "this control plane's config directory")
    .action(async (name: string, o: { config: string }) => {
      const existing = (await remoteClustersIn(o.config)).find((r) => r.name === name);
      if (!existing) throw new IsleError('ERR_FILE_MISSING', `${o.config}: no RemoteCluster ${name}`);
      const parsed = parseConfigText(existing.file, await readFile(existing.file, 'utf8'));
      if (parsed.resources.length > 1) {
        throw new IsleError('ERR_USAGE', `${existing.file} holds other resources besides RemoteCluster ${name}; remove it from the file by hand`);
      }
      await rm(existing.file);
      io.out(`removed ${existing.file}\n`);
    });

  cluster
    .command('list')
    .description('list the peer clusters in a config directory')
    .requiredOption('--config <dir>', "this control plane's config directory")
    .action(async (o: { config: string }) => {
      const loaded = await loadConfig([o.config]);
      const rcs = loaded.resources.filter((r) => r.kind === 'RemoteCluster');
      if (rcs.length === 0) return io.out('no remote clusters\n');
      for (const r of rcs) {
        const s = r.spec as { address: string; network?: string };
        io.out(`${r.metadata.name}\t${s.address}\t${s.network ?? '-'}\tdiscovery only\t${r.source.file}\n`);
      }
    });
}
