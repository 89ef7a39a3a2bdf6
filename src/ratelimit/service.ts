/**
 * The rate limit service: Envoy's `RateLimitService/ShouldRateLimit` over gRPC, answered from the
 * config (config.ts) and fixed-window counters (store.ts), the way envoyproxy/ratelimit answers
 * it. Each request descriptor gets a status; the overall code is OVER_LIMIT when any enforced
 * descriptor is over its limit. The proxy turns the statuses into 429 and the DRAFT_VERSION_03
 * `x-ratelimit-*` headers.
 *
 * When the store fails (Redis down) the call fails with UNAVAILABLE: the proxy then applies its
 * `failure_mode_deny`. The failure is logged at most once per `logEveryMs`, with a count.
 */
import * as grpc from '@grpc/grpc-js';
import { matchDescriptor, UNIT_SECONDS, type RateLimitConfig } from './config.js';
import { rlsServiceDefinition, type RlsDescriptorStatus, type RlsRequest, type RlsResponse } from '../xds/rls.js';
import type { CounterStore } from './store.js';

export interface RateLimitServiceOptions {
  config: () => RateLimitConfig;
  store: CounterStore;
  /** Wall clock in ms (windows are aligned to unix time, as in envoyproxy/ratelimit). */
  now?: () => number;
  log?: (msg: string) => void;
  logEveryMs?: number;
}

export interface ServiceCounters {
  ok: number;
  overLimit: number;
  errors: number;
}

/** A log line at most every `everyMs`; what was held back is counted in the next one. */
export class ThrottledLog {
  private last = -Infinity;
  private held = 0;
  constructor(
    private readonly log: (msg: string) => void,
    private readonly everyMs: number,
    private readonly now: () => number,
  ) {}
  write(msg: string): void {
    const t = this.now();
    if (t - this.last < this.everyMs) {
      this.held++;
      return;
    }
    this.log(this.held > 0 ? `${msg} (and ${this.held} more since the last report)` : msg);
    this.last = t;
    this.held = 0;
  }
}

export class RateLimitService {
  readonly counters: ServiceCounters = { ok: 0, overLimit: 0, errors: 0 };
  private readonly now: () => number;
  private readonly errorLog: ThrottledLog;
  private readonly unknownDomains = new Set<string>();

  constructor(private readonly o: RateLimitServiceOptions) {
    this.now = o.now ?? Date.now;
    this.errorLog = new ThrottledLog(o.log ?? (() => {}), o.logEveryMs ?? 10_000, this.now);
  }

  async shouldRateLimit(req: RlsRequest): Promise<RlsResponse> {
    const cfg = this.o.config().get(req.domain);
    const descriptors = req.descriptors ?? [];
    if (!cfg) {
      if (!this.unknownDomains.has(req.domain)) {
        this.unknownDomains.add(req.domain);
        this.o.log?.(`isle ratelimit: unknown domain ${JSON.stringify(req.domain)}: not limited`);
      }
      this.counters.ok++;
      return { overall_code: 'OK', statuses: descriptors.map(() => ({ code: 'OK' })) };
    }
    const hits = req.hits_addend && req.hits_addend > 0 ? req.hits_addend : 1;
    const nowMs = this.now();
    const nowS = Math.floor(nowMs / 1000);
    const matched = descriptors.map((d) => matchDescriptor(cfg, d.entries ?? []));
    const keys: { key: string; ttlSeconds: number; index: number; windowEndMs: number }[] = [];
    matched.forEach((m, index) => {
      if (!m || m.limit.unlimited) return;
      const unit = UNIT_SECONDS[m.limit.unit];
      const start = nowS - (nowS % unit);
      keys.push({ key: `${m.key}_${start}`, ttlSeconds: unit, index, windowEndMs: (start + unit) * 1000 });
    });
    const counts = await this.o.store.increment(keys, hits);
    const statuses: RlsDescriptorStatus[] = matched.map(() => ({ code: 'OK' }));
    let over = false;
    keys.forEach((k, i) => {
      const m = matched[k.index]!;
      const count = counts[i]!;
      const limit = m.limit.requestsPerUnit;
      const isOver = count > limit;
      const untilReset = Math.max(0, k.windowEndMs - nowMs);
      statuses[k.index] = {
        code: isOver && !m.shadowMode ? 'OVER_LIMIT' : 'OK',
        current_limit: { requests_per_unit: limit, unit: m.limit.unit, ...(m.limit.name ? { name: m.limit.name } : {}) },
        limit_remaining: Math.max(0, limit - count),
        duration_until_reset: { seconds: Math.floor(untilReset / 1000), nanos: (untilReset % 1000) * 1_000_000 },
      };
      if (isOver && !m.shadowMode) over = true;
    });
    if (over) this.counters.overLimit++;
    else this.counters.ok++;
    return { overall_code: over ? 'OVER_LIMIT' : 'OK', statuses };
  }

  /** Registers ShouldRateLimit on a grpc-js server. */
  addToServer(server: grpc.Server): void {
    server.addService(rlsServiceDefinition(), {
      ShouldRateLimit: (call: grpc.ServerUnaryCall<RlsRequest, RlsResponse>, cb: grpc.sendUnaryData<RlsResponse>) => {
        this.shouldRateLimit(call.request).then(
          (r) => cb(null, r),
          (e: Error) => {
            this.counters.errors++;
            this.errorLog.write(`isle ratelimit: counter store failed: ${e.message}; answering UNAVAILABLE (the proxy applies failure_mode_deny)`);
            cb({ code: grpc.status.UNAVAILABLE, details: `rate limit store unavailable: ${e.message}` });
          },
        );
      },
    });
  }
}
