/**
 * A real Prometheus (Debian's binary) scraping the running demo through the file_sd config the
 * demo writes; the assertions are PromQL over Prometheus's HTTP API. Skipped, with the reason
 * printed, only when `prometheus` is not installed (.ci/run installs it).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { findPrometheus } from '../../src/demo/prometheus.js';

interface Dashboard {
  panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
  templating: { list: Array<{ name: string; query: string }> };
}

/** Metric and label names a PromQL expression uses (enough for the dashboard's queries). */
export function namesIn(expr: string): { metrics: string[]; labels: string[] } {
  const metrics = [...expr.matchAll(/\b((?:istio|pilot|envoy|isle)_[a-z_]+)\b/g)].map((m) => m[1]!);
  const labels: string[] = [];
  for (const m of expr.matchAll(/\bby \(([^)]*)\)/g)) labels.push(...m[1]!.split(',').map((x) => x.trim()).filter((x) => x && x !== 'le'));
  for (const m of expr.matchAll(/\{([^}]*)\}/g)) labels.push(...[...m[1]!.matchAll(/([a-z_]+)\s*(?:=~|!~|!=|=)/g)].map((x) => x[1]!));
  for (const m of expr.matchAll(/label_values\([a-z_]+,\s*([a-z_]+)\)/g)) labels.push(m[1]!);
  return { metrics: [...new Set(metrics)], labels: [...new Set(labels)] };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

const bin = findPrometheus();
if (!bin) console.log('# skipping the Prometheus end-to-end test: no `prometheus` binary on PATH (apt-get install prometheus)');

test('isle demo --observability: Prometheus scrapes every proxy and control plane; PromQL shows cluster-1 → cluster-2', { skip: bin ? false : 'no prometheus binary on PATH', timeout: 180_000 }, async (t) => {
  const { startDemo, sleepRequests } = await import('../../src/demo/demo.js');
  const cwd = mkdtempSync(join(tmpdir(), 'isle-prom-'));
  const prevCwd = process.cwd();
  process.chdir(cwd);
  const listen = `127.0.0.1:${await freePort()}`;
  const log: string[] = [];
  const { running, ok, stop } = await startDemo({ dir: join(cwd, 'demo'), out: (s) => void log.push(s), observability: true, prometheusListen: listen, scrapeInterval: '1s' });
  t.after(async () => {
    await stop();
    process.chdir(prevCwd);
    rmSync(cwd, { recursive: true, force: true });
  });
  assert.ok(ok, log.join(''));
  assert.match(log.join(''), new RegExp(`prometheus\\s+http://${listen.replace(/\./g, '\\.')}`));
  const sleep1 = running.topo.workloads.find((w) => w.app === 'sleep' && w.cluster === 'cluster-1')!;
  await sleepRequests(sleep1, 20);

  const query = async (q: string): Promise<Sample[]> => {
    const r = await fetch(`http://${listen}/api/v1/query?query=${encodeURIComponent(q)}`);
    const j = (await r.json()) as { status: string; data: { result: Sample[] }; error?: string };
    assert.equal(j.status, 'success', `${q}: ${j.error}`);
    return j.data.result;
  };
  const until = async <T>(what: string, f: () => Promise<T | undefined>): Promise<T> => {
    const end = Date.now() + 60_000;
    for (;;) {
      const v = await f();
      if (v !== undefined) return v;
      if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };

  // Every target is up.
  const expected = running.topo.clusters.length * 2 + running.topo.workloads.length;
  await until('all targets up', async () => {
    const up = await query('up == 1');
    return up.length === expected ? up : undefined;
  });
  // Control-plane metrics under Istio's names.
  assert.ok((await query('sum(pilot_xds)')).length === 1);
  const edges = await until('cluster-1 → cluster-2 traffic', async () => {
    const r = await query('sum by (source_cluster, destination_cluster) (istio_requests_total{reporter="source"})');
    return r.some((s) => s.metric['source_cluster'] === 'cluster-1' && s.metric['destination_cluster'] === 'cluster-2' && Number(s.value[1]) > 0) ? r : undefined;
  });
  assert.ok(edges.length >= 2, JSON.stringify(edges));
  // The server side reports the same edge, with the workloads on both ends.
  const dest = await until('destination reporter', async () => {
    const r = await query('sum by (source_workload, source_cluster, destination_workload, destination_version, destination_cluster) (istio_requests_total{reporter="destination",destination_cluster="cluster-2"})');
    return r.find((s) => s.metric['source_cluster'] === 'cluster-1') ? r : undefined;
  });
  assert.ok(dest.some((s) => s.metric['source_workload'] === 'sleep' && s.metric['destination_workload'] === 'helloworld-v2' && s.metric['destination_version'] === 'v2'), JSON.stringify(dest));
  // rate() needs two scrapes after the traffic; keep some flowing.
  const q = await until('a p90 over the request duration', async () => {
    await sleepRequests(sleep1, 5);
    const r = await query('histogram_quantile(0.9, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="source"}[1m])))');
    return r.length === 1 && r[0]!.value[1] !== 'NaN' ? r : undefined;
  });

  // The dashboard: every query runs, and every metric and label it names exists in Prometheus.
  const dash = JSON.parse(readFileSync(new URL('../../../dashboards/isle-mesh.json', import.meta.url), 'utf8')) as Dashboard;
  const names = new Set(((await (await fetch(`http://${listen}/api/v1/label/__name__/values`)).json()) as { data: string[] }).data);
  const labelNames = new Set(((await (await fetch(`http://${listen}/api/v1/labels`)).json()) as { data: string[] }).data);
  const exprs = [...dash.panels.flatMap((p) => p.targets.map((t) => t.expr)), ...dash.templating.list.filter((v) => v.name !== 'datasource').map((v) => v.query)];
  assert.ok(exprs.length >= 10);
  const missing: string[] = [];
  for (const e of exprs) {
    const n = namesIn(e);
    for (const m of n.metrics) if (!names.has(m)) missing.push(`metric ${m} (in ${e})`);
    for (const l of n.labels) if (!labelNames.has(l)) missing.push(`label ${l} (in ${e})`);
    if (!e.startsWith('label_values')) await query(e.replace(/\$(cluster|service|workload)/g, '.*'));
  }
  assert.deepEqual(missing, []);
  assert.ok(Number.isFinite(Number(q[0]!.value[1])), `p90 is a number: ${JSON.stringify(q)}`);
});
