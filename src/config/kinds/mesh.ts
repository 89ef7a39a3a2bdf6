/** Isle's own kinds, group mesh.isle.dev: the settings of one cluster's control plane and its peers. */
import { arr, bool, duration, int, isObject, isSet, num, obj, parseDuration, percent, port, str, type Check, dnsLabel, isLocality } from '../schema.js';
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
  /** Istio's meshConfig.enableTracing (default true): false turns tracing off unless a Telemetry turns it on. */
  enableTracing?: boolean;
  /** Istio's meshConfig.defaultConfig; Isle reads `tracing.sampling` (percent) and `tracing.maxPathTagLength`. */
  defaultConfig?: { tracing?: { sampling?: number; maxPathTagLength?: number } };
  /** Istio's meshConfig.extensionProviders; Isle has `opentelemetry` with `http` (OTLP/HTTP). */
  extensionProviders?: ExtensionProvider[];
  /** Istio's meshConfig.defaultProviders; Isle reads `tracing`. */
  defaultProviders?: { tracing?: string[] };
  /**
   * Isle's short form (ADR 0085): `{otlp: {endpoint: http://host:4318}, sampling: 0.01}` is an
   * OpenTelemetry provider named `isle-otlp` made the default, with sampling as a fraction.
   */
  tracing?: { otlp: { endpoint: string }; sampling?: number };
  /**
   * Istio's meshConfig.outboundTrafficPolicy: what a captured connection to a destination the mesh
   * does not know gets. ALLOW_ANY (default) passes it through to its original destination;
   * REGISTRY_ONLY closes it.
   */
  outboundTrafficPolicy?: { mode?: 'ALLOW_ANY' | 'REGISTRY_ONLY' };
}

export interface ExtensionProvider {
  name: string;
  opentelemetry?: {
    service: string;
    port: number;
    maxTagLength?: number;
    http?: { path?: string; timeout?: string; headers?: { name: string; value: string }[] };
  };
}

/** The provider name Isle's `tracing` short form stands for. */
export const SHORT_FORM_PROVIDER = 'isle-otlp';

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

/** `http://host[:port][/path]`: Isle exports OTLP/HTTP in plaintext (a collector's :4318). */
export function parseOtlpEndpoint(s: string): { host: string; port: number; path: string } | string {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return `invalid URL ${JSON.stringify(s)} (use http://host:4318)`;
  }
  if (u.protocol !== 'http:') return `${JSON.stringify(s)}: Isle exports OTLP/HTTP over plain http only`;
  if (u.username || u.password || u.search || u.hash) return `${JSON.stringify(s)}: credentials, query and fragment are not supported`;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return { host, port: u.port ? Number(u.port) : 80, path: u.pathname === '/' ? '/v1/traces' : u.pathname };
}

const otlpEndpoint = str({ check: (s) => { const r = parseOtlpEndpoint(s); return typeof r === 'string' ? r : undefined; } });

const extensionProvider: Check = obj(
  {
    name: str({ nonEmpty: true }),
    opentelemetry: obj(
      {
        service: str({ nonEmpty: true }),
        port,
        maxTagLength: int({ min: 1 }),
        http: obj({ path: str({ check: (s) => (s.startsWith('/') ? undefined : 'must start with "/"') }), timeout: duration(), headers: arr(obj({ name: str({ nonEmpty: true }), value: str() }, { required: ['name', 'value'], strict: true })) }, { strict: true }),
      },
      {
        required: ['service', 'port'],
        strict: true,
        check: (c, v, p) => {
          if (v.http === undefined) c.error([...p, 'http'], 'Isle exports OTLP/HTTP only: add `http: {path: /v1/traces}` and the collector\'s OTLP/HTTP port (4318); without `http` Istio would use OTLP/gRPC');
        },
      },
    ),
  },
  {
    required: ['name'],
    strict: true,
    check: (c, v, p) => {
      if (v.opentelemetry === undefined) c.error(p, 'Isle supports only opentelemetry extension providers (for tracing)');
    },
  },
);

/** Provider names are unique; default providers name one; the short form does not fight them. */
function tracingRefs(c: Parameters<Check>[0], v: Record<string, unknown>, p: Parameters<Check>[2]): void {
  const providers = Array.isArray(v.extensionProviders) ? (v.extensionProviders as unknown[]) : [];
  const names = new Set<string>();
  providers.forEach((x, i) => {
    const n = isObject(x) && typeof x.name === 'string' ? x.name : undefined;
    if (n === undefined) return;
    if (names.has(n)) c.error([...p, 'extensionProviders', i, 'name'], `duplicate provider name ${JSON.stringify(n)}`);
    names.add(n);
  });
  const dp = isObject(v.defaultProviders) && Array.isArray(v.defaultProviders.tracing) ? (v.defaultProviders.tracing as unknown[]) : [];
  if (dp.length > 1) c.error([...p, 'defaultProviders', 'tracing'], 'Isle supports one default tracing provider');
  dp.forEach((n, i) => {
    if (typeof n === 'string' && !names.has(n)) c.error([...p, 'defaultProviders', 'tracing', i], `no extensionProvider named ${JSON.stringify(n)}`);
  });
  if (isSet(v.tracing)) {
    if (dp.length > 0) c.error([...p, 'tracing'], 'use either tracing (Isle\'s short form) or defaultProviders.tracing, not both');
    if (names.has(SHORT_FORM_PROVIDER)) c.error([...p, 'tracing'], `the short form defines the provider ${JSON.stringify(SHORT_FORM_PROVIDER)}, which extensionProviders also names`);
    if (isObject(v.defaultConfig) && isObject(v.defaultConfig.tracing) && isSet(v.defaultConfig.tracing.sampling)) c.error([...p, 'tracing', 'sampling'], 'set sampling in one place: tracing.sampling or defaultConfig.tracing.sampling');
  }
}

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
    enableTracing: bool,
    defaultConfig: obj({ tracing: obj({ sampling: percent, maxPathTagLength: int({ min: 1 }) }, { strict: true }) }, { strict: true }),
    extensionProviders: arr(extensionProvider),
    defaultProviders: obj({ tracing: arr(str({ nonEmpty: true })) }, { strict: true }),
    tracing: obj({ otlp: obj({ endpoint: otlpEndpoint }, { required: ['endpoint'], strict: true }), sampling: num({ min: 0, max: 1 }) }, { required: ['otlp'], strict: true }),
    outboundTrafficPolicy: obj({ mode: str({ check: (s) => (s === 'ALLOW_ANY' || s === 'REGISTRY_ONLY' ? undefined : `must be ALLOW_ANY or REGISTRY_ONLY, got ${JSON.stringify(s)}`) }) }),
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
      tracingRefs(c, v, p);
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
