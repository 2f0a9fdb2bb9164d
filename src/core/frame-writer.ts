// Writes a frame whose body is an array (every request and answer frame after
// the handshake) into one buffer of the frame's exact length: the size of
// each element first, then the bytes. msgpackr packs into a buffer of its own
// and, when a frame does not fit what is left of it, allocates a new one of
// four times the frame so far and copies over: with 16 KiB values that was an
// allocation outside the V8 heap of a multiple of every frame, and such
// allocations drive V8's major collections. Here a frame is written once, at
// its length, into a slice of a slab (small frames come from Buffer's pool),
// and each value is copied once.
//
// The bytes are the ones msgpackr writes for the same body (the same choice
// of integer, float, string, binary, array and map encodings; a unit test
// compares them). Elements are numbers, strings, booleans, nulls, undefined
// and byte arrays, and arrays and plain objects of them (a rebalancing scan's
// answer of half a megabyte among them); anything else (a BigInt, a Date, an
// instance of a class, nesting deeper than MAX_DEPTH) is packed by msgpackr
// and copied in.
/** The 4-byte big-endian length in front of every frame's body. */
export const FRAME_HEADER_BYTES = 4;

/** Packs one element the writer does not encode itself. */
type ElementPacker = (el: unknown) => Uint8Array;

const arrayHeaderSize = (n: number): number => (n < 0x10 ? 1 : n < 0x10000 ? 3 : 5);
const lengthHeaderSize = (n: number): number => (n < 0x100 ? 2 : n < 0x10000 ? 3 : 5);
const strHeaderSize = (n: number): number => (n < 0x20 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5);

/** Encoded size of a scalar, or -1 when it is not one this writer encodes. */
function scalarSize(v: unknown): number {
  switch (typeof v) {
    case 'number':
      // As msgpackr (records off): positive fixint below 0x80, then uint 8/16/32;
      // negative fixint from -32, then int 8/16/32; anything else a float64.
      if (v >>> 0 === v) return v < 0x80 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : 5;
      if (v >> 0 === v) return v >= -0x20 ? 1 : v >= -0x80 ? 2 : v >= -0x8000 ? 3 : 5;
      return 9;
    case 'string': {
      const n = Buffer.byteLength(v, 'utf8');
      return strHeaderSize(n) + n;
    }
    case 'boolean':
      return 1;
    case 'object':
      if (v === null) return 1;
      if (v instanceof Uint8Array) return lengthHeaderSize(v.byteLength) + v.byteLength;
      return -1;
    default:
      return -1;
  }
}

/** Encoded size of a flat array of scalars (the hot answers and requests), or -1. */
function flatArraySize(a: readonly unknown[]): number {
  let size = arrayHeaderSize(a.length);
  for (let j = 0; j < a.length; j++) {
    const s = scalarSize(a[j]);
    if (s < 0) return -1;
    size += s;
  }
  return size;
}

/** Arrays and maps nested deeper than this are left to msgpackr. */
const MAX_DEPTH = 4;
/** msgpackr's bytes for undefined: fixext 1 of type 0. */
const UNDEFINED_BYTES = 3;

/** A plain object (an object literal or one without a prototype): msgpackr writes it as a map. */
function isPlainObject(v: object): v is Record<string, unknown> {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Encoded size of a value: a scalar, undefined, or an array or plain object of such values; -1 for anything else. */
function valueSize(v: unknown, depth: number): number {
  if (Array.isArray(v)) {
    if (depth >= MAX_DEPTH) return -1;
    let size = arrayHeaderSize(v.length);
    for (let j = 0; j < v.length; j++) {
      const e = valueSize(v[j], depth + 1);
      if (e < 0) return -1;
      size += e;
    }
    return size;
  }
  const s = scalarOrUndefinedSize(v);
  if (s >= 0 || typeof v !== 'object' || v === null || depth >= MAX_DEPTH) return s;
  if (!isPlainObject(v)) return -1;
  const keys = Object.keys(v);
  // msgpackr writes every map with a 16-bit count (and refuses larger ones).
  if (keys.length > 0xffff) return -1;
  let size = 3;
  for (const k of keys) {
    const e = valueSize(v[k], depth + 1);
    if (e < 0) return -1;
    size += scalarSize(k) + e;
  }
  return size;
}

/** A scalar's size, 3 for undefined, or -1. */
const scalarOrUndefinedSize = (v: unknown): number => (v === undefined ? UNDEFINED_BYTES : scalarSize(v));

/** Writes a value valueSize() accepted; returns the offset after it. */
function writeValue(b: Buffer, off: number, v: unknown): number {
  if (Array.isArray(v)) {
    off = writeArrayHeader(b, off, v.length);
    for (let j = 0; j < v.length; j++) off = writeValue(b, off, v[j]);
    return off;
  }
  if (v === undefined) {
    b[off] = 0xd4;
    b[off + 1] = 0;
    b[off + 2] = 0;
    return off + UNDEFINED_BYTES;
  }
  if (typeof v !== 'object' || v === null || v instanceof Uint8Array) return writeScalar(b, off, v);
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  b[off] = 0xde;
  b.writeUInt16BE(keys.length, off + 1);
  off += 3;
  for (const k of keys) {
    off = writeScalar(b, off, k);
    off = writeValue(b, off, o[k]);
  }
  return off;
}

function writeArrayHeader(b: Buffer, off: number, n: number): number {
  if (n < 0x10) {
    b[off] = 0x90 | n;
    return off + 1;
  }
  if (n < 0x10000) {
    b[off] = 0xdc;
    b.writeUInt16BE(n, off + 1);
    return off + 3;
  }
  b[off] = 0xdd;
  b.writeUInt32BE(n, off + 1);
  return off + 5;
}

/**
 * A str 8/16/32 or bin 8/16/32 header: `code8` is the 8-bit form's type
 * byte, the 16- and 32-bit forms' are the next two (0xd9.., 0xc4..).
 */
function writeLength(b: Buffer, off: number, n: number, code8: number): number {
  if (n < 0x100) {
    b[off] = code8;
    b[off + 1] = n;
    return off + 2;
  }
  if (n < 0x10000) {
    b[off] = code8 + 1;
    b.writeUInt16BE(n, off + 1);
    return off + 3;
  }
  b[off] = code8 + 2;
  b.writeUInt32BE(n, off + 1);
  return off + 5;
}

/** Writes a scalar scalarSize() accepted; returns the offset after it. */
function writeScalar(b: Buffer, off: number, v: unknown): number {
  switch (typeof v) {
    case 'number':
      if (v >>> 0 === v) {
        if (v < 0x80) {
          b[off] = v;
          return off + 1;
        }
        if (v < 0x100) {
          b[off] = 0xcc;
          b[off + 1] = v;
          return off + 2;
        }
        if (v < 0x10000) {
          b[off] = 0xcd;
          b.writeUInt16BE(v, off + 1);
          return off + 3;
        }
        b[off] = 0xce;
        b.writeUInt32BE(v, off + 1);
        return off + 5;
      }
      if (v >> 0 === v) {
        if (v >= -0x20) {
          b[off] = 0x100 + v;
          return off + 1;
        }
        if (v >= -0x80) {
          b[off] = 0xd0;
          b[off + 1] = v + 0x100;
          return off + 2;
        }
        if (v >= -0x8000) {
          b[off] = 0xd1;
          b.writeInt16BE(v, off + 1);
          return off + 3;
        }
        b[off] = 0xd2;
        b.writeInt32BE(v, off + 1);
        return off + 5;
      }
      b[off] = 0xcb;
      b.writeDoubleBE(v, off + 1);
      return off + 9;
    case 'string': {
      const n = Buffer.byteLength(v, 'utf8');
      if (n < 0x20) b[off++] = 0xa0 | n;
      else off = writeLength(b, off, n, 0xd9);
      return off + (n === 0 ? 0 : b.write(v, off, n, 'utf8'));
    }
    case 'boolean':
      b[off] = v ? 0xc3 : 0xc2;
      return off + 1;
    default: {
      if (v === null) {
        b[off] = 0xc0;
        return off + 1;
      }
      const u = v as Uint8Array;
      off = writeLength(b, off, u.byteLength, 0xc4);
      b.set(u, off);
      return off + u.byteLength;
    }
  }
}

/** Frames from 4 KiB up to half of this are cut from one slab (Buffer's pool takes the smaller ones); the decoder's too. */
const SLAB_BYTES = 1024 * 1024;
let slab: Buffer | undefined;
let slabUsed = 0;

/**
 * `n` bytes for one frame, never handed out again. A buffer of its own for
 * every large frame cost more than the copies (a fresh allocation of that size
 * each time); cut from a slab that later frames go on filling, a frame costs
 * a slice, as with msgpackr's own buffer.
 */
export function frameBuffer(n: number): Buffer {
  if (n < 4096 || n > SLAB_BYTES / 2) return Buffer.allocUnsafe(n);
  if (!slab || slabUsed + n > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slabUsed = 0;
  }
  const start = slabUsed;
  // 8-byte aligned, as msgpackr starts its frames.
  slabUsed = (start + n + 7) & ~7;
  return slab.subarray(start, start + n);
}

/**
 * The frame (length header and msgpack body) of an array body, each element
 * as it goes on the wire. `pack` encodes the elements this writer does not.
 */
export function writeArrayFrame(body: readonly unknown[], pack: ElementPacker): Buffer {
  const n = body.length;
  // Element sizes, or -1 for one packed by msgpackr (its bytes in `packed`);
  // `nested` marks the elements that are not flat arrays of scalars.
  const sizes = new Array<number>(n);
  let packed: Array<Uint8Array | undefined> | undefined;
  let nested: boolean[] | undefined;
  let size = arrayHeaderSize(n);
  for (let j = 0; j < n; j++) {
    const el = body[j];
    let s = Array.isArray(el) ? flatArraySize(el) : -1;
    if (s < 0) {
      s = valueSize(el, 0);
      if (s >= 0) (nested ??= new Array<boolean>(n).fill(false))[j] = true;
    }
    if (s < 0) {
      const p = pack(el);
      (packed ??= new Array<Uint8Array | undefined>(n))[j] = p;
      s = p.byteLength;
      sizes[j] = -1;
    } else sizes[j] = s;
    size += s;
  }
  const frame = frameBuffer(FRAME_HEADER_BYTES + size);
  frame.writeUInt32BE(size, 0);
  let off = writeArrayHeader(frame, FRAME_HEADER_BYTES, n);
  for (let j = 0; j < n; j++) {
    if (sizes[j]! < 0) {
      const p = packed![j]!;
      frame.set(p, off);
      off += p.byteLength;
    } else if (nested?.[j]) off = writeValue(frame, off, body[j]);
    else {
      const a = body[j] as readonly unknown[];
      off = writeArrayHeader(frame, off, a.length);
      for (let k = 0; k < a.length; k++) off = writeScalar(frame, off, a[k]);
    }
  }
  return frame;
}
