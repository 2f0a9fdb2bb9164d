// The ring as the dashboard draws it (GET /v1/ring): arcs that cover the key
// space once, owned as the routing's Ring owns them, and during a migration
// the moving arcs exactly where the rebalance plan moves keys.
import { describe, expect, it } from 'vitest';
import { POINT_MAX, Ring, keyPoint } from '../../src/core/ring.js';
import { ringView, type RingArc } from '../../src/core/ring-view.js';
import type { Topology, TopologyShard } from '../../src/core/topology.js';
import { planMoves } from '../../src/rebalance/moves.js';

const shard = (id: string, weight = 1, state: TopologyShard['state'] = 'active'): TopologyShard => ({
  id,
  dataAddr: '127.0.0.1:1',
  adminAddr: '127.0.0.1:2',
  weight,
  state,
});

function covers(arcs: readonly RingArc[]): void {
  expect(arcs[0]!.lo).toBe(0);
  expect(arcs.at(-1)!.hi).toBe(POINT_MAX);
  for (let i = 1; i < arcs.length; i++) expect(arcs[i]!.lo).toBe(arcs[i - 1]!.hi + 1);
}

const ownerIn = (arcs: readonly RingArc[], p: number) => arcs.find((a) => a.lo <= p && p <= a.hi)!;

describe('ringView', () => {
  it('outside a migration: one owner per arc, as the Ring routes, and the Ring shares', () => {
    const t: Topology = { epoch: 3, shards: [shard('s1'), shard('s2', 2), shard('s3')], updatedAt: 0 };
    const v = ringView(t);
    const ring = Ring.of([
      { id: 's1', weight: 1 },
      { id: 's2', weight: 2 },
      { id: 's3', weight: 1 },
    ]);
    covers(v.arcs);
    expect(v.migration).toBeNull();
    expect(v.arcs.every((a) => a.from === undefined)).toBe(true);
    // Touching arcs of one owner are merged.
    for (let i = 1; i < v.arcs.length; i++) expect(v.arcs[i]!.owner).not.toBe(v.arcs[i - 1]!.owner);
    for (let i = 0; i < 2000; i++) {
      const p = keyPoint(`k${i}`);
      expect(ownerIn(v.arcs, p).owner).toBe(ring.ownerOfPoint(p));
    }
    const spans: Record<string, number> = {};
    for (const a of v.arcs) spans[a.owner] = (spans[a.owner] ?? 0) + (a.hi - a.lo + 1) / 2 ** 32;
    const shares = ring.shares();
    for (const s of v.shards) {
      expect(s.share).toBe(shares[s.id]);
      expect(spans[s.id]).toBeCloseTo(s.share, 9);
      expect(s.shareBefore).toBeUndefined();
    }
  });

  it('during a migration: the moving arcs name their old owner, exactly the ranges the plan moves', () => {
    const prev = [
      { id: 's1', weight: 1 },
      { id: 's2', weight: 1 },
      { id: 's3', weight: 1 },
    ];
    const next = [...prev, { id: 's4', weight: 1 }];
    const t: Topology = {
      epoch: 8,
      shards: [shard('s1'), shard('s2'), shard('s3'), shard('s4', 1, 'joining')],
      migration: { jobId: 'j1', epoch: 7, phase: 'move', prev, next },
      updatedAt: 0,
    };
    const v = ringView(t);
    covers(v.arcs);
    expect(v.migration).toEqual({ jobId: 'j1', phase: 'move' });
    const moving = v.arcs.filter((a) => a.from !== undefined);
    expect(moving.length).toBeGreaterThan(0);
    expect(moving.every((a) => a.owner === 's4')).toBe(true);
    const plan = planMoves(prev, next);
    for (const s of plan) {
      const mine = moving.filter((a) => a.from === s.source).reduce((n, a) => n + (a.hi - a.lo + 1), 0);
      expect(mine).toBe(s.ranges.reduce((n, r) => n + (r.hi - r.lo + 1), 0));
    }
    const before = Ring.of(prev).shares();
    const after = Ring.of(next).shares();
    for (const s of v.shards) {
      expect(s.share).toBe(after[s.id]);
      expect(s.shareBefore).toBe(before[s.id] ?? 0);
    }
  });

  it('an empty ring has no arcs', () => {
    expect(ringView({ epoch: 0, shards: [], updatedAt: 0 }).arcs).toEqual([]);
  });
});
