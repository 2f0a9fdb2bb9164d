// What the coordinator reads of the foreground: every live router worker's
// latest latency window (router/fg-latency.ts), merged into one histogram.
import type { Redis } from 'ioredis';
import { BUCKETS, quantileMs, type FgWindow } from '../core/latency-histogram.js';

/** The Redis hash that holds every router worker's latest window. */
export const fgLatencyKey = (prefix: string): string => `${prefix}rebalance:fg-latency`;

/** A window older than this is from a worker that stopped publishing: ignored. */
const STALE_MS = 1500;
/** Fields this old are deleted (a worker that died without saying goodbye). */
const GONE_MS = 10_000;

export interface FgSample {
  /** Newest window's time; the same value twice means nothing new was published. */
  readonly at: number;
  readonly workers: number;
  /** Data requests in the merged windows, and per second. */
  readonly count: number;
  readonly perSec: number;
  /** p99 of the merged windows, ms (a bucket bound, at most 19% high). */
  readonly p99Ms: number;
}

export class FgSignal {
  readonly #redis: Redis;
  readonly #key: string;
  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#key = fgLatencyKey(prefix);
  }

  /** The merged fresh windows, or undefined when no worker published lately. */
  async read(now = Date.now()): Promise<FgSample | undefined> {
    const all = await this.#redis.hgetall(this.#key);
    const counts = new Float64Array(BUCKETS);
    let count = 0,
      workers = 0,
      at = 0,
      perSec = 0;
    const gone: string[] = [];
    for (const [field, raw] of Object.entries(all)) {
      let w: FgWindow;
      try {
        w = JSON.parse(raw) as FgWindow;
      } catch {
        gone.push(field);
        continue;
      }
      const age = now - w.at;
      if (age > GONE_MS) gone.push(field);
      if (age > STALE_MS) continue;
      workers++;
      at = Math.max(at, w.at);
      count += w.n;
      perSec += w.ms > 0 ? (w.n * 1000) / w.ms : 0;
      for (const [i, n] of w.b) if (i >= 0 && i < BUCKETS) counts[i]! += n;
    }
    if (gone.length > 0) await this.#redis.hdel(this.#key, ...gone).catch(() => undefined);
    if (workers === 0) return undefined;
    return { at, workers, count, perSec: Math.round(perSec), p99Ms: quantileMs(counts, count, 0.99) };
  }
}
