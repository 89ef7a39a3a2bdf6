/**
 * A cluster's load balancer, Envoy style: pick a priority from the priority load (health ×
 * overprovisioning, spill-over, panic), then a locality by effective weight when locality
 * weighted LB is on, then a host by the cluster's policy. Endpoint health from EDS is combined
 * with outlier ejections (an ejected host counts as unhealthy, as FAILED_OUTLIER_CHECK).
 */
import type { ClusterModel, EndpointModel, EndpointsModel, LbPolicy, LocalityModel } from '../model.js';
import { EdfScheduler } from './edf.js';
import { computePriorityLoad, type PriorityLoad } from './priority.js';
import type { Random } from './random.js';

export interface EjectionSource {
  isEjected(key: string): boolean;
  /** Changes whenever any ejection state changes, so the LB knows to recompute. */
  readonly generation: number;
}

export type LbSettings = Pick<ClusterModel, 'lbPolicy' | 'localityWeightedLb' | 'healthyPanicThreshold' | 'leastRequestChoiceCount'>;

export interface LbOptions {
  random?: Random;
  ejections?: EjectionSource;
  /** Active requests per host for LEAST_REQUEST; default: the LB's own requestStarted/Finished counts. */
  activeRequests?: (key: string) => number;
}

export type PickResult =
  | {
      readonly kind: 'endpoint';
      readonly endpoint: EndpointModel;
      readonly priority: number;
      readonly locality: LocalityModel;
      /** The priority was in panic: health was ignored. */
      readonly panic: boolean;
    }
  | { readonly kind: 'no-healthy-upstream' };

const NO_HEALTHY: PickResult = Object.freeze({ kind: 'no-healthy-upstream' });

export interface PickOptions {
  /** Hosts to avoid (retry previous_hosts); re-picked up to `maxAttempts` times. */
  avoid?: ReadonlySet<string>;
  maxAttempts?: number;
}

export type HostHealth = 'healthy' | 'degraded' | 'unhealthy';

interface Host {
  ep: EndpointModel;
  locality: LocalityModel;
  priority: number;
  health: HostHealth;
}

/** Hosts eligible in one pick, with the policy's per-source state. */
class Source {
  private rr = -1;
  private edf: EdfScheduler<Host> | undefined;
  readonly uniform: boolean;

  constructor(readonly hosts: Host[]) {
    this.uniform = hosts.every((h) => h.ep.weight === hosts[0]?.ep.weight);
  }

  pick(policy: LbPolicy, lb: ClusterLoadBalancer, random: Random): Host | undefined {
    const hs = this.hosts;
    if (hs.length === 0) return undefined;
    if (hs.length === 1) return hs[0];
    switch (policy) {
      case 'RANDOM':
        return hs[Math.floor(random() * hs.length)];
      case 'ROUND_ROBIN':
        if (this.uniform) {
          // Random start so that many proxies don't all hit the first host together.
          if (this.rr < 0) this.rr = Math.floor(random() * hs.length);
          return hs[this.rr++ % hs.length];
        }
        return this.scheduler((h) => h.ep.weight).pick();
      case 'LEAST_REQUEST': {
        if (this.uniform) {
          // Power of N choices (N = choice_count, default 2); ties keep the first candidate.
          let best: Host | undefined;
          for (let i = 0; i < lb.settings.leastRequestChoiceCount; i++) {
            const c = hs[Math.floor(random() * hs.length)]!;
            if (!best || lb.active(c.ep.key) < lb.active(best.ep.key)) best = c;
          }
          return best;
        }
        // Weighted: EDF with weight / (active + 1), re-evaluated as each host is rescheduled.
        const w = (h: Host): number => h.ep.weight / (lb.active(h.ep.key) + 1);
        return this.scheduler(w).pick(w);
      }
    }
  }

  private scheduler(w: (h: Host) => number): EdfScheduler<Host> {
    if (!this.edf) {
      this.edf = new EdfScheduler<Host>();
      for (const h of this.hosts) this.edf.add(h, w(h));
    }
    return this.edf;
  }
}

interface PriorityState {
  all: Source;
  healthy: Source;
  degraded: Source;
  /** Locality schedulers by effective weight (healthy / degraded hosts). */
  healthyLocalities: EdfScheduler<Source> | undefined;
  degradedLocalities: EdfScheduler<Source> | undefined;
}

interface State {
  load: PriorityLoad;
  priorities: PriorityState[];
  hosts: Host[];
}

export class ClusterLoadBalancer {
  private endpoints: EndpointsModel;
  private state: State | undefined;
  private seenGeneration = -1;
  private readonly random: Random;
  private readonly counts = new Map<string, number>();

  constructor(
    readonly settings: LbSettings,
    endpoints: EndpointsModel,
    private readonly opts: LbOptions = {},
  ) {
    this.endpoints = endpoints;
    this.random = opts.random ?? Math.random;
  }

  /** New EDS assignment (host counters for least request survive by key). */
  update(endpoints: EndpointsModel): void {
    this.endpoints = endpoints;
    this.state = undefined;
  }

  /** Forces recomputation (e.g. after an ejection change without a generation counter). */
  refresh(): void {
    this.state = undefined;
  }

  requestStarted(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  requestFinished(key: string): void {
    const n = (this.counts.get(key) ?? 0) - 1;
    if (n <= 0) this.counts.delete(key);
    else this.counts.set(key, n);
  }

  active(key: string): number {
    return this.opts.activeRequests ? this.opts.activeRequests(key) : (this.counts.get(key) ?? 0);
  }

  /** Priority load and panic flags (for admin pages and tests). */
  get priorityLoad(): PriorityLoad {
    return this.current().load;
  }

  /** Per endpoint: its effective health (EDS status combined with outlier ejection). */
  hostStates(): { key: string; priority: number; locality: LocalityModel; health: HostHealth }[] {
    return this.current().hosts.map((h) => ({ key: h.ep.key, priority: h.priority, locality: h.locality, health: h.health }));
  }

  pick(opts: PickOptions = {}): PickResult {
    const attempts = Math.max(1, opts.maxAttempts ?? 1);
    let last: PickResult = NO_HEALTHY;
    for (let i = 0; i < attempts; i++) {
      last = this.pickOnce();
      if (last.kind !== 'endpoint' || !opts.avoid?.has(last.endpoint.key)) return last;
    }
    return last;
  }

  private pickOnce(): PickResult {
    const st = this.current();
    const x = Math.floor(this.random() * 100);
    let acc = 0;
    // The priority level and whether it is its degraded share (-1: none), without an object per pick.
    let chosen = -1;
    let degraded = false;
    for (let p = 0; p < st.load.healthy.length && chosen < 0; p++) {
      acc += st.load.healthy[p]!;
      if (x < acc) chosen = p;
    }
    for (let p = 0; p < st.load.degraded.length && chosen < 0; p++) {
      acc += st.load.degraded[p]!;
      if (x < acc) {
        chosen = p;
        degraded = true;
      }
    }
    if (chosen < 0) return NO_HEALTHY;
    const ps = st.priorities[chosen]!;
    const panic = st.load.panic[chosen]!;
    let source: Source;
    if (panic) source = ps.all;
    else {
      const sched = degraded ? ps.degradedLocalities : ps.healthyLocalities;
      source = (sched && sched.size > 0 ? sched.pick() : undefined) ?? (degraded ? ps.degraded : ps.healthy);
    }
    const host = source.pick(this.settings.lbPolicy, this, this.random);
    if (!host) return NO_HEALTHY;
    return { kind: 'endpoint', endpoint: host.ep, priority: host.priority, locality: host.locality, panic };
  }

  private current(): State {
    const gen = this.opts.ejections?.generation ?? 0;
    if (!this.state || gen !== this.seenGeneration) {
      this.seenGeneration = gen;
      this.state = this.build();
    }
    return this.state;
  }

  private healthOf(ep: EndpointModel): HostHealth {
    if (this.opts.ejections?.isEjected(ep.key)) return 'unhealthy';
    if (ep.health === 'HEALTHY' || ep.health === 'UNKNOWN') return 'healthy';
    if (ep.health === 'DEGRADED') return 'degraded';
    return 'unhealthy';
  }

  private build(): State {
    const factor = this.endpoints.overprovisioningFactor;
    const hosts: Host[] = [];
    const priorities: PriorityState[] = [];
    const counts = [];
    for (const pr of this.endpoints.priorities) {
      const all: Host[] = [];
      const healthySched = new EdfScheduler<Source>();
      const degradedSched = new EdfScheduler<Source>();
      for (const loc of pr.localities) {
        const lh: Host[] = loc.endpoints.map((ep) => ({ ep, locality: loc, priority: pr.priority, health: this.healthOf(ep) }));
        all.push(...lh);
        if (!this.settings.localityWeightedLb || lh.length === 0) continue;
        // Envoy's effective locality weight: weight × min(1, overprovisioning × available/total).
        for (const kind of ['healthy', 'degraded'] as const) {
          const eligible = lh.filter((h) => h.health === kind);
          const eff = loc.weight * Math.min(1, (factor / 100) * (eligible.length / lh.length));
          if (eff > 0) (kind === 'healthy' ? healthySched : degradedSched).add(new Source(eligible), eff);
        }
      }
      hosts.push(...all);
      const healthy = all.filter((h) => h.health === 'healthy');
      const degraded = all.filter((h) => h.health === 'degraded');
      counts.push({ total: all.length, healthy: healthy.length, degraded: degraded.length });
      priorities.push({
        all: new Source(all),
        healthy: new Source(healthy),
        degraded: new Source(degraded),
        healthyLocalities: this.settings.localityWeightedLb ? healthySched : undefined,
        degradedLocalities: this.settings.localityWeightedLb ? degradedSched : undefined,
      });
    }
    return { load: computePriorityLoad(counts, factor, this.settings.healthyPanicThreshold), priorities, hosts };
  }
}
