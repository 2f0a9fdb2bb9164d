// The router primary (cluster module): a pool of workers that serve the API
// (worker-pool.ts), and the rebalance coordinator, which the primary runs
// because it serves no requests itself (the y-axis split). SIGUSR2 rolls the
// workers; SIGTERM/SIGINT, or the parent going away, drains everything.
import type { RouterConfig } from '../core/config.js';
import { createRedis, createSubscriber } from '../infra/redis.js';
import { TopologyStore } from '../infra/topology-store.js';
import { TopologyWatcher } from '../infra/topology-watcher.js';
import { Coordinator } from '../rebalance/coordinator.js';
import { RebalanceStore } from '../rebalance/job-store.js';
import { FgSignal } from '../rebalance/fg-signal.js';
import { Forwarder } from './forwarder.js';
import { WorkerPool, type PrimaryEvent } from './worker-pool.js';
import { HostMetrics } from './host-metrics.js';

/** Start this primary's coordinator; returns how to stop it. */
async function startCoordinator(config: RouterConfig, log: (msg: string) => void): Promise<() => Promise<void>> {
  const redis = createRedis(config);
  const topology = new TopologyStore(redis, config.redisPrefix);
  const watcher = new TopologyWatcher(topology, createSubscriber(config), config.topologyPollMs);
  const shards = new Forwarder(watcher, config);
  const coordinator = new Coordinator({
    config,
    topology,
    watcher,
    shards,
    jobs: new RebalanceStore(redis, config.redisPrefix),
    fg: new FgSignal(redis, config.redisPrefix),
    log,
  });
  await watcher.start().catch((err: Error) => log(`router: coordinator waits for Redis: ${err.message}`));
  coordinator.start();
  return async () => {
    await coordinator.stop();
    shards.close();
    await watcher.close();
    redis.disconnect();
  };
}

export async function runPrimary(config: RouterConfig, log: (msg: string) => void = (m) => console.error(m)): Promise<void> {
  const emit = (ev: PrimaryEvent) => {
    if (process.send) process.send(ev);
  };
  let stopCoordinator = async (): Promise<void> => undefined;
  let shuttingDown = false;
  const shutdown = async (code: number): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    pool.stopRespawning();
    await stopCoordinator().catch(() => undefined);
    await pool.stop();
    process.exit(code);
  };
  const pool = new WorkerPool(config, log, emit, () => {
    void shutdown(1);
  });
  // The workers' /metrics: one answer for the whole host.
  new HostMetrics(config.metricsWorkerTimeoutMs, () => ({ ready: pool.readyWorkers(), live: pool.livePids().length }));

  process.on('SIGUSR2', () => {
    void pool.roll();
  });
  process.on('SIGTERM', () => {
    void shutdown(0);
  });
  process.on('SIGINT', () => {
    void shutdown(0);
  });
  process.on('disconnect', () => {
    void shutdown(0);
  });

  try {
    await pool.start(config.workers);
  } catch (err) {
    if (shuttingDown) return;
    log(`router: ${(err as Error).message}`);
    await shutdown(1);
    return;
  }
  if (shuttingDown) return;
  if (config.rebalanceCoordinator) stopCoordinator = await startCoordinator(config, log);
  emit({ type: 'ready', port: pool.port, workers: pool.livePids() });
  log(`router: ${config.workers} workers listening on ${config.tlsCertFile ? 'https' : 'http'}://${config.host}:${pool.port} (primary pid ${process.pid})`);
}
