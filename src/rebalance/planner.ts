// Turn "add shard X" / "remove shard X" / "set X's weight" into a rebalance
// job: the member lists before and after, the topology shards during and
// after the move, and one stream per (source, target) with key and byte
// estimates counted on the sources.
import { randomUUID } from 'node:crypto';
import { kvError } from '../core/errors.js';
import { planMoves } from './moves.js';
import { Ring, type PointRange, type RingMember } from '../core/ring.js';
import { ringMembers, SHARD_STATES, type Topology, type TopologyShard } from '../core/topology.js';
import type { Registration } from '../infra/topology-store.js';
import { JOB_STATES, type Job, type JobKind, type StreamState } from './job.js';

export interface PlanRequest {
  kind: JobKind;
  shardId: string;
  weight?: number | undefined;
}

export interface PlanDeps {
  topology: Topology;
  registrations: readonly Registration[];
  /** Live keys and value bytes a source holds in these ranges. */
  count(source: string, ranges: PointRange[]): Promise<{ keys: number; bytes: number }>;
}

function validWeight(id: string, w: unknown): number {
  if (typeof w !== 'number' || !Number.isFinite(w) || w <= 0 || w > 1_000_000) {
    throw kvError('KV_ERR_BAD_WEIGHT', id, `must be a number above 0 and at most 1000000, got ${JSON.stringify(w)}`);
  }
  return w;
}

export async function planJob(req: PlanRequest, deps: PlanDeps): Promise<Job> {
  const t = deps.topology;
  if (t.migration) throw kvError('KV_ERR_REBALANCE_IN_PROGRESS', t.migration.jobId, 'move', 'migrating');
  const from: RingMember[] = ringMembers(t);
  const inRing = t.shards.find((s) => s.id === req.shardId);
  let to: RingMember[];
  let migrateShards: TopologyShard[];
  let finalShards: TopologyShard[];
  switch (req.kind) {
    case 'add': {
      const reg = deps.registrations.find((r) => r.id === req.shardId);
      if (inRing) throw kvError('KV_ERR_SHARD_IN_RING', req.shardId);
      if (!reg) throw kvError('KV_ERR_SHARD_NOT_REGISTERED', req.shardId, req.shardId);
      const weight = validWeight(req.shardId, req.weight ?? 1);
      to = [...from, { id: req.shardId, weight }];
      const shard: TopologyShard = { id: reg.id, dataAddr: reg.dataAddr, adminAddr: reg.adminAddr, weight, state: SHARD_STATES.JOINING };
      migrateShards = [...t.shards, shard];
      finalShards = [...t.shards, { ...shard, state: SHARD_STATES.ACTIVE }];
      break;
    }
    case 'remove': {
      if (!inRing) throw kvError('KV_ERR_SHARD_NOT_IN_RING', req.shardId);
      to = from.filter((m) => m.id !== req.shardId);
      if (to.length === 0) throw kvError('KV_ERR_LAST_SHARD', req.shardId);
      migrateShards = t.shards.map((s) => (s.id === req.shardId ? { ...s, state: SHARD_STATES.LEAVING } : s));
      finalShards = t.shards.filter((s) => s.id !== req.shardId);
      break;
    }
    case 'weight': {
      if (!inRing) throw kvError('KV_ERR_SHARD_NOT_IN_RING', req.shardId);
      const weight = validWeight(req.shardId, req.weight);
      to = from.map((m) => (m.id === req.shardId ? { ...m, weight } : m));
      migrateShards = t.shards.map((s) => (s.id === req.shardId ? { ...s, weight } : s));
      finalShards = migrateShards;
      break;
    }
  }
  new Ring(to); // refuses weights that leave a shard without ring points
  const moves = planMoves(from, to);
  const streams: StreamState[] = await Promise.all(
    moves.map(async (m) => {
      const est = await deps.count(m.source, [...m.ranges]).catch(() => ({ keys: 0, bytes: 0 }));
      return {
        source: m.source,
        target: m.target,
        ranges: [...m.ranges],
        keysTotal: est.keys,
        bytesTotal: est.bytes,
        keysDone: 0,
        bytesDone: 0,
        rangeIndex: 0,
        done: false,
      };
    }),
  );
  const now = Date.now();
  return {
    id: randomUUID(),
    kind: req.kind,
    shardId: req.shardId,
    state: JOB_STATES.PLANNED,
    direction: 'forward',
    from,
    to,
    migrateShards,
    finalShards,
    originalShards: [...t.shards],
    streams,
    createdAt: now,
    updatedAt: now,
  };
}

/** A short, human-readable view of a plan (CLI and dry runs). */
export function describePlan(job: Job): Record<string, unknown> {
  const shares = (ms: RingMember[]) => Object.fromEntries(Object.entries(new Ring(ms).shares()).map(([k, v]) => [k, Math.round(v * 10_000) / 10_000]));
  return {
    kind: job.kind,
    shard: job.shardId,
    sharesBefore: shares(job.from),
    sharesAfter: shares(job.to),
    streams: job.streams.map((s) => ({ source: s.source, target: s.target, arcs: s.ranges.length, keys: s.keysTotal, bytes: s.bytesTotal })),
    keysToMove: job.streams.reduce((n, s) => n + s.keysTotal, 0),
    bytesToMove: job.streams.reduce((n, s) => n + s.bytesTotal, 0),
  };
}
