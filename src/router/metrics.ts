// GET /metrics (Prometheus text format): this worker's counters, its
// topology epoch and the cluster's rebalance job.
import type { FastifyPluginAsync } from 'fastify';
import client from 'prom-client';
import { isActive, progress, type Job } from '../rebalance/job.js';
import type { RebalanceStore } from '../rebalance/job-store.js';
import type { Forwarder } from './forwarder.js';
import { requireAdminToken } from '../infra/auth.js';

export interface MetricsDeps {
  readonly forwarder: Forwarder;
  readonly jobs: RebalanceStore;
  /** Non-empty: /metrics needs this bearer token (option metricsAuth). */
  readonly adminToken: string;
}

/** A counter that reports a number kept elsewhere (it only ever grows). */
function mirrorCounter(registry: client.Registry, name: string, help: string, read: () => number): void {
  new client.Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

export const metricsRoutes: FastifyPluginAsync<MetricsDeps> = async (app, d) => {
  requireAdminToken(app, d.adminToken);
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'kv_router_' });
  const job = { last: null as Job | null };
  const refreshJob = async () => {
    job.last = await d.jobs.get().catch(() => job.last);
  };
  const c = d.forwarder.counters;
  mirrorCounter(registry, 'kv_router_retries_total', 'Requests this worker retried after a STALE_EPOCH or NOT_OWNER refusal', () => c.retries);
  mirrorCounter(
    registry,
    'kv_router_fallback_reads_total',
    "Reads of a moving key that also needed the old owner's record during a migration",
    () => c.fallbackReads,
  );
  mirrorCounter(
    registry,
    'kv_router_pulled_ahead_total',
    'Conditional writes and deletes of a moving key that first copied its record to the new owner',
    () => c.pulledAhead,
  );
  new client.Gauge({
    name: 'kv_topology_epoch',
    help: 'Topology epoch this worker routes with',
    registers: [registry],
    collect() {
      this.set(d.forwarder.topology?.epoch ?? 0);
    },
  });
  new client.Gauge({
    name: 'kv_rebalance_keys_moved',
    help: 'Keys moved by the current or last rebalance job',
    registers: [registry],
    collect() {
      this.set(job.last ? progress(job.last).keysDone : 0);
    },
  });
  new client.Gauge({
    name: 'kv_rebalance_bytes_moved',
    help: 'Value bytes moved by the current or last rebalance job',
    registers: [registry],
    collect() {
      this.set(job.last ? progress(job.last).bytesDone : 0);
    },
  });
  new client.Gauge({
    name: 'kv_rebalance_keys_total',
    help: 'Keys the current or last rebalance job moves in all',
    registers: [registry],
    collect() {
      this.set(job.last ? progress(job.last).keysTotal : 0);
    },
  });
  new client.Gauge({
    name: 'kv_rebalance_active',
    help: '1 while a rebalance job runs',
    registers: [registry],
    collect() {
      this.set(isActive(job.last) ? 1 : 0);
    },
  });

  new client.Gauge({
    name: 'kv_rebalance_rate_limit_keys_per_second',
    help: "The running job's move rate limit (keys/s over all streams); 0 = none or no job streaming",
    registers: [registry],
    collect() {
      const p = job.last?.state === 'streaming' ? job.last.pacing : undefined;
      this.set(p?.keysPerSec ?? 0);
    },
  });
  new client.Gauge({
    name: 'kv_rebalance_fg_p99_ratio',
    help: "Adaptive pacing: the routers' foreground p99 over its baseline before the move, at the job's last checkpoint; 0 = not measured",
    registers: [registry],
    collect() {
      this.set(isActive(job.last) ? (job.last.pacing?.ratio ?? 0) : 0);
    },
  });

  app.get('/metrics', async (_req, reply) => {
    await refreshJob();
    return reply.type(registry.contentType).send(await registry.metrics());
  });
};
