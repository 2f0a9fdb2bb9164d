// The history checker must catch what it exists to catch.
import { describe, expect, it } from 'vitest';
import { History, type HistOp } from '../helpers/history.js';

function hist(ops: Array<Partial<HistOp> & Pick<HistOp, 'kind' | 'start' | 'end'>>): History {
  const h = new History();
  for (const o of ops) h.add({ key: 'k', value: null, outcome: 'ok', status: 200, ...o });
  return h;
}

describe('history checker', () => {
  it('accepts a read of the latest acknowledged write', () => {
    expect(
      hist([
        { kind: 'put', value: 'a', start: 0, end: 1 },
        { kind: 'put', value: 'b', start: 2, end: 3 },
        { kind: 'get', value: 'b', start: 4, end: 5 },
      ]).check(),
    ).toEqual([]);
  });

  it('reports a lost acknowledged write', () => {
    const p = hist([
      { kind: 'put', value: 'a', start: 0, end: 1 },
      { kind: 'get', value: null, start: 2, end: 3 },
    ]).check();
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/lost write/);
  });

  it('reports a stale read', () => {
    expect(
      hist([
        { kind: 'put', value: 'a', start: 0, end: 1 },
        { kind: 'put', value: 'b', start: 2, end: 3 },
        { kind: 'get', value: 'a', start: 4, end: 5 },
      ]).check()[0],
    ).toMatch(/stale/);
  });

  it('reports a delete that came back', () => {
    expect(
      hist([
        { kind: 'put', value: 'a', start: 0, end: 1 },
        { kind: 'del', start: 2, end: 3 },
        { kind: 'get', value: 'a', start: 4, end: 5 },
      ]).check()[0],
    ).toMatch(/delete came back/);
  });

  it('allows either value of writes concurrent with the read', () => {
    const base: Array<Partial<HistOp> & Pick<HistOp, 'kind' | 'start' | 'end'>> = [
      { kind: 'put', value: 'a', start: 0, end: 1 },
      { kind: 'put', value: 'b', start: 2, end: 6 },
    ];
    expect(hist([...base, { kind: 'get', value: 'a', start: 3, end: 4 }]).check()).toEqual([]);
    expect(hist([...base, { kind: 'get', value: 'b', start: 3, end: 4 }]).check()).toEqual([]);
  });

  it('lets an unknown-outcome write land late, but never a surely failed one', () => {
    expect(
      hist([
        { kind: 'put', value: 'a', start: 0, end: 1 },
        { kind: 'put', value: 'x', start: 2, end: 3, outcome: 'unknown', status: 504 },
        { kind: 'get', value: 'x', start: 10, end: 11 },
      ]).check(),
    ).toEqual([]);
    expect(
      hist([
        { kind: 'put', value: 'a', start: 0, end: 1 },
        { kind: 'put', value: 'x', start: 2, end: 3, outcome: 'fail', status: 503 },
        { kind: 'get', value: 'x', start: 10, end: 11 },
      ]).check()[0],
    ).toMatch(/no write produced/);
  });

  it('reports a value read before its write started', () => {
    expect(
      hist([
        { kind: 'get', value: 'a', start: 0, end: 1 },
        { kind: 'put', value: 'a', start: 2, end: 3 },
      ]).check()[0],
    ).toMatch(/before it was written/);
  });
});
