// The frame writer (array bodies written at their exact length) against
// msgpackr's own bytes, and the decoder's transient chunks (a read buffer
// the socket fills again after each push).
import { describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import { FRAME_HEADER_BYTES, FrameDecoder, GetAnswer, TAGS, encodeFrame } from '../../src/core/protocol.js';
import { thrownKvError } from '../helpers/errors.js';

const raw = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

/** The frame msgpackr would write for `body`: its length, then its bytes. */
function packrFrame(body: unknown): Buffer {
  const b = raw.pack(body);
  const f = Buffer.alloc(FRAME_HEADER_BYTES + b.length);
  f.writeUInt32BE(b.length, 0);
  b.copy(f, FRAME_HEADER_BYTES);
  return f;
}

const bytes = (n: number, seed = 1): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
};

const NUMBERS = [
  0,
  1,
  0x1f,
  0x20,
  0x3f,
  0x40,
  0x7f,
  0x80,
  0xff,
  0x100,
  0xffff,
  0x10000,
  0xffffffff,
  0x100000000,
  1_700_000_000_000_123,
  Number.MAX_SAFE_INTEGER,
  -1,
  -0x20,
  -0x21,
  -0x80,
  -0x81,
  -0x8000,
  -0x8001,
  -0x80000000,
  -0x80000001,
  1.5,
  -2.25,
  0.1,
  Number.NaN,
  Infinity,
  -Infinity,
  -0,
];
const STRINGS = [
  '',
  'a',
  'x'.repeat(31),
  'x'.repeat(32),
  'x'.repeat(255),
  'x'.repeat(256),
  'x'.repeat(65_535),
  'x'.repeat(65_536),
  'é'.repeat(16), // 32 bytes in 16 characters
  'ключ 😀',
  '😀'.repeat(70),
  'lone \ud800 surrogate',
  'application/octet-stream',
];
const BINARIES = [0, 1, 255, 256, 65_535, 65_536, 16_384].map((n) => bytes(n));

describe('encodeFrame of an array body', () => {
  it.each([
    ['numbers at every encoding boundary', NUMBERS.map((n) => [TAGS.PUT_DONE, 1, n])],
    ['strings at every length boundary, multi-byte and lone surrogates', STRINGS.map((s, i) => [TAGS.GET, i, 3, s])],
    ['binary values at every length boundary', BINARIES.map((v, i) => [TAGS.GET_VALUE, i, v, 'a/b', 1_700_000_000_000_123, 0, 4])],
    ['Uint8Array values (not Buffers)', [[TAGS.GET_VALUE, 1, Uint8Array.from([1, 2, 3]), 'x', 1, 0, null]]],
    [
      'booleans and nulls',
      [
        [TAGS.DEL_DONE, 1, true, 7],
        [TAGS.DEL_DONE, 2, false, 8],
        [TAGS.GET_TOMBSTONE, 3, 9, null],
      ],
    ],
    [
      'maps and nested arrays beside flat ones',
      [{ i: 1, err: { code: 'KV_ERR_NOT_OWNER', message: 'no', epoch: 3 } }, [1, [2, 3]], [TAGS.GET_NONE, 2], 'str', 5, null],
    ],
    [
      'elements that are not arrays of scalars',
      [
        [1, undefined],
        [1, { a: 1 }],
        [1, 10n],
      ],
    ],
    [
      'maps: empty, nested, with undefined, without a prototype, with 16 and more keys',
      [
        {},
        { i: 7, r: { packed: bytes(70_000), n: 3, live: 2, bytes: 1.5, next: [4_000_000_000, 'k/é'] } },
        { i: 8, r: { packed: bytes(3), n: 0, live: 0, bytes: 0, next: undefined } },
        Object.assign(Object.create(null) as object, { a: 1, b: [null, true] }),
        Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i])),
        Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`ключ${i}`, { v: i * 1.25 }])),
        { 2: 'two', 1: 'one', b: 'b', a: 'a' },
        [undefined, [undefined]],
      ],
    ],
    [
      'what it leaves to msgpackr: a Date, a Map, a class instance, nesting deeper than it writes',
      [{ i: 1, r: new Date(0) }, { m: new Map([['a', 1]]) }, { x: new (class Point {})() }, [[[[[1]]]]], { a: { b: { c: { d: { e: 1 } } } } }],
    ],
    ['an array element of 16 and more fields', [Array.from({ length: 16 }, (_, i) => i), Array.from({ length: 300 }, (_, i) => `s${i}`)]],
    ['an empty body', []],
  ])('writes the bytes msgpackr writes: %s', (_name, body) => {
    expect(encodeFrame(body).equals(packrFrame(body))).toBe(true);
  });

  it('writes bodies of 15, 16 and 70,000 elements as msgpackr does', () => {
    for (const n of [15, 16, 70_000]) {
      const body = Array.from({ length: n }, (_, i) => [TAGS.PUT_DONE, i, i * 3]);
      expect(encodeFrame(body).equals(packrFrame(body)), `${n} elements`).toBe(true);
    }
  });

  it('writes the hot answers as the positional arrays they stand for', () => {
    const v = bytes(16_384);
    const answers = [new GetAnswer(1, { v, ct: 'a/b', ver: 1_700_000_000_000_123, x: 5, e: 4 }), new GetAnswer(2, null)];
    expect(
      encodeFrame(answers).equals(
        packrFrame([
          [TAGS.GET_VALUE, 1, v, 'a/b', 1_700_000_000_000_123, 5, 4],
          [TAGS.GET_NONE, 2],
        ]),
      ),
    ).toBe(true);
  });

  it('never writes over a frame it handed out', () => {
    const body = (i: number) => Array.from({ length: 8 }, (_, j) => [TAGS.GET_VALUE, j, bytes(16_384, i + j), 'a/b', i, 0, null]);
    const frames = Array.from({ length: 40 }, (_, i) => encodeFrame(body(i)));
    for (const [i, f] of frames.entries()) expect(f.equals(packrFrame(body(i))), `frame ${i}`).toBe(true);
  });
});

/** Feeds `pieces` through one reused read buffer, scribbled over after every push, as a socket's onread does. */
function pushTransient(dec: FrameDecoder, pieces: Buffer[]): unknown[] {
  const readBuf = Buffer.alloc(Math.max(1, ...pieces.map((p) => p.length)));
  const out: unknown[] = [];
  for (const p of pieces) {
    p.copy(readBuf, 0);
    out.push(...dec.push(readBuf.subarray(0, p.length), true));
    readBuf.fill(0xee);
  }
  return out;
}

describe('FrameDecoder with transient chunks', () => {
  const MAX = 1 << 24;
  const v1 = bytes(16_384, 1);
  const v2 = bytes(300, 2);
  const frames = [
    encodeFrame([
      [TAGS.GET_VALUE, 1, v1, 'a/b', 11, 0, 4],
      [TAGS.GET_NONE, 2],
    ]),
    encodeFrame([[TAGS.GET_VALUE, 3, v2, 'c/d', 12, 0, null]]),
    encodeFrame({ hello: 2, id: 's1', nonce: bytes(32) }),
  ];
  const stream = Buffer.concat(frames);

  function check(out: unknown[], what: string): void {
    expect(out, what).toHaveLength(3);
    const [a, b, c] = out as [
      Array<{ i: number; r: { v: Uint8Array } | null }>,
      Array<{ r: { v: Uint8Array; ct: string } }>,
      { id: string; nonce: Uint8Array },
    ];
    expect(Buffer.from(a[0]!.r!.v).equals(v1), what).toBe(true);
    expect(a[1]).toEqual({ i: 2, r: null });
    expect(Buffer.from(b[0]!.r.v).equals(v2), what).toBe(true);
    expect(b[0]!.r.ct).toBe('c/d');
    expect(c.id).toBe('s1');
    expect(Buffer.from(c.nonce).equals(bytes(32)), what).toBe(true);
  }

  it('keeps values intact after the read buffer is reused, split at every boundary', () => {
    for (let cut = 0; cut <= stream.length; cut += cut < 64 || stream.length - cut < 64 ? 1 : 97) {
      const dec = new FrameDecoder(MAX);
      check(pushTransient(dec, [stream.subarray(0, cut), stream.subarray(cut)]), `cut at ${cut}`);
      expect(dec.buffered).toBe(0);
    }
  });

  it('decodes several frames in one transient chunk, and one byte at a time', () => {
    check(pushTransient(new FrameDecoder(MAX), [stream]), 'one chunk');
    const dec = new FrameDecoder(MAX);
    check(
      pushTransient(
        dec,
        Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1)),
      ),
      'byte by byte',
    );
  });

  it('decodes frames split across chunks of a socket read size', () => {
    const big = encodeFrame(Array.from({ length: 40 }, (_, i) => [TAGS.GET_VALUE, i, bytes(16_384, i), 'a/b', i, 0, 4]));
    const pieces: Buffer[] = [];
    for (let off = 0; off < big.length; off += 65_536) pieces.push(big.subarray(off, off + 65_536));
    const dec = new FrameDecoder(MAX);
    const [out] = pushTransient(dec, pieces) as [Array<{ i: number; r: { v: Uint8Array } }>];
    expect(out).toHaveLength(40);
    for (const [i, a] of out.entries()) expect(Buffer.from(a.r.v).equals(bytes(16_384, i)), `value ${i}`).toBe(true);
  });

  it('counts a partial frame at the length it is allocated at, and nothing once it is decoded', () => {
    const dec = new FrameDecoder(MAX);
    const f = frames[0]!;
    expect(dec.push(f.subarray(0, 2), true)).toEqual([]);
    expect(dec.buffered).toBe(2);
    expect(dec.push(f.subarray(2, 100), true)).toEqual([]);
    expect(dec.buffered).toBe(f.length - FRAME_HEADER_BYTES);
    expect(dec.push(f.subarray(100), true)).toHaveLength(1);
    expect(dec.buffered).toBe(0);
  });

  it('refuses an oversized frame from its header, before allocating anything for it', () => {
    const head = Buffer.alloc(FRAME_HEADER_BYTES);
    head.writeUInt32BE(1001, 0);
    const dec = new FrameDecoder(1000);
    expect(dec.push(head.subarray(0, 3), true)).toEqual([]);
    expect(thrownKvError(() => dec.push(head.subarray(3), true)).code).toBe('KV_ERR_FRAME_TOO_LARGE');
    expect(dec.buffered).toBe(0);
    expect(thrownKvError(() => new FrameDecoder(1000).push(Buffer.concat([frames[2]!, head]), true)).code).toBe('KV_ERR_FRAME_TOO_LARGE');
  });

  it('refuses an empty or undecodable body with KV_ERR_BAD_FRAME', () => {
    const empty = Buffer.alloc(FRAME_HEADER_BYTES);
    expect(thrownKvError(() => new FrameDecoder(MAX).push(empty, true)).code).toBe('KV_ERR_BAD_FRAME');
    const bad = Buffer.from([0, 0, 0, 2, 0x92, 0x01]);
    expect(thrownKvError(() => pushTransient(new FrameDecoder(MAX), [bad.subarray(0, 5), bad.subarray(5)])).code).toBe('KV_ERR_BAD_FRAME');
  });
});
