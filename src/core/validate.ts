// Input checks shared by router and shard. Each failure is a KvError with a
// 4xx code; nothing here touches storage, so a refused request wrote nothing.
import { kvError } from './errors.js';
import type { Limits } from './config.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });
// C0 controls and DEL: they break logs, CLIs and HTTP headers.
const CONTROL_RE = /[\u0000-\u001f\u007f]/;
// RFC 9110 media type: type "/" subtype, then optional parameters.
const CONTENT_TYPE_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;.*)?$/;

/** Percent-decode a raw URL path segment as strict UTF-8. */
const PLAIN_RE = /^[\x21-\x24\x26-\x7e]*$/;

export function decodeKeyFromPath(raw: string): string {
  if (raw === '') throw kvError('KV_ERR_KEY_EMPTY');
  // Fast path: printable ASCII without escapes is already the key.
  if (PLAIN_RE.test(raw)) return raw;
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw kvError('KV_ERR_KEY_INVALID', `bad percent-escape at character ${i}`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      // Walk code points, not UTF-16 units, so astral characters stay whole.
      const cp = raw.codePointAt(i)!;
      bytes.push(...Buffer.from(String.fromCodePoint(cp), 'utf8'));
      if (cp > 0xffff) i++;
    }
  }
  let key: string;
  try {
    key = utf8.decode(Uint8Array.from(bytes));
  } catch {
    throw kvError('KV_ERR_KEY_INVALID', 'not valid UTF-8');
  }
  return key;
}

export function validateKey(key: unknown, limits: Limits): string {
  if (typeof key !== 'string') throw kvError('KV_ERR_KEY_INVALID', 'must be a string');
  if (key.length === 0) throw kvError('KV_ERR_KEY_EMPTY');
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > limits.maxKeyBytes) throw kvError('KV_ERR_KEY_TOO_LONG', bytes, limits.maxKeyBytes);
  if (CONTROL_RE.test(key)) throw kvError('KV_ERR_KEY_INVALID', 'control characters are not allowed');
  if (!isWellFormed(key)) throw kvError('KV_ERR_KEY_INVALID', 'not valid UTF-8 (lone surrogate)');
  return key;
}

export function isWellFormed(s: string): boolean {
  // String.prototype.isWellFormed arrives in Node 20; keep a fallback.
  const f = (s as unknown as { isWellFormed?: () => boolean }).isWellFormed;
  if (f) return f.call(s);
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

export function validateValue(value: Uint8Array, limits: Limits): Uint8Array {
  if (value.byteLength > limits.maxValueBytes) throw kvError('KV_ERR_VALUE_TOO_LARGE', limits.maxValueBytes);
  return value;
}

/** TTL in whole seconds, or undefined when not given. */
export function parseTtl(raw: unknown, limits: Limits): number | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  const s = typeof raw === 'number' ? String(raw) : raw;
  if (typeof s !== 'string' || !/^\d{1,12}$/.test(s)) throw kvError('KV_ERR_BAD_TTL', limits.maxTtlSeconds, JSON.stringify(raw));
  const n = Number(s);
  if (n < 1 || n > limits.maxTtlSeconds) throw kvError('KV_ERR_BAD_TTL', limits.maxTtlSeconds, JSON.stringify(raw));
  return n;
}

export function validateContentType(ct: unknown, limits: Limits): string {
  if (ct === undefined || ct === '') return 'application/octet-stream';
  if (typeof ct !== 'string') throw kvError('KV_ERR_BAD_CONTENT_TYPE', 'must be a string');
  if (Buffer.byteLength(ct) > limits.maxContentTypeBytes) throw kvError('KV_ERR_BAD_CONTENT_TYPE', `longer than ${limits.maxContentTypeBytes} bytes`);
  if (!CONTENT_TYPE_RE.test(ct) || CONTROL_RE.test(ct)) throw kvError('KV_ERR_BAD_CONTENT_TYPE', JSON.stringify(ct));
  return ct;
}

/** Parse If-Match: a single strong ETag `"<version>"` or `*`. */
export function parseIfMatch(raw: unknown): number | '*' | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string') throw kvError('KV_ERR_BAD_PRECONDITION', JSON.stringify(raw));
  const s = raw.trim();
  if (s === '*') return '*';
  const m = /^"(\d{1,16})"$/.exec(s);
  if (!m || !Number.isSafeInteger(Number(m[1]))) throw kvError('KV_ERR_BAD_PRECONDITION', JSON.stringify(raw));
  return Number(m[1]);
}

/**
 * The ETag of a version: its decimal digits in quotes. Versions are
 * microsecond timestamps, past the small integers whose strings V8 caches, so
 * a plain String(version) goes through the slow double-to-string path on
 * every answer; two halves of at most eight digits each take the fast one.
 */
export function etag(version: number): string {
  if (version < 1e8) return `"${version}"`;
  const hi = Math.floor(version / 1e8);
  return `"${hi}${String(version - hi * 1e8 + 1e8).slice(1)}"`;
}
