// Rebalance jobs: the model (pure) and its Redis record. A job moves the ring
// from `from` members to `to` members. The coordinator (router/coordinator.ts)
// drives it through these states, persisting after every step, so whichever
// router primary holds the lease can resume it from its checkpoints:
//
//   planned -> migrating (topology epoch e+1 carries {prev, next})
//           -> streaming (each source -> target stream, checkpoint per batch)
//           -> committing (epoch e+2 drops the migration)
//           -> purging (sources delete what they gave away) -> done
//
// Cancelling reverses direction: the streams run back (target -> source) so
// writes taken by the new owners during the move are kept, and the job ends
// `cancelled` on the original ring.
import type { Redis } from 'ioredis';
import { kvError } from './errors.js';
import type { RingMember } from './ring.js';
import type { PointRange } from './migration.js';
import type { TopologyShard } from './topology.js';

export const JOB_STATES = {
  PLANNED: 'planned',
  MIGRATING: 'migrating',
  STREAMING: 'streaming',
  COMMITTING: 'committing',
  PURGING: 'purging',
  DONE: 'done',
  CANCELLED: 'cancelled',
  FAILED: 'failed',
} as const;
export type JobState = (typeof JOB_STATES)[keyof typeof JOB_STATES];
export const FINAL_STATES: ReadonlySet<JobState> = new Set([JOB_STATES.DONE, JOB_STATES.CANCELLED, JOB_STATES.FAILED]);

export type JobKind = 'add' | 'remove' | 'weight';

export interface StreamState {
  source: string;
  target: string;
  ranges: PointRange[];
  keysTotal: number;
  bytesTotal: number;
  keysDone: number;
  bytesDone: number;
  /** Checkpoint: index into ranges, and the last [point, key] imported in it. */
  rangeIndex: number;
  after?: [number, string] | undefined;
  done: boolean;
  startedAt?: number | undefined;
  finishedAt?: number | undefined;
  lastError?: string | undefined;
}

export interface Job {
  id: string;
  kind: JobKind;
  shardId: string;
  state: JobState;
  /** Direction: 'forward', or 'reverse' after a cancel. */
  direction: 'forward' | 'reverse';
  from: RingMember[];
  to: RingMember[];
  /** Topology shards while the migration runs, and after it commits. */
  migrateShards: TopologyShard[];
  finalShards: TopologyShard[];
  /** The shards as they were before the job (a cancel returns to these). */
  originalShards: TopologyShard[];
  streams: StreamState[];
  /** Epoch that started the migration (freeze phase); imports overwrite only records older than it. */
  migrateEpoch?: number | undefined;
  /** Epoch at which the new owners began taking writes for moving keys. */
  moveEpoch?: number | undefined;
  commitEpoch?: number | undefined;
  cancelRequested?: boolean | undefined;
  createdAt: number;
  startedAt?: number | undefined;
  streamingStartedAt?: number | undefined;
  finishedAt?: number | undefined;
  updatedAt: number;
  error?: string | undefined;
  coordinator?: string | undefined;
}

export interface JobProgress {
  keysDone: number;
  keysTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** Keys per second since streaming started. */
  keysPerSec: number;
  etaSeconds: number | null;
}

export function progress(job: Job, now = Date.now()): JobProgress {
  let keysDone = 0, keysTotal = 0, bytesDone = 0, bytesTotal = 0;
  for (const s of job.streams) {
    keysDone += s.keysDone;
    bytesDone += s.bytesDone;
    keysTotal += Math.max(s.keysTotal, s.keysDone);
    bytesTotal += Math.max(s.bytesTotal, s.bytesDone);
  }
  const secs = job.streamingStartedAt ? Math.max(0.001, ((job.finishedAt ?? now) - job.streamingStartedAt) / 1000) : 0;
  const keysPerSec = secs > 0 ? keysDone / secs : 0;
  const left = keysTotal - keysDone;
  return { keysDone, keysTotal, bytesDone, bytesTotal, keysPerSec, etaSeconds: keysPerSec > 0 ? left / keysPerSec : left === 0 ? 0 : null };
}

export function isActive(job: Job | null | undefined): job is Job {
  return !!job && !FINAL_STATES.has(job.state);
}

// KEYS[1] job key; ARGV[1] new job JSON. Refuses while a job is active.
const CREATE_LUA = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local st = cjson.decode(cur)['state']
  if st ~= 'done' and st ~= 'cancelled' and st ~= 'failed' then return cur end
end
redis.call('SET', KEYS[1], ARGV[1])
return false
`;

// KEYS[1] lease, KEYS[2] job, KEYS[3] history; ARGV[1] owner ('' = any),
// ARGV[2] job JSON, ARGV[3] '1' when the job is final (also kept in history).
const SAVE_LUA = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[3] == '1' then
  redis.call('LPUSH', KEYS[3], ARGV[2])
  redis.call('LTRIM', KEYS[3], 0, 19)
end
return 1
`;

// KEYS[1] lease key; ARGV[1] owner; ARGV[2] ttl ms. Take or renew.
const LEASE_LUA = `
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`;

export class RebalanceStore {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  get jobKey(): string { return `${this.#prefix}rebalance:job`; }
  get historyKey(): string { return `${this.#prefix}rebalance:history`; }
  get channel(): string { return `${this.#prefix}rebalance:events`; }
  get leaseKey(): string { return `${this.#prefix}rebalance:lease`; }

  async get(): Promise<Job | null> {
    const raw = await this.#redis.get(this.jobKey);
    return raw === null ? null : (JSON.parse(raw) as Job);
  }

  /** Store a new job unless one is active (then KV_ERR_REBALANCE_IN_PROGRESS). */
  async create(job: Job): Promise<void> {
    const cur = (await this.#redis.eval(CREATE_LUA, 1, this.jobKey, JSON.stringify(job))) as string | null;
    if (cur) {
      const other = JSON.parse(cur) as Job;
      throw kvError('KV_ERR_REBALANCE_IN_PROGRESS', other.id, `${other.kind} ${other.shardId}`, other.state);
    }
    await this.publish(job);
  }

  /**
   * Persist the job and announce it. With `owner`, only while that owner
   * holds the coordinator lease (a coordinator that lost it must not write
   * over its successor); returns false then.
   */
  async save(job: Job, owner?: string): Promise<boolean> {
    job.updatedAt = Date.now();
    const raw = JSON.stringify(job);
    const final = FINAL_STATES.has(job.state) ? '1' : '0';
    const ok = (await this.#redis.eval(SAVE_LUA, 3, this.leaseKey, this.jobKey, this.historyKey, owner ?? '', raw, final)) === 1;
    if (ok) await this.publish(job);
    return ok;
  }

  async publish(job: Job): Promise<void> {
    await this.#redis.publish(this.channel, JSON.stringify({ job, progress: progress(job) }));
  }

  get cancelKey(): string { return `${this.#prefix}rebalance:cancel`; }

  /** Ask the coordinator to cancel the active job (it checks between batches). */
  async requestCancel(): Promise<Job> {
    const job = await this.get();
    if (!isActive(job)) throw kvError('KV_ERR_NO_REBALANCE');
    if (job.direction === 'reverse') throw kvError('KV_ERR_CANNOT_CANCEL', job.id, 'already being cancelled');
    if (job.state === JOB_STATES.COMMITTING || job.state === JOB_STATES.PURGING) throw kvError('KV_ERR_CANNOT_CANCEL', job.id, job.state);
    await this.#redis.set(this.cancelKey, job.id, 'PX', 24 * 3600 * 1000);
    return job;
  }

  async cancelRequested(jobId: string): Promise<boolean> {
    return (await this.#redis.get(this.cancelKey)) === jobId;
  }

  async history(): Promise<Job[]> {
    return (await this.#redis.lrange(this.historyKey, 0, 19)).map((s) => JSON.parse(s) as Job);
  }

  /** Take or renew the coordinator lease; true while `owner` holds it. */
  async lease(owner: string, ttlMs: number): Promise<boolean> {
    return (await this.#redis.eval(LEASE_LUA, 1, this.leaseKey, owner, String(ttlMs))) === 1;
  }

  async leaseHolder(): Promise<string | null> {
    return this.#redis.get(this.leaseKey);
  }

  async releaseLease(owner: string): Promise<void> {
    await this.#redis.eval(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`, 1, this.leaseKey, owner);
  }
}
