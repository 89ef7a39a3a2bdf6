/**
 * The benchmark's gRPC app, in a process of its own: a @grpc/grpc-js server whose unary
 * `/bench.Echo/Say` answers every call with `bytes` bytes (raw messages, no protobuf). Prints
 * `listening <host:port>` on stdout. argv: [host] [bytes].
 */
import * as grpc from '@grpc/grpc-js';
import { BENCH_GRPC_SERVICE } from './grpcservice.js';

const host = process.argv[2] ?? '127.0.0.1';
const reply = Buffer.alloc(Number(process.argv[3] ?? 1024), 'x');
const server = new grpc.Server();
server.addService(BENCH_GRPC_SERVICE, { Say: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, reply) });
server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (e, port) => {
  if (e) throw e;
  process.stdout.write(`listening ${host}:${port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
