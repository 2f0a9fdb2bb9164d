// Adaptive pacing of a rebalance (pure: no I/O, no clock). Each control step
// the coordinator hands in the foreground's latest p99 and the move rate it
// achieved; the pacer answers the next rate limit (keys/s), in the manner of
// TCP congestion control (RFC 5681): a slow start that doubles the rate each
// step until the first hold or cut, then gentler steps (a tenth of the rate,
// at least the minimum) while the foreground is well inside its target, a
// hold band just below it, and a multiplicative cut above it.
//
//   p99 / baseline <= 0.75 x target   increase (x2 in slow start, else +10%)
//   up to 0.9 x target (the margin)   hold
//   above                            cut to 0.7 x min(limit, achieved)
//
// With no foreground traffic at all there is nothing to protect: no limit
// (or maxKeysPerSec), the move runs at the machine's speed. A cut starts from
// what the move achieved, and a limit never runs more than twice ahead of it,
// so a cut bites at once.

/** Requests in a sample below which the foreground counts as idle (its p99 would be noise). */
export const MIN_FG_SAMPLES = 20;
/** Baselines below this are taken as this: a p99 of 0.2 ms doubles on any scheduling blip. */
export const BASELINE_FLOOR_MS = 1;
/** Steps at the minimum rate to measure a baseline when the move started without one. */
export const PROBE_STEPS = 4;

const SLOW_START_FACTOR = 2;
const ADDITIVE_FRACTION = 0.1;
const CUT_FACTOR = 0.7;
const INCREASE_BELOW = 0.75;
const CUT_ABOVE = 0.9;
const AHEAD_FACTOR = 2;

export interface PacerOptions {
  /** Lowest limit, keys/s (the move never stalls). */
  readonly minKeysPerSec: number;
  /** Highest limit, keys/s; 0 = none. */
  readonly maxKeysPerSec: number;
  /** Foreground p99 may reach this multiple of its baseline (2 = twice). */
  readonly targetRatio: number;
  /** Foreground p99 before the move (ms), when it was measured; else the pacer probes. */
  readonly baselineP99Ms?: number | undefined;
}

export interface PacerSignal {
  /** Data requests in the sample, and their p99 (ms). */
  readonly count: number;
  readonly p99Ms: number;
}

export type PacerPhase = 'slow-start' | 'increase' | 'hold' | 'cut' | 'probe' | 'idle';

export interface PacerState {
  /** The limit, keys/s; null = none. */
  readonly keysPerSec: number | null;
  readonly phase: PacerPhase;
  readonly baselineP99Ms: number | null;
  readonly fgP99Ms: number | null;
  readonly ratio: number | null;
}

export class Pacer {
  readonly #o: PacerOptions;
  #rate: number;
  #baseline: number | undefined;
  #slowStart = true;
  #probe: number[] = [];
  #state: PacerState;

  constructor(opts: PacerOptions) {
    this.#o = opts;
    this.#rate = opts.minKeysPerSec;
    this.#baseline = opts.baselineP99Ms === undefined ? undefined : Math.max(BASELINE_FLOOR_MS, opts.baselineP99Ms);
    this.#state = { keysPerSec: this.#rate, phase: 'slow-start', baselineP99Ms: this.#baseline ?? null, fgP99Ms: null, ratio: null };
  }

  /** The limit, keys/s; Infinity = none. */
  get keysPerSec(): number {
    return this.#rate;
  }

  get state(): PacerState {
    return this.#state;
  }

  /** One control step: the foreground's sample (undefined: no router published) and the keys/s moved since the last step. */
  update(fg: PacerSignal | undefined, achievedKeysPerSec: number): number {
    const achieved = Number.isFinite(achievedKeysPerSec) ? Math.max(0, achievedKeysPerSec) : 0;
    const o = this.#o;
    const busy = fg !== undefined && fg.count >= MIN_FG_SAMPLES;
    let phase: PacerPhase;
    let ratio: number | null = null;
    if (!busy) {
      phase = 'idle';
      this.#rate = Infinity;
    } else if (this.#baseline === undefined) {
      // Traffic came, but the move started without a baseline: measure one at the minimum rate.
      phase = 'probe';
      this.#probe.push(fg.p99Ms);
      this.#rate = o.minKeysPerSec;
      if (this.#probe.length >= PROBE_STEPS) {
        this.#baseline = Math.max(BASELINE_FLOOR_MS, median(this.#probe));
        this.#slowStart = true;
      }
    } else {
      ratio = fg.p99Ms / this.#baseline;
      if (ratio > o.targetRatio * CUT_ABOVE) {
        phase = 'cut';
        this.#slowStart = false;
        this.#rate = Math.min(this.#rate, achieved) * CUT_FACTOR;
      } else if (ratio <= o.targetRatio * INCREASE_BELOW) {
        phase = this.#slowStart ? 'slow-start' : 'increase';
        this.#rate = this.#slowStart ? this.#rate * SLOW_START_FACTOR : this.#rate + Math.max(o.minKeysPerSec, this.#rate * ADDITIVE_FRACTION);
      } else {
        phase = 'hold';
        this.#slowStart = false;
      }
    }
    if (phase !== 'idle' && phase !== 'cut' && phase !== 'probe') this.#rate = Math.min(this.#rate, Math.max(o.minKeysPerSec, achieved) * AHEAD_FACTOR);
    if (o.maxKeysPerSec > 0) this.#rate = Math.min(this.#rate, o.maxKeysPerSec);
    this.#rate = Math.max(o.minKeysPerSec, this.#rate);
    if (Number.isFinite(this.#rate)) this.#rate = Math.round(this.#rate);
    this.#state = {
      keysPerSec: Number.isFinite(this.#rate) ? this.#rate : null,
      phase,
      baselineP99Ms: this.#baseline ?? null,
      fgP99Ms: fg && fg.count > 0 ? fg.p99Ms : null,
      ratio: ratio === null ? null : Math.round(ratio * 100) / 100,
    };
    return this.#rate;
  }
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
