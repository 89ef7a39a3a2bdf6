/**
 * Prometheus for the demo: a file_sd target list of every proxy (admin `/stats/prometheus`) and
 * control plane (debug `/metrics`), a prometheus.yml that reads it, and — with `--observability`
 * and Debian's `prometheus` on PATH — the Prometheus process itself.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DemoTopology } from './topology.js';

export interface FileSdGroup {
  targets: string[];
  labels: Record<string, string>;
}

/** One group per scrape target; `__metrics_path__` differs between proxies and control planes. */
export function scrapeTargets(topo: DemoTopology): FileSdGroup[] {
  const out: FileSdGroup[] = [];
  for (const c of topo.clusters) {
    out.push({ targets: [c.debug], labels: { job: 'isle-control-plane', cluster: c.name, __metrics_path__: '/metrics' } });
    out.push({ targets: [`${c.gatewayIp}:15000`], labels: { job: 'isle-proxy', cluster: c.name, proxy: 'eastwestgateway', __metrics_path__: '/stats/prometheus' } });
  }
  // A pod's admin port (`--netns`) is reachable only inside its namespace, never from the host.
  for (const w of topo.workloads.filter((x) => !x.netns)) out.push({ targets: [`${w.ip}:15000`], labels: { job: 'isle-proxy', cluster: w.cluster, proxy: w.name, __metrics_path__: '/stats/prometheus' } });
  return out;
}

export function prometheusYaml(targetsFile: string, scrapeInterval = '5s'): string {
  return [
    'global:',
    `  scrape_interval: ${scrapeInterval}`,
    `  evaluation_interval: ${scrapeInterval}`,
    'scrape_configs:',
    '  - job_name: isle',
    '    file_sd_configs:',
    `      - files: [${JSON.stringify(targetsFile)}]`,
    '',
  ].join('\n');
}

export interface PrometheusFiles {
  config: string;
  targets: string;
  data: string;
}

export async function writePrometheusConfig(dir: string, topo: DemoTopology, scrapeInterval?: string): Promise<PrometheusFiles> {
  const base = join(dir, 'prometheus');
  await mkdir(base, { recursive: true });
  const targets = join(base, 'targets.json');
  const config = join(base, 'prometheus.yml');
  await writeFile(targets, `${JSON.stringify(scrapeTargets(topo), null, 2)}\n`);
  await writeFile(config, prometheusYaml(targets, scrapeInterval));
  return { config, targets, data: join(base, 'data') };
}

export function prometheusArgs(f: PrometheusFiles, listen: string): string[] {
  return [`--config.file=${f.config}`, `--storage.tsdb.path=${f.data}`, `--web.listen-address=${listen}`];
}

/** The binary when it is on PATH (Debian's package installs /usr/bin/prometheus). */
export function findPrometheus(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

/** Starts Prometheus, logging to `log`; resolves once its HTTP API answers. */
export async function startPrometheus(bin: string, f: PrometheusFiles, listen: string, log: string): Promise<ChildProcess> {
  const child = spawn(bin, prometheusArgs(f, listen), { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = createWriteStream(log, { flags: 'a' });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`prometheus exited with code ${child.exitCode}; log: ${log}`);
    try {
      const r = await fetch(`http://${listen}/-/ready`, { signal: AbortSignal.timeout(1000) });
      if (r.ok) return child;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill('SIGTERM');
  throw new Error(`prometheus did not become ready on ${listen}; log: ${log}`);
}
