// The first 32 bits of a string's MD5 (RFC 1321), little end first: the ring
// point hashring gives a key. Computed in JavaScript because both the router
// and the shard hash every request's key, and node:crypto's one-shot hash
// costs a native call, a UTF-8 copy and a Buffer for 4 of its 16 bytes: about
// 1 µs a key, against about a tenth of that here for keys of a block or two.
// test/unit/md5-point.test.ts checks it against node:crypto byte for byte.
// Pure: no I/O. Not for anything that needs MD5 as a digest.

/** Per-round shift amounts and sine-derived constants (RFC 1321 section 3.4). */
const S = Int32Array.from([7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21]);
const K = Int32Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0);

/** The message block as 16 little-endian words. */
const X = new Int32Array(16);
/** UTF-8 bytes of the key plus padding; grown when a longer key comes. */
let buf = new Uint8Array(256);
const encoder = new TextEncoder();

/** Room in `buf` for `n` bytes and the padding. */
function reserve(n: number): void {
  if (buf.length < n + 72) buf = new Uint8Array(n + 72);
}

/** UTF-8 encode `s` into `buf` (ASCII without the encoder); returns its byte length. */
function encode(s: string): number {
  const n = s.length;
  // Room for the worst case: 3 bytes per UTF-16 unit.
  reserve(n * 3);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return encoder.encodeInto(s, buf).written;
    buf[i] = c;
  }
  return n;
}

/** MD5 of `s` (as UTF-8): its first four bytes as an unsigned 32-bit integer, byte 0 lowest. */
export function md5Point(s: string): number {
  return digest(encode(s));
}

/** The same for bytes already in UTF-8: `bytes[start..end)` (a moved record's key, say), without making a string. */
export function md5PointOfBytes(bytes: Uint8Array, start: number, end: number): number {
  const len = end - start;
  reserve(len);
  buf.set(bytes.subarray(start, end));
  return digest(len);
}

/** MD5 of the first `len` bytes of `buf` (which has room for the padding). */
function digest(len: number): number {
  // Padding: 0x80, zeros to 56 mod 64, then the bit length as 64 bits little-endian.
  const total = ((len + 8) >>> 6) * 64 + 64;
  buf[len] = 0x80;
  buf.fill(0, len + 1, total - 8);
  const bits = len * 8;
  buf[total - 8] = bits & 0xff;
  buf[total - 7] = (bits >>> 8) & 0xff;
  buf[total - 6] = (bits >>> 16) & 0xff;
  buf[total - 5] = (bits >>> 24) & 0xff;
  const hi = Math.floor(len / 0x20000000);
  buf[total - 4] = hi & 0xff;
  buf[total - 3] = (hi >>> 8) & 0xff;
  buf[total - 2] = (hi >>> 16) & 0xff;
  buf[total - 1] = (hi >>> 24) & 0xff;

  let a0 = 0x67452301 | 0;
  let b0 = 0xefcdab89 | 0;
  let c0 = 0x98badcfe | 0;
  let d0 = 0x10325476 | 0;
  for (let off = 0; off < total; off += 64) {
    for (let j = 0; j < 16; j++) {
      const p = off + j * 4;
      X[j] = buf[p]! | (buf[p + 1]! << 8) | (buf[p + 2]! << 16) | (buf[p + 3]! << 24);
    }
    let a = a0;
    let b = b0;
    let c = c0;
    let d = d0;
    for (let i = 0; i < 16; i++) {
      const t = (a + ((b & c) | (~b & d)) + K[i]! + X[i]!) | 0;
      const r = S[i & 3]!;
      a = d;
      d = c;
      c = b;
      b = (b + ((t << r) | (t >>> (32 - r)))) | 0;
    }
    for (let i = 16; i < 32; i++) {
      const t = (a + ((d & b) | (~d & c)) + K[i]! + X[(5 * i + 1) & 15]!) | 0;
      const r = S[4 | (i & 3)]!;
      a = d;
      d = c;
      c = b;
      b = (b + ((t << r) | (t >>> (32 - r)))) | 0;
    }
    for (let i = 32; i < 48; i++) {
      const t = (a + (b ^ c ^ d) + K[i]! + X[(3 * i + 5) & 15]!) | 0;
      const r = S[8 | (i & 3)]!;
      a = d;
      d = c;
      c = b;
      b = (b + ((t << r) | (t >>> (32 - r)))) | 0;
    }
    for (let i = 48; i < 64; i++) {
      const t = (a + (c ^ (b | ~d)) + K[i]! + X[(7 * i) & 15]!) | 0;
      const r = S[12 | (i & 3)]!;
      a = d;
      d = c;
      c = b;
      b = (b + ((t << r) | (t >>> (32 - r)))) | 0;
    }
    a0 = (a0 + a) | 0;
    b0 = (b0 + b) | 0;
    c0 = (c0 + c) | 0;
    d0 = (d0 + d) | 0;
  }
  return a0 >>> 0;
}
