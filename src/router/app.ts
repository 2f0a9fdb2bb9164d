// buildRouter() returns the router worker's Fastify app, not listening;
// worker.ts does listen and drain, primary.ts the cluster and signals.
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { RouterConfig } from '../core/config.js';
import { createRedis, createSubscriber } from '../infra/redis.js';
import { createHttpApp, installHttpBasics, type FrontHandler } from '../infra/http.js';
import { TopologyStore } from '../infra/topology-store.js';
import { TopologyWatcher } from '../infra/topology-watcher.js';
import { RebalanceStore } from '../rebalance/job-store.js';
import { Admission } from './admission.js';
import { Authenticator } from './authenticator.js';
import { IdentityStore } from '../infra/identity-store.js';
import { sessionRoutes } from './session-routes.js';
import { TenantRateLimiter } from './tenant-rate.js';
import { Forwarder } from './forwarder.js';
import { BATCH_PATH, KV_PREFIX, SCAN_PATH, callerCheck, kvRoutes } from './kv-routes.js';
import { kvFastPath } from './kv-fast.js';
import { healthRoutes } from './health-routes.js';
import { adminApi } from './admin/index.js';
import { metricsRoutes } from './metrics.js';
import { startFgPublisher } from './fg-latency.js';
import { RequestMetrics, methodIndex, routeOfTemplate } from './request-metrics.js';
import type { WorkerMetricsChannel } from './host-metrics.js';
import { DASHBOARD_PATHS, dashboardRoutes } from './dashboard-routes.js';

export interface RouterDeps {
  /** Shared Redis connection (one is created when absent). */
  redis?: Redis;
  /** True while the worker drains: responses then carry `Connection: close`. */
  draining?: () => boolean;
  /** Under the cluster primary: /metrics answers for the whole host (worker.ts). */
  hostMetrics?: WorkerMetricsChannel;
}

export interface Router {
  readonly app: FastifyInstance;
  readonly forwarder: Forwarder;
  readonly watcher: TopologyWatcher;
  /** Load the topology and subscribe to changes; call before listen. */
  start(): Promise<void>;
}

/** Server errors while a rebalance runs are counted for its summary this long. */
const FG_ERRORS_TTL_MS = 7 * 24 * 3600 * 1000;

/** The methods each known path allows: 405 with `Allow` for the others, 404 for unknown paths. */
function methodsFor(path: string): readonly string[] | undefined {
  if (path === BATCH_PATH) return ['POST'];
  if (path.startsWith(KV_PREFIX)) return ['GET', 'HEAD', 'PUT', 'DELETE'];
  if (path === '/healthz' || path === '/readyz' || path === '/v1/topology' || path === '/v1/ring' || path === '/v1/stats' || path === '/metrics')
    return ['GET', 'HEAD'];
  if (DASHBOARD_PATHS.has(path)) return ['GET', 'HEAD'];
  if (path === '/v1/admin/shards') return ['GET', 'HEAD', 'POST'];
  if (/^\/v1\/admin\/shards\/[^/]+$/.test(path)) return ['DELETE'];
  if (/^\/v1\/admin\/shards\/[^/]+\/weight$/.test(path)) return ['PUT'];
  if (path === '/v1/admin/rebalance' || path === '/v1/admin/rebalance/events' || path === '/v1/admin/rebalance/history') return ['GET', 'HEAD'];
  if (path === '/v1/admin/rebalance/cancel') return ['POST'];
  if (path === SCAN_PATH) return ['GET', 'HEAD'];
  if (path === '/v1/sessions') return ['POST'];
  if (path === '/v1/sessions/current') return ['GET', 'HEAD', 'DELETE'];
  if (path === '/v1/admin/tenants') return ['GET', 'HEAD', 'POST'];
  if (/^\/v1\/admin\/tenants\/[^/]+\/keys$/.test(path)) return ['POST'];
  if (/^\/v1\/admin\/keys\/[^/]+$/.test(path)) return ['DELETE'];
  return undefined;
}

export function buildRouter(config: RouterConfig, deps: RouterDeps = {}): Router {
  const redis = deps.redis ?? createRedis(config);
  const topology = new TopologyStore(redis, config.redisPrefix);
  const watcher = new TopologyWatcher(topology, createSubscriber(config), config.topologyPollMs);
  const requests = config.requestMetrics ? new RequestMetrics() : undefined;
  const forwarder = new Forwarder(watcher, config, config.requestMetrics);
  const jobs = new RebalanceStore(redis, config.redisPrefix);
  const workerId = process.env['KV_WORKER_ID'] ?? '0';
  const draining = deps.draining ?? (() => false);

  const admission = new Admission(config.maxPendingOps, config.overloadRetryAfterS);
  const identity = new IdentityStore(redis, config.redisPrefix);
  const auth = new Authenticator(identity, createSubscriber(config), config);
  const rate = new TenantRateLimiter(redis, config.redisPrefix, config.tenantRateLimitPerSec);
  const front: FrontHandler = { handle: undefined };
  const app = createHttpApp(
    config,
    {
      return503OnClosing: false,
      // Keys are taken from the raw URL (strict UTF-8, slashes allowed).
      routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: config.maxKeyBytes * 3 + 16 },
    },
    front,
    requests,
  );
  installHttpBasics(app, methodsFor, requests);
  const callerOf = callerCheck(config, auth, rate);

  // Server errors while a rebalance runs are counted for its summary.
  const countServerError = (): void => {
    const jobId = forwarder.topology?.migration?.jobId;
    if (!jobId) return;
    const key = jobs.foregroundErrorsKey(jobId);
    redis
      .multi()
      .incr(key)
      .pexpire(key, FG_ERRORS_TTL_MS)
      .exec()
      .catch(() => undefined);
  };
  if (config.fastPath) {
    front.handle = kvFastPath({ config, forwarder, admission, callerOf, workerId, draining, onServerError: countServerError, log: app.log, metrics: requests });
  }

  // One callback-style hook (no promise per request): the worker id for
  // debugging and tests, and `Connection: close` while draining.
  app.addHook('onSend', (_req, reply, payload, done) => {
    void reply.header('x-kv-worker', workerId);
    if (draining()) void reply.header('connection', 'close');
    if (reply.statusCode >= 500) countServerError();
    done(null, payload);
  });

  if (requests) {
    // Every request Fastify answers, by route template (a small fixed set, looked up once per template).
    const routeIds = new Map<string | undefined, number>();
    app.addHook('onResponse', (req, reply, done) => {
      const url = req.routeOptions.url;
      let route = routeIds.get(url);
      if (route === undefined) routeIds.set(url, (route = routeOfTemplate(url)));
      requests.record(route, methodIndex(req.method), reply.statusCode, reply.elapsedTime);
      done();
    });
  }

  void app.register(healthRoutes, { redis, forwarder, workerId });
  void app.register(kvRoutes, { config, forwarder, admission, callerOf, identity });
  void app.register(sessionRoutes, {
    identity,
    auth,
    sessionIdleTimeoutMs: config.sessionIdleTimeoutMs,
    sessionAbsoluteTimeoutMs: config.sessionAbsoluteTimeoutMs,
    secureCookie: config.tlsCertFile !== '',
  });
  void app.register(adminApi, { prefix: '/v1/admin', config, redis, topology, jobs, forwarder, identity, auth });
  if (config.dashboard) void app.register(dashboardRoutes);
  void app.register(metricsRoutes, { forwarder, jobs, adminToken: config.metricsAuth ? config.adminToken : '', requests, host: deps.hostMetrics });

  let stopFgPublisher: (() => void) | undefined;
  app.addHook('onClose', async () => {
    stopFgPublisher?.();
    forwarder.close();
    auth.close();
    await watcher.close();
    if (!deps.redis) redis.disconnect();
  });

  return {
    app,
    forwarder,
    watcher,
    async start() {
      await Promise.all([watcher.start(), auth.start()]);
      // The data requests' latency, for the rebalance coordinator's pacing.
      stopFgPublisher ??= startFgPublisher(redis, config.redisPrefix);
    },
  };
}
