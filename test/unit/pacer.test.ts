// The adaptive rebalance pacer against a scripted foreground: a step is one
// call with the foreground's sample and the rate the move achieved, which the
// script sets to the limit (a move always as fast as it is let go) or to a
// machine ceiling.
import { describe, expect, it } from 'vitest';
import { BASELINE_FLOOR_MS, MIN_FG_SAMPLES, PROBE_STEPS, Pacer, type PacerOptions } from '../../src/rebalance/pacer.js';

const OPTS: PacerOptions = { minKeysPerSec: 1000, maxKeysPerSec: 0, targetRatio: 2, baselineP99Ms: 4 };
const busy = (p99Ms: number) => ({ count: 500, p99Ms });

/** Run steps: each gets the foreground p99 the script computes from the current limit. */
function run(p: Pacer, steps: number, fg: (limit: number) => { count: number; p99Ms: number } | undefined, ceiling = Infinity): number[] {
  const limits: number[] = [];
  for (let i = 0; i < steps; i++) {
    const achieved = Math.min(p.keysPerSec, ceiling);
    limits.push(p.update(fg(p.keysPerSec), achieved));
  }
  return limits;
}

describe('rebalance pacer', () => {
  it('with no foreground at all lifts every limit (or holds the configured maximum)', () => {
    const p = new Pacer(OPTS);
    expect(p.update(undefined, 0)).toBe(Infinity);
    expect(p.state).toMatchObject({ keysPerSec: null, phase: 'idle' });
    // Too few requests to have a p99 is an idle foreground too.
    expect(p.update({ count: MIN_FG_SAMPLES - 1, p99Ms: 100 }, 50_000)).toBe(Infinity);
    const capped = new Pacer({ ...OPTS, maxKeysPerSec: 80_000 });
    expect(capped.update(undefined, 0)).toBe(80_000);
  });

  it('rises while the foreground stays near its baseline, by slow start, up to what the machine moves', () => {
    const p = new Pacer(OPTS);
    const limits = run(p, 12, () => busy(4.5), 150_000);
    // Doubling from the minimum, never more than twice what was achieved.
    expect(limits.slice(0, 4)).toEqual([2000, 4000, 8000, 16_000]);
    for (let i = 1; i < limits.length; i++) expect(limits[i]!).toBeGreaterThanOrEqual(limits[i - 1]!);
    expect(limits.at(-1)).toBe(300_000);
    expect(p.state).toMatchObject({ phase: 'slow-start', baselineP99Ms: 4, fgP99Ms: 4.5, ratio: 1.13 });
  });

  it('cuts when the p99 goes over the target, holds just below it, and recovers when the load goes', () => {
    const p = new Pacer(OPTS);
    // A machine where foreground p99 grows with the move rate: 4 ms + 1 ms per 10k keys/s.
    let extra = 1;
    const fg = (limit: number) => busy(4 + (Math.min(limit, 200_000) / 10_000) * extra);
    const first = run(p, 30, fg);
    // It settles where p99 <= 2 x 4 ms with the margin: at most about 40k keys/s, and never far below.
    const settled = first.slice(-10);
    for (const l of settled) expect(l).toBeLessThanOrEqual(40_000);
    expect(Math.max(...settled)).toBeGreaterThan(15_000);
    expect(p.state.phase).not.toBe('slow-start');
    // The foreground gets three times as sensitive: the rate falls multiplicatively.
    extra = 3;
    const before = p.keysPerSec;
    expect(before).toBeGreaterThan(15_000);
    p.update(fg(p.keysPerSec), p.keysPerSec);
    expect(p.state.phase).toBe('cut');
    expect(p.keysPerSec).toBeCloseTo(before * 0.7, -1);
    const second = run(p, 20, fg).slice(-5);
    for (const l of second) expect(l).toBeLessThanOrEqual(14_000);
    // And back to the first machine: it recovers.
    extra = 1;
    const third = run(p, 40, fg).slice(-5);
    expect(Math.max(...third)).toBeGreaterThan(15_000);
  });

  it('never goes below the minimum rate, however bad the foreground', () => {
    const p = new Pacer(OPTS);
    const limits = run(p, 20, () => busy(100));
    expect(limits.every((l) => l === OPTS.minKeysPerSec)).toBe(true);
    expect(p.state).toMatchObject({ phase: 'cut', ratio: 25 });
  });

  it('without a baseline measures one at the minimum rate when traffic comes, then paces against it', () => {
    const p = new Pacer({ ...OPTS, baselineP99Ms: undefined });
    expect(p.update(undefined, 0)).toBe(Infinity);
    const probe = run(p, PROBE_STEPS, () => busy(3), 100_000);
    expect(probe.every((l) => l === OPTS.minKeysPerSec)).toBe(true);
    expect(p.state).toMatchObject({ phase: 'probe', baselineP99Ms: 3 });
    p.update(busy(3.5), 1000);
    expect(p.state.phase).toBe('slow-start');
    expect(p.keysPerSec).toBe(2000);
    // A tiny baseline is raised to the floor.
    const q = new Pacer({ ...OPTS, baselineP99Ms: 0.1 });
    expect(q.state.baselineP99Ms).toBe(BASELINE_FLOOR_MS);
  });
});
