/**
 * Checks across resources (validation looks at one resource at a time). Each analyzer is a small
 * pure function over the whole set; add one by appending it to ANALYZERS.
 */
import { hostMatches, serviceHost } from './hosts.js';
import type { Path } from './schema.js';
import { resourceKey, type ConfigError, type Resource } from './types.js';
import {
  AnalyzeContext, boundToMesh, canonicalJson, definedHosts, destinations, isCatchAll, visibleTogether,
  type Analyzer, type AnalyzeOptions,
} from './analysis/context.js';
import { GATEWAY_ANALYZERS } from './analysis/gateways.js';
import { ROUTE_ANALYZERS } from './analysis/routes.js';
import { SERVICE_ANALYZERS } from './analysis/services.js';
import { SECURITY_ANALYZERS } from './analysis/security.js';
import { tracingProviders } from './analysis/telemetry.js';
import type {
  DestinationRuleSpec,
  HTTPRoute,
  LocalityLbSetting,
  ServiceEntrySpec,
  TrafficPolicy,
  VirtualServiceSpec,
  WorkloadEntrySpec,
} from './kinds/networking.js';
import type { ServiceSpec } from './kinds/core.js';
import type { MeshConfigSpec, RemoteClusterSpec } from './kinds/mesh.js';
import type { PeerAuthenticationSpec } from './kinds/security.js';

export { AnalyzeContext, type Analyzer, type AnalyzeOptions } from './analysis/context.js';
export { analyzeClusters, type ClusterConfig } from './analysis/multicluster.js';

// ----------------------------------------------------------------- analyzers

const duplicates: Analyzer = {
  name: 'duplicates',
  run: (ctx) => {
    const first = new Map<string, Resource>();
    const out: ConfigError[] = [];
    for (const r of ctx.resources) {
      const key = resourceKey(r);
      const f = first.get(key);
      if (!f) first.set(key, r);
      else out.push(ctx.problem('error', r, [], `defined more than once (also at ${f.source.file}:${f.source.line})`));
    }
    return out;
  },
};

const unknownHosts: Analyzer = {
  name: 'unknown-hosts',
  run: (ctx) => {
    const defined = definedHosts(ctx);
    const known = (h: string) => defined.some((d) => hostMatches(h, d));
    const out: ConfigError[] = [];
    const why = 'no Service or ServiceEntry defines host';
    for (const vs of ctx.of<VirtualServiceSpec>('VirtualService')) {
      // Hosts of a VirtualService bound to an ingress gateway are public names, not services.
      const reported = new Set<string>();
      if (boundToMesh(vs)) {
        (vs.spec.hosts ?? []).forEach((h, i) => {
          const f = ctx.fqdn(h, vs);
          if (f === '*' || known(f)) return;
          reported.add(f);
          if (f.includes('*')) out.push(ctx.problem('warning', vs, ['spec', 'hosts', i], `${f} matches no host of any Service or ServiceEntry`));
          else out.push(ctx.problem('error', vs, ['spec', 'hosts', i], `${why} ${f}`));
        });
      }
      // Routing a missing host to itself is one mistake, reported once (at spec.hosts).
      for (const d of destinations(vs)) {
        const f = ctx.fqdn(d.dest.host, vs);
        if (!known(f) && !reported.has(f)) out.push(ctx.problem('error', vs, [...d.path, 'host'], `${why} ${f}`));
      }
    }
    return out;
  },
};

/** IST0174 UnknownDestinationRuleHost. A warning for Istio; Isle keeps it an error, as for every unknown host. */
const unknownDestinationRuleHost: Analyzer = {
  name: 'unknown-destination-rule-host',
  run: (ctx) => {
    const defined = definedHosts(ctx);
    const out: ConfigError[] = [];
    for (const dr of ctx.of<DestinationRuleSpec>('DestinationRule')) {
      const f = ctx.fqdn(dr.spec.host, dr);
      if (defined.some((d) => hostMatches(f, d))) continue;
      // A wildcard rule is a policy for whatever matches it, now or later: nothing matching yet is
      // worth a warning, not an error, and it is not "a host no Service defines".
      if (f.includes('*')) out.push(ctx.problem('warning', dr, ['spec', 'host'], `${f} matches no host of any Service or ServiceEntry`, 'IST0174'));
      else out.push(ctx.problem('error', dr, ['spec', 'host'], `no Service or ServiceEntry defines host ${f}`, 'IST0174'));
    }
    return out;
  },
};

const unknownSubsets: Analyzer = {
  name: 'unknown-subsets',
  run: (ctx) => {
    const defined = definedHosts(ctx);
    const drs = ctx.of<DestinationRuleSpec>('DestinationRule').map((dr) => ({ host: ctx.fqdn(dr.spec.host, dr), subsets: (dr.spec.subsets ?? []).map((s) => s.name) }));
    const out: ConfigError[] = [];
    for (const vs of ctx.of<VirtualServiceSpec>('VirtualService')) {
      for (const d of destinations(vs)) {
        if (d.dest.subset === undefined) continue;
        const f = ctx.fqdn(d.dest.host, vs);
        // An unknown host is already reported; a subset error on top would only repeat it.
        if (!defined.some((h) => hostMatches(f, h))) continue;
        const ok = drs.some((dr) => hostMatches(dr.host, f) && dr.subsets.includes(d.dest.subset!));
        if (!ok) {
          out.push(ctx.problem('error', vs, [...d.path, 'subset'], `subset ${JSON.stringify(d.dest.subset)} is not defined by any DestinationRule for host ${f}`));
        }
      }
    }
    return out;
  },
};

/** A destination port the service does not have gets no traffic. */
const unknownPorts: Analyzer = {
  name: 'unknown-ports',
  run: (ctx) => {
    const ports = new Map<string, Set<number>>();
    for (const s of ctx.of<ServiceSpec>('Service')) {
      ports.set(serviceHost(s.metadata.name, s.metadata.namespace ?? 'default', ctx.domainSuffix), new Set((s.spec.ports ?? []).map((p) => p.port)));
    }
    for (const se of ctx.of<ServiceEntrySpec>('ServiceEntry')) {
      for (const h of se.spec.hosts ?? []) {
        const set = ports.get(ctx.fqdn(h, se)) ?? new Set<number>();
        for (const p of se.spec.ports ?? []) set.add(p.number);
        ports.set(ctx.fqdn(h, se), set);
      }
    }
    const out: ConfigError[] = [];
    for (const vs of ctx.of<VirtualServiceSpec>('VirtualService')) {
      for (const d of destinations(vs)) {
        const n = d.dest.port?.number;
        const have = ports.get(ctx.fqdn(d.dest.host, vs));
        if (n === undefined || !have || have.size === 0 || have.has(n)) continue;
        const p = [...d.path, 'port', 'number'];
        out.push(ctx.problem('warning', vs, p, `host ${ctx.fqdn(d.dest.host, vs)} has no port ${n} (ports: ${[...have].sort((a, b) => a - b).join(', ')})`));
      }
    }
    return out;
  },
};

function routeTarget(h: HTTPRoute, vs: Resource<VirtualServiceSpec>, ctx: AnalyzeContext): string {
  if (h.redirect) return `redirect ${canonicalJson(h.redirect)}`;
  if (h.directResponse) return `direct response ${h.directResponse.status}`;
  if (h.delegate) return `delegate ${h.delegate.namespace ?? ''}/${h.delegate.name}`;
  return (h.route ?? [])
    .map((r) => `${ctx.fqdn(r.destination.host, vs)}${r.destination.subset ? `/${r.destination.subset}` : ''}${r.destination.port?.number ? `:${r.destination.port.number}` : ''}${r.weight !== undefined ? ` ${r.weight}%` : ''}`)
    .sort()
    .join(', ');
}

/**
 * Several VirtualServices for one host are merged (their http routes in order, first match wins).
 * Two of them conflict when both have a catch-all route (the later one's catch-all, and any route
 * after it, can never match) or when they have the same match with different destinations (the
 * later one is dead). Reported on the later resource (namespace/name order, the merge order).
 */
const conflictingVirtualServices: Analyzer = {
  name: 'conflicting-virtual-services',
  run: (ctx) => {
    const byHost = new Map<string, { vs: Resource<VirtualServiceSpec>; i: number }[]>();
    const sorted = [...ctx.of<VirtualServiceSpec>('VirtualService')].filter(boundToMesh).sort(
      (a, b) => (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') || a.metadata.name.localeCompare(b.metadata.name),
    );
    for (const vs of sorted) {
      (vs.spec.hosts ?? []).forEach((h, i) => {
        const f = ctx.fqdn(h, vs);
        const l = byHost.get(f) ?? [];
        if (!l.some((x) => resourceKey(x.vs) === resourceKey(vs))) l.push({ vs, i });
        byHost.set(f, l);
      });
    }
    const out: ConfigError[] = [];
    for (const [host, list] of byHost) {
      for (let b = 1; b < list.length; b++) {
        const later = list[b]!.vs;
        const code = 'IST0109';
        const where = (o: Resource) => `VirtualService ${o.metadata.namespace}/${o.metadata.name} (${o.source.file}:${o.source.line})`;
        (later.spec.http ?? []).forEach((h, j) => {
          for (let a = 0; a < b; a++) {
            const earlier = list[a]!.vs;
            // exportTo: VirtualServices no namespace sees together are never merged.
            if (!visibleTogether(earlier, later)) continue;
            const routes = earlier.spec.http ?? [];
            if (isCatchAll(h) && routes.some(isCatchAll)) {
              out.push(ctx.problem('warning', later, ['spec', 'http', j], `host ${host}: ${where(earlier)} also has a catch-all route, which comes first when they are merged; this route never matches`, code));
              return;
            }
            const key = h.match ? canonicalJson(h.match) : undefined;
            const same = key === undefined ? undefined : routes.find((r) => r.match && canonicalJson(r.match) === key);
            if (same && routeTarget(same, earlier, ctx) !== routeTarget(h, later, ctx)) {
              out.push(ctx.problem('warning', later, ['spec', 'http', j, 'match'], `host ${host}: ${where(earlier)} has the same match with other destinations (${routeTarget(same, earlier, ctx)}); it comes first when they are merged, so this route never matches`, code));
              return;
            }
          }
        });
      }
    }
    return out;
  },
};

interface LocalityPolicy {
  lls: LocalityLbSetting;
  path: Path;
  outlier: boolean;
}

/** Every localityLbSetting of a DestinationRule, with whether outlier detection applies there. */
function localityPolicies(dr: Resource<DestinationRuleSpec>): LocalityPolicy[] {
  const out: LocalityPolicy[] = [];
  const walk = (tp: TrafficPolicy | undefined, path: Path, inherited: boolean) => {
    if (!tp) return;
    const od = tp.outlierDetection !== undefined || inherited;
    if (tp.loadBalancer?.localityLbSetting) out.push({ lls: tp.loadBalancer.localityLbSetting, path: [...path, 'loadBalancer', 'localityLbSetting'], outlier: od });
    (tp.portLevelSettings ?? []).forEach((pl, i) => {
      // Port-level settings do not inherit (Istio).
      if (pl.loadBalancer?.localityLbSetting) out.push({ lls: pl.loadBalancer.localityLbSetting, path: [...path, 'portLevelSettings', i, 'loadBalancer', 'localityLbSetting'], outlier: pl.outlierDetection !== undefined });
    });
  };
  walk(dr.spec.trafficPolicy, ['spec', 'trafficPolicy'], false);
  (dr.spec.subsets ?? []).forEach((s, i) => walk(s.trafficPolicy, ['spec', 'subsets', i, 'trafficPolicy'], dr.spec.trafficPolicy?.outlierDetection !== undefined));
  return out;
}

/**
 * The well-known trap: locality failover without outlierDetection never fails over (the proxy
 * cannot tell an endpoint is down), and distribute keeps sending its share to dead endpoints.
 * Failover at a level that has no outlierDetection of its own is already a validation warning;
 * this covers distribute, and subset-level settings that inherit nothing either.
 */
const localityWithoutOutlierDetection: Analyzer = {
  name: 'locality-without-outlier-detection',
  run: (ctx) => {
    const out: ConfigError[] = [];
    for (const dr of ctx.of<DestinationRuleSpec>('DestinationRule')) {
      for (const p of localityPolicies(dr)) {
        if (p.outlier || p.lls.enabled === false) continue;
        const failover = (p.lls.failover?.length ?? 0) > 0 || (p.lls.failoverPriority?.length ?? 0) > 0;
        const distribute = (p.lls.distribute?.length ?? 0) > 0;
        if (distribute) {
          out.push(ctx.problem('warning', dr, p.path, 'locality distribute without outlierDetection: unhealthy endpoints are never detected, so each locality keeps its share of traffic even when its endpoints fail (add outlierDetection)'));
        } else if (failover && p.path[1] === 'subsets') {
          out.push(ctx.problem('warning', dr, p.path, 'locality failover without outlierDetection (neither the subset nor the rule has one): traffic never fails over to another locality'));
        }
      }
    }
    return out;
  },
};

/** Regions workloads are known to be in: WorkloadEntries, ServiceEntry endpoints, MeshConfig defaultLocality. */
function knownRegions(ctx: AnalyzeContext): Set<string> {
  const regions = new Set<string>();
  const add = (locality: string | undefined, labels: Record<string, string> | undefined) => {
    const r = locality?.split('/')[0] || labels?.['topology.kubernetes.io/region'];
    if (r) regions.add(r);
  };
  for (const w of ctx.of<WorkloadEntrySpec>('WorkloadEntry')) add(w.spec.locality, w.spec.labels);
  for (const se of ctx.of<ServiceEntrySpec>('ServiceEntry')) for (const e of se.spec.endpoints ?? []) add(e.locality, e.labels);
  for (const m of ctx.of<MeshConfigSpec>('MeshConfig')) if (m.spec.defaultLocality?.region) regions.add(m.spec.defaultLocality.region);
  return regions;
}

/** A failover `from`/`to` naming a region no workload is in is most likely a typo: that step never happens. */
const failoverUnknownRegion: Analyzer = {
  name: 'failover-unknown-region',
  run: (ctx) => {
    const regions = knownRegions(ctx);
    // Without any locality in the config (workloads register themselves) there is nothing to compare with.
    if (regions.size === 0) return [];
    const known = [...regions].sort().join(', ');
    const out: ConfigError[] = [];
    for (const dr of ctx.of<DestinationRuleSpec>('DestinationRule')) {
      for (const p of localityPolicies(dr)) {
        (p.lls.failover ?? []).forEach((f, i) => {
          for (const side of ['from', 'to'] as const) {
            if (!regions.has(f[side])) {
              out.push(ctx.problem('warning', dr, [...p.path, 'failover', i, side], `no workload is in region ${JSON.stringify(f[side])} (known regions: ${known})`));
            }
          }
        });
      }
    }
    return out;
  },
};

/** With two namespace-wide PeerAuthentications, Istio applies only the oldest. */
const peerAuthentication: Analyzer = {
  name: 'peer-authentication',
  run: (ctx) => {
    const seen = new Map<string, Resource>();
    const out: ConfigError[] = [];
    for (const pa of ctx.of<PeerAuthenticationSpec>('PeerAuthentication')) {
      if (pa.spec.selector?.matchLabels && Object.keys(pa.spec.selector.matchLabels).length > 0) continue;
      const ns = pa.metadata.namespace ?? 'default';
      const o = seen.get(ns);
      if (!o) seen.set(ns, pa);
      else if (resourceKey(o) !== resourceKey(pa)) {
        out.push(ctx.problem('warning', pa, [], `namespace ${ns} already has a namespace-wide PeerAuthentication (${o.metadata.name} at ${o.source.file}:${o.source.line}); only one applies`));
      }
    }
    return out;
  },
};

/** One control plane has one MeshConfig, and does not peer with itself. */
const meshConfig: Analyzer = {
  name: 'mesh-config',
  run: (ctx) => {
    const out: ConfigError[] = [];
    const meshes = ctx.of<MeshConfigSpec>('MeshConfig');
    const names = new Set(meshes.map((m) => m.metadata.name));
    if (names.size > 1) {
      const first = meshes[0]!;
      for (const m of meshes.slice(1)) {
        if (m.metadata.name !== first.metadata.name) {
          out.push(ctx.problem('error', m, [], `only one MeshConfig is allowed (another is ${first.metadata.name} at ${first.source.file}:${first.source.line})`));
        }
      }
    }
    const self = meshes[0]?.spec.clusterName;
    const addresses = new Map<string, Resource>();
    for (const rc of ctx.of<RemoteClusterSpec>('RemoteCluster')) {
      if (self !== undefined && rc.metadata.name === self) {
        out.push(ctx.problem('error', rc, ['metadata', 'name'], `${self} is this cluster (MeshConfig clusterName); a cluster cannot be its own peer`));
      }
      const o = addresses.get(rc.spec.address);
      if (o && o.metadata.name !== rc.metadata.name) {
        out.push(ctx.problem('warning', rc, ['spec', 'address'], `same address as RemoteCluster ${o.metadata.name} (${o.source.file}:${o.source.line})`));
      } else addresses.set(rc.spec.address, rc);
    }
    return out;
  },
};

export const ANALYZERS: Analyzer[] = [
  duplicates,
  unknownHosts,
  unknownDestinationRuleHost,
  unknownSubsets,
  unknownPorts,
  conflictingVirtualServices,
  peerAuthentication,
  meshConfig,
  localityWithoutOutlierDetection,
  failoverUnknownRegion,
  ...ROUTE_ANALYZERS,
  ...GATEWAY_ANALYZERS,
  ...SERVICE_ANALYZERS,
  ...SECURITY_ANALYZERS,
  tracingProviders,
];

/** Runs every analyzer. Pure: the resources are not changed. */
export function analyze(resources: readonly Resource[], opts: AnalyzeOptions = {}): ConfigError[] {
  const ctx = new AnalyzeContext(resources, opts);
  return ANALYZERS.flatMap((a) => a.run(ctx));
}
