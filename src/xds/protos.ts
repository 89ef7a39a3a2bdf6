/**
 * The Envoy v3 protos, loaded once with protobufjs from the copies that `@grpc/grpc-js-xds`
 * ships (envoy-api, googleapis, protoc-gen-validate, xds), so Isle speaks the exact schema real
 * Envoy does without vendoring thousands of .proto files.
 *
 * Fields keep their proto (snake_case) names (`keepCase`), so plain objects read like Envoy's
 * docs and YAML configs; see codec.ts for the full convention.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import protobuf from 'protobufjs';

/**
 * Loaded as roots; their imports come along. Extend this list (not ad-hoc loads elsewhere) when a
 * generator needs another extension type inside an `Any`, otherwise encoding it fails loudly.
 */
export const PROTO_FILES: readonly string[] = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  // VirtualService fault injection (src/generate/virtualservice.ts).
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  // AuthorizationPolicy (src/generate/authz.ts).
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  // The default route retry policy's retry_host_predicate (src/generate/rds.ts).
  'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
  // meshConfig.accessLogFile (src/generate/accesslog.ts).
  'envoy/extensions/access_loggers/file/v3/file.proto',
  // HCM tracing with the OpenTelemetry tracer (src/generate/tracing.ts).
  'envoy/config/trace/v3/opentelemetry.proto',
];

const require = createRequire(import.meta.url);

/** Where imports are searched, in order. */
export function protoIncludeDirs(): string[] {
  const xds = dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  // protobufjs bundles google/protobuf/{any,duration,struct,…}; descriptor.proto (imported by the
  // validate and udpa annotations) lives in its package directory.
  const pbjs = dirname(require.resolve('protobufjs/package.json'));
  return [
    ...['envoy-api', 'googleapis', 'protoc-gen-validate', 'xds'].map((d) => join(xds, 'deps', d)),
    pbjs,
  ];
}

let cachedRoot: protobuf.Root | undefined;

/** The resolved root holding every type of PROTO_FILES; ~150 ms the first time, then cached. */
export function xdsRoot(): protobuf.Root {
  if (cachedRoot) return cachedRoot;
  const dirs = protoIncludeDirs();
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string | null => {
    if (isAbsolute(target)) return target;
    for (const d of dirs) {
      const p = join(d, target);
      if (existsSync(p)) return p;
    }
    // Unresolved names fall through to protobufjs' bundled google/protobuf definitions.
    return target;
  };
  root.loadSync(PROTO_FILES as string[], { keepCase: true });
  root.resolveAll();
  cachedRoot = root;
  return root;
}

const typeCache = new Map<string, protobuf.Type>();

/** A message type by full name (`envoy.config.cluster.v3.Cluster`), or undefined if not loaded. */
export function findMessageType(fullName: string): protobuf.Type | undefined {
  const name = fullName.replace(/^\./, '');
  const hit = typeCache.get(name);
  if (hit) return hit;
  let t: protobuf.Type | undefined;
  try {
    const r = xdsRoot().lookup(name);
    if (r instanceof protobuf.Type) t = r;
  } catch {
    t = undefined;
  }
  if (t) typeCache.set(name, t);
  return t;
}

export function messageType(fullName: string): protobuf.Type {
  const t = findMessageType(fullName);
  if (!t) throw new Error(`proto message ${fullName} is not loaded (add its file to PROTO_FILES)`);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Wire shapes of the ADS messages, as the server and test clients exchange them.
// ---------------------------------------------------------------------------------------------

/** A `google.protobuf.Any` carrying already-serialized bytes. */
export interface AnyMsg {
  type_url: string;
  value: Uint8Array;
}

export interface DiscoveryResponseMsg {
  version_info: string;
  resources: AnyMsg[];
  type_url: string;
  nonce: string;
}

export interface DeltaResourceMsg {
  name: string;
  version: string;
  resource?: AnyMsg | null;
  aliases?: string[];
}

export interface DeltaDiscoveryResponseMsg {
  system_version_info: string;
  resources: DeltaResourceMsg[];
  type_url: string;
  removed_resources: string[];
  nonce: string;
}

/**
 * Requests are converted with the codec (codec.ts), so `node.metadata` is plain JSON and absent
 * fields are absent; these interfaces list what the server reads.
 */
export interface NodeMsg {
  id?: string;
  cluster?: string;
  metadata?: Record<string, unknown>;
  locality?: { region?: string; zone?: string; sub_zone?: string };
  user_agent_name?: string;
  user_agent_version?: string;
  [k: string]: unknown;
}

export interface StatusMsg {
  code?: number;
  message?: string;
  details?: unknown[];
}

export interface DiscoveryRequestMsg {
  version_info?: string;
  node?: NodeMsg;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: StatusMsg;
}

export interface DeltaDiscoveryRequestMsg {
  node?: NodeMsg;
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: StatusMsg;
}
