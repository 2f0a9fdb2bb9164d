// On-disk and on-the-wire layout of a shard's records. Pure: no I/O.
//
// LMDB key of a record: the key's ring point as 4 big-endian bytes, then the
// key as UTF-8. Byte order is ring order, so an arc of the ring is one range
// scan, and a scan cursor's successor is the cursor with a 0 byte appended.
//
// LMDB value of a record (little-endian numbers):
//   0  u8   flags (bit 0: tombstone)
//   1  u32  e    topology epoch the write was accepted at
//   5  f64  ver  version
//   13 f64  x    absolute expiry in ms (tombstone: when it may be dropped), 0 = none
//   21 u16  length of the content type
//   23      content type (UTF-8), then the value bytes
//
// Fixed offsets let a rebalancing source skip expired records and a target
// compare write epochs without decoding anything, and moved records travel as
// the very bytes LMDB holds.
//
// Moved records (SCAN answers, IMPORT requests) are one blob of entries:
//   u16 key length, LMDB key, u32 value length, LMDB value
import { kvError, kvErrorWith } from '../core/errors.js';
import { md5PointOfBytes } from '../core/md5-point.js';
import { validateContentType, validateKey } from '../core/validate.js';
import type { Limits } from '../core/config.js';

/**
 * 4: the key index is bucketed by ring point (format 3 had one key order for
 * the whole shard; format 2 had no key index). Older directories are
 * upgraded on open by rebuilding the index from the records.
 */
export const FORMAT_VERSION = 4;
export const HEADER_BYTES = 23;
const TOMBSTONE = 1;
const OFF_E = 1;
const OFF_VER = 5;
const OFF_X = 13;
const OFF_CT_LEN = 21;
const MAX_EPOCH = 0xffffffff;

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
  e: number;
}

export function recordKey(point: number, key: string): Buffer {
  const len = Buffer.byteLength(key, 'utf8');
  const b = Buffer.allocUnsafe(4 + len);
  b.writeUInt32BE(point, 0);
  b.write(key, 4, 'utf8');
  return b;
}

export const pointOf = (rk: Uint8Array): number => ((rk[0]! << 24) >>> 0) + (rk[1]! << 16) + (rk[2]! << 8) + rk[3]!;

/**
 * The key index (store.ts) holds every key in key order within each of
 * INDEX_BUCKETS buckets; a key's bucket is the top INDEX_BUCKET_BITS bits of
 * its ring point. Its LMDB key: the bucket as one byte, then the key as UTF-8.
 * A move carries arcs of the ring, so its keys fall into a few buckets and
 * their index entries land on few pages; one key order for the whole shard
 * put every moved key on a page of its own.
 */
export const INDEX_BUCKET_BITS = 6;
export const INDEX_BUCKETS = 1 << INDEX_BUCKET_BITS;

/** The key index entry's key for a record key (bucket byte, then the key). */
export function indexKey(rk: Uint8Array): Buffer {
  const n = rk.length;
  const b = Buffer.allocUnsafe(n - 3);
  b[0] = rk[0]! >>> (8 - INDEX_BUCKET_BITS);
  // Once per record a move imports: a short key's bytes are copied one by
  // one (no view of `rk` to allocate, no call into C++).
  if (n <= 36) for (let i = 4; i < n; i++) b[i - 3] = rk[i]!;
  else b.set(rk.subarray(4), 1);
  return b;
}

/** The first index key of `bucket` at or after the key bytes `from`. */
export function indexStart(bucket: number, from: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(1 + from.byteLength);
  b[0] = bucket;
  b.set(from, 1);
  return b;
}

/** [point, key] of an LMDB record key: the JSON-friendly form of a scan cursor. */
export function cursorOf(rk: Buffer): [number, string] {
  return [pointOf(rk), rk.toString('utf8', 4)];
}

/** The first LMDB key after `rk`, in byte order. */
export function successor(rk: Buffer): Buffer {
  const b = Buffer.allocUnsafe(rk.length + 1);
  rk.copy(b, 0);
  b[rk.length] = 0;
  return b;
}

export function pointBytes(point: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(point, 0);
  return b;
}

export function encodeRecord(r: StoredRecord): Buffer {
  if (!Number.isInteger(r.e) || r.e < 0 || r.e > MAX_EPOCH) throw kvError('KV_ERR_INTERNAL', `epoch ${r.e} out of range`);
  const ctLen = Buffer.byteLength(r.ct, 'utf8');
  const vLen = r.v?.byteLength ?? 0;
  const b = Buffer.allocUnsafe(HEADER_BYTES + ctLen + vLen);
  b[0] = r.d === 1 || r.v === null ? TOMBSTONE : 0;
  b.writeUInt32LE(r.e, OFF_E);
  b.writeDoubleLE(r.ver, OFF_VER);
  b.writeDoubleLE(r.x, OFF_X);
  b.writeUInt16LE(ctLen, OFF_CT_LEN);
  b.write(r.ct, HEADER_BYTES, 'utf8');
  if (r.v && vLen > 0) b.set(r.v, HEADER_BYTES + ctLen);
  return b;
}

export const isTombstone = (b: Uint8Array): boolean => (b[0]! & TOMBSTONE) !== 0;
export const epochOf = (b: Buffer): number => b.readUInt32LE(OFF_E);
export const versionOf = (b: Buffer): number => b.readDoubleLE(OFF_VER);
export const expiryOf = (b: Buffer): number => b.readDoubleLE(OFF_X);
/** Bytes of the value (0 for a tombstone). `length`, not `byteLength`: a getBinaryFast buffer is a view of a larger reused one. */
export const valueLength = (b: Buffer): number => (isTombstone(b) ? 0 : b.length - HEADER_BYTES - b.readUInt16LE(OFF_CT_LEN));
/** A value whose expiry has passed (tombstones never count as expired here). */
export const isExpired = (b: Buffer, now: number): boolean => {
  if (isTombstone(b)) return false;
  const x = expiryOf(b);
  return x !== 0 && x <= now;
};

/** Decode a record; `v` is a view into `b`. */
export function decodeRecord(b: Buffer): StoredRecord {
  const ctLen = b.readUInt16LE(OFF_CT_LEN);
  const tomb = isTombstone(b);
  const r: StoredRecord = {
    v: tomb ? null : b.subarray(HEADER_BYTES + ctLen),
    ct: ctLen === 0 ? '' : b.toString('utf8', HEADER_BYTES, HEADER_BYTES + ctLen),
    ver: b.readDoubleLE(OFF_VER),
    x: b.readDoubleLE(OFF_X),
    e: b.readUInt32LE(OFF_E),
  };
  if (tomb) r.d = 1;
  return r;
}

/**
 * The value of a live record with its header fields, one object of one shape;
 * `v` is a copy, so `b` may be a view LMDB reuses on its next read.
 */
export function liveValue(b: Buffer): { v: Buffer; ct: string; ver: number; x: number; e: number } {
  const ctLen = b.readUInt16LE(OFF_CT_LEN);
  const start = HEADER_BYTES + ctLen;
  const v = Buffer.allocUnsafe(b.length - start);
  b.copy(v, 0, start);
  return {
    v,
    ct: ctLen === 0 ? '' : b.toString('utf8', HEADER_BYTES, start),
    ver: b.readDoubleLE(OFF_VER),
    x: b.readDoubleLE(OFF_X),
    e: b.readUInt32LE(OFF_E),
  };
}

/** Key of the expiry index: 8-byte big-endian expiry, then the record key. */
export function expiryKey(x: number, rk: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(8 + rk.byteLength);
  b.writeUInt32BE(Math.floor(x / 0x100000000), 0);
  b.writeUInt32BE(x >>> 0, 4);
  b.set(rk, 8);
  return b;
}

/** Expiry index keys sort before this one when their expiry is <= x. */
export function expiryBound(x: number): Buffer {
  return expiryKey(x + 1, Buffer.alloc(0));
}

export function expiryKeyParts(ek: Buffer): { x: number; rk: Buffer } {
  return { x: ek.readUInt32BE(0) * 0x100000000 + ek.readUInt32BE(4), rk: ek.subarray(8) };
}

/** Moved records: entries collected, then written into one blob. */
export class MovedWriter {
  readonly #keys: Uint8Array[] = [];
  readonly #values: Uint8Array[] = [];
  #bytes = 0;

  add(rk: Uint8Array, rv: Uint8Array): void {
    this.#keys.push(rk);
    this.#values.push(rv);
    this.#bytes += 6 + rk.byteLength + rv.byteLength;
  }

  get count(): number {
    return this.#keys.length;
  }

  get bytes(): number {
    return this.#bytes;
  }

  finish(): Buffer {
    const b = Buffer.allocUnsafe(this.#bytes);
    let off = 0;
    for (let i = 0; i < this.#keys.length; i++) {
      const rk = this.#keys[i]!;
      const rv = this.#values[i]!;
      off = b.writeUInt16LE(rk.byteLength, off);
      b.set(rk, off);
      off += rk.byteLength;
      off = b.writeUInt32LE(rv.byteLength, off);
      b.set(rv, off);
      off += rv.byteLength;
    }
    return b;
  }
}

export interface MovedEntry {
  readonly key: Buffer;
  readonly value: Buffer;
}

/**
 * Split and check a moved-records blob. Every entry must be well formed
 * (a key with a point and at least one byte, a header, a content type that
 * fits) before anything is imported: a bad blob writes nothing.
 */
export function readMoved(blob: Uint8Array, maxKeyBytes: number): MovedEntry[] {
  // A Buffer view of the blob (msgpack may hand over a plain Uint8Array).
  const b = Buffer.isBuffer(blob) ? blob : Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const out: MovedEntry[] = [];
  let off = 0;
  const bad = (why: string) => kvError('KV_ERR_BAD_FRAME', `moved record ${out.length}: ${why}`);
  while (off < b.length) {
    if (off + 2 > b.length) throw bad('truncated key length');
    const kLen = b.readUInt16LE(off);
    off += 2;
    if (kLen < 5 || kLen > 4 + maxKeyBytes) throw bad(`key length ${kLen}`);
    if (off + kLen + 4 > b.length) throw bad('truncated key');
    const key = b.subarray(off, off + kLen);
    off += kLen;
    const vLen = b.readUInt32LE(off);
    off += 4;
    if (vLen < HEADER_BYTES || off + vLen > b.length) throw bad(`value length ${vLen}`);
    const value = b.subarray(off, off + vLen);
    off += vLen;
    if ((value[0]! & ~TOMBSTONE) !== 0) throw bad('unknown flags');
    if (HEADER_BYTES + value.readUInt16LE(OFF_CT_LEN) > vLen) throw bad('content type past the end');
    out.push({ key, value });
  }
  return out;
}

/** A version may be at most this far ahead of this shard's clock (versions are close to wall-clock microseconds). */
export const MAX_VERSION_AHEAD_MS = 24 * 3600 * 1000;
/** The longest tombstone grace period a moved tombstone may carry (the option tombstoneGraceMs is capped to it). */
export const MAX_TOMBSTONE_GRACE_MS = 366 * 24 * 3600 * 1000;
/** An expiry may be this far past the longest TTL (clock difference between shards). */
const EXPIRY_SKEW_MS = 60_000;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Checks what a moved record claims before it is imported: a valid UTF-8 key
 * whose ring point is the one it is stored under, a write epoch this shard
 * has reached, a version that is a safe integer not far ahead of our clock,
 * a sane expiry and content type, a value within the limit. A peer that
 * sends anything else is refused: one poisoned version or point would
 * spread with every later move.
 *
 * One checker serves one import's records. They are read where they lie:
 * printable ASCII keys (nearly all of them) are checked and hashed as bytes,
 * and a content type the same as the previous record's is not checked again.
 */
export class MovedChecker {
  readonly #limits: Limits;
  readonly #epoch: number;
  readonly #now: number;
  /** The last content type accepted, as bytes. */
  #ct: Buffer | undefined;

  constructor(limits: Limits, epoch: number, now: number) {
    this.#limits = limits;
    this.#epoch = epoch;
    this.#now = now;
  }

  check(m: MovedEntry): void {
    const bad = (why: string) => kvError('KV_ERR_BAD_FRAME', `moved record: ${why}`);
    const limits = this.#limits;
    const k = m.key;
    if (!isPlainAscii(k, 4)) {
      let key: string;
      try {
        key = utf8.decode(k.subarray(4));
      } catch {
        throw bad('key is not valid UTF-8');
      }
      validateKey(key, limits);
    } else if (k.length - 4 > limits.maxKeyBytes) throw kvError('KV_ERR_KEY_TOO_LONG', k.length - 4, limits.maxKeyBytes);
    if (md5PointOfBytes(k, 4, k.length) !== pointOf(k)) throw bad(`ring point ${pointOf(k)} is not the point of its key`);
    const v = m.value;
    const e = epochOf(v);
    // Not yet seen here: the sender retries once this shard has caught up.
    if (e > this.#epoch) throw kvErrorWith('KV_ERR_STALE_EPOCH', { epoch: this.#epoch }, e, this.#epoch);
    const now = this.#now;
    const ver = versionOf(v);
    if (!Number.isSafeInteger(ver) || ver < 1 || ver > (now + MAX_VERSION_AHEAD_MS) * 1000)
      throw bad(`version ${ver} is not a whole number from 1 to about now in microseconds`);
    const x = expiryOf(v);
    // A tombstone's expiry is its delete time plus the source's grace period, which may exceed the longest TTL.
    const maxAhead = Math.max(limits.maxTtlSeconds * 1000, isTombstone(v) ? MAX_TOMBSTONE_GRACE_MS : 0) + EXPIRY_SKEW_MS;
    if (!Number.isSafeInteger(x) || x < 0 || x > now + maxAhead) throw bad(`expiry ${x} is out of range`);
    const ctLen = v.readUInt16LE(OFF_CT_LEN);
    if (isTombstone(v)) {
      if (ctLen !== 0 || v.byteLength !== HEADER_BYTES) throw bad('a tombstone carries no content type or value');
      return;
    }
    const last = this.#ct;
    if (last === undefined || last.length !== ctLen || last.compare(v, HEADER_BYTES, HEADER_BYTES + ctLen) !== 0) {
      let ct: string;
      try {
        ct = utf8.decode(v.subarray(HEADER_BYTES, HEADER_BYTES + ctLen));
      } catch {
        throw bad('content type is not valid UTF-8');
      }
      validateContentType(ct, limits);
      this.#ct = Buffer.from(v.subarray(HEADER_BYTES, HEADER_BYTES + ctLen));
    }
    if (v.byteLength - HEADER_BYTES - ctLen > limits.maxValueBytes) throw kvError('KV_ERR_VALUE_TOO_LARGE', limits.maxValueBytes);
  }
}

/** Bytes from `from` on are all printable ASCII (0x20 to 0x7e): valid UTF-8 without control characters. */
function isPlainAscii(b: Uint8Array, from: number): boolean {
  for (let i = from; i < b.length; i++) {
    const c = b[i]!;
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}
