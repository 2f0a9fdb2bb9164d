// Redis connections for shared router/shard state. Redis is never the data
// store. Commands fail fast (commandTimeout, no unbounded offline queue) so a
// Redis outage shows up as a clear 503 instead of piling up requests.
import { Redis, type RedisOptions } from 'ioredis';

export interface RedisSettings {
  readonly redisUrl: string;
  readonly redisCommandTimeoutMs: number;
}

export function createRedis(cfg: RedisSettings, extra: RedisOptions = {}): Redis {
  return new Redis(cfg.redisUrl, {
    commandTimeout: cfg.redisCommandTimeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    lazyConnect: false,
    ...extra,
  });
}

/** A connection for SUBSCRIBE: no command timeout (it blocks by design). */
export function createSubscriber(cfg: RedisSettings): Redis {
  return createRedis(cfg, { commandTimeout: undefined, maxRetriesPerRequest: null });
}

export function keys(prefix: string) {
  return {
    topology: `${prefix}topology`,
    topologyChannel: `${prefix}topology:events`,
    shard: (id: string) => `${prefix}shard:${id}`,
    shardPattern: `${prefix}shard:*`,
  } as const;
}
