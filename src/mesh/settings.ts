/**
 * The one place that decides the mesh settings of a control plane: which MeshConfig wins, what the
 * command line overrides, and the defaults. The registry (workload defaults), the pusher
 * (PushContext mesh info, proxy defaults, debounce), the xDS authenticator (proxy defaults) and the
 * auto-registry (grace period) all read `current()`, and it is re-read live when a MeshConfig is
 * added, changed or removed: subscribers hear about it once per effective change.
 *
 * Cluster name and trust domain are fixed for the life of the process: they are the intermediate
 * CA's (the control plane checks the MeshConfig against the CA at start).
 */
import { MESH_DEFAULTS, parseOtlpEndpoint, SHORT_FORM_PROVIDER, type Locality, type MeshConfigSpec } from '../config/kinds/mesh.js';
import { parseDuration } from '../config/schema.js';
import type { ConfigEvent, Kind, Resource } from '../config/types.js';

export interface MeshSettings {
  readonly clusterName: string;
  readonly trustDomain: string;
  /** This cluster's network; '' when the mesh is one flat network. */
  readonly network: string;
  readonly rootNamespace: string;
  readonly defaultLocality?: Locality;
  readonly debounce: { readonly quietMs: number; readonly maxMs: number };
  /** How long an auto-registered workload outlives its last xDS stream. */
  readonly registrationGraceMs: number;
  /** As a central control plane: whether remote control planes' clusters see this one (seed 001). */
  readonly remoteClustersSeeCentral: boolean;
  /** With remoteClustersSeeCentral: the only namespaces remote clusters see; undefined: all. */
  readonly remoteClustersSeeCentralNamespaces?: readonly string[];
  /** meshConfig.accessLogFile / accessLogEncoding; undefined: no access log. */
  readonly accessLog?: { readonly file: string; readonly encoding: 'TEXT' | 'JSON' };
  /** Tracing providers and defaults (ADR 0085). */
  readonly tracing: MeshTracing;
  /** meshConfig.outboundTrafficPolicy.mode (default ALLOW_ANY). */
  readonly outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** `name (file:line)` of the MeshConfig in use, for logs; undefined when there is none. */
  readonly source?: string;
}

/** An OpenTelemetry (OTLP/HTTP) collector: a mesh service, or an address (Isle's short form). */
export interface TracingProvider {
  readonly name: string;
  /** `service`: a registry host (its outbound cluster); `endpoint`: an address outside the registry. */
  readonly kind: 'service' | 'endpoint';
  readonly host: string;
  readonly port: number;
  readonly path: string;
  /** Istio duration; default 5s. */
  readonly timeout?: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly maxTagLength?: number;
}

export interface MeshTracing {
  readonly providers: Readonly<Record<string, TracingProvider>>;
  /** defaultProviders.tracing (or the short form's provider). */
  readonly defaultProvider?: string;
  /** meshConfig.enableTracing; Istio's default true. */
  readonly enabled: boolean;
  /** defaultConfig.tracing.sampling (percent); Istio's default 1 %. */
  readonly samplingPercent: number;
  readonly maxPathTagLength?: number;
}

/** MeshConfig → the tracing settings; the short form becomes provider `isle-otlp` (ADR 0085). */
export function resolveTracing(spec: MeshConfigSpec | undefined): MeshTracing {
  const providers: Record<string, TracingProvider> = {};
  for (const p of spec?.extensionProviders ?? []) {
    const o = p.opentelemetry;
    if (!o) continue;
    providers[p.name] = Object.freeze({
      name: p.name,
      kind: 'service' as const,
      host: o.service,
      port: o.port,
      path: o.http?.path ?? '/v1/traces',
      ...(o.http?.timeout ? { timeout: o.http.timeout } : {}),
      headers: (o.http?.headers ?? []).map((h) => [h.name, h.value] as const),
      ...(o.maxTagLength ? { maxTagLength: o.maxTagLength } : {}),
    });
  }
  let defaultProvider = spec?.defaultProviders?.tracing?.[0];
  let samplingPercent = spec?.defaultConfig?.tracing?.sampling ?? 1;
  const short = spec?.tracing;
  if (short) {
    const e = parseOtlpEndpoint(short.otlp.endpoint);
    if (typeof e !== 'string') {
      providers[SHORT_FORM_PROVIDER] = Object.freeze({ name: SHORT_FORM_PROVIDER, kind: 'endpoint' as const, host: e.host, port: e.port, path: e.path, headers: [] });
      defaultProvider = SHORT_FORM_PROVIDER;
      samplingPercent = (short.sampling ?? 0.01) * 100;
    }
  }
  const mpl = spec?.defaultConfig?.tracing?.maxPathTagLength;
  return Object.freeze({
    providers: Object.freeze(providers),
    ...(defaultProvider ? { defaultProvider } : {}),
    enabled: spec?.enableTracing ?? true,
    samplingPercent,
    ...(mpl ? { maxPathTagLength: mpl } : {}),
  });
}

/** What the process fixes (from the CA) or the command line overrides. */
export interface MeshFixed {
  clusterName: string;
  trustDomain: string;
  /** `--network`: wins over the MeshConfig's network. */
  network?: string;
}

/** Isle keeps one MeshConfig per cluster; with several, the first by name wins (and is logged). */
export function pickMeshConfig(resources: readonly Resource[]): Resource<MeshConfigSpec> | undefined {
  let best: Resource | undefined;
  for (const r of resources) if (r.kind === 'MeshConfig' && (best === undefined || r.metadata.name < best.metadata.name)) best = r;
  return best as Resource<MeshConfigSpec> | undefined;
}

function durationMs(v: string | undefined, dflt: string): number {
  // Validated by the MeshConfig schema before it reaches the store; the default is a safety net.
  return parseDuration(v ?? dflt) ?? parseDuration(dflt)!;
}

export function resolveMeshSettings(mesh: Resource<MeshConfigSpec> | undefined, fixed: MeshFixed): MeshSettings {
  const spec = mesh?.spec;
  const network = fixed.network ?? spec?.network ?? '';
  return Object.freeze({
    clusterName: fixed.clusterName,
    trustDomain: fixed.trustDomain,
    network,
    rootNamespace: spec?.rootNamespace ?? MESH_DEFAULTS.rootNamespace,
    ...(spec?.defaultLocality ? { defaultLocality: spec.defaultLocality } : {}),
    debounce: Object.freeze({
      quietMs: durationMs(spec?.debounce?.quiet, MESH_DEFAULTS.debounce.quiet),
      maxMs: durationMs(spec?.debounce?.max, MESH_DEFAULTS.debounce.max),
    }),
    registrationGraceMs: durationMs(spec?.registrationGracePeriod, MESH_DEFAULTS.registrationGracePeriod),
    remoteClustersSeeCentral: spec?.remoteClustersSeeCentral ?? false,
    ...(spec?.remoteClustersSeeCentral && spec.remoteClustersSeeCentralNamespaces ? { remoteClustersSeeCentralNamespaces: Object.freeze([...spec.remoteClustersSeeCentralNamespaces].sort()) } : {}),
    outboundTrafficPolicy: spec?.outboundTrafficPolicy?.mode ?? 'ALLOW_ANY',
    ...(spec?.accessLogFile ? { accessLog: Object.freeze({ file: spec.accessLogFile, encoding: spec.accessLogEncoding ?? 'TEXT' }) } : {}),
    tracing: resolveTracing(spec),
    ...(mesh ? { source: `${mesh.metadata.name} (${mesh.source.file}:${mesh.source.line})` } : {}),
  });
}

export type MeshSettingsListener = (next: MeshSettings, previous: MeshSettings) => void;

/** Anything that can say the current settings and when they change (the resolver, or a fixed value in tests). */
export interface MeshSettingsSource {
  current(): MeshSettings;
  subscribe(listener: MeshSettingsListener): () => void;
}

export interface MeshConfigFeed {
  list(kind?: Kind): Resource[];
  subscribe(listener: (events: readonly ConfigEvent[], version: number) => void): () => void;
}

/** Settings that never change (tests, tools). */
export function fixedMeshSettings(settings: MeshSettings): MeshSettingsSource {
  return { current: () => settings, subscribe: () => () => {} };
}

/**
 * Follows the config store: recomputes on every batch that touches a MeshConfig, and notifies only
 * when the effective settings moved (a comment edited in the file changes nothing).
 */
export class MeshSettingsResolver implements MeshSettingsSource {
  private settings: MeshSettings;
  private readonly listeners = new Set<MeshSettingsListener>();
  private readonly off: () => void;

  constructor(
    private readonly feed: MeshConfigFeed,
    private readonly fixed: MeshFixed,
    private readonly onListenerError: (err: unknown) => void = (e) => queueMicrotask(() => { throw e; }),
  ) {
    this.settings = this.read();
    this.off = feed.subscribe((events) => {
      if (!events.some((e) => (e.type === 'deleted' ? e.previous.kind : e.resource.kind) === 'MeshConfig')) return;
      const previous = this.settings;
      const next = this.read();
      if (sameSettings(previous, next)) return;
      this.settings = next;
      for (const l of [...this.listeners]) {
        try {
          l(next, previous);
        } catch (e) {
          this.onListenerError(e);
        }
      }
    });
  }

  /** Every MeshConfig in the store (more than one is worth a warning). */
  meshConfigs(): Resource<MeshConfigSpec>[] {
    return this.feed.list('MeshConfig') as Resource<MeshConfigSpec>[];
  }

  current(): MeshSettings {
    return this.settings;
  }

  subscribe(listener: MeshSettingsListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  stop(): void {
    this.off();
    this.listeners.clear();
  }

  private read(): MeshSettings {
    return resolveMeshSettings(pickMeshConfig(this.meshConfigs()), this.fixed);
  }
}

function sameSettings(a: MeshSettings, b: MeshSettings): boolean {
  const strip = ({ source: _s, ...rest }: MeshSettings) => rest;
  return JSON.stringify(strip(a)) === JSON.stringify(strip(b));
}
