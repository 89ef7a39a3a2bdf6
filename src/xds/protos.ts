/**
 * The Envoy v3 protos, loaded once with protobufjs from the copies that `@grpc/grpc-js-xds`
 * ships (envoy-api, googleapis, protoc-gen-validate, xds), so Isle speaks the exact schema real
 * Envoy does without vendoring thousands of .proto files.
 *
 * Fields keep their proto (snake_case) names (`keepCase`), so plain objects read like Envoy's
 * docs and YAML configs; see codec.ts for the full convention.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import protobuf from 'protobufjs';
import { findProtoDir } from '../mesh/protodir.js';

/**
 * Loaded as roots; their imports come along. Extend this list (not ad-hoc loads elsewhere) when a
 * generator needs another extension type inside an `Any`, otherwise encoding it fails loudly.
 */
/** Istio's NDS payload, a copy kept under the repository's proto/ (ADR 0075). */
export const NDS_PROTO_FILE = 'istio/networking/nds/v1/nds.proto';

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
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  // VirtualService fault injection (src/generate/virtualservice.ts).
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  // AuthorizationPolicy (src/generate/authz.ts).
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  // The default route retry policy's retry_host_predicate (src/generate/rds.ts).
  'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
  // EnvoyFilter rate limit patches (src/generate/envoyfilter.ts).
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/filters/http/ratelimit/v3/rate_limit.proto',
  // meshConfig.accessLogFile (src/generate/accesslog.ts).
  'envoy/extensions/access_loggers/file/v3/file.proto',
  // HCM tracing with the OpenTelemetry tracer (src/generate/tracing.ts).
  'envoy/config/trace/v3/opentelemetry.proto',
  // Istio's NDS name table (src/generate/nds.ts), from the repository's proto/ directory.
  NDS_PROTO_FILE,
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
    // Isle's copies of non-Envoy xDS payloads (Istio's NDS).
    ...[findProtoDir(NDS_PROTO_FILE)].filter((d): d is string => d !== undefined),
  ];
}

/** Every type of PROTO_FILES, parsed from the `.proto` texts (~150 ms and ~15 MB of heap churn). */
export function parseXdsProtos(): protobuf.Root {
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
  return root;
}

// ---------------------------------------------------------------------------------------------
// The committed descriptor (ADR 0105): what parseXdsProtos() yields, as protobufjs JSON, pruned
// to the types PROTO_FILES define, the well-known types and everything their fields reach, without
// comments or options protobufjs does not read. Parsing the texts kept ~1 MB of .proto source
// alive (option values are slices of it) and left ~6 MB more RSS in every sidecar than this JSON.
// ---------------------------------------------------------------------------------------------

/** Under the repository's proto/ directory (src/mesh/protodir.ts finds it). */
export const XDS_DESCRIPTOR_FILE = 'isle/xds/envoy-descriptor.json';

export interface XdsDescriptor {
  /** PROTO_FILES when it was generated; another list means it is stale. */
  files: string[];
  /** The @grpc/grpc-js-xds version whose .proto copies it was generated from. */
  protos: string;
  root: protobuf.INamespace;
}

/** File options of other languages' generators and annotations protobufjs never reads. */
const DROPPED_OPTION = /^\(|^(java_|go_package$|objc_class_prefix$|csharp_namespace$|ruby_package$|php_|swift_prefix$|cc_enable_arenas$|optimize_for$|deprecated$)/;

function reachableTypes(root: protobuf.Root): Set<string> {
  const keep = new Set<string>();
  const add = (o: protobuf.ReflectionObject | null | undefined): void => {
    if (!o || keep.has(o.fullName)) return;
    keep.add(o.fullName);
    if (o instanceof protobuf.Type) {
      for (const f of o.fieldsArray) add(f.resolve().resolvedType);
      for (const n of o.nestedArray) if (n instanceof protobuf.Type || n instanceof protobuf.Enum) add(n);
    } else if (o instanceof protobuf.Service) {
      for (const m of o.methodsArray) {
        m.resolve();
        add(m.resolvedRequestType);
        add(m.resolvedResponseType);
      }
    }
    // A nested type lives inside its parent's JSON.
    if (o.parent instanceof protobuf.Type) add(o.parent);
  };
  const visit = (ns: protobuf.NamespaceBase): void => {
    for (const o of ns.nestedArray) {
      const defined = o.filename !== null && PROTO_FILES.some((f) => o.filename!.endsWith(f));
      // The well-known types (wrappers, Duration, Struct…) may travel inside an Any on their own.
      const wellKnown = o.fullName.startsWith('.google.protobuf.') && !o.filename?.endsWith('descriptor.proto');
      if ((defined || wellKnown) && (o instanceof protobuf.Type || o instanceof protobuf.Enum || o instanceof protobuf.Service)) add(o);
      if (o instanceof protobuf.Namespace || o instanceof protobuf.Type) visit(o);
    }
  };
  visit(root);
  return keep;
}

type JsonNode = Record<string, unknown> & { nested?: Record<string, JsonNode>; options?: Record<string, unknown> };

function withoutDroppedOptions(node: JsonNode): JsonNode {
  const out: JsonNode = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === 'comment') continue;
    if (k !== 'options') out[k] = v;
    else {
      const kept = Object.entries(v as Record<string, unknown>).filter(([o]) => !DROPPED_OPTION.test(o));
      if (kept.length > 0) out[k] = Object.fromEntries(kept);
    }
  }
  return out;
}

function pruneJson(node: JsonNode, fullName: string, keep: Set<string>): JsonNode | undefined {
  const isDefinition = 'fields' in node || 'values' in node || 'methods' in node;
  if (isDefinition && !keep.has(fullName)) return undefined;
  // Extension fields declared at namespace level (`extend google.protobuf.FieldOptions`) only carry options.
  if ('extend' in node && !isDefinition) return undefined;
  const { nested: _, ...rest } = node;
  const out = withoutDroppedOptions(rest);
  for (const k of ['fields', 'methods'] as const) {
    const members = out[k] as Record<string, JsonNode> | undefined;
    if (members) out[k] = Object.fromEntries(Object.entries(members).map(([n, f]) => [n, withoutDroppedOptions(f)]));
  }
  if (node.nested) {
    const nested: Record<string, JsonNode> = {};
    for (const [n, child] of Object.entries(node.nested)) {
      const p = pruneJson(child, `${fullName}.${n}`, keep);
      if (p) nested[n] = p;
    }
    if (Object.keys(nested).length > 0) out.nested = nested;
    else if (!isDefinition) return undefined;
  }
  return out;
}

/** The descriptor of a root parsed by parseXdsProtos(). Pure; `protos` is the source's version. */
export function xdsDescriptor(root: protobuf.Root, protos: string): XdsDescriptor {
  const json = root.toJSON({ keepComments: false }) as JsonNode;
  return { files: [...PROTO_FILES], protos, root: (pruneJson(json, '', reachableTypes(root)) ?? {}) as protobuf.INamespace };
}

/** The version of @grpc/grpc-js-xds whose protos are installed. */
export function installedProtosVersion(): string {
  return (JSON.parse(readFileSync(require.resolve('@grpc/grpc-js-xds/package.json'), 'utf8')) as { version: string }).version;
}

/** The committed descriptor, or undefined when it is missing or was generated from other inputs. */
export function committedXdsDescriptor(): XdsDescriptor | undefined {
  const dir = findProtoDir(XDS_DESCRIPTOR_FILE);
  if (!dir) return undefined;
  const d = JSON.parse(readFileSync(join(dir, XDS_DESCRIPTOR_FILE), 'utf8')) as XdsDescriptor;
  const same = d.files.length === PROTO_FILES.length && d.files.every((f, i) => f === PROTO_FILES[i]);
  return same && d.protos === installedProtosVersion() ? d : undefined;
}

let cachedRoot: protobuf.Root | undefined;

/**
 * The resolved root holding every type of PROTO_FILES, cached: from the committed descriptor, or
 * parsed from the `.proto` texts when the descriptor is stale (PROTO_FILES or the protos package
 * changed; `test/xds/descriptor.test.ts` fails until it is regenerated).
 */
export function xdsRoot(): protobuf.Root {
  if (cachedRoot) return cachedRoot;
  const d = committedXdsDescriptor();
  const root = d ? protobuf.Root.fromJSON(d.root) : parseXdsProtos();
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
  if (!t) throw new Error(`proto message ${fullName} is not loaded (add its file to PROTO_FILES, then regenerate proto/${XDS_DESCRIPTOR_FILE}: npm run build && node scripts/xds-descriptor.mjs)`);
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
