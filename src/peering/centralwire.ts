/**
 * The central ↔ remote control plane wire (issue 18, seed 001). Two gRPC services share the
 * central control plane's mTLS port with the proxies' ADS and the peering export:
 *
 * - `isle.central.v1.CentralConfig/DeltaAggregatedResources`: Envoy's delta ADS messages carrying
 *   the mesh resources authored centrally (one `ConfigResource` per Istio object, named
 *   `Kind/namespace/name`) and the mesh-wide settings (one `MeshSettings`, named `mesh`). The remote
 *   subscribes with the generic DiscoveryClient.
 * - `isle.central.v1.RemoteExport/Push`: the reverse direction on the same connection (Kuma's
 *   zone → global sync): the remote writes DeltaDiscoveryResponses with its peering export types
 *   (wire.ts), the central answers with DeltaDiscoveryRequests (ACK/NACK). The central's first
 *   message carries `initial_resource_versions` per type, so a reconnecting remote sends only what
 *   changed.
 *
 * Values are UTF-8 JSON like the peering types, decoded strictly: the central side is trusted for
 * config, but a malformed object is still NACKed with the reason and the last good set kept.
 */
import { parseConfigText } from '../config/parse.js';
import { formatConfigError, type Resource } from '../config/types.js';
import type { Decoded, DecoderTable } from '../xds/client/index.js';
import type { AnyMsg } from '../xds/protos.js';
import { toWireAny } from './wire.js';

export const CENTRAL_CONFIG_TYPE = 'type.isle.dev/isle.central.v1.ConfigResource';
export const CENTRAL_MESH_TYPE = 'type.isle.dev/isle.central.v1.MeshSettings';
/** Settings first: the remote checks the trust domain before taking any resource. */
export const CENTRAL_TYPES: readonly string[] = [CENTRAL_MESH_TYPE, CENTRAL_CONFIG_TYPE];

export const CENTRAL_SERVICE = 'isle.central.v1.CentralConfig';
export const CENTRAL_PATH = `/${CENTRAL_SERVICE}/DeltaAggregatedResources`;
export const REMOTE_EXPORT_SERVICE = 'isle.central.v1.RemoteExport';
export const REMOTE_EXPORT_METHOD = 'Push';
export const REMOTE_EXPORT_PATH = `/${REMOTE_EXPORT_SERVICE}/${REMOTE_EXPORT_METHOD}`;

/**
 * What the central control plane authors for every cluster. Service, ServiceAccount,
 * WorkloadEntry and Namespace describe one cluster's own workloads and travel as discovery
 * (wire.ts); MeshConfig and RemoteCluster are each control plane's own.
 */
export const CENTRAL_KINDS: ReadonlySet<string> = new Set(['VirtualService', 'DestinationRule', 'ServiceEntry', 'Gateway', 'PeerAuthentication', 'AuthorizationPolicy', 'WorkloadGroup']);

export interface MeshSettings {
  /** The central control plane's cluster, network and trust domain. */
  cluster: string;
  network: string;
  trustDomain: string;
  rootNamespace: string;
  /** Whether remote clusters discover the central cluster's services (default false: asymmetric). */
  remoteClustersSeeCentral: boolean;
  /** With remoteClustersSeeCentral: only these namespaces are discovered; absent: every namespace. */
  namespaces?: string[];
}

export interface CentralResources {
  [CENTRAL_MESH_TYPE]: MeshSettings;
  [CENTRAL_CONFIG_TYPE]: Resource;
}

/** `Kind/namespace/name` (cluster-scoped kinds: `Kind//name`). */
export function centralName(r: Pick<Resource, 'kind' | 'metadata'>): string {
  return `${r.kind}/${r.metadata.namespace ?? ''}/${r.metadata.name}`;
}

/** What goes on the wire for one resource: the object without its file position. */
export function configToWire(r: Resource): AnyMsg {
  const { apiVersion, kind, metadata, spec } = r;
  return toWireAny(CENTRAL_CONFIG_TYPE, { apiVersion, kind, metadata, spec });
}

export function meshToWire(m: MeshSettings): AnyMsg {
  return toWireAny(CENTRAL_MESH_TYPE, m);
}

function json(any: AnyMsg): { value?: unknown; error?: string } {
  try {
    return { value: JSON.parse(Buffer.from(any.value).toString('utf8')) };
  } catch (e) {
    return { error: `not JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/**
 * Decoders for the central feed. `trustDomain` is ours: settings for another trust domain are
 * refused. Every resource is validated as if it were a file `central:<cluster>/<name>`, so its
 * errors read like a local file's.
 */
export function centralDecoders(opts: { trustDomain: string; localCluster: string }): DecoderTable<CentralResources> {
  return {
    [CENTRAL_MESH_TYPE]: {
      decode(any, expectedName): Decoded<MeshSettings> {
        const name = expectedName ?? 'mesh';
        const j = json(any);
        const where = `MeshSettings ${name}`;
        if (j.error) return { ok: false, name, errors: [`${where}: ${j.error}`] };
        const o = j.value as Partial<Record<keyof MeshSettings, unknown>> | null;
        const errors: string[] = [];
        if (typeof o !== 'object' || o === null) return { ok: false, name, errors: [`${where}: expected an object`] };
        for (const k of ['cluster', 'network', 'trustDomain', 'rootNamespace'] as const) if (typeof o[k] !== 'string') errors.push(`${where}: ${k}: expected a string`);
        if (typeof o.remoteClustersSeeCentral !== 'boolean') errors.push(`${where}: remoteClustersSeeCentral: expected true or false`);
        if (o.namespaces !== undefined && !(Array.isArray(o.namespaces) && o.namespaces.every((n) => typeof n === 'string' && n !== ''))) errors.push(`${where}: namespaces: expected a list of namespace names`);
        if (errors.length) return { ok: false, name, errors };
        const m = o as MeshSettings;
        if (m.trustDomain !== opts.trustDomain) errors.push(`${where}: trust domain ${m.trustDomain} is not ours (${opts.trustDomain})`);
        if (m.cluster === opts.localCluster) errors.push(`${where}: the central control plane says it is cluster ${m.cluster}, which is this cluster`);
        return errors.length ? { ok: false, name, errors } : { ok: true, name, value: m };
      },
    },
    [CENTRAL_CONFIG_TYPE]: {
      decode(any, expectedName): Decoded<Resource> {
        const name = expectedName ?? '';
        const j = json(any);
        if (j.error) return { ok: false, name, errors: [`${name}: ${j.error}`] };
        const file = `central:${name}`;
        const parsed = parseConfigText(`${file}.json`, JSON.stringify(j.value));
        const errors = parsed.errors.filter((e) => e.severity === 'error').map(formatConfigError);
        if (errors.length) return { ok: false, name, errors };
        if (parsed.resources.length !== 1) return { ok: false, name, errors: [`${name}: expected one resource, got ${parsed.resources.length}`] };
        const r = parsed.resources[0]!;
        if (!CENTRAL_KINDS.has(r.kind)) return { ok: false, name, errors: [`${name}: ${r.kind} is not authored centrally (only ${[...CENTRAL_KINDS].join(', ')})`] };
        const actual = centralName(r);
        const resource: Resource = { ...r, source: { file: `central:${actual}`, line: 1 } };
        return { ok: true, name: actual, value: resource };
      },
    },
  };
}
