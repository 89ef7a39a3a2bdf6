/**
 * Envoy outlier detection for one cluster: consecutive 5xx, consecutive gateway failure and
 * (with split_external_local_origin_errors) consecutive local-origin failure. Ejection lasts
 * base_ejection_time × multiplier (capped at max_ejection_time); the multiplier grows with each
 * ejection and decays by one per interval sweep in which the host is not ejected. Un-ejection
 * happens at interval sweeps, as in Envoy, so an ejection lasts until the first sweep after it
 * expires. Time comes from an injected clock; the owner calls `advance()` (e.g. on a timer of
 * `intervalMs`, or lazily before each pick).
 *
 * Not implemented: success-rate and failure-percentage ejection (documented in ADR 0009).
 */
import type { OutlierDetectionModel } from '../model.js';
import type { Random } from '../lb/random.js';

export type OutlierResult =
  /** An upstream HTTP response (gRPC: its HTTP status). */
  | { readonly kind: 'http'; readonly status: number }
  /** TCP connect failed (refused / connect timeout / TLS handshake). */
  | { readonly kind: 'connect-failure' }
  /** Connected; for split mode it resets the local-origin counter. */
  | { readonly kind: 'connect-success' }
  /** Request timed out waiting for the upstream. */
  | { readonly kind: 'timeout' }
  /** Upstream reset / closed before a complete response. */
  | { readonly kind: 'reset' };

export type EjectionReason = 'consecutive_5xx' | 'consecutive_gateway_failure' | 'consecutive_local_origin_failure';

export interface HostOutlierState {
  readonly key: string;
  readonly ejected: boolean;
  /** When the current ejection started (clock ms). */
  readonly ejectedAt: number | undefined;
  /** When the current ejection may end (it ends at the first sweep at or after this). */
  readonly ejectedUntil: number | undefined;
  readonly lastEjectionReason: EjectionReason | undefined;
  /** The ejection-time multiplier. */
  readonly ejectionMultiplier: number;
  /** Ejections over the host's lifetime. */
  readonly totalEjections: number;
  readonly consecutive5xx: number;
  readonly consecutiveGatewayFailure: number;
  readonly consecutiveLocalOriginFailure: number;
}

interface Monitor {
  ejected: boolean;
  ejectedAt: number | undefined;
  reason: EjectionReason | undefined;
  multiplier: number;
  total: number;
  c5xx: number;
  cgw: number;
  clocal: number;
}

export interface OutlierOptions {
  now?: () => number;
  random?: Random;
  onEject?: (key: string, reason: EjectionReason) => void;
  onUneject?: (key: string) => void;
}

export class OutlierDetector {
  private readonly hosts = new Map<string, Monitor>();
  private readonly now: () => number;
  private readonly random: Random;
  private nextSweep: number;
  private gen = 0;
  private ejectedCount = 0;

  constructor(
    readonly config: OutlierDetectionModel,
    private readonly opts: OutlierOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.nextSweep = this.now() + config.intervalMs;
  }

  /** Bumped on every ejection / un-ejection / host-set change (ClusterLoadBalancer watches it). */
  get generation(): number {
    return this.gen;
  }

  get ejected(): number {
    return this.ejectedCount;
  }

  /** The cluster's current hosts (all priorities); state of hosts that stay is kept. */
  setHosts(keys: Iterable<string>): void {
    const next = new Set(keys);
    for (const k of [...this.hosts.keys()]) {
      if (!next.has(k)) {
        if (this.hosts.get(k)!.ejected) this.ejectedCount--;
        this.hosts.delete(k);
      }
    }
    for (const k of next) if (!this.hosts.has(k)) this.hosts.set(k, newMonitor());
    this.gen++;
  }

  isEjected(key: string): boolean {
    return this.hosts.get(key)?.ejected ?? false;
  }

  report(key: string, result: OutlierResult): void {
    this.advance();
    const m = this.hosts.get(key);
    if (!m) return;
    const c = this.config;
    if (result.kind === 'http') return this.httpCode(key, m, result.status);
    if (c.splitExternalLocalOriginErrors) {
      if (result.kind === 'connect-success') m.clocal = 0;
      else if (++m.clocal === c.consecutiveLocalOriginFailure) {
        this.consecutiveError(key, m, 'consecutive_local_origin_failure');
      }
      return;
    }
    // Unsplit: local-origin results count as the HTTP code Envoy maps them to.
    if (result.kind === 'connect-failure' || result.kind === 'reset') this.httpCode(key, m, 503);
    else if (result.kind === 'timeout') this.httpCode(key, m, 504);
  }

  private httpCode(key: string, m: Monitor, status: number): void {
    const c = this.config;
    if (status >= 500 && status <= 599) {
      if (status === 502 || status === 503 || status === 504) {
        if (++m.cgw === c.consecutiveGatewayFailure) this.consecutiveError(key, m, 'consecutive_gateway_failure');
      } else m.cgw = 0;
      if (++m.c5xx === c.consecutive5xx) this.consecutiveError(key, m, 'consecutive_5xx');
    } else {
      m.c5xx = 0;
      m.cgw = 0;
    }
  }

  private enforcing(reason: EjectionReason): number {
    const c = this.config;
    if (reason === 'consecutive_5xx') return c.enforcingConsecutive5xx;
    if (reason === 'consecutive_gateway_failure') return c.enforcingConsecutiveGatewayFailure;
    return c.enforcingConsecutiveLocalOriginFailure;
  }

  private consecutiveError(key: string, m: Monitor, reason: EjectionReason): void {
    if (m.ejected) return;
    this.tryEject(key, m, reason);
    // Reset so a further bout is detected even without an interleaved success (as Envoy).
    if (reason === 'consecutive_5xx') m.c5xx = 0;
    else if (reason === 'consecutive_gateway_failure') m.cgw = 0;
    else m.clocal = 0;
  }

  private tryEject(key: string, m: Monitor, reason: EjectionReason): void {
    const c = this.config;
    const pct = (100 * (this.ejectedCount + 1)) / this.hosts.size;
    const allowed = pct <= c.maxEjectionPercent || (c.alwaysEjectOneHost && this.ejectedCount === 0);
    if (!allowed) return;
    if (Math.floor(this.random() * 100) >= this.enforcing(reason)) return;
    // The multiplier stops growing once base × multiplier passes max_ejection_time.
    if (m.multiplier * c.baseEjectionTimeMs < c.maxEjectionTimeMs + c.baseEjectionTimeMs) m.multiplier++;
    m.ejected = true;
    m.ejectedAt = this.now();
    m.reason = reason;
    m.total++;
    this.ejectedCount++;
    this.gen++;
    this.opts.onEject?.(key, reason);
  }

  private ejectionTime(m: Monitor): number {
    const c = this.config;
    return Math.min(c.baseEjectionTimeMs * m.multiplier, Math.max(c.baseEjectionTimeMs, c.maxEjectionTimeMs));
  }

  /** One interval sweep: un-eject expired hosts, decay multipliers of hosts that stay healthy. */
  sweep(now: number = this.now()): void {
    for (const [key, m] of this.hosts) {
      if (!m.ejected) {
        if (m.multiplier > 0) m.multiplier--;
        continue;
      }
      if (now - m.ejectedAt! >= this.ejectionTime(m)) {
        m.ejected = false;
        m.ejectedAt = undefined;
        this.ejectedCount--;
        this.gen++;
        this.opts.onUneject?.(key);
      }
    }
  }

  /** Runs the sweeps due by the clock (interval boundaries since construction). */
  advance(): void {
    const now = this.now();
    // Each overdue sweep runs at its own time, so a late caller sees what timers would have done.
    while (now >= this.nextSweep) {
      this.sweep(this.nextSweep);
      this.nextSweep += this.config.intervalMs;
    }
  }

  /** Per-host state for the admin /clusters page. */
  snapshot(): HostOutlierState[] {
    return [...this.hosts].map(([key, m]) => ({
      key,
      ejected: m.ejected,
      ejectedAt: m.ejectedAt,
      ejectedUntil: m.ejected ? m.ejectedAt! + this.ejectionTime(m) : undefined,
      lastEjectionReason: m.reason,
      ejectionMultiplier: m.multiplier,
      totalEjections: m.total,
      consecutive5xx: m.c5xx,
      consecutiveGatewayFailure: m.cgw,
      consecutiveLocalOriginFailure: m.clocal,
    }));
  }
}

function newMonitor(): Monitor {
  return { ejected: false, ejectedAt: undefined, reason: undefined, multiplier: 0, total: 0, c5xx: 0, cgw: 0, clocal: 0 };
}
