// The admin API under /v1/admin: every route needs the admin token.
import type { FastifyPluginAsync } from 'fastify';
import { requireAdminToken } from '../../infra/auth.js';
import { shardRoutes } from './shards.js';
import { rebalanceRoutes } from './rebalance.js';
import { tenantRoutes } from './tenants.js';
import type { AdminApiDeps } from './deps.js';

export type { AdminApiDeps } from './deps.js';

export const adminApi: FastifyPluginAsync<AdminApiDeps> = async (app, opts) => {
  // The children take the dependencies only: a `prefix` passed on would be added twice.
  const d: AdminApiDeps = {
    config: opts.config,
    redis: opts.redis,
    topology: opts.topology,
    jobs: opts.jobs,
    forwarder: opts.forwarder,
    identity: opts.identity,
    auth: opts.auth,
  };
  requireAdminToken(app, d.config.adminToken);
  await app.register(shardRoutes, d);
  await app.register(rebalanceRoutes, d);
  await app.register(tenantRoutes, d);
};
