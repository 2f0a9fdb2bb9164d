// A per-tenant request rate shared by every router worker on every host,
// counted in Redis, without a Redis round trip per request: each worker takes
// the tenant's budget of the current second in small chunks (INCRBY on one
// counter per tenant and second) and spends them locally. A tenant over its
// rate gets 429 KV_ERR_RATE_LIMITED with Retry-After until the second ends.
//
// The shared counter can overshoot by at most one chunk per worker, and a
// chunk a worker took but did not spend is lost for that second: the chunk is
// limit/CHUNK_DIVISOR, so both errors stay within a few percent.
import type { Redis } from 'ioredis';
import { kvErrorRetry } from '../core/errors.js';

const CHUNK_DIVISOR = 50;
const MAX_CHUNK = 500;

interface Budget {
  second: number;
  /** Requests this worker may still let through in `second`. */
  left: number;
  /** The shared counter said no for this second. */
  exhausted: boolean;
  /** A chunk being taken from Redis. */
  taking: Promise<void> | undefined;
}

export class TenantRateLimiter {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #perSec: number;
  readonly #chunk: number;
  readonly #budgets = new Map<string, Budget>();

  /** `perSec` 0 = no limit. */
  constructor(redis: Redis, prefix: string, perSec: number) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#perSec = perSec;
    this.#chunk = Math.max(1, Math.min(MAX_CHUNK, Math.floor(perSec / CHUNK_DIVISOR)));
  }

  /**
   * Count one request of `tenant`: undefined when it may go on at once, a
   * promise when a chunk must be taken from Redis first (it rejects with the
   * 429 when the tenant is over its rate), or it throws the 429 at once.
   */
  take(tenant: string): Promise<void> | undefined {
    if (this.#perSec <= 0) return undefined;
    const second = Math.floor(Date.now() / 1000);
    let b = this.#budgets.get(tenant);
    if (!b || b.second !== second) {
      b = { second, left: 0, exhausted: false, taking: undefined };
      this.#budgets.set(tenant, b);
      if (this.#budgets.size > 10_000) this.#forgetOld(second);
    }
    if (b.left > 0) {
      b.left--;
      return undefined;
    }
    if (b.exhausted) throw this.#refusal(tenant);
    const budget = b;
    budget.taking ??= this.#takeChunk(tenant, budget).finally(() => {
      budget.taking = undefined;
    });
    return budget.taking.then(() => {
      if (budget.left > 0) budget.left--;
      else throw this.#refusal(tenant);
    });
  }

  async #takeChunk(tenant: string, b: Budget): Promise<void> {
    const key = `${this.#prefix}rate:${tenant}:${b.second}`;
    const [[, used]] = (await this.#redis.multi().incrby(key, this.#chunk).pexpire(key, 2000).exec()) as [[unknown, number], unknown];
    // What this chunk may still use of the second's budget.
    const granted = Math.max(0, Math.min(this.#chunk, this.#perSec - (used - this.#chunk)));
    b.left += granted;
    if (granted < this.#chunk) b.exhausted = true;
  }

  #refusal(tenant: string) {
    return kvErrorRetry('KV_ERR_RATE_LIMITED', 1, tenant, this.#perSec, 1);
  }

  #forgetOld(second: number): void {
    for (const [t, b] of this.#budgets) if (b.second !== second) this.#budgets.delete(t);
  }
}
