// One page of a tenant's keys in key order, over every shard of the
// topology (during a migration a key may sit on its old owner, its new one,
// or both): each shard lists its records after the cursor, the router keeps
// the newest record of each key by (write epoch, version), drops deletes and
// expired values, and returns only keys it knows to be complete: up to the
// smallest last key of the shards that have more, and at most `limit` of
// them. The cursor is a key, not a shard position, so a rebalance between
// pages changes nothing for it.
import type { Forwarder } from './forwarder.js';

export interface ScanEntry {
  /** The stored key (namespaced). */
  readonly stored: string;
  readonly ver: number;
  /** Absolute expiry in ms, 0 = none. */
  readonly x: number;
}

export interface ScanPage {
  readonly entries: ScanEntry[];
  /** The stored key to continue after, or undefined when the scan is complete. */
  readonly next: string | undefined;
}

/** Order of stored keys: UTF-8 bytes, as the shards sort them. */
export function compareKeys(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export async function scanPage(fwd: Forwarder, prefix: string, after: string | undefined, limit: number, now = Date.now()): Promise<ScanPage> {
  const t = fwd.topology;
  const ids = t ? t.shards.map((s) => s.id) : [];
  const answers = await Promise.all(ids.map((id) => fwd.connection(id).request({ o: 'list', e: 0, prefix, ...(after !== undefined ? { after } : {}), limit })));
  // Keys beyond the smallest last key of a shard that has more are not complete yet.
  let boundary: string | undefined;
  for (const a of answers) {
    const last = a.entries[a.entries.length - 1];
    if (a.more && last && (boundary === undefined || compareKeys(last[0], boundary) < 0)) boundary = last[0];
  }
  const newest = new Map<string, { e: number; ver: number; x: number; deleted: boolean }>();
  for (const a of answers) {
    for (const [key, e, ver, x, deleted] of a.entries) {
      if (boundary !== undefined && compareKeys(key, boundary) > 0) break;
      const cur = newest.get(key);
      if (!cur || e > cur.e || (e === cur.e && ver > cur.ver)) newest.set(key, { e, ver, x, deleted: deleted === 1 });
    }
  }
  const entries: ScanEntry[] = [];
  for (const [stored, r] of newest) if (!r.deleted && (r.x === 0 || r.x > now)) entries.push({ stored, ver: r.ver, x: r.x });
  entries.sort((a, b) => compareKeys(a.stored, b.stored));
  // Each shard listed up to `limit` keys, so together they may hold more: the rest come on the next page.
  if (entries.length > limit) {
    entries.length = limit;
    return { entries, next: entries[limit - 1]!.stored };
  }
  return { entries, next: boundary };
}
