/**
 * The live mesh page (ADR 0095) in a real headless Chromium (Debian's, driven by playwright-core)
 * against the two-cluster demo on its own loopback range (127.95.x.y): after cluster-1 → cluster-2
 * traffic the page shows both clusters, the edge with a request rate, the proxies' sync state and
 * the peer link. Saves a screenshot under test-results/. Skipped, with the reason printed, only
 * when Chromium is not installed (.ci/run installs it).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import type { DemoTopology } from '../../src/demo/topology.js';
import type { Meshz } from '../../src/controlplane/meshz.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (!CHROMIUM) console.log('# skipping the mesh page browser test: no Chromium at /usr/bin/chromium (apt-get install chromium)');

/** Seed 000 on 127.95.1.x (cluster-1) and 127.95.2.x (cluster-2). */
const TOPOLOGY: DemoTopology = {
  clusters: [
    { name: 'cluster-1', network: 'network1', region: 'region1', zone: 'zone1', controlPlane: '127.95.1.1:15012', debug: '127.95.1.1:15014', gatewayIp: '127.95.1.254' },
    { name: 'cluster-2', network: 'network2', region: 'region2', zone: 'zone1', controlPlane: '127.95.2.1:15012', debug: '127.95.2.1:15014', gatewayIp: '127.95.2.254' },
  ],
  workloads: [
    { cluster: 'cluster-1', name: 'helloworld-v1', app: 'helloworld', version: 'v1', namespace: 'default', serviceAccount: 'helloworld', ip: '127.95.1.10', port: 5000 },
    { cluster: 'cluster-2', name: 'helloworld-v2', app: 'helloworld', version: 'v2', namespace: 'default', serviceAccount: 'helloworld', ip: '127.95.2.10', port: 5000 },
    { cluster: 'cluster-1', name: 'sleep', app: 'sleep', namespace: 'default', serviceAccount: 'sleep', ip: '127.95.1.20' },
    { cluster: 'cluster-2', name: 'sleep', app: 'sleep', namespace: 'default', serviceAccount: 'sleep', ip: '127.95.2.20' },
  ],
};

const RESULTS = fileURLToPath(new URL('../../../test-results/', import.meta.url));

test('the mesh page in headless Chromium shows both clusters and the cluster-1 → cluster-2 edge', { skip: CHROMIUM ? false : 'no Chromium at /usr/bin/chromium', timeout: 240_000 }, async (t) => {
  const { startDemo, sleepRequests } = await import('../../src/demo/demo.js');
  const { chromium } = await import('playwright-core');
  const { run } = await import('../../src/cli/main.js');
  const cwd = mkdtempSync(join(tmpdir(), 'isle-meshpage-'));
  const prevCwd = process.cwd();
  process.chdir(cwd); // the demo writes its state pointer (.isle/demo.json) into the working directory
  const log: string[] = [];
  const { running, ok, stop } = await startDemo({ dir: join(cwd, 'demo'), out: (s) => void log.push(s), topology: TOPOLOGY });
  const browser = await chromium.launch({ executablePath: CHROMIUM!, args: ['--no-sandbox'] });
  t.after(async () => {
    await browser.close();
    await stop();
    process.chdir(prevCwd);
    rmSync(cwd, { recursive: true, force: true });
  });
  assert.ok(ok, log.join(''));
  const sleep1 = running.topo.workloads.find((w) => w.app === 'sleep' && w.cluster === 'cluster-1')!;
  await sleepRequests(sleep1, 20);

  // `isle dashboard` names each control plane's page.
  const out: string[] = [];
  assert.equal(await run(['node', 'isle', 'dashboard', '--control-plane-debug', '127.95.1.1:15014', '--control-plane-debug', 'http://127.95.2.1:15014'], { out: (s) => void out.push(s), err: (s) => void out.push(s) }), 0, out.join(''));
  assert.match(out.join(''), /cluster-1\s+http:\/\/127\.95\.1\.1:15014\/ui\n/);
  assert.match(out.join(''), /cluster-2\s+http:\/\/127\.95\.2\.1:15014\/ui\n/);

  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => void (m.type() === 'error' && problems.push(`console: ${m.text()}`)));
  // A browser at / is sent to the page.
  await page.goto('http://127.95.1.1:15014/');
  assert.equal(new URL(page.url()).pathname, '/ui');

  // Keep some traffic flowing while the page polls, so the edge gets a rate (two reads of the counters).
  let flowing = true;
  const traffic = (async () => {
    while (flowing) {
      await sleepRequests(sleep1, 3).catch(() => []);
      await new Promise((r) => setTimeout(r, 300));
    }
  })();
  const edge = page.locator('#edges tr[data-edge="cluster-1/sleep>cluster-2/helloworld-v2"]');
  try {
    await page.locator('#clusters tr[data-cluster="cluster-2"]').waitFor({ timeout: 60_000 });
    await edge.waitFor({ timeout: 60_000 });
    // The req/s cell shows a number once two reads of the counters exist.
    const deadline = Date.now() + 60_000;
    while (!(Number(await edge.locator('td').nth(5).innerText()) > 0)) {
      if (Date.now() > deadline) assert.fail(`no request rate on the edge: ${await edge.innerText()}`);
      await page.waitForTimeout(500);
    }
  } finally {
    flowing = false;
    await traffic;
  }

  const clusters = await page.locator('#clusters').innerText();
  assert.match(clusters, /cluster-1 \(this control plane\)\s+network1\s+local/);
  assert.match(clusters, /cluster-2\s+network2\s+synced/);
  const cells = await edge.locator('td').allInnerTexts();
  assert.match(cells[0]!, /sleep\.default\s*cluster-1/);
  assert.match(cells[2]!, /helloworld-v2\.default\s*cluster-2/);
  assert.equal(cells[3], 'helloworld.default.svc.cluster.local');
  assert.ok(Number(cells[5]) > 0, `req/s: ${cells[5]}`);
  assert.equal(cells[6], '0.0%');
  assert.equal(cells[8], 'source');
  // The graph draws the same edge between the two clusters' columns.
  const drawn = page.locator('#graph g[data-edge="cluster-1/sleep>cluster-2/helloworld-v2"]');
  assert.match(await drawn.locator('text').textContent() ?? '', /^\d+(\.\d+)? rps$/);
  assert.equal(await page.locator('#graph g[data-node="cluster-2/default/helloworld-v2"]').count(), 1);
  // Sync state and scrape state of the sleep sidecar; the peer link to cluster-2.
  const sleepRow = await page.locator('#proxies tr[data-proxy^="sidecar~127.95.1.20~"]').innerText();
  for (const type of ['CDS', 'EDS', 'LDS', 'RDS', 'SDS']) assert.match(sleepRow, new RegExp(`${type} SYNCED`));
  assert.match(sleepRow, /\bok\b/);
  assert.match(await page.locator('#peers tr[data-peer="cluster-2"]').innerText(), /127\.95\.2\.1:15012\s+network2\s+synced/);
  assert.match(await page.locator('#subscribers').innerText(), /cluster-2 \(synced\)/);
  assert.match(await page.locator('#workloads').innerText(), /cluster-2\s+default\s+helloworld-v2-127-95-2-10\s+127\.95\.2\.10\s+helloworld\s+v2\s+healthy/);
  assert.deepEqual(problems, []);
  mkdirSync(RESULTS, { recursive: true });
  await page.screenshot({ path: join(RESULTS, 'meshpage.png'), fullPage: true });
  console.log(`# screenshot: ${join(RESULTS, 'meshpage.png')}`);

  // cluster-2's control plane sees the same edge from the destination's side.
  const m2 = (await (await fetch('http://127.95.2.1:15014/debug/meshz?pretty=false')).json()) as Meshz;
  const e2 = m2.edges.find((e) => e.source.cluster === 'cluster-1' && e.source.workload === 'sleep' && e.destination.workload === 'helloworld-v2');
  assert.ok(e2, JSON.stringify(m2.edges));
  assert.equal(e2.reporter, 'destination');
  assert.ok(e2.requests > 0);
});
