// The foreground-latency signal that paces a rebalance. Each router worker
// counts its data requests' latencies in a fixed-bucket histogram (one array
// increment per request: no allocation, no metrics library on the request
// path) and publishes the window every PUBLISH_MS to one Redis hash, a field
// per worker. The coordinator merges the fresh fields (fg-latency-store.ts).
import os from 'node:os';
import type { Redis } from 'ioredis';

/**
 * Quarter-octave buckets from 50 µs up: bucket i holds latencies up to
 * FIRST_MS * 2^(i/4), so a p99 read from the histogram is at most 19% high.
 * The last bucket (about 50 s) takes everything slower.
 */
const FIRST_MS = 0.05;
const PER_OCTAVE = 4;
export const BUCKETS = 81;
/** How often a worker publishes (and restarts) its window. */
export const PUBLISH_MS = 250;
/** A worker's field outlives its last publish by this long (the hash key's TTL). */
const FIELD_TTL_MS = 5000;

/** Upper bound of bucket i, in ms. */
export const bucketUpperMs = (i: number): number => FIRST_MS * 2 ** (i / PER_OCTAVE);

const window = new Uint32Array(BUCKETS);
let windowCount = 0;

/** Count one data request that took `ms` (the request path's single call). */
export function recordFgLatency(ms: number): void {
  const i = ms <= FIRST_MS ? 0 : Math.ceil(Math.log2(ms / FIRST_MS) * PER_OCTAVE);
  window[i < BUCKETS ? i : BUCKETS - 1]!++;
  windowCount++;
}

/** One worker's published window: when, how many requests, their p99 and the sparse buckets [index, count]. */
export interface FgWindow {
  readonly at: number;
  readonly ms: number;
  readonly n: number;
  readonly p99Ms: number;
  readonly b: ReadonlyArray<readonly [number, number]>;
}

/** The p-quantile's bucket bound from bucket counts (0 with no samples). */
export function quantileMs(counts: ArrayLike<number>, total: number, p: number): number {
  if (total <= 0) return 0;
  const rank = Math.ceil(total * p);
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!;
    if (seen >= rank) return bucketUpperMs(i);
  }
  return bucketUpperMs(counts.length - 1);
}

/** Take the current window and start a new one. */
export function takeWindow(now = Date.now(), sinceMs = PUBLISH_MS): FgWindow {
  const b: Array<[number, number]> = [];
  for (let i = 0; i < BUCKETS; i++) if (window[i]! > 0) b.push([i, window[i]!]);
  const out = { at: now, ms: sinceMs, n: windowCount, p99Ms: quantileMs(window, windowCount, 0.99), b };
  window.fill(0);
  windowCount = 0;
  return out;
}

/** The Redis hash that holds every worker's latest window. */
export const fgLatencyKey = (prefix: string): string => `${prefix}rebalance:fg-latency`;

/**
 * Publish this worker's window every PUBLISH_MS (one HSET and one PEXPIRE in
 * a pipeline). Always on, so the coordinator has a baseline from before a
 * move starts; returns the stop function.
 */
export function startFgPublisher(redis: Redis, prefix: string, field = `${os.hostname()}:${process.pid}`): () => void {
  const key = fgLatencyKey(prefix);
  let last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    const w = takeWindow(now, now - last);
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
