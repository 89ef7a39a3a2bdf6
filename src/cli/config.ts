import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import type { Command } from 'commander';
import { IsleError } from '../errors.js';
import type { CliIO } from './io.js';

interface PushOpts {
  store: string;
}

/**
 * `isle config push DIR --store etcd://…`: makes the shared store's config the directory's files,
 * for control-plane replicas started with the same `--store`. Every file is parsed first and
 * nothing is written if any has an error (each listed with file:line), so a bad push never
 * reaches a running replica. Files gone from DIR are removed from the store.
 */
export function registerConfig(program: Command, io: CliIO): void {
  const config = program.command('config').description('mesh config in the shared store of control-plane replicas');
  config
    .command('push')
    .description('load a config directory into the store (--store etcd://host:port[,…]); replicas pick it up live')
    .argument('<dir>', 'config directory (YAML/JSON, as for isle control-plane --config)')
    .requiredOption('--store <url>', 'etcd://host:port[,host:port…][/keyspace]')
    .action(async (dir: string, o: PushOpts) => {
      const [{ listConfigFiles }, { parseConfigText }, { formatConfigError }, { EtcdStateStore }, { CONFIG_PREFIX }] = await Promise.all([
        import('../config/load.js'),
        import('../config/parse.js'),
        import('../config/types.js'),
        import('../mesh/state-etcd.js'),
        import('../mesh/state.js'),
      ]);
      const files = new Map<string, string>();
      const problems: string[] = [];
      for (const path of await listConfigFiles(dir)) {
        const name = relative(dir, path) || path;
        const text = await readFile(path, 'utf8');
        for (const e of parseConfigText(name, text).errors) if (e.severity === 'error') problems.push(formatConfigError(e));
        files.set(name, text);
      }
      if (problems.length > 0) throw new IsleError('ERR_CONFIG_INVALID', `nothing pushed: ${problems.length} error${problems.length === 1 ? '' : 's'} in ${dir}:\n  ${problems.join('\n  ')}`);
      const store = await EtcdStateStore.open(o.store);
      try {
        const before = await store.list(CONFIG_PREFIX);
        let written = 0;
        for (const [name, text] of files) {
          if (before.get(CONFIG_PREFIX + name) === text) continue;
          await store.put(CONFIG_PREFIX + name, text);
          written++;
        }
        let removed = 0;
        for (const key of before.keys()) {
          if (files.has(key.slice(CONFIG_PREFIX.length))) continue;
          await store.delete(key);
          removed++;
        }
        io.out(`pushed ${files.size} file${files.size === 1 ? '' : 's'} to ${o.store}: ${written} written, ${files.size - written} unchanged, ${removed} removed\n`);
      } finally {
        await store.close();
      }
    });
}
