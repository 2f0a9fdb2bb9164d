// Pure planning for rebalancing: which ring arcs change owner between two
// member lists, grouped into (source -> target) streams. No I/O.
//
// hashring's rule: a key with point h belongs to the first ring point >= h,
// wrapping to the first point. Between two consecutive points a < b of the
// merged point set of both rings, every h in (a, b] therefore has the same
// owner in each ring as b itself.
import { POINT_MAX, Ring, type PointRange, type RingMember } from '../core/ring.js';

export interface StreamPlan {
  readonly source: string;
  readonly target: string;
  readonly ranges: readonly PointRange[];
  /** Fraction of the key space that moves in this stream. */
  readonly share: number;
}

/** Arcs whose owner differs between `prev` and `next`, grouped by (source, target). */
export function planMoves(prev: readonly RingMember[], next: readonly RingMember[]): StreamPlan[] {
  const a = Ring.of(prev);
  const b = Ring.of(next);
  if (a.empty || b.empty) return [];
  const pts = [...new Set([...a.points().map((p) => p.point), ...b.points().map((p) => p.point)])].sort((x, y) => x - y);
  const groups = new Map<string, PointRange[]>();
  const add = (lo: number, hi: number, at: number) => {
    if (lo > hi) return;
    const s = a.ownerOfPoint(at)!;
    const t = b.ownerOfPoint(at)!;
    if (s === t) return;
    const k = `${s}\u0000${t}`;
    const list = groups.get(k) ?? [];
    const last = list[list.length - 1];
    // Merge touching ranges so streams scan fewer, longer runs.
    if (last && last.hi + 1 === lo) list[list.length - 1] = { lo: last.lo, hi };
    else list.push({ lo, hi });
    groups.set(k, list);
  };
  // [0, first] and (last, MAX] both belong to the first point's owner.
  add(0, pts[0]!, pts[0]!);
  for (let i = 1; i < pts.length; i++) add(pts[i - 1]! + 1, pts[i]!, pts[i]!);
  add(pts[pts.length - 1]! + 1, POINT_MAX, pts[0]!);
  const out: StreamPlan[] = [];
  for (const [k, ranges] of groups) {
    const [source, target] = k.split('\u0000') as [string, string];
    const span = ranges.reduce((n, r) => n + (r.hi - r.lo + 1), 0);
    out.push({ source, target, ranges, share: span / (POINT_MAX + 1) });
  }
  return out.sort((x, y) => (x.source + x.target < y.source + y.target ? -1 : 1));
}
