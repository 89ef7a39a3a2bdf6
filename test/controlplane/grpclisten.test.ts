import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { GRPC_LISTEN_BACKLOG, listenGrpc } from '../../src/controlplane/grpclisten.js';

const HOST = '127.0.63.1';
const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const ECHO: grpc.ServiceDefinition = {
  Echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
};

function echoServer(): grpc.Server {
  const server = new grpc.Server();
  server.addService(ECHO, { Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.concat([Buffer.from('echo:'), call.request])) });
  return server;
}

function call(address: string, body: string): Promise<string> {
  const Client = grpc.makeGenericClientConstructor(ECHO, 'Echo');
  const client = new Client(address, grpc.credentials.createInsecure());
  return new Promise<string>((resolve, reject) =>
    (client as unknown as { Echo: (b: Buffer, cb: (e: Error | null, r?: Buffer) => void) => void }).Echo(Buffer.from(body), (e, r) => (e ? reject(e) : resolve(r!.toString()))),
  ).finally(() => client.close());
}

test('the gRPC port listens with the large backlog and grpc-js serves the connections it is handed', async () => {
  const server = echoServer();
  const l = await listenGrpc(server, HOST, 0, grpc.ServerCredentials.createInsecure(), 'test', (e) => assert.fail(e));
  try {
    assert.match(l.address, /^127\.0\.63\.1:\d+$/);
    assert.equal(await call(l.address, 'hi'), 'echo:hi');
    // ss prints a listening socket's accept-queue limit as Send-Q; the kernel caps it at somaxconn.
    const port = l.address.split(':')[1]!;
    const line = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' }).trim();
    const sendQ = Number(line.split(/\s+/)[2]);
    const somaxconn = Number(execFileSync('cat', ['/proc/sys/net/core/somaxconn'], { encoding: 'utf8' }));
    assert.equal(sendQ, Math.min(GRPC_LISTEN_BACKLOG, somaxconn), `ss: ${line}`);
    assert.ok(sendQ > 511, `more than node's default backlog (somaxconn ${somaxconn})`);
  } finally {
    l.close();
    server.forceShutdown();
  }
});

test('a port in use is a one-line error naming the address and the listener; close stops accepting', async () => {
  const server = echoServer();
  const l = await listenGrpc(server, HOST, 0, grpc.ServerCredentials.createInsecure(), 'first', (e) => assert.fail(e));
  const port = Number(l.address.split(':')[1]);
  const other = echoServer();
  await assert.rejects(listenGrpc(other, HOST, port, grpc.ServerCredentials.createInsecure(), 'xDS + CA, mTLS', () => undefined), (e: Error) => {
    assert.equal(e.message, `cannot listen on ${HOST}:${port} (xDS + CA, mTLS): address already in use`);
    return true;
  });
  other.forceShutdown();
  l.close();
  server.forceShutdown();
  await new Promise<void>((resolve, reject) => {
    const s = connect({ host: HOST, port });
    s.once('connect', () => reject(new Error('still accepting after close')));
    s.once('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNREFUSED' ? resolve() : reject(e)));
  });
});
