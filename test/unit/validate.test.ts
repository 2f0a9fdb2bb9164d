import { describe, expect, it } from 'vitest';
import { LIMIT_DEFAULTS, type Limits } from '../../src/core/config.js';
import { KvError } from '../../src/core/errors.js';
import { decodeKeyFromPath, etag, parseIfMatch, parseTtl, validateContentType, validateKey, validateValue } from '../../src/core/validate.js';
import { thrownKvError } from '../helpers/errors.js';

const LIMITS: Limits = { ...LIMIT_DEFAULTS };

/** The KvError thrown, which must be a client error (4xx). */
function thrown(fn: () => unknown): KvError {
  const err = thrownKvError(fn);
  expect(err.statusCode).toBeGreaterThanOrEqual(400);
  expect(err.statusCode).toBeLessThan(500);
  return err;
}
const codeOf = (fn: () => unknown): string => thrown(fn).code;

describe('decodeKeyFromPath', () => {
  it.each([
    ['plain', 'plain'],
    ['user:42', 'user:42'],
    ['a%20b', 'a b'],
    ['a%2Fb', 'a/b'],
    ['a%2fb', 'a/b'],
    ['100%25', '100%'],
    ['caf%C3%A9', 'café'],
    ['%E2%82%AC', '€'],
    ['%F0%9F%98%80', '😀'],
    ['%D0%BA%D0%BB%D1%8E%D1%87', 'ключ'],
    ['a+b', 'a+b'],
    ['é', 'é'],
  ])('decodes %j to %j', (raw, key) => {
    expect(decodeKeyFromPath(raw)).toBe(key);
  });

  it('decodes each escape once (no double decoding)', () => {
    expect(decodeKeyFromPath('%2541')).toBe('%41');
  });

  it('refuses an empty segment with KV_ERR_KEY_EMPTY', () => {
    expect(codeOf(() => decodeKeyFromPath(''))).toBe('KV_ERR_KEY_EMPTY');
  });

  it.each(['%FF', 'a%FFb', '%C3', '%C3%28', '%E2%82', '%ED%A0%80', '%C0%AF', '%F8%88%80%80%80'])('refuses invalid UTF-8 %j with KV_ERR_KEY_INVALID', (raw) => {
    const err = thrown(() => decodeKeyFromPath(raw));
    expect(err.code).toBe('KV_ERR_KEY_INVALID');
    expect(err.message).toContain('UTF-8');
  });

  it.each(['%', 'a%', '%4', 'a%4', '%G0', '%0G', '%%41', '% 41', '%-1'])('refuses the bad escape %j with KV_ERR_KEY_INVALID', (raw) => {
    const err = thrown(() => decodeKeyFromPath(raw));
    expect(err.code).toBe('KV_ERR_KEY_INVALID');
    expect(err.message).toContain('percent-escape');
  });

  // Astral characters given unescaped are split into lone surrogates by the
  // per-UTF-16-unit loop and come back as two U+FFFD. HTTP clients always
  // escape them (Node refuses raw non-ASCII in a request line), so this only
  // bites direct callers. Remove `.fails` once the loop walks code points.
  it('keeps unescaped astral characters', () => {
    expect(decodeKeyFromPath('😀')).toBe('😀');
  });
});

describe('validateKey', () => {
  it('returns a valid key unchanged', () => {
    for (const k of ['a', 'user:1', 'ключ', '😀', 'a/b?c#d', ' spaced ', '\u00a0']) expect(validateKey(k, LIMITS)).toBe(k);
  });

  it('refuses the empty key with KV_ERR_KEY_EMPTY', () => {
    expect(codeOf(() => validateKey('', LIMITS))).toBe('KV_ERR_KEY_EMPTY');
  });

  it('refuses non-strings with KV_ERR_KEY_INVALID', () => {
    for (const k of [undefined, null, 42, {}, ['a']]) expect(codeOf(() => validateKey(k, LIMITS))).toBe('KV_ERR_KEY_INVALID');
  });

  it('accepts a key exactly at the byte limit', () => {
    expect(validateKey('k'.repeat(LIMITS.maxKeyBytes), LIMITS)).toHaveLength(LIMITS.maxKeyBytes);
  });

  it('measures the limit in UTF-8 bytes, not characters', () => {
    const limits = { ...LIMITS, maxKeyBytes: 10 };
    expect(validateKey('é'.repeat(5), limits)).toBe('ééééé'); // 10 bytes
    const err = thrown(() => validateKey('é'.repeat(6), limits)); // 6 chars, 12 bytes
    expect(err.code).toBe('KV_ERR_KEY_TOO_LONG');
    expect(err.message).toBe('key is 12 bytes, the limit is 10 bytes');
    // 3 emoji: 6 UTF-16 units, 12 bytes.
    expect(codeOf(() => validateKey('😀😀😀', limits))).toBe('KV_ERR_KEY_TOO_LONG');
    expect(codeOf(() => validateKey('€€€€', limits))).toBe('KV_ERR_KEY_TOO_LONG'); // 4 chars, 12 bytes
  });

  it.each(['\u0000', 'a\u0001b', 'tab\there', 'line\n', 'cr\r', '\u001f', 'del\u007f'])('refuses control characters in %j', (k) => {
    const err = thrown(() => validateKey(k, LIMITS));
    expect(err.code).toBe('KV_ERR_KEY_INVALID');
    expect(err.message).toContain('control');
  });

  it.each(['\ud800', 'a\udfffb', '\ud83d', 'x\ude00', '\ude00\ud83d'])('refuses lone surrogates in %j', (k) => {
    const err = thrown(() => validateKey(k, LIMITS));
    expect(err.code).toBe('KV_ERR_KEY_INVALID');
    expect(err.message).toContain('surrogate');
  });
});

describe('validateValue', () => {
  it('accepts up to the limit and refuses one byte more with KV_ERR_VALUE_TOO_LARGE (413)', () => {
    const limits = { ...LIMITS, maxValueBytes: 8 };
    const ok = new Uint8Array(8);
    expect(validateValue(ok, limits)).toBe(ok);
    const err = thrown(() => validateValue(new Uint8Array(9), limits));
    expect(err.code).toBe('KV_ERR_VALUE_TOO_LARGE');
    expect(err.statusCode).toBe(413);
  });
});

describe('parseTtl', () => {
  it('is undefined when absent', () => {
    expect(parseTtl(undefined, LIMITS)).toBeUndefined();
    expect(parseTtl(null, LIMITS)).toBeUndefined();
    expect(parseTtl('', LIMITS)).toBeUndefined();
  });

  it('accepts whole seconds as number or string', () => {
    expect(parseTtl(1, LIMITS)).toBe(1);
    expect(parseTtl('60', LIMITS)).toBe(60);
    expect(parseTtl(3600, LIMITS)).toBe(3600);
    expect(parseTtl('007', LIMITS)).toBe(7);
  });

  it('accepts exactly the maximum and refuses one more', () => {
    expect(parseTtl(LIMITS.maxTtlSeconds, LIMITS)).toBe(LIMITS.maxTtlSeconds);
    expect(codeOf(() => parseTtl(LIMITS.maxTtlSeconds + 1, LIMITS))).toBe('KV_ERR_BAD_TTL');
    expect(codeOf(() => parseTtl(String(LIMITS.maxTtlSeconds + 1), LIMITS))).toBe('KV_ERR_BAD_TTL');
  });

  it.each([0, '0', -1, '-1', 1.5, '1.5', '1e3', 1e21, 'abc', ' 5', '5s', '0x10', Number.NaN, Number.POSITIVE_INFINITY, true, {}, [5], '9'.repeat(13)])(
    'refuses %j with KV_ERR_BAD_TTL',
    (raw) => {
      const err = thrown(() => parseTtl(raw, LIMITS));
      expect(err.code).toBe('KV_ERR_BAD_TTL');
      expect(err.message).toContain(String(LIMITS.maxTtlSeconds));
    },
  );
});

describe('validateContentType', () => {
  it('defaults to application/octet-stream', () => {
    expect(validateContentType(undefined, LIMITS)).toBe('application/octet-stream');
    expect(validateContentType('', LIMITS)).toBe('application/octet-stream');
  });

  it.each(['text/plain', 'application/json', 'text/plain; charset=utf-8', 'application/vnd.api+json', 'image/svg+xml', 'x-custom/x.y_z'])(
    'accepts %j unchanged',
    (ct) => {
      expect(validateContentType(ct, LIMITS)).toBe(ct);
    },
  );

  it.each(['text', 'text/', '/plain', 'text/plain/extra', 'te xt/plain', 'text/plain\r\nX-Evil: 1', 'text/plain; a=\u0000', 'tëxt/plain'])(
    'refuses %j with KV_ERR_BAD_CONTENT_TYPE',
    (ct) => {
      expect(codeOf(() => validateContentType(ct, LIMITS))).toBe('KV_ERR_BAD_CONTENT_TYPE');
    },
  );

  it('refuses a non-string', () => {
    expect(codeOf(() => validateContentType(42, LIMITS))).toBe('KV_ERR_BAD_CONTENT_TYPE');
  });

  it('refuses a content type over the byte limit', () => {
    const limits = { ...LIMITS, maxContentTypeBytes: 20 };
    expect(validateContentType('text/' + 'a'.repeat(15), limits)).toHaveLength(20);
    expect(codeOf(() => validateContentType('text/' + 'a'.repeat(16), limits))).toBe('KV_ERR_BAD_CONTENT_TYPE');
  });
});

describe('parseIfMatch', () => {
  it('is undefined when absent', () => {
    expect(parseIfMatch(undefined)).toBeUndefined();
  });

  it('parses a quoted version and *', () => {
    expect(parseIfMatch('"12"')).toBe(12);
    expect(parseIfMatch('"0"')).toBe(0);
    expect(parseIfMatch(' "1700000000000123" ')).toBe(1_700_000_000_000_123);
    expect(parseIfMatch('*')).toBe('*');
    expect(parseIfMatch(' * ')).toBe('*');
  });

  it('round-trips with etag()', () => {
    for (const v of [1, 99, 1_700_000_000_000_123]) expect(parseIfMatch(etag(v))).toBe(v);
    expect(etag(12)).toBe('"12"');
  });

  it('writes the same digits as String() on both sides of the two-halves split', () => {
    const edges = [0, 1, 99_999_999, 100_000_000, 100_000_001, 100_000_000_000_000, 1_764_700_000_000_007, Number.MAX_SAFE_INTEGER];
    for (const v of edges) expect(etag(v)).toBe(`"${String(v)}"`);
    for (let i = 0; i < 2000; i++) {
      const v = Math.floor(Math.random() * Number.MAX_SAFE_INTEGER);
      expect(etag(v)).toBe(`"${String(v)}"`);
    }
  });

  it.each(['12', 'W/"12"', '"12", "13"', '"a"', '""', '"-1"', '"1.5"', '"12', '12"', '**', '"12345678901234567"'])(
    'refuses %j with KV_ERR_BAD_PRECONDITION',
    (raw) => {
      expect(codeOf(() => parseIfMatch(raw))).toBe('KV_ERR_BAD_PRECONDITION');
    },
  );

  it('refuses non-strings (e.g. a repeated header)', () => {
    expect(codeOf(() => parseIfMatch(['"1"', '"2"']))).toBe('KV_ERR_BAD_PRECONDITION');
    expect(codeOf(() => parseIfMatch(12))).toBe('KV_ERR_BAD_PRECONDITION');
  });
});
