/**
 * Envoy's priority load (LoadBalancerBase::recalculatePerPriorityState), in integer percent:
 * - health[p]   = min(100, overprovisioning × healthy / total)   (integer division, Envoy units)
 * - degraded[p] = min(100, overprovisioning × degraded / total)
 * - normalized total availability = min(100, Σ health + Σ degraded)
 * - healthy load is handed out from P0 down, each level min(remaining, health·100/total_avail),
 *   then the rest as degraded load the same way; rounding leftovers go to the first level with
 *   availability. So when the total is below 100, loads are scaled up to sum to 100.
 * - panic[p] (only when total availability < 100): (healthy+degraded)/total < panic threshold
 *   (an empty level counts as in panic).
 * - every level in panic: "total panic", load follows host counts and health is ignored.
 * - panic threshold 0 and nothing available: load on P0, which has nothing to pick.
 */
export interface LevelCounts {
  readonly total: number;
  readonly healthy: number;
  readonly degraded: number;
}

export interface PriorityLoad {
  readonly healthy: readonly number[];
  readonly degraded: readonly number[];
  readonly panic: readonly boolean[];
  readonly totalAvailability: number;
}

function distribute(avail: readonly number[], total: number, normalized: number, out: number[]): { first: number; remaining: number } {
  let first = -1;
  for (let i = 0; i < avail.length; i++) {
    if (first < 0 && avail[i]! > 0) first = i;
    out[i] = Math.min(total, Math.floor((avail[i]! * 100) / normalized));
    total -= out[i]!;
  }
  return { first, remaining: total };
}

export function computePriorityLoad(levels: readonly LevelCounts[], overprovisioningFactor: number, panicThresholdPercent: number): PriorityLoad {
  const n = levels.length;
  const health = levels.map((l) => (l.total ? Math.min(100, Math.floor((overprovisioningFactor * l.healthy) / l.total)) : 0));
  const degr = levels.map((l) => (l.total ? Math.min(100, Math.floor((overprovisioningFactor * l.degraded) / l.total)) : 0));
  const totalAvailability = Math.min(100, health.reduce((a, b) => a + b, 0) + degr.reduce((a, b) => a + b, 0));
  const healthy = new Array<number>(n).fill(0);
  const degraded = new Array<number>(n).fill(0);

  if (totalAvailability > 0) {
    const h = distribute(health, 100, totalAvailability, healthy);
    const d = distribute(degr, h.remaining, totalAvailability, degraded);
    if (d.remaining !== 0) {
      if (h.first >= 0) healthy[h.first]! += d.remaining;
      else degraded[d.first]! += d.remaining;
    }
  } else if (panicThresholdPercent === 0) {
    // Panic disabled and nothing available: Envoy points the load at P0, whose healthy set is
    // empty, so every pick fails with "no healthy upstream".
    if (n > 0) healthy[0] = 100;
    return { healthy, degraded, panic: levels.map(() => false), totalAvailability };
  }

  const panic = levels.map((l) => {
    if (totalAvailability === 100) return false;
    const pct = l.total === 0 ? 0 : (100 * (l.healthy + l.degraded)) / l.total;
    return pct < panicThresholdPercent;
  });
  if (n > 0 && panic.every(Boolean)) {
    // Total panic: every level ignores health, and load follows host counts.
    const hosts = levels.reduce((a, l) => a + l.total, 0);
    healthy.fill(0);
    degraded.fill(0);
    if (hosts > 0) {
      let left = 100;
      let first = -1;
      levels.forEach((l, i) => {
        if (first < 0 && l.total > 0) first = i;
        healthy[i] = Math.floor((100 * l.total) / hosts);
        left -= healthy[i]!;
      });
      healthy[first]! += left;
    }
  }
  return { healthy, degraded, panic, totalAvailability };
}
