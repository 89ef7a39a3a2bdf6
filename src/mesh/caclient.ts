/**
 * The certificate service's wire contract (Istio's `istio.v1.auth.IstioCertificateService`) and its
 * client: what a proxy, a peer control plane or a test needs to ask for a certificate. The server
 * side lives in src/controlplane/certservice.ts.
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { findProtoDir } from './protodir.js';

/** The contract's source; the codecs below are written from it by hand (test/mesh/caclient.test.ts checks them against it). */
export const CA_PROTO_FILE = 'isle/ca/v1/ca.proto';
export const CA_SERVICE_NAME = 'istio.v1.auth.IstioCertificateService';
/** The HTTP/2 :path of a certificate request. */
export const CERT_SERVICE_METHOD_PATH = `/${CA_SERVICE_NAME}/CreateCertificate`;

/** The repository's `proto/` directory (see findProtoDir). */
export function protoDir(): string {
  const dir = findProtoDir(CA_PROTO_FILE);
  if (!dir) throw new Error(`cannot find proto/${CA_PROTO_FILE} above ${dirname(fileURLToPath(import.meta.url))}`);
  return dir;
}

export interface CertificateRequestMsg {
  csr: string;
  validity_duration: number;
  metadata?: unknown;
}

export interface CertificateResponseMsg {
  cert_chain: string[];
}

/*
 * Two messages, encoded by hand with protobufjs' Writer/Reader rather than through
 * @grpc/proto-loader (which cost every sidecar ~1.4 MB of RSS for them, ADR 0125):
 *   IstioCertificateRequest  { string csr = 1; int64 validity_duration = 3; Struct metadata = 4; }
 *   IstioCertificateResponse { repeated string cert_chain = 1; }
 * `metadata` (Istio agents send one) is skipped when decoding: nothing here reads it. Absent
 * fields decode to their proto3 defaults, as proto-loader's `defaults: true` gave.
 */
export function encodeCertificateRequest(m: CertificateRequestMsg): Buffer {
  const w = protobuf.Writer.create();
  if (m.csr) w.uint32(10).string(m.csr);
  if (m.validity_duration) w.uint32(24).int64(m.validity_duration);
  return Buffer.from(w.finish());
}

export function decodeCertificateRequest(b: Uint8Array): CertificateRequestMsg {
  const r = protobuf.Reader.create(b);
  const m: CertificateRequestMsg = { csr: '', validity_duration: 0 };
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === 10) m.csr = r.string();
    else if (tag === 24) {
      const v = r.int64() as unknown as number | { toNumber(): number };
      m.validity_duration = typeof v === 'number' ? v : v.toNumber();
    } else r.skipType(tag & 7);
  }
  return m;
}

export function encodeCertificateResponse(m: CertificateResponseMsg): Buffer {
  const w = protobuf.Writer.create();
  for (const c of m.cert_chain) w.uint32(10).string(c);
  return Buffer.from(w.finish());
}

export function decodeCertificateResponse(b: Uint8Array): CertificateResponseMsg {
  const r = protobuf.Reader.create(b);
  const m: CertificateResponseMsg = { cert_chain: [] };
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === 10) m.cert_chain.push(r.string());
    else r.skipType(tag & 7);
  }
  return m;
}

const definition: grpc.ServiceDefinition = {
  CreateCertificate: {
    path: CERT_SERVICE_METHOD_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: encodeCertificateRequest,
    requestDeserialize: decodeCertificateRequest,
    responseSerialize: encodeCertificateResponse,
    responseDeserialize: decodeCertificateResponse,
  },
};

let loaded: grpc.ServiceClientConstructor | undefined;

/** The generic client constructor; its `.service` is the server-side definition. */
export function certServiceClientConstructor(): grpc.ServiceClientConstructor {
  return (loaded ??= grpc.makeGenericClientConstructor(definition, 'IstioCertificateService'));
}

export function certServiceDefinition(): grpc.ServiceDefinition {
  return definition;
}

export interface RequestCertificateOptions {
  csrPem: string;
  /** Omit to authenticate with the channel's client certificate (renewal). */
  token?: string;
  validitySeconds?: number;
  deadlineMs?: number;
}

type UnaryMethod = (
  req: CertificateRequestMsg,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, res?: CertificateResponseMsg) => void,
) => grpc.ClientUnaryCall;

/** Calls CreateCertificate and resolves with `cert_chain` (leaf first, root last). */
export function requestCertificate(client: grpc.Client, opts: RequestCertificateOptions): Promise<string[]> {
  const metadata = new grpc.Metadata();
  if (opts.token !== undefined) metadata.set('authorization', `Bearer ${opts.token}`);
  const req: CertificateRequestMsg = { csr: opts.csrPem, validity_duration: opts.validitySeconds ?? 0 };
  const method = (client as unknown as { CreateCertificate: UnaryMethod }).CreateCertificate;
  return new Promise((resolve, reject) => {
    method.call(
      client,
      req,
      metadata,
      { deadline: Date.now() + (opts.deadlineMs ?? 10_000) },
      (err, res) => (err ? reject(err) : resolve(res?.cert_chain ?? [])),
    );
  });
}
