// buildRouter() returns the router worker's Fastify app, not listening.
// main/worker code does listen, cluster and signals; tests build it directly.
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { RouterConfig } from '../src/config.js';
import { kvError } from '../src/errors.js';
import { OPS, type StoredValue } from '../src/protocol.js';
import { createRedis, createSubscriber } from '../src/redis.js';
import { TopologyStore, TopologyWatcher } from '../src/topology-store.js';
import { installHttpBasics, bodyBytes, frameworkErrors } from '../src/http.js';
import { decodeKeyFromPath, validateKey, validateValue, validateContentType, parseTtl, parseIfMatch, etag } from '../src/validate.js';
import { Forwarder } from './forwarder.js';
import { parseBatch, runBatch } from './batch.js';
import { registerAdminRoutes } from './admin-routes.js';

const KV_PREFIX = '/v1/kv/';
const BATCH_PATH = '/v1/kv/_batch';
const TTL_HEADER = 'x-kv-ttl';

export interface RouterDeps {
  /** Shared Redis connection (one is created when absent). */
  redis?: Redis;
  /** True while the worker drains: responses then carry `Connection: close`. */
  draining?: () => boolean;
}

export interface Router {
  readonly app: FastifyInstance;
  readonly forwarder: Forwarder;
  readonly watcher: TopologyWatcher;
  /** Load the topology and subscribe to changes; call before listen. */
  start(): Promise<void>;
}

/** Names under /v1/kv/ that are API endpoints, not keys. */
const RESERVED = new Map([['_batch', ['POST']], ['_scan', ['GET']]]);

function keyOf(req: FastifyRequest, cfg: RouterConfig): string {
  const path = (req.raw.url ?? '').split('?')[0]!;
  const raw = path.slice(KV_PREFIX.length);
  const reserved = RESERVED.get(raw);
  if (reserved) throw kvError('KV_ERR_METHOD_NOT_ALLOWED', req.method, path);
  return validateKey(decodeKeyFromPath(raw), cfg);
}

export function buildRouter(config: RouterConfig, deps: RouterDeps = {}): Router {
  const redis = deps.redis ?? createRedis(config);
  const store = new TopologyStore(redis, config.redisPrefix);
  const watcher = new TopologyWatcher(store, createSubscriber(config), config.topologyPollMs);
  const forwarder = new Forwarder(watcher, config);

  const app = Fastify({
    logger: config.logLevel === 'silent' ? false : { level: config.logLevel },
    bodyLimit: config.maxBodyBytes,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: false,
    frameworkErrors,
    // Keys are taken from the raw URL (strict UTF-8, slashes allowed).
    routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: config.maxKeyBytes * 3 + 16 },
  });
  installHttpBasics(app, (path) => {
    if (path === BATCH_PATH) return ['POST'];
    if (path.startsWith(KV_PREFIX)) return ['GET', 'HEAD', 'PUT', 'DELETE'];
    if (path === '/healthz' || path === '/readyz' || path === '/v1/topology' || path === '/v1/stats' || path === '/metrics') return ['GET', 'HEAD'];
    if (path === '/v1/admin/shards') return ['GET', 'HEAD', 'POST'];
    if (/^\/v1\/admin\/shards\/[^/]+$/.test(path)) return ['DELETE'];
    if (/^\/v1\/admin\/shards\/[^/]+\/weight$/.test(path)) return ['PUT'];
    if (path === '/v1/admin/rebalance' || path === '/v1/admin/rebalance/events' || path === '/v1/admin/rebalance/history') return ['GET', 'HEAD'];
    if (path === '/v1/admin/rebalance/cancel') return ['POST'];
    return undefined;
  });

  const workerId = process.env['KV_WORKER_ID'] ?? '0';
  const draining = deps.draining ?? (() => false);
  // One callback-style hook (no promise per request): the worker id for
  // debugging and tests, and `Connection: close` while draining.
  let fgErrorsKey: (jobId: string) => string = () => '';
  app.addHook('onSend', (_req, reply, payload, done) => {
    void reply.header('x-kv-worker', workerId);
    if (draining()) void reply.header('connection', 'close');
    // Server errors while a rebalance runs are counted for its summary.
    const jobId = reply.statusCode >= 500 ? forwarder.topology?.migration?.jobId : undefined;
    if (jobId) redis.multi().incr(fgErrorsKey(jobId)).pexpire(fgErrorsKey(jobId), 7 * 24 * 3600 * 1000).exec().catch(() => undefined);
    done(null, payload);
  });

  app.get('/healthz', async () => ({ ok: true, pid: process.pid, worker: workerId }));
  app.get('/readyz', async (_req, reply) => {
    const t = forwarder.topology;
    if (!t) throw kvError('KV_ERR_NOT_READY', 'topology not loaded yet');
    if (t.shards.length === 0) throw kvError('KV_ERR_NO_SHARDS');
    try {
      await redis.ping();
    } catch (err) {
      throw kvError('KV_ERR_REDIS_UNAVAILABLE', (err as Error).message);
    }
    return reply.send({ ready: true, epoch: t.epoch, shards: t.shards.length });
  });
  app.get('/v1/topology', async () => {
    const t = forwarder.topology;
    if (!t) throw kvError('KV_ERR_NOT_READY', 'topology not loaded yet');
    return t;
  });
  app.get('/v1/stats', async () => ({ pid: process.pid, worker: workerId, ...forwarder.stats() }));

  app.get('/v1/kv/*', async (req, reply) => {
    const key = keyOf(req, config);
    const rec = (await forwarder.exec({ o: OPS.GET, k: key })) as StoredValue | null;
    if (!rec) throw kvError('KV_ERR_NOT_FOUND');
    void reply.header('etag', etag(rec.ver)).type(rec.ct);
    if (rec.x) void reply.header('x-kv-expires-at', String(rec.x));
    return reply.send(Buffer.from(rec.v.buffer, rec.v.byteOffset, rec.v.byteLength));
  });

  app.put('/v1/kv/*', async (req, reply) => {
    const key = keyOf(req, config);
    const value = validateValue(bodyBytes(req.body), config);
    const q = req.query as Record<string, unknown>;
    const ttlRaw = q['ttl'] ?? req.headers[TTL_HEADER];
    const ttl = parseTtl(ttlRaw, config);
    const contentType = validateContentType(req.headers['content-type'], config);
    const ifMatch = parseIfMatch(req.headers['if-match']);
    const inm = req.headers['if-none-match'];
    if (inm !== undefined && inm !== '*') throw kvError('KV_ERR_BAD_PRECONDITION', JSON.stringify(inm));
    const r = (await forwarder.exec({
      o: OPS.PUT, k: key, v: value, ct: contentType, x: ttl ? Date.now() + ttl * 1000 : 0,
      ...(ifMatch !== undefined ? { m: ifMatch } : {}), ...(inm === '*' ? { n: true } : {}),
    })) as { ver: number };
    return reply.code(204).header('etag', etag(r.ver)).send();
  });

  app.delete('/v1/kv/*', async (req, reply) => {
    const key = keyOf(req, config);
    const ifMatch = parseIfMatch(req.headers['if-match']);
    const r = (await forwarder.exec({ o: OPS.DEL, k: key, ...(ifMatch !== undefined ? { m: ifMatch } : {}) })) as { deleted: boolean };
    if (!r.deleted) throw kvError('KV_ERR_NOT_FOUND');
    return reply.code(204).send();
  });

  app.post(BATCH_PATH, async (req) => {
    const ops = parseBatch(bodyBytes(req.body), config);
    return { results: await runBatch(ops, forwarder) };
  });

  fgErrorsKey = registerAdminRoutes(app, { config, redis, topology: store, forwarder }).fgErrorsKey;

  app.addHook('onClose', async () => {
    forwarder.close();
    await watcher.close();
    if (!deps.redis) redis.disconnect();
  });

  return {
    app, forwarder, watcher,
    async start() {
      await watcher.start();
    },
  };
}
