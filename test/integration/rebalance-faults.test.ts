// Rebalancing through crashes of the source, the target and the coordinating
// router primary; TTLs across a move; cancel; conditional writes during a
// move; refused and invalid requests; a lost shard. Each test starts its own
// cluster and loads its own keys; the move rate is kept low so the crashes
// land mid-stream.
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster, type ClusterOptions } from '../helpers/procs.js';
import { History, runWorkload, finalReads, startCheckedWorkload } from '../helpers/history.js';
import { loadedValue, bulkLoad, addShard, removeShard, waitForJob, checkPlacement, rebalanceState } from '../helpers/rebalance.js';
import { request, get } from '../helpers/http.js';
import { waitUntil } from '../../src/local/wait.js';
import { ringOf } from '../../src/core/topology.js';
import { ADMIN_AUTH } from '../helpers/secrets.js';

/** Keys per cluster: at RATE, adding a 4th shard streams for about a second. */
const N = 10_000;
const RATE = 2500;
const SLOW_MOVES = { rebalancePacing: 'fixed', rebalanceMaxKeysPerSec: RATE, rebalanceBatchKeys: 250 };

const clusters: TestCluster[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.stop()));
});

/** A cluster of this test's own (stopped after it), with `n` keys loaded. */
async function cluster(n: number, o: ClusterOptions = {}): Promise<{ c: TestCluster; keys: string[] }> {
  const c = await TestCluster.start({ shards: 3, workers: 2, routerSet: SLOW_MOVES, ...o });
  clusters.push(c);
  const keys = n > 0 ? await bulkLoad(c.url, 'f', n) : [];
  return { c, keys };
}

/** A running job with a stream that has moved some keys and is not done. */
async function midStream(c: TestCluster): Promise<{ source: string; target: string }> {
  const mid = await waitForJob(c.url, [], 60_000, (j) => j.state === 'streaming' && j.streams.some((s) => s.keysDone > 0 && !s.done));
  return mid.streams.find((x) => x.keysDone > 0 && !x.done)!;
}

/**
 * Start a job with `start`, run `fault` once it is mid-stream, all under a
 * checked workload on 1000 hot keys; then the job must finish, every read be
 * explainable and every key live only on its owner.
 */
async function underLoad(
  c: TestCluster,
  keys: string[],
  start: () => Promise<{ status: number; text: string }>,
  fault: (stream: { source: string; target: string }) => Promise<void>,
) {
  const h = new History();
  const hot = keys.slice(0, 1000);
  h.preload(hot.map((k) => [k, loadedValue(k)]));
  let stop = false;
  const load = runWorkload(h, { url: c.url, keys: hot, concurrency: 6, putRatio: 0.4, delRatio: 0.1, stop: () => stop, pauseMs: 2 });
  const res = await start();
  expect(res.status, res.text).toBe(202);
  await fault(await midStream(c));
  const job = await waitForJob(c.url, ['done'], 120_000);
  stop = true;
  await load;
  await finalReads(h, c.url, hot);
  expect(h.check()).toEqual([]);
  expect(await checkPlacement(c, keys, h.absentAtEnd())).toEqual([]);
  return { job, h };
}

/** The coordinator's log line for a failed call to shard `id` (it logs the first failure of every retried step). */
const failedCallTo = (id: string) => (line: string) => new RegExp(`^coordinator: (sync|count|scan|import) ${id}: .*\\(retrying\\)$`).test(line);

/** kill -9 a shard, wait until the coordinator has hit it, and restart it on its data dir and ports. */
async function killAndRestart(c: TestCluster, id: string): Promise<void> {
  const victim = c.shard(id);
  const from = c.router.lines.length;
  victim.kill('SIGKILL');
  await victim.exited();
  await c.router.waitForLine(failedCallTo(id), { from, timeoutMs: 30_000, what: `the coordinator failing a call to ${id}` });
  await c.restartShard(victim);
}

const processGone = (pid: number) => {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
};

describe('crashes during a move', () => {
  it('kill -9 of the source mid-stream: the job resumes and completes', async () => {
    const { c, keys } = await cluster(N);
    await c.startShard('s4');
    const { job } = await underLoad(
      c,
      keys,
      () => addShard(c.url, 's4'),
      ({ source }) => killAndRestart(c, source),
    );
    expect(job.streams.every((s) => s.done && s.target === 's4')).toBe(true);
  }, 180_000);

  it('kill -9 of the target mid-stream: the job resumes and completes', async () => {
    const { c, keys } = await cluster(N);
    const { job } = await underLoad(
      c,
      keys,
      () => removeShard(c.url, 's3'),
      ({ target }) => killAndRestart(c, target),
    );
    expect(job.streams.every((s) => s.source === 's3' && s.done)).toBe(true);
  }, 180_000);

  it('kill -9 of the coordinating router primary: a new one resumes the job', async () => {
    // A short lease, so the new primary takes over soon after the old one's runs out.
    const { c, keys } = await cluster(N, { routerSet: { ...SLOW_MOVES, rebalanceLeaseMs: 2000 } });
    await c.startShard('s4');
    await underLoad(
      c,
      keys,
      () => addShard(c.url, 's4'),
      async () => {
        const before = await rebalanceState(c.url);
        const old = c.router;
        old.kill('SIGKILL');
        await old.exited();
        // Its workers go once they see the primary gone; then the port is free again.
        await waitUntil(() => old.workerPids.every(processGone), { timeoutMs: 10_000, what: 'the old router workers exiting' });
        await c.startRouter();
        // The job kept its progress: it did not start over.
        const after = await rebalanceState(c.url);
        expect(after.job!.id).toBe(before.job!.id);
        expect(after.progress!.keysDone).toBeGreaterThanOrEqual(before.progress!.keysDone);
      },
    );
  }, 180_000);
});

describe('TTLs across a move', () => {
  it('moved keys keep their absolute expiry and expired keys are not copied', async () => {
    const { c: t } = await cluster(0, { shards: 2, workers: 1, routerSet: {}, shardSet: { sweepIntervalMs: 600_000 } });
    const short = await bulkLoad(t.url, 'short-', 3000, { ttl: 1 });
    // Every short key's expiry is at most its TTL after the load answered.
    const shortExpiredAt = Date.now() + 1000;
    const long = await bulkLoad(t.url, 'long-', 3000, { ttl: 3600 });
    const expiry = new Map<string, string>();
    for (const k of long.slice(0, 150)) expiry.set(k, String((await get(`${t.url}/v1/kv/${k}`)).headers['x-kv-expires-at']));
    // The short keys expire now, but the sweeper (every 10 minutes) leaves them on disk.
    await waitUntil(() => Date.now() > shortExpiredAt, { timeoutMs: 5000, what: "the short keys' expiry" });
    for (const k of short.slice(-20)) expect((await get(`${t.url}/v1/kv/${k}`)).status).toBe(404);
    await t.startShard('s3');
    // Reads only, so the target's record count below stays exact.
    const w = startCheckedWorkload(t.url, long.slice(150), loadedValue, { putRatio: 0, delRatio: 0, concurrency: 4 });
    expect((await addShard(t.url, 's3')).status).toBe(202);
    const job = await waitForJob(t.url, ['done'], 60_000);
    // The workload really read while the job ran (final reads come later).
    expect(w.history.ops.filter((o) => o.kind === 'get').length).toBeGreaterThan(20);
    const h = await w.finish();
    expect(h.check()).toEqual([]);
    const moved = job.streams.reduce((n, s) => n + s.keysDone, 0);
    expect(moved).toBeGreaterThan(300);
    // Only live long-TTL keys arrived: the target holds exactly what moved.
    expect((await request('GET', `${t.shard('s3').adminUrl}/stats`, { headers: ADMIN_AUTH })).json()['records']).toBe(moved);
    for (const [k, x] of expiry) {
      const res = await get(`${t.url}/v1/kv/${k}`);
      expect(res.status).toBe(200);
      expect(String(res.headers['x-kv-expires-at'])).toBe(x);
    }
    for (const k of short.slice(0, 150)) expect((await get(`${t.url}/v1/kv/${k}`)).status).toBe(404);
  }, 120_000);
});

describe('cancel', () => {
  it('cancelling mid-stream returns to the original ring without losing writes', async () => {
    const { c, keys } = await cluster(N);
    await c.startShard('s4');
    const original = (await c.store.get()).shards.map((s) => s.id);
    const h = new History();
    const hot = keys.slice(0, 1000);
    h.preload(hot.map((k) => [k, loadedValue(k)]));
    let stop = false;
    const load = runWorkload(h, { url: c.url, keys: hot, concurrency: 6, putRatio: 0.4, delRatio: 0.1, stop: () => stop, pauseMs: 2 });
    expect((await addShard(c.url, 's4')).status).toBe(202);
    await midStream(c);
    const cancel = await request('POST', `${c.url}/v1/admin/rebalance/cancel`, { headers: ADMIN_AUTH });
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
    // s4 gave everything back.
    const s4 = c.shard('s4');
    expect((await request('GET', `${s4.adminUrl}/stats`, { headers: ADMIN_AUTH })).json()['records']).toBe(0);
    await s4.stop();
    expect(await checkPlacement(c, keys, h.absentAtEnd())).toEqual([]);
  }, 180_000);
});

describe('conditional writes during a move', () => {
  it('If-Match, If-None-Match and DELETE see the current state of keys not streamed yet', async () => {
    // Slower still, so the 90 requests below come before the stream reaches most of their keys.
    const { c, keys } = await cluster(N, { routerSet: { ...SLOW_MOVES, rebalanceMaxKeysPerSec: 1000 } });
    await c.startShard('s4');
    const before = ringOf(await c.store.get());
    expect((await addShard(c.url, 's4')).status).toBe(202);
    await waitForJob(c.url, [], 60_000, (j) => j.state === 'streaming');
    const next = ringOf(await c.store.get());
    const moving = keys.filter((k) => before.ownerOf(k) !== next.ownerOf(k)).slice(0, 90);
    expect(moving.length).toBe(90);
    const results: number[] = [];
    for (const [i, k] of moving.entries()) {
      const url = `${c.url}/v1/kv/${k}`;
      if (i % 3 === 0) {
        const cur = await get(url);
        expect(cur.status).toBe(200);
        results.push((await request('PUT', url, { body: 'cas', headers: { 'if-match': String(cur.headers['etag']) } })).status);
      } else if (i % 3 === 1) {
        results.push((await request('PUT', url, { body: 'create', headers: { 'if-none-match': '*' } })).status);
      } else {
        results.push((await request('DELETE', url)).status);
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
    const { c, keys } = await cluster(3000);
    await c.startShard('s4');
    const w = startCheckedWorkload(c.url, keys.slice(0, 1000), loadedValue, { concurrency: 6, pauseMs: 2 });
    const first = await addShard(c.url, 's4');
    expect(first.status, first.text).toBe(202);
    const second = await removeShard(c.url, 's1');
    expect(second.status).toBe(409);
    expect(second.json()['code']).toBe('KV_ERR_REBALANCE_IN_PROGRESS');
    const third = await addShard(c.url, 's4');
    expect(third.status).toBe(409);
    const job = await waitForJob(c.url, ['done'], 120_000);
    expect(job.shardId).toBe('s4');
    expect((await c.store.get()).shards.map((s) => s.id)).toEqual(['s1', 's2', 's3', 's4']);
    const h = await w.finish();
    expect(h.check()).toEqual([]);
    expect(await checkPlacement(c, keys, h.absentAtEnd())).toEqual([]);
  }, 180_000);

  it('bad shard changes get clear 4xx codes and change nothing', async () => {
    const { c, keys } = await cluster(1000, { workers: 1 });
    const epoch = (await c.store.get()).epoch;
    const w = startCheckedWorkload(c.url, keys, loadedValue, { concurrency: 6, pauseMs: 2 });
    const json = { 'content-type': 'application/json' };
    const cases: Array<[Promise<{ status: number; json: () => Record<string, unknown> }>, number, string]> = [
      [addShard(c.url, 'nope'), 400, 'KV_ERR_SHARD_NOT_REGISTERED'],
      [addShard(c.url, 's1'), 409, 'KV_ERR_SHARD_IN_RING'],
      [removeShard(c.url, 'nope'), 404, 'KV_ERR_SHARD_NOT_IN_RING'],
      [
        request('PUT', `${c.url}/v1/admin/shards/s1/weight`, { body: JSON.stringify({ weight: 0.0001 }), headers: { ...json, ...ADMIN_AUTH } }),
        400,
        'KV_ERR_BAD_WEIGHT',
      ],
      [
        request('PUT', `${c.url}/v1/admin/shards/s1/weight`, { body: JSON.stringify({ weight: -1 }), headers: { ...json, ...ADMIN_AUTH } }),
        400,
        'KV_ERR_BAD_WEIGHT',
      ],
      [request('POST', `${c.url}/v1/admin/shards`, { body: '{"id":', headers: { ...json, ...ADMIN_AUTH } }), 400, 'KV_ERR_BAD_JSON'],
      [request('POST', `${c.url}/v1/admin/rebalance/cancel`, { headers: ADMIN_AUTH }), 409, 'KV_ERR_NO_REBALANCE'],
    ];
    for (const [p, status, code] of cases) {
      const res = await p;
      expect(res.status).toBe(status);
      expect(res.json()['code']).toBe(code);
    }
    expect((await c.store.get()).epoch).toBe(epoch);
    expect((await rebalanceState(c.url)).job).toBeNull();
    const h = await w.finish();
    expect(h.check()).toEqual([]);
  });

  it('a joining shard that already holds records is refused, and nothing changes', async () => {
    const { c } = await cluster(0, { workers: 1 });
    // A shard used on its own (httpKvWrites=standalone) takes a write for any key:
    // a record as if left from an earlier membership.
    const s4 = await c.startShard('s4', {}, { httpKvWrites: 'standalone' });
    expect((await request('PUT', `${s4.adminUrl}/kv/left-over`, { body: 'old', headers: ADMIN_AUTH })).status).toBe(204);
    const epoch = (await c.store.get()).epoch;
    const res = await addShard(c.url, 's4');
    expect(res.status).toBe(409);
    expect(res.json()['code']).toBe('KV_ERR_SHARD_NOT_EMPTY');
    expect(String(res.json()['message'])).toMatch(/s4 already holds 1 records/);
    expect((await c.store.get()).epoch).toBe(epoch);
    expect((await rebalanceState(c.url)).job).toBeNull();
  });

  it('removing the last shard is refused', async () => {
    const { c } = await cluster(0, { shards: 1, workers: 1 });
    const res = await removeShard(c.url, 's1');
    expect(res.status).toBe(400);
    expect(res.json()['code']).toBe('KV_ERR_LAST_SHARD');
    expect((await c.store.get()).shards.map((s) => s.id)).toEqual(['s1']);
  });
});

describe('a lost shard', () => {
  it('forget drops a dead shard from the ring: its keys are gone, every other key and every write work', async () => {
    const { c: t } = await cluster(0, { shardSet: { heartbeatMs: 200, heartbeatTtlMs: 600 }, routerSet: {} });
    const ks = await bulkLoad(t.url, 'lost-', 600);
    const before = ringOf(await t.store.get());
    const onS3 = ks.filter((k) => before.ownerOf(k) === 's3');
    expect(onS3.length).toBeGreaterThan(100);
    // A live shard is not forgotten: it must be drained.
    const alive = await request('DELETE', `${t.url}/v1/admin/shards/s3?lost=1`, { headers: ADMIN_AUTH });
    expect(alive.status).toBe(409);
    expect(alive.json()['code']).toBe('KV_ERR_SHARD_ALIVE');
    const s3 = t.shard('s3');
    s3.kill('SIGKILL');
    await s3.exited();
    t.shards = t.shards.filter((s) => s.id !== 's3');
    // Until it is forgotten, its keys answer 503 and nothing else breaks.
    expect((await get(`${t.url}/v1/kv/${onS3[0]}`)).status).toBe(503);
    // Its registry entry expires (no heartbeat renews it).
    await waitUntil(async () => !(await t.store.registrations()).some((r) => r.id === 's3'), {
      timeoutMs: 5000,
      intervalMs: 50,
      what: 's3 leaving the registry',
    });
    const epoch = (await t.store.get()).epoch;
    const res = await request('DELETE', `${t.url}/v1/admin/shards/s3?lost=1`, { headers: ADMIN_AUTH });
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
    const twice = await request('DELETE', `${t.url}/v1/admin/shards/s3?lost=1`, { headers: ADMIN_AUTH });
    expect(twice.status).toBe(404);
    expect(twice.json()['code']).toBe('KV_ERR_SHARD_NOT_IN_RING');
  }, 120_000);
});
