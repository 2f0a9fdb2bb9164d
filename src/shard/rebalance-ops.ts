// The rebalancing ops a shard runs for the coordinator (and, for import, for
// a router pulling one key ahead): sync, scan, count, import, purge, retire.
// They are not keyed and not ring-checked per key; each checks what it needs.
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { kvError, kvErrorWith, type KvError } from '../core/errors.js';
import type { Limits } from '../core/config.js';
import type { RequestOf, ResultOf } from '../core/protocol.js';
import { POINT_MAX, type PointRange, type Ring } from '../core/ring.js';
import type { Store } from './store.js';
import { MovedChecker, pointOf, readMoved } from './record.js';
import type { OwnershipView } from './frame-handler.js';

export interface RebalanceOpContext {
  readonly shardId: string;
  readonly store: Store;
  readonly limits: Limits;
  view(): OwnershipView;
  /** Settles when the last write transaction queued so far has committed. */
  lastWrite(): Promise<void>;
  notOwner(view: OwnershipView): KvError;
  retire(): void;
  /** Records deleted per transaction by a purge. */
  readonly purgeBatchKeys: number;
}

const SCAN_DEFAULT_LIMIT = 1000;
const SCAN_MAX_LIMIT = 10_000;
const SCAN_DEFAULT_BYTES = 4 * 1024 * 1024;
const SCAN_MAX_BYTES = 16 * 1024 * 1024;
/** Longest stretch a COUNT holds the event loop before it yields. */
const COUNT_SLICE_MS = 2;
/** Above this many records a COUNT estimates from the ring instead of walking keys. */
const COUNT_EXACT_MAX = 50_000;
/** Records a COUNT estimate samples for the average value size. */
const COUNT_SAMPLE = 64;

function checkRanges(ranges: unknown): PointRange[] {
  if (!Array.isArray(ranges) || ranges.length === 0) throw kvError('KV_ERR_BAD_FRAME', 'ranges must be a non-empty array');
  for (const r of ranges as PointRange[]) {
    if (!Number.isInteger(r?.lo) || !Number.isInteger(r?.hi) || r.lo < 0 || r.hi > POINT_MAX || r.lo > r.hi) {
      throw kvError('KV_ERR_BAD_FRAME', 'bad point range');
    }
  }
  return ranges as PointRange[];
}

/** True when no point in [lo, hi] belongs to `id` in `ring`. */
function ownsNoneOf(ring: Ring, id: string, r: PointRange): boolean {
  if (ring.ownerOfPoint(r.hi) === id) return false;
  for (const p of ring.points()) if (p.id === id && p.point >= r.lo && p.point <= r.hi) return false;
  return true;
}

/**
 * Transactions commit in order: once the last one queued has, every write
 * accepted under an older view has too. Waiting for it is enough (and
 * cheaper than committing an empty one while writes are held).
 */
async function sync(_req: RequestOf<'sync'>, ctx: RebalanceOpContext): Promise<ResultOf<'sync'>> {
  const epoch = ctx.view().epoch;
  await ctx.lastWrite();
  return { epoch };
}

async function scan(req: RequestOf<'scan'>, ctx: RebalanceOpContext): Promise<ResultOf<'scan'>> {
  const [r] = checkRanges(req.ranges);
  const limit = Math.min(Math.max(1, req.limit ?? SCAN_DEFAULT_LIMIT), SCAN_MAX_LIMIT);
  const maxBytes = Math.min(Math.max(1, req.maxBytes ?? SCAN_DEFAULT_BYTES), SCAN_MAX_BYTES);
  const after = Array.isArray(req.after) && typeof req.after[0] === 'number' && typeof req.after[1] === 'string' ? req.after : undefined;
  return ctx.store.scan(r!.lo, r!.hi, after, limit, maxBytes);
}

async function count(req: RequestOf<'count'>, ctx: RebalanceOpContext): Promise<ResultOf<'count'>> {
  const ranges = checkRanges(req.ranges);
  const { store } = ctx;
  const view = ctx.view();
  const records = store.stats().records;
  // The data sits where the ring before a migration put it.
  const share = (view.prevRing ?? view.ring).shares()[ctx.shardId] ?? 0;
  if (records > COUNT_EXACT_MAX && share > 0) {
    // Keys hash uniformly over the ring, so a big shard's keys in some of
    // its arcs are its record count times those arcs' part of what it owns
    // (within a fraction of a percent at this size). Counting them would
    // hold the event loop for milliseconds per 100k keys.
    const span = ranges.reduce((n, r) => n + (r.hi - r.lo + 1), 0) / 2 ** 32;
    const keys = Math.min(records, Math.round((records * span) / share));
    const sample = store.countRange(ranges[0]!.lo, ranges[0]!.hi, COUNT_SAMPLE);
    const avg = sample.keys > 0 ? sample.bytes / sample.keys : 0;
    return { keys, bytes: Math.round(keys * avg), estimated: true };
  }
  let keys = 0;
  let bytes = 0;
  let slice = performance.now();
  for (const r of ranges) {
    const c = store.countRange(r.lo, r.hi);
    keys += c.keys;
    bytes += c.bytes;
    // A plan has dozens of arcs: let foreground requests in between them.
    if (performance.now() - slice > COUNT_SLICE_MS) {
      await yieldToLoop();
      slice = performance.now();
    }
  }
  return { keys, bytes, estimated: false };
}

async function importRecords(req: RequestOf<'import'>, ctx: RebalanceOpContext): Promise<ResultOf<'import'>> {
  const view = ctx.view();
  if (typeof req.me !== 'number' || !(req.packed instanceof Uint8Array)) throw kvError('KV_ERR_BAD_FRAME', 'import needs me and packed records');
  if (view.epoch < req.me) throw kvErrorWith('KV_ERR_STALE_EPOCH', { epoch: view.epoch }, req.me, view.epoch);
  const recs = readMoved(req.packed, ctx.limits.maxKeyBytes);
  const now = Date.now();
  // Every record is checked, and only keys this shard owns now may come in
  // (the whole import is refused otherwise: a bad blob writes nothing).
  const checker = new MovedChecker(ctx.limits, view.epoch, now);
  for (const m of recs) {
    checker.check(m);
    if (view.ring.ownerOfPoint(pointOf(m.key)) !== ctx.shardId) throw ctx.notOwner(view);
  }
  const { store } = ctx;
  const written = await store.transaction(() => store.importManyInTxn(recs, req.me, now));
  return { written, received: recs.length };
}

async function purge(req: RequestOf<'purge'>, ctx: RebalanceOpContext): Promise<ResultOf<'purge'>> {
  const view = ctx.view();
  const ranges = checkRanges(req.ranges);
  const me = ctx.shardId;
  if (view.prevRing) throw kvError('KV_ERR_BAD_TOPOLOGY', 'no purge while a migration is in progress');
  for (const r of ranges) if (!ownsNoneOf(view.ring, me, r)) throw kvError('KV_ERR_BAD_TOPOLOGY', `shard ${me} still owns part of ${r.lo}..${r.hi}`);
  // A limit cuts the purge short (the coordinator paces purges by it); the
  // next call over the same ranges goes on where this one stopped, since
  // what it deleted is gone.
  const limit = req.limit ?? Infinity;
  let purged = 0;
  for (const r of ranges) {
    purged += await ctx.store.purgeRange(r.lo, r.hi, ctx.purgeBatchKeys, limit - purged);
    if (purged >= limit) return { purged, more: true };
  }
  return { purged, more: false };
}

async function retire(_req: RequestOf<'retire'>, ctx: RebalanceOpContext): Promise<ResultOf<'retire'>> {
  const view = ctx.view();
  const me = ctx.shardId;
  if (view.ring.has(me) || view.prevRing?.has(me)) throw kvError('KV_ERR_BAD_TOPOLOGY', `shard ${me} is still in the ring`);
  setImmediate(() => ctx.retire());
  return { retiring: true };
}

export const REBALANCE_OPS = {
  sync: { kind: 'rebalance', run: sync },
  scan: { kind: 'rebalance', run: scan },
  count: { kind: 'rebalance', run: count },
  import: { kind: 'rebalance', run: importRecords },
  purge: { kind: 'rebalance', run: purge },
  retire: { kind: 'rebalance', run: retire },
} as const;
