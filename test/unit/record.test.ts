import { describe, expect, it } from 'vitest';
import {
  HEADER_BYTES,
  MovedWriter,
  cursorOf,
  decodeRecord,
  encodeRecord,
  epochOf,
  expiryBound,
  expiryKey,
  expiryKeyParts,
  expiryOf,
  INDEX_BUCKET_BITS,
  indexKey,
  isExpired,
  isTombstone,
  pointOf,
  readMoved,
  recordKey,
  successor,
  valueLength,
  versionOf,
} from '../../src/shard/record.js';
import { thrownKvError } from '../helpers/errors.js';

const cmp = (a: Buffer, b: Buffer) => Buffer.compare(a, b);

describe('record layout', () => {
  it('round-trips values, tombstones, content types and numbers', () => {
    const v = encodeRecord({
      v: Buffer.from([0, 1, 255]),
      ct: 'text/plain; charset=utf-8',
      ver: 1_764_000_000_123_456,
      x: 1_764_000_999_000,
      e: 4_000_000_000,
    });
    expect(decodeRecord(v)).toEqual({
      v: Buffer.from([0, 1, 255]),
      ct: 'text/plain; charset=utf-8',
      ver: 1_764_000_000_123_456,
      x: 1_764_000_999_000,
      e: 4_000_000_000,
    });
    expect([isTombstone(v), epochOf(v), versionOf(v), expiryOf(v), valueLength(v)]).toEqual([
      false,
      4_000_000_000,
      1_764_000_000_123_456,
      1_764_000_999_000,
      3,
    ]);
    const t = encodeRecord({ v: null, ct: '', ver: 7, x: 99, d: 1, e: 3 });
    expect(decodeRecord(t)).toEqual({ v: null, ct: '', ver: 7, x: 99, d: 1, e: 3 });
    expect([isTombstone(t), valueLength(t), t.length]).toEqual([true, 0, HEADER_BYTES]);
    expect(decodeRecord(encodeRecord({ v: new Uint8Array(0), ct: 'a/b', ver: 1, x: 0, e: 0 })).v).toEqual(Buffer.alloc(0));
  });

  it('refuses an epoch that does not fit', () => {
    expect(thrownKvError(() => encodeRecord({ v: null, ct: '', ver: 1, x: 0, e: 2 ** 32 })).code).toBe('KV_ERR_INTERNAL');
  });

  it('expired means a value past its expiry, never a tombstone', () => {
    expect(isExpired(encodeRecord({ v: Buffer.from('a'), ct: 'a/b', ver: 1, x: 100, e: 0 }), 100)).toBe(true);
    expect(isExpired(encodeRecord({ v: Buffer.from('a'), ct: 'a/b', ver: 1, x: 101, e: 0 }), 100)).toBe(false);
    expect(isExpired(encodeRecord({ v: Buffer.from('a'), ct: 'a/b', ver: 1, x: 0, e: 0 }), 100)).toBe(false);
    expect(isExpired(encodeRecord({ v: null, ct: '', ver: 1, x: 50, d: 1, e: 0 }), 100)).toBe(false);
  });

  it('record keys sort by point first, then key bytes; the successor sorts right after', () => {
    const keys = [recordKey(5, 'b'), recordKey(0xffffffff, 'a'), recordKey(5, 'a'), recordKey(4, 'zzz'), recordKey(5, 'a\u0000'), recordKey(0x80000000, 'é')];
    const sorted = [...keys].sort(cmp).map(cursorOf);
    expect(sorted).toEqual([
      [4, 'zzz'],
      [5, 'a'],
      [5, 'a\u0000'],
      [5, 'b'],
      [0x80000000, 'é'],
      [0xffffffff, 'a'],
    ]);
    expect(pointOf(recordKey(0xfedcba98, 'k'))).toBe(0xfedcba98);
    const k = recordKey(5, 'a');
    expect(cmp(successor(k), k)).toBe(1);
    expect(cmp(successor(k), recordKey(5, 'a\u0000'))).toBeLessThanOrEqual(0);
  });

  it('expiry keys sort by expiry, and the bound includes exactly what is due', () => {
    const rk = recordKey(9, 'key');
    const a = expiryKey(1_764_000_000_000, rk);
    const b = expiryKey(1_764_000_000_001, recordKey(0, 'a'));
    expect(cmp(a, b)).toBe(-1);
    expect(expiryKeyParts(a)).toEqual({ x: 1_764_000_000_000, rk });
    expect(cmp(a, expiryBound(1_764_000_000_000))).toBe(-1);
    expect(cmp(b, expiryBound(1_764_000_000_000))).toBe(1);
  });
});

describe('moved records', () => {
  const entry = (p: number, k: string, v: string) => [recordKey(p, k), encodeRecord({ v: Buffer.from(v), ct: 'text/plain', ver: 1, x: 0, e: 2 })] as const;

  it('packs and reads back entries byte for byte', () => {
    const w = new MovedWriter();
    const es = [entry(1, 'a', 'x'), entry(2, 'ключ', ''), [recordKey(3, 'gone'), encodeRecord({ v: null, ct: '', ver: 5, x: 0, d: 1, e: 1 })] as const];
    for (const [k, v] of es) w.add(k, v);
    const blob = w.finish();
    expect(w.count).toBe(3);
    expect(blob.length).toBe(w.bytes);
    expect(readMoved(blob, 1024).map((m) => [m.key, m.value])).toEqual(es.map(([k, v]) => [k, v]));
    expect(readMoved(new MovedWriter().finish(), 1024)).toEqual([]);
  });

  it('refuses malformed blobs with KV_ERR_BAD_FRAME', () => {
    const w = new MovedWriter();
    const [k, v] = entry(1, 'a', 'value');
    w.add(k, v);
    const good = w.finish();
    const bad: Buffer[] = [
      good.subarray(0, good.length - 1), // truncated value
      good.subarray(0, 1), // truncated key length
      Buffer.concat([good, Buffer.from([9])]), // trailing garbage
    ];
    const shortKey = Buffer.from(good);
    shortKey.writeUInt16LE(4, 0);
    bad.push(shortKey);
    const flags = Buffer.from(good);
    flags[2 + k.length + 4] = 0x80;
    bad.push(flags);
    const ct = Buffer.from(good);
    ct.writeUInt16LE(1000, 2 + k.length + 4 + 21);
    bad.push(ct);
    for (const b of bad) expect(thrownKvError(() => readMoved(b, 1024)).code).toBe('KV_ERR_BAD_FRAME');
    // Keys longer than the limit are refused too.
    expect(thrownKvError(() => readMoved(good, 0)).code).toBe('KV_ERR_BAD_FRAME');
  });
});

describe('indexKey', () => {
  it('is the bucket (top bits of the point) then the key bytes, for short and long keys alike', () => {
    const keys = ['a', 'key-0000001', 'ключ', '🔑x', 'k'.repeat(32), 'k'.repeat(33), 'é'.repeat(40), 'z'.repeat(1000)];
    for (const key of keys) {
      for (const point of [0, 1, 0x03ffffff, 0x04000000, 0x7fffffff, 0xfc000000, 0xffffffff]) {
        const want = Buffer.concat([Buffer.from([point >>> (32 - INDEX_BUCKET_BITS)]), Buffer.from(key, 'utf8')]);
        expect(indexKey(recordKey(point, key)).equals(want), `${key.length} chars at ${point}`).toBe(true);
      }
    }
  });
});
