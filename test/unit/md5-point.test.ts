import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { md5Point, md5PointOfBytes } from '../../src/core/md5-point.js';

/** The reference: node:crypto's MD5, first four bytes, byte 0 lowest (hashring's point). */
function reference(s: string): number {
  return createHash('md5').update(s, 'utf8').digest().readUInt32LE(0);
}

/** A seeded generator, so a failure names a reproducible string. */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

describe('md5Point', () => {
  it('matches the RFC 1321 test suite', () => {
    // RFC 1321 appendix A.5 digests; the point is their first four bytes read little-endian.
    const suite: Array<[string, string]> = [
      ['', 'd41d8cd98f00b204e9800998ecf8427e'],
      ['a', '0cc175b9c0f1b6a831c399e269772661'],
      ['abc', '900150983cd24fb0d6963f7d28e17f72'],
      ['message digest', 'f96b697d7cb7938d525a2f31aaf161d0'],
      ['abcdefghijklmnopqrstuvwxyz', 'c3fcd3d76192e4007dfb496cca67e13b'],
      ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', 'd174ab98d277d9f5a5611c2c9f419d9f'],
      ['12345678901234567890123456789012345678901234567890123456789012345678901234567890', '57edf4a22be3c955ac49da2e2107b67a'],
    ];
    for (const [s, hex] of suite) expect(md5Point(s), JSON.stringify(s)).toBe(Buffer.from(hex, 'hex').readUInt32LE(0));
  });

  it('matches node:crypto at every length around the block and padding boundaries', () => {
    for (let n = 0; n <= 200; n++) {
      const s = 'x'.repeat(n);
      expect(md5Point(s), `length ${n}`).toBe(reference(s));
    }
  });

  it('matches node:crypto on random ASCII, multi-byte and astral keys, long ones included', () => {
    const rnd = lcg(42);
    const pick = (): string => {
      const r = rnd();
      if (r < 0.6) return String.fromCharCode(32 + Math.floor(rnd() * 95));
      if (r < 0.8) return String.fromCharCode(0x80 + Math.floor(rnd() * 0x700));
      if (r < 0.95) return String.fromCharCode(0x800 + Math.floor(rnd() * 0xd000));
      return String.fromCodePoint(0x10000 + Math.floor(rnd() * 0xfffff));
    };
    for (let t = 0; t < 3000; t++) {
      const len = t < 2900 ? Math.floor(rnd() * 80) : 1000 + Math.floor(rnd() * 3000);
      let s = '';
      while (s.length < len) s += pick();
      expect(md5Point(s), JSON.stringify(s)).toBe(reference(s));
    }
  });

  it('hashes a lone surrogate as UTF-8 does (the replacement character)', () => {
    for (const s of ['\ud800', 'a\udc00b', '\ud83d']) expect(md5Point(s)).toBe(reference(s));
  });

  it('gives the same point for a short key after a long one (no state left behind)', () => {
    const short = 'k000001';
    const before = md5Point(short);
    md5Point('y'.repeat(5000));
    expect(md5Point(short)).toBe(before);
    expect(before).toBe(reference(short));
  });

  it('hashes UTF-8 bytes in place (md5PointOfBytes) as it hashes the string', () => {
    const rnd = lcg(7);
    for (let t = 0; t < 500; t++) {
      const len = t < 480 ? Math.floor(rnd() * 130) : 2000 + Math.floor(rnd() * 2000);
      let s = '';
      while (s.length < len) s += rnd() < 0.8 ? String.fromCharCode(32 + Math.floor(rnd() * 95)) : String.fromCodePoint(0x80 + Math.floor(rnd() * 0x10000));
      // The bytes sit inside a larger buffer, as a key does inside a moved-records blob.
      const b = Buffer.concat([Buffer.from('head'), Buffer.from(s, 'utf8'), Buffer.from('tail')]);
      expect(md5PointOfBytes(b, 4, b.length - 4), JSON.stringify(s)).toBe(reference(s));
    }
  });
});
