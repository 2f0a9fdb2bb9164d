// The data API: GET/HEAD/PUT/DELETE /v1/kv/<key> and POST /v1/kv/_batch.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { RouterConfig } from '../core/config.js';
import { kvError } from '../core/errors.js';
import { OPS } from '../core/protocol.js';
import { decodeKeyFromPath, etag, parseIfMatch, parseTtl, validateContentType, validateKey, validateValue } from '../core/validate.js';
import { bodyBytes, queryParam, requireJson, targetPath } from '../infra/http.js';
import type { Admission } from './admission.js';
import { parseBatch, runBatch } from './batch.js';
import type { Forwarder } from './forwarder.js';

export const KV_PREFIX = '/v1/kv/';
export const BATCH_PATH = '/v1/kv/_batch';
const TTL_HEADER = 'x-kv-ttl';

/** Names under /v1/kv/ that are API endpoints, not keys. */
const RESERVED = new Map([
  ['_batch', ['POST']],
  ['_scan', ['GET']],
]);

export interface KvRoutesDeps {
  readonly config: RouterConfig;
  readonly forwarder: Forwarder;
  readonly admission: Admission;
}

/**
 * The TTL of a PUT, from `?ttl=` or the x-kv-ttl header; both may be given
 * only when they agree, and an empty value is refused, not read as "none".
 */
export function ttlOf(query: string | undefined, header: string | string[] | undefined, cfg: RouterConfig): number | undefined {
  if (Array.isArray(header)) throw kvError('KV_ERR_BAD_TTL', cfg.maxTtlSeconds, 'x-kv-ttl given more than once');
  if (query === '' || header === '') throw kvError('KV_ERR_BAD_TTL', cfg.maxTtlSeconds, 'an empty value');
  if (query !== undefined && header !== undefined && query !== header) {
    throw kvError(
      'KV_ERR_BAD_TTL',
      cfg.maxTtlSeconds,
      `?ttl=${JSON.stringify(query.slice(0, 20))} and x-kv-ttl: ${JSON.stringify(header.slice(0, 20))} disagree`,
    );
  }
  return parseTtl(query ?? header, cfg);
}

/** The key of a /v1/kv/ request, from the raw URL (strict UTF-8, slashes allowed). */
function keyOf(req: FastifyRequest, cfg: RouterConfig): string {
  const path = targetPath(req.raw.url ?? '');
  const raw = path.slice(KV_PREFIX.length);
  if (RESERVED.has(raw)) throw kvError('KV_ERR_METHOD_NOT_ALLOWED', req.method, path);
  return validateKey(decodeKeyFromPath(raw), cfg);
}

export const kvRoutes: FastifyPluginAsync<KvRoutesDeps> = async (app, { config, forwarder, admission }) => {
  // Each HTTP connection is one client for admission control.
  const one = <T>(req: FastifyRequest, fn: () => Promise<T>) => admission.run(req.raw.socket, 1, fn);

  app.get('/v1/kv/*', async (req, reply) => {
    const k = keyOf(req, config);
    const rec = await one(req, () => forwarder.exec({ o: OPS.GET, k }));
    if (!rec) throw kvError('KV_ERR_NOT_FOUND');
    void reply.header('etag', etag(rec.ver)).type(rec.ct);
    if (rec.x) void reply.header('x-kv-expires-at', String(rec.x));
    return reply.send(Buffer.from(rec.v.buffer, rec.v.byteOffset, rec.v.byteLength));
  });

  app.put('/v1/kv/*', { config: { query: ['ttl'] } }, async (req, reply) => {
    const key = keyOf(req, config);
    const value = validateValue(bodyBytes(req.body), config);
    const ttl = ttlOf(queryParam(req, 'ttl'), req.headers[TTL_HEADER], config);
    const contentType = validateContentType(req.headers['content-type'], config);
    const ifMatch = parseIfMatch(req.headers['if-match']);
    const inm = req.headers['if-none-match'];
    if (inm !== undefined && inm !== '*') throw kvError('KV_ERR_BAD_PRECONDITION', JSON.stringify(inm));
    const r = await one(req, () =>
      forwarder.exec({
        o: OPS.PUT,
        k: key,
        v: value,
        ct: contentType,
        x: ttl ? Date.now() + ttl * 1000 : 0,
        ...(ifMatch !== undefined ? { m: ifMatch } : {}),
        ...(inm === '*' ? { n: true } : {}),
      }),
    );
    return reply.code(204).header('etag', etag(r.ver)).send();
  });

  app.delete('/v1/kv/*', async (req, reply) => {
    const key = keyOf(req, config);
    const ifMatch = parseIfMatch(req.headers['if-match']);
    const r = await one(req, () => forwarder.exec({ o: OPS.DEL, k: key, ...(ifMatch !== undefined ? { m: ifMatch } : {}) }));
    if (!r.deleted) throw kvError('KV_ERR_NOT_FOUND');
    return reply.code(204).send();
  });

  app.post(BATCH_PATH, async (req) => {
    requireJson(req);
    const ops = parseBatch(bodyBytes(req.body), config);
    return { results: await admission.run(req.raw.socket, ops.length, () => runBatch(ops, forwarder)) };
  });
};
