// Pacing of a rebalance job's moves, so foreground latency stays bounded.
import { setTimeout as sleep } from 'node:timers/promises';

/** Shortest wait while the bucket refills. */
const MIN_WAIT_MS = 5;

/** Where the limiter reads the time and how it waits (tests pass a virtual clock). */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const SYSTEM_CLOCK: Clock = {
  now: () => Date.now(),
  sleep: async (ms) => {
    await sleep(ms);
  },
};

/**
 * Token bucket over every stream of a job. It starts empty, so a job ramps
 * up at its rate instead of opening with a burst while every process is
 * still busy switching topologies, and it holds at most a tenth of a second
 * of moves. A batch bigger than that may borrow; the debt delays the next.
 */
export class RateLimiter {
  #perSec = 0;
  #burst = 1;
  readonly #clock: Clock;
  #tokens: number;
  #last: number;
  constructor(perSec: number, clock: Clock = SYSTEM_CLOCK) {
    this.#clock = clock;
    this.#last = clock.now();
    this.#tokens = 0;
    this.setRate(perSec);
  }
  /** Keys per second; 0 or Infinity = no limit. */
  get perSec(): number {
    return this.#perSec;
  }
  /** Change the rate (adaptive pacing); a waiting take() follows the new rate from its next look. */
  setRate(perSec: number): void {
    this.#perSec = Number.isFinite(perSec) && perSec > 0 ? perSec : 0;
    this.#burst = Math.max(1, this.#perSec / 10);
    this.#tokens = Math.min(this.#tokens, this.#burst);
  }
  async take(n: number): Promise<void> {
    for (;;) {
      if (this.#perSec <= 0) return;
      const need = Math.min(n, this.#burst);
      const now = this.#clock.now();
      this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#perSec);
      this.#last = now;
      if (this.#tokens >= need) {
        this.#tokens -= n;
        return;
      }
      await this.#clock.sleep(Math.max(MIN_WAIT_MS, ((need - this.#tokens) / this.#perSec) * 1000));
    }
  }
}
