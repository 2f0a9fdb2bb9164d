// The shard's LMDB store. Records are keyed [ringPoint, key] so that an arc of
// the ring is one range scan (rebalancing streams arcs). A second database
// indexes [expiry, ringPoint, key] so the sweeper finds expired records and old
// tombstones without scanning everything.
//
// Durability: every write is acknowledged only after its LMDB transaction has
// committed (the write promise resolves after commit). A committed transaction
// is in the OS page cache, so it survives kill -9 of the shard. With the
// default `noSync: false` LMDB also fsyncs every commit (overlappingSync: the
// flush runs after the commit, off the write lock), so it survives a machine
// crash too, except for the last few milliseconds of commits; `db.flushed`
// tells when those are on disk.
import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { kvError } from '../src/errors.js';
import { keyPoint } from '../src/ring.js';
import type { StoredValue } from '../src/protocol.js';

export interface StoreOptions {
  readonly path: string;
  readonly mapSizeBytes: number;
  readonly noSync: boolean;
  readonly tombstoneGraceMs: number;
}

/** What LMDB holds per key. A tombstone keeps `ver` so older writes cannot come back. */
export interface StoredRecord {
  v: Uint8Array | null;
  ct: string;
  ver: number;
  /** Absolute expiry (ms); for a tombstone, when it may be dropped. 0 = none. */
  x: number;
  /** 1 = tombstone. */
  d?: 1;
}

type RecordKey = [number, string];
type ExpiryKey = [number, number, string];

export interface PutArgs {
  value: Uint8Array;
  contentType: string;
  expiresAt: number;
  ifMatch?: number | '*' | undefined;
  ifNoneMatch?: boolean | undefined;
}

export interface StoreStats {
  /** LMDB entries: live keys plus tombstones and expired keys not yet swept. */
  records: number;
  bytes: number;
  ops: { get: number; put: number; del: number; expired: number; tombstonesDropped: number };
}

export class Store {
  readonly #root: RootDatabase;
  readonly #records: Database<StoredRecord, RecordKey>;
  readonly #expiry: Database<1, ExpiryKey>;
  readonly #graceMs: number;
  #lastVersion = 0;
  readonly ops = { get: 0, put: 0, del: 0, expired: 0, tombstonesDropped: 0 };

  constructor(opts: StoreOptions) {
    mkdirSync(opts.path, { recursive: true });
    this.#root = open({ path: opts.path, mapSize: opts.mapSizeBytes, noSync: opts.noSync, maxDbs: 8 });
    this.#records = this.#root.openDB<StoredRecord, RecordKey>({ name: 'records' });
    this.#expiry = this.#root.openDB<1, ExpiryKey>({ name: 'expiry' });
    this.#graceMs = opts.tombstoneGraceMs;
  }

  /**
   * Versions are strictly increasing per shard and close to wall-clock
   * microseconds, so a record moved to another shard and written there later
   * still gets a larger version (put-if-newer imports rely on this).
   */
  #nextVersion(prev: number): number {
    const v = Math.max(prev + 1, this.#lastVersion + 1, Date.now() * 1000);
    this.#lastVersion = v;
    return v;
  }

  /** A live value, or null for missing, deleted or expired keys. Never serves an expired value. */
  get(key: string, now = Date.now()): StoredValue | null {
    this.ops.get++;
    const rec = this.#records.get([keyPoint(key), key]);
    if (!rec || rec.d === 1 || rec.v === null || (rec.x !== 0 && rec.x <= now)) return null;
    return { v: rec.v, ct: rec.ct, ver: rec.ver, x: rec.x };
  }

  /**
   * Run write operations in one LMDB transaction; resolves after commit.
   * A throw inside `fn` does not roll back writes `fn` already made, so
   * callers check every precondition before their first write (as putInTxn
   * and delInTxn do).
   */
  transaction<T>(fn: () => T): Promise<T> {
    return this.#root.transaction(fn);
  }

  #live(rk: RecordKey, now: number): { rec: StoredRecord | undefined; live: boolean } {
    const rec = this.#records.get(rk);
    const live = !!rec && rec.d !== 1 && (rec.x === 0 || rec.x > now);
    return { rec, live };
  }

  #checkPrecondition(live: boolean, rec: StoredRecord | undefined, ifMatch: number | '*' | undefined, ifNoneMatch: boolean | undefined): void {
    if (ifNoneMatch && live) throw kvError('KV_ERR_PRECONDITION_FAILED', 'no current value', rec!.ver);
    if (ifMatch === undefined) return;
    if (!live) throw kvError('KV_ERR_PRECONDITION_FAILED', ifMatch, 'none');
    if (ifMatch !== '*' && rec!.ver !== ifMatch) throw kvError('KV_ERR_PRECONDITION_FAILED', ifMatch, rec!.ver);
  }

  #write(rk: RecordKey, old: StoredRecord | undefined, rec: StoredRecord): void {
    if (old && old.x !== 0) this.#expiry.remove([old.x, rk[0], rk[1]]);
    this.#records.put(rk, rec);
    if (rec.x !== 0) this.#expiry.put([rec.x, rk[0], rk[1]], 1);
  }

  /** Must run inside transaction(). Returns the new version. */
  putInTxn(key: string, args: PutArgs, now = Date.now()): number {
    this.ops.put++;
    const rk: RecordKey = [keyPoint(key), key];
    const { rec: old, live } = this.#live(rk, now);
    this.#checkPrecondition(live, old, args.ifMatch, args.ifNoneMatch);
    const ver = this.#nextVersion(old?.ver ?? 0);
    this.#write(rk, old, { v: args.value, ct: args.contentType, ver, x: args.expiresAt });
    return ver;
  }

  /**
   * Must run inside transaction(). Always leaves a tombstone (even for a key
   * this shard never saw) so a copy arriving later from an old owner cannot
   * resurrect it. Returns whether a live value was deleted.
   */
  delInTxn(key: string, ifMatch: number | '*' | undefined, now = Date.now()): { deleted: boolean; ver: number } {
    this.ops.del++;
    const rk: RecordKey = [keyPoint(key), key];
    const { rec: old, live } = this.#live(rk, now);
    this.#checkPrecondition(live, old, ifMatch, undefined);
    if (old?.d === 1) return { deleted: false, ver: old.ver };
    const ver = this.#nextVersion(old?.ver ?? 0);
    this.#write(rk, old, { v: null, ct: '', ver, x: now + this.#graceMs, d: 1 });
    return { deleted: live, ver };
  }

  /** Drop expired records and tombstones past their grace period; returns how many. */
  async sweep(limit: number, now = Date.now()): Promise<number> {
    const due: ExpiryKey[] = [];
    for (const k of this.#expiry.getKeys({ end: [now, Number.MAX_SAFE_INTEGER, '\uffff'], limit })) due.push(k);
    if (due.length === 0) return 0;
    await this.#root.transaction(() => {
      for (const ek of due) {
        const [x, point, key] = ek;
        this.#expiry.remove(ek);
        const rk: RecordKey = [point, key];
        const rec = this.#records.get(rk);
        // Only drop the record if it is still the one this index entry was for.
        if (rec && rec.x === x) {
          this.#records.remove(rk);
          if (rec.d === 1) this.ops.tombstonesDropped++;
          else this.ops.expired++;
        }
      }
    });
    return due.length;
  }

  stats(): StoreStats {
    const s = this.#records.getStats() as { entryCount?: number; pageSize?: number; treeBranchPageCount?: number; treeLeafPageCount?: number; overflowPages?: number };
    const pages = (s.treeBranchPageCount ?? 0) + (s.treeLeafPageCount ?? 0) + (s.overflowPages ?? 0);
    const records = s.entryCount ?? 0;
    return {
      records,
      bytes: pages * (s.pageSize ?? 4096),
      ops: { ...this.ops },
    };
  }

  /** Count live keys exactly (a full scan: for tests and small stores). */
  countLive(now = Date.now()): number {
    let n = 0;
    for (const { value } of this.#records.getRange({})) {
      if (value.d !== 1 && (value.x === 0 || value.x > now)) n++;
    }
    return n;
  }

  get flushed(): Promise<boolean> {
    return this.#root.flushed;
  }

  async close(): Promise<void> {
    await this.#root.flushed;
    await this.#root.close();
  }
}
