// Topology record and shard registry against a real private Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, type LocalRedis } from '../../src/local/redis-server.js';
import { TopologyStore, initTopology } from '../../src/infra/topology-store.js';
import { TopologyWatcher } from '../../src/infra/topology-watcher.js';
import { nextEpoch, EMPTY_TOPOLOGY, type Topology } from '../../src/core/topology.js';
import { startShard } from '../helpers/procs.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitUntil } from '../../src/local/wait.js';

let redis: LocalRedis;
let r: Redis;
const dir = mkdtempSync(path.join(os.tmpdir(), 'shardkv-topo-'));
const shard = (id: string, port: number) => ({ id, dataAddr: `127.0.0.1:${port}`, adminAddr: `127.0.0.1:${port + 100}`, weight: 1, state: 'active' as const });

beforeAll(async () => {
  redis = await startRedis();
  r = new Redis(redis.url);
});
afterAll(async () => {
  r?.disconnect();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('topology compare-and-set', () => {
  it('advances the epoch by exactly one and refuses a stale expected epoch', async () => {
    const store = new TopologyStore(r, 'cas1:');
    expect(await store.get()).toEqual(EMPTY_TOPOLOGY);
    const t1 = nextEpoch(EMPTY_TOPOLOGY, { shards: [shard('a', 7001)] });
    expect(await store.compareAndSet(0, t1)).toBe(true);
    // A second writer that read epoch 0 loses.
    const other = nextEpoch(EMPTY_TOPOLOGY, { shards: [shard('b', 7002)] });
    expect(await store.compareAndSet(0, other)).toBe(false);
    expect((await store.get()).shards.map((s) => s.id)).toEqual(['a']);
    // Skipping an epoch is refused outright.
    await expect(store.compareAndSet(1, { ...t1, epoch: 3 })).rejects.toMatchObject({ code: 'KV_ERR_BAD_TOPOLOGY' });
    // The next change from the right epoch lands.
    const t2 = nextEpoch(t1, { shards: [shard('a', 7001), shard('b', 7002)] });
    expect(await store.compareAndSet(1, t2)).toBe(true);
    expect((await store.get()).epoch).toBe(2);
  });

  it('concurrent updates all land, each with its own epoch', async () => {
    const store = new TopologyStore(r, 'cas2:');
    const ids = Array.from({ length: 10 }, (_, i) => `n${i}`);
    await Promise.all(ids.map((id, i) => store.update((cur) => nextEpoch(cur, { shards: [...cur.shards, shard(id, 8000 + i)] }))));
    const t = await store.get();
    expect(t.epoch).toBe(10);
    expect(t.shards.map((s) => s.id).sort()).toEqual([...ids].sort());
  });

  it('rejects a weight that gives a shard no ring points', () => {
    expect(() =>
      nextEpoch(EMPTY_TOPOLOGY, {
        shards: [
          { ...shard('a', 1), weight: 10_000 },
          { ...shard('b', 2), weight: 1 },
        ],
      }),
    ).toThrowError(/no ring points/);
  });

  it('watchers learn each change from pub/sub and never go backwards', async () => {
    const store = new TopologyStore(r, 'watch:');
    const w = new TopologyWatcher(store, new Redis(redis.url), 60_000);
    const seen: number[] = [];
    w.on('change', (t: Topology) => seen.push(t.epoch));
    await w.start();
    for (let i = 0; i < 5; i++) await store.update((cur) => nextEpoch(cur, { shards: [shard(`x${i}`, 9000 + i)] }));
    await waitUntil(() => w.current?.epoch === 5, { timeoutMs: 5000, what: 'the watcher at epoch 5' });
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    await w.close();
  });

  it('initTopology sets up an empty ring once and leaves a set-up ring alone', async () => {
    const store = new TopologyStore(r, 'init:');
    await r.set('init:shard:a', JSON.stringify({ id: 'a', dataAddr: '127.0.0.1:1', adminAddr: '127.0.0.1:2', pid: 1, startedAt: 1 }));
    await r.set('init:shard:b', JSON.stringify({ id: 'b', dataAddr: '127.0.0.1:3', adminAddr: '127.0.0.1:4', pid: 1, startedAt: 1 }));
    const t = await initTopology(store, ['a']);
    expect(t.epoch).toBe(1);
    expect((await initTopology(store, ['a'])).epoch).toBe(1); // same set: no change
    const again = await initTopology(store, ['a', 'b']);
    expect(again.epoch).toBe(1);
    expect(again.shards.map((s) => s.id)).toEqual(['a']);
    await expect(initTopology(new TopologyStore(r, 'init2:'), ['zz'])).rejects.toThrow(/not registered/);
  });
});

describe('shard registry', () => {
  it('a shard registers with a heartbeat, deregisters on clean shutdown, expires after kill -9', async () => {
    const store = new TopologyStore(r, 'reg:');
    const TTL_MS = 1000;
    const opts = { redisUrl: redis.url, prefix: 'reg:', set: { heartbeatMs: 200, heartbeatTtlMs: TTL_MS } };
    const a = await startShard({ ...opts, id: 'ra', dataDir: path.join(dir, 'ra') });
    const b = await startShard({ ...opts, id: 'rb', dataDir: path.join(dir, 'rb') });
    const regs = await store.registrations();
    expect(regs.map((x) => x.id)).toEqual(['ra', 'rb']);
    expect(regs[0]!.dataAddr).toBe(a.dataAddr);
    // The heartbeat keeps the key alive past its TTL: it never lapses, over
    // one and a half TTLs of looking.
    const until = Date.now() + TTL_MS * 1.5;
    while (Date.now() < until) {
      expect((await store.registrations()).map((x) => x.id)).toEqual(['ra', 'rb']);
      await sleep(50);
    }
    await a.stop();
    expect((await store.registrations()).map((x) => x.id)).toEqual(['rb']);
    b.kill('SIGKILL');
    await b.exited();
    const killedAt = Date.now();
    // Nobody deregistered it: it stays until its TTL runs out, and not much longer.
    expect((await store.registrations()).map((x) => x.id)).toEqual(['rb']);
    await waitUntil(async () => (await store.registrations()).length === 0, {
      timeoutMs: TTL_MS + 2000,
      intervalMs: 50,
      what: "the killed shard's registration expiring",
    });
    expect(Date.now() - killedAt).toBeGreaterThan(TTL_MS / 2);
  });
});
