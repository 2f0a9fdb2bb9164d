// Topology and shard registry in Redis. The topology record changes only
// through a compare-and-set (lua/topology-cas-2.lua) that bumps the epoch by
// exactly one and publishes the new record; topology-watcher.ts follows it.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { kvError } from '../core/errors.js';
import { keys } from './redis.js';
import { scripts, type Scripts } from './scripts.js';
import { EMPTY_TOPOLOGY, nextEpoch, validateTopology, type Topology } from '../core/topology.js';

/** How often initTopology looks again for shards that have not registered yet. */
const REGISTRATION_POLL_MS = 100;

export interface Registration {
  readonly id: string;
  readonly dataAddr: string;
  readonly adminAddr: string;
  readonly pid: number;
  readonly startedAt: number;
  /** When the shard wrote this entry (ms since the epoch): every heartbeat rewrites it. Absent from shards of older versions. */
  readonly heartbeatAt?: number;
}

export class TopologyStore {
  readonly #redis: Redis;
  readonly #scripts: Scripts;
  readonly #k: ReturnType<typeof keys>;
  #lastRaw: string | undefined;
  #last: Topology | undefined;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#scripts = scripts(redis);
    this.#k = keys(prefix);
  }

  get channel(): string {
    return this.#k.topologyChannel;
  }

  async get(): Promise<Topology> {
    const raw = await this.#redis.get(this.#k.topology);
    if (raw === null) return EMPTY_TOPOLOGY;
    return this.#validated(raw, JSON.parse(raw));
  }

  /** Every watcher polls and hears every change; validate only records not seen last. */
  #validated(raw: string, doc: unknown): Topology {
    if (raw === this.#lastRaw && this.#last) return this.#last;
    const t = validateTopology(doc);
    this.#lastRaw = raw;
    this.#last = t;
    return t;
  }

  /**
   * The topology a pub/sub message carries (the record the compare-and-set
   * wrote), validated; undefined when the message is not a record (an older
   * publisher sent only the epoch), so the caller re-reads instead.
   */
  fromMessage(raw: string): Topology | undefined {
    let doc: unknown;
    try {
      doc = JSON.parse(raw);
    } catch {
      return undefined;
    }
    if (typeof doc !== 'object' || doc === null) return undefined;
    return this.#validated(raw, doc);
  }

  /** One compare-and-set attempt. Returns false when the epoch moved under us. */
  async compareAndSet(expectedEpoch: number, next: Topology): Promise<boolean> {
    if (next.epoch !== expectedEpoch + 1) throw kvError('KV_ERR_BAD_TOPOLOGY', `new epoch must be ${expectedEpoch + 1}`);
    const res = await this.#scripts.topologyCas(this.#k.topology, this.#k.topologyChannel, expectedEpoch, JSON.stringify(next));
    if (res[0] === -1) throw kvError('KV_ERR_BAD_TOPOLOGY', `epoch must advance by one from ${res[1]}`);
    return res[0] === 1;
  }

  /**
   * Read-modify-write with retries. `change` returns the next topology (built
   * with nextEpoch) or null to leave it as it is.
   */
  async update(change: (cur: Topology) => Topology | null, maxAttempts = 20): Promise<Topology> {
    for (let i = 0; i < maxAttempts; i++) {
      const cur = await this.get();
      const next = change(cur);
      if (next === null) return cur;
      if (await this.compareAndSet(cur.epoch, next)) return next;
    }
    throw kvError('KV_ERR_TOPOLOGY_CHANGING', maxAttempts);
  }

  async register(reg: Registration, ttlMs: number): Promise<void> {
    await this.#redis.set(this.#k.shard(reg.id), JSON.stringify(reg), 'PX', ttlMs);
  }

  async deregister(id: string): Promise<void> {
    await this.#redis.del(this.#k.shard(id));
  }

  /**
   * How long each shard's registry entry has left (ms) before it expires: a
   * live shard refreshes it every heartbeat, a stopped one counts down to
   * nothing. Absent ids have no entry.
   */
  async heartbeatTtls(ids: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (ids.length === 0) return out;
    const p = this.#redis.pipeline();
    for (const id of ids) p.pttl(this.#k.shard(id));
    const res = (await p.exec()) ?? [];
    ids.forEach((id, i) => {
      const [err, ms] = res[i] ?? [null, -2];
      if (!err && typeof ms === 'number' && ms >= 0) out.set(id, ms);
    });
    return out;
  }

  async registrations(): Promise<Registration[]> {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await this.#redis.scan(cursor, 'MATCH', this.#k.shardPattern, 'COUNT', 200);
      cursor = next;
      found.push(...batch);
    } while (cursor !== '0');
    if (found.length === 0) return [];
    const vals = await this.#redis.mget(...found);
    return vals
      .filter((v): v is string => v !== null)
      .map((v) => JSON.parse(v) as Registration)
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }
}

/**
 * Bootstrap an empty ring from registered shards (first start of a cluster).
 * When the ring already has members this changes nothing and returns it:
 * changing a ring that holds data goes through rebalancing instead, and a
 * repeated init (a restarted deployment) must not fail.
 */
export async function initTopology(store: TopologyStore, ids: readonly string[], opts: { waitMs?: number; weight?: number } = {}): Promise<Topology> {
  const existing = await store.get();
  if (existing.shards.length > 0) return existing;
  const deadline = Date.now() + (opts.waitMs ?? 0);
  let regs: Registration[] = [];
  for (;;) {
    regs = await store.registrations();
    const missing = ids.filter((id) => !regs.some((r) => r.id === id));
    if (missing.length === 0) break;
    if (Date.now() >= deadline) throw kvError('KV_ERR_BAD_TOPOLOGY', `shards not registered: ${missing.join(', ')} (start them first)`);
    await sleep(REGISTRATION_POLL_MS);
  }
  return store.update((cur) => {
    if (cur.shards.length > 0) return null;
    const shards = ids.map((id) => {
      const r = regs.find((x) => x.id === id)!;
      return { id, dataAddr: r.dataAddr, adminAddr: r.adminAddr, weight: opts.weight ?? 1, state: 'active' as const };
    });
    return nextEpoch(cur, { shards });
  });
}
