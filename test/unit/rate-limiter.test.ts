import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/rebalance/rate-limiter.js';

describe('rebalance rate limiter', () => {
  it('starts empty and holds a job to its rate', async () => {
    const limiter = new RateLimiter(20_000);
    const t0 = Date.now();
    for (let i = 0; i < 12; i++) await limiter.take(500); // 6000 keys at 20k/s: at least 275 ms (the last batch may borrow)
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(270);
    expect(elapsed).toBeLessThan(5000);
  });

  it('after an idle spell lets at most a tenth of a second through at once', async () => {
    const limiter = new RateLimiter(20_000); // burst 2000
    await new Promise((r) => setTimeout(r, 300)); // would be 6000 tokens without the cap
    const t0 = Date.now();
    for (let i = 0; i < 4; i++) await limiter.take(500); // the 2000 saved up
    expect(Date.now() - t0).toBeLessThan(100);
    for (let i = 0; i < 4; i++) await limiter.take(500); // 2000 more at 20k/s
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
  });

  it('lets a batch larger than the burst through and makes the next one wait for the debt', async () => {
    const limiter = new RateLimiter(10_000); // burst 1000
    await new Promise((r) => setTimeout(r, 120)); // fill the bucket
    const t0 = Date.now();
    await limiter.take(3000); // borrows 2000
    expect(Date.now() - t0).toBeLessThan(100);
    await limiter.take(1); // waits for the debt: about 200 ms
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
  });

  it('0 means no limit', async () => {
    const limiter = new RateLimiter(0);
    const t0 = Date.now();
    for (let i = 0; i < 100; i++) await limiter.take(1_000_000);
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});
