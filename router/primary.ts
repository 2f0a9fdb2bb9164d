// The router primary (cluster module). It forks `workers` workers, respawns a
// crashed one with exponential backoff inside a crash-loop budget, rolls every
// worker on SIGUSR2 with zero downtime (the new worker listens before the old
// one drains), and drains all workers on SIGTERM/SIGINT.
import cluster, { type Worker } from 'node:cluster';
import type { RouterConfig } from '../src/config.js';
import type { WorkerMessage } from './worker.js';
import { createRedis, createSubscriber } from '../src/redis.js';
import { TopologyStore, TopologyWatcher } from '../src/topology-store.js';
import { RebalanceStore } from '../src/rebalance.js';
import { Forwarder } from './forwarder.js';
import { Coordinator } from './coordinator.js';

export type PrimaryEvent =
  | { type: 'ready'; port: number; workers: number[] }
  | { type: 'rolled'; workers: number[] }
  | { type: 'respawned'; pid: number; replaced: number }
  | { type: 'crash-loop'; restarts: number };

interface Slot {
  worker: Worker;
  workerId: string;
  ready: boolean;
  retiring: boolean;
}

export async function runPrimary(config: RouterConfig, log: (msg: string) => void = (m) => console.error(m)): Promise<void> {
  const slots = new Map<number, Slot>(); // by worker.id
  const crashes: number[] = [];
  let nextWorkerId = 1;
  let shuttingDown = false;
  let rolling = false;
  let rollAgain = false;
  let port = 0;

  const emit = (ev: PrimaryEvent) => { if (process.send) process.send(ev); };
  const livePids = () => [...slots.values()].filter((s) => s.ready && !s.retiring).map((s) => s.worker.process.pid!);

  function fork(): Promise<Slot> {
    const workerId = String(nextWorkerId++);
    const worker = cluster.fork({ KV_WORKER_ID: workerId });
    const slot: Slot = { worker, workerId, ready: false, retiring: false };
    slots.set(worker.id, slot);
    return new Promise((resolve, reject) => {
      const onMsg = (msg: WorkerMessage) => {
        if (msg?.type === 'ready') {
          slot.ready = true;
          port = msg.port;
          worker.off('message', onMsg);
          resolve(slot);
        }
      };
      worker.on('message', onMsg);
      worker.once('exit', (code, signal) => {
        if (!slot.ready) reject(new Error(`worker ${workerId} exited before it was ready (code ${code}, signal ${signal})`));
      });
    });
  }

  function onExit(worker: Worker, code: number, signal: string): void {
    const slot = slots.get(worker.id);
    slots.delete(worker.id);
    if (!slot || slot.retiring || shuttingDown) return;
    const now = Date.now();
    crashes.push(now);
    while (crashes.length > 0 && crashes[0]! < now - config.crashLoopWindowMs) crashes.shift();
    if (crashes.length > config.crashLoopMaxRestarts) {
      log(`router: ${crashes.length} worker crashes within ${config.crashLoopWindowMs} ms, over the budget of ${config.crashLoopMaxRestarts}; stopping`);
      emit({ type: 'crash-loop', restarts: crashes.length });
      void shutdown(1);
      return;
    }
    const delay = Math.min(config.respawnMaxDelayMs, config.respawnMinDelayMs * 2 ** (crashes.length - 1));
    log(`router: worker ${slot.workerId} (pid ${worker.process.pid}) died (code ${code}, signal ${signal}); respawning in ${delay} ms`);
    setTimeout(() => {
      if (shuttingDown) return;
      fork().then((s) => emit({ type: 'respawned', pid: s.worker.process.pid!, replaced: worker.process.pid! }),
        (err: Error) => log(`router: respawn failed: ${err.message}`));
    }, delay);
  }

  function retire(slot: Slot, timeoutMs: number): Promise<void> {
    slot.retiring = true;
    return new Promise((resolve) => {
      if (slot.worker.isDead()) return resolve();
      const timer = setTimeout(() => { slot.worker.process.kill('SIGKILL'); }, timeoutMs);
      slot.worker.once('exit', () => { clearTimeout(timer); resolve(); });
      // A worker still starting has no requests to drain and may not listen
      // for messages yet: a signal stops it.
      if (!slot.ready) {
        slot.worker.process.kill('SIGTERM');
        return;
      }
      try {
        slot.worker.send({ type: 'drain' });
      } catch {
        slot.worker.process.kill('SIGTERM');
      }
    });
  }

  async function roll(): Promise<void> {
    if (rolling) { rollAgain = true; return; }
    rolling = true;
    try {
      do {
        rollAgain = false;
        const old = [...slots.values()].filter((s) => !s.retiring);
        for (const slot of old) {
          if (shuttingDown) return;
          // Start the replacement first; only once it listens does the old one drain.
          await fork();
          await retire(slot, config.drainTimeoutMs + 5000);
        }
        log(`router: rolled ${old.length} workers`);
        emit({ type: 'rolled', workers: livePids() });
      } while (rollAgain && !shuttingDown);
    } catch (err) {
      log(`router: rolling restart stopped: ${(err as Error).message}`);
    } finally {
      rolling = false;
    }
  }

  let stopCoordinator = async (): Promise<void> => undefined;

  async function shutdown(code: number): Promise<void> {
    if (shuttingDown) return;
    shuttingDown = true;
    await stopCoordinator().catch(() => undefined);
    await Promise.all([...slots.values()].map((s) => retire(s, config.drainTimeoutMs + 5000)));
    process.exit(code);
  }

  cluster.on('exit', onExit);
  process.on('SIGUSR2', () => { void roll(); });
  process.on('SIGTERM', () => { void shutdown(0); });
  process.on('SIGINT', () => { void shutdown(0); });
  process.on('disconnect', () => { void shutdown(0); });

  try {
    await Promise.all(Array.from({ length: config.workers }, () => fork()));
  } catch (err) {
    if (shuttingDown) return;
    log(`router: ${(err as Error).message}`);
    await shutdown(1);
    return;
  }
  if (shuttingDown) return;
  if (config.rebalanceCoordinator) {
    // y-axis split: the primary serves no requests, so it drives rebalancing.
    const redis = createRedis(config);
    const topology = new TopologyStore(redis, config.redisPrefix);
    const watcher = new TopologyWatcher(topology, createSubscriber(config), config.topologyPollMs);
    const forwarder = new Forwarder(watcher, config);
    const coordinator = new Coordinator({ config, topology, watcher, forwarder, jobs: new RebalanceStore(redis, config.redisPrefix), log });
    await watcher.start().catch((err: Error) => log(`router: coordinator waits for Redis: ${err.message}`));
    coordinator.start();
    stopCoordinator = async () => {
      await coordinator.stop();
      forwarder.close();
      await watcher.close();
      redis.disconnect();
    };
  }
  emit({ type: 'ready', port, workers: livePids() });
  log(`router: ${config.workers} workers listening on http://${config.host}:${port} (primary pid ${process.pid})`);
}
