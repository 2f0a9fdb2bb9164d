// Rebalancing through crashes of the source, the target and the coordinating
// router primary; TTLs across a move; concurrent and invalid requests. The
// move rate is kept low so the crashes land mid-stream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, startRouter } from '../helpers/procs.js';
import { History, runWorkload, finalReads, startCheckedWorkload } from '../helpers/history.js';
import { loadedValue, bulkLoad, addShard, removeShard, waitForJob, checkPlacement, rebalanceState } from '../helpers/rebalance.js';
import { request, get } from '../helpers/http.js';
import { ringOf } from '../../src/core/topology.js';

const N = 20_000;
const RATE = 2500;
let c: TestCluster;
let keys: string[];
const deleted = new Set<string>();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  c = await TestCluster.start({ shards: 3, workers: 2, routerSet: { rebalanceMaxKeysPerSec: RATE, rebalanceBatchKeys: 250 } });
  keys = await bulkLoad(c.url, 'f', N);
}, 120_000);
afterAll(async () => {
  await c?.stop();
});

/** Run `fault` once the job is streaming with some keys moved, under a checked workload. */
async function underLoad(start: () => Promise<{ status: number; text: string }>, fault: (streamSource: string, streamTarget: string) => Promise<void>, hotFrom: number) {
  const h = new History();
  const hot = keys.slice(hotFrom, hotFrom + 1000);
  h.preload(hot.map((k) => [k, loadedValue(k)]));
  let stop = false;
  const load = runWorkload(h, { url: c.url, keys: hot, concurrency: 6, putRatio: 0.4, delRatio: 0.1, stop: () => stop, pauseMs: 2 });
  const res = await start();
  expect(res.status, res.text).toBe(202);
  const mid = await waitForJob(c.url, [], 60_000, (j) => j.state === 'streaming' && j.streams.some((s) => s.keysDone > 0 && !s.done));
  const s = mid.streams.find((x) => x.keysDone > 0 && !x.done)!;
  await fault(s.source, s.target);
  const job = await waitForJob(c.url, ['done'], 120_000);
  stop = true;
  await load;
  await finalReads(h, c.url, hot);
  expect(h.check()).toEqual([]);
  for (const k of h.absentAtEnd()) deleted.add(k);
  expect(await checkPlacement(c, keys, deleted)).toEqual([]);
  return { job, h };
}

async function killAndRestart(id: string): Promise<void> {
  const victim = c.shards.find((x) => x.id === id)!;
  victim.kill('SIGKILL');
  await victim.exited();
  await sleep(700);
  await c.restartShard(victim);
}

describe('crashes during a move', () => {
  it('kill -9 of the source mid-stream: the job resumes and completes', async () => {
    c.shards.push(await c.startShard('s4'));
    const { job } = await underLoad(() => addShard(c.url, 's4'), async (source) => killAndRestart(source), 0);
    expect(job.streams.every((s) => s.done)).toBe(true);
  }, 180_000);

  it('kill -9 of the target mid-stream: the job resumes and completes', async () => {
    const { job } = await underLoad(() => removeShard(c.url, 's4'), async (_source, target) => killAndRestart(target), 1000);
    expect(job.streams.every((s) => s.source === 's4' && s.done)).toBe(true);
    c.shards = c.shards.filter((s) => s.id !== 's4');
  }, 180_000);

  it('kill -9 of the coordinating router primary: a new one resumes the job', async () => {
    c.shards.push(await c.startShard('s5'));
    const port = c.router.port;
    await underLoad(() => addShard(c.url, 's5'), async () => {
      const before = await rebalanceState(c.url);
      c.router.kill('SIGKILL');
      await c.router.exited();
      await sleep(500);
      c.router = await startRouter({ redisUrl: c.redis.url, prefix: c.prefix, workers: 2, port, set: { rebalanceMaxKeysPerSec: RATE, rebalanceBatchKeys: 250 } });
      // The job kept its progress: it did not start over.
      const after = await rebalanceState(c.url);
      expect(after.job!.id).toBe(before.job!.id);
      expect(after.progress!.keysDone).toBeGreaterThanOrEqual(before.progress!.keysDone);
    }, 2000);
  }, 180_000);
});

describe('TTLs across a move', () => {
  it('moved keys keep their absolute expiry and expired keys are not copied', async () => {
    const t = await TestCluster.start({ shards: 2, workers: 1, shardSet: { sweepIntervalMs: 600_000 } });
    try {
      const short = await bulkLoad(t.url, 'short-', 3000, { ttl: 1 });
      const long = await bulkLoad(t.url, 'long-', 3000, { ttl: 3600 });
      const expiry = new Map<string, string>();
      for (const k of long.slice(0, 300)) expiry.set(k, String((await get(`${t.url}/v1/kv/${k}`)).headers['x-kv-expires-at']));
      await sleep(1500); // the short keys are expired now, but not swept
      t.shards.push(await t.startShard('s3'));
      // Reads only, so the target's record count below stays exact.
      const w = startCheckedWorkload(t.url, long.slice(300), loadedValue, { putRatio: 0, delRatio: 0, concurrency: 4 });
      expect((await addShard(t.url, 's3')).status).toBe(202);
      const job = await waitForJob(t.url, ['done'], 60_000);
      // The workload really read while the job ran (final reads come later).
      expect(w.history.ops.filter((o) => o.kind === 'get').length).toBeGreaterThan(20);
      const h = await w.finish();
      expect(h.check()).toEqual([]);
      const moved = job.streams.reduce((n, s) => n + s.keysDone, 0);
      expect(moved).toBeGreaterThan(300);
      const s3 = t.shards.find((s) => s.id === 's3')!;
      // Only live long-TTL keys arrived: the target holds exactly what moved.
      expect((await request('GET', `${s3.adminUrl}/stats`)).json()['records']).toBe(moved);
      for (const [k, x] of expiry) {
        const res = await get(`${t.url}/v1/kv/${k}`);
        expect(res.status).toBe(200);
        expect(String(res.headers['x-kv-expires-at'])).toBe(x);
      }
      for (const k of short.slice(0, 200)) expect((await get(`${t.url}/v1/kv/${k}`)).status).toBe(404);
    } finally {
      await t.stop();
    }
  }, 120_000);
});

describe('cancel', () => {
  it('cancelling mid-stream returns to the original ring without losing writes', async () => {
    c.shards.push(await c.startShard('s7'));
    const original = (await c.store.get()).shards.map((s) => s.id);
    const h = new History();
    const hot = keys.slice(5000, 6000);
    h.preload(hot.map((k) => [k, loadedValue(k)]));
    let stop = false;
    const load = runWorkload(h, { url: c.url, keys: hot, concurrency: 6, putRatio: 0.4, delRatio: 0.1, stop: () => stop, pauseMs: 2 });
    expect((await addShard(c.url, 's7')).status).toBe(202);
    await waitForJob(c.url, [], 60_000, (j) => j.state === 'streaming' && j.streams.some((s) => s.keysDone > 0 && !s.done));
    const cancel = await request('POST', `${c.url}/v1/admin/rebalance/cancel`);
    expect(cancel.status, cancel.text).toBe(202);
    const job = await waitForJob(c.url, ['cancelled'], 120_000);
    stop = true;
    await load;
    await finalReads(h, c.url, hot);
    expect(h.check()).toEqual([]);
    expect(job.direction).toBe('reverse');
    const t = await c.store.get();
    expect(t.migration).toBeUndefined();
    expect(t.shards.map((s) => s.id)).toEqual(original);
    // s7 gave everything back.
    const s7 = c.shards.find((s) => s.id === 's7')!;
    expect((await request('GET', `${s7.adminUrl}/stats`)).json()['records']).toBe(0);
    c.shards = c.shards.filter((s) => s.id !== 's7');
    await s7.stop();
    for (const k of h.absentAtEnd()) deleted.add(k);
    expect(await checkPlacement(c, keys, deleted)).toEqual([]);
  }, 180_000);
});

describe('conditional writes during a move', () => {
  it('If-Match, If-None-Match and DELETE see the current state of keys not streamed yet', async () => {
    c.shards.push(await c.startShard('s8'));
    const before = ringOf(await c.store.get());
    expect((await addShard(c.url, 's8')).status).toBe(202);
    await waitForJob(c.url, [], 60_000, (j) => j.state === 'streaming');
    const next = ringOf(await c.store.get());
    const moving = keys.slice(10_000).filter((k) => !deleted.has(k) && before.ownerOf(k) !== next.ownerOf(k)).slice(0, 90);
    expect(moving.length).toBe(90);
    const results: number[] = [];
    for (const [i, k] of moving.entries()) {
      const url = `${c.url}/v1/kv/${k}`;
      if (i % 3 === 0) {
        const cur = await get(url);
        expect(cur.status).toBe(200);
        results.push((await request('PUT', url, { body: 'cas', headers: { 'if-match': String(cur.headers.etag) } })).status);
      } else if (i % 3 === 1) {
        results.push((await request('PUT', url, { body: 'create', headers: { 'if-none-match': '*' } })).status);
      } else {
        results.push((await request('DELETE', url)).status);
        deleted.add(k);
      }
    }
    const job = await waitForJob(c.url, ['done'], 120_000);
    expect(job.state).toBe('done');
    expect(results).toEqual(moving.map((_, i) => (i % 3 === 0 ? 204 : i % 3 === 1 ? 412 : 204)));
    for (const [i, k] of moving.entries()) {
      const res = await get(`${c.url}/v1/kv/${k}`);
      if (i % 3 === 0) expect(res.text).toBe('cas');
      else if (i % 3 === 1) expect(res.text).toBe(loadedValue(k));
      else expect(res.status).toBe(404);
    }
  }, 180_000);
});

describe('refused requests', () => {
  it('a second change while a job runs is refused with 409 KV_ERR_REBALANCE_IN_PROGRESS', async () => {
    c.shards.push(await c.startShard('s6'));
    const w = startCheckedWorkload(c.url, keys.slice(6000, 7000), loadedValue, { concurrency: 6, pauseMs: 2 });
    const first = await addShard(c.url, 's6');
    expect(first.status, first.text).toBe(202);
    const second = await removeShard(c.url, 's1');
    expect(second.status).toBe(409);
    expect(second.json()['code']).toBe('KV_ERR_REBALANCE_IN_PROGRESS');
    const third = await addShard(c.url, 's6');
    expect(third.status).toBe(409);
    await waitForJob(c.url, ['done'], 120_000);
    const h = await w.finish();
    expect(h.check()).toEqual([]);
    for (const k of h.absentAtEnd()) deleted.add(k);
    expect(await checkPlacement(c, keys, deleted)).toEqual([]);
  }, 180_000);

  it('bad shard changes get clear 4xx codes and change nothing', async () => {
    const epoch = (await c.store.get()).epoch;
    const w = startCheckedWorkload(c.url, keys.slice(7000, 8000), loadedValue, { concurrency: 6, pauseMs: 2 });
    const cases: Array<[Promise<{ status: number; json: () => Record<string, unknown> }>, number, string]> = [
      [addShard(c.url, 'nope'), 400, 'KV_ERR_SHARD_NOT_REGISTERED'],
      [addShard(c.url, 's1'), 409, 'KV_ERR_SHARD_IN_RING'],
      [removeShard(c.url, 'nope'), 404, 'KV_ERR_SHARD_NOT_IN_RING'],
      [request('PUT', `${c.url}/v1/admin/shards/s1/weight`, { body: JSON.stringify({ weight: 0.0001 }), headers: { 'content-type': 'application/json' } }), 400, 'KV_ERR_BAD_WEIGHT'],
      [request('PUT', `${c.url}/v1/admin/shards/s1/weight`, { body: JSON.stringify({ weight: -1 }), headers: { 'content-type': 'application/json' } }), 400, 'KV_ERR_BAD_WEIGHT'],
      [request('POST', `${c.url}/v1/admin/shards`, { body: '{"id":', headers: { 'content-type': 'application/json' } }), 400, 'KV_ERR_BAD_JSON'],
      [request('POST', `${c.url}/v1/admin/rebalance/cancel`), 409, 'KV_ERR_NO_REBALANCE'],
    ];
    for (const [p, status, code] of cases) {
      const res = await p;
      expect(res.status).toBe(status);
      expect(res.json()['code']).toBe(code);
    }
    expect((await c.store.get()).epoch).toBe(epoch);
    const h = await w.finish();
    expect(h.check()).toEqual([]);
    for (const k of h.absentAtEnd()) deleted.add(k);
  });

  it('a joining shard that already holds records is refused, and nothing changes', async () => {
    const s9 = await c.startShard('s9');
    try {
      // A record written straight to its admin port, as if left from an earlier membership.
      expect((await request('PUT', `${s9.adminUrl}/kv/left-over`, { body: 'old' })).status).toBe(204);
      const epoch = (await c.store.get()).epoch;
      const res = await addShard(c.url, 's9');
      expect(res.status).toBe(409);
      expect(res.json()['code']).toBe('KV_ERR_SHARD_NOT_EMPTY');
      expect(String(res.json()['message'])).toMatch(/s9 already holds 1 records/);
      expect((await c.store.get()).epoch).toBe(epoch);
      expect(await rebalanceState(c.url).then((r) => r.job?.shardId)).not.toBe('s9');
    } finally {
      await s9.stop();
    }
  });

  it('removing the last shard is refused', async () => {
    const one = await TestCluster.start({ shards: 1, workers: 1 });
    try {
      const res = await removeShard(one.url, 's1');
      expect(res.status).toBe(400);
      expect(res.json()['code']).toBe('KV_ERR_LAST_SHARD');
    } finally {
      await one.stop();
    }
  });
});

describe('a lost shard', () => {
  it('forget drops a dead shard from the ring: its keys are gone, every other key and every write work', async () => {
    const t = await TestCluster.start({ shards: 3, workers: 2, shardSet: { heartbeatMs: 200, heartbeatTtlMs: 600 } });
    try {
      const ks = await bulkLoad(t.url, 'lost-', 600);
      const before = ringOf(await t.store.get());
      const onS3 = ks.filter((k) => before.ownerOf(k) === 's3');
      expect(onS3.length).toBeGreaterThan(100);
      // A live shard is not forgotten: it must be drained.
      const alive = await request('DELETE', `${t.url}/v1/admin/shards/s3?lost=1`);
      expect(alive.status).toBe(409);
      expect(alive.json()['code']).toBe('KV_ERR_SHARD_ALIVE');
      const s3 = t.shards.find((s) => s.id === 's3')!;
      s3.kill('SIGKILL');
      await s3.exited();
      t.shards = t.shards.filter((s) => s.id !== 's3');
      // Until it is forgotten, its keys answer 503 and nothing else breaks.
      expect((await get(`${t.url}/v1/kv/${onS3[0]}`)).status).toBe(503);
      await sleep(1000); // its registry entry expires
      const epoch = (await t.store.get()).epoch;
      const res = await request('DELETE', `${t.url}/v1/admin/shards/s3?lost=1`);
      expect(res.status, res.text).toBe(200);
      expect(res.json()).toMatchObject({ forgotten: 's3', epoch: epoch + 1, shards: ['s1', 's2'] });
      const after = await t.store.get();
      expect(after.epoch).toBe(epoch + 1);
      expect(after.shards.map((s) => s.id)).toEqual(['s1', 's2']);
      for (const k of ks) {
        const r = await get(`${t.url}/v1/kv/${k}`);
        if (before.ownerOf(k) === 's3') expect(r.status).toBe(404);
        else expect(r.text).toBe(loadedValue(k));
      }
      for (const k of onS3.slice(0, 50)) {
        expect((await request('PUT', `${t.url}/v1/kv/${k}`, { body: 'again' })).status).toBe(204);
        expect((await get(`${t.url}/v1/kv/${k}`)).text).toBe('again');
      }
      const twice = await request('DELETE', `${t.url}/v1/admin/shards/s3?lost=1`);
      expect(twice.status).toBe(404);
      expect(twice.json()['code']).toBe('KV_ERR_SHARD_NOT_IN_RING');
    } finally {
      await t.stop();
    }
  }, 120_000);
});
