// Redis connections for shared router/shard state. Redis is never the data
// store. Commands fail fast: a command waits at most `redisCommandTimeoutMs`
// for its answer, and once a connection has been up, a command sent while
// Redis is away fails at once (no offline queue), so an outage shows up as a
// clear 503 instead of piling up requests. Reconnects go on in the background.
import { Redis } from 'ioredis';
import { backoffMs } from '../core/backoff.js';

export interface RedisSettings {
  readonly redisUrl: string;
  readonly redisCommandTimeoutMs: number;
}

const ERROR_LOG_INTERVAL_MS = 10_000;

/** Commands fail fast; `subscriber`: a SUBSCRIBE connection, which blocks by design (no command timeout, no retry limit). */
export function createRedis(cfg: RedisSettings, o: { subscriber?: boolean } = {}): Redis {
  const client = new Redis(cfg.redisUrl, {
    maxRetriesPerRequest: o.subscriber ? null : 1,
    ...(o.subscriber ? {} : { commandTimeout: cfg.redisCommandTimeoutMs }),
    enableOfflineQueue: true,
    connectTimeout: 2000,
    // Reconnect after 50 ms doubling up to 2 s.
    retryStrategy: (times: number) => backoffMs(times, 50, 2000),
    lazyConnect: false,
  });
  // The offline queue only covers the first connect (so start-up need not
  // wait for 'ready'); after that, a command sent while Redis is away fails
  // at once instead of queueing.
  if (!o.subscriber)
    client.once('ready', () => {
      client.options.enableOfflineQueue = false;
    });
  // Callers see failures as rejected commands; here we only keep a reconnect
  // storm from flooding the log (one line per outage window).
  let lastLog = 0;
  client.on('error', (err: Error) => {
    const now = Date.now();
    if (now - lastLog < ERROR_LOG_INTERVAL_MS) return;
    lastLog = now;
    console.error(`redis ${cfg.redisUrl}: ${err.message} (retrying)`);
  });
  return client;
}

/** A connection for SUBSCRIBE: no command timeout (it blocks by design). */
export function createSubscriber(cfg: RedisSettings): Redis {
  return createRedis(cfg, { subscriber: true });
}

export function keys(prefix: string) {
  return {
    topology: `${prefix}topology`,
    topologyChannel: `${prefix}topology:events`,
    shard: (id: string) => `${prefix}shard:${id}`,
    shardPattern: `${prefix}shard:*`,
  } as const;
}
