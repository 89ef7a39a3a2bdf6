/**
 * Requests read straight from the HTTP/2 DATA chunks (src/xds/directrecv.ts): gRPC framing across
 * and within chunks, limits, compression and bad bytes, against the real ADS server over real
 * HTTP/2 (node:http2 as a raw gRPC client, so the chunking is ours to choose; grpc-js for gzip).
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { adsServiceDefinition, typeSnapshot, type DiscoveryResponseMsg } from '../../src/xds/index.js';
import { encodeMessage } from '../../src/xds/codec.js';
import { ENDPOINT_TYPE } from '../../src/mesh/typeurls.js';
import { endpoints, SotwClient, startServer, waitUntil, type Harness } from './helpers.js';

const ADDRESS = '127.0.61.1:0';
/** The harness names 127.0.0.1 whatever it bound; this suite binds its own loopback address. */
const target = (h: Harness) => `127.0.61.1:${h.address.split(':').at(-1)}`;
const PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
const ads = adsServiceDefinition();

function frame(msg: Buffer): Buffer {
  const f = Buffer.alloc(5 + msg.length);
  f.writeUInt32BE(msg.length, 1);
  msg.copy(f, 5);
  return f;
}

function request(id: string, typeUrl: string, names: string[], extra: Record<string, unknown> = {}): Buffer {
  return encodeMessage('envoy.service.discovery.v3.DiscoveryRequest', { node: { id }, type_url: typeUrl, resource_names: names, ...extra });
}

interface RawStream {
  responses: DiscoveryResponseMsg[];
  trailers: Promise<http2.IncomingHttpHeaders>;
  write(b: Buffer): Promise<void>;
  close(): void;
}

/** A SotW ADS stream on node:http2 whose writes are exactly the chunks given. */
function rawStream(h: Harness): RawStream {
  const session = http2.connect(`http://${target(h)}`);
  const s = session.request({ ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', te: 'trailers' });
  const responses: DiscoveryResponseMsg[] = [];
  let buf = Buffer.alloc(0);
  s.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
      const n = buf.readUInt32BE(1);
      responses.push(ads.StreamAggregatedResources.responseDeserialize(buf.subarray(5, 5 + n)));
      buf = buf.subarray(5 + n);
    }
  });
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => {
    s.on('trailers', (t) => resolve(t));
    // A trailers-only response (an error before any message) comes as the response headers.
    s.on('response', (hd) => {
      if (hd['grpc-status'] !== undefined) resolve(hd);
    });
  });
  return {
    responses,
    trailers,
    write: (b) => new Promise((resolve, reject) => s.write(b, (e) => (e ? reject(e) : resolve()))),
    close: () => session.destroy(),
  };
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `outbound|80||service-${i}.some-namespace.svc.cluster.local`);

test('directrecv: messages split anywhere, several in one chunk, and one far larger than a DATA frame', async (t) => {
  const h = await startServer({ address: ADDRESS });
  t.after(() => h.close());
  const many = names(3000);
  h.cache.setResources('raw', ENDPOINT_TYPE, 'e1', typeSnapshot('e1', many.map((n, i) => endpoints(n, [`10.1.${i >> 8}.${i & 255}`]))));
  const s = rawStream(h);
  t.after(() => s.close());
  // Two requests in one write: the first subscribes to two names, the second (same nonce-less
  // state) narrows it to one; then a ~200 KB request whose 5-byte prefix is split across writes.
  await s.write(Buffer.concat([frame(request('raw', ENDPOINT_TYPE, many.slice(0, 2))), frame(request('raw', ENDPOINT_TYPE, many.slice(2, 3)))]));
  await waitUntil(() => s.responses.length >= 1, 'a response to the first requests');
  const big = frame(request('raw', ENDPOINT_TYPE, many, { response_nonce: s.responses.at(-1)!.nonce, version_info: 'e1' }));
  assert.ok(big.length > 150_000);
  await s.write(big.subarray(0, 3));
  for (let i = 3; i < big.length; i += 7000) await s.write(big.subarray(i, Math.min(big.length, i + 7000)));
  await waitUntil(() => s.responses.some((r) => r.resources.length === many.length - 1 || r.resources.length === many.length), 'the whole subscription answered');
  const st = h.xds.status().find((p) => p.node.id === 'raw')!;
  assert.equal(st.types.find((x) => x.typeUrl === ENDPOINT_TYPE)!.names.length, many.length);
  // Read by directrecv, not grpc-js' decoder.
  assert.deepEqual(h.xds.reads, { direct: 1, copied: 0 });
  // The ACK repeats the 3,000 names, again split; it changes nothing and is answered by nothing.
  const last = s.responses.at(-1)!;
  const before = s.responses.length;
  const ack = frame(request('raw', ENDPOINT_TYPE, many, { response_nonce: last.nonce, version_info: last.version_info }));
  for (let i = 0; i < ack.length; i += 16384) await s.write(ack.subarray(i, Math.min(ack.length, i + 16384)));
  await waitUntil(() => h.xds.status().find((p) => p.node.id === 'raw')!.types.find((x) => x.typeUrl === ENDPOINT_TYPE)!.versionAcked === 'e1', 'the ACK');
  assert.equal(s.responses.length, before);
});

test('directrecv: a request over the server limit ends the stream with RESOURCE_EXHAUSTED; bad bytes with INTERNAL', async (t) => {
  const h = await startServer({ address: ADDRESS, grpcOptions: { 'grpc.max_receive_message_length': 1000 } });
  t.after(() => h.close());
  const s = rawStream(h);
  t.after(() => s.close());
  await s.write(frame(request('big', ENDPOINT_TYPE, names(100))));
  const tr = await s.trailers;
  assert.equal(tr['grpc-status'], String(grpc.status.RESOURCE_EXHAUSTED));
  assert.match(decodeURI(String(tr['grpc-message'])), /larger than max \(\d+ vs 1000\)/);

  const bad = rawStream(h);
  t.after(() => bad.close());
  // A node (field 2) of 5 bytes with one present: truncated.
  await bad.write(frame(Buffer.from([0x12, 0x05, 0x0a])));
  const tb = await bad.trailers;
  assert.equal(tb['grpc-status'], String(grpc.status.INTERNAL));
  assert.equal(decodeURI(String(tb['grpc-message'])), 'Error deserializing request');
  assert.equal(h.xds.reads.copied, 0);
});

test('directrecv: gzip-compressed requests from grpc-js are decompressed and served', async (t) => {
  const h = await startServer({ address: ADDRESS });
  t.after(() => h.close());
  const many = names(500);
  h.cache.setResources('gz', ENDPOINT_TYPE, 'e1', typeSnapshot('e1', many.map((n, i) => endpoints(n, [`10.2.${i >> 8}.${i & 255}`]))));
  const channel = new grpc.Client(target(h), grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });
  const c = new SotwClient(channel, { id: 'gz', metadata: {} }, { autoAck: true });
  t.after(() => c.close());
  c.request(ENDPOINT_TYPE, many);
  const r = await c.next(ENDPOINT_TYPE);
  assert.equal(r.resources.length, many.length);
  await waitUntil(() => h.xds.status().find((p) => p.node.id === 'gz')?.types[0]?.versionAcked === 'e1', 'the compressed ACK');
  assert.deepEqual(h.xds.reads, { direct: 1, copied: 0 });
});

test('directrecv: two streams assembling large requests at the same time each get their own names', async (t) => {
  const h = await startServer({ address: ADDRESS });
  t.after(() => h.close());
  const a = names(2500);
  const b = names(2600).map((n) => n.replace('service-', 'other-'));
  for (const [id, ns] of [['a', a], ['b', b]] as const) {
    h.cache.setResources(id, ENDPOINT_TYPE, 'e1', typeSnapshot('e1', ns.map((n, i) => endpoints(n, [`10.3.${i >> 8}.${i & 255}`]))));
  }
  const sa = rawStream(h);
  const sb = rawStream(h);
  t.after(() => sa.close());
  t.after(() => sb.close());
  const fa = frame(request('a', ENDPOINT_TYPE, a));
  const fb = frame(request('b', ENDPOINT_TYPE, b));
  // Halves interleaved: both messages are half-assembled (each in a pooled buffer) at once.
  const half = (f: Buffer, k: 0 | 1) => (k === 0 ? f.subarray(0, f.length >> 1) : f.subarray(f.length >> 1));
  await sa.write(half(fa, 0));
  await sb.write(half(fb, 0));
  await waitUntil(() => h.xds.streamCount() === 2, 'both streams open');
  await sa.write(half(fa, 1));
  await sb.write(half(fb, 1));
  await waitUntil(() => sa.responses.length > 0 && sb.responses.length > 0, 'both answered');
  const subscribed = (id: string) => h.xds.status().find((p) => p.node.id === id)!.types.find((x) => x.typeUrl === ENDPOINT_TYPE)!.names;
  assert.deepEqual([...subscribed('a')].sort(), [...a].sort());
  assert.deepEqual([...subscribed('b')].sort(), [...b].sort());
  assert.equal(sa.responses[0]!.resources.length, a.length);
  assert.equal(sb.responses[0]!.resources.length, b.length);
  // The pooled buffers went back: the next requests (ACKs repeating the names) are read as well.
  await sa.write(frame(request('a', ENDPOINT_TYPE, a, { response_nonce: sa.responses[0]!.nonce, version_info: 'e1' })));
  await waitUntil(() => h.xds.status().find((p) => p.node.id === 'a')!.types[0]!.versionAcked === 'e1', 'the ACK of a');
});
