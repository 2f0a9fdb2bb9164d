// The rebalance job model (pure; its Redis record is job-store.ts). A job
// moves the ring from `from` members to `to` members. The coordinator drives
// it through these states, persisting after every step and at least every
// `rebalanceCheckpointMs` while streaming, so whichever router primary holds
// the lease can resume it from its checkpoints:
//
//   planned    -> migrating  (epoch e+1: the migration {prev, next} in its
//                             freeze phase; then a sync barrier on every shard)
//              -> streaming  (epoch e+2: phase 'move', new owners take writes;
//                             each source -> target stream, checkpointed)
//              -> committing (epoch e+3 drops the migration; sync barrier)
//              -> purging    (sources delete what they gave away) -> done
//
// Cancelling reverses direction: the streams run back (target -> source) so
// writes taken by the new owners during the move are kept, and the job ends
// `cancelled` on the original ring.
import type { PointRange, RingMember } from '../core/ring.js';
import type { TopologyShard } from '../core/topology.js';

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
  /** Records the source has deleted of these ranges since the purge began (a takeover may miss a few), and whether it is done. */
  keysPurged?: number | undefined;
  purged?: boolean | undefined;
}

/** How a job's streams are paced, as of its last checkpoint (adaptive: the pacer's latest step). */
export interface JobPacing {
  mode: 'adaptive' | 'fixed';
  /** The move's rate limit, keys/s over all streams; null = none. */
  keysPerSec: number | null;
  /** The pacer's last decision: slow-start, increase, hold, cut, probe (measuring a baseline) or idle (no foreground). */
  phase: string | null;
  /** The routers' foreground p99 in their latest window, its baseline before the move, and their ratio (ms, ms, x). */
  fgP99Ms: number | null;
  baselineP99Ms: number | null;
  ratio: number | null;
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
  createdAt: number;
  startedAt?: number | undefined;
  streamingStartedAt?: number | undefined;
  purgingStartedAt?: number | undefined;
  finishedAt?: number | undefined;
  updatedAt: number;
  error?: string | undefined;
  coordinator?: string | undefined;
  /** Set while streaming and while purging (and kept afterwards). */
  pacing?: JobPacing | undefined;
}

export interface JobProgress {
  keysDone: number;
  keysTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** Keys per second since streaming started. */
  keysPerSec: number;
  etaSeconds: number | null;
  /** Records the sources have purged so far (values and tombstones; 0 before the purge). */
  keysPurged: number;
}

export function progress(job: Job, now = Date.now()): JobProgress {
  let keysDone = 0,
    keysTotal = 0,
    bytesDone = 0,
    bytesTotal = 0,
    keysPurged = 0;
  for (const s of job.streams) {
    keysPurged += s.keysPurged ?? 0;
    keysDone += s.keysDone;
    bytesDone += s.bytesDone;
    keysTotal += Math.max(s.keysTotal, s.keysDone);
    bytesTotal += Math.max(s.bytesTotal, s.bytesDone);
  }
  const secs = job.streamingStartedAt ? Math.max(0.001, ((job.finishedAt ?? now) - job.streamingStartedAt) / 1000) : 0;
  const keysPerSec = secs > 0 ? keysDone / secs : 0;
  const left = keysTotal - keysDone;
  return { keysDone, keysTotal, bytesDone, bytesTotal, keysPerSec, etaSeconds: keysPerSec > 0 ? left / keysPerSec : left === 0 ? 0 : null, keysPurged };
}

export function isActive(job: Job | null | undefined): job is Job {
  return !!job && !FINAL_STATES.has(job.state);
}
