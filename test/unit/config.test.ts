import { describe, expect, it } from 'vitest';
import {
  LIMIT_DEFAULTS,
  ROUTER_DEFAULTS,
  SHARD_DEFAULTS,
  securityProblem,
  configFromEnv,
  isValidShardId,
  parseConfig,
  parseRouterConfig,
  parseShardConfig,
} from '../../src/core/config.js';
import { KvError } from '../../src/core/errors.js';

const SHARD_REQUIRED = { id: 's1', dataDir: '/var/lib/shardkv/s1' };

/** Run fn, expect a KV_ERR_CONFIG, and return its message. */
function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KvError);
    expect((err as KvError).code).toBe('KV_ERR_CONFIG');
    expect((err as KvError).statusCode).toBe(500);
    return (err as KvError).message;
  }
  throw new Error('expected a KV_ERR_CONFIG error, nothing was thrown');
}

describe('parseRouterConfig', () => {
  it('returns the defaults when given nothing', () => {
    expect(parseRouterConfig()).toEqual(ROUTER_DEFAULTS);
    expect(parseRouterConfig({})).toEqual(ROUTER_DEFAULTS);
  });

  it('router defaults carry the shared limits', () => {
    const cfg = parseRouterConfig();
    for (const [k, v] of Object.entries(LIMIT_DEFAULTS)) expect(cfg[k as keyof typeof cfg]).toBe(v);
    expect(cfg.workers).toBeGreaterThanOrEqual(1);
  });

  it('overrides given keys and keeps the rest', () => {
    const cfg = parseRouterConfig({ port: 9000, host: '0.0.0.0' });
    expect(cfg.port).toBe(9000);
    expect(cfg.host).toBe('0.0.0.0');
    expect(cfg.requestTimeoutMs).toBe(ROUTER_DEFAULTS.requestTimeoutMs);
  });

  it('skips keys whose value is undefined', () => {
    expect(parseRouterConfig({ port: undefined }).port).toBe(ROUTER_DEFAULTS.port);
  });

  it('rejects an unknown key with a message naming it', () => {
    const msg = configError(() => parseRouterConfig({ prot: 8080 }));
    expect(msg).toContain('"prot"');
    expect(msg).toContain('router');
    // The message lists the known options so the typo is easy to fix.
    expect(msg).toContain('port');
  });

  it('rejects prototype names as unknown keys', () => {
    expect(configError(() => parseRouterConfig(JSON.parse('{"__proto__": {"port": 1}}') as Record<string, unknown>))).toContain('__proto__');
    expect(configError(() => parseRouterConfig({ toString: 'x' }))).toContain('"toString"');
  });

  it('rejects wrong types naming the key and the expected type', () => {
    const msg = configError(() => parseRouterConfig({ port: true }));
    expect(msg).toContain('"port"');
    expect(msg).toContain('number');
    expect(configError(() => parseRouterConfig({ host: 8080 }))).toContain('"host"');
    expect(configError(() => parseRouterConfig({ port: null }))).toContain('"port"');
    expect(configError(() => parseRouterConfig({ port: [8080] }))).toContain('"port"');
    expect(configError(() => parseRouterConfig({ port: {} }))).toContain('"port"');
  });

  it('accepts numeric strings (environment variables)', () => {
    const cfg = parseRouterConfig({ port: '9001', maxValueBytes: '2048', requestTimeoutMs: ' 250 ' });
    expect(cfg.port).toBe(9001);
    expect(cfg.maxValueBytes).toBe(2048);
    expect(cfg.requestTimeoutMs).toBe(250);
    expect(typeof cfg.port).toBe('number');
  });

  it('rejects non-numeric and blank strings for numbers', () => {
    expect(configError(() => parseRouterConfig({ port: 'eighty' }))).toContain('"port"');
    expect(configError(() => parseRouterConfig({ port: '' }))).toContain('"port"');
    expect(configError(() => parseRouterConfig({ port: '   ' }))).toContain('"port"');
    expect(configError(() => parseRouterConfig({ port: '80abc' }))).toContain('"port"');
  });

  it('rejects negative, fractional and non-finite numbers', () => {
    for (const bad of [-1, 1.5, '-1', '2.5', Number.NaN, Number.POSITIVE_INFINITY, 'Infinity', 2 ** 60]) {
      expect(configError(() => parseRouterConfig({ requestTimeoutMs: bad }))).toContain('"requestTimeoutMs"');
    }
  });

  it('accepts 0 where 0 is meaningful', () => {
    expect(parseRouterConfig({ port: 0 }).port).toBe(0);
    expect(parseRouterConfig({ maxRetries: '0' }).maxRetries).toBe(0);
  });

  it('rejects zero for options that must be at least 1', () => {
    expect(configError(() => parseRouterConfig({ workers: 0 }))).toContain('"workers"');
    expect(configError(() => parseRouterConfig({ requestTimeoutMs: 0 }))).toContain('"requestTimeoutMs"');
    expect(configError(() => parseRouterConfig({ maxInFlightPerShard: 0 }))).toContain('"maxInFlightPerShard"');
    for (const k of ['maxKeyBytes', 'maxBatchOps', 'maxTtlSeconds']) {
      expect(configError(() => parseRouterConfig({ [k]: 0 }))).toContain(`"${k}"`);
    }
  });

  it('validates the rebalance pacing options', () => {
    expect(parseRouterConfig({ rebalancePacing: 'fixed' }).rebalancePacing).toBe('fixed');
    expect(configError(() => parseRouterConfig({ rebalancePacing: 'fast' }))).toContain('"rebalancePacing" must be one of adaptive, fixed');
    expect(configError(() => parseRouterConfig({ rebalanceTargetLatencyPercent: 100 }))).toContain('"rebalanceTargetLatencyPercent"');
    expect(configError(() => parseRouterConfig({ rebalanceMinKeysPerSec: 0 }))).toContain('"rebalanceMinKeysPerSec"');
    expect(configError(() => parseRouterConfig({ rebalanceAdaptiveMaxKeysPerSec: 10 }))).toContain('"rebalanceAdaptiveMaxKeysPerSec"');
    expect(parseRouterConfig({ rebalanceAdaptiveMaxKeysPerSec: 0 }).rebalanceAdaptiveMaxKeysPerSec).toBe(0);
  });

  it('validates logLevel', () => {
    expect(parseRouterConfig({ logLevel: 'debug' }).logLevel).toBe('debug');
    expect(configError(() => parseRouterConfig({ logLevel: 'loud' }))).toContain('"logLevel"');
  });

  it('returns a frozen object', () => {
    const cfg = parseRouterConfig({ port: 1234 });
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(() => {
      (cfg as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(cfg.port).toBe(1234);
  });

  it('does not change the defaults object', () => {
    const before = { ...ROUTER_DEFAULTS };
    parseRouterConfig({ port: 1, host: 'h' });
    expect(ROUTER_DEFAULTS).toEqual(before);
  });

  it('does not change its input', () => {
    const input = { port: '80' };
    parseRouterConfig(input);
    expect(input).toEqual({ port: '80' });
  });
});

describe('maxFrameBytes sanity rule', () => {
  const floor = LIMIT_DEFAULTS.maxValueBytes + LIMIT_DEFAULTS.maxKeyBytes + 4096;

  it('defaults satisfy it', () => {
    expect(LIMIT_DEFAULTS.maxFrameBytes).toBeGreaterThanOrEqual(floor);
  });

  it('accepts a frame limit exactly at value + key + 4096', () => {
    expect(parseRouterConfig({ maxFrameBytes: floor }).maxFrameBytes).toBe(floor);
  });

  it('rejects a frame limit one byte below value + key + 4096', () => {
    const msg = configError(() => parseRouterConfig({ maxFrameBytes: floor - 1 }));
    expect(msg).toContain('maxFrameBytes');
    expect(configError(() => parseShardConfig({ ...SHARD_REQUIRED, maxFrameBytes: floor - 1 }))).toContain('maxFrameBytes');
  });

  it('rejects a value limit that no longer fits the default frame', () => {
    expect(configError(() => parseRouterConfig({ maxValueBytes: LIMIT_DEFAULTS.maxFrameBytes }))).toContain('maxFrameBytes');
  });

  it('is checked against the values given, not the defaults', () => {
    const cfg = parseRouterConfig({ maxValueBytes: 100, maxKeyBytes: 10, maxFrameBytes: 100 + 10 + 4096 });
    expect(cfg.maxFrameBytes).toBe(4206);
  });
});

describe('parseShardConfig', () => {
  it('requires an id and a dataDir', () => {
    expect(configError(() => parseShardConfig())).toContain('"id"');
    expect(configError(() => parseShardConfig({ id: 's1' }))).toContain('"dataDir"');
  });

  it('fills defaults around the required keys', () => {
    const cfg = parseShardConfig(SHARD_REQUIRED);
    expect(cfg).toEqual({ ...SHARD_DEFAULTS, ...SHARD_REQUIRED });
    expect(Object.isFrozen(cfg)).toBe(true);
  });

  it.each(['s1', 'shard-1', 'A', 'a.b_c-d', '9', 'x'.repeat(64)])('accepts shard id %j', (id) => {
    expect(parseShardConfig({ ...SHARD_REQUIRED, id }).id).toBe(id);
    expect(isValidShardId(id)).toBe(true);
  });

  it.each(['', '-s1', '.s1', '_s1', 's 1', 's1:7001', 's/1', 'ş1', 'x'.repeat(65), 's1\n'])('rejects shard id %j', (id) => {
    expect(configError(() => parseShardConfig({ ...SHARD_REQUIRED, id }))).toContain('"id"');
    expect(isValidShardId(id)).toBe(false);
  });

  it('rejects an unknown key naming it', () => {
    expect(configError(() => parseShardConfig({ ...SHARD_REQUIRED, dataPath: '/x' }))).toContain('"dataPath"');
    // A router-only option is unknown to a shard.
    expect(configError(() => parseShardConfig({ ...SHARD_REQUIRED, workers: 2 }))).toContain('"workers"');
  });

  it('accepts boolean strings for booleans', () => {
    for (const s of ['1', 'true', 'TRUE', 'yes', 'on']) expect(parseShardConfig({ ...SHARD_REQUIRED, noSync: s }).noSync).toBe(true);
    for (const s of ['0', 'false', 'False', 'no', 'off', '']) expect(parseShardConfig({ ...SHARD_REQUIRED, noSync: s }).noSync).toBe(false);
    expect(parseShardConfig({ ...SHARD_REQUIRED, noSync: true }).noSync).toBe(true);
  });

  it('rejects other strings and numbers for booleans', () => {
    expect(configError(() => parseShardConfig({ ...SHARD_REQUIRED, noSync: 'maybe' }))).toContain('"noSync"');
    expect(configError(() => parseShardConfig({ ...SHARD_REQUIRED, noSync: 1 }))).toContain('"noSync"');
  });

  it('requires the heartbeat TTL to outlast the heartbeat interval', () => {
    expect(configError(() => parseShardConfig({ ...SHARD_REQUIRED, heartbeatMs: 1000, heartbeatTtlMs: 1000 }))).toContain('heartbeatTtlMs');
    expect(parseShardConfig({ ...SHARD_REQUIRED, heartbeatMs: 1000, heartbeatTtlMs: 1001 }).heartbeatTtlMs).toBe(1001);
  });
});

describe('parseConfig', () => {
  it('names the role in its messages', () => {
    expect(configError(() => parseConfig('bench', { rate: 1 }, { rat: 2 }))).toMatch(/^configuration is not valid: bench: /);
  });
});

describe('configFromEnv', () => {
  it('maps PREFIX_UPPER_SNAKE names onto camelCase keys', () => {
    const env = { ROUTER_MAX_VALUE_BYTES: '4096', ROUTER_PORT: '8181', ROUTER_REQUEST_TIMEOUT_MS: '700', OTHER: 'x' };
    expect(configFromEnv(ROUTER_DEFAULTS, 'ROUTER_', env)).toEqual({ maxValueBytes: '4096', port: '8181', requestTimeoutMs: '700' });
  });

  it('ignores variables of another prefix and unknown names', () => {
    const env = { SHARD_PORT: '1', ROUTER_NOT_AN_OPTION: '2', ROUTER_port: '3' };
    expect(configFromEnv(ROUTER_DEFAULTS, 'ROUTER_', env)).toEqual({});
  });

  it('uses REDIS_URL for redisUrl', () => {
    expect(configFromEnv(ROUTER_DEFAULTS, 'ROUTER_', { REDIS_URL: 'redis://r:6380' })).toEqual({ redisUrl: 'redis://r:6380' });
    expect(configFromEnv(SHARD_DEFAULTS, 'SHARD_', { REDIS_URL: 'redis://r:6380' })).toEqual({ redisUrl: 'redis://r:6380' });
  });

  it('prefers the role-specific variable over REDIS_URL', () => {
    const env = { REDIS_URL: 'redis://shared:1', ROUTER_REDIS_URL: 'redis://router:2' };
    expect(configFromEnv(ROUTER_DEFAULTS, 'ROUTER_', env)['redisUrl']).toBe('redis://router:2');
  });

  it('does not add redisUrl to a shape without it', () => {
    expect(configFromEnv({ port: 1 }, 'X_', { REDIS_URL: 'redis://r:1' })).toEqual({});
  });

  it('feeds parseRouterConfig, which converts the strings', () => {
    const env = { ROUTER_MAX_VALUE_BYTES: '4096', ROUTER_WORKERS: '3', REDIS_URL: 'redis://r:6380' };
    const cfg = parseRouterConfig(configFromEnv(ROUTER_DEFAULTS, 'ROUTER_', env));
    expect(cfg.maxValueBytes).toBe(4096);
    expect(cfg.workers).toBe(3);
    expect(cfg.redisUrl).toBe('redis://r:6380');
  });

  it('feeds parseShardConfig, booleans included', () => {
    const env = { SHARD_ID: 's7', SHARD_DATA_DIR: '/d', SHARD_NO_SYNC: 'true', SHARD_HEARTBEAT_TTL_MS: '9000' };
    const cfg = parseShardConfig(configFromEnv(SHARD_DEFAULTS, 'SHARD_', env));
    expect(cfg.id).toBe('s7');
    expect(cfg.dataDir).toBe('/d');
    expect(cfg.noSync).toBe(true);
    expect(cfg.heartbeatTtlMs).toBe(9000);
  });

  it('a bad environment value is rejected by the parser, naming the key', () => {
    const env = { ROUTER_MAX_VALUE_BYTES: 'lots' };
    expect(configError(() => parseRouterConfig(configFromEnv(ROUTER_DEFAULTS, 'ROUTER_', env)))).toContain('"maxValueBytes"');
  });
});

describe('securityProblem', () => {
  const good = { adminToken: 'a'.repeat(32), clusterSecret: 'b'.repeat(32), insecure: false, host: '0.0.0.0' };
  it('needs both secrets, long enough and not a placeholder', () => {
    expect(securityProblem('router', good)).toBeUndefined();
    expect(securityProblem('router', { ...good, adminToken: '' })).toMatch(/adminToken is missing/);
    expect(securityProblem('router', { ...good, clusterSecret: 'short' })).toMatch(/clusterSecret is missing, shorter than 16/);
    expect(securityProblem('router', { ...good, adminToken: 'change-me-admin-token', clusterSecret: 'replace-with-another-long-random-string' })).toMatch(
      /adminToken and clusterSecret are/,
    );
  });
  it('takes insecure only on a loopback address', () => {
    const none = { adminToken: '', clusterSecret: '', insecure: true };
    expect(securityProblem('shard', { ...none, host: '0.0.0.0' })).toMatch(/loopback address only/);
    expect(securityProblem('shard', { ...none, host: '::' })).toMatch(/loopback address only/);
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) expect(securityProblem('shard', { ...none, host })).toBeUndefined();
  });
  it('maps KV_ADMIN_TOKEN, KV_CLUSTER_SECRET and KV_INSECURE onto every role; an empty variable counts as unset', () => {
    const env = { KV_ADMIN_TOKEN: 't'.repeat(20), KV_CLUSTER_SECRET: 's'.repeat(20), SHARD_ADMIN_TOKEN: '', KV_INSECURE: '1' };
    expect(configFromEnv(SHARD_DEFAULTS, 'SHARD_', env)).toEqual({ adminToken: 't'.repeat(20), clusterSecret: 's'.repeat(20), insecure: '1' });
  });
});
