// Live rebalancing under load: real Redis, real shard processes, a router
// with several workers, and a history checker over every client operation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../helpers/procs.js';
import { History, runWorkload, finalReads } from '../helpers/history.js';
import { loadedValue, bulkLoad, addShard, removeShard, waitForJob, recordsPerShard, checkPlacement } from '../helpers/rebalance.js';
import { request } from '../helpers/http.js';

const N = Number(process.env['KV_TEST_REBALANCE_KEYS'] ?? 100_000);
let c: TestCluster;
let keys: string[];

beforeAll(async () => {
  c = await TestCluster.start({ shards: 3, workers: 2, routerSet: { rebalanceMaxKeysPerSec: 50_000 } });
  keys = await bulkLoad(c.url, 'k', N);
}, 180_000);
afterAll(async () => {
  await c?.stop();
});

describe('add and remove shards under load', () => {
  it('adds a 4th shard while writers, readers and deleters run', async () => {
    const s4 = await c.startShard('s4');
    c.shards.push(s4);
    const before = await recordsPerShard(c);
    expect(before['s4']).toBe(0);
    const h = new History();
    const hot = keys.slice(0, 2000);
    h.preload(hot.map((k) => [k, loadedValue(k)]));
    let stop = false;
    const load = runWorkload(h, { url: c.url, keys: hot, concurrency: 8, putRatio: 0.4, delRatio: 0.1, stop: () => stop });
    await new Promise((r) => setTimeout(r, 300));
    const res = await addShard(c.url, 's4');
    expect(res.status, res.text).toBe(202);
    const job = await waitForJob(c.url, ['done'], 180_000);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await load;
    await finalReads(h, c.url, hot);
    expect(h.serverErrors()).toEqual([]);
    expect(h.check()).toEqual([]);
    const moved = job.streams.reduce((n, s) => n + s.keysDone, 0);
    expect(moved / N).toBeGreaterThan(0.15);
    expect(moved / N).toBeLessThan(0.35);
    expect(job.streams.every((s) => s.target === 's4')).toBe(true);
    // After purge, every key lives exactly on its owner.
    expect(await checkPlacement(c, keys, h.absentAtEnd())).toEqual([]);
    const after = await recordsPerShard(c);
    expect(Object.values(after).reduce((a, b) => a + b, 0)).toBeLessThan(N * 1.05);
    expect(after['s4']).toBeGreaterThan(N * 0.15);
    const stats = await request('GET', `${c.url}/v1/admin/rebalance`);
    expect(stats.json()['foregroundErrors']).toBe(0);
  }, 300_000);
});
