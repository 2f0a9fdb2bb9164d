// Executes one request frame on the shard: epoch and ownership checks, reads
// straight from LMDB, all writes of the frame in one transaction (shared with
// the writes of other frames that arrive while the previous one commits:
// group commit, below), and the rebalancing ops (rebalance-ops.ts). Each op
// has one entry in OP_TABLE that says which of these four kinds it is and how
// it runs.
//
// Ownership during a migration (docs/architecture.md, "Routing during a
// migration"): writes only on the owner in the `next` ring, and not at all
// for moving keys during the freeze phase; reads on the next owner or the
// previous owner (the router asks both unless the new owner's record was
// written at or after the migration epoch, and keeps the newer by write
// epoch, then version).
import { kvError, kvErrorWith, toWire, type KvError } from '../core/errors.js';
import { DelAnswer, GetAnswer, OPS, PutAnswer, opOfTag, type Op, type Request, type RequestOf, type Response } from '../core/protocol.js';
import { SHARD_DEFAULTS, type Limits } from '../core/config.js';
import { keyPoint, type Ring } from '../core/ring.js';
import type { Store } from './store.js';
import { REBALANCE_OPS, type RebalanceOpContext } from './rebalance-ops.js';
import { checkRequest } from './op-checks.js';
import { BucketCounts } from '../infra/prom.js';

/** Requests-per-frame histogram bounds. */
export const FRAME_SIZE_BOUNDS = [1, 2, 4, 8, 16, 32, 64, 128] as const;
/** Commit latency histogram bounds, in ms. */
export const COMMIT_BOUNDS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000] as const;

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
  /** Records a PURGE deletes per transaction (shard option purgeBatchKeys). */
  readonly purgeBatchKeys?: number;
}

type KeyedOp = 'get' | 'fetch' | 'put' | 'del';
type WriteOp = 'put' | 'del';

/**
 * The four kinds of op and what each needs to run. Keyed ops get the key's
 * ring point, hashed once per request and used for the ownership checks and
 * the store's record key alike.
 */
type OpSpec<O extends Op> =
  | { kind: 'inline'; run(req: RequestOf<O>, view: OwnershipView, d: HandlerDeps): unknown }
  | { kind: 'read'; run(req: RequestOf<O>, point: number, store: Store, now: number): Response }
  | { kind: 'write'; apply(req: RequestOf<O>, point: number, store: Store, epoch: number, now: number): Response }
  | { kind: 'rebalance'; run(req: RequestOf<O>, ctx: RebalanceOpContext): Promise<unknown> };

const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

const OP_TABLE: { readonly [O in Op]: OpSpec<O> } = {
  ping: { kind: 'inline', run: (_req, view, d) => ({ epoch: view.epoch, id: d.shardId }) },
  stats: {
    kind: 'inline',
    run: (_req, _view, d) => {
      const s = d.store.stats();
      return { records: s.records, bytes: s.bytes };
    },
  },
  get: { kind: 'read', run: (req, point, store, now) => new GetAnswer(req.i, store.lookup(req.k, now, point)) },
  fetch: { kind: 'read', run: (req, point, store, now) => ({ i: req.i, r: store.fetchPacked(req.k, now, point) }) },
  put: {
    kind: 'write',
    apply: (req, point, store, epoch, now) =>
      new PutAnswer(req.i, {
        ver: store.putInTxn(
          req.k,
          { value: req.v, contentType: req.ct ?? DEFAULT_CONTENT_TYPE, expiresAt: req.x ?? 0, ifMatch: req.m, ifNoneMatch: req.n, epoch },
          now,
          point,
        ),
      }),
  },
  del: { kind: 'write', apply: (req, point, store, epoch, now) => new DelAnswer(req.i, store.delInTxn(req.k, req.m, now, epoch, point)) },
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

type WriteSpec = Extract<OpSpec<Op>, { kind: 'write' }>;

function specOf(o: unknown): OpSpec<Op> | undefined {
  // Own keys only: an op named "__proto__" or "toString" is unknown too.
  return typeof o === 'string' && Object.hasOwn(OP_TABLE, o) ? (OP_TABLE[o as Op] as OpSpec<Op>) : undefined;
}

const isId = (v: unknown): v is number => typeof v === 'number';
/** The id to answer a request with: its `i`, or position 1 of a positional request the decoder left as an array. */
const idOf = (req: unknown): number => {
  if (Array.isArray(req)) return isId(req[1]) ? req[1] : -1;
  const i = (req as { i?: unknown } | null)?.i;
  return isId(i) ? i : -1;
};

/** Why a request that is not a map is refused: the decoder left it as it came when it is no positional get/put/del. */
function notAMap(req: unknown): KvError {
  const op = Array.isArray(req) ? opOfTag(req[0]) : undefined;
  if (op === undefined) return kvError('KV_ERR_BAD_FRAME', 'a request must be a map or a positional get/put/del (tag 1, 2 or 3)');
  return kvError('KV_ERR_BAD_FRAME', `a positional ${op} request has the wrong number of fields (${(req as unknown[]).length})`);
}

/**
 * Writes waiting for a commit slot, and the promise every frame that queued
 * one awaits. `results` fills in queue order when the transaction runs.
 */
interface WriteBatch {
  readonly reqs: Array<RequestOf<WriteOp>>;
  readonly points: number[];
  readonly specs: WriteSpec[];
  readonly results: Response[];
  readonly done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function newBatch(): WriteBatch {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { reqs: [], points: [], specs: [], results: [], done, resolve, reject };
}

/**
 * Group commit: at most one write transaction of this handler is in flight.
 * Writes of frames that arrive meanwhile (on any connection) queue in the
 * next batch, which starts as soon as the current one has committed, so
 * under load one commit (and its fdatasync and thread wakeups) serves every
 * write that arrived while the previous one was committing. A write is still
 * answered only after the transaction holding it has committed.
 */
export class FrameHandler {
  readonly #d: HandlerDeps;
  /** Settles when the last write batch queued so far has committed (or failed). */
  #lastWrite: Promise<void> = Promise.resolve();
  /** Writes queued for the next transaction. */
  #open: WriteBatch | undefined;
  #committing = false;
  readonly #ctx: RebalanceOpContext;
  /** Transactions committed and writes they held, for stats (writes per commit). */
  readonly counters = { commits: 0, writes: 0 };
  /** For metrics: frames run, their sizes, requests by op, and the group commits' latency (ms from start to commit). */
  readonly frames = { count: 0, sizes: new BucketCounts(FRAME_SIZE_BOUNDS), commitMs: new BucketCounts(COMMIT_BOUNDS_MS) };
  readonly opCounts = Object.fromEntries(Object.keys(OP_TABLE).map((o) => [o, 0])) as Record<Op, number>;

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
      purgeBatchKeys: deps.purgeBatchKeys ?? SHARD_DEFAULTS.purgeBatchKeys,
    };
  }

  #notOwner(view: OwnershipView): KvError {
    return kvErrorWith('KV_ERR_NOT_OWNER', { epoch: view.epoch }, this.#d.shardId, view.epoch);
  }

  /** Refusal for a keyed request whose key is at ring `point`, else undefined. */
  #refusal(req: RequestOf<KeyedOp>, point: number, view: OwnershipView): KvError | undefined {
    if (req.e !== view.epoch) {
      // Older router: it must refresh. Newer router: we have not seen that
      // epoch yet even after a refresh; refusing is safe, the router retries.
      return kvErrorWith('KV_ERR_STALE_EPOCH', { epoch: view.epoch }, req.e, view.epoch);
    }
    const me = this.#d.shardId;
    const owner = view.ring.ownerOfPoint(point);
    const read = req.o === OPS.GET || req.o === OPS.FETCH;
    if (owner === me && view.frozen && !read && view.prevRing?.ownerOfPoint(point) !== me) {
      // Freeze phase: the old owner may not have seen the migration yet.
      return this.#notOwner(view);
    }
    if (owner === me) return undefined;
    if (read && view.prevRing?.ownerOfPoint(point) === me) return undefined;
    return this.#notOwner(view);
  }

  async handle(reqs: Request[]): Promise<Response[]> {
    this.frames.count++;
    this.frames.sizes.observe(reqs.length);
    if (this.#behind(reqs)) await this.#d.refresh().catch(() => undefined);
    const view = this.#d.view();
    const out: Response[] = [];
    let batch: WriteBatch | undefined;
    let first = 0;
    let later: Array<{ req: Request; spec: Extract<OpSpec<Op>, { kind: 'rebalance' }> }> | undefined;
    const now = Date.now();
    for (const req of reqs) {
      try {
        if (typeof req !== 'object' || req === null || Array.isArray(req)) throw notAMap(req);
        const spec = specOf(req.o);
        // msgpack may carry the op as a 64-bit integer: a BigInt, which
        // JSON.stringify refuses (that made this refusal KV_ERR_INTERNAL).
        if (!spec)
          throw kvError(
            'KV_ERR_UNKNOWN_OP',
            JSON.stringify(req.o, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
          );
        this.opCounts[req.o]++;
        checkRequest(req as unknown as Record<string, unknown>, req.o, this.#d.limits, now);
        switch (spec.kind) {
          case 'inline':
            out.push({ i: req.i, r: spec.run(req, view, this.#d) });
            break;
          case 'rebalance':
            (later ??= []).push({ req, spec });
            break;
          case 'read':
          case 'write': {
            const keyed = req as RequestOf<KeyedOp>;
            const point = keyPoint(keyed.k);
            const refusal = this.#refusal(keyed, point, view);
            if (refusal) throw refusal;
            if (spec.kind === 'read') out.push(spec.run(req, point, this.#d.store, now));
            else {
              if (!batch) {
                batch = this.#open ??= this.#newOpenBatch();
                first = batch.reqs.length;
              }
              batch.reqs.push(keyed as RequestOf<WriteOp>);
              batch.points.push(point);
              batch.specs.push(spec);
            }
            break;
          }
        }
      } catch (err) {
        out.push({ i: idOf(req), err: toWire(err) });
      }
    }
    if (batch) {
      if (!this.#committing) this.#commitNext();
      const count = batch.reqs.length - first;
      await batch.done;
      for (let j = first; j < first + count; j++) out.push(batch.results[j]!);
    }
    // Rebalancing ops run after the frame's writes, one after another.
    if (later)
      for (const { req, spec } of later) {
        try {
          out.push({ i: req.i, r: await spec.run(req, this.#ctx) });
        } catch (err) {
          out.push({ i: idOf(req), err: toWire(err) });
        }
      }
    return out;
  }

  /** A request with a newer epoch than ours (rebalancing ops carry theirs in `me`): re-read the topology first. */
  #behind(reqs: Request[]): boolean {
    const epoch = this.#d.view().epoch;
    for (const r of reqs) {
      if (typeof r !== 'object' || r === null) continue;
      if (typeof r.e === 'number' && r.e > epoch) return true;
      const me = (r as { me?: unknown }).me;
      if (typeof me === 'number' && me > epoch) return true;
    }
    return false;
  }

  #newOpenBatch(): WriteBatch {
    const b = newBatch();
    // Batches commit in order: once the newest has settled, every earlier one has.
    this.#lastWrite = b.done.then(
      () => undefined,
      () => undefined,
    );
    return b;
  }

  /**
   * Start the transaction of the open batch. Its callback takes the batch
   * only when LMDB runs it, so writes queued until then (the rest of this
   * event turn) join it too; writes queued after that wait for the next one.
   */
  #commitNext(): void {
    this.#committing = true;
    const store = this.#d.store;
    let taken: WriteBatch | undefined;
    const started = performance.now();
    store
      .transaction(() => {
        taken = this.#open;
        this.#open = undefined;
        if (taken) this.#apply(taken);
      })
      .then(
        () => {
          if (taken) {
            this.frames.commitMs.observe(performance.now() - started);
            this.counters.commits++;
            this.counters.writes += taken.reqs.length;
            taken.resolve();
          }
        },
        (err: unknown) => {
          // A failed transaction wrote nothing; every write in it is refused
          // (or, if it failed before it ran, the batch it would have taken).
          const failed = taken ?? this.#open;
          if (failed === this.#open) this.#open = undefined;
          failed?.reject(err);
        },
      )
      .finally(() => {
        this.#committing = false;
        if (this.#open) this.#commitNext();
      });
  }

  /** Inside the transaction: ownership is checked again, the topology may have moved on since the frame was read. */
  #apply(b: WriteBatch): void {
    const store = this.#d.store;
    const v = this.#d.view();
    const now = Date.now();
    for (let j = 0; j < b.reqs.length; j++) {
      const req = b.reqs[j]!;
      const point = b.points[j]!;
      try {
        const refusal = this.#refusal(req, point, v);
        if (refusal) throw refusal;
        b.results.push(b.specs[j]!.apply(req, point, store, v.epoch, now));
      } catch (err) {
        b.results.push({ i: req.i, err: toWire(err) });
      }
    }
  }
}
