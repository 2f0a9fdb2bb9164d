// One page of the paged scan over fake shards that each hold a sorted list
// of keys: a page holds at most `limit` keys whatever the number of shards,
// and walking the pages lists every key once, in order.
import { describe, expect, it } from 'vitest';
import { compareKeys, scanPage } from '../../src/router/scan.js';
import type { Forwarder } from '../../src/router/forwarder.js';

type Entry = [key: string, e: number, ver: number, x: number, deleted: 0 | 1];

/** A forwarder whose shards answer `list` from their key lists, as a shard's store does. */
function fakeForwarder(shards: Record<string, string[]>): Forwarder {
  return {
    topology: { shards: Object.keys(shards).map((id) => ({ id })) },
    connection: (id: string) => ({
      request: async (req: { prefix: string; after?: string; limit: number }) => {
        const keys = shards[id]!.filter((k) => k.startsWith(req.prefix) && (req.after === undefined || compareKeys(k, req.after) > 0)).sort(compareKeys);
        const entries: Entry[] = keys.slice(0, req.limit).map((k) => [k, 1, 1, 0, 0]);
        return { entries, more: keys.length > req.limit };
      },
    }),
  } as unknown as Forwarder;
}

describe('scanPage', () => {
  const keys = Array.from({ length: 30 }, (_, n) => `k-${String(n).padStart(2, '0')}`);
  // Spread over three shards, as a ring would.
  const shards = { a: keys.filter((_, n) => n % 3 === 0), b: keys.filter((_, n) => n % 3 === 1), c: keys.filter((_, n) => n % 3 === 2) };

  it.each([1, 2, 5, 7, 29, 30, 100])('holds at most limit=%i keys a page, and the pages list every key once, in order', async (limit) => {
    const fwd = fakeForwarder(shards);
    const seen: string[] = [];
    let after: string | undefined;
    for (let n = 0; n < 100; n++) {
      const p = await scanPage(fwd, 'k-', after, limit);
      expect(p.entries.length).toBeLessThanOrEqual(limit);
      seen.push(...p.entries.map((e) => e.stored));
      if (p.next === undefined) break;
      after = p.next;
    }
    expect(seen).toEqual(keys);
  });
});
