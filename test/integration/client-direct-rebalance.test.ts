// Direct mode keeps DESIGN §6 during a rebalance: a mixed workload of reads,
// writes and deletes goes from KvClients straight to the shards while a 4th
// shard is added and then removed again, and the history checker finds no
// lost acknowledged write, no delete come back, and (after the add) every
// key on exactly its one owner. The final reads go through the router.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient, KvError } from '../../src/index.js';
import { waitUntil } from '../../src/local/wait.js';
import { finalReads, History, type HistOp, type Outcome } from '../helpers/history.js';
import { TestCluster } from '../helpers/procs.js';
import { addShard, bulkLoad, checkPlacement, loadedValue, removeShard, waitForJob } from '../helpers/rebalance.js';
import { TEST_CLUSTER_SECRET } from '../helpers/secrets.js';

const N = 4000;
const HOT = 800;
let c: TestCluster;
let keys: string[];

beforeAll(async () => {
  // A slow stream, so the workload runs through every phase of each job.
  c = await TestCluster.start({ shards: 3, workers: 1, routerSet: { rebalanceMaxKeysPerSec: 2000 } });
  keys = await bulkLoad(c.url, 'k', N);
}, 120_000);
afterAll(async () => {
  await c?.stop();
});

/** What an error tells about the operation: 4xx and 503 mean nothing was done; others leave a write's outcome open. */
function outcomeOf(kind: HistOp['kind'], err: unknown): Outcome {
  if (!(err instanceof KvError)) return 'unknown';
  if (err.statusCode < 500 || err.statusCode === 503) return 'fail';
  return kind === 'get' ? 'fail' : 'unknown';
}

/** Clients of their own (one KvClient each, so several shard connections) that put, delete and read until stopped. */
function directWorkload(h: History, hot: string[], stop: () => boolean): Promise<void> {
  let seq = 0;
  const worker = async (w: number) => {
    const kv = new KvClient({ urls: c.url, direct: { clusterSecret: TEST_CLUSTER_SECRET } });
    try {
      while (!stop()) {
        const n = seq++;
        const key = hot[Math.floor(Math.random() * hot.length)]!;
        const r = Math.random();
        const kind: HistOp['kind'] = r < 0.4 ? 'put' : r < 0.5 ? 'del' : 'get';
        const value = kind === 'put' ? `v${w}-${n}` : null;
        const start = h.now();
        let read: string | null = null;
        let outcome: Outcome = 'ok';
        let status: number | string = 200;
        try {
          if (kind === 'put') await kv.put(key, value!);
          else if (kind === 'del') await kv.delete(key);
          else read = (await kv.getText(key))?.value ?? null;
        } catch (err) {
          outcome = outcomeOf(kind, err);
          status = err instanceof KvError ? err.statusCode : 'error';
        }
        h.add({ kind, key, start, end: h.now(), value: kind === 'get' ? read : value, outcome, status });
      }
    } finally {
      await kv.close();
    }
  };
  return Promise.all(Array.from({ length: 6 }, (_, w) => worker(w))).then(() => undefined);
}

async function moreOps(h: History, n: number, what: string): Promise<void> {
  const target = h.ops.length + n;
  await waitUntil(() => h.ops.length >= target, { timeoutMs: 30_000, what: `${n} more operations ${what}` });
}

describe('direct mode during a rebalance', () => {
  it('adds a 4th shard and removes it again under a direct-mode workload', async () => {
    const hot = keys.slice(0, HOT);
    const h = new History();
    h.preload(hot.map((k) => [k, loadedValue(k)]));
    let stop = false;
    const load = directWorkload(h, hot, () => stop);
    try {
      await moreOps(h, 200, 'before the first job');
      await c.startShard('s4');
      const atAdd = h.ops.length;
      const added = await addShard(c.url, 's4');
      expect(added.status, added.text).toBe(202);
      const join = await waitForJob(c.url, ['done'], 60_000);
      // The workload ran through the migration, not only around it.
      expect(h.ops.length - atAdd).toBeGreaterThan(50);
      expect(join.streams.reduce((n, s) => n + s.keysDone, 0)).toBeGreaterThan(N * 0.1);
      await moreOps(h, 200, 'after the add');
      const removed = await removeShard(c.url, 's4');
      expect(removed.status, removed.text).toBe(202);
      const atRemove = h.ops.length;
      await waitForJob(c.url, ['done'], 60_000, (j) => j.id !== join.id && j.state === 'done');
      expect(h.ops.length - atRemove).toBeGreaterThan(50);
      await moreOps(h, 200, 'after the remove');
    } finally {
      stop = true;
      await load;
    }
    await finalReads(h, c.url, hot);
    expect(h.check()).toEqual([]);
    // Every hot key was read at the end, through the router.
    const counts = h.counts();
    expect(counts['put:ok']).toBeGreaterThan(200);
    expect(counts['del:ok']).toBeGreaterThan(20);
    // Refusals of a moving topology are 503s the client already retried; nothing ended as a server error.
    expect(h.ops.filter((o) => typeof o.status === 'number' && o.status >= 500 && o.status !== 503)).toEqual([]);
    const deleted = h.absentAtEnd();
    expect(await checkPlacement(c, keys, deleted, 200)).toEqual([]);
  }, 120_000);
});
