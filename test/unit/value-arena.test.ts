import { describe, expect, it } from 'vitest';
import { ArenaPool, ValueArena } from '../../src/shard/value-arena.js';

describe('ValueArena', () => {
  it('hands out views that stay intact when it grows, and reuses its room after reset', () => {
    const a = new ValueArena();
    const views: Buffer[] = [];
    // 100 values of 16 KiB: well past the first buffer, so it grows several times.
    for (let i = 0; i < 100; i++) views.push(a.take(16_384).fill(i));
    for (const [i, v] of views.entries()) {
      expect(v.length).toBe(16_384);
      expect(
        v.every((b) => b === i),
        `value ${i}`,
      ).toBe(true);
    }
    const last = views[99]!;
    a.reset();
    const again = a.take(16_384);
    expect(again.buffer).toBe(last.buffer);
    expect(again.byteOffset).toBe(0);
  });

  it('gives a value larger than its buffer a buffer of its own size', () => {
    const a = new ValueArena();
    a.take(10);
    const big = a.take(1_000_000);
    expect(big.length).toBe(1_000_000);
    expect(big.buffer.byteLength).toBeGreaterThanOrEqual(1_000_000);
  });
});

describe('ArenaPool', () => {
  it('hands back arenas given to it, reset, and keeps at most its limit', () => {
    const pool = new ArenaPool(1);
    const a = pool.take();
    const b = pool.take();
    expect(b).not.toBe(a);
    a.take(5).fill(1);
    pool.give(a);
    pool.give(b);
    const c = pool.take();
    expect(c).toBe(a);
    expect(c.take(5).byteOffset).toBe(0);
    expect(pool.take()).not.toBe(b);
  });
});
