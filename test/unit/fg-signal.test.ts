// The foreground-latency signal: router workers' windows published to a real
// private Redis and merged by the coordinator's reader; stale and broken
// fields are left out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type LocalRedis } from '../../src/local/redis-server.js';
import { waitUntil } from '../../src/local/wait.js';
import { bucketUpperMs, quantileMs } from '../../src/core/latency-histogram.js';
import { RollingWindow, recordFgLatency, startFgPublisher, takeWindow } from '../../src/router/fg-latency.js';
import { FgSignal, fgLatencyKey } from '../../src/rebalance/fg-signal.js';

let redis: LocalRedis;
let admin: Redis;
beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
});
afterAll(async () => {
  admin?.disconnect();
  await redis?.stop();
});

describe('foreground latency window', () => {
  it('counts latencies in quarter-octave buckets and reads the p99 as a bucket bound at most 19% high', () => {
    takeWindow();
    for (let i = 0; i < 995; i++) recordFgLatency(1);
    for (let i = 0; i < 5; i++) recordFgLatency(40);
    recordFgLatency(0);
    recordFgLatency(1e9);
    const w = takeWindow(1000, 250);
    expect(w.n).toBe(1002);
    expect(w.p99Ms).toBeGreaterThanOrEqual(1);
    expect(w.p99Ms).toBeLessThan(1.19);
    expect(w.b.reduce((n, [, c]) => n + c, 0)).toBe(1002);
    // The window restarts.
    expect(takeWindow().n).toBe(0);
    expect(quantileMs([0, 0, 5], 5, 0.99)).toBe(bucketUpperMs(2));
    expect(quantileMs([0, 0, 0], 0, 0.99)).toBe(0);
  });

  it('publishes the last four windows merged, so a foreground that comes in bursts stays visible', () => {
    const r = new RollingWindow();
    const w = (at: number, n: number, bucket: number) => ({ at, ms: 250, n, p99Ms: bucketUpperMs(bucket), b: n ? ([[bucket, n]] as const) : [] });
    expect(r.push(w(1, 100, 10))).toMatchObject({ at: 1, ms: 250, n: 100 });
    r.push(w(2, 0, 0));
    r.push(w(3, 0, 0));
    const m = r.push(w(4, 10, 30));
    expect(m).toMatchObject({ at: 4, ms: 1000, n: 110, p99Ms: bucketUpperMs(30) });
    // The first window drops out with the fifth.
    expect(r.push(w(5, 0, 0))).toMatchObject({ ms: 1000, n: 10 });
  });
});

describe('foreground signal in Redis', () => {
  it('merges the fresh windows of every worker and ignores stale and broken ones', async () => {
    const prefix = 'fg1:';
    const key = fgLatencyKey(prefix);
    const now = Date.now();
    const win = (at: number, n: number, bucket: number) => JSON.stringify({ at, ms: 250, n, p99Ms: bucketUpperMs(bucket), b: [[bucket, n]] });
    await admin.hset(
      key,
      'w1',
      win(now - 100, 300, 20),
      'w2',
      win(now - 200, 100, 40),
      'old',
      win(now - 5000, 5000, 60),
      'gone',
      win(now - 60_000, 1, 1),
      'bad',
      '{',
    );
    const s = (await new FgSignal(admin, prefix).read(now))!;
    expect(s).toMatchObject({ at: now - 100, workers: 2, count: 400, perSec: 1600 });
    // 100 of 400 requests are in the slow bucket: the p99 is that bucket's bound.
    expect(s.p99Ms).toBe(bucketUpperMs(40));
    // Long-dead and unreadable fields are cleaned up; a merely stale one stays.
    expect((await admin.hkeys(key)).sort()).toEqual(['old', 'w1', 'w2']);
    expect(await new FgSignal(admin, 'none:').read(now)).toBeUndefined();
  });

  it('a worker publishes its window every 250 ms, and removes its field when it stops', async () => {
    const prefix = 'fg2:';
    const pub = new Redis(redis.url);
    const stop = startFgPublisher(pub, prefix, 'worker-a');
    const signal = new FgSignal(admin, prefix);
    try {
      // Requests keep coming (as a worker's would) until a window with them has been published.
      await waitUntil(
        async () => {
          for (let i = 0; i < 50; i++) recordFgLatency(2);
          const s = await signal.read();
          return s !== undefined && s.count >= 50;
        },
        { timeoutMs: 5000, what: 'a published window with requests' },
      );
      const s = (await signal.read())!;
      expect(s.workers).toBe(1);
      expect(s.p99Ms).toBeGreaterThanOrEqual(2);
      expect(s.p99Ms).toBeLessThan(2.4);
      expect(await admin.pttl(fgLatencyKey(prefix))).toBeGreaterThan(0);
    } finally {
      stop();
    }
    await waitUntil(async () => (await admin.hexists(fgLatencyKey(prefix), 'worker-a')) === 0, { timeoutMs: 5000, what: 'the field removed' });
    pub.disconnect();
  });
});
