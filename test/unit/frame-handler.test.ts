// The shard's frame handler with a real LMDB store and a hand-built view of
// the ring: which op runs how, which requests it refuses (epoch, ownership,
// freeze), that a frame's writes share one transaction and frames arriving
// during a commit share the next, positional requests as they come off the
// wire, and the checks of the rebalancing ops.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FrameHandler, type OwnershipView } from '../../src/shard/frame-handler.js';
import { Store } from '../../src/shard/store.js';
import { MovedWriter, encodeRecord, readMoved, recordKey } from '../../src/shard/record.js';
import { LIMIT_DEFAULTS } from '../../src/core/config.js';
import { POINT_MAX, Ring, keyPoint, type PointRange, type RingMember } from '../../src/core/ring.js';
import { Packr } from 'msgpackr';
import { FRAME_HEADER_BYTES, FrameDecoder, TAGS, type Request, type Response } from '../../src/core/protocol.js';
import { waitUntil } from '../../src/local/wait.js';

const members = (...ids: string[]): RingMember[] => ids.map((id) => ({ id, weight: 1 }));
const AB = Ring.of(members('a', 'b'));
const ABC = Ring.of(members('a', 'b', 'c'));

let dir: string;
let store: Store;
let view: OwnershipView;
/** What a refresh() finds (undefined: nothing newer). */
let newer: OwnershipView | undefined;
let refreshes: number;
let retired: number;

function handler(shardId = 'a'): FrameHandler {
  return new FrameHandler({
    shardId,
    store,
    limits: LIMIT_DEFAULTS,
    view: () => view,
    refresh: async () => {
      refreshes++;
      if (newer) view = newer;
    },
    retire: () => {
      retired++;
    },
  });
}

/** The first of key-0, key-1, … that `pred` accepts. */
function keyWhere(pred: (k: string) => boolean, skip = 0): string {
  for (let i = 0, found = 0; i < 10_000; i++) if (pred(`key-${i}`) && found++ === skip) return `key-${i}`;
  throw new Error('no such key');
}
const ownedBy = (ring: Ring, id: string, skip = 0) => keyWhere((k) => ring.ownerOf(k) === id, skip);
/** The first `n` keys `id` owns in `ring`. */
function keysOwnedBy(ring: Ring, id: string, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (ring.ownerOf(`key-${i}`) === id) out.push(`key-${i}`);
  return out;
}

type Req = Record<string, unknown> & { o: string };
/** Send one frame; the answers come back in request order. */
async function frame(h: FrameHandler, ...reqs: Req[]): Promise<Response[]> {
  const withIds = reqs.map((r, n) => ({ i: n + 1, e: view.epoch, ...r }));
  const out = await h.handle(withIds as unknown as Request[]);
  expect(out).toHaveLength(reqs.length);
  return withIds.map((r) => out.find((x) => x.i === r.i)!);
}
const ok = (res: Response) => {
  if ('err' in res) throw new Error(`expected an answer, got ${res.err.code}: ${res.err.message}`);
  return res.r as Record<string, unknown> | null;
};
const code = (res: Response) => ('err' in res ? res.err.code : 'ok');

const bytes = (s: string) => Buffer.from(s);
const putReq = (k: string, v = 'v', extra: Record<string, unknown> = {}): Req => ({ o: 'put', k, v: bytes(v), ct: 'text/plain', x: 0, ...extra });

/** Write straight into the store, bypassing every ownership check. */
const seed = (k: string, v: string, epoch = 1) =>
  store.transaction(() => store.putInTxn(k, { value: bytes(v), contentType: 'text/plain', expiresAt: 0, epoch }));

/** A moved-records blob of these keys, as a source shard would pack them. */
function movedBlob(keys: string[], epoch = 1): Buffer {
  const w = new MovedWriter();
  for (const k of keys) w.add(recordKey(keyPoint(k), k), encodeRecord({ v: bytes(`moved ${k}`), ct: 'text/plain', ver: 100, x: 0, e: epoch }));
  return w.finish();
}

/** An arc of `ring` owned entirely by `id`: (previous point, its point]. */
function arcOf(ring: Ring, id: string): PointRange {
  const pts = ring.points();
  for (let i = 1; i < pts.length; i++) if (pts[i]!.id === id && pts[i - 1]!.point + 1 <= pts[i]!.point) return { lo: pts[i - 1]!.point + 1, hi: pts[i]!.point };
  throw new Error(`no arc of ${id}`);
}
const inRange = (k: string, r: PointRange) => keyPoint(k) >= r.lo && keyPoint(k) <= r.hi;

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'shardkv-handler-'));
  store = new Store({ path: dir, mapSizeBytes: 64 * 1024 * 1024, noSync: true, tombstoneGraceMs: 60_000 });
  view = { epoch: 3, ring: AB };
  newer = undefined;
  refreshes = 0;
  retired = 0;
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('reads of 16 KiB values', () => {
  it('answers every GET of a frame with its own value, though LMDB hands out one reused view', async () => {
    const h = handler();
    const keys = keysOwnedBy(AB, 'a', 40);
    const value = (n: number) => Buffer.alloc(16_384 + n, n);
    // Bytes below 0x80: the same as text.
    for (const [n, k] of keys.entries()) await seed(k, value(n).toString('latin1'));
    const reqs = keys.map((k, n) => ({ i: n + 1, e: view.epoch, o: 'get', k }));
    const out = await h.handle(reqs as unknown as Request[]);
    expect(out).toHaveLength(keys.length);
    for (const res of out) {
      const v = Buffer.from(ok(res)!['v'] as Uint8Array);
      expect(v.equals(value(res.i - 1)), `value of request ${res.i}`).toBe(true);
    }
  });
});

describe('dispatch', () => {
  it('runs each keyed op and ping against the store, stamping writes with the epoch', async () => {
    const h = handler();
    const k = ownedBy(AB, 'a');
    expect(ok((await frame(h, { o: 'ping' }))[0]!)).toEqual({ epoch: 3, id: 'a' });
    const [put] = await frame(h, putReq(k, 'hello'));
    const ver = ok(put!)!['ver'];
    expect(typeof ver).toBe('number');
    const [got] = await frame(h, { o: 'get', k });
    expect(ok(got!)).toMatchObject({ ct: 'text/plain', ver, x: 0, e: 3 });
    expect(Buffer.from(ok(got!)!['v'] as Uint8Array).toString()).toBe('hello');
    const [fetched] = await frame(h, { o: 'fetch', k });
    const moved = readMoved(ok(fetched!) as unknown as Uint8Array, LIMIT_DEFAULTS.maxKeyBytes);
    expect(moved.map((m) => m.key.subarray(4).toString())).toEqual([k]);
    const [del] = await frame(h, { o: 'del', k });
    expect(ok(del!)).toMatchObject({ deleted: true });
    // A read now tells the tombstone apart from a key never written.
    const [gone, never] = await frame(h, { o: 'get', k }, { o: 'get', k: ownedBy(AB, 'a', 1) });
    expect(ok(gone!)).toMatchObject({ deleted: true, e: 3 });
    expect(ok(never!)).toBeNull();
  });

  it('refuses an unknown op, including names inherited from Object.prototype, and answers the rest of the frame', async () => {
    const h = handler();
    const k = ownedBy(AB, 'a');
    const answers = await frame(h, { o: 'explode', k }, { o: '__proto__', k }, { o: 'toString', k }, { o: 'constructor' }, { o: 'get', k });
    expect(answers.map(code)).toEqual(['KV_ERR_UNKNOWN_OP', 'KV_ERR_UNKNOWN_OP', 'KV_ERR_UNKNOWN_OP', 'KV_ERR_UNKNOWN_OP', 'ok']);
  });
});

describe('epoch and ownership', () => {
  it('refuses a request routed with an older epoch, telling its own', async () => {
    const h = handler();
    const k = ownedBy(AB, 'a');
    const [res] = await frame(h, { ...putReq(k), e: 2 });
    expect(res).toMatchObject({ err: { code: 'KV_ERR_STALE_EPOCH', epoch: 3 } });
    expect(store.get(k)).toBeNull();
    expect(refreshes).toBe(0);
  });

  it('re-reads the topology for a newer epoch: serves the request once it has it, refuses while it does not', async () => {
    const h = handler();
    const k = ownedBy(AB, 'a');
    expect(await frame(h, { o: 'get', k, e: 4 })).toMatchObject([{ err: { code: 'KV_ERR_STALE_EPOCH', epoch: 3 } }]);
    expect(refreshes).toBe(1);
    newer = { epoch: 4, ring: AB };
    expect((await frame(h, { ...putReq(k), e: 4 })).map(code)).toEqual(['ok']);
    expect(refreshes).toBe(2);
    expect(store.lookup(k)).toMatchObject({ e: 4 });
  });

  it('refuses reads and writes of keys another shard owns, and writes nothing', async () => {
    const h = handler();
    const k = ownedBy(AB, 'b');
    const answers = await frame(h, { o: 'get', k }, putReq(k), { o: 'del', k }, { o: 'fetch', k });
    for (const a of answers) expect(a).toMatchObject({ err: { code: 'KV_ERR_NOT_OWNER', epoch: 3 } });
    expect(store.lookup(k)).toBeNull();
  });
});

describe('during a migration (c joins a and b)', () => {
  const key = () => keyWhere((k) => AB.ownerOf(k) === 'a' && ABC.ownerOf(k) === 'c');
  const stays = () => keyWhere((k) => AB.ownerOf(k) === 'a' && ABC.ownerOf(k) === 'a');

  it('freeze phase: the new owner refuses writes of moving keys but serves their reads', async () => {
    view = { epoch: 5, ring: ABC, prevRing: AB, frozen: true };
    const h = handler('c');
    const k = key();
    expect((await frame(h, putReq(k), { o: 'del', k }, { o: 'get', k })).map(code)).toEqual(['KV_ERR_NOT_OWNER', 'KV_ERR_NOT_OWNER', 'ok']);
    expect(store.lookup(k)).toBeNull();
    // The move phase opens writes on the new owner.
    view = { epoch: 6, ring: ABC, prevRing: AB, frozen: false };
    expect((await frame(h, putReq(k))).map(code)).toEqual(['ok']);
  });

  it('freeze phase: keys that do not move take writes as usual', async () => {
    view = { epoch: 5, ring: ABC, prevRing: AB, frozen: true };
    expect((await frame(handler('a'), putReq(stays()))).map(code)).toEqual(['ok']);
  });

  it('the previous owner still serves reads and fetches of a moving key, but takes no writes', async () => {
    await seed(key(), 'before the move');
    view = { epoch: 6, ring: ABC, prevRing: AB, frozen: false };
    const h = handler('a');
    const k = key();
    const [got, fetched, put, del] = await frame(h, { o: 'get', k }, { o: 'fetch', k }, putReq(k, 'late'), { o: 'del', k });
    expect(Buffer.from(ok(got!)!['v'] as Uint8Array).toString()).toBe('before the move');
    expect(ok(fetched!)).toBeInstanceOf(Uint8Array);
    expect([put, del].map((r) => code(r!))).toEqual(['KV_ERR_NOT_OWNER', 'KV_ERR_NOT_OWNER']);
    expect(store.get(k)!.v.toString()).toBe('before the move');
  });
});

describe('writes', () => {
  it('commits all writes of a frame in one transaction; a refused one does not hold back the others', async () => {
    const h = handler();
    const mine = keysOwnedBy(AB, 'a', 5);
    await seed(mine[4]!, 'old');
    const spy = vi.spyOn(store, 'transaction');
    const answers = await frame(h, ...mine.slice(0, 4).map((k) => putReq(k, `v-${k}`)), { o: 'del', k: mine[4]! }, putReq(ownedBy(AB, 'b')), {
      o: 'get',
      k: mine[0]!,
    });
    expect(spy).toHaveBeenCalledTimes(1);
    expect(answers.map(code)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'KV_ERR_NOT_OWNER', 'ok']);
    for (const k of mine.slice(0, 4)) expect(store.get(k)!.v.toString()).toBe(`v-${k}`);
    expect(store.get(mine[4]!)).toBeNull();
    spy.mockRestore();
  });

  it('sync answers only once the writes of earlier frames have committed', async () => {
    const h = handler();
    const keys = keysOwnedBy(AB, 'a', 2000);
    const writes = frame(h, ...keys.map((k) => putReq(k, 'x'.repeat(200))));
    let visibleAtSync: boolean | undefined;
    const sync = frame(h, { o: 'sync', me: 3 }).then((res) => {
      visibleAtSync = keys.every((k) => store.get(k) !== null);
      return res;
    });
    const [answer] = await sync;
    expect(ok(answer!)).toEqual({ epoch: 3 });
    expect(visibleAtSync).toBe(true);
    expect((await writes).every((r) => code(r) === 'ok')).toBe(true);
  });
});

describe('group commit', () => {
  it('writes of frames that arrive while a transaction commits share the next one, each answered after its own commit', async () => {
    const h = handler();
    const keys = keysOwnedBy(AB, 'a', 9);
    const orig = store.transaction.bind(store);
    let during: Array<Promise<Response[]>> = [];
    let inFlight = true;
    const spy = vi.spyOn(store, 'transaction').mockImplementation(<T>(fn: () => T) => {
      const first = spy.mock.calls.length === 1;
      return orig(() => {
        const r = fn();
        // The first transaction has taken its writes: these frames come in while it commits.
        if (first) during = [frame(h, putReq(keys[3]!), putReq(keys[4]!)), frame(h, putReq(keys[5]!)), frame(h, { o: 'del', k: keys[6]! }, putReq(keys[7]!))];
        return r;
      }).finally(() => {
        if (first) inFlight = false;
      });
    });
    const firstFrame = await frame(h, putReq(keys[0]!), putReq(keys[1]!), putReq(keys[2]!));
    expect(firstFrame.map(code)).toEqual(['ok', 'ok', 'ok']);
    expect(inFlight).toBe(false);
    expect(during).toHaveLength(3);
    for (const answers of await Promise.all(during)) expect(answers.map(code).every((c) => c === 'ok')).toBe(true);
    // Answered only once committed: every write is there.
    for (const k of [keys[3]!, keys[4]!, keys[5]!, keys[7]!]) expect(store.get(k)).not.toBeNull();
    expect(spy).toHaveBeenCalledTimes(2);
    expect(h.counters).toEqual({ commits: 2, writes: 8 });
    spy.mockRestore();
  });

  it('a transaction that fails refuses the frames whose writes it held; the next frame commits as usual', async () => {
    const h = handler();
    const [k1, k2] = keysOwnedBy(AB, 'a', 2);
    const spy = vi.spyOn(store, 'transaction').mockImplementationOnce(() => Promise.reject(new Error('disk full')));
    await expect(frame(h, putReq(k1!))).rejects.toThrow('disk full');
    expect(store.get(k1!)).toBeNull();
    expect((await frame(h, putReq(k2!))).map(code)).toEqual(['ok']);
    expect(store.get(k2!)).not.toBeNull();
    spy.mockRestore();
  });
});

describe('positional requests off the wire', () => {
  const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });
  /** Requests as the decoder hands them over for a frame holding `body`. */
  function decoded(body: unknown[]): Request[] {
    const payload = packr.pack(body);
    const f = Buffer.alloc(FRAME_HEADER_BYTES + payload.length);
    f.writeUInt32BE(payload.length, 0);
    payload.copy(f, FRAME_HEADER_BYTES);
    return (new FrameDecoder(1 << 24).push(f) as [Request[]])[0];
  }

  it('runs well-formed positional get, put and del', async () => {
    const h = handler();
    const k = ownedBy(AB, 'a');
    const [put] = await h.handle(decoded([[TAGS.PUT, 1, 3, k, Buffer.from('pos'), 'text/plain', 0, null, null]]));
    expect(code(put!)).toBe('ok');
    const [got] = await h.handle(decoded([[TAGS.GET, 2, 3, k]]));
    expect(Buffer.from(ok(got!)!['v'] as Uint8Array).toString()).toBe('pos');
    const [del] = await h.handle(decoded([[TAGS.DEL, 3, 3, k, null]]));
    expect(ok(del!)).toMatchObject({ deleted: true });
  });

  it('refuses truncated, overlong and unknown positional requests, and wrong types at each position, with a code each; writes nothing', async () => {
    const h = handler();
    const k = ownedBy(AB, 'a');
    const v = Buffer.from('v');
    const good = [TAGS.PUT, 0, 3, k, v, 'text/plain', 0, null, null];
    const at = (pos: number, value: unknown) => good.map((x, n) => (n === pos ? value : n === 1 ? 100 + pos : x));
    const cases: Array<[unknown, string]> = [
      [[TAGS.GET, 1, 3], 'KV_ERR_BAD_FRAME'],
      [[TAGS.GET, 2, 3, k, 'extra'], 'KV_ERR_BAD_FRAME'],
      [[TAGS.PUT, 3, 3, k, v], 'KV_ERR_BAD_FRAME'],
      [[TAGS.DEL, 4], 'KV_ERR_BAD_FRAME'],
      [[99, 5, 3, k], 'KV_ERR_BAD_FRAME'],
      [[TAGS.GET_VALUE, 6, v, 'x/y', 1, 0, 3], 'KV_ERR_UNKNOWN_OP'],
      [[], 'KV_ERR_BAD_FRAME'],
      [at(2, -1), 'KV_ERR_BAD_FRAME'],
      [at(2, 'x'), 'KV_ERR_BAD_FRAME'],
      [at(3, 5), 'KV_ERR_KEY_INVALID'],
      [at(3, null), 'KV_ERR_KEY_INVALID'],
      [at(3, 'x'.repeat(LIMIT_DEFAULTS.maxKeyBytes + 1)), 'KV_ERR_KEY_TOO_LONG'],
      [at(4, 'not bytes'), 'KV_ERR_BAD_FRAME'],
      [at(4, null), 'KV_ERR_BAD_FRAME'],
      [at(4, Buffer.alloc(LIMIT_DEFAULTS.maxValueBytes + 1)), 'KV_ERR_VALUE_TOO_LARGE'],
      [at(5, 7), 'KV_ERR_BAD_CONTENT_TYPE'],
      [at(6, '0'), 'KV_ERR_BAD_FRAME'],
      [at(6, -1), 'KV_ERR_BAD_FRAME'],
      [at(7, 'x'), 'KV_ERR_BAD_FRAME'],
      [at(7, []), 'KV_ERR_BAD_FRAME'],
      [at(8, 'yes'), 'KV_ERR_BAD_FRAME'],
    ];
    const answers = await h.handle(decoded(cases.map(([el]) => el)));
    expect(answers).toHaveLength(cases.length);
    const got = answers.map((a) => ('err' in a ? a.err.code : 'ok'));
    expect(got).toEqual(cases.map(([, c]) => c));
    // Each refusal names its request where the request has a usable id.
    expect(answers.slice(0, 6).map((a) => a.i)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(store.get(k)).toBeNull();
  });
});

describe('rebalancing ops', () => {
  it('import takes records this shard owns, put-if-newer by write epoch', async () => {
    view = { epoch: 6, ring: ABC };
    const h = handler('c');
    const keys = keysOwnedBy(ABC, 'c', 3);
    // One key was written here at the migration epoch already: the moved copy loses.
    await seed(keys[2]!, 'written during the move', 5);
    const [res] = await frame(h, { o: 'import', me: 5, packed: movedBlob(keys) });
    expect(ok(res!)).toEqual({ written: 2, received: 3 });
    expect(store.get(keys[0]!)!.v.toString()).toBe(`moved ${keys[0]}`);
    expect(store.get(keys[2]!)!.v.toString()).toBe('written during the move');
  });

  it('import refuses a blob holding any record this shard does not own, and writes none of it', async () => {
    view = { epoch: 6, ring: ABC };
    const h = handler('c');
    const mine = ownedBy(ABC, 'c');
    const [res] = await frame(h, { o: 'import', me: 5, packed: movedBlob([mine, ownedBy(ABC, 'b')]) });
    expect(code(res!)).toBe('KV_ERR_NOT_OWNER');
    expect(store.lookup(mine)).toBeNull();
  });

  it('import refuses a migration epoch this shard has not reached', async () => {
    const h = handler('a');
    const [res] = await frame(h, { o: 'import', me: 9, packed: movedBlob([ownedBy(AB, 'a')]) });
    expect(res).toMatchObject({ err: { code: 'KV_ERR_STALE_EPOCH', epoch: 3 } });
    expect(refreshes).toBe(1);
  });

  it('purge deletes ranges this shard gave away and refuses ranges it still owns', async () => {
    const h = handler('a');
    const gone = arcOf(AB, 'b');
    const k = keyWhere((x) => inRange(x, gone));
    await seed(k, 'moved away');
    const kept = ownedBy(AB, 'a');
    await seed(kept, 'mine');
    const [still, all, given] = await frame(
      h,
      { o: 'purge', ranges: [arcOf(AB, 'a')] },
      { o: 'purge', ranges: [{ lo: 0, hi: POINT_MAX }] },
      { o: 'purge', ranges: [gone] },
    );
    expect([still, all].map((r) => ('err' in r! ? [r.err.code, /still owns/.test(r.err.message)] : 'ok'))).toEqual([
      ['KV_ERR_BAD_TOPOLOGY', true],
      ['KV_ERR_BAD_TOPOLOGY', true],
    ]);
    expect(ok(given!)).toEqual({ purged: 1, more: false });
    expect(store.lookup(k)).toBeNull();
    expect(store.get(kept)!.v.toString()).toBe('mine');
  });

  it('purge with a limit deletes at most that many records per call; the next calls over the same ranges go on', async () => {
    const h = handler('a');
    const gone = arcOf(AB, 'b');
    const keys: string[] = [];
    for (let i = 0; keys.length < 7; i++) if (inRange(`pl-${i}`, gone)) keys.push(`pl-${i}`);
    for (const k of keys) await seed(k, 'moved away');
    const kept = ownedBy(AB, 'a');
    await seed(kept, 'mine');
    const answers: unknown[] = [];
    for (let call = 0; call < 4; call++) answers.push(ok((await frame(h, { o: 'purge', ranges: [gone], limit: 3 }))[0]!));
    expect(answers).toEqual([
      { purged: 3, more: true },
      { purged: 3, more: true },
      { purged: 1, more: false },
      { purged: 0, more: false },
    ]);
    for (const k of keys) expect(store.lookup(k)).toBeNull();
    expect(store.get(kept)!.v.toString()).toBe('mine');
    const [bad] = await frame(h, { o: 'purge', ranges: [gone], limit: 0 });
    expect(bad).toMatchObject({ err: { code: 'KV_ERR_BAD_FRAME' } });
  });

  it('purge waits for the end of a migration', async () => {
    view = { epoch: 6, ring: ABC, prevRing: AB };
    const [res] = await frame(handler('a'), { o: 'purge', ranges: [arcOf(ABC, 'c')] });
    expect(res).toMatchObject({ err: { code: 'KV_ERR_BAD_TOPOLOGY', message: expect.stringMatching(/migration/) } });
  });

  it('retire refuses while the shard is in the ring (or was, during a migration), then retires it', async () => {
    const h = handler('c');
    view = { epoch: 6, ring: ABC };
    expect((await frame(h, { o: 'retire' })).map(code)).toEqual(['KV_ERR_BAD_TOPOLOGY']);
    view = { epoch: 7, ring: AB, prevRing: ABC };
    expect((await frame(h, { o: 'retire' })).map(code)).toEqual(['KV_ERR_BAD_TOPOLOGY']);
    expect(retired).toBe(0);
    view = { epoch: 8, ring: AB };
    expect(ok((await frame(h, { o: 'retire' }))[0]!)).toEqual({ retiring: true });
    await waitUntil(() => retired === 1, { timeoutMs: 1000, what: 'the retire hook' });
  });

  it('count and scan read a point range, tombstones included in scans', async () => {
    const h = handler('a');
    const keys = keysOwnedBy(AB, 'a', 3);
    await frame(h, ...keys.map((k) => putReq(k)), { o: 'del', k: keys[2]! });
    const all = { lo: 0, hi: POINT_MAX };
    const [count, scan] = await frame(h, { o: 'count', ranges: [all] }, { o: 'scan', ranges: [all], limit: 10, maxBytes: 1 << 20 });
    expect(ok(count!)).toMatchObject({ keys: 3, estimated: false });
    expect(ok(scan!)).toMatchObject({ n: 3, live: 2 });
  });
});
