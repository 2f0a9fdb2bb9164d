// The ring in a compact form for drawing (the dashboard, GET /v1/ring): the
// arcs of the key space with their owner and, during a migration, the owner
// they are moving from. Computed with the same Ring as the routing, so a
// viewer never re-implements the hashing. Pure: no I/O.
import { POINT_MAX, Ring } from './ring.js';
import { ringOf, type Topology } from './topology.js';

/** Inclusive range of ring points [lo, hi] owned by `owner`; `from` is set while it moves away from that shard. */
export interface RingArc {
  readonly lo: number;
  readonly hi: number;
  readonly owner: string;
  readonly from?: string;
}

export interface RingViewShard {
  readonly id: string;
  readonly state: string;
  readonly weight: number;
  /** Fraction of the key space it owns (during a migration: once the move is done). */
  readonly share: number;
  /** During a migration: its fraction before the move. */
  readonly shareBefore?: number;
}

export interface RingView {
  readonly epoch: number;
  readonly migration: { readonly jobId: string; readonly phase: string } | null;
  readonly shards: readonly RingViewShard[];
  /** Every point of [0, POINT_MAX] in exactly one arc, in order; touching arcs with the same owners are merged. */
  readonly arcs: readonly RingArc[];
}

/**
 * The arcs of `next`, each with the owner it has in `prev` when that differs.
 * hashring's rule: a point h belongs to the first ring point >= h, wrapping,
 * so between two consecutive points a < b of both rings every h in (a, b]
 * has the owner b has in each ring (as in rebalance/moves.ts).
 */
function arcsOf(prev: Ring, next: Ring): RingArc[] {
  if (next.empty) return [];
  const pts = [...new Set([...prev.points().map((p) => p.point), ...next.points().map((p) => p.point)])].sort((x, y) => x - y);
  const out: RingArc[] = [];
  const add = (lo: number, hi: number, at: number) => {
    if (lo > hi) return;
    const owner = next.ownerOfPoint(at)!;
    const before = prev.empty ? owner : prev.ownerOfPoint(at)!;
    const from = before === owner ? undefined : before;
    const last = out[out.length - 1];
    if (last && last.owner === owner && last.from === from && last.hi + 1 === lo) out[out.length - 1] = { ...last, hi };
    else out.push(from === undefined ? { lo, hi, owner } : { lo, hi, owner, from });
  };
  add(0, pts[0]!, pts[0]!);
  for (let i = 1; i < pts.length; i++) add(pts[i - 1]! + 1, pts[i]!, pts[i]!);
  add(pts[pts.length - 1]! + 1, POINT_MAX, pts[0]!);
  return out;
}

export function ringView(t: Topology): RingView {
  const next = ringOf(t);
  const prev = t.migration ? Ring.of(t.migration.prev) : next;
  const shares = next.shares();
  const before = t.migration ? prev.shares() : undefined;
  return {
    epoch: t.epoch,
    migration: t.migration ? { jobId: t.migration.jobId, phase: t.migration.phase } : null,
    shards: t.shards.map((s) => ({
      id: s.id,
      state: s.state,
      weight: s.weight,
      share: shares[s.id] ?? 0,
      ...(before ? { shareBefore: before[s.id] ?? 0 } : {}),
    })),
    arcs: arcsOf(prev, next),
  };
}
