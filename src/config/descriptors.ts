/**
 * The kinds Isle reads, one descriptor each. Parsing, validation, peering export and the CLI all
 * work from this list, so a new kind is one descriptor here.
 */
import type { Kind } from './types.js';
import { apiVersions, type KindDescriptor } from './kinds/common.js';
import { namespaceKind, serviceAccountKind, serviceKind } from './kinds/core.js';
import {
  destinationRuleKind, gatewayKind, serviceEntryKind, virtualServiceKind, workloadEntryKind, workloadGroupKind,
} from './kinds/networking.js';
import { authorizationPolicyKind, peerAuthenticationKind } from './kinds/security.js';
import { meshConfigKind, remoteClusterKind } from './kinds/mesh.js';
import { telemetryKind } from './kinds/telemetry.js';
import { envoyFilterKind } from './kinds/envoyfilter.js';

export type { KindDescriptor } from './kinds/common.js';
export { apiVersions } from './kinds/common.js';

export const DESCRIPTORS: readonly KindDescriptor[] = [
  namespaceKind,
  serviceKind,
  serviceAccountKind,
  workloadEntryKind,
  workloadGroupKind,
  serviceEntryKind,
  virtualServiceKind,
  destinationRuleKind,
  gatewayKind,
  peerAuthenticationKind,
  authorizationPolicyKind,
  telemetryKind,
  envoyFilterKind,
  meshConfigKind,
  remoteClusterKind,
] as KindDescriptor[];

const byKind = new Map<string, KindDescriptor>(DESCRIPTORS.map((d) => [d.kind, d]));

export function descriptorFor(kind: string): KindDescriptor | undefined {
  return byKind.get(kind);
}

/** The API groups Isle owns a kind in; a known kind name under another group is someone else's kind. */
export const KNOWN_GROUPS: ReadonlySet<string> = new Set(DESCRIPTORS.map((d) => d.group));

export function isKind(kind: string): kind is Kind {
  return byKind.has(kind);
}

/** Kinds a discovery-only peer receives over the export feed. */
export function exportedKinds(): Kind[] {
  return DESCRIPTORS.filter((d) => d.exportToPeers).map((d) => d.kind);
}

export function preferredApiVersion(kind: Kind): string {
  const d = byKind.get(kind);
  if (!d) throw new Error(`unknown kind ${kind}`);
  return apiVersions(d)[0]!;
}

/** Kinds Isle plans to read; today they are skipped with a warning (`isle analyze --list-kinds` names them). */
export interface PlannedKind {
  kind: string;
  group: string;
  versions: readonly string[];
  summary: string;
}

const GATEWAY_API = 'gateway.networking.k8s.io';

export const PLANNED_KINDS: readonly PlannedKind[] = [
  { kind: 'Gateway', group: GATEWAY_API, versions: ['v1', 'v1beta1'], summary: 'Kubernetes Gateway API listeners' },
  { kind: 'HTTPRoute', group: GATEWAY_API, versions: ['v1', 'v1beta1'], summary: 'Kubernetes Gateway API HTTP routing' },
  { kind: 'GRPCRoute', group: GATEWAY_API, versions: ['v1'], summary: 'Kubernetes Gateway API gRPC routing' },
  { kind: 'ReferenceGrant', group: GATEWAY_API, versions: ['v1beta1'], summary: 'Kubernetes Gateway API cross-namespace references' },
];
