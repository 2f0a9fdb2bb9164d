// The topology model: one record with an epoch that only ever moves forward
// by one per change. Pure: no I/O (the Redis side is topology-store.ts).
import { kvError } from './errors.js';
import { isValidShardId } from './config.js';
import { Ring, type RingMember } from './ring.js';

export const SHARD_STATES = {
  ACTIVE: 'active',
  JOINING: 'joining',
  LEAVING: 'leaving',
} as const;
export type ShardState = (typeof SHARD_STATES)[keyof typeof SHARD_STATES];

export interface TopologyShard {
  readonly id: string;
  /** host:port of the binary data port. */
  readonly dataAddr: string;
  /** host:port of the HTTP admin port. */
  readonly adminAddr: string;
  readonly weight: number;
  readonly state: ShardState;
}

/** Set while a rebalance moves arcs from the `prev` ring to the `next` ring. */
export interface Migration {
  readonly jobId: string;
  /** The epoch this migration started at: writes stamped with it or later are newer than any copy being moved. */
  readonly epoch: number;
  /**
   * 'freeze' first: neither owner takes writes for moving keys (routers hold
   * them) until every shard has seen the migration, so a router or shard
   * still on the old epoch cannot write behind the new owner's back. Then
   * 'move': the new owner takes them while the keys stream.
   */
  readonly phase: 'freeze' | 'move';
  readonly prev: readonly RingMember[];
  readonly next: readonly RingMember[];
}

export interface Topology {
  readonly epoch: number;
  readonly shards: readonly TopologyShard[];
  /** Absent (or undefined while a change drops it) outside a migration. */
  readonly migration?: Migration | undefined;
  readonly updatedAt: number;
}

/**
 * Where a forwarder gets its topology from: the router's Redis watcher, or a
 * direct-mode client's poll of the routers' `GET /v1/topology`. `current` is
 * the newest known record; 'change' fires for every newer epoch (never an
 * older one); refresh() fetches now (concurrent callers may share one fetch).
 */
export interface TopologySource {
  readonly current: Topology | undefined;
  on(event: 'change', listener: (t: Topology) => void): unknown;
  refresh(): Promise<Topology>;
}

export const EMPTY_TOPOLOGY: Topology = Object.freeze({ epoch: 0, shards: [], updatedAt: 0 });

const ADDR_RE = /^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$/;

export function validateTopology(t: unknown): Topology {
  const fail = (why: string): never => {
    throw kvError('KV_ERR_BAD_TOPOLOGY', why);
  };
  if (typeof t !== 'object' || t === null) fail('not an object');
  const o = t as Record<string, unknown>;
  if (!Number.isSafeInteger(o['epoch']) || (o['epoch'] as number) < 0) fail('epoch must be a whole number >= 0');
  if (!Array.isArray(o['shards'])) fail('shards must be an array');
  for (const s of o['shards'] as unknown[]) {
    const sh = s as Record<string, unknown>;
    if (typeof sh['id'] !== 'string' || !isValidShardId(sh['id'])) fail(`bad shard id ${JSON.stringify(sh['id'])}`);
    if (typeof sh['dataAddr'] !== 'string' || !ADDR_RE.test(sh['dataAddr'])) fail(`shard ${String(sh['id'])}: bad dataAddr`);
    if (typeof sh['adminAddr'] !== 'string' || !ADDR_RE.test(sh['adminAddr'])) fail(`shard ${String(sh['id'])}: bad adminAddr`);
    if (!Object.values(SHARD_STATES).includes(sh['state'] as ShardState)) fail(`shard ${String(sh['id'])}: bad state`);
  }
  // Throws on duplicate ids and on weights that give a shard no points.
  ringMembers(o as unknown as Topology);
  return o as unknown as Topology;
}

/** Members of the ring that owns keys at this epoch (outside a migration). */
export function ringMembers(t: Topology): RingMember[] {
  const members = t.shards.filter((s) => s.state !== SHARD_STATES.JOINING).map((s) => ({ id: s.id, weight: s.weight }));
  Ring.of(members); // validation only (cached)
  return members;
}

export function ringOf(t: Topology): Ring {
  return Ring.of(t.migration ? t.migration.next : ringMembers(t));
}

export function shardById(t: Topology, id: string): TopologyShard | undefined {
  return t.shards.find((s) => s.id === id);
}

/** The next topology: same content with epoch + 1. All changes go through this. */
export function nextEpoch(t: Topology, change: Partial<Omit<Topology, 'epoch'>>): Topology {
  const next: Topology = { ...t, ...change, epoch: t.epoch + 1, updatedAt: Date.now() };
  return validateTopology(next);
}

export function parseAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  let host = addr.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(addr.slice(i + 1)) };
}
