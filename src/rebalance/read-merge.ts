// Reads during a migration: the router asks the new and the old owner of a
// moving key and keeps the newer record. Pure: no I/O.
import type { GetResult, StoredValue } from '../core/protocol.js';

/** A value for the caller: tombstones read as "not found". */
export function live(r: GetResult): StoredValue | null {
  return r === null || 'deleted' in r ? null : r;
}

/**
 * The newer of two records of one key during a migration, by (write epoch,
 * version); a miss loses to anything, a tombstone counts like a value.
 */
export function newer(a: GetResult, b: GetResult): GetResult {
  if (a === null) return b;
  if (b === null) return a;
  const ea = a.e ?? 0;
  const eb = b.e ?? 0;
  if (ea !== eb) return ea > eb ? a : b;
  return a.ver >= b.ver ? a : b;
}
