// The shard's HTTP port (called its admin port in the options: adminPort,
// adminAddr): health, stats, metrics, and a plain /kv/<key> for debugging and
// for the nginx comparison benchmark, not for clients. Everything but
// /healthz needs the admin token (/metrics only with metricsAuth).
//
// Writes on /kv/* follow httpKvWrites:
//  - 'ring' (default): exactly as strict as the data port, because they go
//    through it: the key must belong to this shard at its current epoch, and
//    If-Match, If-None-Match and the TTL rules are the router's;
//  - 'standalone': any key, no ring checks (a shard used alone, e.g. behind
//    nginx in the comparison benchmark), with the same request rules;
//  - 'off': read-only.
// Reads show whatever this shard stores (also keys it does not own).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createHttpApp, installHttpBasics, bodyBytes, queryParam, targetPath } from '../infra/http.js';
import { requireAdminToken } from '../infra/auth.js';
import { decodeKeyFromPath, validateKey, validateValue, validateContentType, parseTtl, parseIfMatch, etag } from '../core/validate.js';
import { fromWire, kvError } from '../core/errors.js';
import { OPS, type Request, type Response } from '../core/protocol.js';
import type { ShardConfig } from '../core/config.js';
import type { Store } from './store.js';
import type { FrameHandler, OwnershipView } from './frame-handler.js';
import type { DataServerCounters } from './data-server.js';
import { shardMetrics } from './metrics.js';

export interface ShardHttpDeps {
  readonly config: ShardConfig;
  readonly store: Store;
  readonly handler: FrameHandler;
  readonly view: () => OwnershipView;
  readonly dataCounters: DataServerCounters;
  status(): Record<string, unknown>;
}

const KV_PREFIX = '/kv/';
const TTL_HEADER = 'x-kv-ttl';
const OPEN_PATHS = new Set(['/healthz']);

function keyOf(url: string, cfg: ShardConfig): string {
  const path = targetPath(url);
  return validateKey(decodeKeyFromPath(path.slice(KV_PREFIX.length)), cfg);
}

/** The TTL from ?ttl= or x-kv-ttl, by the router's rules (both only when they agree; empty is refused). */
function ttlOf(req: FastifyRequest, cfg: ShardConfig): number | undefined {
  const q = queryParam(req, 'ttl');
  const h = req.headers[TTL_HEADER];
  if (Array.isArray(h)) throw kvError('KV_ERR_BAD_TTL', cfg.maxTtlSeconds, 'x-kv-ttl given more than once');
  if (q === '' || h === '') throw kvError('KV_ERR_BAD_TTL', cfg.maxTtlSeconds, 'an empty value');
  if (q !== undefined && h !== undefined && q !== h) throw kvError('KV_ERR_BAD_TTL', cfg.maxTtlSeconds, '?ttl and x-kv-ttl disagree');
  return parseTtl(q ?? h, cfg);
}

function ifNoneMatchOf(req: FastifyRequest): boolean {
  const inm = req.headers['if-none-match'];
  if (inm !== undefined && inm !== '*') throw kvError('KV_ERR_BAD_PRECONDITION', JSON.stringify(inm));
  return inm === '*';
}

export function buildShardHttp(deps: ShardHttpDeps): FastifyInstance {
  const { config: cfg, store, handler } = deps;
  const app = createHttpApp(cfg);
  installHttpBasics(app, (path) => {
    if (path.startsWith(KV_PREFIX)) return cfg.httpKvWrites === 'off' ? ['GET', 'HEAD'] : ['GET', 'HEAD', 'PUT', 'DELETE'];
    if (path === '/healthz' || path === '/stats' || path === '/metrics') return ['GET', 'HEAD'];
    return undefined;
  });
  const open = (url: string) => {
    const path = url.split('?')[0]!;
    return OPEN_PATHS.has(path) || (path === '/metrics' && !cfg.metricsAuth);
  };
  requireAdminToken(app, cfg.adminToken, open);

  app.get('/healthz', async () => ({ ok: true, ...deps.status() }));
  app.get('/stats', async () => ({ ...deps.status(), ...store.stats(), dataPort: { ...deps.dataCounters }, writeBatches: { ...handler.counters } }));

  const registry = shardMetrics({ store, handler, view: deps.view, dataCounters: deps.dataCounters });
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));

  app.get('/kv/*', async (req, reply) => {
    const rec = store.get(keyOf(req.url, cfg));
    if (!rec) throw kvError('KV_ERR_NOT_FOUND');
    return reply
      .header('etag', etag(rec.ver))
      .type(rec.ct)
      .send(Buffer.from(rec.v.buffer, rec.v.byteOffset, rec.v.byteLength));
  });
  if (cfg.httpKvWrites === 'off') return app;

  /** One write through the data port's own checks (ring mode). */
  const viaDataPort = async (req: Request): Promise<unknown> => {
    const [res] = (await handler.handle([req])) as [Response];
    if ('err' in res) throw fromWire(res.err);
    return res.r;
  };

  app.put('/kv/*', { config: { query: ['ttl'] } }, async (req, reply) => {
    const key = keyOf(req.url, cfg);
    const value = validateValue(bodyBytes(req.body), cfg);
    const ttl = ttlOf(req, cfg);
    const contentType = validateContentType(req.headers['content-type'], cfg);
    const ifMatch = parseIfMatch(req.headers['if-match']);
    const ifNoneMatch = ifNoneMatchOf(req);
    const expiresAt = ttl ? Date.now() + ttl * 1000 : 0;
    let ver: number;
    if (cfg.httpKvWrites === 'ring') {
      const r = (await viaDataPort({
        i: 1,
        o: OPS.PUT,
        e: deps.view().epoch,
        k: key,
        v: value,
        ct: contentType,
        x: expiresAt,
        ...(ifMatch !== undefined ? { m: ifMatch } : {}),
        ...(ifNoneMatch ? { n: true } : {}),
      })) as { ver: number };
      ver = r.ver;
    } else {
      ver = await store.transaction(() => store.putInTxn(key, { value, contentType, expiresAt, ifMatch, ifNoneMatch }));
    }
    return reply.code(204).header('etag', etag(ver)).send();
  });
  app.delete('/kv/*', async (req, reply) => {
    const key = keyOf(req.url, cfg);
    const ifMatch = parseIfMatch(req.headers['if-match']);
    const res =
      cfg.httpKvWrites === 'ring'
        ? ((await viaDataPort({ i: 1, o: OPS.DEL, e: deps.view().epoch, k: key, ...(ifMatch !== undefined ? { m: ifMatch } : {}) })) as { deleted: boolean })
        : await store.transaction(() => store.delInTxn(key, ifMatch));
    if (!res.deleted) throw kvError('KV_ERR_NOT_FOUND');
    return reply.code(204).send();
  });
  return app;
}
