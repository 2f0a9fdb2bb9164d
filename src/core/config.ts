// One DEFAULTS object per role, units in the names, one parser that validates
// once, rejects unknown keys with a precise message and freezes the result.
// Environment variables and CLI flags are both mapped onto these objects.
import os from 'node:os';
import { kvError } from './errors.js';

/** Limits that router and shard both enforce (a shard never trusts a router blindly). */
export const LIMIT_DEFAULTS = {
  maxKeyBytes: 1024,
  maxValueBytes: 1024 * 1024,
  maxTtlSeconds: 10 * 365 * 24 * 3600,
  maxContentTypeBytes: 255,
  maxFrameBytes: 64 * 1024 * 1024,
};

export const ROUTER_DEFAULTS = {
  ...LIMIT_DEFAULTS,
  /** Most operations in one POST /v1/kv/_batch. */
  maxBatchOps: 1000,
  host: '127.0.0.1',
  port: 8080,
  workers: os.availableParallelism(),
  redisUrl: 'redis://127.0.0.1:6379',
  redisPrefix: 'kv:',
  redisCommandTimeoutMs: 1000,
  maxBodyBytes: 16 * 1024 * 1024,
  requestTimeoutMs: 5000,
  connectTimeoutMs: 1000,
  maxInFlightPerShard: 8192,
  maxRetries: 3,
  /** Pause before a retry when a shard already runs a newer epoch than Redis shows (it is about to be published). */
  epochRetryDelayMs: 20,
  topologyPollMs: 1000,
  keepAliveTimeoutMs: 5000,
  drainTimeoutMs: 10_000,
  respawnMinDelayMs: 100,
  respawnMaxDelayMs: 5000,
  crashLoopMaxRestarts: 10,
  crashLoopWindowMs: 60_000,
  /** Bearer token for /v1/admin/*; empty = no check (local development only). */
  adminToken: '',
  /** Run the rebalance coordinator in this router primary (one per cluster holds the lease). */
  rebalanceCoordinator: true,
  rebalanceLeaseMs: 5000,
  rebalanceBatchKeys: 500,
  rebalanceBatchBytes: 4 * 1024 * 1024,
  /** Keys moved per second, all streams together: keeps foreground latency bounded. 0 = no limit. */
  rebalanceMaxKeysPerSec: 120_000,
  rebalanceStreamConcurrency: 2,
  rebalanceCheckpointMs: 250,
  logLevel: 'warn',
};

export const SHARD_DEFAULTS = {
  ...LIMIT_DEFAULTS,
  id: '',
  dataDir: '',
  host: '127.0.0.1',
  advertiseHost: '',
  dataPort: 0,
  adminPort: 0,
  redisUrl: 'redis://127.0.0.1:6379',
  redisPrefix: 'kv:',
  redisCommandTimeoutMs: 1000,
  heartbeatMs: 1000,
  heartbeatTtlMs: 5000,
  topologyPollMs: 1000,
  maxInFlightPerConnection: 8192,
  sweepIntervalMs: 1000,
  sweepBatch: 1000,
  tombstoneGraceMs: 24 * 3600 * 1000,
  mapSizeBytes: 8 * 1024 * 1024 * 1024,
  noSync: false,
  logLevel: 'warn',
};

export type Limits = typeof LIMIT_DEFAULTS;
/** What the batch API checks: the shared limits plus the batch size. */
export type BatchLimits = Limits & { readonly maxBatchOps: number };
export type RouterConfig = Readonly<typeof ROUTER_DEFAULTS>;
export type ShardConfig = Readonly<typeof SHARD_DEFAULTS>;

type Shape = Record<string, number | string | boolean>;

const SHARD_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/**
 * Validate `input` against the shape of `defaults`: every key must be known and
 * of the default's type; numbers must be finite, whole and not negative.
 */
export function parseConfig<T extends Shape>(name: string, defaults: T, input: Record<string, unknown> = {}): Readonly<T> {
  const out: Record<string, unknown> = { ...defaults };
  for (const [key, raw] of Object.entries(input)) {
    if (raw === undefined) continue;
    if (!Object.hasOwn(defaults, key)) {
      const known = Object.keys(defaults).sort().join(', ');
      throw kvError('KV_ERR_CONFIG', `${name}: unknown option "${key}" (known: ${known})`);
    }
    const want = typeof defaults[key];
    let value: unknown = raw;
    // Only plain decimal digits: Number() would also take '0x10' or '1e3'.
    if (want === 'number' && typeof raw === 'string' && /^\s*\d+\s*$/.test(raw)) value = Number(raw);
    if (want === 'boolean' && typeof raw === 'string') {
      if (/^(1|true|yes|on)$/i.test(raw)) value = true;
      else if (/^(0|false|no|off|)$/i.test(raw)) value = false;
    }
    if (typeof value !== want) {
      throw kvError('KV_ERR_CONFIG', `${name}: option "${key}" must be a ${want}, got ${JSON.stringify(raw)}`);
    }
    if (want === 'number' && !(Number.isSafeInteger(value) && (value as number) >= 0)) {
      throw kvError('KV_ERR_CONFIG', `${name}: option "${key}" must be a whole number >= 0, got ${JSON.stringify(raw)}`);
    }
    out[key] = value;
  }
  if (typeof out['logLevel'] === 'string' && !LOG_LEVELS.has(out['logLevel'])) {
    throw kvError('KV_ERR_CONFIG', `${name}: option "logLevel" must be one of ${[...LOG_LEVELS].join(', ')}`);
  }
  for (const k of ['maxKeyBytes', 'maxValueBytes', 'maxBatchOps', 'maxFrameBytes', 'maxTtlSeconds'] as const) {
    if (k in out && (out[k] as number) < 1) throw kvError('KV_ERR_CONFIG', `${name}: option "${k}" must be at least 1`);
  }
  if ('maxFrameBytes' in out && (out['maxFrameBytes'] as number) < (out['maxValueBytes'] as number) + (out['maxKeyBytes'] as number) + 4096) {
    throw kvError('KV_ERR_CONFIG', `${name}: maxFrameBytes must exceed maxValueBytes + maxKeyBytes + 4096 so one request always fits a frame`);
  }
  return Object.freeze(out) as Readonly<T>;
}

export function parseRouterConfig(input: Record<string, unknown> = {}): RouterConfig {
  const cfg = parseConfig('router', ROUTER_DEFAULTS, input);
  if (cfg.workers < 1) throw kvError('KV_ERR_CONFIG', 'router: option "workers" must be at least 1');
  if (cfg.requestTimeoutMs < 1) throw kvError('KV_ERR_CONFIG', 'router: option "requestTimeoutMs" must be at least 1');
  if (cfg.maxInFlightPerShard < 1) throw kvError('KV_ERR_CONFIG', 'router: option "maxInFlightPerShard" must be at least 1');
  if (cfg.rebalanceBatchKeys < 1 || cfg.rebalanceBatchKeys > 10_000) throw kvError('KV_ERR_CONFIG', 'router: option "rebalanceBatchKeys" must be from 1 to 10000');
  if (cfg.rebalanceStreamConcurrency < 1) throw kvError('KV_ERR_CONFIG', 'router: option "rebalanceStreamConcurrency" must be at least 1');
  if (cfg.rebalanceLeaseMs < 1000) throw kvError('KV_ERR_CONFIG', 'router: option "rebalanceLeaseMs" must be at least 1000');
  return cfg;
}

export function parseShardConfig(input: Record<string, unknown> = {}): ShardConfig {
  const cfg = parseConfig('shard', SHARD_DEFAULTS, input);
  if (!SHARD_ID_RE.test(cfg.id)) {
    throw kvError('KV_ERR_CONFIG', `shard: option "id" must match ${SHARD_ID_RE} (stable id such as "s1"), got ${JSON.stringify(cfg.id)}`);
  }
  if (cfg.dataDir === '') throw kvError('KV_ERR_CONFIG', 'shard: option "dataDir" is required');
  if (cfg.heartbeatTtlMs <= cfg.heartbeatMs) throw kvError('KV_ERR_CONFIG', 'shard: heartbeatTtlMs must be larger than heartbeatMs');
  return cfg;
}

/** The Redis key prefix for tools that are neither router nor shard (CLI, `kv up`). */
export function defaultRedisPrefix(env: NodeJS.ProcessEnv = process.env): string {
  return env['KV_REDIS_PREFIX'] || 'kv:';
}

export function isValidShardId(id: string): boolean {
  return SHARD_ID_RE.test(id);
}

/** Map environment variables onto config keys: `ROUTER_PORT` -> `port` for prefix `ROUTER_`. */
export function configFromEnv(defaults: Shape, prefix: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(defaults)) {
    const envName = prefix + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
    const v = env[envName];
    if (v !== undefined) out[key] = v;
  }
  // REDIS_URL and KV_REDIS_PREFIX are shared by every role.
  if (env['REDIS_URL'] && 'redisUrl' in defaults && out['redisUrl'] === undefined) out['redisUrl'] = env['REDIS_URL'];
  if (env['KV_REDIS_PREFIX'] && 'redisPrefix' in defaults && out['redisPrefix'] === undefined) out['redisPrefix'] = env['KV_REDIS_PREFIX'];
  return out;
}
