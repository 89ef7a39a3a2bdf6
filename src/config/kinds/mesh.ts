/** Isle's own kinds, group mesh.isle.dev: the settings of one cluster's control plane and its peers. */
import { arr, bool, duration, isObject, isSet, obj, parseDuration, str, type Check, dnsLabel, isLocality } from '../schema.js';
import type { KindDescriptor } from './common.js';
import { isIP } from 'node:net';
import { parseHostPort } from '../hostport.js';

export interface Locality {
  region: string;
  zone?: string;
  subZone?: string;
}

export interface MeshConfigSpec {
  /** SPIFFE trust domain. Default `cluster.local`. */
  trustDomain: string;
  clusterName?: string;
  network?: string;
  /** Where workloads are when they do not say; always the object form after parsing. */
  defaultLocality?: Locality;
  /** Namespace of mesh-wide policy (PeerAuthentication, ...). Default `istio-system`. */
  rootNamespace: string;
  /** Push debounce as Istio durations. Default `{ quiet: '100ms', max: '10s' }`. */
  debounce: { quiet: string; max: string };
  /**
   * How long an auto-registered workload outlives its proxy's last xDS stream (Istio's
   * PILOT_WORKLOAD_ENTRY_GRACE_PERIOD). Default `10s`; `0s` removes it at once.
   */
  registrationGracePeriod: string;
  /**
   * On a central control plane: whether the clusters of its remote control planes discover this
   * cluster's services. Default false (ASM's asymmetric default: central workloads reach remote
   * services, not the reverse).
   */
  remoteClustersSeeCentral?: boolean;
  /**
   * With `remoteClustersSeeCentral: true`: only the services and workloads of these namespaces are
   * discovered by remote clusters (unset: every namespace).
   */
  remoteClustersSeeCentralNamespaces?: string[];
  /**
   * How long an identity may renew its certificate after its bootstrap token (Istio duration,
   * e.g. `2160h`). Default 90 days; after it a new token is required.
   */
  maxIdentityLifetime?: string;
  /** Istio's meshConfig.accessLogFile: every proxy logs each request there (`/dev/stdout`); unset: no access log. */
  accessLogFile?: string;
  /** Istio's meshConfig.accessLogEncoding: TEXT (default, Istio's text format) or JSON. */
  accessLogEncoding?: 'TEXT' | 'JSON';
}

/** The MeshConfig defaults, written once: normalize() fills them and the mesh settings resolver reads them. */
export const MESH_DEFAULTS = Object.freeze({
  trustDomain: 'cluster.local',
  rootNamespace: 'istio-system',
  debounce: Object.freeze({ quiet: '100ms', max: '10s' }),
  registrationGracePeriod: '10s',
});

export interface RemoteClusterSpec {
  /** `host:port` of the peer control plane's export feed; its replicas as `host:port,host:port`. */
  address: string;
  network?: string;
  /** Only discovery is supported: the peer's services and endpoints, never its config. */
  discoveryOnly: true;
}

/** `region/zone/subzone` → `{ region, zone, subZone }`. */
export function parseLocality(s: string): Locality {
  const [region = '', zone, subZone] = s.split('/');
  return { region, ...(zone ? { zone } : {}), ...(subZone ? { subZone } : {}) };
}

const localityPart = str({ check: (s) => (s !== '' && !s.includes('/') ? undefined : `invalid locality part ${JSON.stringify(s)}`) });

const defaultLocality: Check = (c, v, p) => {
  if (typeof v === 'string') {
    if (!isLocality(v)) {
      c.error(p, `invalid locality ${JSON.stringify(v)} (use region/zone/subzone)`);
      return false;
    }
    return true;
  }
  return obj({ region: localityPart, zone: localityPart, subZone: localityPart }, {
    required: ['region'],
    check: (c2, o, p2) => {
      if (isSet(o.subZone) && !isSet(o.zone)) c2.error([...p2, 'subZone'], 'requires zone');
    },
  })(c, v, p);
};

const trustDomain = str({
  check: (s) => (/^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$/.test(s) ? undefined : `invalid trust domain ${JSON.stringify(s)} (lowercase letters, digits, '-', '.', '_')`),
});

const meshConfigSpec = obj(
  {
    trustDomain,
    clusterName: dnsLabel,
    network: str({ nonEmpty: true }),
    defaultLocality,
    rootNamespace: dnsLabel,
    registrationGracePeriod: duration(),
    remoteClustersSeeCentral: bool,
    remoteClustersSeeCentralNamespaces: arr(dnsLabel, { min: 1, unique: true }),
    maxIdentityLifetime: duration(),
    accessLogFile: str(),
    accessLogEncoding: str({ check: (s) => (s === 'TEXT' || s === 'JSON' ? undefined : `must be TEXT or JSON, got ${JSON.stringify(s)}`) }),
    debounce: obj(
      { quiet: duration(), max: duration() },
      {
        check: (c, v, p) => {
          const q = typeof v.quiet === 'string' ? parseDuration(v.quiet) : undefined;
          const m = typeof v.max === 'string' ? parseDuration(v.max) : undefined;
          if (q !== undefined && m !== undefined && q > m) c.error([...p, 'quiet'], `must not be longer than max (${String(v.max)})`);
        },
      },
    ),
  },
  {
    check: (c, v, p) => {
      // A namespace list that discovery ignores would read as a restriction that is not there.
      if (isSet(v.remoteClustersSeeCentralNamespaces) && v.remoteClustersSeeCentral !== true) {
        c.error([...p, 'remoteClustersSeeCentralNamespaces'], 'only applies with remoteClustersSeeCentral: true (remote clusters see no central namespace without it)');
      }
    },
  },
);

/** One control plane `host:port`, or its replicas as `host:port,host:port` (all IPv4 or all IPv6). */
const controlPlaneAddress = str({
  check: (s) => {
    const parts = s.split(',').map((p) => p.trim());
    for (const p of parts) if (!parseHostPort(p)) return `invalid address ${JSON.stringify(p)} (use host:port, or a peer's replicas as host:port,host:port)`;
    if (parts.length > 1) {
      const families = new Set(parts.map((p) => isIP(parseHostPort(p)!.host)));
      if (families.has(0) || families.size > 1) return 'several addresses must all be IPv4 or all IPv6 (or give one DNS name that resolves to every replica)';
    }
    return undefined;
  },
});

const remoteClusterSpec = obj(
  { address: controlPlaneAddress, network: str({ nonEmpty: true }), discoveryOnly: bool },
  {
    required: ['address'],
    check: (c, v, p) => {
      if (v.discoveryOnly === false) c.error([...p, 'discoveryOnly'], 'only discoveryOnly: true is supported (a peer is added for service discovery only)');
    },
  },
);

const base = { group: 'mesh.isle.dev', versions: ['v1alpha1'], namespaced: false, exportToPeers: false } as const;

export const meshConfigKind: KindDescriptor<MeshConfigSpec> = {
  ...base,
  kind: 'MeshConfig',
  summary: 'this cluster: trust domain, name, network, default locality, debounce, registration grace period',
  spec: meshConfigSpec,
  specRequired: false,
  normalize: (s) => {
    const debounce = isObject(s.debounce) ? s.debounce : {};
    const out: MeshConfigSpec = {
      ...(s as Partial<MeshConfigSpec>),
      trustDomain: typeof s.trustDomain === 'string' ? s.trustDomain : MESH_DEFAULTS.trustDomain,
      rootNamespace: typeof s.rootNamespace === 'string' ? s.rootNamespace : MESH_DEFAULTS.rootNamespace,
      debounce: {
        quiet: typeof debounce.quiet === 'string' ? debounce.quiet : MESH_DEFAULTS.debounce.quiet,
        max: typeof debounce.max === 'string' ? debounce.max : MESH_DEFAULTS.debounce.max,
      },
      registrationGracePeriod: typeof s.registrationGracePeriod === 'string' ? s.registrationGracePeriod : MESH_DEFAULTS.registrationGracePeriod,
    };
    if (typeof s.defaultLocality === 'string') out.defaultLocality = parseLocality(s.defaultLocality);
    return out;
  },
};

export const remoteClusterKind: KindDescriptor<RemoteClusterSpec> = {
  ...base,
  kind: 'RemoteCluster',
  summary: 'a peer cluster added for service discovery only (metadata.name = its cluster name)',
  spec: remoteClusterSpec,
  specRequired: true,
  normalize: (s) => ({ ...(s as Omit<RemoteClusterSpec, 'discoveryOnly'>), discoveryOnly: true }),
};
