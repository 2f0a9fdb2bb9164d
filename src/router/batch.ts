// POST /v1/kv/_batch: many gets, puts and deletes across shards in one call.
// The whole body is validated before anything is sent, so bad input never
// leads to a partial write. Operations then run concurrently (each shard gets
// its share in one frame); each result carries its own status, because a batch
// spanning shards is not atomic.
import { kvError, KvError, toWire } from '../core/errors.js';
import { OPS } from '../core/protocol.js';
import type { BatchLimits, Limits } from '../core/config.js';
import { isWellFormed, validateKey, validateValue, validateContentType, parseTtl, parseIfMatch, etag } from '../core/validate.js';
import type { Forwarder } from './forwarder.js';

type Encoding = 'utf8' | 'base64';

export type BatchOp =
  | { op: 'get'; key: string }
  | { op: 'put'; key: string; value: Uint8Array; contentType: string; ttl?: number | undefined; ifMatch?: number | '*' | undefined }
  | { op: 'del'; key: string; ifMatch?: number | '*' | undefined };

export interface BatchResult {
  key: string;
  status: number;
  code?: string;
  message?: string;
  value?: string;
  encoding?: Encoding;
  contentType?: string;
  etag?: string;
  expiresAt?: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function parseBatch(body: Uint8Array, limits: BatchLimits): BatchOp[] {
  let doc: unknown;
  try {
    doc = JSON.parse(utf8.decode(body));
  } catch (err) {
    throw kvError('KV_ERR_BAD_JSON', (err as Error).message);
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { ops?: unknown }).ops)) {
    throw kvError('KV_ERR_BAD_BATCH', 'body must be {"ops": [...]}');
  }
  for (const k of Object.keys(doc)) if (k !== 'ops') throw kvError('KV_ERR_BAD_BATCH', `unknown field ${JSON.stringify(k)} (the body is {"ops": [...]})`);
  const raw = (doc as { ops: unknown[] }).ops;
  if (raw.length === 0) throw kvError('KV_ERR_BAD_BATCH', 'ops is empty');
  if (raw.length > limits.maxBatchOps) throw kvError('KV_ERR_BATCH_TOO_LARGE', raw.length, limits.maxBatchOps);
  return raw.map((o, n) => {
    try {
      return parseOp(o, limits);
    } catch (err) {
      if (err instanceof KvError) throw new KvError(err.code, `ops[${n}]: ${err.message}`, { index: n });
      throw err;
    }
  });
}

/** The fields each op takes; any other is refused. */
const OP_FIELDS: Record<string, ReadonlySet<string>> = Object.assign(Object.create(null) as Record<string, ReadonlySet<string>>, {
  get: new Set(['op', 'key']),
  del: new Set(['op', 'key', 'ifMatch']),
  put: new Set(['op', 'key', 'value', 'encoding', 'contentType', 'ttl', 'ifMatch']),
});

function parseOp(o: unknown, limits: Limits): BatchOp {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw kvError('KV_ERR_BAD_BATCH', 'each op must be an object');
  const r = o as Record<string, unknown>;
  const allowed = OP_FIELDS[r['op'] as string] ?? OP_FIELDS['put']!;
  for (const k of Object.keys(r))
    if (!allowed.has(k)) throw kvError('KV_ERR_BAD_BATCH', `unknown field ${JSON.stringify(k)} in a ${JSON.stringify(r['op'])} op`);
  const key = validateKey(r['key'], limits);
  const ifMatch = r['ifMatch'] === undefined ? undefined : parseIfMatch(typeof r['ifMatch'] === 'number' ? `"${r['ifMatch']}"` : r['ifMatch']);
  switch (r['op']) {
    case 'get':
      return { op: 'get', key };
    case 'del':
      return { op: 'del', key, ifMatch };
    case 'put': {
      if (typeof r['value'] !== 'string') throw kvError('KV_ERR_BAD_BATCH', 'put needs "value" as a string (utf8, or base64 with "encoding": "base64")');
      const enc = r['encoding'] ?? 'utf8';
      if (enc !== 'utf8' && enc !== 'base64') throw kvError('KV_ERR_BAD_BATCH', 'encoding must be "utf8" or "base64"');
      if (enc === 'base64' && (!/^[A-Za-z0-9+/]*={0,2}$/.test(r['value']) || r['value'].replace(/=+$/, '').length % 4 === 1))
        throw kvError('KV_ERR_BAD_BATCH', 'value is not valid base64');
      // A lone surrogate would silently become U+FFFD: refuse it, as in a key.
      if (enc === 'utf8' && !isWellFormed(r['value']))
        throw kvError('KV_ERR_BAD_BATCH', 'value is not valid UTF-8 text (lone surrogate); send binary values as base64');
      const value = validateValue(Buffer.from(r['value'], enc), limits);
      const contentType = validateContentType(r['contentType'] ?? (enc === 'utf8' ? 'text/plain; charset=utf-8' : undefined), limits);
      if (r['ttl'] !== undefined && typeof r['ttl'] !== 'number')
        throw kvError('KV_ERR_BAD_TTL', limits.maxTtlSeconds, `${JSON.stringify(r['ttl'])} (a JSON number is needed)`);
      return { op: 'put', key, value, contentType, ttl: parseTtl(r['ttl'], limits), ifMatch };
    }
    default:
      throw kvError('KV_ERR_BAD_BATCH', `op must be "get", "put" or "del", got ${JSON.stringify(r['op'])}`);
  }
}

function encodeValue(v: Uint8Array, ct: string): { value: string; encoding: Encoding } {
  if (/^text\/|json|xml|javascript|x-www-form-urlencoded/i.test(ct)) {
    try {
      return { value: utf8.decode(v), encoding: 'utf8' };
    } catch {
      /* not UTF-8 after all: fall through */
    }
  }
  return { value: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64'), encoding: 'base64' };
}

export async function runBatch(ops: BatchOp[], fwd: Forwarder): Promise<BatchResult[]> {
  return Promise.all(
    ops.map(async (op): Promise<BatchResult> => {
      try {
        if (op.op === 'get') {
          const rec = await fwd.exec({ o: OPS.GET, k: op.key });
          if (!rec) return { key: op.key, status: 404, code: 'KV_ERR_NOT_FOUND', message: 'key not found' };
          return { key: op.key, status: 200, ...encodeValue(rec.v, rec.ct), contentType: rec.ct, etag: etag(rec.ver), ...(rec.x ? { expiresAt: rec.x } : {}) };
        }
        if (op.op === 'put') {
          const r = await fwd.exec({
            o: OPS.PUT,
            k: op.key,
            v: op.value,
            ct: op.contentType,
            x: op.ttl ? Date.now() + op.ttl * 1000 : 0,
            ...(op.ifMatch !== undefined ? { m: op.ifMatch } : {}),
          });
          return { key: op.key, status: 204, etag: etag(r.ver) };
        }
        const r = await fwd.exec({ o: OPS.DEL, k: op.key, ...(op.ifMatch !== undefined ? { m: op.ifMatch } : {}) });
        return r.deleted ? { key: op.key, status: 204 } : { key: op.key, status: 404, code: 'KV_ERR_NOT_FOUND', message: 'key not found' };
      } catch (err) {
        const w = toWire(err);
        return { key: op.key, status: err instanceof KvError ? err.statusCode : 500, code: w.code, message: w.message };
      }
    }),
  );
}
