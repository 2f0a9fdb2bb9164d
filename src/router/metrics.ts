// GET /metrics (Prometheus text format). Under the cluster primary the
// answer is the whole host's: every worker's numbers merged (host-metrics.ts),
// whichever worker the scrape lands on. Without it (an app built directly,
// as tests do) the answer is this process's own numbers.
//
// Every metric says how the primary merges it: counters and histograms are
// summed, per-host gauges (epoch, rebalance progress) take the max, since
// every worker reads the same topology and job.
import type { FastifyPluginAsync } from 'fastify';
import client from 'prom-client';
import { isActive, progress, type Job } from '../rebalance/job.js';
import type { RebalanceStore } from '../rebalance/job-store.js';
import type { Forwarder } from './forwarder.js';
import { requireAdminToken } from '../infra/auth.js';
import { arrayMetric, readCounter, readGauge } from '../infra/prom.js';
import { forwardErrorSamples, forwardSamples, type RequestMetrics } from './request-metrics.js';
import type { WorkerMetricsChannel } from './host-metrics.js';

export interface MetricsDeps {
  readonly forwarder: Forwarder;
  readonly jobs: RebalanceStore;
  /** Non-empty: /metrics needs this bearer token (option metricsAuth). */
  readonly adminToken: string;
  /** This worker's request counts (undefined: requestMetrics=false; those metrics are then 0). */
  readonly requests: RequestMetrics | undefined;
  /** Under the cluster primary: how to reach it (worker.ts). */
  readonly host: WorkerMetricsChannel | undefined;
}

/** This worker's registry, and how to read it with the rebalance job fresh from Redis. */
function workerRegistry(d: MetricsDeps): { registry: client.Registry; collect(): Promise<void> } {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'kv_router_' });
  const job = { last: null as Job | null };
  const collect = async () => {
    job.last = await d.jobs.get().catch(() => job.last);
  };
  const c = d.forwarder.counters;
  readCounter(registry, 'kv_router_retries_total', 'Requests retried after a STALE_EPOCH or NOT_OWNER refusal', () => c.retries);
  readCounter(
    registry,
    'kv_router_fallback_reads_total',
    "Reads of a moving key that also needed the old owner's record during a migration",
    () => c.fallbackReads,
  );
  readCounter(
    registry,
    'kv_router_pulled_ahead_total',
    'Conditional writes and deletes of a moving key that first copied its record to the new owner',
    () => c.pulledAhead,
  );

  const r = d.requests;
  arrayMetric(registry, {
    name: 'kv_router_requests_total',
    help: 'Requests answered, by route template, method and status',
    type: 'counter',
    values: () => r?.requestSamples() ?? [],
  });
  arrayMetric(registry, {
    name: 'kv_router_request_duration_seconds',
    help: 'Time from a request to its answer, by route template and method',
    type: 'histogram',
    values: () => r?.durationSamples('kv_router_request_duration_seconds') ?? [],
  });
  arrayMetric(registry, {
    name: 'kv_router_errors_total',
    help: 'Error answers, by KV_ERR_* code',
    type: 'counter',
    values: () => r?.errorSamples() ?? [],
  });
  readGauge(registry, 'kv_router_in_flight', 'Requests received and not answered yet', () => r?.inFlight ?? 0);
  const fwd = d.forwarder.forwardStats;
  arrayMetric(registry, {
    name: 'kv_router_forward_duration_seconds',
    help: "Time from writing a request's frame to a shard to its answer, by shard",
    type: 'histogram',
    values: () => (fwd ? forwardSamples('kv_router_forward_duration_seconds', fwd) : []),
  });
  arrayMetric(registry, {
    name: 'kv_router_forward_errors_total',
    help: "Requests to a shard that did not succeed, by shard and KV_ERR_* code (the shard's error answers, timeouts, lost connections, refusals)",
    type: 'counter',
    values: () => (fwd ? forwardErrorSamples(fwd) : []),
  });
  // 1 per worker; the primary's own value (its live workers) wins the max.
  readGauge(registry, 'kv_router_workers', 'Live workers on this host', () => 1, 'max');

  const hostGauge = (name: string, help: string, read: () => number) => readGauge(registry, name, help, read, 'max');
  hostGauge('kv_topology_epoch', 'Topology epoch the workers route with (the highest)', () => d.forwarder.topology?.epoch ?? 0);
  hostGauge('kv_rebalance_keys_moved', 'Keys moved by the current or last rebalance job', () => (job.last ? progress(job.last).keysDone : 0));
  hostGauge('kv_rebalance_bytes_moved', 'Value bytes moved by the current or last rebalance job', () => (job.last ? progress(job.last).bytesDone : 0));
  hostGauge('kv_rebalance_keys_total', 'Keys the current or last rebalance job moves in all', () => (job.last ? progress(job.last).keysTotal : 0));
  hostGauge('kv_rebalance_keys_purged', 'Records the sources of the current or last rebalance job have purged', () =>
    job.last ? progress(job.last).keysPurged : 0,
  );
  hostGauge('kv_rebalance_active', '1 while a rebalance job runs', () => (isActive(job.last) ? 1 : 0));
  hostGauge(
    'kv_rebalance_rate_limit_keys_per_second',
    "The running job's rate limit (keys/s over all streams, streaming or purging); 0 = none or no job streaming or purging",
    () => {
      const p = job.last?.state === 'streaming' || job.last?.state === 'purging' ? job.last.pacing : undefined;
      return p?.keysPerSec ?? 0;
    },
  );
  hostGauge(
    'kv_rebalance_fg_p99_ratio',
    "Adaptive pacing: the routers' foreground p99 over its baseline before the move, at the job's last checkpoint; 0 = not measured",
    () => (isActive(job.last) ? (job.last.pacing?.ratio ?? 0) : 0),
  );
  return { registry, collect };
}

export const metricsRoutes: FastifyPluginAsync<MetricsDeps> = async (app, d) => {
  requireAdminToken(app, d.adminToken);
  const { registry, collect } = workerRegistry(d);
  const host = d.host;
  host?.answerWith(async () => {
    await collect();
    return registry.getMetricsAsJSON();
  });

  app.get('/metrics', async (_req, reply) => {
    let text: string;
    if (host) text = await host.scrape();
    else {
      await collect();
      text = await registry.metrics();
    }
    return reply.type(registry.contentType).send(text);
  });
};
