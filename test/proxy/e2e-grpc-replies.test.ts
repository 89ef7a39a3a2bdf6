/**
 * The sidecar's own answers to gRPC calls, end to end with real processes: a control plane, two
 * sidecars, a real @grpc/grpc-js server behind one and a real grpc-js client dialling the other's
 * outbound listener (h2c; mTLS h2 between the sidecars). Whichever sidecar answers — the client's
 * (no healthy upstream, no route, connection failure, fault abort) or the server's (RBAC deny) —
 * the client gets a trailers-only HTTP 200 with the gRPC status Envoy would send, and both the
 * stats and the HTTP/1.1 form say the same. Trailing metadata of a real call survives the pair.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { h2Response } from '../helpers/h2.js';
import { workloadEntryYaml } from '../helpers/config.js';
import { getText, run, startEchoSleep, waitFor, type Child, type ProxyChild } from './helpers.js';

const SLEEP_IP = '127.0.115.9';
const ECHO_IP = '127.0.115.10';
// Nothing listens here: the `dead` service's one endpoint refuses connections.
const DEAD_IP = '127.0.115.20';

const SERVICES = `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo}
  ports:
  - {name: grpc-echo, port: 50051}
---
apiVersion: v1
kind: Service
metadata: {name: nobody, namespace: default}
spec:
  selector: {app: nobody}
  ports:
  - {name: grpc, port: 50052}
---
apiVersion: v1
kind: Service
metadata: {name: dead, namespace: default}
spec:
  selector: {app: dead}
  ports:
  - {name: grpc, port: 50053}
---
${workloadEntryYaml('dead-0', DEAD_IP, 'dead', { app: 'dead' })}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  http:
  - match:
    - uri: {exact: /test.Echo/Faulty}
    fault:
      abort:
        grpcStatus: RESOURCE_EXHAUSTED
        percentage: {value: 100}
    route:
    - destination: {host: echo}
  - match:
    - uri: {exact: /test.Echo/Say}
    - uri: {exact: /test.Echo/Forbidden}
    route:
    - destination: {host: echo}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-forbidden, namespace: default}
spec:
  selector:
    matchLabels: {app: echo}
  action: DENY
  rules:
  - to:
    - operation:
        paths: [/test.Echo/Forbidden]
`;

const raw = (b: Buffer): Buffer => b;
const unary = (name: string) => ({ path: `/test.Echo/${name}`, requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw });
const SERVICE = { Say: unary('Say'), Forbidden: unary('Forbidden'), Faulty: unary('Faulty'), Missing: unary('Missing') };
const EchoClient = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
type Unary = (req: Buffer, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => void;

let cp: Child;
let echo: ProxyChild;
let sleep: ProxyChild;
let server: grpc.Server;
let outbound: string;
const clients: grpc.Client[] = [];
let appCalls = 0;

before(async () => {
  server = new grpc.Server();
  const answer = (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
    appCalls++;
    const trailer = new grpc.Metadata();
    trailer.set('x-trailer', 'kept');
    cb(null, Buffer.from(`hello ${call.request.toString()}`), trailer);
  };
  server.addService(SERVICE, { Say: answer, Forbidden: answer, Faulty: answer, Missing: answer });
  const appPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  ({ cp, echo, sleep, outbound } = await startEchoSleep({ echo: ECHO_IP, sleep: SLEEP_IP }, { 'services.yaml': SERVICES }, appPort));
});

after(() => {
  for (const c of clients) c.close();
  server?.forceShutdown();
  for (const p of [echo, sleep]) p?.child.kill('SIGKILL');
  cp?.kill('SIGKILL');
});

/** A grpc-js client that dials the sleep sidecar and names `authority` (no capture: as an app told to). */
function client(authority: string): grpc.Client {
  const c = new EchoClient(outbound, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority });
  clients.push(c);
  return c;
}

function call(c: grpc.Client, method: keyof typeof SERVICE): Promise<{ err: grpc.ServiceError | null; value?: string; trailers?: grpc.Metadata }> {
  return new Promise((resolve) => {
    let trailers: grpc.Metadata | undefined;
    const fn = (c as unknown as Record<string, Unary>)[method]!.bind(c);
    const h = fn(Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 8000 }, (err, r) => setImmediate(() => resolve({ err, value: r?.toString(), trailers })));
    (h as unknown as grpc.ClientUnaryCall).on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

describe('gRPC local replies through two isle sidecars', () => {
  test('a real call works, and its trailing metadata crosses both sidecars', async () => {
    const echoClient = client('echo:50051');
    const r = await waitFor('a gRPC reply through the sidecars', async () => {
      const x = await call(echoClient, 'Say');
      return x.err ? undefined : x;
    }, 30_000, 200);
    assert.equal(r.value, 'hello x');
    assert.deepEqual(r.trailers?.get('x-trailer'), ['kept']);
  });

  test('no healthy upstream → UNAVAILABLE "no healthy upstream" (503 mapped), counted as grpc 14 UH', async () => {
    const r = await call(client('nobody:50052'), 'Say');
    assert.equal(r.err?.code, grpc.status.UNAVAILABLE);
    assert.equal(r.err?.details, 'no healthy upstream');
    const m = (await getText(`${sleep.admin}/stats/prometheus`)).text;
    assert.match(m, /istio_requests_total\{reporter="source",[^}]*destination_service="nobody\.default\.svc\.cluster\.local"[^}]*request_protocol="grpc",response_code="200",grpc_response_status="14",response_flags="UH"/);
  });

  test('no route for the method → UNIMPLEMENTED (404 mapped)', async () => {
    const r = await call(client('echo:50051'), 'Missing');
    assert.equal(r.err?.code, grpc.status.UNIMPLEMENTED);
    assert.match(r.err?.details ?? '', /^isle: no route for POST \/test\.Echo\/Missing on host "echo:50051"/);
  });

  test('connection refused by the only endpoint → UNAVAILABLE with Envoy\'s reset text', async () => {
    const r = await call(client('dead:50053'), 'Say');
    assert.equal(r.err?.code, grpc.status.UNAVAILABLE);
    assert.match(r.err?.details ?? '', /^upstream connect error or disconnect\/reset before headers\. (retried and the latest )?reset reason: connection failure/);
  });

  test('fault abort grpcStatus RESOURCE_EXHAUSTED → that status; the app never sees the call', async () => {
    const before = appCalls;
    const r = await call(client('echo:50051'), 'Faulty');
    assert.equal(r.err?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(r.err?.details, 'fault filter abort');
    assert.equal(appCalls, before);
    const m = (await getText(`${sleep.admin}/stats/prometheus`)).text;
    assert.match(m, /grpc_response_status="8",response_flags="FI"/);
  });

  test("the server's sidecar denies (RBAC) → PERMISSION_DENIED, relayed unchanged by the client's", async () => {
    const before = appCalls;
    const r = await call(client('echo:50051'), 'Forbidden');
    assert.equal(r.err?.code, grpc.status.PERMISSION_DENIED);
    assert.equal(r.err?.details, 'RBAC: access denied');
    assert.equal(appCalls, before);
    const dst = await waitFor('the destination sidecar counts the denial', async () => {
      const t = (await getText(`${echo.admin}/stats/prometheus`)).text;
      return /reporter="destination",[^}]*grpc_response_status="7"/.test(t) ? t : undefined;
    });
    assert.match(dst, /istio_requests_total\{reporter="destination",[^}]*request_protocol="grpc",response_code="200",grpc_response_status="7"/);
  });

  test('on the wire: one HEADERS frame with END_STREAM (trailers-only), no body, no content-length', async () => {
    const s = http2.connect(`http://${outbound}`);
    try {
      const req = s.request({ ':method': 'POST', ':path': '/test.Echo/Say', ':authority': 'nobody:50052', 'content-type': 'application/grpc', te: 'trailers' });
      req.end(Buffer.from([0, 0, 0, 0, 1, 0x78]));
      const res = await h2Response(req);
      assert.equal(res.headers[':status'], 200);
      assert.equal(res.headers['content-type'], 'application/grpc');
      assert.equal(res.headers['grpc-status'], '14');
      assert.equal(res.headers['grpc-message'], 'no healthy upstream');
      assert.equal(res.headers['content-length'], undefined);
      assert.deepEqual(Object.keys(res.trailers), []);
      assert.equal(res.body.length, 0);
    } finally {
      s.close();
    }
  });

  test('HTTP/1.1 with a gRPC content-type: the same answer as a header-only 200', async () => {
    const r = await run('curl', ['-sS', '--max-time', '10', '-x', `http://${outbound}`, '-D', '-', '-o', '/dev/null', '-X', 'POST', '-H', 'content-type: application/grpc', 'http://echo:50051/test.Echo/Missing']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^HTTP\/1\.1 200 /);
    assert.match(r.stdout, /\r\ngrpc-status: 12\r\n/);
    assert.match(r.stdout, /\r\ncontent-length: 0\r\n/);
    // A non-gRPC request to the same place still gets the HTTP answer.
    const plain = await run('curl', ['-sS', '--max-time', '10', '-x', `http://${outbound}`, '-o', '/dev/null', '-w', '%{http_code}', 'http://echo:50051/test.Echo/Missing']);
    assert.equal(plain.stdout, '404');
  });
});
