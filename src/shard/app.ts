// buildShard() assembles a shard without listening; start() listens, registers
// in Redis and starts the heartbeat, topology watcher and sweeper; close()
// deregisters and shuts everything down in order.
import net from 'node:net';
import path from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { FastifyInstance } from 'fastify';
import type { ShardConfig } from '../core/config.js';
import { createRedis, createSubscriber } from '../infra/redis.js';
import { TopologyStore } from '../infra/topology-store.js';
import { TopologyWatcher } from '../infra/topology-watcher.js';
import { nextEpoch, ringOf, shardById, type Topology } from '../core/topology.js';
import { Ring } from '../core/ring.js';
import { Store } from './store.js';
import { FrameHandler, type OwnershipView } from './frame-handler.js';
import { createDataServer } from './data-server.js';
import { buildShardHttp } from './http-port.js';

export interface ShardAddresses {
  readonly dataAddr: string;
  readonly adminAddr: string;
  readonly dataPort: number;
  readonly adminPort: number;
}

export interface Shard {
  readonly config: ShardConfig;
  readonly store: Store;
  /** The HTTP port: health, stats, debug /kv. */
  readonly http: FastifyInstance;
  readonly topologyStore: TopologyStore;
  view(): OwnershipView;
  start(): Promise<ShardAddresses>;
  close(): Promise<void>;
}

export interface ShardHooks {
  /** The coordinator drained this shard out of the ring and asked it to go. */
  onRetire?: () => void;
}

export function buildShard(config: ShardConfig, hooks: ShardHooks = {}): Shard {
  const store = new Store({
    path: path.resolve(config.dataDir),
    mapSizeBytes: config.mapSizeBytes,
    noSync: config.noSync,
    tombstoneGraceMs: config.tombstoneGraceMs,
  });
  const redis: Redis = createRedis(config);
  const topologyStore = new TopologyStore(redis, config.redisPrefix);
  const watcher = new TopologyWatcher(topologyStore, createSubscriber(config), config.topologyPollMs);

  let view: OwnershipView = { epoch: 0, ring: new Ring([]) };
  watcher.on('change', (t: Topology) => {
    view = { epoch: t.epoch, ring: ringOf(t), prevRing: t.migration ? Ring.of(t.migration.prev) : undefined, frozen: t.migration?.phase === 'freeze' };
  });

  const handler = new FrameHandler({
    shardId: config.id,
    store,
    limits: config,
    view: () => view,
    refresh: () => watcher.refresh(),
    retire: () => hooks.onRetire?.(),
    purgeBatchKeys: config.purgeBatchKeys,
  });
  const dataServer = createDataServer(handler, config);
  const DRAIN_TIMEOUT_MS = 5000;
  let addrs: ShardAddresses | undefined;
  const status = () => ({
    id: config.id,
    epoch: view.epoch,
    inRing: view.ring.has(config.id),
    dataAddr: addrs?.dataAddr,
    adminAddr: addrs?.adminAddr,
    pid: process.pid,
  });
  const http = buildShardHttp({ config, store, handler, view: () => view, dataCounters: dataServer.counters, status });

  let heartbeat: NodeJS.Timeout | undefined;
  let sweeper: NodeJS.Timeout | undefined;
  let closed = false;
  const startedAt = Date.now();

  const register = async () => {
    await topologyStore.register(
      { id: config.id, dataAddr: addrs!.dataAddr, adminAddr: addrs!.adminAddr, pid: process.pid, startedAt, heartbeatAt: Date.now() },
      config.heartbeatTtlMs,
    );
  };

  const sweep = async () => {
    if (closed) return;
    try {
      // Keep going while whole batches come back, but yield between them.
      while (!closed && (await store.sweep(config.sweepBatch)) === config.sweepBatch) await yieldToLoop();
    } catch (err) {
      http.log.error({ err }, 'sweep failed');
    }
    if (!closed) sweeper = setTimeout(sweep, config.sweepIntervalMs).unref();
  };

  return {
    config,
    store,
    http,
    topologyStore,
    view: () => view,
    async start() {
      const host = config.advertiseHost || config.host;
      const dataPort = await dataServer.listen(config.dataPort, config.host);
      await http.listen({ port: config.adminPort, host: config.host });
      const adminPort = (http.server.address() as net.AddressInfo).port;
      const fmt = (p: number) => (host.includes(':') ? `[${host}]:${p}` : `${host}:${p}`);
      addrs = { dataAddr: fmt(dataPort), adminAddr: fmt(adminPort), dataPort, adminPort };
      await watcher.start();
      // A shard that is in the ring but came back on other addresses (e.g. a
      // new port after a restart) publishes them with a new epoch.
      await topologyStore.update((cur) => {
        const me = shardById(cur, config.id);
        if (!me || (me.dataAddr === addrs!.dataAddr && me.adminAddr === addrs!.adminAddr)) return null;
        return nextEpoch(cur, { shards: cur.shards.map((s) => (s.id === config.id ? { ...s, dataAddr: addrs!.dataAddr, adminAddr: addrs!.adminAddr } : s)) });
      });
      await watcher.refresh();
      await register();
      heartbeat = setInterval(() => {
        register().catch((err: Error) => http.log.warn({ err }, 'heartbeat failed'));
      }, config.heartbeatMs);
      heartbeat.unref();
      sweeper = setTimeout(sweep, config.sweepIntervalMs).unref();
      return addrs;
    },
    async close() {
      if (closed) return;
      closed = true;
      if (heartbeat) clearInterval(heartbeat);
      if (sweeper) clearTimeout(sweeper);
      await topologyStore.deregister(config.id).catch(() => undefined);
      await dataServer.close(DRAIN_TIMEOUT_MS);
      await http.close();
      await watcher.close();
      redis.disconnect();
      await store.close();
    },
  };
}
