import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../router/coordinator.js';

describe('rebalance rate limiter', () => {
  it('holds a job to its rate after a burst of a tenth of a second', async () => {
    const limiter = new RateLimiter(20_000);
    const t0 = Date.now();
    for (let i = 0; i < 4; i++) await limiter.take(500); // the 2000-key burst
    expect(Date.now() - t0).toBeLessThan(100);
    for (let i = 0; i < 8; i++) await limiter.take(500); // 4000 more at 20k/s: at least 200 ms
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(5000);
  });

  it('lets a batch larger than the burst through and makes the next one wait for the debt', async () => {
    const limiter = new RateLimiter(10_000); // burst 1000
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
