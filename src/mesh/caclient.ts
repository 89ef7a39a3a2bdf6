/**
 * The certificate service's wire contract (Istio's `istio.v1.auth.IstioCertificateService`) and its
 * client: what a proxy, a peer control plane or a test needs to ask for a certificate. The server
 * side lives in src/controlplane/certservice.ts.
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { findProtoDir } from './protodir.js';

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

let loaded: grpc.ServiceClientConstructor | undefined;

/** The generic client constructor; its `.service` is the server-side definition. */
export function certServiceClientConstructor(): grpc.ServiceClientConstructor {
  if (loaded) return loaded;
  const def = protoLoader.loadSync(CA_PROTO_FILE, {
    includeDirs: [protoDir()],
    keepCase: true,
    // Lifetimes in seconds fit a double exactly; strings would only push parsing into handlers.
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const ctor = grpc.loadPackageDefinition(def)['istio'] as unknown as { v1: { auth: { IstioCertificateService: grpc.ServiceClientConstructor } } };
  loaded = ctor.v1.auth.IstioCertificateService;
  return loaded;
}

export function certServiceDefinition(): grpc.ServiceDefinition {
  return certServiceClientConstructor().service;
}

export interface CertificateRequestMsg {
  csr: string;
  validity_duration: number;
  metadata?: unknown;
}

export interface CertificateResponseMsg {
  cert_chain: string[];
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
