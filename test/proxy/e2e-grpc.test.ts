/**
 * Issue #14 (HTTP/2 and gRPC), end to end with real processes: a control plane, two sidecars
 * (`isle proxy`), a real @grpc/grpc-js server behind the echo sidecar and a real grpc-js client
 * dialling the sleep sidecar's outbound listener with h2c. The service's port is named `grpc`, so
 * the control plane's clusters say HTTP/2 and the sidecars speak it between them over mTLS (ALPN
 * h2) and to the app (h2c). Unary, server streaming, a deadline, an error status in the stats,
 * and a plain node:http2 client.
 */
import { h2Response } from '../helpers/h2.js';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { getText, startEchoSleep, waitFor, type Child, type ProxyChild } from './helpers.js';

const SLEEP_IP = '127.80.1.9';
const ECHO_IP = '127.80.1.10';
const ECHO = 'echo.default.svc.cluster.local';

const ECHO_YAML = `apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: default
spec:
  selector:
    app: echo
  ports:
  - name: grpc-echo
    port: 50051
`;

const raw = (b: Buffer): Buffer => b;
const method = (name: string, responseStream = false) => ({
  path: `/test.Echo/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: raw,
  requestDeserialize: raw,
  responseSerialize: raw,
  responseDeserialize: raw,
});
const SERVICE = { Say: method('Say'), Count: method('Count', true), Slow: method('Slow') };
const EchoClient = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
type Unary = (req: Buffer, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => void;

let cp: Child;
let echo: ProxyChild;
let sleep: ProxyChild;
let server: grpc.Server;
let client: grpc.Client;
let outbound: string;
const slow: { cancelled: boolean }[] = [];
const seen = new Map<string, number>();

before(async () => {
  server = new grpc.Server();
  server.addService(SERVICE, {
    Say: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const text = call.request.toString();
      if (text === 'missing') return cb({ code: grpc.status.NOT_FOUND, details: 'no such greeting' });
      const n = (seen.get(text) ?? 0) + 1;
      seen.set(text, n);
      if (text.startsWith('flaky') && n === 1) return cb({ code: grpc.status.UNAVAILABLE, details: 'warming up' });
      cb(null, Buffer.from(`hello ${text} from ${String(call.metadata.get('x-forwarded-client-cert')[0] ?? 'nobody')}`));
    },
    Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = Number(call.request.toString());
      let i = 0;
      // Spread over time, so the stream really flows through both sidecars while open.
      const t = setInterval(() => {
        if (++i > n) {
          clearInterval(t);
          call.end();
        } else call.write(Buffer.from(`item ${i}`));
      }, 5);
      call.on('cancelled', () => clearInterval(t));
    },
    Slow: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const rec = { cancelled: false };
      slow.push(rec);
      const t = setTimeout(() => cb(null, Buffer.from('too late')), 5000);
      call.on('cancelled', () => {
        rec.cancelled = true;
        clearTimeout(t);
      });
    },
  });
  const appPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));

  ({ cp, echo, sleep, outbound } = await startEchoSleep({ echo: ECHO_IP, sleep: SLEEP_IP }, { 'echo.yaml': ECHO_YAML }, appPort));
  // As an app would without capture: dial the sidecar, name the service in :authority.
  client = new EchoClient(outbound, grpc.credentials.createInsecure(), { 'grpc.default_authority': `echo:50051` });
});

after(() => {
  client?.close();
  server?.forceShutdown();
  for (const p of [echo, sleep]) p?.child.kill('SIGKILL');
  cp?.kill('SIGKILL');
});

function say(text: string, opts: grpc.CallOptions = {}): Promise<{ err: grpc.ServiceError | null; value?: string }> {
  return new Promise((resolve) => (client as unknown as { Say: Unary }).Say(Buffer.from(text), new grpc.Metadata(), opts, (err, r) => resolve({ err, value: r?.toString() })));
}

describe('gRPC through two isle sidecars', () => {
  test('unary over h2c → mTLS h2 → h2c; the app sees the caller in XFCC', async () => {
    const r = await waitFor('a gRPC reply through the sidecars', async () => {
      const x = await say('world', { deadline: Date.now() + 5000 });
      return x.err ? undefined : x;
    }, 30_000, 200);
    assert.match(r.value!, /^hello world from .*URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);
    // The clusters the control plane sent for a `grpc-` port are HTTP/2 ones, and the sidecars use them.
    const clusters = await getText(`${sleep.admin}/clusters`);
    assert.match(clusters.text, new RegExp(`outbound\\|50051\\|\\|${ECHO.replace(/\./g, '\\.')}::${ECHO_IP.replace(/\./g, '\\.')}:50051::`));
  });

  test('server streaming: 40 messages spread over time, then OK', async () => {
    const items: string[] = [];
    const status = await new Promise<grpc.StatusObject>((resolve, reject) => {
      const call = (client as unknown as { Count: (r: Buffer, md: grpc.Metadata) => grpc.ClientReadableStream<Buffer> }).Count(Buffer.from('40'), new grpc.Metadata());
      call.on('data', (b: Buffer) => items.push(b.toString()));
      call.on('status', resolve);
      call.on('error', reject);
    });
    assert.equal(status.code, grpc.status.OK);
    assert.deepEqual(items, Array.from({ length: 40 }, (_, i) => `item ${i + 1}`));
  });

  test('a deadline that expires: the client sees DEADLINE_EXCEEDED; the sidecar enforces grpc-timeout by itself too', async () => {
    const slowCall = (client as unknown as { Slow: Unary }).Slow.bind(client);
    const r = await new Promise<grpc.ServiceError | null>((resolve) => slowCall(Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 300 }, (e) => resolve(e)));
    assert.equal(r?.code, grpc.status.DEADLINE_EXCEEDED);

    // A client without a deadline timer of its own: only the sidecars can end the call.
    const s = http2.connect(`http://${outbound}`);
    try {
      const req = s.request({ ':method': 'POST', ':path': '/test.Echo/Slow', ':authority': 'echo:50051', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m' });
      req.end(Buffer.from([0, 0, 0, 0, 1, 0x78]));
      const res = await h2Response(req);
      assert.equal(res.headers[':status'], 200);
      assert.equal(res.trailers['grpc-status'] ?? res.headers['grpc-status'], '4');
    } finally {
      s.close();
    }
    await waitFor('the app sees the call cancelled', () => slow.length === 2 && slow.every((c) => c.cancelled), 10_000);
  });

  test('a gRPC error status reaches the client and is in both sidecars’ istio_requests_total', async () => {
    const r = await say('missing');
    assert.equal(r.err?.code, grpc.status.NOT_FOUND);
    assert.equal(r.err?.details, 'no such greeting');
    const src = (await getText(`${sleep.admin}/stats/prometheus`)).text;
    assert.match(src, /istio_requests_total\{reporter="source",[^}]*destination_service="echo\.default\.svc\.cluster\.local"[^}]*request_protocol="grpc",response_code="200",grpc_response_status="5",response_flags="-",connection_security_policy="mutual_tls"\} 1/);
    const dst = await waitFor('the destination sidecar counts it', async () => {
      const t = (await getText(`${echo.admin}/stats/prometheus`)).text;
      return /reporter="destination",[^}]*grpc_response_status="5"/.test(t) ? t : undefined;
    });
    assert.match(dst, /istio_requests_total\{reporter="destination",[^}]*source_principal="spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep"[^}]*request_protocol="grpc",response_code="200",grpc_response_status="5"/);
  });

  test("Istio's default retry policy retries a trailers-only UNAVAILABLE: the client sees OK", async () => {
    const r = await say('flaky-1');
    assert.equal(r.err, null);
    assert.match(r.value!, /^hello flaky-1 /);
    assert.equal(seen.get('flaky-1'), 2);
    const src = (await getText(`${sleep.admin}/stats/prometheus`)).text;
    assert.match(src, /envoy_cluster_upstream_rq_retry\{cluster_name="outbound\|50051\|\|echo\.default\.svc\.cluster\.local"\} [1-9]/);
  });

  test('h2c from a plain node:http2 client, two requests multiplexed on one connection', async () => {
    const s = http2.connect(`http://${outbound}`);
    try {
      const send = (text: string) => {
        const body = Buffer.from(text);
        const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, body.length]), body]);
        const req = s.request({ ':method': 'POST', ':path': '/test.Echo/Say', ':authority': ECHO, 'content-type': 'application/grpc', te: 'trailers' });
        req.end(frame);
        return h2Response(req);
      };
      const [a, b] = await Promise.all([send('one'), send('two')]);
      for (const [res, text] of [[a, 'one'], [b, 'two']] as const) {
        assert.equal(res.headers[':status'], 200);
        assert.equal(res.trailers['grpc-status'], '0');
        assert.match(res.body.subarray(5).toString(), new RegExp(`^hello ${text} from `));
      }
    } finally {
      s.close();
    }
  });
});
