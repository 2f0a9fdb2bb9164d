// The public view of a rebalance job (the admin API, its events, the CLI).
import type { Job } from '../../rebalance/job.js';

export function jobSummary(job: Job): Record<string, unknown> {
  return {
    id: job.id,
    kind: job.kind,
    shardId: job.shardId,
    state: job.state,
    direction: job.direction,
    createdAt: job.createdAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    error: job.error,
    migrateEpoch: job.migrateEpoch,
    commitEpoch: job.commitEpoch,
    coordinator: job.coordinator,
    pacing: job.pacing,
    streams: job.streams.map((s) => ({
      source: s.source,
      target: s.target,
      keysDone: s.keysDone,
      keysTotal: Math.max(s.keysTotal, s.keysDone),
      bytesDone: s.bytesDone,
      bytesTotal: Math.max(s.bytesTotal, s.bytesDone),
      done: s.done,
      keysPurged: s.keysPurged ?? 0,
      purged: s.purged ?? false,
      lastError: s.lastError,
      startedAt: s.startedAt,
      finishedAt: s.finishedAt,
    })),
  };
}
