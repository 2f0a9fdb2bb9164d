// Every field of every request on the data port is checked before anything
// touches the store: its type and bounds, and that no other field is there.
// A failed check is KV_ERR_BAD_FRAME (or the field's own code, e.g. a key's),
// for that request only.
import { kvError } from '../core/errors.js';
import type { Limits } from '../core/config.js';
import type { Op } from '../core/protocol.js';
import { POINT_MAX } from '../core/ring.js';
import { isWellFormed, validateContentType, validateKey, validateValue } from '../core/validate.js';

/** Most point ranges in one count or purge (a plan has one per arc: dozens to a few thousand). */
export const MAX_RANGES = 100_000;
/** Most records in one list answer. */
export const MAX_LIST = 10_000;
/** A put's expiry may be this far past the longest TTL (clock difference between router and shard). */
export const CLOCK_SKEW_MS = 60_000;

const COMMON = ['i', 'o', 'e'];
const FIELDS: { readonly [O in Op]: ReadonlySet<string> } = {
  get: new Set([...COMMON, 'k']),
  fetch: new Set([...COMMON, 'k']),
  put: new Set([...COMMON, 'k', 'v', 'ct', 'x', 'm', 'n']),
  del: new Set([...COMMON, 'k', 'm']),
  ping: new Set(COMMON),
  stats: new Set(COMMON),
  sync: new Set([...COMMON, 'me']),
  scan: new Set([...COMMON, 'ranges', 'after', 'limit', 'maxBytes']),
  count: new Set([...COMMON, 'ranges']),
  import: new Set([...COMMON, 'me', 'packed']),
  purge: new Set([...COMMON, 'ranges', 'limit']),
  retire: new Set(COMMON),
  list: new Set([...COMMON, 'prefix', 'after', 'limit']),
};

const bad = (why: string) => kvError('KV_ERR_BAD_FRAME', why);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function epochField(name: string, v: unknown): void {
  if (!isCount(v)) throw bad(`${name} must be a whole number >= 0`);
}

function ranges(v: unknown, max: number): void {
  if (!Array.isArray(v) || v.length === 0 || v.length > max) throw bad(`ranges must be an array of 1 to ${max} point ranges`);
  for (const r of v as unknown[]) {
    const o = r as { lo?: unknown; hi?: unknown } | null;
    if (typeof o !== 'object' || o === null || Object.keys(o).length !== 2) throw bad('a point range is {lo, hi}');
    if (!isCount(o.lo) || !isCount(o.hi) || o.hi > POINT_MAX || o.lo > o.hi) throw bad('bad point range');
  }
}

function expected(v: unknown): void {
  if (v === undefined || v === '*') return;
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw bad('an expected version (m) is a whole number >= 1 or "*"');
}

/**
 * Check one request of a known op. `o` is known to be an op of the table;
 * everything else is checked here.
 */
export function checkRequest(req: Record<string, unknown>, o: Op, limits: Limits, now: number): void {
  const allowed = FIELDS[o];
  for (const f in req) if (!allowed.has(f)) throw bad(`unknown field ${JSON.stringify(f)} in a ${o} request`);
  if (!isCount(req['i'])) throw bad('request id (i) must be a whole number >= 0');
  epochField('epoch (e)', req['e']);
  switch (o) {
    case 'get':
    case 'fetch':
      validateKey(req['k'], limits);
      return;
    case 'put': {
      validateKey(req['k'], limits);
      if (!(req['v'] instanceof Uint8Array)) throw bad('put without value bytes');
      validateValue(req['v'], limits);
      if (req['ct'] !== undefined) validateContentType(req['ct'], limits);
      const x = req['x'];
      if (x !== undefined) {
        if (!isCount(x)) throw bad('bad expiry');
        if (x > now + limits.maxTtlSeconds * 1000 + CLOCK_SKEW_MS) throw kvError('KV_ERR_BAD_TTL', limits.maxTtlSeconds, `an expiry ${x - now} ms away`);
      }
      expected(req['m']);
      if (req['n'] !== undefined && typeof req['n'] !== 'boolean') throw bad('n (create only) must be true or false');
      if (req['n'] === true && req['m'] !== undefined) throw bad('a put is create-only (n) or conditional (m), not both');
      return;
    }
    case 'del':
      validateKey(req['k'], limits);
      expected(req['m']);
      return;
    case 'sync':
      epochField('me', req['me']);
      return;
    case 'scan': {
      ranges(req['ranges'], 1);
      const after = req['after'];
      if (after !== undefined) {
        if (!Array.isArray(after) || after.length !== 2 || !isCount(after[0]) || after[0] > POINT_MAX) throw bad('after is [point, key]');
        validateKey(after[1], limits);
      }
      if (req['limit'] !== undefined && !(isCount(req['limit']) && req['limit'] >= 1)) throw bad('limit must be a whole number >= 1');
      if (req['maxBytes'] !== undefined && !(isCount(req['maxBytes']) && req['maxBytes'] >= 1)) throw bad('maxBytes must be a whole number >= 1');
      return;
    }
    case 'list': {
      const p = req['prefix'];
      if (typeof p !== 'string' || !isWellFormed(p) || Buffer.byteLength(p, 'utf8') > limits.maxKeyBytes)
        throw bad(`prefix must be a string of at most ${limits.maxKeyBytes} bytes`);
      if (req['after'] !== undefined) validateKey(req['after'], limits);
      const n = req['limit'];
      if (!isCount(n) || n < 1 || n > MAX_LIST) throw bad(`limit must be a whole number from 1 to ${MAX_LIST}`);
      return;
    }
    case 'count':
      ranges(req['ranges'], MAX_RANGES);
      return;
    case 'purge':
      ranges(req['ranges'], MAX_RANGES);
      if (req['limit'] !== undefined && !(isCount(req['limit']) && req['limit'] >= 1)) throw bad('limit must be a whole number >= 1');
      return;
    case 'import':
      epochField('me', req['me']);
      if (!(req['packed'] instanceof Uint8Array)) throw bad('import needs packed records');
      return;
    case 'ping':
    case 'stats':
    case 'retire':
      return;
  }
}
