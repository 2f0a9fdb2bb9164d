import { describe, expect, it } from 'vitest';
import { KvError } from '../../src/core/errors.js';
import { Packr } from 'msgpackr';
import {
  DelAnswer,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  GetAnswer,
  OPS,
  PutAnswer,
  TAGS,
  encodeFrame,
  encodedSize,
  type Request,
  type RequestOf,
} from '../../src/core/protocol.js';
import { thrownKvError } from '../helpers/errors.js';

const MAX = 1024 * 1024;

function sampleRequests(): Request[] {
  return [
    { i: 1, o: OPS.GET, e: 3, k: 'user:1' },
    { i: 2, o: OPS.PUT, e: 3, k: 'bin', v: Uint8Array.from([0, 1, 2, 127, 128, 254, 255]), ct: 'application/octet-stream', x: 1_700_000_000_000, m: 42 },
    { i: 3, o: OPS.PUT, e: 3, k: 'ключ 😀', v: new TextEncoder().encode('héllo'), ct: 'text/plain; charset=utf-8', x: 0, n: true },
    { i: 4, o: OPS.DEL, e: 3, k: 'gone', m: '*' },
    { i: 5, o: OPS.PING, e: 0 },
  ];
}

function bytesOf(v: unknown): number[] {
  expect(v).toBeInstanceOf(Uint8Array);
  return [...(v as Uint8Array)];
}

const thrownCode = (fn: () => unknown): string => thrownKvError(fn).code;

/** The frame for an arbitrary body: 4-byte big-endian length + bytes. */
function rawFrame(body: number[] | Buffer): Buffer {
  const b = Buffer.from(body);
  const head = Buffer.alloc(FRAME_HEADER_BYTES);
  head.writeUInt32BE(b.length, 0);
  return Buffer.concat([head, b]);
}

describe('encodeFrame', () => {
  it('prefixes the msgpack body with its length, big-endian', () => {
    const body = { hello: 'world' };
    const frame = encodeFrame(body);
    expect(frame.readUInt32BE(0)).toBe(frame.length - FRAME_HEADER_BYTES);
    expect(encodedSize(body)).toBe(frame.length - FRAME_HEADER_BYTES);
  });
});

describe('FrameDecoder', () => {
  it('round-trips a batch of requests, binary values byte for byte', () => {
    const reqs = sampleRequests();
    const [decoded, ...rest] = new FrameDecoder(MAX).push(encodeFrame(reqs));
    expect(rest).toEqual([]);
    const got = decoded as Request[];
    const [, put1, put2, del] = decoded as [RequestOf<'get'>, RequestOf<'put'>, RequestOf<'put'>, RequestOf<'del'>];
    expect(got).toHaveLength(reqs.length);
    expect(got.map((r) => r.i)).toEqual([1, 2, 3, 4, 5]);
    expect(got[0]).toEqual({ i: 1, o: 'get', e: 3, k: 'user:1' });
    expect(bytesOf(put1.v)).toEqual([0, 1, 2, 127, 128, 254, 255]);
    expect(put1.m).toBe(42);
    expect(put1.x).toBe(1_700_000_000_000);
    expect(put2.k).toBe('ключ 😀');
    expect(new TextDecoder().decode(put2.v)).toBe('héllo');
    expect(put2.n).toBe(true);
    expect(del.m).toBe('*');
    expect(got[4]).toEqual({ i: 5, o: 'ping', e: 0 });
  });

  it('round-trips responses with errors, nulls and stored values', () => {
    const body = [
      { i: 1, r: null },
      { i: 2, r: { v: Uint8Array.from([9, 8, 7]), ct: 'x/y', ver: 1_700_000_000_000_123, x: 0 } },
      { i: 3, err: { code: 'KV_ERR_STALE_EPOCH', message: 'old', epoch: 7 } },
    ];
    const [out] = new FrameDecoder(MAX).push(encodeFrame(body)) as [Array<Record<string, unknown>>];
    expect(out[0]).toEqual({ i: 1, r: null });
    const r = out[1]!['r'] as Record<string, unknown>;
    expect(bytesOf(r['v'])).toEqual([9, 8, 7]);
    expect(r['ver']).toBe(1_700_000_000_000_123);
    expect(out[2]).toEqual({ i: 3, err: { code: 'KV_ERR_STALE_EPOCH', message: 'old', epoch: 7 } });
  });

  it('round-trips an empty value and a large binary value', () => {
    const big = new Uint8Array(200_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    const [out] = new FrameDecoder(MAX).push(encodeFrame({ empty: new Uint8Array(0), big })) as [{ empty: Uint8Array; big: Uint8Array }];
    expect(out.empty).toBeInstanceOf(Uint8Array);
    expect(out.empty.byteLength).toBe(0);
    expect(Buffer.from(out.big).equals(Buffer.from(big))).toBe(true);
  });

  it('decodes a frame split at every byte boundary', () => {
    const reqs = sampleRequests();
    const frame = encodeFrame(reqs);
    for (let cut = 0; cut <= frame.length; cut++) {
      const dec = new FrameDecoder(MAX);
      const a = dec.push(frame.subarray(0, cut));
      const b = dec.push(frame.subarray(cut));
      expect(a.length + b.length, `cut at ${cut}`).toBe(1);
      const got = [...a, ...b][0] as Request[];
      expect(got.map((r) => r.i)).toEqual([1, 2, 3, 4, 5]);
      expect(bytesOf((got[1] as RequestOf<'put'>).v)).toEqual([0, 1, 2, 127, 128, 254, 255]);
    }
  });

  it('decodes a frame fed one byte at a time', () => {
    const frame = encodeFrame(sampleRequests());
    const dec = new FrameDecoder(MAX);
    const out: unknown[] = [];
    for (let i = 0; i < frame.length; i++) {
      const got = dec.push(frame.subarray(i, i + 1));
      if (i < frame.length - 1) expect(got).toEqual([]);
      out.push(...got);
    }
    expect(out).toHaveLength(1);
    expect((out[0] as [unknown, unknown, unknown, RequestOf<'del'>])[3].k).toBe('gone');
  });

  it('decodes several frames in one chunk, in order', () => {
    const bodies = [{ n: 1 }, [1, 2, 3], 'three', { n: 4, v: Uint8Array.from([4]) }];
    const chunk = Buffer.concat(bodies.map((b) => encodeFrame(b)));
    const out = new FrameDecoder(MAX).push(chunk);
    expect(out).toHaveLength(4);
    expect(out[0]).toEqual({ n: 1 });
    expect(out[1]).toEqual([1, 2, 3]);
    expect(out[2]).toBe('three');
    expect(bytesOf((out[3] as { v: Uint8Array }).v)).toEqual([4]);
  });

  it('decodes several frames split across chunks at every boundary', () => {
    const chunk = Buffer.concat([encodeFrame({ n: 1 }), encodeFrame({ n: 2 }), encodeFrame({ n: 3 })]);
    for (let cut = 0; cut <= chunk.length; cut++) {
      const dec = new FrameDecoder(MAX);
      const out = [...dec.push(chunk.subarray(0, cut)), ...dec.push(chunk.subarray(cut))];
      expect(out, `cut at ${cut}`).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    }
  });

  it('keeps a trailing partial frame for the next push', () => {
    const f1 = encodeFrame({ n: 1 });
    const f2 = encodeFrame({ n: 2 });
    const dec = new FrameDecoder(MAX);
    expect(dec.push(Buffer.concat([f1, f2.subarray(0, 5)]))).toEqual([{ n: 1 }]);
    expect(dec.push(f2.subarray(5))).toEqual([{ n: 2 }]);
    expect(dec.push(Buffer.alloc(0))).toEqual([]);
  });

  it('accepts a frame exactly at the limit', () => {
    const body = { s: 'x'.repeat(100) };
    const size = encodedSize(body);
    expect(new FrameDecoder(size).push(encodeFrame(body))).toEqual([body]);
    expect(thrownCode(() => new FrameDecoder(size - 1).push(encodeFrame(body)))).toBe('KV_ERR_FRAME_TOO_LARGE');
  });

  it('refuses an oversized frame from its header alone, before any body arrives', () => {
    const dec = new FrameDecoder(1000);
    const head = Buffer.alloc(FRAME_HEADER_BYTES);
    head.writeUInt32BE(0xffffffff, 0);
    let err: unknown;
    try {
      dec.push(head);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KvError);
    expect((err as KvError).code).toBe('KV_ERR_FRAME_TOO_LARGE');
    expect((err as KvError).statusCode).toBe(413);
    expect((err as KvError).message).toContain(String(0xffffffff));
    expect((err as KvError).message).toContain('1000');
  });

  it('refuses an oversized frame whose header arrives in pieces', () => {
    const dec = new FrameDecoder(1000);
    const head = Buffer.alloc(FRAME_HEADER_BYTES);
    head.writeUInt32BE(1001, 0);
    expect(dec.push(head.subarray(0, 2))).toEqual([]);
    expect(thrownCode(() => dec.push(head.subarray(2)))).toBe('KV_ERR_FRAME_TOO_LARGE');
  });

  it('refuses an oversized frame that follows a good one in the same chunk', () => {
    const head = Buffer.alloc(FRAME_HEADER_BYTES);
    head.writeUInt32BE(5000, 0);
    expect(thrownCode(() => new FrameDecoder(1000).push(Buffer.concat([encodeFrame({ ok: 1 }), head])))).toBe('KV_ERR_FRAME_TOO_LARGE');
  });

  it.each([
    ['a truncated array', [0x92, 0x01]],
    ['a truncated string', [0xd9, 0x05, 0x41]],
    ['an empty body', []],
    ['trailing bytes after a value', [0x01, 0x02]],
    ['a truncated map', [0x81, 0xa1, 0x6b]],
  ])('refuses %s with KV_ERR_BAD_FRAME', (_name, body) => {
    expect(thrownCode(() => new FrameDecoder(MAX).push(rawFrame(body)))).toBe('KV_ERR_BAD_FRAME');
  });

  it('refuses a garbage body after a good frame in the same chunk', () => {
    expect(thrownCode(() => new FrameDecoder(MAX).push(Buffer.concat([encodeFrame([1]), rawFrame([0x92, 0x01])])))).toBe('KV_ERR_BAD_FRAME');
  });
});

describe('positional get, put and del', () => {
  const raw = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });
  /** The body as it went on the wire, before the decoder turns positional elements into objects. */
  const wireBody = (frame: Buffer): unknown => raw.unpack(frame.subarray(FRAME_HEADER_BYTES));
  const decode = (body: unknown): unknown[] => (new FrameDecoder(MAX).push(rawFrame(raw.pack(body))) as [unknown[]])[0];

  it('sends the hot requests as tagged arrays with the value as raw bytes, and everything else as maps', () => {
    const v = Uint8Array.from([1, 2, 3]);
    const body = wireBody(
      encodeFrame([
        { i: 1, o: OPS.GET, e: 3, k: 'a' },
        { i: 2, o: OPS.PUT, e: 3, k: 'b', v, ct: 'x/y', x: 0 },
        { i: 3, o: OPS.DEL, e: 3, k: 'c', m: 7 },
        { i: 4, o: OPS.PING, e: 0 },
      ]),
    ) as unknown[];
    expect(body[0]).toEqual([TAGS.GET, 1, 3, 'a']);
    expect(body[1]).toEqual([TAGS.PUT, 2, 3, 'b', Buffer.from(v), 'x/y', 0, null, null]);
    expect(body[2]).toEqual([TAGS.DEL, 3, 3, 'c', 7]);
    expect(body[3]).toEqual({ i: 4, o: 'ping', e: 0 });
  });

  it('is smaller than the same requests as maps', () => {
    const put = { i: 9, o: OPS.PUT, e: 3, k: 'user:1', v: new Uint8Array(100), ct: 'application/octet-stream', x: 0 };
    expect(encodedSize(put)).toBeLessThan(raw.pack(put).length - 10);
  });

  it('decodes each op to one object shape, absent optional fields undefined', () => {
    const [get, put, del] = new FrameDecoder(MAX).push(
      encodeFrame([
        { i: 1, o: OPS.GET, e: 3, k: 'a' },
        { i: 2, o: OPS.PUT, e: 3, k: 'b', v: Uint8Array.from([5]), ct: 'x/y', x: 9 },
        { i: 3, o: OPS.DEL, e: 3, k: 'c' },
      ]),
    )[0] as [object, Record<string, unknown>, Record<string, unknown>];
    expect(Object.keys(get)).toEqual(['i', 'o', 'e', 'k']);
    expect(Object.keys(put)).toEqual(['i', 'o', 'e', 'k', 'v', 'ct', 'x', 'm', 'n']);
    expect(put['m']).toBeUndefined();
    expect(put['n']).toBeUndefined();
    expect(Object.keys(del)).toEqual(['i', 'o', 'e', 'k', 'm']);
    expect(del['m']).toBeUndefined();
  });

  it('keeps a hot request with an unknown field, or an optional field set to null, as a map so the shard sees it as sent', () => {
    const body = wireBody(
      encodeFrame([
        { i: 1, o: OPS.GET, e: 3, k: 'a', extra: 1 },
        { i: 2, o: OPS.PUT, e: 3, k: 'b', v: new Uint8Array(1), ct: 'x/y', x: 0, m: null },
        { i: 3, o: OPS.DEL, e: 3, k: 'c', m: null },
      ]),
    ) as unknown[];
    expect(body.every((el) => !Array.isArray(el))).toBe(true);
  });

  it('round-trips the hot answers, positionally', () => {
    const v = Uint8Array.from([7, 8]);
    const answers = [
      new GetAnswer(1, null),
      new GetAnswer(2, { v, ct: 'a/b', ver: 1_700_000_000_000_123, x: 5, e: 4 }),
      new GetAnswer(3, { deleted: true, ver: 12, e: 2 }),
      new PutAnswer(4, { ver: 13 }),
      new DelAnswer(5, { deleted: false, ver: 14 }),
      { i: 6, err: { code: 'KV_ERR_NOT_OWNER', message: 'no', epoch: 3 } },
    ];
    const frame = encodeFrame(answers);
    const body = wireBody(frame) as unknown[];
    expect(body.slice(0, 5).map((el) => (el as unknown[])[0])).toEqual([TAGS.GET_NONE, TAGS.GET_VALUE, TAGS.GET_TOMBSTONE, TAGS.PUT_DONE, TAGS.DEL_DONE]);
    const [out] = new FrameDecoder(MAX).push(frame) as [Array<Record<string, unknown>>];
    expect(out[0]).toEqual({ i: 1, r: null });
    expect(out[1]).toEqual({ i: 2, r: { v: Buffer.from(v), ct: 'a/b', ver: 1_700_000_000_000_123, x: 5, e: 4 } });
    expect(out[2]).toEqual({ i: 3, r: { deleted: true, ver: 12, e: 2 } });
    expect(out[3]).toEqual({ i: 4, r: { ver: 13 } });
    expect(out[4]).toEqual({ i: 5, r: { deleted: false, ver: 14 } });
    expect(out[5]).toEqual(answers[5]);
  });

  it.each([
    ['an unknown tag', [99, 1, 3, 'k']],
    ['a tag that is not a number', ['1', 1, 3, 'k']],
    ['a truncated get', [TAGS.GET, 1, 3]],
    ['a get with a field too many', [TAGS.GET, 1, 3, 'k', 'x']],
    ['a truncated put', [TAGS.PUT, 1, 3, 'k', Buffer.from('v')]],
    ['an empty array', []],
  ])('leaves %s as the array it is, for the shard to refuse that request alone', (_name, el) => {
    const [got, next] = decode([el, [TAGS.GET, 2, 3, 'fine']]);
    expect(got).toEqual(el);
    expect(next).toEqual({ i: 2, o: 'get', e: 3, k: 'fine' });
  });

  it('does not check types: wrong ones reach the shard, whose op checks refuse them', () => {
    const [put] = decode([[TAGS.PUT, 'x', -1, 5, 'not bytes', 7, '0', [], {}]]);
    expect(put).toEqual({ i: 'x', o: 'put', e: -1, k: 5, v: 'not bytes', ct: 7, x: '0', m: [], n: {} });
  });
});
