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
  /**
   * Topology epoch the write was accepted at (0 for admin-port writes).
   * Imports during a migration at epoch E overwrite only records with e < E:
   * anything written at E or later is newer than every copy a source can send,
   * whatever the clocks say.
   */
  e?: number;
}

/** A record as streamed between shards during rebalancing. */
export interface MovedRecord {
  /** [point, key] */
  k: RecordKey;
  r: StoredRecord;
}

type RecordKey = [number, string];
type ExpiryKey = [number, number, string];

export interface PutArgs {
  value: Uint8Array;
  contentType: string;
  expiresAt: number;
  ifMatch?: number | '*' | undefined;
  ifNoneMatch?: boolean | undefined;
  /** Topology epoch the write is accepted at. */
  epoch?: number | undefined;
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
    // Plain msgpack maps: without shared structures msgpackr would prefix
    // every value with its own record definition and re-parse it on read.
    this.#records = this.#root.openDB<StoredRecord, RecordKey>({ name: 'records', encoder: { useRecords: false } } as never);
    this.#expiry = this.#root.openDB<1, ExpiryKey>({ name: 'expiry' });
    this.#graceMs = opts.tombstoneGraceMs;
  }

  /**
   * Versions are strictly increasing per key and per shard run, and close to
   * wall-clock microseconds. They order writes within one epoch; across a
   * move the write epoch (`e`) decides, so clocks never have to agree.
   */
  #nextVersion(prev: number): number {
    const v = Math.max(prev + 1, this.#lastVersion + 1, Date.now() * 1000);
    this.#lastVersion = v;
    return v;
  }

  /** A live value, or null for missing, deleted or expired keys. Never serves an expired value. */
  get(key: string, now = Date.now()): StoredValue | null {
    const r = this.lookup(key, now);
    if (r === null || 'deleted' in r) return null;
    return { v: r.v, ct: r.ct, ver: r.ver, x: r.x };
  }

  /**
   * Like get(), but tells a tombstone apart from a key never seen and reports
   * the write epoch: during a migration the router compares the records of
   * the old and the new owner by (write epoch, version), tombstones included.
   */
  lookup(key: string, now = Date.now()): StoredValue | { deleted: true; ver: number; e: number } | null {
    this.ops.get++;
    const rec = this.#records.get([keyPoint(key), key]);
    if (!rec) return null;
    const e = rec.e ?? 0;
    if (rec.d === 1 || rec.v === null) return { deleted: true, ver: rec.ver, e };
    if (rec.x !== 0 && rec.x <= now) return { deleted: true, ver: rec.ver, e };
    return { v: rec.v, ct: rec.ct, ver: rec.ver, x: rec.x, e };
  }

  /** The stored record of a key as a moved record (null if absent or expired). */
  fetchRaw(key: string, now = Date.now()): MovedRecord | null {
    const k: RecordKey = [keyPoint(key), key];
    const r = this.#records.get(k);
    if (!r || (r.d !== 1 && r.x !== 0 && r.x <= now)) return null;
    return { k, r };
  }

  /**
   * Records with points in [lo, hi], in key order, after `after` (exclusive),
   * at most `limit` of them and about `maxBytes` of values. Expired values are
   * left out (they must not be copied); tombstones are included.
   */
  scan(lo: number, hi: number, after: RecordKey | undefined, limit: number, maxBytes: number, now = Date.now()): { records: MovedRecord[]; next: RecordKey | undefined } {
    const records: MovedRecord[] = [];
    let bytes = 0;
    let last: RecordKey | undefined;
    const start: RecordKey = after ?? [lo, ''];
    for (const { key, value } of this.#records.getRange({ start, end: [hi + 1, ''] })) {
      if (after && key[0] === after[0] && key[1] === after[1]) continue;
      last = key;
      if (value.d !== 1 && value.x !== 0 && value.x <= now) continue;
      records.push({ k: key, r: value });
      bytes += (value.v?.byteLength ?? 0) + key[1].length + 32;
      if (records.length >= limit || bytes >= maxBytes) return { records, next: key };
    }
    // `last` may be an expired record we skipped; the range is done either way.
    void last;
    return { records, next: undefined };
  }

  /**
   * Estimated records and value bytes with points in [lo, hi]. It walks keys
   * only; bytes come from a small sample. Decoding every value here would
   * stall the shard's event loop several times longer.
   */
  countRange(lo: number, hi: number): { keys: number; bytes: number } {
    // lmdb-js may annotate the options object it is given: a fresh one per call.
    const range = () => ({ start: [lo, ''] as RecordKey, end: [hi + 1, ''] as RecordKey });
    let keys = 0;
    // Keys only: no value is decoded.
    for (const _k of this.#records.getKeys(range())) keys++;
    if (keys === 0) return { keys: 0, bytes: 0 };
    let sampled = 0;
    let sampleBytes = 0;
    for (const { value } of this.#records.getRange({ ...range(), limit: 64 })) {
      sampled++;
      sampleBytes += value.v?.byteLength ?? 0;
    }
    return { keys, bytes: Math.round((sampleBytes / Math.max(1, sampled)) * keys) };
  }

  /**
   * Must run inside transaction(). Put-if-newer for rebalancing: writes the
   * record unless this shard holds one written at `migrationEpoch` or later.
   * Returns whether it was written.
   */
  importInTxn(m: MovedRecord, migrationEpoch: number, now = Date.now()): boolean {
    const rk: RecordKey = [m.k[0], m.k[1]];
    if (m.r.d !== 1 && m.r.x !== 0 && m.r.x <= now) return false;
    const old = this.#records.get(rk);
    if (old && (old.e ?? 0) >= migrationEpoch) return false;
    // Keep the moved version; later local writes build on it.
    if (m.r.ver > this.#lastVersion) this.#lastVersion = m.r.ver;
    this.#write(rk, old, m.r);
    return true;
  }

  /** Delete every record with a point in [lo, hi] (after a move commits). Returns how many. */
  async purgeRange(lo: number, hi: number, batch = 5000): Promise<number> {
    let total = 0;
    for (;;) {
      const keys: RecordKey[] = [];
      for (const k of this.#records.getKeys({ start: [lo, ''], end: [hi + 1, ''], limit: batch })) keys.push(k);
      if (keys.length === 0) return total;
      await this.#root.transaction(() => {
        for (const k of keys) {
          const rec = this.#records.get(k);
          if (rec && rec.x !== 0) this.#expiry.remove([rec.x, k[0], k[1]]);
          this.#records.remove(k);
        }
      });
      total += keys.length;
      if (keys.length < batch) return total;
    }
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
    this.#write(rk, old, { v: args.value, ct: args.contentType, ver, x: args.expiresAt, e: args.epoch ?? 0 });
    return ver;
  }

  /**
   * Must run inside transaction(). Always leaves a tombstone (even for a key
   * this shard never saw) so a copy arriving later from an old owner cannot
   * resurrect it. Returns whether a live value was deleted.
   */
  delInTxn(key: string, ifMatch: number | '*' | undefined, now = Date.now(), epoch = 0): { deleted: boolean; ver: number } {
    this.ops.del++;
    const rk: RecordKey = [keyPoint(key), key];
    const { rec: old, live } = this.#live(rk, now);
    this.#checkPrecondition(live, old, ifMatch, undefined);
    // A tombstone from an older epoch is renewed so a migration at a newer
    // epoch treats this delete as newer than any copy it streams.
    if (old?.d === 1 && (old.e ?? 0) >= epoch) return { deleted: false, ver: old.ver };
    const ver = this.#nextVersion(old?.ver ?? 0);
    this.#write(rk, old, { v: null, ct: '', ver, x: now + this.#graceMs, d: 1, e: epoch });
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
