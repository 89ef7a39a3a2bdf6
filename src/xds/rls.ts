/**
 * Envoy's rate limit service API (`envoy.service.ratelimit.v3.RateLimitService`), loaded from the
 * rls.proto that `@grpc/grpc-js-xds` ships, as a grpc-js service definition. Shared by the service
 * (`isle ratelimit`) and the proxy's `envoy.filters.http.ratelimit` client, so both speak exactly
 * the bytes Envoy and envoyproxy/ratelimit do.
 *
 * Its own small root, not `xdsRoot()`: a sidecar that only calls ShouldRateLimit does not need the
 * whole xDS schema for it.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { protoIncludeDirs } from './protos.js';

export const RLS_SERVICE = 'envoy.service.ratelimit.v3.RateLimitService';
export const RLS_METHOD_PATH = `/${RLS_SERVICE}/ShouldRateLimit`;

export type RlsCode = 'UNKNOWN' | 'OK' | 'OVER_LIMIT';
export type RlsUnit = 'UNKNOWN' | 'SECOND' | 'MINUTE' | 'HOUR' | 'DAY' | 'MONTH' | 'YEAR';

export interface RlsEntry {
  key: string;
  value: string;
}

export interface RlsDescriptor {
  entries: RlsEntry[];
}

export interface RlsRequest {
  domain: string;
  descriptors: RlsDescriptor[];
  /** 0 means 1 (Envoy's default). */
  hits_addend?: number;
}

export interface RlsDescriptorStatus {
  code: RlsCode;
  current_limit?: { name?: string; requests_per_unit: number; unit: RlsUnit };
  limit_remaining?: number;
  duration_until_reset?: { seconds: number; nanos?: number };
}

export interface RlsResponse {
  overall_code: RlsCode;
  statuses?: RlsDescriptorStatus[];
}

let root: protobuf.Root | undefined;

function rlsRoot(): protobuf.Root {
  if (root) return root;
  const dirs = protoIncludeDirs();
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => {
    if (isAbsolute(target)) return target;
    for (const d of dirs) if (existsSync(join(d, target))) return join(d, target);
    return target;
  };
  r.loadSync('envoy/service/ratelimit/v3/rls.proto', { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

function codec<T>(name: string): { serialize: (v: T) => Buffer; deserialize: (b: Buffer) => T } {
  const t = rlsRoot().lookupType(name);
  return {
    serialize: (v) => Buffer.from(t.encode(t.fromObject(v as Record<string, unknown>)).finish()),
    deserialize: (b) => t.toObject(t.decode(b), { enums: String, longs: Number, defaults: false, arrays: true }) as T,
  };
}

let definition: grpc.ServiceDefinition | undefined;

/** The grpc-js definition of RateLimitService (one method, unary). */
export function rlsServiceDefinition(): grpc.ServiceDefinition {
  if (definition) return definition;
  const req = codec<RlsRequest>('envoy.service.ratelimit.v3.RateLimitRequest');
  const res = codec<RlsResponse>('envoy.service.ratelimit.v3.RateLimitResponse');
  definition = {
    ShouldRateLimit: {
      path: RLS_METHOD_PATH,
      requestStream: false,
      responseStream: false,
      requestSerialize: req.serialize,
      requestDeserialize: req.deserialize,
      responseSerialize: res.serialize,
      responseDeserialize: res.deserialize,
    },
  };
  return definition;
}
