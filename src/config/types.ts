/**
 * The contract of the config model, shared by parsing/validation (descriptors, schemas) and by the
 * sources and the ConfigStore. Everything past parsing sees only validated `Resource`s.
 */

export type Kind =
  | 'Namespace'
  | 'Service'
  | 'ServiceAccount'
  | 'WorkloadEntry'
  | 'WorkloadGroup'
  | 'ServiceEntry'
  | 'VirtualService'
  | 'DestinationRule'
  | 'Gateway'
  | 'PeerAuthentication'
  | 'AuthorizationPolicy'
  | 'EnvoyFilter'
  | 'MeshConfig'
  | 'Telemetry'
  | 'RemoteCluster';

export interface ObjectMeta {
  name: string;
  /** Set for namespaced kinds ("default" when the file left it out); absent for cluster-scoped kinds. */
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Where a resource (or an error) came from. `line` is 1-based; the first line of the object. */
export interface SourcePos {
  file: string;
  line: number;
}

/** A parsed, validated resource. `spec` is the kind's typed spec (see the descriptors). */
export interface Resource<S = unknown> {
  apiVersion: string;
  kind: Kind;
  metadata: ObjectMeta;
  spec: S;
  source: SourcePos;
}

export type Severity = 'error' | 'warning';

/**
 * One problem in user config. Formats as
 * `cluster-1/vs.yaml:14 VirtualService default/helloworld: spec.http[0].route: weights must sum to 100 (got 130)`.
 */
export interface ConfigError {
  severity: Severity;
  file: string;
  line?: number;
  kind?: string;
  namespace?: string;
  name?: string;
  /** Field path, like `spec.http[0].route`. */
  path?: string;
  message: string;
  /** istioctl analyze's message code (`IST0101`) when the check is one of Istio's. */
  code?: string;
}

/** An object of a kind Isle does not read (a Secret, a Deployment), kept so analyzers can check references to it. */
export interface ObjectRef {
  kind: string;
  apiVersion: string;
  namespace?: string;
  name: string;
  source: SourcePos;
}

/** Stable identity of a resource across versions: `Kind/namespace/name` (`Kind//name` when cluster-scoped). */
export type ResourceKey = string;

export function resourceKey(r: { kind: string; metadata: { name: string; namespace?: string } }): ResourceKey {
  return `${r.kind}/${r.metadata.namespace ?? ''}/${r.metadata.name}`;
}

/** An error about one resource, at the line that defines it. */
export function errorAt(r: Resource, message: string): ConfigError {
  return { severity: 'error', file: r.source.file, line: r.source.line, kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name, message };
}

export function formatConfigError(e: ConfigError): string {
  const where = e.line !== undefined ? `${e.file}:${e.line}` : e.file;
  let subject = '';
  if (e.kind) {
    const id = e.name ? (e.namespace ? `${e.namespace}/${e.name}` : e.name) : '';
    subject = id ? ` ${e.kind} ${id}` : ` ${e.kind}`;
  }
  const path = e.path ? `${e.path}: ` : '';
  const sev = e.severity === 'warning' ? 'warning: ' : '';
  const code = e.code ? ` [${e.code}]` : '';
  return `${where}${subject}: ${sev}${path}${e.message}${code}`;
}

/** Result of parsing one file: every resource that validated, and every error found (not only the first). */
export interface ParseResult {
  resources: Resource[];
  errors: ConfigError[];
  /** Objects of kinds Isle skips (with a warning in `errors`); only for analyzers' reference checks. */
  others?: ObjectRef[];
}

/** A change seen by ConfigStore subscribers. `version` is the store's version after this change. */
export type ConfigEvent =
  | { type: 'added'; key: ResourceKey; resource: Resource; version: number }
  | { type: 'updated'; key: ResourceKey; resource: Resource; previous: Resource; version: number }
  | { type: 'deleted'; key: ResourceKey; previous: Resource; version: number };
