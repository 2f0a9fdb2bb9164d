// Topology and shard registry in Redis. The topology record changes only
// through a compare-and-set (Lua) that bumps the epoch by exactly one and
// publishes the new record. Watchers apply a published record at once (no
// read back); pub/sub is still only a hint: they also re-read on reconnect
// and poll.
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { kvError } from './errors.js';
import { keys } from './redis.js';
import { EMPTY_TOPOLOGY, nextEpoch, validateTopology, type Topology } from './topology.js';

// KEYS[1] topology, KEYS[2] channel; ARGV[1] expected epoch, ARGV[2] new record.
// Refuses unless the stored epoch equals the expected one and the new record's
// epoch is exactly one more: epochs never go backwards or skip.
const CAS_LUA = `
local cur = redis.call('GET', KEYS[1])
local curEpoch = 0
if cur then curEpoch = tonumber(cjson.decode(cur)['epoch']) end
if curEpoch ~= tonumber(ARGV[1]) then return {0, curEpoch} end
local nextEpoch = tonumber(cjson.decode(ARGV[2])['epoch'])
if nextEpoch ~= curEpoch + 1 then return {-1, curEpoch} end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return {1, nextEpoch}
`;

export interface Registration {
  readonly id: string;
  readonly dataAddr: string;
  readonly adminAddr: string;
  readonly pid: number;
  readonly startedAt: number;
}

export class TopologyStore {
  readonly #redis: Redis;
  readonly #k: ReturnType<typeof keys>;
  #lastRaw: string | undefined;
  #last: Topology | undefined;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
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
    const res = (await this.#redis.eval(CAS_LUA, 2, this.#k.topology, this.#k.topologyChannel,
      String(expectedEpoch), JSON.stringify(next))) as [number, number];
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
    return vals.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as Registration)
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }
}

/**
 * Keeps the newest topology in memory: a pub/sub hint, a re-read whenever the
 * subscriber reconnects, and a poll. Emits 'change' (topology) on every new
 * epoch and never moves backwards.
 */
export class TopologyWatcher extends EventEmitter {
  readonly #store: TopologyStore;
  readonly #sub: Redis;
  readonly #pollMs: number;
  #current: Topology | undefined;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<Topology> | undefined;
  #closed = false;
  lastError: Error | undefined;

  constructor(store: TopologyStore, subscriber: Redis, pollMs: number) {
    super();
    this.#store = store;
    this.#sub = subscriber;
    this.#pollMs = pollMs;
  }

  get current(): Topology | undefined {
    return this.#current;
  }

  async start(): Promise<Topology> {
    this.#sub.on('message', (channel: string, message: string) => {
      if (channel !== this.#store.channel) return;
      let t: Topology | undefined;
      try {
        t = this.#store.fromMessage(message);
      } catch {
        t = undefined; // not a valid record: read what Redis holds
      }
      if (t) this.#apply(t);
      else this.refresh().catch(() => {});
    });
    this.#sub.on('ready', () => { this.refresh().catch(() => {}); });
    await this.#sub.subscribe(this.#store.channel);
    const t = await this.refresh();
    const poll = () => {
      if (this.#closed) return;
      this.refresh().catch(() => {}).finally(() => {
        if (!this.#closed) this.#timer = setTimeout(poll, this.#pollMs).unref();
      });
    };
    this.#timer = setTimeout(poll, this.#pollMs).unref();
    return t;
  }

  /** Re-read from Redis; concurrent callers share one read. */
  refresh(): Promise<Topology> {
    if (this.#refreshing) return this.#refreshing;
    this.#refreshing = this.#store.get().then((t) => {
      this.lastError = undefined;
      this.#apply(t);
      return this.#current!;
    }, (err: Error) => {
      this.lastError = err;
      throw err;
    }).finally(() => { this.#refreshing = undefined; });
    return this.#refreshing;
  }

  #apply(t: Topology): void {
    if (this.#current && t.epoch <= this.#current.epoch) return;
    this.#current = t;
    this.emit('change', t);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#sub.disconnect();
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
    await new Promise((r) => setTimeout(r, 100));
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
