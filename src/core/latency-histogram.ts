// The fixed-bucket latency histogram behind the rebalance pacing's
// foreground signal (pure). Quarter-octave buckets from 50 µs up: bucket i
// holds latencies up to FIRST_MS * 2^(i/4), so a quantile read from the
// histogram is a bucket bound at most 19% above the true value. The last
// bucket (about 50 s) takes everything slower.
const FIRST_MS = 0.05;
const PER_OCTAVE = 4;
export const BUCKETS = 81;

/** Upper bound of bucket i, in ms. */
export const bucketUpperMs = (i: number): number => FIRST_MS * 2 ** (i / PER_OCTAVE);

/** The bucket of a latency of `ms`. */
export function bucketOf(ms: number): number {
  const i = ms <= FIRST_MS ? 0 : Math.ceil(Math.log2(ms / FIRST_MS) * PER_OCTAVE);
  return i < BUCKETS ? i : BUCKETS - 1;
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

/** One router worker's published window: when, over how long (ms), how many requests, their p99 and the sparse buckets [index, count]. */
export interface FgWindow {
  readonly at: number;
  readonly ms: number;
  readonly n: number;
  readonly p99Ms: number;
  readonly b: ReadonlyArray<readonly [number, number]>;
}
