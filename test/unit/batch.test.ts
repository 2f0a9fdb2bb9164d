import { describe, expect, it } from 'vitest';
import { parseBatch, type BatchOp } from '../../src/router/batch.js';
import { LIMIT_DEFAULTS, type BatchLimits } from '../../src/core/config.js';
import { KvError } from '../../src/core/errors.js';
import { thrownKvError } from '../helpers/errors.js';

const LIMITS: BatchLimits = { ...LIMIT_DEFAULTS, maxBatchOps: 1000 };
const enc = new TextEncoder();
const body = (doc: unknown): Uint8Array => enc.encode(JSON.stringify(doc));

const thrown = thrownKvError;

describe('parseBatch: well-formed batches', () => {
  it('parses get, put and del', () => {
    const ops = parseBatch(
      body({
        ops: [
          { op: 'get', key: 'a' },
          { op: 'put', key: 'b', value: 'héllo' },
          { op: 'del', key: 'c' },
        ],
      }),
      LIMITS,
    );
    expect(ops).toHaveLength(3);
    expect(ops[0]).toEqual({ op: 'get', key: 'a' });
    const put = ops[1] as Extract<BatchOp, { op: 'put' }>;
    expect(put.op).toBe('put');
    expect(put.key).toBe('b');
    expect(new TextDecoder().decode(put.value)).toBe('héllo');
    expect(put.contentType).toBe('text/plain; charset=utf-8');
    expect(put.ttl).toBeUndefined();
    expect(put.ifMatch).toBeUndefined();
    expect(ops[2]).toEqual({ op: 'del', key: 'c', ifMatch: undefined });
  });

  it('decodes base64 values to the exact bytes, default content type octet-stream', () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    const [op] = parseBatch(body({ ops: [{ op: 'put', key: 'bin', value: bytes.toString('base64'), encoding: 'base64' }] }), LIMITS);
    const put = op as Extract<BatchOp, { op: 'put' }>;
    expect([...put.value]).toEqual([0, 1, 2, 250, 255]);
    expect(put.contentType).toBe('application/octet-stream');
  });

  it('keeps ttl, contentType and ifMatch (string ETag, number, *)', () => {
    const ops = parseBatch(
      body({
        ops: [
          { op: 'put', key: 'a', value: '{}', contentType: 'application/json', ttl: 60, ifMatch: '"7"' },
          { op: 'put', key: 'b', value: 'x', ttl: 30, ifMatch: 8 },
          { op: 'del', key: 'c', ifMatch: '*' },
        ],
      }),
      LIMITS,
    );
    expect(ops[0]).toMatchObject({ op: 'put', key: 'a', contentType: 'application/json', ttl: 60, ifMatch: 7 });
    expect(ops[1]).toMatchObject({ op: 'put', key: 'b', ttl: 30, ifMatch: 8 });
    expect(ops[2]).toEqual({ op: 'del', key: 'c', ifMatch: '*' });
  });

  it('refuses a ttl given as a string, and a value with a lone surrogate', () => {
    expect(thrownKvError(() => parseBatch(body({ ops: [{ op: 'put', key: 'b', value: 'x', ttl: '30' }] }), LIMITS)).code).toBe('KV_ERR_BAD_TTL');
    expect(thrownKvError(() => parseBatch(body({ ops: [{ op: 'put', key: 'b', value: 'a\ud800b' }] }), LIMITS)).code).toBe('KV_ERR_BAD_BATCH');
  });

  it('accepts exactly maxBatchOps operations', () => {
    const limits = { ...LIMITS, maxBatchOps: 5 };
    const ops = Array.from({ length: 5 }, (_, i) => ({ op: 'get', key: `k${i}` }));
    expect(parseBatch(body({ ops }), limits)).toHaveLength(5);
  });

  it('reads a body that is a view into a larger buffer', () => {
    const inner = body({ ops: [{ op: 'get', key: 'view' }] });
    const outer = new Uint8Array(inner.length + 20).fill(0x7b); // '{' padding around the JSON
    outer.set(inner, 10);
    expect(parseBatch(outer.subarray(10, 10 + inner.length), LIMITS)).toEqual([{ op: 'get', key: 'view' }]);
  });
});

describe('parseBatch: refusals', () => {
  it.each(['', '{', 'not json', '{"ops": [}', '\u00ff'])('refuses body %j with KV_ERR_BAD_JSON', (text) => {
    const err = thrown(() => parseBatch(enc.encode(text), LIMITS));
    expect(err.code).toBe('KV_ERR_BAD_JSON');
    expect(err.statusCode).toBe(400);
  });

  // Invalid UTF-8 in the body is replaced by U+FFFD instead of refused, so
  // "a\xff" and "a\xfe" become the same key "a\ufffd". Remove `.fails` once
  // the body is decoded with a fatal UTF-8 decoder.
  it('refuses a body that is not valid UTF-8 with KV_ERR_BAD_JSON', () => {
    const head = enc.encode('{"ops":[{"op":"put","key":"a');
    const tail = enc.encode('","value":"x"}]}');
    const bad = new Uint8Array([...head, 0xff, ...tail]);
    expect(thrown(() => parseBatch(bad, LIMITS)).code).toBe('KV_ERR_BAD_JSON');
  });

  it.each([{}, { op: [] }, { ops: {} }, { ops: 'get' }, [], null, 42, 'ops'])('refuses %j without an ops array with KV_ERR_BAD_BATCH', (doc) => {
    const err = thrown(() => parseBatch(body(doc), LIMITS));
    expect(err.code).toBe('KV_ERR_BAD_BATCH');
    expect(err.message).toContain('ops');
  });

  it('refuses an empty ops array', () => {
    const err = thrown(() => parseBatch(body({ ops: [] }), LIMITS));
    expect(err.code).toBe('KV_ERR_BAD_BATCH');
    expect(err.message).toContain('empty');
  });

  it('refuses more than maxBatchOps with KV_ERR_BATCH_TOO_LARGE (413)', () => {
    const limits = { ...LIMITS, maxBatchOps: 5 };
    const ops = Array.from({ length: 6 }, (_, i) => ({ op: 'get', key: `k${i}` }));
    const err = thrown(() => parseBatch(body({ ops }), limits));
    expect(err.code).toBe('KV_ERR_BATCH_TOO_LARGE');
    expect(err.statusCode).toBe(413);
    expect(err.message).toBe('batch has 6 operations, the limit is 5');
  });

  it('checks the size before looking at the operations', () => {
    const limits = { ...LIMITS, maxBatchOps: 2 };
    expect(thrown(() => parseBatch(body({ ops: [1, 2, 3] }), limits)).code).toBe('KV_ERR_BATCH_TOO_LARGE');
  });

  it.each(['get2', 'PUT', 'delete', 'scan', null, 1])('refuses unknown op %j with KV_ERR_BAD_BATCH', (op) => {
    const err = thrown(() => parseBatch(body({ ops: [{ op, key: 'k' }] }), LIMITS));
    expect(err.code).toBe('KV_ERR_BAD_BATCH');
    expect(err.message).toContain('ops[0]');
    expect(err.message).toContain('op must be');
  });

  it('refuses an op that is not an object', () => {
    for (const op of [null, 'get', 7, ['get', 'k']]) {
      const err = thrown(() => parseBatch(body({ ops: [op] }), LIMITS));
      expect(err.code).toMatch(/^KV_ERR_(BAD_BATCH|KEY_INVALID)$/);
      expect(err.message).toContain('ops[0]');
    }
  });

  it.each(['!!!!', 'AAA*', 'A=A=', '====', 'QUJD\n'])('refuses bad base64 %j', (value) => {
    const err = thrown(() => parseBatch(body({ ops: [{ op: 'put', key: 'k', value, encoding: 'base64' }] }), LIMITS));
    expect(err.code).toBe('KV_ERR_BAD_BATCH');
    expect(err.message).toContain('base64');
  });

  // A length of 4n+1 can never be base64; Buffer.from drops the last
  // character, so "QUJDR" would be stored as "ABC". Remove `.fails` once the
  // length is checked.
  it('refuses base64 with an impossible length', () => {
    const err = thrown(() => parseBatch(body({ ops: [{ op: 'put', key: 'k', value: 'QUJDR', encoding: 'base64' }] }), LIMITS));
    expect(err.code).toBe('KV_ERR_BAD_BATCH');
  });

  it('refuses an unknown encoding and a non-string value', () => {
    expect(thrown(() => parseBatch(body({ ops: [{ op: 'put', key: 'k', value: 'x', encoding: 'hex' }] }), LIMITS)).code).toBe('KV_ERR_BAD_BATCH');
    expect(thrown(() => parseBatch(body({ ops: [{ op: 'put', key: 'k', value: 5 }] }), LIMITS)).code).toBe('KV_ERR_BAD_BATCH');
    expect(thrown(() => parseBatch(body({ ops: [{ op: 'put', key: 'k' }] }), LIMITS)).code).toBe('KV_ERR_BAD_BATCH');
  });

  it('applies the key, value, ttl, content type and If-Match checks per op', () => {
    const one = (op: unknown): string => thrown(() => parseBatch(body({ ops: [op] }), { ...LIMITS, maxValueBytes: 4 })).code;
    expect(one({ op: 'get', key: '' })).toBe('KV_ERR_KEY_EMPTY');
    expect(one({ op: 'get' })).toBe('KV_ERR_KEY_INVALID');
    expect(one({ op: 'get', key: 'a\u0000' })).toBe('KV_ERR_KEY_INVALID');
    expect(one({ op: 'get', key: 'k'.repeat(LIMITS.maxKeyBytes + 1) })).toBe('KV_ERR_KEY_TOO_LONG');
    expect(one({ op: 'put', key: 'k', value: '12345' })).toBe('KV_ERR_VALUE_TOO_LARGE');
    expect(one({ op: 'put', key: 'k', value: 'v', ttl: 0 })).toBe('KV_ERR_BAD_TTL');
    expect(one({ op: 'put', key: 'k', value: 'v', ttl: 1.5 })).toBe('KV_ERR_BAD_TTL');
    expect(one({ op: 'put', key: 'k', value: 'v', contentType: 'nope' })).toBe('KV_ERR_BAD_CONTENT_TYPE');
    expect(one({ op: 'del', key: 'k', ifMatch: 'W/"1"' })).toBe('KV_ERR_BAD_PRECONDITION');
    expect(one({ op: 'del', key: 'k', ifMatch: -1 })).toBe('KV_ERR_BAD_PRECONDITION');
    expect(one({ op: 'del', key: 'k', ifMatch: 1.5 })).toBe('KV_ERR_BAD_PRECONDITION');
  });

  it('an invalid op at index 5 rejects the whole batch, naming the index', () => {
    const ops: unknown[] = Array.from({ length: 10 }, (_, i) => ({ op: 'put', key: `k${i}`, value: `v${i}` }));
    ops[5] = { op: 'put', key: 'k5', value: 'v5', ttl: -3 };
    let result: unknown;
    let err: KvError | undefined;
    try {
      result = parseBatch(body({ ops }), LIMITS);
    } catch (e) {
      err = e as KvError;
    }
    expect(result).toBeUndefined();
    expect(err).toBeInstanceOf(KvError);
    expect(err!.code).toBe('KV_ERR_BAD_TTL');
    expect(err!.statusCode).toBe(400);
    expect(err!.message).toMatch(/^ops\[5\]: /);
    expect(err!.detail).toEqual({ index: 5 });
    expect(err!.toJSON()).toMatchObject({ code: 'KV_ERR_BAD_TTL', index: 5 });
  });

  it('reports the first invalid op when several are invalid', () => {
    const ops = [
      { op: 'get', key: 'ok' },
      { op: 'get', key: 'ok2' },
      { op: 'nope', key: 'k' },
      { op: 'get', key: '' },
    ];
    const err = thrown(() => parseBatch(body({ ops }), LIMITS));
    expect(err.message).toMatch(/^ops\[2\]: /);
    expect(err.detail).toEqual({ index: 2 });
  });
});
