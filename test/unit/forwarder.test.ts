// The router's forwarder against scripted fake shards: where each request
// goes, which refusals it retries and how often, what it holds during the
// freeze phase of a migration, how it merges the two owners' records of a
// moving key, and when it pulls a key ahead of the stream. Every assertion
// is on what the fake shards received and what exec() answered.
import { EventEmitter } from 'node:events';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Forwarder, type ForwarderOptions, type KeyedBody } from '../../src/router/forwarder.js';
import type { TopologyWatcher } from '../../src/infra/topology-watcher.js';
import { Ring, type RingMember } from '../../src/core/ring.js';
import type { Migration, Topology } from '../../src/core/topology.js';
import type { GetResult, Request, StoredValue } from '../../src/core/protocol.js';
import { KvError } from '../../src/core/errors.js';
import { waitUntil } from '../../src/local/wait.js';
import { TEST_CLUSTER_SECRET, FakeShard, type FakeAnswer } from '../helpers/fake-shard.js';

const IDS = ['a', 'b', 'c'] as const;
type Id = (typeof IDS)[number];
const members = (...ids: Id[]): RingMember[] => ids.map((id) => ({ id, weight: 1 }));
const AB = members('a', 'b');
const ABC = members('a', 'b', 'c');

const fakes = {} as Record<Id, FakeShard>;

/** The parts of a TopologyWatcher the forwarder uses, with "Redis" as a field. */
class FakeWatcher extends EventEmitter {
  current: Topology | undefined;
  /** What Redis holds: refresh() applies it when it is newer. */
  stored: Topology;
  refreshes = 0;

  constructor(t: Topology) {
    super();
    this.current = t;
    this.stored = t;
  }

  /** A change written and published: every watcher applies it at once. */
  publish(t: Topology): void {
    this.stored = t;
    this.current = t;
    this.emit('change', t);
  }

  async refresh(): Promise<Topology> {
    this.refreshes++;
    if (!this.current || this.stored.epoch > this.current.epoch) {
      this.current = this.stored;
      this.emit('change', this.stored);
    }
    return this.current;
  }
}

function topology(epoch: number, ring: RingMember[], migration?: Omit<Migration, 'jobId'>): Topology {
  const ids = new Set([...ring, ...(migration?.prev ?? []), ...(migration?.next ?? [])].map((m) => m.id as Id));
  return {
    epoch,
    shards: [...ids].map((id) => ({ id, dataAddr: fakes[id].addr, adminAddr: fakes[id].addr, weight: 1, state: 'active' as const })),
    ...(migration ? { migration: { jobId: 'job-1', ...migration } } : {}),
    updatedAt: 0,
  };
}

const OPTS: ForwarderOptions = {
  requestTimeoutMs: 2000,
  connectTimeoutMs: 500,
  maxInFlightPerShard: 1000,
  maxFrameBytes: 1 << 20,
  maxRetries: 3,
  epochRetryDelayMs: 0,
  clusterSecret: TEST_CLUSTER_SECRET,
  dataTls: false,
  tlsCaFile: '',
  dataPingIntervalMs: 0,
};

let forwarders: Forwarder[] = [];
function forwarder(w: FakeWatcher, o: Partial<ForwarderOptions> = {}): Forwarder {
  const f = new Forwarder(w as unknown as TopologyWatcher, { ...OPTS, ...o });
  forwarders.push(f);
  return f;
}

/** The first of key-0, key-1, … that `pred` accepts. */
function keyWhere(pred: (k: string) => boolean): string {
  for (let i = 0; i < 10_000; i++) if (pred(`key-${i}`)) return `key-${i}`;
  throw new Error('no such key');
}

/** A key whose owner moves from `from` (in `prev`) to `to` (in `next`). */
function movingKey(prev: RingMember[], next: RingMember[], to: Id): { key: string; from: Id } {
  const a = Ring.of(prev);
  const b = Ring.of(next);
  const key = keyWhere((k) => b.ownerOf(k) === to && a.ownerOf(k) !== to);
  return { key, from: a.ownerOf(key) as Id };
}

/** Script every fake by op: a function per shard id, or the default answers. */
function script(by: Partial<Record<Id, (req: Request) => FakeAnswer | Promise<FakeAnswer> | undefined>>): void {
  for (const id of IDS) fakes[id].answer = by[id];
}

const value = (text: string, ver: number, e: number): StoredValue => ({ v: Buffer.from(text), ct: 'text/plain', ver, x: 0, e });
const tombstone = (ver: number, e: number): GetResult => ({ deleted: true, ver, e });
const text = (v: StoredValue | null) => (v === null ? null : Buffer.from(v.v).toString());
const put = (k: string, extra: { m?: number | '*'; n?: boolean } = {}) => ({ o: 'put' as const, k, v: Buffer.from('new'), ct: 'text/plain', x: 0, ...extra });

async function rejection(p: Promise<unknown>): Promise<KvError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KvError);
    return err as KvError;
  }
  throw new Error('expected a KvError, the request succeeded');
}

beforeAll(async () => {
  for (const id of IDS) {
    fakes[id] = new FakeShard(id);
    await fakes[id].listen();
  }
});
afterAll(async () => {
  await Promise.all(IDS.map((id) => fakes[id].close()));
});
beforeEach(() => {
  for (const id of IDS) {
    fakes[id].received.length = 0;
    fakes[id].answer = undefined;
    fakes[id].mode = { kind: 'ok' };
  }
});
afterEach(() => {
  for (const f of forwarders) f.close();
  forwarders = [];
});

describe('routing', () => {
  it('sends each request to the ring owner of its key, stamped with the epoch', async () => {
    const t = topology(4, ABC);
    const f = forwarder(new FakeWatcher(t));
    const ring = Ring.of(ABC);
    const keys = Array.from({ length: 60 }, (_, i) => `route-${i}`);
    await Promise.all(keys.map((k) => f.exec({ o: 'get', k })));
    await f.exec(put('route-put'));
    for (const id of IDS) {
      expect(
        fakes[id]
          .requests('get')
          .map((r) => (r as { k: string }).k)
          .sort(),
      ).toEqual(keys.filter((k) => ring.ownerOf(k) === id).sort());
      expect(fakes[id].received.every((r) => r.e === 4)).toBe(true);
    }
    const [p] = fakes[ring.ownerOf('route-put') as Id].requests('put');
    expect(p).toMatchObject({ o: 'put', k: 'route-put', ct: 'text/plain', x: 0, e: 4 });
    expect(IDS.filter((id) => fakes[id].requests('put').length > 0)).toEqual([ring.ownerOf('route-put')]);
  });

  it('answers KV_ERR_NO_SHARDS for an empty ring and sends nothing', async () => {
    const f = forwarder(new FakeWatcher(topology(1, [])));
    expect((await rejection(f.exec({ o: 'get', k: 'x' }))).code).toBe('KV_ERR_NO_SHARDS');
  });
});

describe('STALE_EPOCH and NOT_OWNER', () => {
  it('re-reads the topology and retries at the new owner with the new epoch', async () => {
    const before = topology(1, ABC);
    const after = topology(2, AB); // c left the ring
    const w = new FakeWatcher(before);
    const f = forwarder(w);
    const key = keyWhere((k) => Ring.of(ABC).ownerOf(k) === 'c');
    const newOwner = Ring.of(AB).ownerOf(key) as Id;
    // Redis already has epoch 2; this router has not heard of it.
    w.stored = after;
    script({ c: () => ({ err: { code: 'KV_ERR_NOT_OWNER', message: 'not mine', epoch: 2 } }) });
    expect(await f.exec(put(key))).toEqual({ ver: 1, deleted: true });
    expect(fakes.c.requests('put').map((r) => r.e)).toEqual([1]);
    expect(fakes[newOwner].requests('put').map((r) => r.e)).toEqual([2]);
    expect(w.refreshes).toBe(1);
    expect(f.counters.retries).toBe(1);
  });

  for (const code of ['KV_ERR_STALE_EPOCH', 'KV_ERR_NOT_OWNER'] as const) {
    it(`${code} on every try: maxRetries retries, then 503 KV_ERR_TOPOLOGY_CHANGING`, async () => {
      const w = new FakeWatcher(topology(3, AB));
      const f = forwarder(w, { maxRetries: 2 });
      const key = keyWhere((k) => Ring.of(AB).ownerOf(k) === 'a');
      script({ a: () => ({ err: { code, message: 'no', epoch: 3 } }) });
      const err = await rejection(f.exec(put(key)));
      expect(err.code).toBe('KV_ERR_TOPOLOGY_CHANGING');
      expect(err.statusCode).toBe(503);
      // One try plus two retries, each after a re-read of the topology.
      expect(fakes.a.requests('put')).toHaveLength(3);
      expect(w.refreshes).toBe(3);
      expect(fakes.b.received).toEqual([]);
    });
  }

  it('pauses epochRetryDelayMs before retrying when the shard is ahead of Redis, and only then', async () => {
    const DELAY_MS = 300;
    const w = new FakeWatcher(topology(1, AB));
    const f = forwarder(w, { epochRetryDelayMs: DELAY_MS });
    const key = keyWhere((k) => Ring.of(AB).ownerOf(k) === 'a');
    const seenAt: number[] = [];
    // The shard already runs epoch 2, which Redis readers do not show yet.
    script({
      a: () => {
        seenAt.push(performance.now());
        return seenAt.length === 1 ? { err: { code: 'KV_ERR_STALE_EPOCH', message: 'behind', epoch: 2 } } : { r: { ver: 9 } };
      },
    });
    expect(await f.exec(put(key))).toEqual({ ver: 9 });
    expect(seenAt[1]! - seenAt[0]!).toBeGreaterThanOrEqual(DELAY_MS - 1);
    // Once Redis shows the shard's epoch, the retry goes at once.
    seenAt.length = 0;
    w.stored = topology(2, AB);
    expect(await f.exec(put(key))).toEqual({ ver: 9 });
    expect(seenAt[1]! - seenAt[0]!).toBeLessThan(DELAY_MS);
    expect(fakes.a.requests('put').map((r) => r.e)).toEqual([1, 1, 1, 2]);
  });
});

describe('lost connections', () => {
  it('retries a read whose connection was lost once, and only once', async () => {
    const f = forwarder(new FakeWatcher(topology(1, AB)));
    const key = keyWhere((k) => Ring.of(AB).ownerOf(k) === 'a');
    let n = 0;
    script({ a: () => (++n === 1 ? { hangup: true } : { r: value('v', 3, 1) }) });
    expect(text(await f.exec({ o: 'get', k: key }))).toBe('v');
    expect(fakes.a.requests('get')).toHaveLength(2);
    expect(f.counters.retries).toBe(0);

    fakes.a.received.length = 0;
    script({ a: () => ({ hangup: true }) });
    expect((await rejection(f.exec({ o: 'get', k: key }))).code).toBe('KV_ERR_OUTCOME_UNKNOWN');
    expect(fakes.a.requests('get')).toHaveLength(2);
  });

  it('never retries a write whose connection was lost: its outcome is unknown', async () => {
    const f = forwarder(new FakeWatcher(topology(1, AB)));
    const key = keyWhere((k) => Ring.of(AB).ownerOf(k) === 'b');
    script({ b: () => ({ hangup: true }) });
    const err = await rejection(f.exec(put(key)));
    expect(err.code).toBe('KV_ERR_OUTCOME_UNKNOWN');
    expect(err.statusCode).toBe(502);
    expect(fakes.b.requests('put')).toHaveLength(1);
  });
});

describe('freeze phase of a migration', () => {
  const freeze = (epoch: number) => topology(epoch, ABC, { epoch, phase: 'freeze', prev: AB, next: ABC });
  const move = (epoch: number, migrationEpoch: number) => topology(epoch, ABC, { epoch: migrationEpoch, phase: 'move', prev: AB, next: ABC });

  it('holds a write to a moving key until the move opens, then sends it to the new owner', async () => {
    const w = new FakeWatcher(freeze(5));
    const f = forwarder(w);
    const { key, from } = movingKey(AB, ABC, 'c');
    const stays = keyWhere((k) => Ring.of(AB).ownerOf(k) === 'a' && Ring.of(ABC).ownerOf(k) === 'a');
    let settled = false;
    const held = f.exec(put(key)).finally(() => {
      settled = true;
    });
    // While it waits, the forwarder re-reads the topology in case a message is late.
    await waitUntil(() => w.refreshes >= 3, { timeoutMs: 5000, what: 'the waiting write polling the topology' });
    expect(settled).toBe(false);
    // Writes of keys that do not move, and reads of moving keys, are not held.
    await f.exec(put(stays));
    await f.exec({ o: 'get', k: key });
    expect(fakes.a.requests('put').map((r) => (r as { k: string }).k)).toEqual([stays]);
    expect(fakes.c.requests('put')).toEqual([]);
    expect(fakes[from].requests('put').filter((r) => (r as { k: string }).k === key)).toEqual([]);
    expect(fakes.c.requests('get', key)).toHaveLength(1);
    expect(fakes[from].requests('get', key)).toHaveLength(1);
    w.publish(move(6, 5));
    await held;
    expect(fakes.c.requests('put', key).map((r) => r.e)).toEqual([6]);
    expect(f.counters.retries).toBe(0);
  });

  it('answers 503 KV_ERR_MIGRATION_FREEZE when the freeze outlasts the request timeout, having sent nothing', async () => {
    const TIMEOUT_MS = 300;
    const w = new FakeWatcher(freeze(5));
    const f = forwarder(w, { requestTimeoutMs: TIMEOUT_MS });
    const { key } = movingKey(AB, ABC, 'c');
    const t0 = performance.now();
    const err = await rejection(f.exec(put(key)));
    expect(err.code).toBe('KV_ERR_MIGRATION_FREEZE');
    expect(err.statusCode).toBe(503);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(TIMEOUT_MS - 1);
    for (const id of IDS) expect(fakes[id].received).toEqual([]);
  });
});

describe('reads during a migration', () => {
  const M_EPOCH = 6;
  const during = () => topology(7, ABC, { epoch: M_EPOCH, phase: 'move', prev: AB, next: ABC });

  /** Read a moving key whose new owner (c) and old owner answer with these records. */
  async function dualRead(atNew: GetResult, atOld: GetResult): Promise<{ got: StoredValue | null; f: Forwarder; from: Id }> {
    for (const id of IDS) fakes[id].received.length = 0;
    const f = forwarder(new FakeWatcher(during()));
    const { key, from } = movingKey(AB, ABC, 'c');
    script({ c: () => ({ r: atNew }), [from]: () => ({ r: atOld }) });
    const got = await f.exec({ o: 'get', k: key });
    // Both owners were asked, at the current epoch.
    expect(fakes.c.requests('get', key).map((r) => r.e)).toEqual([7]);
    expect(fakes[from].requests('get', key).map((r) => r.e)).toEqual([7]);
    return { got, f, from };
  }

  it('falls back to the old owner for a key not streamed yet', async () => {
    const { got, f } = await dualRead(null, value('old', 20, 5));
    expect(text(got)).toBe('old');
    expect(f.counters.fallbackReads).toBe(1);
  });

  it('keeps the newer of both records by (write epoch, version)', async () => {
    expect(text((await dualRead(value('new', 10, 5), value('old', 20, 5))).got)).toBe('old');
    expect(text((await dualRead(value('new', 30, 5), value('old', 20, 4))).got)).toBe('new');
    expect(text((await dualRead(value('new', 1, 5), value('old', 99, 4))).got)).toBe('new');
  });

  it('counts tombstones like values: a newer delete on either side wins', async () => {
    expect((await dualRead(tombstone(30, 5), value('old', 20, 5))).got).toBeNull();
    // Cancelling a move: the old owner's delete is the newer record.
    expect((await dualRead(value('new', 1, 5), tombstone(9, 5))).got).toBeNull();
    expect(text((await dualRead(tombstone(5, 5), value('old', 20, 5))).got)).toBe('old');
  });

  it('trusts the new owner for a record written since the migration began', async () => {
    const { got, f } = await dualRead(value('new', 1, M_EPOCH), value('old', 99, 5));
    expect(text(got)).toBe('new');
    expect(f.counters.fallbackReads).toBe(0);
  });

  it('asks only the owner of a key that does not move', async () => {
    const f = forwarder(new FakeWatcher(during()));
    const key = keyWhere((k) => Ring.of(AB).ownerOf(k) === 'b' && Ring.of(ABC).ownerOf(k) === 'b');
    await f.exec({ o: 'get', k: key });
    expect(fakes.b.requests('get', key)).toHaveLength(1);
    expect(fakes.a.received).toEqual([]);
    expect(fakes.c.received).toEqual([]);
  });
});

describe('pull-ahead of conditional writes and deletes during a migration', () => {
  const M_EPOCH = 6;
  const during = () => topology(7, ABC, { epoch: M_EPOCH, phase: 'move', prev: AB, next: ABC });
  const PACKED = Buffer.from([1, 2, 3, 4]);

  function setUp(fetched: Buffer | null) {
    const f = forwarder(new FakeWatcher(during()));
    const { key, from } = movingKey(AB, ABC, 'c');
    script({
      [from]: (r: Request) => (r.o === 'fetch' ? { r: fetched } : undefined),
      c: (r: Request) => (r.o === 'import' ? { r: { written: 1, received: 1 } } : r.o === 'put' ? { r: { ver: 77 } } : undefined),
    });
    return { f, key, from };
  }

  const cases: Array<[string, (k: string) => KeyedBody]> = [
    ['If-Match', (k) => put(k, { m: 12 })],
    ['If-None-Match', (k) => put(k, { n: true })],
    ['DELETE', (k) => ({ o: 'del', k })],
  ];
  for (const [name, req] of cases) {
    it(`${name}: FETCH from the old owner, IMPORT on the new one, then the write`, async () => {
      const { f, key, from } = setUp(PACKED);
      await f.exec(req(key) as never);
      expect(fakes[from].requests('fetch').map((r) => ({ k: (r as { k: string }).k, e: r.e }))).toEqual([{ k: key, e: 7 }]);
      const atNew = fakes.c.received.map((r) => r.o);
      expect(atNew).toEqual(['import', req(key).o]);
      const imp = fakes.c.requests('import')[0] as Request & { me: number; packed: Uint8Array };
      expect(imp.me).toBe(M_EPOCH);
      expect(Buffer.from(imp.packed).equals(PACKED)).toBe(true);
      expect(f.counters.pulledAhead).toBe(1);
      // The old owner takes no write for the key.
      expect(fakes[from].received.map((r) => r.o)).toEqual(['fetch']);
    });
  }

  it('imports nothing when the old owner has no record of the key', async () => {
    const { f, key, from } = setUp(null);
    await f.exec(put(key, { m: '*' }));
    expect(fakes[from].requests('fetch')).toHaveLength(1);
    expect(fakes.c.received.map((r) => r.o)).toEqual(['put']);
    expect(f.counters.pulledAhead).toBe(0);
  });

  it('pulls nothing ahead for an unconditional put or a key that does not move', async () => {
    const { f, key, from } = setUp(PACKED);
    expect(await f.exec(put(key))).toEqual({ ver: 77 });
    const stays = keyWhere((k) => Ring.of(AB).ownerOf(k) === 'a' && Ring.of(ABC).ownerOf(k) === 'a');
    await f.exec({ o: 'del', k: stays });
    expect(fakes[from].requests('fetch')).toEqual([]);
    expect(fakes.c.received.map((r) => r.o)).toEqual(['put']);
    expect(fakes.a.requests('del', stays)).toHaveLength(1);
    expect(f.counters.pulledAhead).toBe(0);
  });
});
