// Move planning, the read rule during a migration, and the import rule.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { planMoves } from '../../src/rebalance/moves.js';
import { newer, live } from '../../src/rebalance/read-merge.js';
import { POINT_MAX, Ring, keyPoint, type PointRange, type RingMember } from '../../src/core/ring.js';
import { Store } from '../../src/shard/store.js';
import { encodeRecord, recordKey } from '../../src/shard/record.js';

const inRanges = (point: number, ranges: readonly PointRange[]) => ranges.some((r) => point >= r.lo && point <= r.hi);

const three: RingMember[] = [
  { id: 's1', weight: 1 },
  { id: 's2', weight: 1 },
  { id: 's3', weight: 1 },
];

function checkPlan(prev: RingMember[], next: RingMember[], n = 20_000): { moved: number } {
  const plan = planMoves(prev, next);
  const a = new Ring(prev);
  const b = new Ring(next);
  let moved = 0;
  for (let i = 0; i < n; i++) {
    const k = `key-${i}`;
    const p = keyPoint(k);
    const s = a.ownerOf(k)!;
    const t = b.ownerOf(k)!;
    const streams = plan.filter((x) => inRanges(p, x.ranges));
    if (s === t) {
      expect(streams, k).toEqual([]);
    } else {
      moved++;
      expect(
        streams.map((x) => [x.source, x.target]),
        k,
      ).toEqual([[s, t]]);
    }
  }
  return { moved };
}

describe('planMoves', () => {
  it('covers exactly the keys whose owner changes when a shard joins', () => {
    const { moved } = checkPlan(three, [...three, { id: 's4', weight: 1 }]);
    expect(moved / 20_000).toBeGreaterThan(0.15);
    expect(moved / 20_000).toBeLessThan(0.35);
    expect(planMoves(three, [...three, { id: 's4', weight: 1 }]).every((s) => s.target === 's4')).toBe(true);
  });

  it('covers exactly the moving keys when a shard leaves or a weight changes', () => {
    checkPlan([...three, { id: 's4', weight: 1 }], three);
    checkPlan(three, [
      { id: 's1', weight: 3 },
      { id: 's2', weight: 1 },
      { id: 's3', weight: 1 },
    ]);
  });

  it('ranges stay inside the 32-bit space, sorted, without overlap', () => {
    for (const s of planMoves(three, [...three, { id: 's4', weight: 2 }])) {
      for (let i = 0; i < s.ranges.length; i++) {
        const r = s.ranges[i]!;
        expect(r.lo).toBeLessThanOrEqual(r.hi);
        expect(r.lo).toBeGreaterThanOrEqual(0);
        expect(r.hi).toBeLessThanOrEqual(POINT_MAX);
        if (i > 0) expect(r.lo).toBeGreaterThan(s.ranges[i - 1]!.hi + 1);
      }
    }
  });

  it('the same ring plans nothing', () => {
    expect(planMoves(three, [...three].reverse())).toEqual([]);
  });
});

describe('read rule during a migration', () => {
  const v = (e: number, ver: number) => ({ v: new Uint8Array([e]), ct: 'x', ver, x: 0, e });
  const tomb = (e: number, ver: number) => ({ deleted: true as const, ver, e });
  it('prefers the later write epoch whatever the versions say', () => {
    expect(newer(v(5, 1), v(4, 999))).toEqual(v(5, 1));
    expect(newer(v(4, 999), v(5, 1))).toEqual(v(5, 1));
  });
  it('a newer tombstone hides an older value; a miss loses to anything', () => {
    expect(live(newer(tomb(6, 1), v(3, 50)))).toBeNull();
    expect(live(newer(null, v(3, 50)))).toEqual(v(3, 50));
    expect(newer(null, null)).toBeNull();
  });
  it('within one epoch the higher version wins', () => {
    expect(newer(v(2, 10), v(2, 11))).toEqual(v(2, 11));
  });
});

describe('import rule', () => {
  let dir = '';
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('overwrites only records written before the migration epoch; skips expired ones', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'shardkv-import-'));
    const st = new Store({ path: dir, mapSizeBytes: 1 << 28, noSync: true, tombstoneGraceMs: 60_000 });
    const imp = (key: string, val: string, e: number, x = 0) =>
      st.importInTxn(recordKey(keyPoint(key), key), encodeRecord({ v: Buffer.from(val), ct: 'text/plain', ver: 1, x, e }), 10);
    await st.transaction(() => {
      st.putInTxn('new', { value: Buffer.from('written at 10'), contentType: 'text/plain', expiresAt: 0, epoch: 10 });
      st.putInTxn('old', { value: Buffer.from('written at 3'), contentType: 'text/plain', expiresAt: 0, epoch: 3 });
      st.delInTxn('gone', undefined, Date.now(), 10);
    });
    const written = await st.transaction(() => [
      imp('new', 'copy', 7),
      imp('old', 'copy', 7),
      imp('gone', 'copy', 7),
      imp('fresh', 'copy', 7),
      imp('expired', 'copy', 7, Date.now() - 1),
    ]);
    expect(written).toEqual([false, true, false, true, false]);
    expect(Buffer.from(st.get('new')!.v).toString()).toBe('written at 10');
    expect(Buffer.from(st.get('old')!.v).toString()).toBe('copy');
    expect(st.get('gone')).toBeNull();
    expect(st.get('expired')).toBeNull();
    expect(st.lookup('gone')).toMatchObject({ deleted: true, e: 10 });
    await st.close();
  });
});
