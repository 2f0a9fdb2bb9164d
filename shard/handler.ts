// Executes one request frame on the shard: epoch and ownership checks, reads
// straight from LMDB, all writes of the frame in one transaction, and the
// rebalancing operations (sync, scan, count, import, purge, retire).
//
// Ownership during a migration (DESIGN section 5.2): writes only on the
// owner in the `next` ring, and not at all for moving keys during the freeze
// phase; reads on the next owner or the previous owner (the router asks both
// unless the new owner's record was written at or after the migration epoch,
// and keeps the newer by write epoch, then version).
import { kvError, kvErrorWith, toWire, KvError } from '../src/errors.js';
import { OPS, type Request, type Response } from '../src/protocol.js';
import type { Limits } from '../src/config.js';
import { validateKey, validateValue, validateContentType } from '../src/validate.js';
import type { Ring } from '../src/ring.js';
import type { PointRange } from '../src/migration.js';
import type { Store } from './store.js';
import { pointOf, readMoved } from './record.js';

export interface OwnershipView {
  readonly epoch: number;
  /** The ring keys belong to (during a migration: the `next` ring). */
  readonly ring: Ring;
  /** During a migration: the ring before it. */
  readonly prevRing?: Ring | undefined;
  /** Migration in its freeze phase: no writes for moving keys anywhere. */
  readonly frozen?: boolean | undefined;
}

export interface HandlerDeps {
  readonly shardId: string;
  readonly store: Store;
  readonly limits: Limits;
  /** Current topology view of this shard. */
  view(): OwnershipView;
  /** Re-read the topology (called when a request carries a newer epoch than ours). */
  refresh(): Promise<unknown>;
  /** Called for a RETIRE request (deregister and stop). */
  retire?(): void;
}

const SCAN_MAX_LIMIT = 10_000;
const SCAN_MAX_BYTES = 16 * 1024 * 1024;
/** Longest stretch a COUNT holds the event loop before it yields. */
const COUNT_SLICE_MS = 2;
/** Above this many records a COUNT estimates from the ring instead of walking keys. */
const COUNT_EXACT_MAX = 50_000;
const ADMIN_OPS = new Set<string>([OPS.SYNC, OPS.SCAN, OPS.COUNT, OPS.IMPORT, OPS.PURGE, OPS.RETIRE]);

function checkRanges(ranges: unknown): PointRange[] {
  if (!Array.isArray(ranges) || ranges.length === 0) throw kvError('KV_ERR_BAD_FRAME', 'ranges must be a non-empty array');
  for (const r of ranges as PointRange[]) {
    if (!Number.isInteger(r?.lo) || !Number.isInteger(r?.hi) || r.lo < 0 || r.hi > 0xffffffff || r.lo > r.hi) {
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

export class FrameHandler {
  readonly #d: HandlerDeps;
  /** Settles when the last write transaction queued so far has committed (or failed). */
  #lastWrite: Promise<void> = Promise.resolve();

  constructor(deps: HandlerDeps) {
    this.#d = deps;
  }

  #stale(req: Request, view: OwnershipView): KvError | undefined {
    if (req.e !== view.epoch) {
      // Older router: it must refresh. Newer router: we have not seen that
      // epoch yet even after a refresh; refusing is safe, the router retries.
      return kvErrorWith('KV_ERR_STALE_EPOCH', { epoch: view.epoch }, req.e, view.epoch);
    }
    return undefined;
  }

  #notOwner(view: OwnershipView): KvError {
    return kvErrorWith('KV_ERR_NOT_OWNER', { epoch: view.epoch }, this.#d.shardId, view.epoch);
  }

  /** Refusal for a keyed request, else undefined. */
  #refusal(req: Request, view: OwnershipView): KvError | undefined {
    const stale = this.#stale(req, view);
    if (stale) return stale;
    const me = this.#d.shardId;
    const owner = view.ring.ownerOf(req.k!);
    if (owner === me && view.frozen && req.o !== OPS.GET && req.o !== OPS.FETCH && view.prevRing?.ownerOf(req.k!) !== me) {
      // Freeze phase: the old owner may not have seen the migration yet.
      return this.#notOwner(view);
    }
    if (owner === me) return undefined;
    if ((req.o === OPS.GET || req.o === OPS.FETCH) && view.prevRing?.ownerOf(req.k!) === me) return undefined;
    return this.#notOwner(view);
  }

  #check(req: Request): void {
    if (typeof req !== 'object' || req === null || typeof req.i !== 'number') throw kvError('KV_ERR_BAD_FRAME', 'request without id');
    if (typeof req.e !== 'number') throw kvError('KV_ERR_BAD_FRAME', 'request without epoch');
    validateKey(req.k, this.#d.limits);
    if (req.o === OPS.PUT) {
      if (!(req.v instanceof Uint8Array)) throw kvError('KV_ERR_BAD_FRAME', 'put without value bytes');
      validateValue(req.v, this.#d.limits);
      validateContentType(req.ct, this.#d.limits);
      if (req.x !== undefined && !(Number.isSafeInteger(req.x) && req.x >= 0)) throw kvError('KV_ERR_BAD_FRAME', 'bad expiry');
      // Allow a minute of clock difference between router and shard.
      if (req.x !== undefined && req.x > Date.now() + this.#d.limits.maxTtlSeconds * 1000 + 60_000) {
        throw kvError('KV_ERR_BAD_TTL', this.#d.limits.maxTtlSeconds, `an expiry ${req.x - Date.now()} ms away`);
      }
    }
  }

  async handle(reqs: Request[]): Promise<Response[]> {
    const out: Response[] = [];
    let maxEpoch = 0;
    for (const r of reqs) {
      // Rebalancing requests carry the epoch they need in `me`.
      const e = Math.max(typeof r?.e === 'number' ? r.e : 0, typeof r?.me === 'number' ? r.me : 0);
      if (e > maxEpoch) maxEpoch = e;
    }
    if (maxEpoch > this.#d.view().epoch) await this.#d.refresh().catch(() => undefined);

    const view = this.#d.view();
    const writes: Request[] = [];
    const admin: Request[] = [];
    const now = Date.now();
    for (const req of reqs) {
      const id = typeof req?.i === 'number' ? req.i : -1;
      try {
        if (req.o === OPS.PING) { out.push({ i: id, r: { epoch: view.epoch, id: this.#d.shardId } }); continue; }
        if (ADMIN_OPS.has(req.o)) { admin.push(req); continue; }
        if (req.o !== OPS.GET && req.o !== OPS.PUT && req.o !== OPS.DEL && req.o !== OPS.FETCH) throw kvError('KV_ERR_UNKNOWN_OP', JSON.stringify(req.o));
        this.#check(req);
        const refusal = this.#refusal(req, view);
        if (refusal) throw refusal;
        if (req.o === OPS.GET) {
          out.push({ i: id, r: this.#d.store.lookup(req.k!, now) });
        } else if (req.o === OPS.FETCH) {
          out.push({ i: id, r: this.#d.store.fetchPacked(req.k!, now) });
        } else {
          writes.push(req);
        }
      } catch (err) {
        out.push({ i: id, err: toWire(err) });
      }
    }
    if (writes.length > 0) {
      const txn = this.#d.store.transaction(() => {
        // Ownership is checked again inside the transaction: the topology may
        // have moved on between the read above and the commit slot.
        const v = this.#d.view();
        const txnNow = Date.now();
        return writes.map((req): Response => {
          try {
            const refusal = this.#refusal(req, v);
            if (refusal) throw refusal;
            if (req.o === OPS.PUT) {
              const ver = this.#d.store.putInTxn(req.k!, {
                value: req.v!, contentType: req.ct ?? 'application/octet-stream', expiresAt: req.x ?? 0,
                ifMatch: req.m, ifNoneMatch: req.n, epoch: v.epoch,
              }, txnNow);
              return { i: req.i, r: { ver } };
            }
            return { i: req.i, r: this.#d.store.delInTxn(req.k!, req.m, txnNow, v.epoch) };
          } catch (err) {
            return { i: req.i, err: toWire(err) };
          }
        });
      });
      this.#lastWrite = txn.then(() => undefined, () => undefined);
      out.push(...(await txn));
    }
    for (const req of admin) {
      try {
        out.push({ i: req.i, r: await this.#admin(req) });
      } catch (err) {
        out.push({ i: typeof req?.i === 'number' ? req.i : -1, err: toWire(err) });
      }
    }
    return out;
  }

  async #admin(req: Request): Promise<unknown> {
    const store = this.#d.store;
    const me = this.#d.shardId;
    switch (req.o) {
      case OPS.SYNC: {
        // Transactions commit in order: once the last one queued has, every
        // write accepted under an older view has too.
        // Waiting for the last write transaction queued is enough (and
        // cheaper than committing an empty one while writes are held).
        const epoch = this.#d.view().epoch;
        await this.#lastWrite;
        return { epoch };
      }
      case OPS.SCAN: {
        const [r] = checkRanges(req.ranges);
        const limit = Math.min(Math.max(1, req.limit ?? 1000), SCAN_MAX_LIMIT);
        const maxBytes = Math.min(Math.max(1, req.maxBytes ?? 4 * 1024 * 1024), SCAN_MAX_BYTES);
        const after = Array.isArray(req.after) && typeof req.after[0] === 'number' && typeof req.after[1] === 'string' ? req.after : undefined;
        return store.scan(r!.lo, r!.hi, after, limit, maxBytes);
      }
      case OPS.COUNT: {
        const ranges = checkRanges(req.ranges);
        const view = this.#d.view();
        const records = store.stats().records;
        // The data sits where the ring before a migration put it.
        const share = (view.prevRing ?? view.ring).shares()[me] ?? 0;
        if (records > COUNT_EXACT_MAX && share > 0) {
          // Keys hash uniformly over the ring, so a big shard's keys in some
          // of its arcs are its record count times those arcs' part of what
          // it owns (within a fraction of a percent at this size). Counting
          // them would hold the event loop for milliseconds per 100k keys.
          const span = ranges.reduce((n, r) => n + (r.hi - r.lo + 1), 0) / 2 ** 32;
          const keys = Math.min(records, Math.round((records * span) / share));
          const sample = store.countRange(ranges[0]!.lo, ranges[0]!.hi, 64);
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
            await new Promise((resolve) => setImmediate(resolve));
            slice = performance.now();
          }
        }
        return { keys, bytes, estimated: false };
      }
      case OPS.IMPORT: {
        const view = this.#d.view();
        if (typeof req.me !== 'number' || !(req.packed instanceof Uint8Array)) throw kvError('KV_ERR_BAD_FRAME', 'import needs me and packed records');
        if (view.epoch < req.me) throw kvErrorWith('KV_ERR_STALE_EPOCH', { epoch: view.epoch }, req.me, view.epoch);
        const recs = readMoved(req.packed, this.#d.limits.maxKeyBytes);
        // Only keys this shard owns now may come in. The point is the one the
        // source computed when the key was written; it is not re-hashed here.
        for (const m of recs) if (view.ring.ownerOfPoint(pointOf(m.key)) !== me) throw this.#notOwner(view);
        const written = await store.transaction(() => {
          const now = Date.now();
          let n = 0;
          for (const m of recs) if (store.importInTxn(m.key, m.value, req.me!, now)) n++;
          return n;
        });
        return { written, received: recs.length };
      }
      case OPS.PURGE: {
        const view = this.#d.view();
        const ranges = checkRanges(req.ranges);
        if (view.prevRing) throw kvError('KV_ERR_BAD_TOPOLOGY', 'no purge while a migration is in progress');
        for (const r of ranges) if (!ownsNoneOf(view.ring, me, r)) throw kvError('KV_ERR_BAD_TOPOLOGY', `shard ${me} still owns part of ${r.lo}..${r.hi}`);
        let purged = 0;
        for (const r of ranges) purged += await store.purgeRange(r.lo, r.hi);
        return { purged };
      }
      case OPS.RETIRE: {
        const view = this.#d.view();
        if (view.ring.has(me) || view.prevRing?.has(me)) throw kvError('KV_ERR_BAD_TOPOLOGY', `shard ${me} is still in the ring`);
        setImmediate(() => this.#d.retire?.());
        return { retiring: true };
      }
      default:
        throw kvError('KV_ERR_UNKNOWN_OP', JSON.stringify(req.o));
    }
  }
}
