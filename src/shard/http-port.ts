// The shard's HTTP port (called its admin port in the options: adminPort,
// adminAddr): health, stats, and a plain /kv/:key that reads and writes this
// shard's store directly, without ring checks. It is meant for debugging and
// for the nginx comparison benchmark, not for clients.
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { installHttpBasics, bodyBytes, frameworkErrors } from '../infra/http.js';
import { decodeKeyFromPath, validateKey, validateValue, validateContentType, parseTtl, etag } from '../core/validate.js';
import { kvError } from '../core/errors.js';
import type { ShardConfig } from '../core/config.js';
import type { Store } from './store.js';

export interface ShardHttpDeps {
  readonly config: ShardConfig;
  readonly store: Store;
  status(): Record<string, unknown>;
}

const KV_PREFIX = '/kv/';

function keyOf(url: string, cfg: ShardConfig): string {
  const path = url.split('?')[0]!;
  return validateKey(decodeKeyFromPath(path.slice(KV_PREFIX.length)), cfg);
}

export function buildShardHttp(deps: ShardHttpDeps): FastifyInstance {
  const { config: cfg, store } = deps;
  const app = Fastify({ logger: cfg.logLevel === 'silent' ? false : { level: cfg.logLevel }, logController: new LogController({ disableRequestLogging: true }), bodyLimit: cfg.maxValueBytes + 1024, frameworkErrors });
  installHttpBasics(app, (path) => {
    if (path.startsWith(KV_PREFIX)) return ['GET', 'HEAD', 'PUT', 'DELETE'];
    if (path === '/healthz' || path === '/stats') return ['GET', 'HEAD'];
    return undefined;
  });

  app.get('/healthz', async () => ({ ok: true, ...deps.status() }));
  app.get('/stats', async () => ({ ...deps.status(), ...store.stats() }));

  app.get('/kv/*', async (req, reply) => {
    const rec = store.get(keyOf(req.url, cfg));
    if (!rec) throw kvError('KV_ERR_NOT_FOUND');
    return reply.header('etag', etag(rec.ver)).type(rec.ct).send(Buffer.from(rec.v.buffer, rec.v.byteOffset, rec.v.byteLength));
  });
  app.put('/kv/*', async (req, reply) => {
    const key = keyOf(req.url, cfg);
    const value = validateValue(bodyBytes(req.body), cfg);
    const ttl = parseTtl((req.query as Record<string, unknown>)['ttl'], cfg);
    const contentType = validateContentType(req.headers['content-type'], cfg);
    const ver = await store.transaction(() => store.putInTxn(key, { value, contentType, expiresAt: ttl ? Date.now() + ttl * 1000 : 0 }));
    return reply.code(204).header('etag', etag(ver)).send();
  });
  app.delete('/kv/*', async (req, reply) => {
    const key = keyOf(req.url, cfg);
    const res = await store.transaction(() => store.delInTxn(key, undefined));
    if (!res.deleted) throw kvError('KV_ERR_NOT_FOUND');
    return reply.code(204).send();
  });
  return app;
}
