import type { Kind } from '../types.js';
import { arr, enumOf, isObject, isSet, labels, obj, str, type Check, type Checker, type Path } from '../schema.js';

/**
 * Everything the parser, the validator and the CLI need to know about one kind. Adding a kind is
 * adding one descriptor to the list in ../descriptors.ts.
 */
export interface KindDescriptor<S = unknown> {
  kind: Kind;
  /** API group; '' for the Kubernetes core group (`apiVersion: v1`). */
  group: string;
  /** Accepted versions, the preferred one first. */
  versions: readonly string[];
  namespaced: boolean;
  /** Whether a peer that added this cluster "for service discovery only" receives it. */
  exportToPeers: boolean;
  /** One line for `isle analyze --list-kinds`. */
  summary: string;
  /** Validates `spec` (at path ['spec']). */
  spec: Check;
  /** Kinds such as ServiceAccount carry no spec; the parsed resource gets `{}`. */
  specRequired: boolean;
  /** Top-level fields the kind has besides apiVersion/kind/metadata/spec/status, accepted and dropped. */
  extraTopLevel?: readonly string[];
  /** Fills defaults and normalizes; runs only on a spec that validated without errors. */
  normalize?: (spec: Record<string, unknown>) => S;
}

export function apiVersions(d: KindDescriptor): string[] {
  return d.versions.map((v) => (d.group ? `${d.group}/${v}` : v));
}

export type Labels = Record<string, string>;

/** `exportTo`: `.` (this namespace), `*` (all), or namespace names. */
export const exportTo: Check = arr(
  str({
    check: (s) =>
      s === '.' || s === '*' || /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s) ? undefined : `invalid exportTo value ${JSON.stringify(s)} (use ".", "*" or a namespace)`,
  }),
);

/** Istio's `WorkloadSelector`: `{ matchLabels: {...} }`. */
export const selector: Check = obj({ matchLabels: labels });

export interface WorkloadSelector {
  matchLabels?: Labels;
}

export const PROTOCOLS = ['HTTP', 'HTTPS', 'GRPC', 'GRPC-WEB', 'HTTP2', 'MONGO', 'REDIS', 'MYSQL', 'TCP', 'TLS', 'UDP'] as const;

/** Istio compares protocol names case-insensitively (seed 003 writes `protocol: http`). */
export const protocol: Check = enumOf(PROTOCOLS, { ignoreCase: true });

/** Checks that `key` values of list items are unique (port names, subset names, ...). */
export function uniqueBy(c: Checker, list: unknown, p: Path, key: string, what: string): void {
  if (!Array.isArray(list)) return;
  const seen = new Set<unknown>();
  list.forEach((item, i) => {
    if (!isObject(item) || !isSet(item[key])) return;
    const k = item[key];
    if (seen.has(k)) c.error([...p, i, key], `duplicate ${what} ${JSON.stringify(k)}`);
    seen.add(k);
  });
}
