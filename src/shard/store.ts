// The shard's LMDB store. Records are keyed by (ring point, key) so that an
// arc of the ring is one range scan (rebalancing streams arcs); record.ts has
// the byte layout. A second database indexes (expiry, record key) so the
// sweeper finds expired records and old tombstones without scanning
// everything, and a third indexes keys in key order (UTF-8 bytes -> point)
// for the paged scan of a tenant's keys (list). That index is cut into
// buckets by ring point (record.ts, indexKey), each in key order, and a list
// merges them: a move writes arcs of the ring, which then touch a few pages
// of the index instead of one page per moved key.
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
import { kvError } from '../core/errors.js';
import { keyPoint } from '../core/ring.js';
import type { StoredValue } from '../core/protocol.js';
import {
  FORMAT_VERSION,
  MovedWriter,
  INDEX_BUCKETS,
  cursorOf,
  encodeRecord,
  epochOf,
  expiryBound,
  expiryKey,
  expiryKeyParts,
  expiryOf,
  indexKey,
  indexStart,
  isExpired,
  isTombstone,
  liveValue,
  pointBytes,
  pointOf,
  recordKey,
  successor,
  valueLength,
  versionOf,
} from './record.js';

export interface StoreOptions {
  readonly path: string;
  readonly mapSizeBytes: number;
  readonly noSync: boolean;
  readonly tombstoneGraceMs: number;
}

/** One SCAN answer: moved records as one blob, with counts and the cursor to continue from. */
export interface ScanResult {
  packed: Buffer;
  /** Records in `packed` (tombstones included). */
  n: number;
  /** Live values among them, and their value bytes. */
  live: number;
  bytes: number;
  /** Last [point, key] returned, when the range may hold more. */
  next: [number, string] | undefined;
}

export interface PutArgs {
  value: Uint8Array;
  contentType: string;
  expiresAt: number;
  ifMatch?: number | '*' | undefined;
  ifNoneMatch?: boolean | undefined;
  /** Topology epoch the write is accepted at. */
  epoch?: number | undefined;
}

/** One LIST answer: records in key order (see the list op in core/protocol.ts). */
export interface ListResult {
  entries: Array<[key: string, e: number, ver: number, x: number, deleted: 0 | 1]>;
  more: boolean;
}

export interface StoreStats {
  /** LMDB entries: live keys plus tombstones and expired keys not yet swept. */
  records: number;
  bytes: number;
  /** Bytes of the values held (live and expired ones not yet swept; tombstones hold none). */
  valueBytes: number;
  /** The LMDB map: its size, and the bytes of it in use (up to its highest page). */
  mapSizeBytes: number;
  usedBytes: number;
  ops: { get: number; put: number; del: number; expired: number; tombstonesDropped: number; purged: number };
}

const ONE = Buffer.from([1]);

const NO_OVERWRITE = { noOverwrite: true };

/** importManyInTxn(): a seek that covers fewer moved records than this ... */
const SEEK_MIN_RUN = 8;
/** ... makes this many records go one by one before the next seek. */
const SEEK_PAUSE = 64;

/**
 * Must run inside a transaction: put `rv` under `rk` unless the key exists;
 * true if it was written. Inside a transaction lmdb-js runs the put at once
 * and hands back an already settled promise that carries its outcome in
 * `result`; if a later lmdb-js stops doing so, this refuses loudly instead of
 * guessing (the unit tests import over existing records).
 */
function putIfAbsent(db: Database<Buffer, Buffer>, rk: Buffer, rv: Buffer): boolean {
  const r = (db.put(rk, rv, NO_OVERWRITE as never) as unknown as { result?: unknown }).result;
  if (typeof r !== 'boolean') throw kvError('KV_ERR_INTERNAL', 'lmdb gave no outcome for a put inside a transaction');
  return r;
}

/**
 * Buffer.compare of two record keys, cheaper for the usual case: keys of
 * different ring points (their first 4 bytes, big-endian) compare by point
 * without a call into C++.
 */
function compareRecordKeys(a: Buffer, b: Buffer): number {
  const pa = pointOf(a);
  const pb = pointOf(b);
  return pa !== pb ? (pa < pb ? -1 : 1) : a.compare(b);
}

/** What a write needs of the record it replaces. */
interface OldRecord {
  ver: number;
  x: number;
  e: number;
  /** 1 = tombstone. */
  d: 0 | 1;
  /** Its value's bytes (0 for a tombstone). */
  n: number;
}

export class Store {
  readonly #root: RootDatabase;
  /** Record key (see record.ts) -> encoded record. */
  readonly #records: Database<Buffer, Buffer>;
  /** [8-byte expiry, record key] -> 1. */
  readonly #expiry: Database<Buffer, Buffer>;
  /** [bucket, UTF-8 key] -> 4-byte point: every record (tombstones included), in key order per bucket. */
  readonly #keys: Database<Buffer, Buffer>;
  readonly #graceMs: number;
  #lastVersion = 0;
  readonly ops = { get: 0, put: 0, del: 0, expired: 0, tombstonesDropped: 0, purged: 0 };
  /** Bytes of the values held: counted once at open, then kept by every write, sweep and purge. */
  #valueBytes = 0;

  constructor(opts: StoreOptions) {
    mkdirSync(opts.path, { recursive: true });
    this.#root = open({ path: opts.path, mapSize: opts.mapSizeBytes, noSync: opts.noSync, maxDbs: 8 });
    const meta = this.#root.openDB<number, string>({ name: 'meta' });
    this.#records = this.#root.openDB<Buffer, Buffer>({ name: 'records', keyEncoding: 'binary', encoding: 'binary' });
    this.#expiry = this.#root.openDB<Buffer, Buffer>({ name: 'expiry', keyEncoding: 'binary', encoding: 'binary' });
    this.#keys = this.#root.openDB<Buffer, Buffer>({ name: 'keys', keyEncoding: 'binary', encoding: 'binary' });
    const format = meta.get('format');
    if (format === undefined && this.#records.getCount() > 0) {
      void this.#root.close();
      throw kvError(
        'KV_ERR_CONFIG',
        `shard data directory ${opts.path} was written by an older storage format; this version reads format ${FORMAT_VERSION} (drain the shard out of the ring with the older version, then start this one on an empty directory)`,
      );
    }
    if (format === 2 || format === 3) {
      // Format 2 had no key index and format 3 one without buckets: build it
      // from the records, then the directory is of this format.
      this.#root.transactionSync(() => {
        this.#keys.clearSync();
        for (const { key } of this.#records.getRange({})) void this.#keys.put(indexKey(key), key.subarray(0, 4));
        void meta.put('format', FORMAT_VERSION);
      });
    } else if (format !== undefined && format !== FORMAT_VERSION) {
      void this.#root.close();
      throw kvError('KV_ERR_CONFIG', `shard data directory ${opts.path} has storage format ${format}; this version reads format ${FORMAT_VERSION}`);
    }
    if (format === undefined) meta.putSync('format', FORMAT_VERSION);
    this.#graceMs = opts.tombstoneGraceMs;
    for (const { value } of this.#records.getRange({})) this.#valueBytes += valueLength(value);
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
  lookup(key: string, now = Date.now(), point = keyPoint(key)): StoredValue | { deleted: true; ver: number; e: number } | null {
    this.ops.get++;
    // getBinaryFast: a view of LMDB's memory valid until the next read; the value is copied out below.
    const b = this.#records.getBinaryFast(recordKey(point, key));
    if (!b) return null;
    if (isTombstone(b) || isExpired(b, now)) return { deleted: true, ver: versionOf(b), e: epochOf(b) };
    return liveValue(b);
  }

  /** The stored record of a key as a moved-records blob (null if absent or expired), for pulling one key ahead of a move. */
  fetchPacked(key: string, now = Date.now(), point = keyPoint(key)): Buffer | null {
    const rk = recordKey(point, key);
    const b = this.#records.get(rk);
    if (!b || isExpired(b, now)) return null;
    const w = new MovedWriter();
    w.add(rk, b);
    return w.finish();
  }

  /**
   * Records with points in [lo, hi], in key order, after `after` (exclusive),
   * at most `limit` of them and about `maxBytes` of values, packed as they
   * are stored. Expired values are left out (they must not be copied);
   * tombstones are included.
   */
  scan(lo: number, hi: number, after: [number, string] | undefined, limit: number, maxBytes: number, now = Date.now()): ScanResult {
    const w = new MovedWriter();
    let live = 0;
    let bytes = 0;
    const start = after ? successor(recordKey(after[0], after[1])) : pointBytes(lo);
    for (const { key, value } of this.#records.getRange(this.#range(start, hi))) {
      if (isExpired(value, now)) continue;
      w.add(key, value);
      if (!isTombstone(value)) {
        live++;
        bytes += valueLength(value);
      }
      if (w.count >= limit || w.bytes >= maxBytes) return { packed: w.finish(), n: w.count, live, bytes, next: cursorOf(key) };
    }
    return { packed: w.finish(), n: w.count, live, bytes, next: undefined };
  }

  /**
   * Records whose key starts with `prefix`, in key order (UTF-8 bytes), after
   * `after` (exclusive), at most `limit`. Tombstones and expired values are
   * reported as deleted, so a reader merging several shards drops a key whose
   * newest record is gone, and every answer with `more` has entries.
   */
  list(prefix: string, after: string | undefined, limit: number, now = Date.now()): ListResult {
    const p = Buffer.from(prefix, 'utf8');
    const a = after === undefined ? undefined : Buffer.from(after, 'utf8');
    const from = a !== undefined && a.compare(p) > 0 ? successor(a) : p;
    const entries: ListResult['entries'] = [];
    const merge = new IndexMerge(p);
    try {
      // One cursor per bucket, merged in key order (each bucket is in key order).
      for (let b = 0; b < INDEX_BUCKETS; b++) {
        const end = b + 1 < INDEX_BUCKETS ? Buffer.from([b + 1]) : undefined;
        merge.add(this.#keys.getRange(end ? { start: indexStart(b, from), end } : { start: indexStart(b, from) })[Symbol.iterator]());
      }
      for (let head = merge.pop(); head !== undefined; head = merge.pop()) {
        if (entries.length >= limit) return { entries, more: true };
        const b = this.#records.getBinaryFast(head.rk);
        if (!b) continue;
        const gone = isTombstone(b) || isExpired(b, now);
        entries.push([head.key.toString('utf8'), epochOf(b), versionOf(b), gone ? 0 : expiryOf(b), gone ? 1 : 0]);
      }
      return { entries, more: false };
    } finally {
      merge.close();
    }
  }

  /** A getRange option object for keys from `start` to point `hi` inclusive (lmdb-js may annotate it: a fresh one per call). */
  #range(start: Buffer, hi: number): { start: Buffer; end?: Buffer } {
    return hi >= 0xffffffff ? { start } : { start, end: pointBytes(hi + 1) };
  }

  /**
   * Records (tombstones and unswept expired values included) with points in
   * [lo, hi], counted natively by LMDB, and their value bytes estimated from
   * the first `sample` records.
   */
  countRange(lo: number, hi: number, sample = 64): { keys: number; bytes: number } {
    const keys = this.#records.getCount(this.#range(pointBytes(lo), hi));
    if (keys === 0) return { keys: 0, bytes: 0 };
    let sampled = 0;
    let sampleBytes = 0;
    for (const { value } of this.#records.getRange({ ...this.#range(pointBytes(lo), hi), limit: sample })) {
      sampled++;
      sampleBytes += valueLength(value);
    }
    return { keys, bytes: Math.round((sampleBytes / Math.max(1, sampled)) * keys) };
  }

  /**
   * Must run inside transaction(). Put-if-newer for rebalancing: writes the
   * moved record (as its source stored it) unless it has expired or this
   * shard holds one written at `migrationEpoch` or later. Returns whether it
   * was written.
   */
  importInTxn(rk: Buffer, rv: Buffer, migrationEpoch: number, now = Date.now()): boolean {
    if (isExpired(rv, now)) return false;
    // A put that refuses to overwrite (lmdb-js looks the key up, then puts).
    if (putIfAbsent(this.#records, rk, rv)) {
      this.#addedMoved(rk, rv);
      return true;
    }
    // getBinaryFast: a view valid until the next read; only numbers are taken from it.
    const old = this.#records.getBinaryFast(rk)!;
    if (epochOf(old) >= migrationEpoch) return false;
    // Keep the moved version; later local writes build on it.
    const ver = versionOf(rv);
    if (ver > this.#lastVersion) this.#lastVersion = ver;
    this.#valueBytes += valueLength(rv) - valueLength(old);
    this.#writeRaw(rk, expiryOf(old), rv, false);
    return true;
  }

  /**
   * Must run inside transaction(). importInTxn() for each record, but a batch
   * in record-key order (as a scan sends it) is written without a lookup per
   * record: one seek finds the first record this shard already holds at or
   * after a moved key, and every moved key before that one is new here, so
   * it gets a plain put. A moved key equal to a held one, or one out of
   * order, goes through importInTxn(). Where held keys are dense (a move
   * back after a cancel brings keys the shard still holds), seeks stop
   * paying, so records go one by one for a while. Returns how many were
   * written.
   */
  importManyInTxn(recs: readonly { key: Buffer; value: Buffer }[], migrationEpoch: number, now = Date.now()): number {
    let written = 0;
    let prev: Buffer | undefined;
    // The first held record key at or after the last seek (null: none);
    // undefined when a new seek is needed.
    let held: Buffer | null | undefined;
    let sinceSeek = SEEK_MIN_RUN;
    let oneByOne = 0;
    for (const { key: rk, value: rv } of recs) {
      if (prev === undefined || compareRecordKeys(rk, prev) <= 0 || (held != null && compareRecordKeys(rk, held) > 0)) held = undefined;
      prev = rk;
      if (held === undefined) {
        if (oneByOne === 0 && sinceSeek < SEEK_MIN_RUN) {
          oneByOne = SEEK_PAUSE;
          sinceSeek = SEEK_MIN_RUN; // seek again after the pause
        }
        if (oneByOne > 0) {
          oneByOne--;
          if (this.importInTxn(rk, rv, migrationEpoch, now)) written++;
          continue;
        }
        held = this.#firstRecordKeyFrom(rk);
        sinceSeek = 0;
      }
      sinceSeek++;
      if (held !== null && rk.equals(held)) {
        held = undefined;
        if (this.importInTxn(rk, rv, migrationEpoch, now)) written++;
        continue;
      }
      if (isExpired(rv, now)) continue;
      void this.#records.put(rk, rv);
      this.#addedMoved(rk, rv);
      written++;
    }
    return written;
  }

  #firstRecordKeyFrom(rk: Buffer): Buffer | null {
    for (const k of this.#records.getKeys({ start: rk, limit: 1 })) return k;
    return null;
  }

  /** Bookkeeping of a moved record just written under a key this shard did not hold. */
  #addedMoved(rk: Buffer, rv: Buffer): void {
    // Keep the moved version; later local writes build on it.
    const ver = versionOf(rv);
    if (ver > this.#lastVersion) this.#lastVersion = ver;
    this.#valueBytes += valueLength(rv);
    this.#writeIndexes(rk, 0, expiryOf(rv), true);
  }

  /**
   * Delete the records with a point in [lo, hi] (after a move commits), at
   * most `limit` of them, `batch` records per transaction, so writes arriving
   * meanwhile wait behind one small transaction at a time. Returns how many.
   * Deleted records are gone, so a purge cut short by its limit goes on by
   * running again over the same range.
   */
  async purgeRange(lo: number, hi: number, batch: number, limit = Infinity): Promise<number> {
    let total = 0;
    for (;;) {
      const want = Math.min(batch, limit - total);
      if (want <= 0) return total;
      const keys: Buffer[] = [];
      for (const k of this.#records.getKeys({ ...this.#range(pointBytes(lo), hi), limit: want })) keys.push(k);
      if (keys.length === 0) return total;
      await this.transaction(() => {
        for (const k of keys) {
          const old = this.#records.getBinaryFast(k);
          if (old) this.#valueBytes -= valueLength(old);
          if (old && expiryOf(old) !== 0) void this.#expiry.remove(expiryKey(expiryOf(old), k));
          void this.#records.remove(k);
          void this.#keys.remove(indexKey(k));
        }
      });
      total += keys.length;
      this.ops.purged += keys.length;
      if (keys.length < want) return total;
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

  /** The header fields of a key's record (no value bytes copied), and whether it holds a live value. */
  #live(rk: Buffer, now: number): { rec: OldRecord | undefined; live: boolean } {
    // getBinaryFast: a view valid until the next read; only numbers are taken from it.
    const b = this.#records.getBinaryFast(rk);
    if (!b) return { rec: undefined, live: false };
    const tomb = isTombstone(b);
    const rec: OldRecord = { ver: versionOf(b), x: expiryOf(b), e: epochOf(b), d: tomb ? 1 : 0, n: tomb ? 0 : valueLength(b) };
    return { rec, live: !tomb && (rec.x === 0 || rec.x > now) };
  }

  #checkPrecondition(live: boolean, rec: OldRecord | undefined, ifMatch: number | '*' | undefined, ifNoneMatch: boolean | undefined): void {
    if (ifNoneMatch && live) throw kvError('KV_ERR_PRECONDITION_FAILED', 'no current value', rec!.ver);
    if (ifMatch === undefined) return;
    if (!live) throw kvError('KV_ERR_PRECONDITION_FAILED', ifMatch, 'none');
    if (ifMatch !== '*' && rec!.ver !== ifMatch) throw kvError('KV_ERR_PRECONDITION_FAILED', ifMatch, rec!.ver);
  }

  // Inside a transaction callback lmdb-js applies put/remove at once; the
  // promises they return settle with the commit, which the caller awaits.
  // `fresh`: no record of this key yet, so the key index gets it too.
  #writeRaw(rk: Buffer, oldX: number, rv: Buffer, fresh: boolean): void {
    void this.#records.put(rk, rv);
    this.#writeIndexes(rk, oldX, expiryOf(rv), fresh);
  }

  /** The key and expiry index entries of a record just written with expiry `x` (it had `oldX`). */
  #writeIndexes(rk: Buffer, oldX: number, x: number, fresh: boolean): void {
    if (oldX !== 0 && oldX !== x) void this.#expiry.remove(expiryKey(oldX, rk));
    if (fresh) void this.#keys.put(indexKey(rk), rk.subarray(0, 4));
    if (x !== 0 && x !== oldX) void this.#expiry.put(expiryKey(x, rk), ONE);
  }

  /** Must run inside transaction(). Returns the new version. */
  putInTxn(key: string, args: PutArgs, now = Date.now(), point = keyPoint(key)): number {
    this.ops.put++;
    const rk = recordKey(point, key);
    const { rec: old, live } = this.#live(rk, now);
    this.#checkPrecondition(live, old, args.ifMatch, args.ifNoneMatch);
    const ver = this.#nextVersion(old?.ver ?? 0);
    this.#valueBytes += args.value.byteLength - (old?.n ?? 0);
    this.#writeRaw(rk, old?.x ?? 0, encodeRecord({ v: args.value, ct: args.contentType, ver, x: args.expiresAt, e: args.epoch ?? 0 }), !old);
    return ver;
  }

  /**
   * Must run inside transaction(). Always leaves a tombstone (even for a key
   * this shard never saw) so a copy arriving later from an old owner cannot
   * resurrect it. Returns whether a live value was deleted.
   */
  delInTxn(key: string, ifMatch: number | '*' | undefined, now = Date.now(), epoch = 0, point = keyPoint(key)): { deleted: boolean; ver: number } {
    this.ops.del++;
    const rk = recordKey(point, key);
    const { rec: old, live } = this.#live(rk, now);
    this.#checkPrecondition(live, old, ifMatch, undefined);
    // A tombstone from an older epoch is renewed so a migration at a newer
    // epoch treats this delete as newer than any copy it streams.
    if (old?.d === 1 && old.e >= epoch) return { deleted: false, ver: old.ver };
    const ver = this.#nextVersion(old?.ver ?? 0);
    this.#valueBytes -= old?.n ?? 0;
    this.#writeRaw(rk, old?.x ?? 0, encodeRecord({ v: null, ct: '', ver, x: now + this.#graceMs, d: 1, e: epoch }), !old);
    return { deleted: live, ver };
  }

  /** Drop expired records and tombstones past their grace period; returns how many. */
  async sweep(limit: number, now = Date.now()): Promise<number> {
    const due: Buffer[] = [];
    for (const k of this.#expiry.getKeys({ end: expiryBound(now), limit })) due.push(k);
    if (due.length === 0) return 0;
    await this.#root.transaction(() => {
      for (const ek of due) {
        const { x, rk } = expiryKeyParts(ek);
        void this.#expiry.remove(ek);
        const rec = this.#records.getBinaryFast(rk);
        // Only drop the record if it is still the one this index entry was for.
        if (rec && expiryOf(rec) === x) {
          const tomb = isTombstone(rec);
          this.#valueBytes -= valueLength(rec);
          void this.#records.remove(rk);
          void this.#keys.remove(indexKey(rk));
          if (tomb) this.ops.tombstonesDropped++;
          else this.ops.expired++;
        }
      }
    });
    return due.length;
  }

  stats(): StoreStats {
    const s = this.#records.getStats() as {
      entryCount?: number;
      pageSize?: number;
      treeBranchPageCount?: number;
      treeLeafPageCount?: number;
      overflowPages?: number;
    };
    const pages = (s.treeBranchPageCount ?? 0) + (s.treeLeafPageCount ?? 0) + (s.overflowPages ?? 0);
    const records = s.entryCount ?? 0;
    const env = this.#root.getStats() as { pageSize?: number; mapSize?: number; lastPageNumber?: number };
    return {
      records,
      bytes: pages * (s.pageSize ?? 4096),
      valueBytes: this.#valueBytes,
      mapSizeBytes: env.mapSize ?? 0,
      usedBytes: ((env.lastPageNumber ?? 0) + 1) * (env.pageSize ?? 4096),
      ops: { ...this.ops },
    };
  }

  /** Count live keys exactly (a full scan: for tests and small stores). */
  countLive(now = Date.now()): number {
    let n = 0;
    for (const { value } of this.#records.getRange({})) {
      if (!isTombstone(value) && !isExpired(value, now)) n++;
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

type IndexCursor = Iterator<{ key: Buffer; value: Buffer }>;

/** A cursor's current entry: the record key it stands for (point, then key) and the key's bytes in it. */
interface IndexHead {
  readonly rk: Buffer;
  readonly key: Buffer;
  readonly cursor: IndexCursor;
}

/**
 * The k-way merge of a list: one cursor per bucket of the key index, each in
 * key order, kept in a binary heap by their current key. A cursor is dropped
 * once its keys no longer start with the prefix.
 */
class IndexMerge {
  readonly #prefix: Buffer;
  readonly #heap: IndexHead[] = [];
  /** Cursors not yet finished or released. */
  readonly #open = new Set<IndexCursor>();

  constructor(prefix: Buffer) {
    this.#prefix = prefix;
  }

  add(cursor: IndexCursor): void {
    this.#open.add(cursor);
    this.#advance(cursor);
  }

  /** The smallest key left, or undefined when every cursor is past the prefix. */
  pop(): IndexHead | undefined {
    const h = this.#heap;
    const top = h[0];
    if (top === undefined) return undefined;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      this.#down(0);
    }
    this.#advance(top.cursor);
    return top;
  }

  /** Release every cursor (LMDB read cursors are held until then). */
  close(): void {
    for (const c of this.#open) c.return?.();
    this.#open.clear();
  }

  #advance(cursor: IndexCursor): void {
    const r = cursor.next();
    if (r.done) {
      this.#open.delete(cursor);
      return;
    }
    const p = this.#prefix;
    const ik = r.value.key;
    // Past the prefix: nothing more of this bucket is listed.
    if (ik.length - 1 < p.length || ik.compare(p, 0, p.length, 1, 1 + p.length) !== 0) {
      this.#open.delete(cursor);
      cursor.return?.();
      return;
    }
    // The record key: the point (the entry's value), then the key without its bucket byte.
    const rk = Buffer.concat([r.value.value, ik.subarray(1)]);
    this.#heap.push({ rk, key: rk.subarray(4), cursor });
    this.#up(this.#heap.length - 1);
  }

  #up(i: number): void {
    const h = this.#heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.key.compare(h[i]!.key) <= 0) return;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }

  #down(i: number): void {
    const h = this.#heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l]!.key.compare(h[m]!.key) < 0) m = l;
      if (r < h.length && h[r]!.key.compare(h[m]!.key) < 0) m = r;
      if (m === i) return;
      [h[m], h[i]] = [h[i]!, h[m]!];
      i = m;
    }
  }
}
