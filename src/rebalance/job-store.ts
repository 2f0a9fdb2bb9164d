// The rebalance job's Redis record: the active job, the history of finished
// ones, the coordinator lease, the cancel flag and the progress channel. Every
// write that must not race goes through a Lua script (./lua via scripts.ts).
import type { Redis } from 'ioredis';
import { kvError } from '../core/errors.js';
import { scripts, type Scripts } from '../infra/scripts.js';
import { FINAL_STATES, JOB_STATES, isActive, progress, type Job } from './job.js';

const HISTORY_LENGTH = 20;
const CANCEL_TTL_MS = 24 * 3600 * 1000;

export class RebalanceStore {
  readonly #redis: Redis;
  readonly #scripts: Scripts;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#scripts = scripts(redis);
    this.#prefix = prefix;
  }

  get jobKey(): string {
    return `${this.#prefix}rebalance:job`;
  }
  get historyKey(): string {
    return `${this.#prefix}rebalance:history`;
  }
  get channel(): string {
    return `${this.#prefix}rebalance:events`;
  }
  get leaseKey(): string {
    return `${this.#prefix}rebalance:lease`;
  }
  get cancelKey(): string {
    return `${this.#prefix}rebalance:cancel`;
  }
  /** Server errors the routers answered while this job ran (for its summary). */
  foregroundErrorsKey(jobId: string): string {
    return `${this.#prefix}rebalance:fg5xx:${jobId}`;
  }

  async get(): Promise<Job | null> {
    const raw = await this.#redis.get(this.jobKey);
    return raw === null ? null : (JSON.parse(raw) as Job);
  }

  /** Store a new job unless one is active (then KV_ERR_REBALANCE_IN_PROGRESS). */
  async create(job: Job): Promise<void> {
    const cur = await this.#scripts.jobCreate(this.jobKey, JSON.stringify(job));
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
    const ok = (await this.#scripts.jobSave(this.leaseKey, this.jobKey, this.historyKey, owner ?? '', JSON.stringify(job), FINAL_STATES.has(job.state))) === 1;
    if (ok) await this.publish(job);
    return ok;
  }

  async publish(job: Job): Promise<void> {
    await this.#redis.publish(this.channel, JSON.stringify({ job, progress: progress(job) }));
  }

  /** Ask the coordinator to cancel the active job (it checks between batches). */
  async requestCancel(): Promise<Job> {
    const job = await this.get();
    if (!isActive(job)) throw kvError('KV_ERR_NO_REBALANCE');
    if (job.direction === 'reverse') throw kvError('KV_ERR_CANNOT_CANCEL', job.id, 'already being cancelled');
    if (job.state === JOB_STATES.COMMITTING || job.state === JOB_STATES.PURGING) throw kvError('KV_ERR_CANNOT_CANCEL', job.id, job.state);
    await this.#redis.set(this.cancelKey, job.id, 'PX', CANCEL_TTL_MS);
    return job;
  }

  async cancelRequested(jobId: string): Promise<boolean> {
    return (await this.#redis.get(this.cancelKey)) === jobId;
  }

  async history(): Promise<Job[]> {
    return (await this.#redis.lrange(this.historyKey, 0, HISTORY_LENGTH - 1)).map((s) => JSON.parse(s) as Job);
  }

  /** Take or renew the coordinator lease; true while `owner` holds it. */
  async lease(owner: string, ttlMs: number): Promise<boolean> {
    return (await this.#scripts.leaseTake(this.leaseKey, owner, ttlMs)) === 1;
  }

  async leaseHolder(): Promise<string | null> {
    return this.#redis.get(this.leaseKey);
  }

  async releaseLease(owner: string): Promise<void> {
    await this.#scripts.leaseRelease(this.leaseKey, owner);
  }

  async foregroundErrors(jobId: string): Promise<number> {
    return Number((await this.#redis.get(this.foregroundErrorsKey(jobId))) ?? 0);
  }
}
