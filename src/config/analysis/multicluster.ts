/**
 * Several clusters analyzed together (`isle analyze cluster-1/ cluster-2/`): each directory is one
 * cluster's config. Each cluster is analyzed on its own (the same Service in two clusters is
 * namespace sameness, not a duplicate), seeing the other clusters' Services as hosts it discovers
 * through peering; then the checks that only make sense across clusters run.
 */
import { hostMatches, serviceHost } from '../hosts.js';
import type { ServiceSpec } from '../kinds/core.js';
import type { DestinationRuleSpec, WorkloadEntrySpec, WorkloadGroupSpec } from '../kinds/networking.js';
import type { ConfigError, Resource } from '../types.js';
import { AnalyzeContext, type AnalyzeOptions } from './context.js';

export interface ClusterConfig {
  readonly name: string;
  readonly resources: readonly Resource[];
}

type Labels = Readonly<Record<string, string>>;

function matches(selector: Labels | undefined, labels: Labels | undefined): boolean {
  if (!selector) return false;
  return Object.entries(selector).every(([k, v]) => labels !== undefined && Object.hasOwn(labels, k) && labels[k] === v);
}

/** Label sets of a cluster's workloads of `host`: WorkloadEntries and WorkloadGroup templates a Service of it selects. */
function workloadLabels(ctx: AnalyzeContext, host: string, services: readonly Resource<ServiceSpec>[]): Labels[] {
  const found = new Map<Resource, Labels>();
  for (const svc of services) {
    const ns = svc.metadata.namespace ?? 'default';
    if (serviceHost(svc.metadata.name, ns, ctx.domainSuffix) !== host) continue;
    const selector = svc.spec.selector;
    for (const we of ctx.of<WorkloadEntrySpec>('WorkloadEntry')) {
      if ((we.metadata.namespace ?? 'default') === ns && matches(selector, we.spec.labels)) found.set(we, we.spec.labels ?? {});
    }
    for (const wg of ctx.of<WorkloadGroupSpec>('WorkloadGroup')) {
      const labels = { ...wg.spec.metadata?.labels, ...wg.spec.template?.labels };
      if ((wg.metadata.namespace ?? 'default') === ns && matches(selector, labels)) found.set(wg, labels);
    }
  }
  return [...found.values()];
}

/**
 * A subset defined in one cluster only. A sidecar there sends requests for the subset's endpoints
 * in another network to that network's east-west gateway with the SNI
 * `outbound_.<port>_.<subset>_.<host>`; the gateway serves only the SNIs its own cluster's
 * DestinationRules define, so it closes the connection and every such request fails (503).
 */
function crossClusterSubsets(clusters: readonly ClusterConfig[], ctxs: readonly AnalyzeContext[]): ConfigError[] {
  const out: ConfigError[] = [];
  // Every Service of the mesh, by cluster: namespace sameness means one cluster's Service selects
  // the workloads of the same name and namespace in another.
  const allServices = ctxs.flatMap((c) => c.of<ServiceSpec>('Service'));
  clusters.forEach((a, ai) => {
    const ctxA = ctxs[ai]!;
    for (const dr of ctxA.of<DestinationRuleSpec>('DestinationRule')) {
      const host = ctxA.fqdn(dr.spec.host, dr);
      if (host.includes('*')) continue;
      (dr.spec.subsets ?? []).forEach((subset, si) => {
        clusters.forEach((b, bi) => {
          if (bi === ai) return;
          const ctxB = ctxs[bi]!;
          const there = workloadLabels(ctxB, host, allServices).filter((l) => Object.entries(subset.labels ?? {}).every(([k, v]) => Object.hasOwn(l, k) && l[k] === v));
          if (there.length === 0) return;
          const defined = ctxB.of<DestinationRuleSpec>('DestinationRule').some((d) => hostMatches(host, ctxB.fqdn(d.spec.host, d)) && (d.spec.subsets ?? []).some((s) => s.name === subset.name));
          if (defined) return;
          out.push(
            ctxA.problem(
              'warning',
              dr,
              ['spec', 'subsets', si],
              `subset ${subset.name} of ${host} is defined in cluster ${a.name} but not in cluster ${b.name}, which has ${there.length === 1 ? 'a workload' : `${there.length} workloads`} for it: ${b.name}'s east-west gateway does not route its SNI, so requests from ${a.name} to them fail; define the subset in ${b.name} too`,
            ),
          );
        });
      });
    }
  });
  return out;
}

/** Analyzes each cluster (with `analyzeOne`), then across them. */
export function analyzeClusters(
  clusters: readonly ClusterConfig[],
  analyzeOne: (resources: readonly Resource[], opts: AnalyzeOptions) => ConfigError[],
  opts: AnalyzeOptions = {},
): ConfigError[] {
  const ctxs = clusters.map((c) => new AnalyzeContext(c.resources, opts));
  const out: ConfigError[] = [];
  clusters.forEach((c, i) => {
    const peerHosts = ctxs.flatMap((x, j) => (j === i ? [] : x.of<ServiceSpec>('Service').map((s) => serviceHost(s.metadata.name, s.metadata.namespace ?? 'default', x.domainSuffix))));
    out.push(...analyzeOne(c.resources, { ...opts, peerHosts: [...(opts.peerHosts ?? []), ...peerHosts] }));
  });
  out.push(...crossClusterSubsets(clusters, ctxs));
  return out;
}
