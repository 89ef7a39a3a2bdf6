/**
 * Istio's NDS name table over real gRPC ADS, delta and SotW: the proxy subscribes (wildcard) only
 * when it runs a DNS proxy, hands each accepted table over apart from the graph, and NACKs a bad
 * table with every error while keeping the last good one.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { NameTableModel } from '../../../src/proxy/decode/nametable.js';
import { XdsClient, type NackEvent } from '../../../src/proxy/xds/index.js';
import { CLUSTER_TYPE, LISTENER_TYPE, makeResource, NAME_TABLE_TYPE, SERVED_TYPES, SnapshotCache, XdsServer } from '../../../src/xds/index.js';

const NODE_ID = 'sidecar~127.75.2.1~sleep.hello~hello.svc.cluster.local';
const closers: (() => void)[] = [];
after(() => closers.forEach((c) => c()));

async function serve(cache: SnapshotCache): Promise<{ address: string; xds: XdsServer }> {
  const xds = new XdsServer({ cache, typeUrls: SERVED_TYPES });
  const g = new grpc.Server();
  xds.addToServer(g);
  const port = await new Promise<number>((res, rej) => g.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  closers.push(() => {
    xds.close();
    g.forceShutdown();
  });
  return { address: `127.0.0.1:${port}`, xds };
}

async function until<T>(what: string, f: () => T | undefined | false, ms = 8000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const table = (entries: Record<string, unknown>) => makeResource(NAME_TABLE_TYPE, { table: entries });

function seed(cache: SnapshotCache): void {
  cache.setResources(NODE_ID, CLUSTER_TYPE, 'c1', []);
  cache.setResources(NODE_ID, LISTENER_TYPE, 'l1', []);
  cache.setResources(NODE_ID, NAME_TABLE_TYPE, 'n1', [table({ 'helloworld.hello.global': { ips: ['127.255.0.8'], registry: 'External' } })]);
}

for (const protocol of ['delta', 'sotw'] as const) {
  describe(`NDS (${protocol})`, () => {
    test('the table arrives apart from the graph; a bad one is NACKed with every error and the last good one stays', async () => {
      const cache = new SnapshotCache();
      seed(cache);
      const srv = await serve(cache);
      const tables: NameTableModel[] = [];
      const nacks: NackEvent[] = [];
      const c = new XdsClient({
        address: srv.address,
        credentials: () => grpc.credentials.createInsecure(),
        node: { id: NODE_ID, metadata: { NAMESPACE: 'hello' } },
        protocol,
        onGraph: () => {},
        onNameTable: (t) => void tables.push(t),
        backoff: () => 20,
      });
      c.on('nack', (n: NackEvent) => nacks.push(n));
      c.start();
      try {
        const t = await until('first table', () => tables[0]);
        assert.deepEqual(t.get('helloworld.hello.global')?.ips, ['127.255.0.8']);
        cache.setResources(NODE_ID, NAME_TABLE_TYPE, 'n2', [table({ 'Bad.Host': { ips: ['127.0.0.1'] }, 'x.global': { ips: ['not-an-ip'] } })]);
        const n = await until('NACK', () => nacks[0]);
        assert.equal(n.typeUrl, NAME_TABLE_TYPE);
        assert.equal(n.errors.length, 2, n.errors.join('\n'));
        const st = await until('server saw the NACK', () => srv.xds.status()[0]?.types.find((x) => x.typeUrl === NAME_TABLE_TYPE)?.lastNack);
        assert.match(st.message, /"x\.global"\]\.ips\[0\]: string "not-an-ip" is not an IP address/);
        assert.equal(c.state.type(NAME_TABLE_TYPE).version, 'n1');
        assert.deepEqual([...c.state.nameTable().keys()], ['helloworld.hello.global']);
        cache.setResources(NODE_ID, NAME_TABLE_TYPE, 'n3', [table({ 'a.b.global': { ips: ['127.255.0.9'] } })]);
        const t3 = await until('third table', () => tables.find((x) => x.has('a.b.global')));
        assert.equal(t3.size, 1);
      } finally {
        c.stop();
      }
    });

    test('a proxy without a DNS proxy never subscribes to NDS', async () => {
      const cache = new SnapshotCache();
      seed(cache);
      const srv = await serve(cache);
      const graphs: unknown[] = [];
      const c = new XdsClient({
        address: srv.address,
        credentials: () => grpc.credentials.createInsecure(),
        node: { id: NODE_ID, metadata: { NAMESPACE: 'hello' } },
        protocol,
        onGraph: (g) => void graphs.push(g),
        backoff: () => 20,
      });
      c.start();
      try {
        await until('graph', () => graphs[0]);
        const types = srv.xds.status()[0]!.types.map((x) => x.typeUrl);
        assert.ok(types.includes(CLUSTER_TYPE) && !types.includes(NAME_TABLE_TYPE), types.join(' '));
      } finally {
        c.stop();
      }
    });
  });
}
