/**
 * Auto-registration bound to identity, as Istio's WorkloadGroup auto-registration: a connected
 * sidecar becomes an endpoint only through a WorkloadGroup of its own namespace whose
 * `template.serviceAccount` is the service account of its verified certificate. Everything that
 * decides which traffic reaches it (labels, ports, network, locality, weight, service account)
 * comes from the group; the proxy contributes only its address and instance, and the address must
 * be one it can prove (ADR 0040): the source address of its xDS connection, or one the group lists
 * in the `isle.dev/workload-addresses` annotation.
 *
 * Pure: the caller (the control plane's pusher) hands in the claim and the groups in config.
 */
import { BlockList, isIP } from 'node:net';
import type { WorkloadEntrySpec, WorkloadGroupSpec } from '../config/kinds/networking.js';
import type { Resource } from '../config/types.js';
import type { ProxyMetadata } from './autoregister.js';

/** Comma-separated IPs or CIDRs a group's workloads may register from another address than their xDS connection's. */
export const GROUP_ADDRESSES_ANNOTATION = 'isle.dev/workload-addresses';

/** What a connected proxy asks for. namespace/serviceAccount are its verified identity. */
export interface RegistrationClaim {
  namespace: string;
  serviceAccount: string;
  /** The group it names (node metadata AUTO_REGISTER_GROUP); absent: the only group of its identity. */
  group?: string | undefined;
  /** The address it wants to be reached at (its node id / INSTANCE_IPS). */
  address: string;
  /**
   * The source IP of its xDS connection. Absent only on the plaintext loopback port, which trusts
   * node metadata by design (tests and benchmarks).
   */
  connectionAddress?: string | undefined;
  /** The control plane's cluster. */
  cluster: string;
}

export type GroupResolution = { ok: true; group: string; meta: ProxyMetadata } | { ok: false; reason: string };

/** `1.2.3.4:5`, `[::1]:5`, `ipv4:1.2.3.4:5`, `::ffff:1.2.3.4` → the bare IP; undefined if none. */
export function ipOfPeer(peer: string | undefined): string | undefined {
  if (!peer) return undefined;
  let s = peer.replace(/^ipv[46]:/, '');
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(s);
  if (bracket) s = bracket[1]!;
  else if (isIP(s) === 0) s = s.replace(/:\d+$/, '');
  if (s.startsWith('::ffff:') && isIP(s.slice(7)) === 4) s = s.slice(7);
  return isIP(s) ? s : undefined;
}

function listedAddresses(group: Resource<WorkloadGroupSpec>): BlockList | undefined {
  const raw = group.metadata.annotations?.[GROUP_ADDRESSES_ANNOTATION];
  if (!raw) return undefined;
  const list = new BlockList();
  for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [ip, bits] = item.split('/');
    const family = isIP(ip ?? '');
    if (family === 0) continue; // analyze reports it; an unparsable entry allows nothing
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(ip!, type);
    else if (/^\d+$/.test(bits)) list.addSubnet(ip!, Number(bits), type);
  }
  return list;
}

function addressAllowed(claim: RegistrationClaim, group: Resource<WorkloadGroupSpec>): boolean {
  if (claim.connectionAddress === undefined) return true;
  const conn = ipOfPeer(claim.connectionAddress);
  if (conn !== undefined && conn === ipOfPeer(claim.address)) return true;
  const family = isIP(claim.address);
  return family !== 0 && (listedAddresses(group)?.check(claim.address, family === 4 ? 'ipv4' : 'ipv6') ?? false);
}

/** The name Istio gives an auto-registered WorkloadEntry: `<group>-<address>`, DNS-safe. */
function instanceName(group: string, address: string): string {
  return `${group}-${address}`.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/-+$/, '');
}

/**
 * Which group (if any) registers this proxy, and the workload it becomes. The reasons name what
 * to fix in config; they never echo anything secret.
 */
export function resolveWorkloadGroup(claim: RegistrationClaim, groups: readonly Resource<WorkloadGroupSpec>[]): GroupResolution {
  const ns = groups.filter((g) => (g.metadata.namespace ?? 'default') === claim.namespace);
  const sa = (g: Resource<WorkloadGroupSpec>) => g.spec.template?.serviceAccount ?? 'default';
  let group: Resource<WorkloadGroupSpec> | undefined;
  if (claim.group !== undefined) {
    group = ns.find((g) => g.metadata.name === claim.group);
    if (!group) return { ok: false, reason: `no WorkloadGroup ${claim.namespace}/${claim.group}` };
    if (sa(group) !== claim.serviceAccount) {
      return { ok: false, reason: `WorkloadGroup ${claim.namespace}/${claim.group} is for service account ${sa(group)}, the proxy's certificate is for ${claim.serviceAccount}` };
    }
  } else {
    const mine = ns.filter((g) => sa(g) === claim.serviceAccount);
    if (mine.length === 0) return { ok: false, reason: `no WorkloadGroup in namespace ${claim.namespace} with template.serviceAccount ${claim.serviceAccount}` };
    if (mine.length > 1) {
      return { ok: false, reason: `several WorkloadGroups in namespace ${claim.namespace} are for service account ${claim.serviceAccount} (${mine.map((g) => g.metadata.name).join(', ')}); name one with --workload-group` };
    }
    group = mine[0]!;
  }
  if (!addressAllowed(claim, group)) {
    return {
      ok: false,
      reason: `address ${claim.address} is neither the source of the proxy's xDS connection (${ipOfPeer(claim.connectionAddress) ?? claim.connectionAddress}) nor listed in WorkloadGroup ${claim.namespace}/${group.metadata.name} annotation ${GROUP_ADDRESSES_ANNOTATION}`,
    };
  }
  const t = group.spec.template ?? {};
  const labels = { ...(t.labels ?? {}), ...(group.spec.metadata?.labels ?? {}) };
  return {
    ok: true,
    group: group.metadata.name,
    meta: {
      namespace: claim.namespace,
      serviceAccount: claim.serviceAccount,
      address: claim.address,
      name: instanceName(group.metadata.name, claim.address),
      labels,
      ...(t.locality ? { locality: t.locality } : {}),
      ...(t.network ? { network: t.network } : {}),
      cluster: claim.cluster,
      ...(t.ports ? { ports: t.ports } : {}),
      ...(t.weight !== undefined ? { weight: t.weight } : {}),
    },
  };
}

/**
 * Whether an identity still has a registration source in config: a WorkloadGroup or a
 * WorkloadEntry of its namespace for its service account. Certificate renewal requires it, so
 * deleting the group or entry revokes the workload (its next renewal is refused).
 */
export function identityHasRegistration(
  namespace: string,
  serviceAccount: string,
  groups: readonly Resource<WorkloadGroupSpec>[],
  entries: readonly Resource<WorkloadEntrySpec>[],
): boolean {
  const inNs = (r: Resource) => (r.metadata.namespace ?? 'default') === namespace;
  return (
    groups.some((g) => inNs(g) && (g.spec.template?.serviceAccount ?? 'default') === serviceAccount) ||
    entries.some((w) => inNs(w) && (w.spec.serviceAccount ?? 'default') === serviceAccount)
  );
}
