// The z-axis lookup: ring owner of a key at the current epoch, then the
// request over that shard's connection. Refusals that mean "your topology is
// behind" or "not yet" each have a named handler, apart from the send path
// (as ioredis' cluster client handles MOVED and ASK):
//
//  - KV_ERR_STALE_EPOCH / KV_ERR_NOT_OWNER: re-read the topology and retry, a
//    bounded number of times (like Redis Cluster's MOVED);
//  - a write to a key that moves, during the freeze phase of a migration: hold
//    it until the coordinator opens the move (not counted as a retry);
//  - a read whose connection was lost before the answer: one more try (a read
//    has no side effect; not counted either).
import { setTimeout as sleep } from 'node:timers/promises';
import { kvError, KvError } from '../core/errors.js';
import { OPS, type Body, type GetResult, type ResultOf, type StoredValue } from '../core/protocol.js';
import { ringOf, shardById, type Topology, type TopologySource } from '../core/topology.js';
import { Ring, keyPoint } from '../core/ring.js';
import { ShardConnection, type ShardConnectionOptions } from '../infra/shard-client.js';
import { redisReason } from '../infra/redis-reason.js';
import { live, newer } from '../rebalance/read-merge.js';
import { ForwardStats } from './request-metrics.js';

export interface ForwarderOptions extends ShardConnectionOptions {
  readonly maxRetries: number;
  /** Pause before retrying a refusal from a shard that already runs a newer epoch than Redis shows us. */
  readonly epochRetryDelayMs: number;
}

/** The ops a client request becomes: one key each. */
export type KeyedBody = Body<'get'> | Body<'put'> | Body<'del'>;

/** How often waiting requests re-read the topology in case a pub/sub message is late. */
const WAITER_POLL_MS = 25;
/** A connection to a shard that left the topology closes once it has nothing in flight. */
const IDLE_CLOSE_POLL_MS = 100;

/** What one request has used up of its allowances. */
interface Attempt {
  readonly point: number;
  readonly deadline: number;
  refusals: number;
  readRetried: boolean;
}

/** The topology the forwarder routes with, and its rings. */
interface View {
  readonly topology: Topology;
  readonly ring: Ring;
  /** During a migration: the ring before it (reads fall back to its owner). */
  readonly prevRing: Ring | undefined;
}

export class Forwarder {
  readonly #watcher: TopologySource;
  readonly #opts: ForwarderOptions;
  readonly #conns = new Map<string, ShardConnection>();
  #view: View | undefined;
  readonly counters = { retries: 0, fallbackReads: 0, pulledAhead: 0 };
  /** Requests held until the topology passes an epoch (moving-key writes during a freeze). */
  readonly #epochWaiters = new Set<{ epoch: number; wake: () => void }>();
  #waitPoll: NodeJS.Timeout | undefined;
  /** Per shard id, what its requests took and how they failed; kept across reconnects. Undefined: not recorded. */
  readonly forwardStats: Map<string, ForwardStats> | undefined;

  /** `recordForwards`: keep forwardStats (the router's requestMetrics option). */
  constructor(watcher: TopologySource, opts: ForwarderOptions, recordForwards = false) {
    this.#watcher = watcher;
    this.#opts = opts;
    this.forwardStats = recordForwards ? new Map() : undefined;
    watcher.on('change', (t: Topology) => this.#apply(t));
    if (watcher.current) this.#apply(watcher.current);
  }

  get topology(): Topology | undefined {
    return this.#view?.topology;
  }

  #apply(t: Topology): void {
    this.#view = { topology: t, ring: ringOf(t), prevRing: t.migration ? Ring.of(t.migration.prev) : undefined };
    for (const w of this.#epochWaiters) {
      if (t.epoch > w.epoch) {
        this.#epochWaiters.delete(w);
        w.wake();
      }
    }
    // Drop connections to shards that left or moved to new addresses.
    for (const [id, conn] of this.#conns) {
      const s = shardById(t, id);
      if (!s || s.dataAddr !== conn.addr) {
        this.#conns.delete(id);
        // Let requests already in flight on it finish; close once idle.
        const closeWhenIdle = () => (conn.inFlight === 0 ? conn.close() : setTimeout(closeWhenIdle, IDLE_CLOSE_POLL_MS).unref());
        closeWhenIdle();
      }
    }
  }

  /** The connection to shard `id` (created on first use). */
  connection(id: string): ShardConnection {
    const t = this.#view?.topology;
    if (!t) throw kvError('KV_ERR_NOT_READY', 'topology not loaded yet');
    return this.#conn(t, id);
  }

  #conn(t: Topology, id: string): ShardConnection {
    let c = this.#conns.get(id);
    if (c) return c;
    const s = shardById(t, id);
    if (!s) throw kvError('KV_ERR_SHARD_UNAVAILABLE', id, 'not in the topology');
    let rec: ForwardStats | undefined;
    if (this.forwardStats) {
      rec = this.forwardStats.get(id);
      if (!rec) this.forwardStats.set(id, (rec = new ForwardStats()));
    }
    c = new ShardConnection(id, s.dataAddr, this.#opts, rec);
    this.#conns.set(id, c);
    return c;
  }

  /** Send one keyed request to its owner; refusals go to their handlers. */
  exec(req: Body<'get'>): Promise<StoredValue | null>;
  exec(req: Body<'put'>): Promise<ResultOf<'put'>>;
  exec(req: Body<'del'>): Promise<ResultOf<'del'>>;
  exec(req: KeyedBody): Promise<unknown> {
    // The key is hashed once per request, whatever the retries and rings.
    const point = keyPoint(req.k);
    const started = Date.now();
    const v = this.#view;
    // Outside a migration a request is one send to the ring owner, with no
    // awaits of its own; a refusal takes the general loop below from where
    // this try left off, as its first attempt.
    if (v && !v.topology.migration) {
      const owner = v.ring.ownerOfPoint(point);
      if (owner !== undefined) {
        const t = v.topology;
        let sent: Promise<unknown>;
        try {
          sent = this.#conn(t, owner).keyed(req, t.epoch);
        } catch (err) {
          // Never a throw from here: callers hold resources until the promise settles.
          return this.#loop(req, this.#attempt(point, started), err, v);
        }
        return req.o === OPS.GET
          ? sent.then(live as (r: unknown) => StoredValue | null, (err: unknown) => this.#loop(req, this.#attempt(point, started), err, v))
          : sent.catch((err: unknown) => this.#loop(req, this.#attempt(point, started), err, v));
      }
    }
    return this.#loop(req, this.#attempt(point, started));
  }

  #attempt(point: number, started: number): Attempt {
    return { point, deadline: started + this.#opts.requestTimeoutMs, refusals: 0, readRetried: false };
  }

  /** The general path: freeze waits, migration reads and writes, and the refusal handlers. `failed`: the error of an attempt already made with view `tried`. */
  async #loop(req: KeyedBody, a: Attempt, failed?: unknown, tried?: View): Promise<unknown> {
    if (failed !== undefined) await this.#onRefusal(failed, req, tried!, a);
    for (;;) {
      const v = this.#view;
      if (!v) throw kvError('KV_ERR_NOT_READY', 'topology not loaded yet');
      const owner = v.ring.ownerOfPoint(a.point);
      if (owner === undefined) throw kvError('KV_ERR_NO_SHARDS');
      if (req.o !== OPS.GET && this.#frozen(v, a.point, owner)) {
        await this.#waitForMove(v.topology.epoch, a.deadline);
        continue;
      }
      try {
        return req.o === OPS.GET ? await this.#read(req, v, a.point, owner) : await this.#write(req, v, a.point, owner);
      } catch (err) {
        await this.#onRefusal(err, req, v, a);
      }
    }
  }

  /** A failed attempt: returns when the request should be tried again, or throws what the caller gets. */
  async #onRefusal(err: unknown, req: KeyedBody, v: View, a: Attempt): Promise<void> {
    if (!(err instanceof KvError)) throw err;
    if (err.code === 'KV_ERR_STALE_EPOCH' || err.code === 'KV_ERR_NOT_OWNER') await this.#onStale(err, v, a);
    else if (err.code === 'KV_ERR_OUTCOME_UNKNOWN' && req.o === OPS.GET && !a.readRetried) a.readRetried = true;
    else throw err;
  }

  /** A key that moves, while the migration is in its freeze phase: nobody takes writes for it. */
  #frozen(v: View, point: number, owner: string): boolean {
    return v.topology.migration?.phase === 'freeze' && v.prevRing?.ownerOfPoint(point) !== owner;
  }

  async #write(req: Body<'put'> | Body<'del'>, v: View, point: number, owner: string): Promise<unknown> {
    const t = v.topology;
    if (req.o === OPS.DEL || req.m !== undefined || req.n) await this.#pullAhead(v, req.k, point, owner);
    return this.#conn(t, owner).keyed(req, t.epoch);
  }

  async #read(req: Body<'get'>, v: View, point: number, owner: string): Promise<StoredValue | null> {
    const t = v.topology;
    const m = t.migration;
    const prevOwner = m ? v.prevRing?.ownerOfPoint(point) : undefined;
    // A moving key during a migration: the old owner is asked at the same
    // time as the new one, so the fallback below costs no extra round trip.
    const fromOld = prevOwner !== undefined && prevOwner !== owner ? this.#conn(t, prevOwner).keyed(req, t.epoch) : undefined;
    fromOld?.catch(() => undefined);
    const res: GetResult = await this.#conn(t, owner).keyed(req, t.epoch);
    // Outside a migration, or a key that does not move, or a record written
    // at or after the migration began: the new owner has the newest state
    // (the old owner refuses writes for moving keys).
    if (!m || !fromOld || (res !== null && (res.e ?? 0) >= m.epoch)) return live(res);
    // Otherwise the key may not have been streamed yet (or, when a move is
    // being cancelled, the new owner's copy may be the stale one): keep the
    // newer of both records, tombstones included.
    this.counters.fallbackReads++;
    return live(newer(res, await fromOld));
  }

  /**
   * During a migration, a conditional write (If-Match, If-None-Match) or a
   * delete must see the key's current state, which may still sit on the old
   * owner. Copy that one record to the new owner first (the import keeps any
   * newer write there); the old owner's copy is frozen, it refuses writes
   * for moving keys.
   */
  async #pullAhead(v: View, key: string, point: number, owner: string): Promise<void> {
    const t = v.topology;
    const m = t.migration;
    const prevOwner = v.prevRing?.ownerOfPoint(point);
    if (!m || prevOwner === undefined || prevOwner === owner) return;
    const packed = await this.#conn(t, prevOwner).request({ o: OPS.FETCH, e: t.epoch, k: key });
    if (!(packed instanceof Uint8Array)) return;
    this.counters.pulledAhead++;
    await this.#conn(t, owner).request({ o: OPS.IMPORT, e: t.epoch, me: m.epoch, packed });
  }

  /**
   * STALE_EPOCH / NOT_OWNER: our topology is behind. Re-read it and let the
   * caller retry, up to maxRetries times. A shard may have seen the new
   * epoch just before Redis readers do; a short pause then lets the retry
   * use it.
   */
  async #onStale(err: KvError, v: View, a: Attempt): Promise<void> {
    this.counters.retries++;
    a.refusals++;
    const shardEpoch = typeof err.detail?.['epoch'] === 'number' ? err.detail['epoch'] : 0;
    const want = Math.max(shardEpoch, v.topology.epoch);
    let t: Topology;
    try {
      t = await this.#watcher.refresh();
    } catch (e) {
      throw kvError('KV_ERR_REDIS_UNAVAILABLE', redisReason(e as Error));
    }
    if (t.epoch < want) await sleep(this.#opts.epochRetryDelayMs);
    if (a.refusals > this.#opts.maxRetries) throw kvError('KV_ERR_TOPOLOGY_CHANGING', this.#opts.maxRetries);
  }

  /**
   * Wait for a topology newer than `epoch`; nothing was sent, so a timeout is
   * a clean 503. Waiters wake as soon as the watcher applies the new epoch
   * (normally the pub/sub message); while any wait, one shared refresh runs
   * every few ms in case that message is late.
   */
  #waitForMove(epoch: number, deadline: number): Promise<void> {
    if ((this.#view?.topology.epoch ?? 0) > epoch) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const w = {
        epoch,
        wake: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(
        () => {
          this.#epochWaiters.delete(w);
          reject(kvError('KV_ERR_MIGRATION_FREEZE', this.#opts.requestTimeoutMs));
        },
        Math.max(0, deadline - Date.now()),
      );
      this.#epochWaiters.add(w);
      this.#pollForWaiters();
    });
  }

  #pollForWaiters(): void {
    if (this.#waitPoll || this.#epochWaiters.size === 0) return;
    this.#waitPoll = setTimeout(() => {
      this.#watcher
        .refresh()
        .catch(() => undefined)
        .finally(() => {
          this.#waitPoll = undefined;
          this.#pollForWaiters();
        });
    }, WAITER_POLL_MS);
  }

  stats(): Record<string, unknown> {
    const shards: Record<string, unknown> = {};
    for (const [id, c] of this.#conns) shards[id] = { addr: c.addr, inFlight: c.inFlight, ...c.counters };
    return { epoch: this.#view?.topology.epoch, retries: this.counters.retries, shards };
  }

  close(): void {
    if (this.#waitPoll) clearTimeout(this.#waitPoll);
    this.#epochWaiters.clear();
    for (const c of this.#conns.values()) c.close();
    this.#conns.clear();
  }
}
