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

/**
 * Secrets and TLS, the same for every role. Closed by default: a router or a
 * shard refuses to start without an admin token and a cluster secret unless
 * `insecure` is set, and `insecure` only works on a loopback address.
 */
export const SECURITY_DEFAULTS = {
  /** Bearer token for the admin API and the shard HTTP ports (`kv up` generates one). */
  adminToken: '',
  /** Shared secret every peer proves on a shard data port (HMAC challenge-response). */
  clusterSecret: '',
  /** Run without secrets: local development on a loopback address only; logged loudly. */
  insecure: false,
  /** PEM files: serve the HTTP port(s), and a shard's data port, over TLS. */
  tlsCertFile: '',
  tlsKeyFile: '',
  /** /metrics needs the admin token too. */
  metricsAuth: false,
};

/** Limits of an HTTP server (router API, shard HTTP port), passed at its creation. */
export const HTTP_DEFAULTS = {
  /** The whole request, body included, must arrive within this (slow bodies are cut). */
  httpRequestTimeoutMs: 30_000,
  /** The request line and headers must arrive within this. */
  httpHeadersTimeoutMs: 10_000,
  /** Idle keep-alive connections close after this. */
  keepAliveTimeoutMs: 5000,
  /** Request line plus headers, in bytes. */
  maxHeaderBytes: 16 * 1024,
  /** Open connections per process; more are refused at once. */
  maxConnections: 10_000,
  /** How often the server looks for requests past their timeouts. */
  httpTimeoutCheckMs: 1000,
};

export const ROUTER_DEFAULTS = {
  ...LIMIT_DEFAULTS,
  ...SECURITY_DEFAULTS,
  ...HTTP_DEFAULTS,
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
  /** GET, HEAD, PUT and DELETE of /v1/kv/<key> are served on plain node:http ahead of Fastify, with the same answers; false: Fastify serves them too. */
  fastPath: true,
  /** Serve the web dashboard at /dashboard (static files; its actions need the admin token). */
  dashboard: true,
  /** /v1/kv needs an API key or a session; false: callers without credentials are anonymous (keys not namespaced), logged at start. */
  dataAuth: true,
  /** Count every request, error and shard request for /metrics (a few array increments each); false: those metrics stay 0, to measure what they cost. */
  requestMetrics: true,
  /** /metrics sums every worker of the host: the primary waits this long for each worker's numbers (a late worker's last numbers stand in). */
  metricsWorkerTimeoutMs: 2000,
  /** A session ends after this long without use (sliding, kept by the Redis TTL)… */
  sessionIdleTimeoutMs: 30 * 60 * 1000,
  /** …and this long after login, whatever its use. */
  sessionAbsoluteTimeoutMs: 24 * 3600 * 1000,
  /** A worker trusts a session or key it validated for this long before it asks Redis again (a logout reaches every worker at once anyway, over pub/sub). */
  authCacheMs: 5000,
  /** Requests per second of one tenant over all routers (Redis-backed); 0 = no limit. */
  tenantRateLimitPerSec: 20_000,
  /** A scan's page token works this long after its page. */
  scanCursorTtlMs: 10 * 60 * 1000,
  /** Most keys in one page of GET /v1/kv. */
  maxScanKeys: 1000,
  /** Shard operations one worker holds (in flight or queued) for its clients; a client over its fair share of it gets 429. */
  maxPendingOps: 16_384,
  /** Seconds in the Retry-After of a 429 or 503 caused by load. */
  overloadRetryAfterS: 1,
  /** Connect to the shards' data ports with TLS (verified against tlsCaFile, or the system CAs). */
  dataTls: false,
  tlsCaFile: '',
  /** An idle shard connection sends a ping this often, well inside the shards' dataIdleTimeoutMs. */
  dataPingIntervalMs: 30_000,
  maxRetries: 3,
  /** Pause before a retry when a shard already runs a newer epoch than Redis shows (it is about to be published). */
  epochRetryDelayMs: 20,
  topologyPollMs: 1000,
  drainTimeoutMs: 10_000,
  respawnMinDelayMs: 100,
  respawnMaxDelayMs: 5000,
  crashLoopMaxRestarts: 10,
  crashLoopWindowMs: 60_000,
  /** Run the rebalance coordinator in this router primary (one per cluster holds the lease). */
  rebalanceCoordinator: true,
  rebalanceLeaseMs: 5000,
  rebalanceBatchKeys: 500,
  /** Adaptive pacing with no foreground traffic (no limit on the move): records per batch, so the targets commit fewer, fuller transactions. */
  rebalanceIdleBatchKeys: 4000,
  rebalanceBatchBytes: 4 * 1024 * 1024,
  /** 'adaptive': the move rate follows the foreground's p99 (below); 'fixed': rebalanceMaxKeysPerSec. */
  rebalancePacing: 'adaptive',
  /** Fixed pacing: keys moved per second, all streams together. 0 = no limit. */
  rebalanceMaxKeysPerSec: 120_000,
  /** Adaptive pacing: the routers' foreground p99 may reach this percentage of its baseline before the move (200 = twice). */
  rebalanceTargetLatencyPercent: 200,
  /** Adaptive pacing: the rate never goes below this (keys/s), whatever the foreground does. */
  rebalanceMinKeysPerSec: 2000,
  /** Adaptive pacing: the rate never goes above this (keys/s); 0 = as fast as the machine goes. */
  rebalanceAdaptiveMaxKeysPerSec: 0,
  /** (source -> target) streams moved at the same time; 0 = every stream of the job. */
  rebalanceStreamConcurrency: 0,
  /** Batches of one stream whose import is in flight at once (the source scans on meanwhile). */
  rebalanceImportsInFlight: 4,
  rebalanceCheckpointMs: 250,
  logLevel: 'warn',
};

export const SHARD_DEFAULTS = {
  ...LIMIT_DEFAULTS,
  ...SECURITY_DEFAULTS,
  ...HTTP_DEFAULTS,
  /** Bodies on the HTTP port (at least maxValueBytes). */
  maxBodyBytes: 2 * 1024 * 1024,
  /** What PUT/DELETE on the HTTP port's /kv/* may do: 'ring' (owned keys only, as strictly as the data port), 'standalone' (any key: a shard used alone, e.g. behind nginx) or 'off' (read-only). */
  httpKvWrites: 'ring',
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
  /** Open data-port connections; more are refused at once. */
  maxDataConnections: 1024,
  /** A peer must authenticate within this after it connects. */
  handshakeTimeoutMs: 2000,
  /** A data-port connection with nothing in flight closes after this much silence. */
  dataIdleTimeoutMs: 120_000,
  /** Frame bytes all data-port connections together may hold while frames arrive; a connection that would go over is cut. */
  maxBufferedFrameBytes: 256 * 1024 * 1024,
  sweepIntervalMs: 1000,
  sweepBatch: 1000,
  /** Records deleted per transaction when a shard purges the ranges it gave away after a move; small, so its writes wait little behind a purge. */
  purgeBatchKeys: 500,
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
  if (cfg.rebalanceBatchKeys < 1 || cfg.rebalanceBatchKeys > 10_000)
    throw kvError('KV_ERR_CONFIG', 'router: option "rebalanceBatchKeys" must be from 1 to 10000');
  if (cfg.rebalanceIdleBatchKeys < 1 || cfg.rebalanceIdleBatchKeys > 10_000)
    throw kvError('KV_ERR_CONFIG', 'router: option "rebalanceIdleBatchKeys" must be from 1 to 10000');
  if (cfg.rebalanceImportsInFlight < 1 || cfg.rebalanceImportsInFlight > 64)
    throw kvError('KV_ERR_CONFIG', 'router: option "rebalanceImportsInFlight" must be from 1 to 64');
  if (!REBALANCE_PACING.has(cfg.rebalancePacing))
    throw kvError(
      'KV_ERR_CONFIG',
      `router: option "rebalancePacing" must be one of ${[...REBALANCE_PACING].join(', ')}, got ${JSON.stringify(cfg.rebalancePacing)}`,
    );
  if (cfg.rebalanceTargetLatencyPercent < 110 || cfg.rebalanceTargetLatencyPercent > 10_000)
    throw kvError('KV_ERR_CONFIG', 'router: option "rebalanceTargetLatencyPercent" must be from 110 to 10000');
  if (cfg.rebalanceMinKeysPerSec < 1) throw kvError('KV_ERR_CONFIG', 'router: option "rebalanceMinKeysPerSec" must be at least 1');
  if (cfg.rebalanceAdaptiveMaxKeysPerSec !== 0 && cfg.rebalanceAdaptiveMaxKeysPerSec < cfg.rebalanceMinKeysPerSec)
    throw kvError('KV_ERR_CONFIG', 'router: option "rebalanceAdaptiveMaxKeysPerSec" must be 0 (no limit) or at least rebalanceMinKeysPerSec');
  if (cfg.rebalanceLeaseMs < 1000) throw kvError('KV_ERR_CONFIG', 'router: option "rebalanceLeaseMs" must be at least 1000');
  if (cfg.sessionIdleTimeoutMs < 1000 || cfg.sessionAbsoluteTimeoutMs < cfg.sessionIdleTimeoutMs) {
    throw kvError('KV_ERR_CONFIG', 'router: sessionIdleTimeoutMs must be at least 1000 and sessionAbsoluteTimeoutMs at least sessionIdleTimeoutMs');
  }
  if (cfg.maxScanKeys < 1 || cfg.maxScanKeys > 10_000) throw kvError('KV_ERR_CONFIG', 'router: option "maxScanKeys" must be from 1 to 10000');
  if (cfg.maxPendingOps < cfg.maxBatchOps)
    throw kvError('KV_ERR_CONFIG', 'router: option "maxPendingOps" must be at least maxBatchOps, or no batch could ever run');
  checkCommon('router', cfg);
  return cfg;
}

export function parseShardConfig(input: Record<string, unknown> = {}): ShardConfig {
  const cfg = parseConfig('shard', SHARD_DEFAULTS, input);
  if (!SHARD_ID_RE.test(cfg.id)) {
    throw kvError('KV_ERR_CONFIG', `shard: option "id" must match ${SHARD_ID_RE} (stable id such as "s1"), got ${JSON.stringify(cfg.id)}`);
  }
  if (cfg.dataDir === '') throw kvError('KV_ERR_CONFIG', 'shard: option "dataDir" is required');
  if (cfg.heartbeatTtlMs <= cfg.heartbeatMs) throw kvError('KV_ERR_CONFIG', 'shard: heartbeatTtlMs must be larger than heartbeatMs');
  if (cfg.purgeBatchKeys < 1) throw kvError('KV_ERR_CONFIG', 'shard: option "purgeBatchKeys" must be at least 1');
  if (cfg.tombstoneGraceMs > 366 * 24 * 3600 * 1000) throw kvError('KV_ERR_CONFIG', 'shard: option "tombstoneGraceMs" must be at most a year (31622400000 ms)');
  if (!HTTP_KV_WRITES.has(cfg.httpKvWrites))
    throw kvError('KV_ERR_CONFIG', `shard: option "httpKvWrites" must be one of ${[...HTTP_KV_WRITES].join(', ')}, got ${JSON.stringify(cfg.httpKvWrites)}`);
  if (cfg.maxBodyBytes < cfg.maxValueBytes) throw kvError('KV_ERR_CONFIG', 'shard: option "maxBodyBytes" must be at least maxValueBytes');
  if (cfg.maxBufferedFrameBytes < cfg.maxFrameBytes) throw kvError('KV_ERR_CONFIG', 'shard: option "maxBufferedFrameBytes" must be at least maxFrameBytes');
  if (cfg.handshakeTimeoutMs < 1 || cfg.dataIdleTimeoutMs < 1)
    throw kvError('KV_ERR_CONFIG', 'shard: handshakeTimeoutMs and dataIdleTimeoutMs must be at least 1');
  checkCommon('shard', cfg);
  return cfg;
}

const HTTP_KV_WRITES = new Set(['ring', 'standalone', 'off']);
const REBALANCE_PACING = new Set(['adaptive', 'fixed']);

function checkCommon(name: string, cfg: Readonly<typeof SECURITY_DEFAULTS & typeof HTTP_DEFAULTS>): void {
  if ((cfg.tlsCertFile === '') !== (cfg.tlsKeyFile === '')) throw kvError('KV_ERR_CONFIG', `${name}: options "tlsCertFile" and "tlsKeyFile" go together`);
  for (const k of ['httpRequestTimeoutMs', 'httpHeadersTimeoutMs', 'maxHeaderBytes', 'maxConnections', 'httpTimeoutCheckMs'] as const) {
    if (cfg[k] < 1) throw kvError('KV_ERR_CONFIG', `${name}: option "${k}" must be at least 1`);
  }
}

/** The placeholders of .env.example and the Kubernetes Secret example: never real secrets. */
const PLACEHOLDER_RE = /^(change-me|replace-with)/;

/** Minimum length of the admin token and the cluster secret. */
export const MIN_SECRET_CHARS = 16;

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** A secret too short to be real, or a placeholder someone forgot to replace. */
export function isWeakSecret(v: string): boolean {
  return v.length < MIN_SECRET_CHARS || PLACEHOLDER_RE.test(v);
}

/**
 * Why this role must not start with these settings, or undefined. Without
 * `insecure`, both secrets are required (long enough to be real); `insecure`
 * is refused on an address others can reach.
 */
export function securityProblem(
  name: string,
  cfg: Readonly<Pick<typeof SECURITY_DEFAULTS, 'adminToken' | 'clusterSecret' | 'insecure'>> & { readonly host: string },
): string | undefined {
  if (cfg.insecure) {
    if (!isLoopback(cfg.host))
      return `${name}: insecure=true is for local development on a loopback address only, and this one binds ${cfg.host}; set adminToken and clusterSecret instead`;
    return undefined;
  }
  const missing = [isWeakSecret(cfg.adminToken) ? 'adminToken' : '', isWeakSecret(cfg.clusterSecret) ? 'clusterSecret' : ''].filter(Boolean);
  if (missing.length === 0) return undefined;
  return (
    `${name}: ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} missing, shorter than ${MIN_SECRET_CHARS} characters or a placeholder. ` +
    '`npm start` (kv up) generates both into <data dir>/secrets.json; otherwise set KV_ADMIN_TOKEN and KV_CLUSTER_SECRET (the same on every router and shard), ' +
    'e.g. from `openssl rand -base64 32`. For local development on 127.0.0.1 only, insecure=true (KV_INSECURE=1) runs without them.'
  );
}

/** The Redis key prefix for tools that are neither router nor shard (CLI, `kv up`). */
export function defaultRedisPrefix(env: NodeJS.ProcessEnv = process.env): string {
  return env['KV_REDIS_PREFIX'] || 'kv:';
}

export function isValidShardId(id: string): boolean {
  return SHARD_ID_RE.test(id);
}

const SHARED_ENV: ReadonlyArray<[string, string]> = [
  ['REDIS_URL', 'redisUrl'],
  ['KV_REDIS_PREFIX', 'redisPrefix'],
  ['KV_ADMIN_TOKEN', 'adminToken'],
  ['KV_CLUSTER_SECRET', 'clusterSecret'],
  ['KV_INSECURE', 'insecure'],
];

/** Map environment variables onto config keys: `ROUTER_PORT` -> `port` for prefix `ROUTER_`. */
export function configFromEnv(defaults: Shape, prefix: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(defaults)) {
    const envName = prefix + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
    const v = env[envName];
    // An empty variable counts as unset (it would only ever mean the default).
    if (v !== undefined && v !== '') out[key] = v;
  }
  // These are shared by every role (a role's own variable wins).
  for (const [name, key] of SHARED_ENV) {
    if (env[name] && key in defaults && out[key] === undefined) out[key] = env[name];
  }
  return out;
}
