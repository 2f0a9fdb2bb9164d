// Process faults with real parts: kill -9 a router worker under writes,
// rolling restart under load, kill -9 a shard and restart it on its data,
// SIGTERM drain. Every acknowledged write must be readable afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../helpers/procs.js';
import { get, put } from '../helpers/http.js';
import { runLoad, checkFinal, type OpRecord } from '../helpers/load.js';
import { ringOf } from '../../src/core/topology.js';

let c: TestCluster;

beforeAll(async () => {
  c = await TestCluster.start({ shards: 3, workers: 2 });
});
afterAll(async () => {
  await c?.stop();
});

async function finalValues(records: OpRecord[]): Promise<Map<string, string | null>> {
  const keys = [...new Set(records.filter((r) => r.kind === 'put').map((r) => r.key))];
  const out = new Map<string, string | null>();
  for (const k of keys) {
    const res = await get(`${c.url}/v1/kv/${k}`);
    expect([200, 404]).toContain(res.status);
    out.set(k, res.status === 200 ? res.text : null);
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('router faults', () => {
  it('kill -9 of a worker under writes: respawned, every acknowledged write readable', async () => {
    let stop = false;
    const load = runLoad({ url: c.url, concurrency: 8, keySpace: 300, prefix: 'crash-', readRatio: 0.2, stop: () => stop });
    await sleep(800);
    const victim = c.router.workerPids[0]!;
    process.kill(victim, 'SIGKILL');
    const respawn = await c.router.waitFor((m) => m['type'] === 'respawned' && m['replaced'] === victim, 15_000);
    await sleep(800);
    stop = true;
    const records = await load;
    const acked = records.filter((r) => r.kind === 'put' && r.status === 204);
    expect(acked.length).toBeGreaterThan(100);
    expect(records.filter((r) => typeof r.status === 'number' && r.status >= 400 && r.status !== 404 && r.status !== 502)).toEqual([]);
    expect(checkFinal(records, await finalValues(records))).toEqual([]);
    // The replacement serves too: two workers answer on fresh connections.
    const pids = new Set<number>();
    for (let i = 0; i < 20 && pids.size < 2; i++) pids.add((await get(`${c.url}/healthz`, { fresh: true })).json()['pid'] as number);
    expect(pids.size).toBe(2);
    expect(pids.has(respawn['pid'] as number)).toBe(true);
    expect(pids.has(victim)).toBe(false);
  });

  it('SIGUSR2 rolls every worker with zero failed requests under load', async () => {
    const before = new Set<number>();
    for (let i = 0; i < 20 && before.size < 2; i++) before.add((await get(`${c.url}/healthz`, { fresh: true })).json()['pid'] as number);
    let stop = false;
    const load = runLoad({ url: c.url, concurrency: 8, keySpace: 200, prefix: 'roll-', readRatio: 0.5, stop: () => stop });
    await sleep(500);
    const rolledCount = c.router.messages.filter((m) => m['type'] === 'rolled').length;
    process.kill(c.router.pid, 'SIGUSR2');
    const rolled = await c.router.waitFor((m) => m['type'] === 'rolled' && c.router.messages.filter((x) => x['type'] === 'rolled').length > rolledCount, 60_000);
    await sleep(500);
    stop = true;
    const records = await load;
    const failed = records.filter((r) => r.status === 'error' || (r.status !== 200 && r.status !== 204 && r.status !== 404));
    expect(records.length).toBeGreaterThan(200);
    expect(failed).toEqual([]);
    const after = rolled['workers'] as number[];
    expect(after).toHaveLength(2);
    for (const pid of after) expect(before.has(pid)).toBe(false);
    expect(checkFinal(records, await finalValues(records))).toEqual([]);
  });
});

describe('shard faults', () => {
  it('kill -9 of a shard, restart on the same data dir: every acknowledged write is still there', async () => {
    const t = await c.store.get();
    const ring = ringOf(t);
    const victim = c.shards[1]!;
    let stop = false;
    const load = runLoad({ url: c.url, concurrency: 8, keySpace: 600, prefix: 'shardkill-', readRatio: 0, stop: () => stop });
    await sleep(1000);
    victim.kill('SIGKILL');
    await victim.exited();
    // Give the router workers a moment to see the connection drop; a request
    // written to the dying socket before that is rightly "outcome unknown".
    await sleep(300);
    // While it is down, its keys fail fast with a clear code; others still work.
    const ownKey = Array.from({ length: 100 }, (_, i) => `probe-${i}`).find((k) => ring.ownerOf(k) === victim.id)!;
    const otherKey = Array.from({ length: 100 }, (_, i) => `probe-${i}`).find((k) => ring.ownerOf(k) !== victim.id)!;
    const down = await put(`${c.url}/v1/kv/${ownKey}`, 'x');
    expect(down.status).toBe(503);
    expect(down.json()['code']).toBe('KV_ERR_SHARD_UNAVAILABLE');
    expect((await put(`${c.url}/v1/kv/${otherKey}`, 'x')).status).toBe(204);
    await sleep(300);
    stop = true;
    const records = await load;
    const fresh = await c.restartShard(victim);
    expect(fresh.dataAddr).toBe(victim.dataAddr);
    const acked = records.filter((r) => r.status === 204);
    expect(acked.filter((r) => ring.ownerOf(r.key) === victim.id).length).toBeGreaterThan(50);
    // Only "nothing written" or "outcome unknown" failures are allowed.
    for (const r of records) expect([204, 502, 503, 'error']).toContain(r.status);
    expect(checkFinal(records, await finalValues(records))).toEqual([]);
    expect((await get(`${c.url}/v1/kv/${ownKey}`)).status).toBe(404);
  });
});

describe('Redis outage', () => {
  it('readiness fails with a code while the data path keeps serving from the known topology', async () => {
    expect((await put(`${c.url}/v1/kv/before-outage`, 'x')).status).toBe(204);
    await c.redis.stop();
    const ready = await get(`${c.url}/readyz`, { fresh: true });
    expect(ready.status).toBe(503);
    expect(ready.json()['code']).toBe('KV_ERR_REDIS_UNAVAILABLE');
    expect((await get(`${c.url}/healthz`)).status).toBe(200);
    expect((await put(`${c.url}/v1/kv/during-outage`, 'y')).status).toBe(204);
    expect((await get(`${c.url}/v1/kv/during-outage`)).text).toBe('y');
    expect((await get(`${c.url}/v1/kv/before-outage`)).text).toBe('x');
  });
});
