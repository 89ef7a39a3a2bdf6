/**
 * Envoy's local rate limit token bucket: it starts full (`max_tokens`); every `fill_interval`
 * adds `tokens_per_fill`, capped at `max_tokens`; a request takes one token or is limited. Refills
 * are computed lazily from the injectable clock, so no timer runs and tests need no sleeping.
 */
import type { TokenBucketModel } from '../model.js';

export class TokenBucket {
  private tokens: number;
  private lastFill: number;

  constructor(
    readonly model: TokenBucketModel,
    private readonly now: () => number,
  ) {
    this.tokens = model.maxTokens;
    this.lastFill = now();
  }

  private refill(): void {
    const t = this.now();
    const fills = Math.floor((t - this.lastFill) / this.model.fillIntervalMs);
    if (fills <= 0) return;
    this.tokens = Math.min(this.model.maxTokens, this.tokens + fills * this.model.tokensPerFill);
    this.lastFill += fills * this.model.fillIntervalMs;
  }

  /** Takes a token; false when none is left (the request is over the limit). */
  consume(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Tokens left now (x-ratelimit-remaining). */
  remaining(): number {
    this.refill();
    return this.tokens;
  }

  /** Milliseconds until the next fill (x-ratelimit-reset). */
  msUntilFill(): number {
    return Math.max(0, this.lastFill + this.model.fillIntervalMs - this.now());
  }
}
