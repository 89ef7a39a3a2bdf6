import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, type AckEvent, type NackEvent } from '../../src/xds/index.js';
import {
  DeltaClient,
  SotwClient,
  cluster,
  endpoints,
  fullSnapshot,
  newChannel,
  startServer,
  waitUntil,
  type Harness,
} from './helpers.js';

const UNKNOWN = 'type.googleapis.com/envoy.config.nope.v3.Nope';

/** The server still serves a fresh proxy: the check after every abuse. */
async function stillServes(h: Harness, id = 'healthy'): Promise<void> {
  h.cache.setResources(id, CLUSTER_TYPE, 'ok', [cluster('ok')]);
  const c = new SotwClient(newChannel(h.address), { id });
  c.request(CLUSTER_TYPE);
  const r = await c.next(CLUSTER_TYPE);
  assert.equal(r.version_info, 'ok');
  c.close();
}

test('unknown type URLs are ignored (no response, stream kept) on SotW and delta', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  h.cache.setResources('n1', CLUSTER_TYPE, 'v1', [cluster('c1')]);
  const s = new SotwClient(newChannel(h.address), { id: 'n1' });
  s.request(UNKNOWN);
  s.request('');
  s.request(CLUSTER_TYPE);
  const first = await s.next();
  assert.equal(first.type_url, CLUSTER_TYPE, 'the first response is CDS: nothing came back for the unknown type');
  const d = new DeltaClient(newChannel(h.address), { id: 'n1' });
  d.subscribe(UNKNOWN, ['x']);
  d.subscribe(CLUSTER_TYPE);
  assert.equal((await d.next()).type_url, CLUSTER_TYPE);
  await waitUntil(() => h.xds.status().length === 2, 'both streams listed');
  const st = h.xds.status().find((p) => p.protocol === 'sotw')!;
  assert.deepEqual(st.ignoredTypes, [UNKNOWN, '']);
  assert.equal(h.logs.filter((l) => l.level === 'warn' && /does not serve/.test(l.msg)).length, 3);
  assert.equal(h.cache.watchCount(), 2, 'no watches for unknown types');
  s.close();
  d.close();
});

test('a first request without node, or with an empty node id, is rejected with INVALID_ARGUMENT', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const ch = newChannel(h.address);
  const s = new SotwClient(ch, { id: 'unused' });
  s.call.write({ type_url: CLUSTER_TYPE });
  const ss = await s.status;
  assert.equal(ss.code, grpc.status.INVALID_ARGUMENT);
  assert.match(ss.details, /first request on an xDS stream must carry node/);

  const d = new DeltaClient(ch, { id: 'unused' });
  d.call.write({ type_url: CLUSTER_TYPE, node: { id: '', cluster: 'x' } });
  const ds = await d.status;
  assert.equal(ds.code, grpc.status.INVALID_ARGUMENT);
  assert.match(ds.details, /node\.id/);
  await waitUntil(() => h.xds.streamCount() === 0, 'rejected streams forgotten');
  assert.equal(h.cache.watchCount(), 0);
  await stillServes(h);
});

test('stale and bogus nonces are neither ACKs nor NACKs', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const acks: AckEvent[] = [];
  const nacks: NackEvent[] = [];
  h.xds.on('ack', (e) => acks.push(e));
  h.xds.on('nack', (e) => nacks.push(e));
  h.cache.setResources('n1', CLUSTER_TYPE, 'v1', [cluster('c1')]);
  const s = new SotwClient(newChannel(h.address), { id: 'n1' });
  s.request(CLUSTER_TYPE);
  const r1 = await s.next(CLUSTER_TYPE);
  h.cache.setResources('n1', CLUSTER_TYPE, 'v2', [cluster('c1', 'x')]);
  const r2 = await s.next(CLUSTER_TYPE);
  // An ACK of the superseded response, a NACK with a made-up nonce: both ignored.
  s.send({ type_url: CLUSTER_TYPE, version_info: 'v1', response_nonce: r1.nonce });
  s.send({ type_url: CLUSTER_TYPE, response_nonce: 'bogus', error_detail: { code: 3, message: 'x' } });
  s.ack(r2);
  await waitUntil(() => acks.length === 1, 'the real ACK');
  assert.equal(acks[0]!.version, 'v2');
  assert.equal(nacks.length, 0);
  assert.equal(h.xds.status()[0]!.types[0]!.versionAcked, 'v2');

  // Delta: a stale nonce is not an ACK, but its subscription change still counts.
  h.cache.setResources('n2', ENDPOINT_TYPE, 'e1', [endpoints('a', ['10.0.0.1']), endpoints('b', ['10.0.0.2'])]);
  const d = new DeltaClient(newChannel(h.address), { id: 'n2' });
  d.subscribe(ENDPOINT_TYPE, ['a']);
  await d.next(ENDPOINT_TYPE);
  d.send({ type_url: ENDPOINT_TYPE, response_nonce: 'bogus', resource_names_subscribe: ['b'] });
  const rb = await d.next(ENDPOINT_TYPE);
  assert.deepEqual(rb.resources.map((r) => r.name), ['b']);
  assert.equal(acks.length, 1);
  s.close();
  d.close();
});

test('bytes that are not a DiscoveryRequest end that stream only (INTERNAL from grpc-js)', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const ch = newChannel(h.address);
  const path = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
  const raw = ch.makeBidiStreamRequest(path, (b: Buffer) => b, (b: Buffer) => b);
  const status = new Promise<grpc.StatusObject>((resolve) => raw.on('status', resolve));
  raw.on('error', () => {});
  // node (field 2) claims 3 bytes; inside, a length runs past the end.
  raw.write(Buffer.from([0x12, 0x03, 0x0f, 0x00, 0x00]));
  assert.equal((await status).code, grpc.status.INTERNAL);
  await waitUntil(() => h.xds.streamCount() === 0, 'the stream forgotten');
  await stillServes(h);
});

test('a request over the max receive size ends that stream only (RESOURCE_EXHAUSTED)', async (t) => {
  const h = await startServer({ grpcOptions: { 'grpc.max_receive_message_length': 16 * 1024 } });
  t.after(() => h.close());
  h.cache.setResources('n1', CLUSTER_TYPE, 'v1', [cluster('c1')]);
  const s = new SotwClient(newChannel(h.address), { id: 'n1' });
  s.request(CLUSTER_TYPE);
  s.ack(await s.next(CLUSTER_TYPE));
  assert.equal(h.cache.watchCount(), 1);
  s.request(ENDPOINT_TYPE, Array.from({ length: 100 }, (_, i) => `${i}-${'x'.repeat(500)}`));
  const st = await s.status;
  assert.equal(st.code, grpc.status.RESOURCE_EXHAUSTED);
  await waitUntil(() => h.xds.streamCount() === 0 && h.cache.watchCount() === 0, 'the stream cleaned up');
  await stillServes(h);
});

test('proxies leaving mid-stream (cancel or half-close) are cleaned up; pushes after that are harmless', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const reasons: string[] = [];
  h.xds.on('disconnect', (e) => reasons.push(e.reason));
  h.cache.setSnapshot('n1', fullSnapshot('v1'));
  const ch = newChannel(h.address);
  const a = new SotwClient(ch, { id: 'n1' });
  a.request(CLUSTER_TYPE);
  await a.next(CLUSTER_TYPE);
  a.close(); // before ACKing
  const b = new DeltaClient(ch, { id: 'n1' });
  b.subscribe(CLUSTER_TYPE);
  await b.next(CLUSTER_TYPE);
  b.call.end(); // half-close: the server answers with OK
  assert.equal((await b.status).code, grpc.status.OK);
  await waitUntil(() => h.xds.streamCount() === 0 && h.cache.watchCount() === 0, 'both gone');
  assert.equal(reasons.length, 2);
  h.cache.setSnapshot('n1', fullSnapshot('v2'));
  await stillServes(h);
});

test('200 quick connects and disconnects leak no streams or watches', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const channels = Array.from({ length: 4 }, () => newChannel(h.address));
  let version = 0;
  const pushes = setInterval(() => {
    version++;
    for (let n = 0; n < 10; n++) h.cache.setSnapshot(`n${n}`, fullSnapshot(`v${version}`));
  }, 5);
  t.after(() => clearInterval(pushes));
  const waits: Promise<unknown>[] = [];
  for (let i = 0; i < 200; i++) {
    const ch = channels[i % channels.length]!;
    const nodeId = `n${i % 10}`;
    const c = i % 2 ? new SotwClient(ch, { id: nodeId }) : new DeltaClient(ch, { id: nodeId });
    if (c instanceof SotwClient) {
      c.request(CLUSTER_TYPE);
      c.request(ENDPOINT_TYPE, ['c1']);
    } else {
      c.subscribe(CLUSTER_TYPE);
      c.subscribe(ENDPOINT_TYPE, ['c1']);
    }
    const done = c.status.catch(() => undefined);
    switch (i % 4) {
      case 0:
        c.close();
        break;
      case 1:
        c.call.end();
        break;
      default:
        waits.push(
          c
            .next(undefined, 10_000)
            .catch(() => undefined)
            .then(() => c.close()),
        );
    }
    waits.push(done);
  }
  await Promise.all(waits);
  clearInterval(pushes);
  await waitUntil(() => h.xds.streamCount() === 0, 'no open streams');
  assert.equal(h.cache.watchCount(), 0);
  assert.deepEqual(h.xds.status(), []);
  for (const ch of channels) ch.close();
  await stillServes(h);
});

test('event listeners that throw are logged and do not break the stream', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  h.xds.on('connect', () => {
    throw new Error('metrics broke');
  });
  h.xds.on('send', () => {
    throw new Error('metrics broke again');
  });
  await stillServes(h);
  assert.ok(h.logs.some((l) => l.level === 'error' && /listener threw/.test(l.msg)));
});

test('authenticate: a refused node ends the stream with PERMISSION_DENIED and leaves no watch; an accepted one is served', async (t) => {
  const seen: string[] = [];
  const h = await startServer({
    xds: {
      authenticate: (node) => {
        seen.push(node.id);
        return node.id.startsWith('evil') ? `node ${node.id} does not match the client certificate` : undefined;
      },
    },
  });
  t.after(() => h.close());
  h.cache.setResources('evil-1', CLUSTER_TYPE, 'v1', [cluster('c1')]);
  const bad = new SotwClient(newChannel(h.address), { id: 'evil-1' });
  bad.request(CLUSTER_TYPE);
  const st = await bad.status;
  assert.equal(st.code, grpc.status.PERMISSION_DENIED);
  assert.match(st.details, /does not match the client certificate/);
  assert.equal(h.cache.watchCount(), 0);
  await stillServes(h, 'good-1');
  assert.deepEqual(seen, ['evil-1', 'good-1'], 'asked once per stream, on the first request');
});
