// Upstream failures map to clear 5xx codes that say whether anything may
// have been written: no shard, shard unavailable, lost connection, timeout.
// A scriptable fake shard produces the faults a real shard cannot on demand.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type LocalRedis } from '../../src/local/redis-server.js';
import { TopologyStore } from '../../src/infra/topology-store.js';
import { nextEpoch, EMPTY_TOPOLOGY } from '../../src/core/topology.js';
import { startRouter, type RouterProc } from '../helpers/procs.js';
import { FakeShard } from '../helpers/fake-shard.js';
import { get, put } from '../helpers/http.js';
import { waitUntil } from '../../src/local/wait.js';

let redis: LocalRedis;
let admin: Redis;
let fake: FakeShard;
let router: RouterProc;
let empty: RouterProc;
const TIMEOUT_MS = 400;

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
  fake = new FakeShard();
  await fake.listen();
  const store = new TopologyStore(admin, 'fake:');
  await store.update((cur) => nextEpoch(cur, { shards: [{ id: 'f1', dataAddr: fake.addr, adminAddr: fake.addr, weight: 1, state: 'active' }] }));
  [router, empty] = await Promise.all([
    startRouter({ redisUrl: redis.url, prefix: 'fake:', workers: 2, set: { requestTimeoutMs: TIMEOUT_MS, connectTimeoutMs: 300 } }),
    startRouter({ redisUrl: redis.url, prefix: 'empty:', workers: 1 }),
  ]);
});
afterAll(async () => {
  await router?.stop();
  await empty?.stop();
  await fake?.close();
  admin?.disconnect();
  await redis?.stop();
});

describe('upstream failures', () => {
  it('no shard in the ring -> 503 KV_ERR_NO_SHARDS', async () => {
    expect(EMPTY_TOPOLOGY.shards).toHaveLength(0);
    const res = await put(`${empty.url}/v1/kv/a`, 'x');
    expect(res.status).toBe(503);
    expect(res.json()['code']).toBe('KV_ERR_NO_SHARDS');
    expect((await get(`${empty.url}/v1/kv/a`)).json()['code']).toBe('KV_ERR_NO_SHARDS');
  });

  it('shard that never answers -> 504 KV_ERR_TIMEOUT, outcome unknown', async () => {
    fake.mode = { kind: 'hang' };
    const t0 = Date.now();
    const res = await put(`${router.url}/v1/kv/slow`, 'x');
    expect(res.status).toBe(504);
    expect(res.json()['code']).toBe('KV_ERR_TIMEOUT');
    expect(res.json()['message']).toMatch(/outcome is unknown/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
  });

  it('shard that hangs up mid-request -> 502 KV_ERR_OUTCOME_UNKNOWN', async () => {
    fake.mode = { kind: 'hangup' };
    const res = await put(`${router.url}/v1/kv/cut`, 'x');
    expect(res.status).toBe(502);
    expect(res.json()['code']).toBe('KV_ERR_OUTCOME_UNKNOWN');
    expect(res.json()['message']).toMatch(/may or may not/);
  });

  it('shard refusing with a code passes the code through', async () => {
    fake.mode = { kind: 'error', code: 'KV_ERR_OVERLOADED', message: 'too busy' };
    const res = await put(`${router.url}/v1/kv/busy`, 'x');
    expect(res.status).toBe(503);
    expect(res.json()['code']).toBe('KV_ERR_OVERLOADED');
  });

  it('a shard that keeps saying NOT_OWNER -> bounded retries then 503 KV_ERR_TOPOLOGY_CHANGING', async () => {
    fake.mode = { kind: 'error', code: 'KV_ERR_NOT_OWNER', message: 'not mine' };
    const before = fake.received.length;
    const res = await put(`${router.url}/v1/kv/bounce`, 'x');
    expect(res.status).toBe(503);
    expect(res.json()['code']).toBe('KV_ERR_TOPOLOGY_CHANGING');
    // maxRetries defaults to 3: one try plus three retries.
    expect(fake.received.length - before).toBe(4);
  });

  it('SIGTERM on the router primary lets requests in flight finish, then exits 0', async () => {
    fake.mode = { kind: 'delay', ms: 800 };
    const r = await startRouter({ redisUrl: redis.url, prefix: 'fake:', workers: 2 });
    const before = fake.received.length;
    const inflight = Array.from({ length: 10 }, (_, i) => put(`${r.url}/v1/kv/drain-${i}`, 'x', { fresh: true }));
    // All ten are at the shard, waiting for its answer, when the signal comes.
    await waitUntil(() => fake.received.length - before >= 10, { timeoutMs: 5000, intervalMs: 10, what: 'ten requests at the shard' });
    r.kill('SIGTERM');
    const results = await Promise.all(inflight);
    expect(results.map((x) => x.status)).toEqual(Array(10).fill(204));
    expect((await r.exited()).code).toBe(0);
  });

  it('shard down (connection refused) -> 503 KV_ERR_SHARD_UNAVAILABLE, nothing written', async () => {
    fake.mode = { kind: 'ok' };
    expect((await put(`${router.url}/v1/kv/ok`, 'x')).status).toBe(204);
    await fake.close();
    const res = await put(`${router.url}/v1/kv/down`, 'x', { fresh: true });
    expect(res.status).toBe(503);
    expect(res.json()['code']).toBe('KV_ERR_SHARD_UNAVAILABLE');
    expect(res.json()['message']).toMatch(/nothing was written/);
  });
});
