// `isle x precheck` over real CA directories, real sockets and the real CLI.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { caFiles, createIntermediate, createRoot, writeFilesAtomic, type RootCa } from '../../src/pki/index.js';
import { runIsle } from '../helpers/cli.js';
import { tempDir } from '../pki/fixtures.js';

async function intermediate(root: RootCa, cluster: string, now?: Date): Promise<string> {
  const dir = join(tempDir('isle-precheck-'), cluster);
  const ca = await createIntermediate({ root, cluster, ...(now ? { now } : {}) });
  await writeFilesAtomic(dir, caFiles(ca));
  return dir;
}

describe('isle x precheck', () => {
  let root: RootCa;
  let c1: string;
  let c2: string;
  let busy: Server;
  before(async () => {
    root = await createRoot({ trustDomain: 'cluster.local' });
    c1 = await intermediate(root, 'cluster-1');
    c2 = await intermediate(root, 'cluster-2');
    busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  });
  after(() => busy.close());

  it('two clusters of one root and a free address: no problems, exit 0', async () => {
    const free = createServer();
    const port = await new Promise<number>((r) => free.listen(0, '127.0.0.1', () => r((free.address() as AddressInfo).port)));
    await new Promise<void>((r) => free.close(() => r()));
    const r = await runIsle(['x', 'precheck', '--ca', c1, '--ca', c2, '--listen', `127.0.0.1:${port}`]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`✔ address: 127\\.0\\.0\\.1:${port} is free`));
    assert.match(r.stdout, /✔ trust: all 2 clusters share one root/);
    assert.match(r.stdout, /✔ ca: .*cluster-1: consistent CA for cluster cluster-1, trust domain cluster\.local/);
    assert.match(r.stdout, /no problems found\n$/);
  });

  it('an address in use is named; exit 1', async () => {
    const addr = `127.0.0.1:${(busy.address() as AddressInfo).port}`;
    const r = await runIsle(['x', 'precheck', '--listen', addr]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`✘ address: ${addr}: already in use`));
  });

  it('a cluster of another root, and two intermediates claiming one cluster, fail', async () => {
    const other = await createRoot({ trustDomain: 'cluster.local' });
    const foreign = await intermediate(other, 'cluster-3');
    const twin = await intermediate(root, 'cluster-1');
    const r = await runIsle(['x', 'precheck', '--ca', c1, '--ca', foreign, '--ca', twin, '--json']);
    assert.equal(r.code, 1);
    const out = JSON.parse(r.stdout) as { failures: number; findings: { level: string; check: string; message: string }[] };
    const fails = out.findings.filter((f) => f.level === 'fail').map((f) => f.message);
    assert.ok(fails.some((m) => m.includes(foreign) && /trusts a different root/.test(m)), fails.join('\n'));
    assert.ok(fails.some((m) => /cluster cluster-1 is claimed by 2 intermediates/.test(m)), fails.join('\n'));
  });

  it('certificates from the future (a clock behind) are a failure that says so', async () => {
    const ahead = new Date(Date.now() + 3 * 3600_000);
    const futureRoot = await createRoot({ trustDomain: 'cluster.local', now: ahead });
    const dir = await intermediate(futureRoot, 'cluster-9', ahead);
    const r = await runIsle(['x', 'precheck', '--ca', dir]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /✘ clock: .*ca-cert\.pem: not valid until .* the clock is behind .* by 1\d\d min/);
  });

  it('nothing to check is a usage error (exit 2)', async () => {
    const r = await runIsle(['x', 'precheck']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /nothing to check/);
  });
});
