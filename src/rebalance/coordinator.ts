// The rebalance coordinator. Every router primary runs one; the one holding
// the Redis lease drives the active job, persisting after every step and every
// few batches, so a successor resumes from the checkpoints. Sources are read
// with SCAN and targets written with IMPORT (put-if-newer by write epoch), so
// replaying a batch after a crash is harmless.
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffMs } from '../core/backoff.js';
import { kvError, KvError } from '../core/errors.js';
import { OPS, type Body, type Op, type ResultOf, type ScanResult } from '../core/protocol.js';
import { nextEpoch, ringMembers, shardById, type Topology, type TopologyShard } from '../core/topology.js';
import { ShardConnection, type ShardConnectionOptions } from '../infra/shard-client.js';
import type { TopologyStore } from '../infra/topology-store.js';
import type { TopologyWatcher } from '../infra/topology-watcher.js';
import { JOB_STATES, FINAL_STATES, isActive, type Job, type StreamState } from './job.js';
import type { RebalanceStore } from './job-store.js';
import { RateLimiter } from './rate-limiter.js';
import { Pacer, MIN_FG_SAMPLES, median } from './pacer.js';
import type { FgSample } from './fg-signal.js';
import type { RouterConfig } from '../core/config.js';
import type { RingMember } from '../core/ring.js';

/** Connections to the shards of the current topology (the router's Forwarder is one). */
export interface ShardLinks {
  readonly topology: Topology | undefined;
  connection(id: string): ShardConnection;
}

export type CoordinatorConfig = Pick<
  RouterConfig,
  | 'rebalanceLeaseMs'
  | 'rebalanceBatchKeys'
  | 'rebalanceIdleBatchKeys'
  | 'rebalanceBatchBytes'
  | 'rebalancePacing'
  | 'rebalanceMaxKeysPerSec'
  | 'rebalanceTargetLatencyPercent'
  | 'rebalanceMinKeysPerSec'
  | 'rebalanceAdaptiveMaxKeysPerSec'
  | 'rebalanceStreamConcurrency'
  | 'rebalanceImportsInFlight'
  | 'rebalanceCheckpointMs'
> &
  ShardConnectionOptions;

export interface CoordinatorDeps {
  readonly config: CoordinatorConfig;
  readonly topology: TopologyStore;
  readonly watcher: TopologyWatcher;
  readonly shards: ShardLinks;
  readonly jobs: RebalanceStore;
  /** The routers' foreground latency (fg-signal.ts); without it adaptive pacing sees an idle foreground. */
  readonly fg?: { read(): Promise<FgSample | undefined> } | undefined;
  readonly log: (msg: string) => void;
}

/**
 * How often a primary renews or tries to take the lease, and looks for a new
 * job: a job starts at most this long after it was planned. The lease lasts
 * at least 1000 ms (config), so several renewals fit in it.
 */
const TICK_MS = 250;
/** Retries of a failing step: 100 ms doubling up to 2 s; one log line every this many attempts. */
const RETRY_BASE_MS = 100;
const RETRY_MAX_MS = 2000;
const RETRY_LOG_EVERY = 10;
/** Adaptive pacing: a control step this often (the routers publish every 250 ms). */
const PACE_MS = 250;
/** The baseline is the median p99 of the foreground samples in this window before the move. */
const BASELINE_WINDOW_MS = 10_000;
const BASELINE_SLACK_MS = 5000;

const sameMembers = (a: readonly RingMember[], b: readonly RingMember[]) =>
  JSON.stringify([...a].sort((x, y) => (x.id < y.id ? -1 : 1))) === JSON.stringify([...b].sort((x, y) => (x.id < y.id ? -1 : 1)));

/** Lost the lease or asked to stop: unwind without touching anything. */
class Abandon extends Error {}

export class Coordinator {
  readonly #d: CoordinatorDeps;
  readonly id = `${os.hostname()}:${process.pid}`;
  #leader = false;
  #running: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(deps: CoordinatorDeps) {
    this.#d = deps;
  }

  get leader(): boolean {
    return this.#leader;
  }

  start(): void {
    const tick = () => {
      if (this.#stopped) return;
      this.#tick()
        .catch((err: Error) => this.#d.log(`coordinator: ${err.message}`))
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(tick, TICK_MS);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running?.catch(() => undefined);
    for (const c of this.#outside.values()) c.close();
    if (this.#leader) await this.#d.jobs.releaseLease(this.id).catch(() => undefined);
  }

  async #tick(): Promise<void> {
    const was = this.#leader;
    this.#leader = await this.#d.jobs.lease(this.id, this.#d.config.rebalanceLeaseMs).catch(() => false);
    if (this.#leader && !was) this.#d.log(`coordinator: ${this.id} holds the rebalance lease`);
    if (!this.#leader || this.#running) return;
    const job = await this.#d.jobs.get();
    if (!isActive(job)) {
      await this.#sampleBaseline();
      return;
    }
    this.#running = this.#drive(job)
      .catch((err: unknown) => {
        if (!(err instanceof Abandon)) this.#d.log(`coordinator: job ${job.id}: ${(err as Error).message}`);
      })
      .finally(() => {
        this.#running = undefined;
      });
  }

  /** Foreground p99 samples while no job runs: [time, p99 ms]; the baseline of the next move. */
  #preMove: Array<[number, number]> = [];

  async #sampleBaseline(): Promise<void> {
    if (this.#d.config.rebalancePacing !== 'adaptive' || !this.#d.fg) return;
    const now = Date.now();
    const s = await this.#d.fg.read().catch(() => undefined);
    if (s && s.count >= MIN_FG_SAMPLES) this.#preMove.push([now, s.p99Ms]);
    while (this.#preMove.length > 0 && this.#preMove[0]![0] < now - BASELINE_WINDOW_MS - BASELINE_SLACK_MS) this.#preMove.shift();
  }

  /** The foreground's p99 before the move, if this coordinator watched it. */
  #baseline(): number | undefined {
    // A few seconds of slack: planning and the migrate barrier come between the last sample and the move.
    const recent = this.#preMove.filter(([t]) => t >= Date.now() - BASELINE_WINDOW_MS - BASELINE_SLACK_MS).map(([, p]) => p);
    return recent.length >= 4 ? median(recent) : undefined;
  }

  #check(): void {
    if (this.#stopped || !this.#leader) throw new Abandon('lease lost');
  }

  async #save(job: Job): Promise<void> {
    job.coordinator = this.id;
    if (!(await this.#d.jobs.save(job, this.id))) {
      this.#leader = false;
      throw new Abandon('lease lost');
    }
  }

  /** Retry an operation until it works (shards restart, Redis blips), while we lead. */
  async #retry<T>(what: string, fn: () => Promise<T>, onError?: (msg: string) => void): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      this.#check();
      try {
        return await fn();
      } catch (err) {
        if (err instanceof Abandon || isVerdict(err)) throw err;
        const msg = `${what}: ${(err as Error).message}`;
        onError?.(msg);
        if (attempt % RETRY_LOG_EVERY === 0) this.#d.log(`coordinator: ${msg} (retrying)`);
        await sleep(backoffMs(attempt, RETRY_BASE_MS, RETRY_MAX_MS));
      }
    }
  }

  /** Connections to shards that left the topology (a drained shard still needs purge and retire). */
  readonly #outside = new Map<string, ShardConnection>();
  #job: Job | undefined;

  /** One rebalancing request to a shard (epoch 0: these ops name the epoch they need in `me`). */
  #shardCall<O extends Op>(id: string, body: Body<O>): Promise<ResultOf<O>> {
    const req = { ...body, e: 0 };
    const t = this.#d.shards.topology;
    if (t && shardById(t, id)) return this.#d.shards.connection(id).request(req);
    const known = [...(this.#job?.migrateShards ?? []), ...(this.#job?.originalShards ?? [])].find((s) => s.id === id);
    if (!known) return Promise.reject(kvError('KV_ERR_SHARD_UNAVAILABLE', id, 'not in the topology or the job'));
    let c = this.#outside.get(id);
    if (!c || c.addr !== known.dataAddr) {
      c?.close();
      c = new ShardConnection(id, known.dataAddr, this.#d.config);
      this.#outside.set(id, c);
    }
    return c.request(req);
  }

  async #drive(job: Job): Promise<void> {
    this.#job = job;
    this.#d.log(`coordinator: driving job ${job.id} (${job.kind} ${job.shardId}) from state ${job.state}`);
    while (!FINAL_STATES.has(job.state)) {
      this.#check();
      switch (job.state) {
        case JOB_STATES.PLANNED:
          await this.#migrate(job);
          break;
        case JOB_STATES.MIGRATING:
          if (job.direction === 'forward' && (await this.#cancelRequested(job))) await this.#reverse(job);
          else await this.#barrier(job, job.migrateEpoch!, JOB_STATES.STREAMING);
          break;
        case JOB_STATES.STREAMING:
          await this.#stream(job);
          break;
        case JOB_STATES.COMMITTING:
          await this.#commit(job);
          break;
        case JOB_STATES.PURGING:
          await this.#purge(job);
          break;
        default:
          throw kvError('KV_ERR_INTERNAL', `unknown job state ${String(job.state)}`);
      }
    }
    this.#d.log(`coordinator: job ${job.id} ${job.state}`);
  }

  async #cancelRequested(job: Job): Promise<boolean> {
    return this.#d.jobs.cancelRequested(job.id).catch(() => false);
  }

  /** planned -> migrating: topology epoch e+1 with {prev, next}. */
  async #migrate(job: Job): Promise<void> {
    if (await this.#cancelRequested(job)) {
      job.state = JOB_STATES.CANCELLED;
      job.finishedAt = Date.now();
      return this.#save(job);
    }
    const t = await this.#retry('topology update', () =>
      this.#d.topology.update((cur) => {
        if (cur.migration?.jobId === job.id) return null; // done before a crash
        if (cur.migration) throw kvError('KV_ERR_REBALANCE_IN_PROGRESS', cur.migration.jobId, 'move', 'migrating');
        if (!sameMembers(ringMembers(cur), job.from)) throw new TopologyMoved();
        return nextEpoch(cur, {
          shards: withCurrentAddrs(job.migrateShards, cur),
          migration: { jobId: job.id, epoch: cur.epoch + 1, phase: 'freeze', prev: job.from, next: job.to },
        });
      }),
    ).catch((err: unknown) => {
      if (err instanceof TopologyMoved || (err instanceof KvError && err.code === 'KV_ERR_REBALANCE_IN_PROGRESS')) return err;
      throw err;
    });
    if (t instanceof Error) {
      job.state = JOB_STATES.FAILED;
      job.error = t instanceof TopologyMoved ? 'the ring changed after this job was planned; plan again' : t.message;
      job.finishedAt = Date.now();
      return this.#save(job);
    }
    // After a crash between this update and the save below, the topology
    // already carries the migration: its epoch is the one to keep.
    job.migrateEpoch = t.migration?.jobId === job.id ? t.migration.epoch : t.epoch;
    job.startedAt ??= Date.now();
    job.state = JOB_STATES.MIGRATING;
    // Writes of moving keys are held from now until the barrier opens the
    // move, so the barrier starts at once; it waits for this save before it
    // publishes the next epoch.
    this.#migrateSave = this.#save(job);
    this.#migrateSave.catch(() => undefined);
  }

  /** The save of the migrating state, while the barrier that follows runs. */
  #migrateSave: Promise<void> | undefined;

  /**
   * Wait until every shard involved runs at `epoch` and has committed every
   * write it accepted before (SYNC). After that no old-epoch write can land
   * on a source behind the stream's back.
   */
  async #barrier(job: Job, epoch: number, next: Job['state']): Promise<void> {
    const ids = [...new Set([...job.from, ...job.to].map((m) => m.id))];
    await Promise.all(
      ids.map((id) =>
        this.#retry(`sync ${id}`, async () => {
          await this.#d.watcher.refresh();
          const r = await this.#shardCall(id, { o: OPS.SYNC, me: epoch });
          if (r.epoch < epoch) throw new Error(`shard ${id} is at epoch ${r.epoch}, waiting for ${epoch}`);
        }),
      ),
    );
    const saving = this.#migrateSave;
    this.#migrateSave = undefined;
    await saving;
    if (next === JOB_STATES.STREAMING) {
      // Every shard has seen the migration: open writes on the new owners.
      const moved = await this.#retry('topology update', () =>
        this.#d.topology.update((cur) => {
          const m = cur.migration;
          if (m?.jobId !== job.id) throw kvError('KV_ERR_BAD_TOPOLOGY', 'migration of this job not found');
          if (m.phase === 'move') return null;
          return nextEpoch(cur, { migration: { ...m, phase: 'move' } });
        }),
      );
      job.moveEpoch = moved.epoch;
      // Fresh estimates now that the sources take no more writes for moving keys.
      await Promise.all(
        job.streams
          .filter((s) => !s.done && s.keysDone === 0)
          .map(async (s) => {
            const c = await this.#retry(`count ${s.source}`, () => this.#shardCall(s.source, { o: OPS.COUNT, ranges: s.ranges }));
            s.keysTotal = c.keys;
            s.bytesTotal = c.bytes;
          }),
      );
      job.streamingStartedAt ??= Date.now();
      // The streaming state is published with its pacing, before the first checkpoint.
      job.pacing = this.#initialPacing();
    }
    job.state = next;
    await this.#save(job);
  }

  /** The pacing a stream phase starts with (adaptive: the minimum rate until the first control step). */
  #initialPacing(): NonNullable<Job['pacing']> {
    const cfg = this.#d.config;
    const adaptive = cfg.rebalancePacing === 'adaptive';
    const perSec = adaptive ? cfg.rebalanceMinKeysPerSec : cfg.rebalanceMaxKeysPerSec;
    return { mode: adaptive ? 'adaptive' : 'fixed', keysPerSec: perSec > 0 ? perSec : null, phase: null, fgP99Ms: null, baselineP99Ms: null, ratio: null };
  }

  async #stream(job: Job): Promise<void> {
    const cfg = this.#d.config;
    const adaptive = cfg.rebalancePacing === 'adaptive';
    const limiter = new RateLimiter(adaptive ? cfg.rebalanceMinKeysPerSec : cfg.rebalanceMaxKeysPerSec);
    job.pacing = this.#initialPacing();
    const stopPacing = adaptive ? this.#pace(job, limiter, () => job.streams.reduce((n, s) => n + s.keysDone, 0), this.#baseline()) : () => undefined;
    let lastSave = Date.now();
    let cancel = false;
    let saving: Promise<void> | undefined;
    const checkpoint = async (force = false) => {
      if (!force && Date.now() - lastSave < cfg.rebalanceCheckpointMs) return;
      lastSave = Date.now();
      if (job.direction === 'forward' && (await this.#cancelRequested(job))) cancel = true;
      saving = this.#save(job);
      await saving;
    };
    const pending = job.streams.filter((s) => !s.done);
    let next = 0;
    const worker = async () => {
      while (next < pending.length && !cancel) {
        const st = pending[next++]!;
        await this.#runStream(job, st, limiter, checkpoint, () => cancel);
      }
    };
    try {
      // rebalanceStreamConcurrency 0: every stream of the job at once.
      const workers = Math.max(1, cfg.rebalanceStreamConcurrency === 0 ? pending.length : Math.min(cfg.rebalanceStreamConcurrency, pending.length));
      await Promise.all(Array.from({ length: workers }, worker));
    } finally {
      stopPacing();
    }
    await saving;
    if (cancel) return this.#reverse(job);
    job.state = JOB_STATES.COMMITTING;
    await this.#save(job);
  }

  /**
   * Adaptive pacing: every PACE_MS, the foreground's p99 and the keys moved
   * (or purged) since the last step go into the pacer, whose answer becomes
   * the limit. The job carries the latest figures (saved with the next
   * checkpoint).
   */
  #pace(job: Job, limiter: RateLimiter, moved: () => number, baselineP99Ms: number | undefined): () => void {
    const cfg = this.#d.config;
    const pacer = new Pacer({
      minKeysPerSec: cfg.rebalanceMinKeysPerSec,
      maxKeysPerSec: cfg.rebalanceAdaptiveMaxKeysPerSec,
      targetRatio: cfg.rebalanceTargetLatencyPercent / 100,
      baselineP99Ms,
    });
    let lastKeys = moved();
    let lastAt = Date.now();
    let lastSample = 0;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const step = async () => {
      // null: Redis did not answer, which is not the same as no foreground (undefined lifts the limit).
      const fg = await this.#d.fg?.read().catch(() => null);
      // Unread, or nothing new published since the last step: keep the limit.
      if (fg === null || (fg && fg.at === lastSample)) return;
      lastSample = fg?.at ?? 0;
      const now = Date.now();
      const keys = moved();
      const achieved = ((keys - lastKeys) * 1000) / Math.max(1, now - lastAt);
      lastKeys = keys;
      lastAt = now;
      limiter.setRate(pacer.update(fg, achieved));
      const st = pacer.state;
      job.pacing = { mode: 'adaptive', keysPerSec: st.keysPerSec, phase: st.phase, fgP99Ms: st.fgP99Ms, baselineP99Ms: st.baselineP99Ms, ratio: st.ratio };
    };
    const loop = () => {
      if (stopped) return;
      step()
        .catch(() => undefined)
        .finally(() => {
          if (!stopped) timer = setTimeout(loop, PACE_MS);
        });
    };
    loop();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }

  async #runStream(job: Job, st: StreamState, limiter: RateLimiter, checkpoint: () => Promise<void>, cancelled: () => boolean): Promise<void> {
    const cfg = this.#d.config;
    st.startedAt ??= Date.now();
    const scan = (rangeIndex: number, after: [number, string] | undefined, limit: number, maxBytes: number): Promise<ScanResult> =>
      this.#retry(
        `scan ${st.source}`,
        () => this.#shardCall(st.source, { o: OPS.SCAN, ranges: [st.ranges[rangeIndex]!], after, limit, maxBytes }),
        (m) => {
          st.lastError = m;
        },
      );
    /**
     * One import's worth from where the last one ended: scans of the stream's
     * ranges in order, until a batch of records (rebalanceBatchKeys, or
     * rebalanceIdleBatchKeys while nothing limits the move) or about
     * rebalanceBatchBytes are in hand or the ranges are done. A plan's arcs
     * are often smaller than a batch; gathering several of them into one
     * import keeps the target's transactions (and commits) few and full.
     * Moved-records blobs are plain runs of entries, so they concatenate.
     */
    const gather = async (rangeIndex: number, after: [number, string] | undefined): Promise<Gathered> => {
      const batchKeys = this.#batchKeys(limiter);
      const parts: Uint8Array[] = [];
      let n = 0,
        live = 0,
        bytes = 0,
        size = 0;
      while (rangeIndex < st.ranges.length && n < batchKeys && size < cfg.rebalanceBatchBytes) {
        const res = await scan(rangeIndex, after, batchKeys - n, cfg.rebalanceBatchBytes - size);
        if (res.n > 0) parts.push(res.packed);
        n += res.n;
        live += res.live;
        bytes += res.bytes;
        size += res.packed.byteLength;
        if (!res.next) rangeIndex++;
        after = res.next ?? undefined;
      }
      return { packed: parts.length === 1 ? parts[0]! : Buffer.concat(parts), n, live, bytes, rangeIndex, after };
    };
    const importBatch = (packed: Uint8Array): Promise<void> =>
      // The target re-reads the topology by itself if `me` is newer than its epoch.
      this.#retry(
        `import ${st.target}`,
        async () => {
          await this.#shardCall(st.target, { o: OPS.IMPORT, me: job.migrateEpoch!, packed });
        },
        (m) => {
          st.lastError = m;
        },
      );
    // A pipeline: the source scans the next batch while up to
    // rebalanceImportsInFlight earlier batches are being imported on the
    // target (batches hold disjoint keys, so the order in which their imports
    // land does not matter). Batches are acknowledged in scan order: the
    // checkpoint and the counters move only past a batch whose import, and
    // every earlier one's, has answered, so a resumed stream never skips a
    // batch that was not imported.
    const window: InFlightBatch[] = [];
    const acknowledge = async (): Promise<void> => {
      const b = window[0]!;
      await b.imported;
      window.shift();
      st.keysDone += b.live;
      st.bytesDone += b.bytes;
      st.lastError = undefined;
      st.rangeIndex = b.rangeIndex;
      st.after = b.after;
      await checkpoint();
    };
    let ahead: Promise<Gathered> | undefined = st.rangeIndex < st.ranges.length ? gather(st.rangeIndex, st.after) : undefined;
    try {
      while (ahead || window.length > 0) {
        this.#check();
        if (cancelled()) {
          await ahead?.catch(() => undefined);
          return;
        }
        if (!ahead || window.length >= cfg.rebalanceImportsInFlight) {
          await acknowledge();
          continue;
        }
        const g = await ahead;
        ahead = g.rangeIndex < st.ranges.length ? gather(g.rangeIndex, g.after) : undefined;
        // Keep the prefetch from failing unobserved if this stream stops before it is awaited.
        ahead?.catch(() => undefined);
        const b: InFlightBatch = { live: g.live, bytes: g.bytes, rangeIndex: g.rangeIndex, after: g.after, imported: Promise.resolve(), answered: g.n === 0 };
        if (g.n > 0) {
          await limiter.take(g.n);
          b.imported = importBatch(g.packed).then(() => {
            b.answered = true;
          });
          b.imported.catch(() => undefined);
        }
        window.push(b);
        while (window.length > 0 && window[0]!.answered) await acknowledge();
      }
    } finally {
      // On the way out (done, cancelled, lease lost) no import of this stream is left running.
      await Promise.all(window.map((b) => b.imported.catch(() => undefined)));
    }
    st.done = true;
    st.finishedAt = Date.now();
    await checkpoint();
  }

  /** Cancel while moving: run the streams back so nothing written meanwhile is lost. */
  async #reverse(job: Job): Promise<void> {
    this.#d.log(`coordinator: cancelling job ${job.id}: streaming back to the original ring`);
    const t = await this.#retry('topology update', () =>
      this.#d.topology.update((cur) => {
        if (cur.migration?.jobId !== job.id) throw kvError('KV_ERR_BAD_TOPOLOGY', 'migration of this job not found');
        return nextEpoch(cur, { migration: { jobId: job.id, epoch: cur.epoch + 1, phase: 'freeze', prev: job.to, next: job.from } });
      }),
    );
    const from = job.from;
    job.from = job.to;
    job.to = from;
    job.direction = 'reverse';
    job.finalShards = job.originalShards;
    job.migrateEpoch = t.epoch;
    job.streamingStartedAt = undefined;
    job.streams = job.streams.map((s) => ({
      source: s.target,
      target: s.source,
      ranges: s.ranges,
      keysTotal: 0,
      bytesTotal: 0,
      keysDone: 0,
      bytesDone: 0,
      rangeIndex: 0,
      done: false,
    }));
    job.state = JOB_STATES.MIGRATING;
    await this.#save(job);
  }

  /** streaming -> committing -> purging: epoch e+3 (one past the move phase) without the migration. */
  async #commit(job: Job): Promise<void> {
    const t: Topology = await this.#retry('topology update', () =>
      this.#d.topology.update((cur) => {
        if (cur.migration?.jobId !== job.id) return null; // committed before a crash
        return nextEpoch(cur, { shards: withCurrentAddrs(job.finalShards, cur), migration: undefined });
      }),
    );
    job.commitEpoch = t.epoch;
    await this.#barrier(job, t.epoch, JOB_STATES.PURGING);
  }

  /** Records per import or purge call: adaptive pacing with no foreground to protect (no limit) takes bigger batches, so fewer commits. */
  #batchKeys(limiter: RateLimiter): number {
    const cfg = this.#d.config;
    return cfg.rebalancePacing === 'adaptive' && limiter.perSec === 0 ? cfg.rebalanceIdleBatchKeys : cfg.rebalanceBatchKeys;
  }

  /**
   * Each source deletes what it gave away, paced like the streams: calls of
   * at most a batch of records, each taking its records from the same rate
   * limiter (adaptive: driven by the foreground's p99 against the baseline
   * the move started with). Every source purges at once, one call at a time
   * per stream. A call deletes from the start of the stream's ranges, and
   * what earlier calls deleted is gone, so a coordinator that takes over a
   * purging job just runs the purge again.
   */
  async #purge(job: Job): Promise<void> {
    const cfg = this.#d.config;
    const adaptive = cfg.rebalancePacing === 'adaptive';
    const limiter = new RateLimiter(adaptive ? cfg.rebalanceMinKeysPerSec : cfg.rebalanceMaxKeysPerSec);
    // The streaming phase's baseline (saved with the job, so it survives a takeover), else this router's own.
    const baseline = job.pacing?.baselineP99Ms ?? this.#baseline();
    job.purgingStartedAt ??= Date.now();
    job.pacing = { ...this.#initialPacing(), baselineP99Ms: adaptive ? (baseline ?? null) : null };
    const purged = () => job.streams.reduce((n, s) => n + (s.keysPurged ?? 0), 0);
    const stopPacing = adaptive ? this.#pace(job, limiter, purged, baseline) : () => undefined;
    let lastSave = Date.now();
    const purgeStream = async (s: StreamState) => {
      while (!s.purged) {
        this.#check();
        const limit = this.#batchKeys(limiter);
        await limiter.take(limit);
        const r = await this.#retry(
          `purge ${s.source}`,
          () => this.#shardCall(s.source, { o: OPS.PURGE, ranges: s.ranges, limit }),
          (m) => {
            s.lastError = m;
          },
        );
        s.lastError = undefined;
        s.keysPurged = (s.keysPurged ?? 0) + r.purged;
        if (!r.more) s.purged = true;
        if (Date.now() - lastSave >= cfg.rebalanceCheckpointMs) {
          lastSave = Date.now();
          await this.#save(job);
        }
      }
    };
    try {
      await Promise.all(job.streams.map(purgeStream));
    } finally {
      stopPacing();
    }
    if (job.kind === 'remove' && job.direction === 'forward') {
      // Best effort: a shard that is down drops out of the registry when its
      // heartbeat key expires.
      await this.#shardCall(job.shardId, { o: OPS.RETIRE }).catch((err: Error) => this.#d.log(`coordinator: retire ${job.shardId}: ${err.message}`));
    }
    job.state = job.direction === 'forward' ? JOB_STATES.DONE : JOB_STATES.CANCELLED;
    job.finishedAt = Date.now();
    await this.#save(job);
  }
}

class TopologyMoved extends Error {}

/** Scans gathered into one import: the records, their counts and where the stream goes on after them. */
interface Gathered {
  readonly packed: Uint8Array;
  readonly n: number;
  readonly live: number;
  readonly bytes: number;
  readonly rangeIndex: number;
  readonly after: [number, string] | undefined;
}

/** A scanned batch of a stream, from the start of its import until it is acknowledged. */
interface InFlightBatch {
  /** Live values in it and their bytes (the stream's counters once acknowledged). */
  readonly live: number;
  readonly bytes: number;
  /** Where the stream goes on after it: the checkpoint once acknowledged. */
  readonly rangeIndex: number;
  readonly after: [number, string] | undefined;
  /** Settles when the target has answered the import (or rejects when the stream stops). */
  imported: Promise<void>;
  answered: boolean;
}

/** An answer that decides the job (it fails), not a failure to retry. */
function isVerdict(err: unknown): boolean {
  return err instanceof TopologyMoved || (err instanceof KvError && err.code === 'KV_ERR_REBALANCE_IN_PROGRESS');
}

/** A shard that restarted on new addresses during the job keeps them. */
function withCurrentAddrs(shards: readonly TopologyShard[], cur: Topology): TopologyShard[] {
  return shards.map((s) => {
    const now = shardById(cur, s.id);
    return now ? { ...s, dataAddr: now.dataAddr, adminAddr: now.adminAddr } : s;
  });
}
