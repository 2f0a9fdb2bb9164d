// Executes one request frame on the shard: epoch and ownership checks, reads
// straight from LMDB, all writes of the frame in one transaction, and the
// rebalancing ops (rebalance-ops.ts). Each op has one entry in OP_TABLE that
// says which of these three kinds it is and how it runs.
//
// Ownership during a migration (docs/architecture.md, "Routing during a
// migration"): writes only on the owner in the `next` ring, and not at all
// for moving keys during the freeze phase; reads on the next owner or the
// previous owner (the router asks both unless the new owner's record was
// written at or after the migration epoch, and keeps the newer by write
// epoch, then version).
import { kvError, kvErrorWith, toWire, type KvError } from '../core/errors.js';
import { OPS, type Op, type Request, type RequestOf, type Response } from '../core/protocol.js';
import type { Limits } from '../core/config.js';
import type { Ring } from '../core/ring.js';
import type { Store } from './store.js';
import { REBALANCE_OPS, type RebalanceOpContext } from './rebalance-ops.js';
import { checkRequest } from './op-checks.js';

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

type KeyedOp = 'get' | 'fetch' | 'put' | 'del';
type WriteOp = 'put' | 'del';

/** The four kinds of op and what each needs to run. */
type OpSpec<O extends Op> =
  | { kind: 'inline'; run(req: RequestOf<O>, view: OwnershipView, d: HandlerDeps): unknown }
  | { kind: 'read'; run(req: RequestOf<O>, store: Store, now: number): unknown }
  | { kind: 'write'; apply(req: RequestOf<O>, store: Store, epoch: number, now: number): unknown }
  | { kind: 'rebalance'; run(req: RequestOf<O>, ctx: RebalanceOpContext): Promise<unknown> };

const OP_TABLE: { readonly [O in Op]: OpSpec<O> } = {
  ping: { kind: 'inline', run: (_req, view, d) => ({ epoch: view.epoch, id: d.shardId }) },
  stats: {
    kind: 'inline',
    run: (_req, _view, d) => {
      const s = d.store.stats();
      return { records: s.records, bytes: s.bytes };
    },
  },
  get: { kind: 'read', run: (req, store, now) => store.lookup(req.k, now) },
  fetch: { kind: 'read', run: (req, store, now) => store.fetchPacked(req.k, now) },
  put: {
    kind: 'write',
    apply: (req, store, epoch, now) => ({
      ver: store.putInTxn(
        req.k,
        { value: req.v, contentType: req.ct ?? 'application/octet-stream', expiresAt: req.x ?? 0, ifMatch: req.m, ifNoneMatch: req.n, epoch },
        now,
      ),
    }),
  },
  del: { kind: 'write', apply: (req, store, epoch, now) => store.delInTxn(req.k, req.m, now, epoch) },
  sync: REBALANCE_OPS.sync,
  scan: REBALANCE_OPS.scan,
  count: REBALANCE_OPS.count,
  import: REBALANCE_OPS.import,
  purge: REBALANCE_OPS.purge,
  retire: REBALANCE_OPS.retire,
  // Every record in the key range, owned or not: during a migration the
  // router merges the old and the new owner's by (write epoch, version).
  list: { kind: 'inline', run: (req, _view, d) => d.store.list(req.prefix, req.after, req.limit) },
};

function specOf(o: unknown): OpSpec<Op> | undefined {
  // Own keys only: an op named "__proto__" or "toString" is unknown too.
  return typeof o === 'string' && Object.hasOwn(OP_TABLE, o) ? (OP_TABLE[o as Op] as OpSpec<Op>) : undefined;
}

const idOf = (req: unknown): number => (typeof (req as { i?: unknown } | null)?.i === 'number' ? (req as { i: number }).i : -1);

export class FrameHandler {
  readonly #d: HandlerDeps;
  /** Settles when the last write transaction queued so far has committed (or failed). */
  #lastWrite: Promise<void> = Promise.resolve();
  readonly #ctx: RebalanceOpContext;

  constructor(deps: HandlerDeps) {
    this.#d = deps;
    this.#ctx = {
      shardId: deps.shardId,
      store: deps.store,
      limits: deps.limits,
      view: () => deps.view(),
      lastWrite: () => this.#lastWrite,
      notOwner: (view) => this.#notOwner(view),
      retire: () => deps.retire?.(),
    };
  }

  #notOwner(view: OwnershipView): KvError {
    return kvErrorWith('KV_ERR_NOT_OWNER', { epoch: view.epoch }, this.#d.shardId, view.epoch);
  }

  /** Refusal for a keyed request, else undefined. */
  #refusal(req: RequestOf<KeyedOp>, view: OwnershipView): KvError | undefined {
    if (req.e !== view.epoch) {
      // Older router: it must refresh. Newer router: we have not seen that
      // epoch yet even after a refresh; refusing is safe, the router retries.
      return kvErrorWith('KV_ERR_STALE_EPOCH', { epoch: view.epoch }, req.e, view.epoch);
    }
    const me = this.#d.shardId;
    const owner = view.ring.ownerOf(req.k);
    const read = req.o === OPS.GET || req.o === OPS.FETCH;
    if (owner === me && view.frozen && !read && view.prevRing?.ownerOf(req.k) !== me) {
      // Freeze phase: the old owner may not have seen the migration yet.
      return this.#notOwner(view);
    }
    if (owner === me) return undefined;
    if (read && view.prevRing?.ownerOf(req.k) === me) return undefined;
    return this.#notOwner(view);
  }

  async handle(reqs: Request[]): Promise<Response[]> {
    await this.#catchUp(reqs);
    const view = this.#d.view();
    const out: Response[] = [];
    const writes: Array<{ req: RequestOf<WriteOp>; spec: Extract<OpSpec<Op>, { kind: 'write' }> }> = [];
    const later: Array<{ req: Request; spec: Extract<OpSpec<Op>, { kind: 'rebalance' }> }> = [];
    const now = Date.now();
    for (const req of reqs) {
      const id = idOf(req);
      try {
        if (typeof req !== 'object' || req === null || Array.isArray(req)) throw kvError('KV_ERR_BAD_FRAME', 'a request must be a map');
        const spec = specOf(req.o);
        // msgpack may carry the op as a 64-bit integer: a BigInt, which
        // JSON.stringify refuses (that made this refusal KV_ERR_INTERNAL).
        if (!spec)
          throw kvError(
            'KV_ERR_UNKNOWN_OP',
            JSON.stringify(req.o, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
          );
        checkRequest(req as unknown as Record<string, unknown>, req.o, this.#d.limits, now);
        switch (spec.kind) {
          case 'inline':
            out.push({ i: id, r: spec.run(req, view, this.#d) });
            break;
          case 'rebalance':
            later.push({ req, spec });
            break;
          case 'read':
          case 'write': {
            const refusal = this.#refusal(req as RequestOf<KeyedOp>, view);
            if (refusal) throw refusal;
            if (spec.kind === 'read') out.push({ i: id, r: spec.run(req, this.#d.store, now) });
            else writes.push({ req: req as RequestOf<WriteOp>, spec });
            break;
          }
        }
      } catch (err) {
        out.push({ i: id, err: toWire(err) });
      }
    }
    if (writes.length > 0) out.push(...(await this.#commit(writes)));
    // Rebalancing ops run after the frame's writes, one after another.
    for (const { req, spec } of later) {
      try {
        out.push({ i: req.i, r: await spec.run(req, this.#ctx) });
      } catch (err) {
        out.push({ i: idOf(req), err: toWire(err) });
      }
    }
    return out;
  }

  /** A request with a newer epoch than ours (rebalancing ops carry theirs in `me`) makes us re-read the topology first. */
  async #catchUp(reqs: Request[]): Promise<void> {
    let maxEpoch = 0;
    for (const r of reqs) {
      const me = (r as { me?: unknown } | null)?.me;
      const e = Math.max(typeof r?.e === 'number' ? r.e : 0, typeof me === 'number' ? me : 0);
      if (e > maxEpoch) maxEpoch = e;
    }
    if (maxEpoch > this.#d.view().epoch) await this.#d.refresh().catch(() => undefined);
  }

  /** Every write of the frame in one LMDB transaction; answers after the commit. */
  async #commit(writes: Array<{ req: RequestOf<WriteOp>; spec: Extract<OpSpec<Op>, { kind: 'write' }> }>): Promise<Response[]> {
    const store = this.#d.store;
    const txn = store.transaction(() => {
      // Ownership is checked again inside the transaction: the topology may
      // have moved on between the check above and the commit slot.
      const v = this.#d.view();
      const now = Date.now();
      return writes.map(({ req, spec }): Response => {
        try {
          const refusal = this.#refusal(req, v);
          if (refusal) throw refusal;
          return { i: req.i, r: spec.apply(req, store, v.epoch, now) };
        } catch (err) {
          return { i: req.i, err: toWire(err) };
        }
      });
    });
    this.#lastWrite = txn.then(
      () => undefined,
      () => undefined,
    );
    return txn;
  }
}
