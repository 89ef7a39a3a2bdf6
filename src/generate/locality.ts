/**
 * Locality load balancing (DestinationRule `trafficPolicy.loadBalancer.localityLbSetting`), as
 * Istio's pilot/pkg/networking/core/loadbalancer does it, applied to the ClusterLoadAssignments of
 * eds.ts for one *locality class* of proxies.
 *
 * - Which setting: that of the DestinationRule and merged policy cds.ts uses (destinationrule.ts:
 *   rule by host incl. root-namespace wildcards, exportTo, subset and port-level overrides), else
 *   the mesh default `{ enabled: true }`. `enabled: false` turns it off.
 * - `distribute` applies with or without outlier detection (as in Istio's code; Istio's docs still
 *   ask for outlier detection, and `isle analyze` warns without it): for a proxy whose locality
 *   matches `from`, each locality matching a `to` key gets `ceil(weight × its weight / Σ weights of
 *   the localities matching that key)`; localities matching no key are dropped. All priority 0.
 * - Everything else needs outlierDetection ("locality failover requires outlier detection"):
 *   without it the assignment is left flat (every locality priority 0).
 * - Default (and `failover`): priority by proximity to the proxy: same region/zone/subzone 0, same
 *   region/zone 1, same region 2, other regions 3, except that with a `failover` entry whose
 *   `from` is the proxy's region, regions other than its `to` drop to 4. Priorities are then
 *   compacted (0, 1, 2, … without gaps), so region1 → region2 → the rest.
 * - `failoverPriority` (label list, `label` or `label=value`): each locality is split by how many
 *   leading labels an endpoint shares with the proxy (all → 0, first mismatch at label j → n − j),
 *   compacted; with `failover` too, the locality priority above is added (priority × 5 + it).
 *
 * A locality class is what makes two proxies' EDS identical: network, locality, and the values of
 * the proxy labels that some failoverPriority names. Pushes with no DestinationRule that could
 * change priorities or weights keep one class per network (see `localityClassKey`).
 */
import type { PushContext } from '../model/pushcontext.js';
import type { Proxy } from '../model/proxy.js';
import type { DestinationRuleSpec, LocalityLbSetting, TrafficPolicy } from '../config/kinds/networking.js';
import { localityString, topologyLabels, type Labels, type Locality } from '../registry/model.js';
import { cmp, type EnvoyObject } from './common.js';
import { own } from '../config/own.js';
import { cdsShareKey, destinationRuleFor, effectivePolicy } from './destinationrule.js';

/** Istio's mesh default (`meshConfig.localityLbSetting.enabled: true`). */
export const MESH_DEFAULT_LOCALITY_LB: LocalityLbSetting = Object.freeze({ enabled: true });

export interface EffectiveLocalityLb {
  readonly setting: LocalityLbSetting;
  /** Whether outlier detection applies, i.e. whether failover (priorities) may be applied. */
  readonly outlierDetection: boolean;
}

/** The locality setting that shapes EDS for this cluster, or undefined when it leaves EDS flat. */
export function localityLbFor(push: PushContext, hostname: string, port: number, subset = '', clientNamespace?: string): EffectiveLocalityLb | undefined {
  // The same rule and merged policy cds.ts applies (destinationrule.ts), so EDS priorities and the
  // cluster's outlier_detection always come from one decision.
  const parts = effectivePolicy(destinationRuleFor(push, hostname, clientNamespace), port, subset);
  const setting = parts.loadBalancer?.localityLbSetting ?? MESH_DEFAULT_LOCALITY_LB;
  if (setting.enabled === false) return undefined;
  const outlierDetection = parts.outlierDetection !== undefined;
  if ((setting.distribute?.length ?? 0) > 0) return { setting, outlierDetection };
  if (!outlierDetection) return undefined;
  return { setting, outlierDetection };
}

interface PushLocalityInfo {
  /** Some DestinationRule can give proxies of one network different EDS. */
  readonly perLocality: boolean;
  /** Proxy labels some failoverPriority compares (without `=value` overrides), sorted. */
  readonly labelKeys: readonly string[];
}

const infoCache = new WeakMap<PushContext, PushLocalityInfo>();

function policies(dr: DestinationRuleSpec): TrafficPolicy[] {
  const out: TrafficPolicy[] = [];
  const add = (p: TrafficPolicy | undefined) => {
    if (!p) return;
    out.push(p);
    for (const pl of p.portLevelSettings ?? []) out.push(pl);
  };
  add(dr.trafficPolicy);
  for (const s of dr.subsets ?? []) add(s.trafficPolicy);
  return out;
}

function pushInfo(push: PushContext): PushLocalityInfo {
  let info = infoCache.get(push);
  if (info) return info;
  let perLocality = false;
  const keys = new Set<string>();
  for (const dr of new Set(push.destinationRuleByHost.values())) {
    for (const p of policies(dr.spec)) {
      const l = p.loadBalancer?.localityLbSetting;
      if (p.outlierDetection !== undefined || (l?.distribute?.length ?? 0) > 0) perLocality = true;
      for (const f of l?.failoverPriority ?? []) if (!f.includes('=')) keys.add(f);
    }
  }
  info = Object.freeze({ perLocality, labelKeys: Object.freeze([...keys].sort(cmp)) });
  infoCache.set(push, info);
  return info;
}

/** What locality LB reads from a proxy. */
export interface LocalityClass {
  /** '' when the push gives every proxy of a network the same EDS. */
  readonly key: string;
  /** The client namespace (DestinationRule `exportTo`). */
  readonly namespace: string;
  readonly locality: Locality;
  /** The proxy's labels plus its topology labels (region, zone, subzone, network, cluster). */
  readonly labels: Labels;
}

/**
 * The proxy's locality: its node's (node.locality, its labels, the control plane's default),
 * else that of its own workload in the registry (a WorkloadEntry or auto-registered workload at
 * its address on its network).
 */
export function proxyLocality(push: PushContext, proxy: Proxy): Locality {
  if (proxy.locality.region || proxy.locality.zone || proxy.locality.subzone) return proxy.locality;
  for (const ip of proxy.ips) {
    for (const e of push.endpointsByAddress.get(ip) ?? []) {
      if (e.network !== proxy.network && e.network !== '' && proxy.network !== '') continue;
      if (e.locality.region) return e.locality;
    }
  }
  return proxy.locality;
}

export function localityClassOf(push: PushContext, proxy: Proxy): LocalityClass {
  const locality = proxyLocality(push, proxy);
  const labels = topologyLabels(proxy.labels, { locality, network: proxy.network, cluster: proxy.cluster });
  const info = pushInfo(push);
  const namespace = proxy.namespace;
  if (!info.perLocality) return { key: '', namespace, locality, labels };
  // Rules with a restricted exportTo make the applicable rule depend on the namespace, as in CDS.
  const dr = cdsShareKey(push, namespace);
  const parts = [localityString(locality), ...info.labelKeys.map((k) => `${k}=${(own(labels, k) as string | undefined) ?? ''}`), ...(dr === 'outbound' ? [] : [dr])];
  return { key: JSON.stringify(parts), namespace, locality, labels };
}

// ------------------------------------------------------------------------------ applying

/** Labels of the endpoint(s) behind each lb_endpoint object, for failoverPriority. */
export type EndpointTags = Map<EnvoyObject, Labels>;

interface Group {
  locality: Locality;
  obj: EnvoyObject;
  lb: EnvoyObject[];
  weight: number;
  priority: number;
}

function localityOf(o: EnvoyObject): Locality {
  const l = (o['locality'] ?? {}) as Record<string, string | undefined>;
  return { region: l['region'] ?? '', zone: l['zone'] ?? '', subzone: l['sub_zone'] ?? '' };
}

const lbWeight = (lb: EnvoyObject): number => (typeof lb['load_balancing_weight'] === 'number' ? (lb['load_balancing_weight'] as number) : 1);

/** Istio's util.LocalityMatch: `region[/zone[/subzone]]`, `*` matching anything. */
export function localityMatch(l: Locality, rule: string): boolean {
  const [region = '', zone = '', subzone = ''] = rule.split('/');
  return (
    (region === '*' || l.region === region) &&
    (zone === '*' || zone === '' || l.zone === zone) &&
    (subzone === '*' || subzone === '' || l.subzone === subzone)
  );
}

/** Istio's LbPriority: 0 same subzone, 1 same zone, 2 same region, 3 elsewhere. */
export function lbPriority(proxy: Locality, ep: Locality): number {
  if (proxy.region !== ep.region) return 3;
  if (proxy.zone !== ep.zone) return 2;
  return proxy.subzone === ep.subzone ? 0 : 1;
}

function compact(groups: Group[]): void {
  const levels = [...new Set(groups.map((g) => g.priority))].sort((a, b) => a - b);
  const index = new Map(levels.map((p, i) => [p, i] as const));
  for (const g of groups) g.priority = index.get(g.priority)!;
}

function applyFailover(groups: Group[], proxy: Locality, failover: readonly { from: string; to: string }[]): void {
  const rule = failover.find((f) => f.from === proxy.region);
  for (const g of groups) {
    let p = lbPriority(proxy, g.locality);
    if (p === 3 && rule && g.locality.region !== rule.to) p = 4;
    g.priority = g.priority * 5 + p;
  }
  compact(groups);
}

function applyFailoverPriority(groups: Group[], cls: LocalityClass, labels: readonly string[], tags: EndpointTags): Group[] {
  const keys = labels.map((l) => {
    const i = l.indexOf('=');
    return i < 0 ? { key: l, value: own(cls.labels, l) as string | undefined } : { key: l.slice(0, i), value: l.slice(i + 1) };
  });
  const lowest = keys.length;
  const out: Group[] = [];
  for (const g of groups) {
    const byPriority = new Map<number, EnvoyObject[]>();
    for (const lb of g.lb) {
      const epLabels = tags.get(lb) ?? {};
      let p = 0;
      for (let j = 0; j < keys.length; j++) {
        if (keys[j]!.value !== epLabels[keys[j]!.key]) {
          p = lowest - j;
          break;
        }
      }
      let l = byPriority.get(p);
      if (!l) byPriority.set(p, (l = []));
      l.push(lb);
    }
    for (const [p, lb] of [...byPriority].sort(([a], [b]) => a - b)) {
      out.push({ ...g, lb, weight: lb.reduce((a, x) => a + lbWeight(x), 0), priority: p });
    }
  }
  compact(out);
  return out;
}

/** `to` keys, most specific first (fewer wildcards, more parts), then by name: deterministic. */
function toOrder(a: string, b: string): number {
  const stars = (s: string) => s.split('/').filter((x) => x === '*').length;
  const parts = (s: string) => s.split('/').length;
  return stars(a) - stars(b) || parts(b) - parts(a) || cmp(a, b);
}

function applyDistribute(groups: Group[], proxy: Locality, distribute: readonly { from: string; to: Record<string, number> }[]): Group[] {
  const rule = distribute.find((d) => localityMatch(proxy, d.from));
  if (!rule) return groups;
  const left = new Set(groups);
  const out: Group[] = [];
  for (const to of Object.keys(rule.to).sort(toOrder)) {
    const weight = rule.to[to]!;
    const matched = [...left].filter((g) => localityMatch(g.locality, to));
    for (const g of matched) left.delete(g);
    const total = matched.reduce((a, g) => a + g.weight, 0);
    // A locality given 0 % gets no traffic: it is left out, like one matching no key.
    if (weight <= 0 || total <= 0) continue;
    for (const g of matched) out.push({ ...g, weight: Math.ceil((g.weight * weight) / total), priority: 0 });
  }
  return out;
}

/**
 * Applies `lb` for the proxies of `cls` to the `endpoints` of one ClusterLoadAssignment (the
 * LocalityLbEndpoints of eds.ts / network.ts). Returns new objects, sorted by priority then
 * locality; `priority` is written only when not 0 (the proto3 default).
 */
export function applyLocalityLb(endpoints: readonly EnvoyObject[], cls: LocalityClass, lb: EffectiveLocalityLb, tags: EndpointTags): EnvoyObject[] {
  let groups: Group[] = endpoints.map((o) => ({
    locality: localityOf(o),
    obj: o,
    lb: (o['lb_endpoints'] ?? []) as EnvoyObject[],
    weight: typeof o['load_balancing_weight'] === 'number' ? (o['load_balancing_weight'] as number) : 1,
    priority: 0,
  }));
  const s = lb.setting;
  if ((s.distribute?.length ?? 0) > 0) {
    groups = applyDistribute(groups, cls.locality, s.distribute!);
  } else if (lb.outlierDetection) {
    if ((s.failoverPriority?.length ?? 0) > 0) {
      groups = applyFailoverPriority(groups, cls, s.failoverPriority!, tags);
      if ((s.failover?.length ?? 0) > 0) applyFailover(groups, cls.locality, s.failover!);
    } else {
      applyFailover(groups, cls.locality, s.failover ?? []);
    }
  }
  return groups
    .filter((g) => g.lb.length > 0)
    .sort((a, b) => a.priority - b.priority || cmp(localityString(a.locality), localityString(b.locality)))
    .map((g) => {
      const { priority: _p, load_balancing_weight: _w, lb_endpoints: _l, ...rest } = g.obj;
      return { ...rest, lb_endpoints: g.lb, load_balancing_weight: g.weight, ...(g.priority > 0 ? { priority: g.priority } : {}) };
    });
}
