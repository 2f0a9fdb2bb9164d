// Liveness, readiness and what this worker routes with.
import type { FastifyPluginAsync } from 'fastify';
import type { Redis } from 'ioredis';
import { kvError } from '../core/errors.js';
import { redisReason } from '../infra/redis-reason.js';
import { ringView, type RingView } from '../core/ring-view.js';
import type { Topology } from '../core/topology.js';
import type { Forwarder } from './forwarder.js';

export interface HealthDeps {
  readonly redis: Redis;
  readonly forwarder: Forwarder;
  readonly workerId: string;
}

export const healthRoutes: FastifyPluginAsync<HealthDeps> = async (app, { redis, forwarder, workerId }) => {
  app.get('/healthz', async () => ({ ok: true, pid: process.pid, worker: workerId }));

  /** Ready: the topology is loaded, the ring has shards and Redis answers. */
  app.get('/readyz', async (_req, reply) => {
    const t = forwarder.topology;
    if (!t) throw kvError('KV_ERR_NOT_READY', 'topology not loaded yet');
    if (t.shards.length === 0) throw kvError('KV_ERR_NO_SHARDS');
    try {
      await redis.ping();
    } catch (err) {
      throw kvError('KV_ERR_REDIS_UNAVAILABLE', redisReason(err as Error));
    }
    return reply.send({ ready: true, epoch: t.epoch, shards: t.shards.length });
  });

  app.get('/v1/topology', async () => {
    const t = forwarder.topology;
    if (!t) throw kvError('KV_ERR_NOT_READY', 'topology not loaded yet');
    return t;
  });

  // The ring's arcs for drawing (the dashboard): derived from the topology
  // above, so it shows nothing /v1/topology does not; computed once per epoch.
  let view: { t: Topology; v: RingView } | undefined;
  app.get('/v1/ring', async () => {
    const t = forwarder.topology;
    if (!t) throw kvError('KV_ERR_NOT_READY', 'topology not loaded yet');
    if (view?.t !== t) view = { t, v: ringView(t) };
    return view.v;
  });

  app.get('/v1/stats', async () => ({ pid: process.pid, worker: workerId, ...forwarder.stats() }));
};
