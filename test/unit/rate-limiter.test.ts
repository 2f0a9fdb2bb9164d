// The rebalance rate limiter on a virtual clock: time moves only when the
// limiter sleeps (or the test advances it), so every wait is exact.
import { describe, expect, it } from 'vitest';
import { RateLimiter, type Clock } from '../../src/rebalance/rate-limiter.js';

class VirtualClock implements Clock {
  t = 1_700_000_000_000;
  readonly waits: number[] = [];
  now(): number {
    return this.t;
  }
  async sleep(ms: number): Promise<void> {
    this.waits.push(ms);
    this.t += ms;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  /** Virtual time spent sleeping since the last call. */
  waited(): number {
    const sum = this.waits.reduce((a, b) => a + b, 0);
    this.waits.length = 0;
    return sum;
  }
}

describe('rebalance rate limiter', () => {
  it('starts empty and holds a job to its rate', async () => {
    const clock = new VirtualClock();
    const limiter = new RateLimiter(20_000, clock);
    for (let i = 0; i < 12; i++) await limiter.take(500);
    // 6000 keys at 20k/s: 300 ms, in waits of one batch (25 ms) each.
    expect(clock.waits).toEqual(Array(12).fill(25));
    expect(clock.waited()).toBe(300);
  });

  it('after an idle spell lets at most a tenth of a second through at once', async () => {
    const clock = new VirtualClock();
    const limiter = new RateLimiter(20_000, clock); // burst 2000
    clock.advance(300); // would be 6000 tokens without the cap
    for (let i = 0; i < 4; i++) await limiter.take(500); // the 2000 saved up
    expect(clock.waited()).toBe(0);
    for (let i = 0; i < 4; i++) await limiter.take(500); // 2000 more at 20k/s
    expect(clock.waited()).toBe(100);
  });

  it('lets a batch larger than the burst through and makes the next one wait for the debt', async () => {
    const clock = new VirtualClock();
    const limiter = new RateLimiter(10_000, clock); // burst 1000
    clock.advance(100); // a full bucket
    await limiter.take(3000); // borrows 2000
    expect(clock.waited()).toBe(0);
    await limiter.take(1000); // the 2000 owed plus its own 1000 at 10k/s
    expect(clock.waited()).toBe(300);
  });

  it('counts time that passed between batches', async () => {
    const clock = new VirtualClock();
    const limiter = new RateLimiter(10_000, clock);
    clock.advance(60); // 600 tokens
    await limiter.take(1000); // 400 more: 40 ms
    expect(clock.waited()).toBe(40);
  });

  it('never waits less than 5 ms at a time', async () => {
    const clock = new VirtualClock();
    const limiter = new RateLimiter(20_000, clock);
    await limiter.take(1); // one token takes 0.05 ms
    expect(clock.waits).toEqual([5]);
  });

  it('0 means no limit', async () => {
    const clock = new VirtualClock();
    const limiter = new RateLimiter(0, clock);
    for (let i = 0; i < 100; i++) await limiter.take(1_000_000);
    expect(clock.waits).toEqual([]);
  });
});

describe('rebalance rate limiter, adaptive', () => {
  it('follows a new rate from its next take, and lets everything through at 0 or Infinity', async () => {
    const clock = new VirtualClock();
    const limiter = new RateLimiter(20_000, clock);
    await limiter.take(500);
    expect(clock.waited()).toBe(25);
    limiter.setRate(5000);
    expect(limiter.perSec).toBe(5000);
    await limiter.take(500);
    // Burst 500 at 5000/s: 100 ms for one batch.
    expect(clock.waited()).toBe(100);
    limiter.setRate(Infinity);
    expect(limiter.perSec).toBe(0);
    for (let i = 0; i < 100; i++) await limiter.take(500);
    expect(clock.waited()).toBe(0);
  });
});
