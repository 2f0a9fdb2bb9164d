// Live rebalancing under load: real Redis, real shard processes, a router
// with several workers, and a history checker over every client operation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../helpers/procs.js';
import { startCheckedWorkload } from '../helpers/history.js';
import { loadedValue, bulkLoad, addShard, removeShard, waitForJob, recordsPerShard, checkPlacement } from '../helpers/rebalance.js';
import { request, openEventStream } from '../helpers/http.js';
import { waitUntil } from '../../src/local/wait.js';
import { ADMIN_AUTH } from '../helpers/secrets.js';

interface SseEvent {
  job?: { id: string; state: string } | null;
  progress?: { keysDone: number };
}

/** Wait until the workload has recorded `n` more operations (it really ran through what happened meanwhile). */
async function moreOps(w: { history: { ops: unknown[] } }, n: number, what: string): Promise<void> {
  const target = w.history.ops.length + n;
  await waitUntil(() => w.history.ops.length >= target, { timeoutMs: 30_000, what: `${n} more operations ${what}` });
}

const N = Number(process.env['KV_TEST_REBALANCE_KEYS'] ?? 100_000);
let c: TestCluster;
let keys: string[];
/** Keys the workloads deleted (placement checks expect them absent). */
const deleted = new Set<string>();

beforeAll(async () => {
  c = await TestCluster.start({ shards: 3, workers: 2, routerSet: { rebalancePacing: 'fixed', rebalanceMaxKeysPerSec: 50_000 } });
  keys = await bulkLoad(c.url, 'k', N);
}, 180_000);
afterAll(async () => {
  await c?.stop();
});

describe('add and remove shards under load', () => {
  it('adds a 4th shard while writers, readers and deleters run', async () => {
    await c.startShard('s4');
    const before = await recordsPerShard(c);
    expect(before['s4']).toBe(0);
    const w = startCheckedWorkload(c.url, keys.slice(0, 2000), loadedValue);
    await moreOps(w, 100, 'before the job');
    const sse = await openEventStream<SseEvent>(`${c.url}/v1/admin/rebalance/events`, 10_000, ADMIN_AUTH);
    const res = await addShard(c.url, 's4');
    expect(res.status, res.text).toBe(202);
    const job = await waitForJob(c.url, ['done'], 180_000);
    // The stream's last word on this job is its end.
    await sse.waitFor((e) => e.job?.id === job.id && e.job.state === 'done', 10_000, 'the done event');
    await sse.close();
    const events = sse.events;
    await moreOps(w, 100, 'after the job');
    const h = await w.finish();
    expect(h.serverErrors()).toEqual([]);
    expect(h.check()).toEqual([]);
    const moved = job.streams.reduce((n, s) => n + s.keysDone, 0);
    expect(moved / N).toBeGreaterThan(0.15);
    expect(moved / N).toBeLessThan(0.35);
    expect(job.streams.every((s) => s.target === 's4')).toBe(true);
    expect(job.pacing).toMatchObject({ mode: 'fixed', keysPerSec: 50_000 });
    // After purge, every key lives exactly on its owner.
    for (const k of h.absentAtEnd()) deleted.add(k);
    expect(await checkPlacement(c, keys, deleted)).toEqual([]);
    const after = await recordsPerShard(c);
    expect(Object.values(after).reduce((a, b) => a + b, 0)).toBeLessThan(N * 1.05);
    expect(after['s4']).toBeGreaterThan(N * 0.15);
    const stats = await request('GET', `${c.url}/v1/admin/rebalance`, { headers: ADMIN_AUTH });
    expect(stats.json()['foregroundErrors']).toBe(0);
    // Live progress arrived as server-sent events, ending with the job done.
    const mine = events.filter((e) => e.job?.id === job.id);
    expect(mine.length).toBeGreaterThan(2);
    expect(mine.some((e) => e.job!.state === 'streaming')).toBe(true);
    expect(mine[mine.length - 1]!.job!.state).toBe('done');
    const done = mine.map((e) => e.progress?.keysDone ?? 0);
    for (let i = 1; i < done.length; i++) expect(done[i]!).toBeGreaterThanOrEqual(done[i - 1]!);
    // And as metrics.
    const metrics = (await request('GET', `${c.url}/metrics`)).text;
    expect(metrics).toMatch(new RegExp(`^kv_rebalance_keys_moved ${moved}$`, 'm'));
    expect(metrics).toMatch(/^kv_rebalance_active 0$/m);
  }, 300_000);
});

describe('remove a shard under load', () => {
  it('drains s2 out of 4 shards: checker passes, s2 ends empty and leaves the registry', async () => {
    const w = startCheckedWorkload(c.url, keys.slice(2000, 4000), loadedValue);
    await moreOps(w, 100, 'before the job');
    const res = await removeShard(c.url, 's2');
    expect(res.status, res.text).toBe(202);
    const job = await waitForJob(c.url, ['done'], 180_000);
    await moreOps(w, 100, 'after the job');
    const h = await w.finish();
    expect(h.serverErrors()).toEqual([]);
    expect(h.check()).toEqual([]);
    expect(job.streams.every((s) => s.source === 's2')).toBe(true);
    const s2 = c.shard('s2');
    // The coordinator retires the drained shard: it deregisters and exits.
    expect((await s2.exited()).code).toBe(0);
    expect((await c.store.registrations()).map((r) => r.id)).not.toContain('s2');
    const t = await c.store.get();
    expect(t.shards.map((s) => s.id)).toEqual(['s1', 's3', 's4']);
    expect(t.migration).toBeUndefined();
    // Its data dir holds no records any more (reopen it read-only).
    const { Store } = await import('../../src/shard/store.js');
    const st = new Store({ path: s2.dataDir, mapSizeBytes: 1 << 30, noSync: true, tombstoneGraceMs: 1000 });
    expect(st.stats().records).toBe(0);
    await st.close();
    c.shards = c.shards.filter((s) => s.id !== 's2');
    for (const k of h.absentAtEnd()) deleted.add(k);
    expect(await checkPlacement(c, keys, deleted)).toEqual([]);
  }, 300_000);
});
