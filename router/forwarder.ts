// The z-axis lookup: ring owner of a key at the current epoch, then the
// request over that shard's connection. A STALE_EPOCH / NOT_OWNER refusal
// means our topology is behind: re-read it and retry, a bounded number of
// times (like Redis Cluster's MOVED).
import { kvError, KvError } from '../src/errors.js';
import { OPS, type GetResult } from '../src/protocol.js';
import { live, newer } from '../src/migration.js';
import { ShardConnection, type OutgoingRequest, type ShardConnectionOptions } from '../src/shard-client.js';
import { ringOf, shardById, type Topology } from '../src/topology.js';
import { Ring, keyPoint } from '../src/ring.js';
import type { TopologyWatcher } from '../src/topology-store.js';

export interface ForwarderOptions extends ShardConnectionOptions {
  readonly maxRetries: number;
}

const REFRESH_CODES = new Set(['KV_ERR_STALE_EPOCH', 'KV_ERR_NOT_OWNER']);

export class Forwarder {
  readonly #watcher: TopologyWatcher;
  readonly #opts: ForwarderOptions;
  readonly #conns = new Map<string, ShardConnection>();
  #topology: Topology | undefined;
  #ring: Ring | undefined;
  /** During a migration: the ring before it (reads fall back to its owner). */
  #prevRing: Ring | undefined;
  readonly counters = { retries: 0, fallbackReads: 0, pulledAhead: 0 };
  /** Requests held until the topology passes an epoch (moving-key writes during a freeze). */
  readonly #epochWaiters = new Set<{ epoch: number; wake: () => void }>();
  #waitPoll: NodeJS.Timeout | undefined;

  constructor(watcher: TopologyWatcher, opts: ForwarderOptions) {
    this.#watcher = watcher;
    this.#opts = opts;
    watcher.on('change', (t: Topology) => this.#apply(t));
    if (watcher.current) this.#apply(watcher.current);
  }

  get topology(): Topology | undefined {
    return this.#topology;
  }

  #apply(t: Topology): void {
    this.#topology = t;
    this.#ring = ringOf(t);
    this.#prevRing = t.migration ? Ring.of(t.migration.prev) : undefined;
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
        const closeWhenIdle = () => (conn.inFlight === 0 ? conn.close() : setTimeout(closeWhenIdle, 100).unref());
        closeWhenIdle();
      }
    }
  }

  /** The connection to shard `id` (created on first use). */
  connection(id: string): ShardConnection {
    const t = this.#topology;
    if (!t) throw kvError('KV_ERR_NOT_READY', 'topology not loaded yet');
    return this.#conn(t, id);
  }

  #conn(t: Topology, id: string): ShardConnection {
    let c = this.#conns.get(id);
    if (c) return c;
    const s = shardById(t, id);
    if (!s) throw kvError('KV_ERR_SHARD_UNAVAILABLE', id, 'not in the topology');
    c = new ShardConnection(id, s.dataAddr, this.#opts);
    this.#conns.set(id, c);
    return c;
  }

  /** Send one keyed request to its owner, refreshing and retrying on refusals. */
  async exec(req: Omit<OutgoingRequest, 'e'>): Promise<unknown> {
    let readRetried = false;
    const deadline = Date.now() + this.#opts.requestTimeoutMs;
    // One hash per request, whatever the retries and rings.
    const point = keyPoint(req.k!);
    for (let attempt = 0; attempt <= this.#opts.maxRetries; attempt++) {
      const t = this.#topology;
      const ring = this.#ring;
      if (!t || !ring) throw kvError('KV_ERR_NOT_READY', 'topology not loaded yet');
      const owner = ring.ownerOfPoint(point);
      if (owner === undefined) throw kvError('KV_ERR_NO_SHARDS');
      if (req.o !== OPS.GET && t.migration?.phase === 'freeze' && this.#prevRing?.ownerOfPoint(point) !== owner) {
        // A moving key in the freeze phase: hold the write until the
        // coordinator opens the move (normally milliseconds).
        await this.#waitPastEpoch(t.epoch, deadline);
        attempt--;
        continue;
      }
      try {
        if (req.o === OPS.DEL || (req.o === OPS.PUT && (req.m !== undefined || req.n))) await this.#pullAhead(t, req.k!, owner);
        const m = t.migration;
        const prevOwner = req.o === OPS.GET && m ? this.#prevRing?.ownerOfPoint(point) : undefined;
        // A moving key during a migration: the old owner is asked at the same
        // time as the new one, so the fallback below costs no extra round trip.
        const fromOld = prevOwner !== undefined && prevOwner !== owner ? this.#conn(t, prevOwner).request({ ...req, e: t.epoch }) : undefined;
        fromOld?.catch(() => undefined);
        const res = (await this.#conn(t, owner).request({ ...req, e: t.epoch })) as GetResult;
        if (req.o !== OPS.GET) return res;
        // Outside a migration, or a key that does not move, or a record
        // written at or after the migration began: the new owner has the
        // newest state (the old owner refuses writes for moving keys).
        if (!m || !fromOld || (res !== null && (res.e ?? 0) >= m.epoch)) return live(res);
        // Otherwise the key may not have been streamed yet (or, when a move is
        // being cancelled, the new owner's copy may be the stale one): keep
        // the newer of both records, tombstones included.
        this.counters.fallbackReads++;
        const old = (await fromOld) as GetResult;
        return live(newer(res, old));
      } catch (err) {
        if (!(err instanceof KvError)) throw err;
        if (REFRESH_CODES.has(err.code)) {
          this.counters.retries++;
          const shardEpoch = typeof err.detail?.['epoch'] === 'number' ? err.detail['epoch'] : 0;
          await this.#refreshAtLeast(Math.max(shardEpoch, t.epoch));
          continue;
        }
        // A read has no side effect: one retry on a lost connection is safe.
        if (req.o === OPS.GET && err.code === 'KV_ERR_OUTCOME_UNKNOWN' && !readRetried) {
          readRetried = true;
          attempt--;
          continue;
        }
        throw err;
      }
    }
    throw kvError('KV_ERR_TOPOLOGY_CHANGING', this.#opts.maxRetries);
  }

  /**
   * During a migration, a conditional write (If-Match, If-None-Match) or a
   * delete must see the key's current state, which may still sit on the old
   * owner. Copy that one record to the new owner first (the import keeps any
   * newer write there); the old owner's copy is frozen, it refuses writes
   * for moving keys.
   */
  async #pullAhead(t: Topology, key: string, owner: string): Promise<void> {
    const m = t.migration;
    const prevOwner = this.#prevRing?.ownerOf(key);
    if (!m || prevOwner === undefined || prevOwner === owner) return;
    const packed = await this.#conn(t, prevOwner).request({ o: OPS.FETCH, e: t.epoch, k: key });
    if (!(packed instanceof Uint8Array)) return;
    this.counters.pulledAhead++;
    await this.#conn(t, owner).request({ o: OPS.IMPORT, e: t.epoch, me: m.epoch, packed });
  }

  /**
   * Wait for a topology newer than `epoch`; nothing was sent, so a timeout is
   * a clean 503. Waiters wake as soon as the watcher applies the new epoch
   * (normally the pub/sub message); while any wait, one shared refresh runs
   * every 25 ms in case that message is late.
   */
  #waitPastEpoch(epoch: number, deadline: number): Promise<void> {
    if ((this.#topology?.epoch ?? 0) > epoch) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const w = { epoch, wake: () => { clearTimeout(timer); resolve(); } };
      const timer = setTimeout(() => {
        this.#epochWaiters.delete(w);
        reject(kvError('KV_ERR_MIGRATION_FREEZE', this.#opts.requestTimeoutMs));
      }, Math.max(0, deadline - Date.now()));
      this.#epochWaiters.add(w);
      this.#pollForWaiters();
    });
  }

  #pollForWaiters(): void {
    if (this.#waitPoll || this.#epochWaiters.size === 0) return;
    this.#waitPoll = setTimeout(() => {
      this.#watcher.refresh().catch(() => undefined).finally(() => {
        this.#waitPoll = undefined;
        this.#pollForWaiters();
      });
    }, 25);
  }

  async #refreshAtLeast(epoch: number): Promise<void> {
    try {
      const t = await this.#watcher.refresh();
      // A shard may have seen the new epoch just before Redis readers do;
      // one short pause then lets the retry use it.
      if (t.epoch < epoch) await new Promise((r) => setTimeout(r, 20));
    } catch (err) {
      throw kvError('KV_ERR_REDIS_UNAVAILABLE', (err as Error).message);
    }
  }

  stats(): Record<string, unknown> {
    const shards: Record<string, unknown> = {};
    for (const [id, c] of this.#conns) shards[id] = { addr: c.addr, inFlight: c.inFlight, ...c.counters };
    return { epoch: this.#topology?.epoch, retries: this.counters.retries, shards };
  }

  close(): void {
    if (this.#waitPoll) clearTimeout(this.#waitPoll);
    this.#epochWaiters.clear();
    for (const c of this.#conns.values()) c.close();
    this.#conns.clear();
  }
}
