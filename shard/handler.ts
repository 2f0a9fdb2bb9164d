// Executes one request frame on the shard: epoch and ownership checks, reads
// straight from LMDB, all writes of the frame in one transaction.
import { kvError, kvErrorWith, toWire, KvError } from '../src/errors.js';
import { OPS, type Request, type Response } from '../src/protocol.js';
import type { Limits } from '../src/config.js';
import { validateKey, validateValue, validateContentType } from '../src/validate.js';
import type { Ring } from '../src/ring.js';
import type { Store } from './store.js';

export interface OwnershipView {
  readonly epoch: number;
  readonly ring: Ring;
}

export interface HandlerDeps {
  readonly shardId: string;
  readonly store: Store;
  readonly limits: Limits;
  /** Current topology view of this shard. */
  view(): OwnershipView;
  /** Re-read the topology (called when a request carries a newer epoch than ours). */
  refresh(): Promise<unknown>;
}

export class FrameHandler {
  readonly #d: HandlerDeps;

  constructor(deps: HandlerDeps) {
    this.#d = deps;
  }

  /** Refusal for a request routed with another epoch or to the wrong owner, else undefined. */
  #refusal(req: Request, view: OwnershipView): KvError | undefined {
    if (req.e !== view.epoch) {
      // Older router: it must refresh. Newer router: we have not seen that
      // epoch yet even after a refresh; refusing is safe, the router retries.
      return kvErrorWith('KV_ERR_STALE_EPOCH', { epoch: view.epoch }, req.e, view.epoch);
    }
    if (view.ring.ownerOf(req.k!) !== this.#d.shardId) {
      return kvErrorWith('KV_ERR_NOT_OWNER', { epoch: view.epoch }, this.#d.shardId, view.epoch);
    }
    return undefined;
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
    for (const r of reqs) if (typeof r?.e === 'number' && r.e > maxEpoch) maxEpoch = r.e;
    if (maxEpoch > this.#d.view().epoch) await this.#d.refresh().catch(() => undefined);

    const view = this.#d.view();
    const writes: Request[] = [];
    const now = Date.now();
    for (const req of reqs) {
      const id = typeof req?.i === 'number' ? req.i : -1;
      try {
        if (req.o === OPS.PING) { out.push({ i: id, r: { epoch: view.epoch, id: this.#d.shardId } }); continue; }
        if (req.o !== OPS.GET && req.o !== OPS.PUT && req.o !== OPS.DEL) throw kvError('KV_ERR_UNKNOWN_OP', JSON.stringify(req.o));
        this.#check(req);
        const refusal = this.#refusal(req, view);
        if (refusal) throw refusal;
        if (req.o === OPS.GET) {
          out.push({ i: id, r: this.#d.store.get(req.k!, now) });
        } else {
          writes.push(req);
        }
      } catch (err) {
        out.push({ i: id, err: toWire(err) });
      }
    }
    if (writes.length > 0) {
      const results = await this.#d.store.transaction(() => {
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
                ifMatch: req.m, ifNoneMatch: req.n,
              }, txnNow);
              return { i: req.i, r: { ver } };
            }
            return { i: req.i, r: this.#d.store.delInTxn(req.k!, req.m, txnNow) };
          } catch (err) {
            return { i: req.i, err: toWire(err) };
          }
        });
      });
      out.push(...results);
    }
    return out;
  }
}
