// The rebalance coordinator with a real private Redis (topology, job, lease)
// and shards played by in-memory models: each holds a set of keys, answers
// sync/count/scan/import/purge/retire, records every call and can be made to
// fail. The job's states, the topology epochs it writes, the calls the shards
// receive and where every key ends up are what the tests look at.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type LocalRedis } from '../../src/local/redis-server.js';
import { waitUntil } from '../../src/local/wait.js';
import { TopologyStore } from '../../src/infra/topology-store.js';
import { TopologyWatcher } from '../../src/infra/topology-watcher.js';
import type { ShardConnection } from '../../src/infra/shard-client.js';
import { Coordinator, type CoordinatorConfig, type CoordinatorDeps, type ShardLinks } from '../../src/rebalance/coordinator.js';
import { RebalanceStore } from '../../src/rebalance/job-store.js';
import { planJob } from '../../src/rebalance/planner.js';
import type { Job } from '../../src/rebalance/job.js';
import { nextEpoch, type Topology, type TopologyShard } from '../../src/core/topology.js';
import { Ring, keyPoint, type PointRange, type RingMember } from '../../src/core/ring.js';
import { kvError, toWire } from '../../src/core/errors.js';
import type { Request } from '../../src/core/protocol.js';
import { FakeShard, TEST_CLUSTER_SECRET } from '../helpers/fake-shard.js';

const KEYS = Array.from({ length: 300 }, (_, i) => `key-${i}`);
const members = (...ids: string[]): RingMember[] => ids.map((id) => ({ id, weight: 1 }));

const CONFIG: CoordinatorConfig = {
  rebalanceLeaseMs: 1000,
  rebalanceBatchKeys: 20,
  rebalanceIdleBatchKeys: 40,
  rebalanceBatchBytes: 1 << 20,
  rebalancePacing: 'fixed',
  rebalanceMaxKeysPerSec: 0,
  rebalanceTargetLatencyPercent: 200,
  rebalanceMinKeysPerSec: 2000,
  rebalanceAdaptiveMaxKeysPerSec: 0,
  rebalanceStreamConcurrency: 2,
  rebalanceImportsInFlight: 4,
  rebalanceCheckpointMs: 0,
  requestTimeoutMs: 1000,
  connectTimeoutMs: 200,
  maxInFlightPerShard: 100,
  clusterSecret: TEST_CLUSTER_SECRET,
  dataTls: false,
  tlsCaFile: '',
  dataPingIntervalMs: 0,
  maxFrameBytes: 1 << 20,
};

type Call = Record<string, unknown> & { o: string };
const inRanges = (p: number, ranges: readonly PointRange[]) => ranges.some((r) => p >= r.lo && p <= r.hi);
/** The models' moved-records blob: one key per line, so blobs concatenate as the real ones do. */
const packKeys = (keys: readonly string[]) => Buffer.from(keys.map((k) => `${k}\n`).join(''));
const unpackKeys = (packed: Uint8Array) => Buffer.from(packed).toString().split('\n').filter(Boolean);
const byPoint = (a: string, b: string) => keyPoint(a) - keyPoint(b) || (a < b ? -1 : a > b ? 1 : 0);

/** A shard as the coordinator sees it: keys by point, and its answers to the rebalancing ops. */
class ShardModel {
  readonly keys = new Set<string>();
  readonly calls: Call[] = [];
  /** Fault injection: return an error to refuse this call. */
  fail: ((req: Call) => Error | undefined) | undefined;

  constructor(
    readonly id: string,
    readonly epoch: () => Promise<number>,
  ) {}

  callsOf(o: string): Call[] {
    return this.calls.filter((c) => c.o === o);
  }

  async handle(req: Call): Promise<unknown> {
    this.calls.push(req);
    const err = this.fail?.(req);
    if (err) throw err;
    switch (req.o) {
      case 'sync':
        return { epoch: await this.epoch() };
      case 'count': {
        const n = [...this.keys].filter((k) => inRanges(keyPoint(k), req['ranges'] as PointRange[])).length;
        return { keys: n, bytes: n * 10, estimated: false };
      }
      case 'scan': {
        const [r] = req['ranges'] as PointRange[];
        const after = req['after'] as [number, string] | undefined;
        const all = [...this.keys].filter((k) => inRanges(keyPoint(k), [r!])).sort(byPoint);
        // The cursor is the last [point, key] returned: go on after it.
        const from = after ? all.findIndex((k) => byPoint(k, after[1]) > 0) : 0;
        const rest = from < 0 ? [] : all.slice(from);
        const batch = rest.slice(0, req['limit'] as number);
        const last = batch[batch.length - 1];
        return {
          packed: packKeys(batch),
          n: batch.length,
          live: batch.length,
          bytes: batch.length * 10,
          next: rest.length > batch.length && last !== undefined ? [keyPoint(last), last] : undefined,
        };
      }
      case 'import': {
        const keys = unpackKeys(req['packed'] as Uint8Array);
        for (const k of keys) this.keys.add(k);
        return { written: keys.length, received: keys.length };
      }
      case 'purge': {
        // In point order, at most `limit` of them, as the shard does.
        const all = [...this.keys].filter((k) => inRanges(keyPoint(k), req['ranges'] as PointRange[])).sort(byPoint);
        const limit = (req['limit'] as number | undefined) ?? Infinity;
        const gone = all.slice(0, limit);
        for (const k of gone) this.keys.delete(k);
        return { purged: gone.length, more: gone.length >= limit };
      }
      case 'retire':
        return { retiring: true };
      default:
        throw kvError('KV_ERR_UNKNOWN_OP', req.o);
    }
  }
}

/** The topology store, recording every topology it wrote. */
class RecordingTopologyStore extends TopologyStore {
  readonly written: Topology[] = [];
  override async compareAndSet(expectedEpoch: number, next: Topology): Promise<boolean> {
    const ok = await super.compareAndSet(expectedEpoch, next);
    if (ok) this.written.push(next);
    return ok;
  }
}

/** The job store, counting the coordinator's attempts to take the lease. */
class CountingRebalanceStore extends RebalanceStore {
  leaseAttempts = 0;
  override lease(owner: string, ttlMs: number): Promise<boolean> {
    this.leaseAttempts++;
    return super.lease(owner, ttlMs);
  }
}

let redis: LocalRedis;
let admin: Redis;
let prefixes = 0;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
});
afterAll(async () => {
  admin?.disconnect();
  await redis?.stop();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * A ring of s1 and s2 holding KEYS, s3 registered and empty, and a
 * coordinator (not started) that reaches the shards through fake links.
 * Every shard also listens as a FakeShard, for calls to shards that have
 * left the topology (the coordinator then connects by address).
 */
async function setUp(config: Partial<CoordinatorConfig> = {}, fg?: CoordinatorDeps['fg']) {
  const prefix = `coord${++prefixes}:`;
  const topology = new RecordingTopologyStore(admin, prefix);
  const jobs = new CountingRebalanceStore(admin, prefix);
  const watcher = new TopologyWatcher(topology, new Redis(redis.url), 60_000);
  const epoch = async () => (await topology.get()).epoch;
  const shards = new Map(['s1', 's2', 's3'].map((id) => [id, new ShardModel(id, epoch)]));
  const listeners = new Map<string, FakeShard>();
  for (const [id, model] of shards) {
    const fake = new FakeShard(id);
    fake.answer = (req: Request) =>
      model.handle(req as unknown as Call).then(
        (r) => ({ r }),
        (err: unknown) => ({ err: toWire(err) }),
      );
    await fake.listen();
    listeners.set(id, fake);
  }
  const shard = (id: string): TopologyShard => ({ id, dataAddr: listeners.get(id)!.addr, adminAddr: listeners.get(id)!.addr, weight: 1, state: 'active' });
  const start = await topology.update((cur) => nextEpoch(cur, { shards: [shard('s1'), shard('s2')] }));
  const ring = Ring.of(members('s1', 's2'));
  for (const k of KEYS) shards.get(ring.ownerOf(k)!)!.keys.add(k);
  topology.written.length = 0;
  await watcher.start();

  const links: ShardLinks = {
    get topology() {
      return watcher.current;
    },
    connection: (id: string) => ({ request: (req: Call) => shards.get(id)!.handle(req) }) as unknown as ShardConnection,
  };
  const log: string[] = [];
  const deps: CoordinatorDeps = { config: { ...CONFIG, ...config }, topology, watcher, shards: links, jobs, fg, log: (m) => log.push(m) };
  const coordinator = new Coordinator(deps);
  /** Another router's coordinator on the same cluster (not started). */
  const another = (): Coordinator => {
    const c = new Coordinator(deps);
    cleanups.push(() => c.stop());
    return c;
  };

  // Every job state the store published, in order.
  const sub = new Redis(redis.url);
  const published: Job[] = [];
  sub.on('message', (_ch: string, msg: string) => published.push((JSON.parse(msg) as { job: Job }).job));
  await sub.subscribe(jobs.channel);

  cleanups.push(async () => {
    await coordinator.stop();
    await watcher.close();
    sub.disconnect();
    await Promise.all([...listeners.values()].map((f) => f.close()));
  });

  /** Plan "add s3" against the current ring and store the job. */
  const planAdd = async (): Promise<Job> => {
    const job = await planJob(
      { kind: 'add', shardId: 's3' },
      {
        topology: await topology.get(),
        registrations: [{ id: 's3', dataAddr: listeners.get('s3')!.addr, adminAddr: listeners.get('s3')!.addr, pid: 1, startedAt: 1 }],
        count: async (source, ranges) => shards.get(source)!.handle({ o: 'count', ranges }) as Promise<{ keys: number; bytes: number }>,
      },
    );
    for (const m of shards.values()) m.calls.length = 0;
    await jobs.create(job);
    return job;
  };
  /** The job once it is in one of `states`, and that state has been published too. */
  const jobIn = (states: string[], timeoutMs = 10_000) =>
    waitUntil(
      async () => {
        const j = await jobs.get();
        return j && states.includes(j.state) && published.some((p) => p.state === j.state) ? j : undefined;
      },
      { timeoutMs, what: `the job in ${states.join('/')}` },
    );
  /** Where each key lives now, checked against the owners in `ring`. */
  const misplaced = (owners: RingMember[]): string[] => {
    const r = Ring.of(owners);
    const out: string[] = [];
    for (const k of KEYS) {
      for (const [id, m] of shards) {
        if (m.keys.has(k) !== (r.ownerOf(k) === id)) out.push(`${k} ${m.keys.has(k) ? 'left on' : 'missing on'} ${id}`);
      }
    }
    return out;
  };
  const states = () => published.map((j) => j.state).filter((s, i, a) => i === 0 || a[i - 1] !== s);
  return { prefix, topology, jobs, watcher, shards, coordinator, another, log, published, start, planAdd, jobIn, misplaced, states };
}

describe('coordinator', () => {
  it('takes the lease and drives an add job through every state to done', async () => {
    const t = await setUp();
    const job = await t.planAdd();
    const e = t.start.epoch;
    t.coordinator.start();
    const done = await t.jobIn(['done', 'failed']);
    expect(done.state, done.error).toBe('done');
    expect(t.coordinator.leader).toBe(true);
    expect(await t.jobs.leaseHolder()).toBe(t.coordinator.id);
    expect(t.states()).toEqual(['planned', 'migrating', 'streaming', 'committing', 'purging', 'done']);
    // Topology epochs: +1 the migration in its freeze phase, +2 the move, +3 the commit.
    expect(t.topology.written.map((x) => [x.epoch, x.migration?.phase ?? null])).toEqual([
      [e + 1, 'freeze'],
      [e + 2, 'move'],
      [e + 3, null],
    ]);
    expect(t.topology.written[0]!.migration).toMatchObject({ jobId: job.id, epoch: e + 1, prev: members('s1', 's2'), next: members('s1', 's2', 's3') });
    expect(done).toMatchObject({ migrateEpoch: e + 1, moveEpoch: e + 2, commitEpoch: e + 3 });
    const final = await t.topology.get();
    expect(final.epoch).toBe(e + 3);
    expect(final.migration).toBeUndefined();
    expect(final.shards.map((s) => [s.id, s.state])).toEqual([
      ['s1', 'active'],
      ['s2', 'active'],
      ['s3', 'active'],
    ]);
    // A sync barrier on every shard at the migration epoch and at the commit epoch.
    for (const m of t.shards.values()) expect(m.callsOf('sync').map((c) => c['me'])).toEqual([e + 1, e + 3]);
    // The streams: every moved key imported at the migration epoch, then purged from its source.
    expect(
      t.shards
        .get('s3')!
        .callsOf('import')
        .every((c) => c['me'] === e + 1),
    ).toBe(true);
    expect(t.misplaced(members('s1', 's2', 's3'))).toEqual([]);
    const moved = done.streams.reduce((n, s) => n + s.keysDone, 0);
    expect(moved).toBe(t.shards.get('s3')!.keys.size);
    expect(done.streams.every((s) => s.done && s.target === 's3')).toBe(true);
    // No retire: the job added a shard.
    for (const m of t.shards.values()) expect(m.callsOf('retire')).toEqual([]);
  });

  it('saves a checkpoint after every batch while streaming', async () => {
    const t = await setUp();
    await t.planAdd();
    t.coordinator.start();
    const done = await t.jobIn(['done']);
    const streaming = t.published.filter((j) => j.state === 'streaming');
    const batches = t.shards.get('s3')!.callsOf('import').length;
    // One save when streaming starts, then at least one per imported batch.
    expect(streaming.length).toBeGreaterThanOrEqual(batches + 1);
    const progress = streaming.map((j) => j.streams.reduce((n, s) => n + s.keysDone, 0));
    for (let i = 1; i < progress.length; i++) expect(progress[i]!).toBeGreaterThanOrEqual(progress[i - 1]!);
    expect(new Set(progress).size).toBeGreaterThan(3);
    // A checkpoint names where each unfinished stream goes on.
    const mid = streaming.find((j) => j.streams.some((s) => !s.done && s.keysDone > 0))!;
    const s = mid.streams.find((x) => !x.done && x.keysDone > 0)!;
    expect(s.after ?? s.rangeIndex).toBeTruthy();
    expect(done.streams.reduce((n, x) => n + x.keysDone, 0)).toBe(progress[progress.length - 1]);
    // Arcs smaller than a batch are gathered: some import holds keys of several arcs, none more than a batch.
    const arcsOf = (keys: string[]) => new Set(keys.map((k) => done.streams.flatMap((x) => x.ranges).findIndex((r) => inRanges(keyPoint(k), [r])))).size;
    const imported = t.shards
      .get('s3')!
      .callsOf('import')
      .map((c) => unpackKeys(c['packed'] as Uint8Array));
    expect(imported.some((keys) => arcsOf(keys) > 1)).toBe(true);
    expect(Math.max(...imported.map((keys) => keys.length))).toBeLessThanOrEqual(CONFIG.rebalanceBatchKeys);
  });

  it('retries a failing shard call until it works, with the same batch', async () => {
    const t = await setUp({ rebalanceStreamConcurrency: 1 });
    await t.planAdd();
    const target = t.shards.get('s3')!;
    let failures = 2;
    const refused: Buffer[] = [];
    target.fail = (req) => {
      if (req.o !== 'import' || failures-- <= 0) return undefined;
      refused.push(Buffer.from(req['packed'] as Uint8Array));
      return kvError('KV_ERR_SHARD_UNAVAILABLE', 's3', 'injected');
    };
    t.coordinator.start();
    const done = await t.jobIn(['done', 'failed']);
    expect(done.state).toBe('done');
    // Every refused batch was sent again, byte for byte, until one attempt took (imports of a stream overlap, so
    // the two refusals may be of one batch or of two).
    const imports = target.callsOf('import').map((c) => Buffer.from(c['packed'] as Uint8Array));
    expect(refused).toHaveLength(2);
    for (const r of refused) {
      expect(imports.filter((p) => p.equals(r)).length).toBe(refused.filter((x) => x.equals(r)).length + 1);
    }
    expect(t.log.some((l) => /^coordinator: import s3: .*injected.*\(retrying\)$/.test(l))).toBe(true);
    expect(t.misplaced(members('s1', 's2', 's3'))).toEqual([]);
  });

  it('keeps several imports of a stream in flight, and its checkpoint never passes a batch whose import has not answered', async () => {
    const t = await setUp({ rebalanceStreamConcurrency: 1, rebalanceImportsInFlight: 3, rebalanceBatchKeys: 5 });
    const job = await t.planAdd();
    const target = t.shards.get('s3')!;
    // Hold the answer to the stream's second import until released; the others answer at once.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    // Cleanups run last-in first: the held import answers before the coordinator is stopped.
    cleanups.push(async () => release());
    let heldKeys: string[] | undefined;
    const handle = target.handle.bind(target);
    let imports = 0;
    target.handle = async (req) => {
      if (req.o === 'import' && ++imports === 2) {
        heldKeys = unpackKeys(req['packed'] as Uint8Array);
        await held;
      }
      return handle(req);
    };
    t.coordinator.start();
    // The stream scans on and imports the next batches while the second one waits for its answer.
    await waitUntil(() => imports >= 4, { timeoutMs: 4000, what: 'two more imports sent past the held one' });
    expect(imports).toBe(4);
    const first = job.streams.find((s) => s.keysTotal > 0)!;
    const saved = (await t.jobs.get())!.streams.find((s) => s.source === first.source && s.target === first.target)!;
    // Only the first batch is acknowledged: a stream resumed from the checkpoint would scan every held key again.
    const firstImport = unpackKeys(target.callsOf('import')[0]!['packed'] as Uint8Array);
    expect(saved.keysDone).toBe(firstImport.length);
    const rangeOf = (k: string) => saved.ranges.findIndex((r) => inRanges(keyPoint(k), [r]));
    const notPassed = (k: string) =>
      rangeOf(k) > saved.rangeIndex || (rangeOf(k) === saved.rangeIndex && (saved.after === undefined || byPoint(k, saved.after[1]) > 0));
    expect(heldKeys!.length).toBeGreaterThan(0);
    expect(heldKeys!.filter((k) => !notPassed(k))).toEqual([]);
    expect(firstImport.filter(notPassed)).toEqual([]);
    release();
    const done = await t.jobIn(['done', 'failed']);
    expect(done.state).toBe('done');
    expect(t.misplaced(members('s1', 's2', 's3'))).toEqual([]);
    expect(done.streams.reduce((n, s) => n + s.keysDone, 0)).toBe(target.keys.size);
  });

  it('purges each source in calls of at most a batch, and shows the purge in the job', async () => {
    const t = await setUp({ rebalanceBatchKeys: 7 });
    await t.planAdd();
    const before = new Map(['s1', 's2'].map((id) => [id, t.shards.get(id)!.keys.size]));
    t.coordinator.start();
    const done = await t.jobIn(['done', 'failed']);
    expect(done.state).toBe('done');
    expect(t.misplaced(members('s1', 's2', 's3'))).toEqual([]);
    for (const id of ['s1', 's2']) {
      const calls = t.shards.get(id)!.callsOf('purge');
      const gave = before.get(id)! - t.shards.get(id)!.keys.size;
      // Several calls, each limited to a batch; the last one found the ranges empty enough to stop.
      expect(calls.length).toBeGreaterThanOrEqual(Math.ceil(gave / 7));
      expect(calls.every((c) => c['limit'] === 7)).toBe(true);
      const s = done.streams.find((x) => x.source === id)!;
      expect(s).toMatchObject({ purged: true, keysPurged: gave });
    }
    // Progress while purging: the purged count grows checkpoint by checkpoint.
    const counts = t.published.filter((j) => j.state === 'purging').map((j) => j.streams.reduce((n, s) => n + (s.keysPurged ?? 0), 0));
    expect(new Set(counts).size).toBeGreaterThan(2);
    for (let i = 1; i < counts.length; i++) expect(counts[i]!).toBeGreaterThanOrEqual(counts[i - 1]!);
  });

  it('a coordinator that takes over a purging job purges what is left, and nothing is purged twice', async () => {
    const t = await setUp({ rebalanceBatchKeys: 5, rebalanceStreamConcurrency: 1 });
    await t.planAdd();
    // s1 purges one batch, then refuses until the first coordinator is gone.
    const s1 = t.shards.get('s1')!;
    let purges = 0;
    s1.fail = (req) => (req.o === 'purge' && ++purges > 1 ? kvError('KV_ERR_SHARD_UNAVAILABLE', 's1', 'injected') : undefined);
    t.coordinator.start();
    const stuck = await waitUntil(
      async () => {
        const j = await t.jobs.get();
        const s = j?.streams.find((x) => x.source === 's1');
        return j?.state === 'purging' && s && (s.keysPurged ?? 0) > 0 && purges >= 3 ? j : undefined;
      },
      { timeoutMs: 10_000, what: 's1 refusing its second purge call' },
    );
    const saved = stuck.streams.find((x) => x.source === 's1')!;
    expect(saved.keysPurged).toBe(5);
    expect(saved.purged).toBeFalsy();
    await t.coordinator.stop();
    s1.fail = undefined;
    const next = t.another();
    next.start();
    const done = await t.jobIn(['done', 'failed']);
    expect(done.state).toBe('done');
    expect(t.log.some((l) => /driving job .* from state purging$/.test(l))).toBe(true);
    expect(t.misplaced(members('s1', 's2', 's3'))).toEqual([]);
    // The purge went on from the start of the ranges: the records the first coordinator purged were gone already.
    const gave = done.streams.find((x) => x.source === 's1')!;
    expect(gave.purged).toBe(true);
    expect(gave.keysPurged).toBe(done.streams.find((x) => x.source === 's1')!.keysDone);
  });

  it('cancel while streaming runs the streams back and ends cancelled on the original ring', async () => {
    // Slow streams, so the cancel lands mid-stream.
    const t = await setUp({ rebalanceMaxKeysPerSec: 200 });
    await t.planAdd();
    const e = t.start.epoch;
    t.coordinator.start();
    await waitUntil(
      async () => {
        const j = await t.jobs.get();
        return j?.state === 'streaming' && j.streams.some((s) => s.keysDone > 0 && !s.done);
      },
      { timeoutMs: 10_000, what: 'the job mid-stream' },
    );
    await t.jobs.requestCancel();
    const end = await t.jobIn(['cancelled', 'done', 'failed'], 20_000);
    expect(end.state).toBe('cancelled');
    expect(end.direction).toBe('reverse');
    expect(t.states()).toEqual(['planned', 'migrating', 'streaming', 'migrating', 'streaming', 'committing', 'purging', 'cancelled']);
    // Forward freeze and move, then the reverse migration (next ring = the original), its move, and the commit.
    expect(t.topology.written.map((x) => [x.epoch, x.migration?.phase ?? null])).toEqual([
      [e + 1, 'freeze'],
      [e + 2, 'move'],
      [e + 3, 'freeze'],
      [e + 4, 'move'],
      [e + 5, null],
    ]);
    expect(t.topology.written[2]!.migration).toMatchObject({ prev: members('s1', 's2', 's3'), next: members('s1', 's2') });
    const final = await t.topology.get();
    expect(final.shards.map((s) => s.id)).toEqual(['s1', 's2']);
    expect(final.migration).toBeUndefined();
    // s3 gave back what it had taken (purged over a direct connection: it is no longer in the topology).
    expect(t.shards.get('s3')!.callsOf('purge').length).toBeGreaterThan(0);
    expect(t.misplaced(members('s1', 's2'))).toEqual([]);
  });

  it('fails a job planned against a ring that has changed since, and leaves the topology alone', async () => {
    const t = await setUp();
    await t.planAdd();
    const changed = await t.topology.update((cur) => nextEpoch(cur, { shards: cur.shards.map((s) => (s.id === 's1' ? { ...s, weight: 2 } : s)) }));
    t.topology.written.length = 0;
    t.coordinator.start();
    const failed = await t.jobIn(['failed', 'done']);
    expect(failed.state).toBe('failed');
    expect(failed.error).toMatch(/the ring changed after this job was planned; plan again/);
    expect(t.topology.written).toEqual([]);
    expect((await t.topology.get()).epoch).toBe(changed.epoch);
    for (const m of t.shards.values()) expect(m.calls).toEqual([]);
  });

  it('does nothing without the lease, and takes the job over once the lease is free', async () => {
    const t = await setUp();
    expect(await t.jobs.lease('another-router', 60_000)).toBe(true);
    await t.planAdd();
    t.coordinator.start();
    await waitUntil(() => t.jobs.leaseAttempts >= 4, { timeoutMs: 5000, what: 'several lease attempts' });
    expect(t.coordinator.leader).toBe(false);
    expect((await t.jobs.get())!.state).toBe('planned');
    expect(t.topology.written).toEqual([]);
    for (const m of t.shards.values()) expect(m.calls).toEqual([]);
    await t.jobs.releaseLease('another-router');
    expect((await t.jobIn(['done', 'failed'])).state).toBe('done');
    expect(t.coordinator.leader).toBe(true);
  });

  it('adaptive pacing: measures a baseline when the foreground shows up, paces against it and reports it in the job', async () => {
    // The routers' signal, scripted: busy throughout, p99 3 ms.
    let reads = 0;
    const fg = {
      read: async () => {
        reads++;
        return { at: Date.now() + reads, workers: 2, count: 400, perSec: 1600, p99Ms: 3 };
      },
    };
    const t = await setUp({ rebalancePacing: 'adaptive', rebalanceMinKeysPerSec: 40, rebalanceBatchKeys: 10 }, fg);
    await t.planAdd();
    t.coordinator.start();
    const done = await t.jobIn(['done', 'failed'], 20_000);
    expect(done.state).toBe('done');
    expect(reads).toBeGreaterThan(0);
    const paced = t.published.filter((j) => j.state === 'streaming' && j.pacing?.phase);
    expect(paced.length).toBeGreaterThan(0);
    // The first steps probe at the minimum rate (no baseline before the move), then the limit rises.
    expect(paced[0]!.pacing).toMatchObject({ mode: 'adaptive', phase: 'probe', keysPerSec: 40 });
    expect(done.pacing).toMatchObject({ mode: 'adaptive', baselineP99Ms: 3, fgP99Ms: 3 });
    // A busy foreground: batches of rebalanceBatchKeys, not the idle size.
    const sizes = t.shards
      .get('s3')!
      .callsOf('import')
      .map((c) => unpackKeys(c['packed'] as Uint8Array).length);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(10);
    expect(t.misplaced(members('s1', 's2', 's3'))).toEqual([]);
    // The purge is paced too: its steps show in the job while it purges, its calls are batches, and the baseline holds.
    expect(t.published.some((j) => j.state === 'purging' && j.pacing?.phase && j.pacing.keysPerSec !== null)).toBe(true);
    const limits = ['s1', 's2'].flatMap((id) =>
      t.shards
        .get(id)!
        .callsOf('purge')
        .map((c) => c['limit']),
    );
    expect(new Set(limits)).toEqual(new Set([10]));
  });

  it('adaptive pacing: a baseline from before the move, and a cut to the minimum when the foreground p99 goes far past it', async () => {
    const ref: { jobs?: RebalanceStore } = {};
    let reads = 0;
    // 2 ms while no job streams or purges, 10 ms (5x) while one does.
    const fg = {
      read: async () => {
        reads++;
        const state = (await ref.jobs?.get())?.state;
        const moving = state === 'streaming' || state === 'purging';
        return { at: Date.now(), workers: 1, count: 400, perSec: 1600, p99Ms: moving ? 10 : 2 };
      },
    };
    const t = await setUp({ rebalancePacing: 'adaptive', rebalanceMinKeysPerSec: 40, rebalanceBatchKeys: 10 }, fg);
    ref.jobs = t.jobs;
    t.coordinator.start();
    // The coordinator leads and watches the foreground before there is a job (4 samples make a baseline).
    await waitUntil(() => reads >= 5, { timeoutMs: 10_000, what: 'five samples of the foreground before the job' });
    await t.planAdd();
    const done = await t.jobIn(['done', 'failed'], 20_000);
    expect(done.state).toBe('done');
    expect(done.pacing).toMatchObject({ mode: 'adaptive', baselineP99Ms: 2, fgP99Ms: 10, ratio: 5, phase: 'cut', keysPerSec: 40 });
    expect(t.published.some((j) => j.pacing?.phase === 'probe')).toBe(false);
    // The purge is paced against the same baseline: cut to the minimum too.
    const purging = t.published.filter((j) => j.state === 'purging' && j.pacing?.phase);
    expect(purging.length).toBeGreaterThan(0);
    expect(purging.at(-1)!.pacing).toMatchObject({ baselineP99Ms: 2, phase: 'cut', keysPerSec: 40 });
  }, 30_000);

  it('adaptive pacing with an idle foreground: no limit, and batches of rebalanceIdleBatchKeys', async () => {
    const fg = { read: async () => ({ at: Date.now(), workers: 1, count: 0, perSec: 0, p99Ms: 0 }) };
    const t = await setUp({ rebalancePacing: 'adaptive', rebalanceBatchKeys: 5, rebalanceIdleBatchKeys: 30 }, fg);
    await t.planAdd();
    t.coordinator.start();
    const done = await t.jobIn(['done', 'failed']);
    expect(done.state).toBe('done');
    expect(done.pacing).toMatchObject({ mode: 'adaptive', phase: 'idle', keysPerSec: null });
    const sizes = t.shards
      .get('s3')!
      .callsOf('import')
      .map((c) => unpackKeys(c['packed'] as Uint8Array).length);
    expect(Math.max(...sizes)).toBeGreaterThan(5);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(30);
    expect(t.misplaced(members('s1', 's2', 's3'))).toEqual([]);
    // The purge too: no limit once the first step has seen the idle foreground, then calls of the idle batch size.
    const limits = ['s1', 's2'].flatMap((id) =>
      t.shards
        .get(id)!
        .callsOf('purge')
        .map((c) => c['limit']),
    );
    expect(limits).toContain(30);
    expect(limits.every((n) => n === 5 || n === 30)).toBe(true);
  });

  it('fixed pacing reports its cap in the job', async () => {
    const t = await setUp({ rebalancePacing: 'fixed', rebalanceMaxKeysPerSec: 50_000 });
    await t.planAdd();
    t.coordinator.start();
    const done = await t.jobIn(['done', 'failed']);
    expect(done.pacing).toEqual({ mode: 'fixed', keysPerSec: 50_000, phase: null, fgP99Ms: null, baselineP99Ms: null, ratio: null });
  });
});
