// The foreground-latency signal that paces a rebalance. Each router worker
// counts its data requests' latencies in a fixed-bucket histogram (one array
// increment per request: no allocation, no metrics library on the request
// path) and publishes the last second of it every PUBLISH_MS to one Redis
// hash, a field per worker. The coordinator merges the fresh fields (rebalance/fg-signal.ts).
import os from 'node:os';
import type { Redis } from 'ioredis';
import { BUCKETS, bucketOf, quantileMs, type FgWindow } from '../core/latency-histogram.js';
import { fgLatencyKey } from '../rebalance/fg-signal.js';

/** How often a worker publishes (and restarts) its window. */
const PUBLISH_MS = 250;
/** A worker's field outlives its last publish by this long (the hash key's TTL). */
const FIELD_TTL_MS = 5000;

const counts = new Uint32Array(BUCKETS);
let windowCount = 0;

/** Count one data request that took `ms` (the request path's single call). */
export function recordFgLatency(ms: number): void {
  counts[bucketOf(ms)]!++;
  windowCount++;
}

/** Take the current window and start a new one. */
export function takeWindow(now = Date.now(), sinceMs = PUBLISH_MS): FgWindow {
  const b: Array<[number, number]> = [];
  for (let i = 0; i < BUCKETS; i++) if (counts[i]! > 0) b.push([i, counts[i]!]);
  const out = { at: now, ms: sinceMs, n: windowCount, p99Ms: quantileMs(counts, windowCount, 0.99), b };
  counts.fill(0);
  windowCount = 0;
  return out;
}

/** A published window spans this many publish intervals (1 s): a bursty foreground then still counts as busy. */
const SPAN = 4;

/** The last SPAN windows merged, oldest dropped as a new one comes in. */
export class RollingWindow {
  readonly #ring: FgWindow[] = [];
  push(w: FgWindow): FgWindow {
    this.#ring.push(w);
    if (this.#ring.length > SPAN) this.#ring.shift();
    const merged = new Float64Array(BUCKETS);
    let n = 0,
      ms = 0;
    for (const x of this.#ring) {
      n += x.n;
      ms += x.ms;
      for (const [i, c] of x.b) merged[i]! += c;
    }
    const b: Array<[number, number]> = [];
    for (let i = 0; i < BUCKETS; i++) if (merged[i]! > 0) b.push([i, merged[i]!]);
    return { at: w.at, ms, n, p99Ms: quantileMs(merged, n, 0.99), b };
  }
}

/**
 * Publish this worker's latency over the last second every PUBLISH_MS (one
 * HSET and one PEXPIRE in a pipeline). Always on, so the coordinator has a
 * baseline from before a move starts; returns the stop function.
 */
export function startFgPublisher(redis: Redis, prefix: string, field = `${os.hostname()}:${process.pid}`): () => void {
  const key = fgLatencyKey(prefix);
  const rolling = new RollingWindow();
  let last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    const w = rolling.push(takeWindow(now, now - last));
    last = now;
    redis
      .pipeline()
      .hset(key, field, JSON.stringify(w))
      .pexpire(key, FIELD_TTL_MS)
      .exec()
      .catch(() => undefined);
  }, PUBLISH_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    redis.hdel(key, field).catch(() => undefined);
  };
}
