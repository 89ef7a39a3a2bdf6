/** The benchmark's gRPC service: one unary method over raw bytes (no .proto, no protobuf cost). */
const raw = (b: Buffer): Buffer => b;

export const BENCH_GRPC_SERVICE = {
  Say: { path: '/bench.Echo/Say', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
};
