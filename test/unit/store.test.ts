import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KvError } from '../../src/core/errors.js';
import { Store, type PutArgs } from '../../src/shard/store.js';
import { FORMAT_VERSION, INDEX_BUCKETS, INDEX_BUCKET_BITS, cursorOf, readMoved } from '../../src/shard/record.js';
import { keyPoint } from '../../src/core/ring.js';
import { thrownKvError } from '../helpers/errors.js';

const GRACE_MS = 60_000;
const enc = new TextEncoder();
const text = (s: string): Uint8Array => enc.encode(s);
const str = (v: Uint8Array | undefined): string => new TextDecoder().decode(v);

let dir: string;
let store: Store;

function open(): Store {
  return new Store({ path: dir, mapSizeBytes: 64 * 1024 * 1024, noSync: true, tombstoneGraceMs: GRACE_MS });
}

function args(value: string | Uint8Array, more: Partial<PutArgs> = {}): PutArgs {
  return { value: typeof value === 'string' ? text(value) : value, contentType: 'text/plain', expiresAt: 0, ...more };
}

function put(key: string, a: PutArgs, now?: number): Promise<number> {
  return store.transaction(() => store.putInTxn(key, a, now));
}

function del(key: string, ifMatch?: number | '*', now?: number): Promise<{ deleted: boolean; ver: number }> {
  return store.transaction(() => store.delInTxn(key, ifMatch, now));
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<KvError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(KvError);
  expect((err as KvError).code).toBe(code);
  return err as KvError;
}

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'shardkv-store-'));
  store = open();
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Store put/get', () => {
  it('returns null for a key never written', () => {
    expect(store.get('missing')).toBeNull();
  });

  it('stores value, content type and version', async () => {
    const ver = await put('greeting', args('héllo', { contentType: 'text/plain; charset=utf-8' }));
    const got = store.get('greeting');
    expect(got).not.toBeNull();
    expect(str(got!.v)).toBe('héllo');
    expect(got!.ct).toBe('text/plain; charset=utf-8');
    expect(got!.ver).toBe(ver);
    expect(got!.x).toBe(0);
  });

  it('stores binary values byte for byte, including the empty value', async () => {
    const bytes = new Uint8Array(256);
    for (let i = 0; i < 256; i++) bytes[i] = 255 - i;
    await put('bin', args(bytes, { contentType: 'application/octet-stream' }));
    await put('empty', args(new Uint8Array(0)));
    const got = store.get('bin')!;
    expect(got.v).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(got.v).equals(Buffer.from(bytes))).toBe(true);
    expect(got.ct).toBe('application/octet-stream');
    const empty = store.get('empty');
    expect(empty).not.toBeNull();
    expect(empty!.v.byteLength).toBe(0);
  });

  it('keeps keys apart, unicode keys included', async () => {
    const keys = ['a', 'A', 'a ', 'ключ', '😀', 'e\u0301', '\u00e9'];
    for (const k of keys) await put(k, args(`value of ${k}`));
    for (const k of keys) expect(str(store.get(k)!.v)).toBe(`value of ${k}`);
    expect(store.countLive()).toBe(keys.length);
  });

  it('overwrites with the latest value', async () => {
    await put('k', args('one'));
    await put('k', args('two', { contentType: 'application/json' }));
    const got = store.get('k')!;
    expect(str(got.v)).toBe('two');
    expect(got.ct).toBe('application/json');
    expect(store.countLive()).toBe(1);
  });

  it('versions strictly increase, per key and across keys', async () => {
    const seen: number[] = [];
    for (let i = 0; i < 50; i++) seen.push(await put(i % 2 ? 'odd' : 'even', args(String(i))));
    // Many writes in one transaction too.
    seen.push(...(await store.transaction(() => [1, 2, 3].map((i) => store.putInTxn('same', args(String(i)))))));
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    for (const v of seen) expect(Number.isSafeInteger(v)).toBe(true);
    expect(store.get('same')!.ver).toBe(seen[seen.length - 1]);
  });

  it('versions keep increasing after a delete', async () => {
    const v1 = await put('k', args('1'));
    const d = await del('k');
    const v2 = await put('k', args('2'));
    expect(d.ver).toBeGreaterThan(v1);
    expect(v2).toBeGreaterThan(d.ver);
  });
});

describe('Store preconditions', () => {
  it('ifMatch with the current version succeeds', async () => {
    const v1 = await put('k', args('one'));
    const v2 = await put('k', args('two', { ifMatch: v1 }));
    expect(v2).toBeGreaterThan(v1);
    expect(str(store.get('k')!.v)).toBe('two');
  });

  it('ifMatch mismatch throws KV_ERR_PRECONDITION_FAILED and writes nothing', async () => {
    const v1 = await put('k', args('one'));
    const err = await rejectsWith(put('k', args('two', { ifMatch: v1 + 1 })), 'KV_ERR_PRECONDITION_FAILED');
    expect(err.statusCode).toBe(412);
    expect(err.message).toContain(String(v1));
    const got = store.get('k')!;
    expect(str(got.v)).toBe('one');
    expect(got.ver).toBe(v1);
    const v2 = await put('k', args('three', { ifMatch: v1 }));
    expect(str(store.get('k')!.v)).toBe('three');
    expect(v2).toBeGreaterThan(v1);
  });

  it('ifMatch on a missing key fails and creates nothing', async () => {
    await rejectsWith(put('nope', args('x', { ifMatch: '*' })), 'KV_ERR_PRECONDITION_FAILED');
    await rejectsWith(put('nope', args('x', { ifMatch: 5 })), 'KV_ERR_PRECONDITION_FAILED');
    expect(store.get('nope')).toBeNull();
    expect(store.stats().records).toBe(0);
  });

  it("ifMatch '*' succeeds on any live value", async () => {
    await put('k', args('one'));
    await put('k', args('two', { ifMatch: '*' }));
    expect(str(store.get('k')!.v)).toBe('two');
  });

  it('ifNoneMatch creates a missing key and refuses an existing one', async () => {
    const v1 = await put('k', args('first', { ifNoneMatch: true }));
    await rejectsWith(put('k', args('second', { ifNoneMatch: true })), 'KV_ERR_PRECONDITION_FAILED');
    expect(str(store.get('k')!.v)).toBe('first');
    expect(store.get('k')!.ver).toBe(v1);
  });

  it('ifNoneMatch succeeds over a tombstone and over an expired value', async () => {
    const now = Date.now();
    await put('k', args('x'));
    await del('k');
    await put('k', args('again', { ifNoneMatch: true }));
    expect(str(store.get('k')!.v)).toBe('again');

    await put('t', args('short', { expiresAt: now + 1000 }), now);
    await rejectsWith(put('t', args('no', { ifNoneMatch: true }), now + 999), 'KV_ERR_PRECONDITION_FAILED');
    await put('t', args('yes', { ifNoneMatch: true }), now + 1000);
    expect(str(store.get('t', now + 5000)!.v)).toBe('yes');
  });

  it('a refused write inside a multi-write transaction leaves its own key unchanged', async () => {
    const v = await put('a', args('a1'));
    await put('b', args('b1'));
    await rejectsWith(
      store.transaction(() => {
        store.putInTxn('a', args('a2', { ifMatch: v }));
        store.putInTxn('b', args('b2', { ifMatch: 1 }));
      }),
      'KV_ERR_PRECONDITION_FAILED',
    );
    expect(str(store.get('b')!.v)).toBe('b1');
  });
});

describe('Store delete and tombstones', () => {
  it('delete makes get return null and reports what it deleted', async () => {
    await put('k', args('v'));
    const r = await del('k');
    expect(r.deleted).toBe(true);
    expect(store.get('k')).toBeNull();
    expect(store.countLive()).toBe(0);
  });

  it('leaves a tombstone: a later ifMatch put fails, and the record is kept', async () => {
    const v1 = await put('k', args('v'));
    await del('k');
    await rejectsWith(put('k', args('back', { ifMatch: '*' })), 'KV_ERR_PRECONDITION_FAILED');
    await rejectsWith(put('k', args('back', { ifMatch: v1 })), 'KV_ERR_PRECONDITION_FAILED');
    expect(store.get('k')).toBeNull();
    expect(store.stats().records).toBe(1); // the tombstone
  });

  it('deleting a missing key reports false but still leaves a tombstone', async () => {
    const r = await del('never');
    expect(r.deleted).toBe(false);
    expect(r.ver).toBeGreaterThan(0);
    expect(store.stats().records).toBe(1);
    expect(store.get('never')).toBeNull();
  });

  it('deleting twice reports false the second time and keeps the tombstone version', async () => {
    await put('k', args('v'));
    const first = await del('k');
    const second = await del('k');
    expect(first.deleted).toBe(true);
    expect(second.deleted).toBe(false);
    expect(second.ver).toBe(first.ver);
  });

  it('delete honours ifMatch', async () => {
    const v1 = await put('k', args('v'));
    await rejectsWith(del('k', v1 + 1), 'KV_ERR_PRECONDITION_FAILED');
    expect(str(store.get('k')!.v)).toBe('v');
    expect((await del('k', v1)).deleted).toBe(true);
    await rejectsWith(del('k', '*'), 'KV_ERR_PRECONDITION_FAILED');
  });

  it('a plain put after a delete brings the key back with a new version', async () => {
    await put('k', args('old'));
    const d = await del('k');
    const v = await put('k', args('new'));
    expect(v).toBeGreaterThan(d.ver);
    expect(str(store.get('k')!.v)).toBe('new');
  });
});

describe('Store expiry', () => {
  it('never returns an expired value', async () => {
    const now = Date.now();
    await put('k', args('v', { expiresAt: now + 1000 }), now);
    expect(str(store.get('k', now)!.v)).toBe('v');
    expect(store.get('k', now + 999)!.x).toBe(now + 1000);
    expect(store.get('k', now + 1000)).toBeNull();
    expect(store.get('k', now + 1_000_000)).toBeNull();
    expect(store.countLive(now + 999)).toBe(1);
    expect(store.countLive(now + 1000)).toBe(0);
  });

  it('an expired value does not satisfy ifMatch', async () => {
    const now = Date.now();
    const v = await put('k', args('v', { expiresAt: now + 1000 }), now);
    await rejectsWith(put('k', args('w', { ifMatch: v }), now + 1000), 'KV_ERR_PRECONDITION_FAILED');
    await rejectsWith(put('k', args('w', { ifMatch: '*' }), now + 2000), 'KV_ERR_PRECONDITION_FAILED');
  });

  it('deleting an expired value reports false', async () => {
    const now = Date.now();
    await put('k', args('v', { expiresAt: now + 10 }), now);
    expect((await del('k', undefined, now + 10)).deleted).toBe(false);
  });

  it('a rewrite without ttl clears the expiry', async () => {
    const now = Date.now();
    await put('k', args('short', { expiresAt: now + 1000 }), now);
    await put('k', args('forever'), now + 10);
    expect(str(store.get('k', now + 10_000_000)!.v)).toBe('forever');
    expect(await store.sweep(100, now + 10_000_000)).toBe(0);
    expect(store.get('k', now + 10_000_000)).not.toBeNull();
  });

  it('sweep removes expired records and keeps live ones', async () => {
    const now = Date.now();
    await store.transaction(() => {
      for (let i = 0; i < 5; i++) store.putInTxn(`short${i}`, args('s', { expiresAt: now + 1000 }), now);
      for (let i = 0; i < 3; i++) store.putInTxn(`long${i}`, args('l', { expiresAt: now + 60_000 }), now);
      store.putInTxn('forever', args('f'), now);
    });
    expect(store.stats().records).toBe(9);

    expect(await store.sweep(100, now + 999)).toBe(0);
    expect(store.stats().records).toBe(9);

    expect(await store.sweep(100, now + 1000)).toBe(5);
    expect(store.stats().records).toBe(4);
    // Gone for good: not even a reader with an old clock sees them.
    for (let i = 0; i < 5; i++) expect(store.get(`short${i}`, now)).toBeNull();
    for (let i = 0; i < 3; i++) expect(str(store.get(`long${i}`, now + 1000)!.v)).toBe('l');
    expect(store.get('forever', now + 1000)).not.toBeNull();
    expect(store.ops.expired).toBe(5);

    expect(await store.sweep(100, now + 1000)).toBe(0);
  });

  it('sweep honours its limit', async () => {
    const now = Date.now();
    await store.transaction(() => {
      for (let i = 0; i < 7; i++) store.putInTxn(`k${i}`, args('v', { expiresAt: now + 10 }), now);
    });
    expect(await store.sweep(3, now + 10)).toBe(3);
    expect(store.stats().records).toBe(4);
    expect(await store.sweep(3, now + 10)).toBe(3);
    expect(await store.sweep(3, now + 10)).toBe(1);
    expect(store.stats().records).toBe(0);
  });

  it('sweep does not drop a record rewritten with a later expiry', async () => {
    const now = Date.now();
    await put('k', args('v1', { expiresAt: now + 1000 }), now);
    await put('k', args('v2', { expiresAt: now + 5000 }), now + 500);
    expect(await store.sweep(100, now + 1000)).toBe(0);
    expect(str(store.get('k', now + 1000)!.v)).toBe('v2');
    expect(await store.sweep(100, now + 5000)).toBe(1);
    expect(store.stats().records).toBe(0);
  });

  it('sweep keeps a record rewritten between its index scan and its transaction', async () => {
    const now = Date.now();
    await put('k', args('v1', { expiresAt: now + 1000 }), now);
    // Queue the rewrite first, then start the sweep: the sweep's index scan
    // still sees the old expiry, but its transaction runs after the rewrite.
    const rewrite = put('k', args('v2', { expiresAt: now + 5000 }), now + 500);
    const swept = store.sweep(100, now + 1000);
    await Promise.all([rewrite, swept]);
    expect(str(store.get('k', now + 1000)!.v)).toBe('v2');
    expect(store.stats().records).toBe(1);
    expect(await store.sweep(100, now + 5000)).toBe(1);
    expect(store.stats().records).toBe(0);
  });

  it('sweep drops a tombstone only after the grace period', async () => {
    const now = Date.now();
    await put('k', args('v'), now);
    await del('k', undefined, now);
    expect(await store.sweep(100, now + GRACE_MS - 1)).toBe(0);
    expect(store.stats().records).toBe(1);
    expect(await store.sweep(100, now + GRACE_MS)).toBe(1);
    expect(store.stats().records).toBe(0);
    expect(store.ops.tombstonesDropped).toBe(1);
  });
});

describe('Store persistence', () => {
  it('keeps data, versions and tombstones across close and reopen', async () => {
    const now = Date.now();
    const v = await put('k', args(Uint8Array.from([1, 2, 3]), { contentType: 'application/x-test' }));
    await put('ttl', args('t', { expiresAt: now + 60_000 }), now);
    await put('gone', args('g'));
    // Deleted a little later, so its tombstone is not due in the sweep below.
    await del('gone', undefined, now + 5);
    await store.close();

    store = open();
    const got = store.get('k')!;
    expect([...got.v]).toEqual([1, 2, 3]);
    expect(got.ct).toBe('application/x-test');
    expect(got.ver).toBe(v);
    expect(store.get('ttl', now)!.x).toBe(now + 60_000);
    expect(store.get('gone')).toBeNull();
    await rejectsWith(put('gone', args('back', { ifMatch: '*' })), 'KV_ERR_PRECONDITION_FAILED');
    expect(store.stats().records).toBe(3);

    // Versions keep increasing after a restart.
    expect(await put('k', args('next', { ifMatch: v }))).toBeGreaterThan(v);
    // The expiry index survived too.
    expect(await store.sweep(100, now + 60_000)).toBe(1);
    expect(store.get('ttl', now)).toBeNull();
  });
});

describe('Store rebalancing reads and writes', () => {
  it('purges a range in transactions of the batch size, every record of it and nothing else', async () => {
    await store.transaction(() => {
      for (let i = 0; i < 200; i++) store.putInTxn(`p${i}`, args('v', i % 3 === 0 ? { expiresAt: Date.now() + 3_600_000 } : {}));
    });
    const half = 2 ** 31;
    const inside = Array.from({ length: 200 }, (_, i) => `p${i}`).filter((k) => keyPoint(k) < half);
    const before = store.stats().records;
    let commits = 0;
    const transaction = store.transaction.bind(store);
    store.transaction = (fn) => {
      commits++;
      return transaction(fn);
    };
    expect(await store.purgeRange(0, half - 1, 7)).toBe(inside.length);
    expect(commits).toBe(Math.ceil(inside.length / 7));
    expect(store.stats().records).toBe(before - inside.length);
    for (let i = 0; i < 200; i++) expect(store.get(`p${i}`) === null).toBe(inside.includes(`p${i}`));
  });

  it('purges at most `limit` records of a range, and goes on over the same range where it stopped', async () => {
    await store.transaction(() => {
      for (let i = 0; i < 100; i++) store.putInTxn(`q${i}`, args('v'));
    });
    const half = 2 ** 31;
    const inside = Array.from({ length: 100 }, (_, i) => `q${i}`).filter((k) => keyPoint(k) < half);
    expect(inside.length).toBeGreaterThan(20);
    const before = store.stats().records;
    expect(await store.purgeRange(0, half - 1, 7, 10)).toBe(10);
    expect(store.stats().records).toBe(before - 10);
    // The lowest points went first.
    const byPoint = [...inside].sort((a, b) => keyPoint(a) - keyPoint(b));
    for (const k of byPoint.slice(0, 10)) expect(store.get(k)).toBeNull();
    expect(store.get(byPoint[10]!)).not.toBeNull();
    expect(await store.purgeRange(0, half - 1, 7, 10_000)).toBe(inside.length - 10);
    expect(store.stats().records).toBe(before - inside.length);
  });

  const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
  const pointOfKey = (k: string) => keyPoint(k);

  it('scan pages through a range in ring order with a cursor, skips expired values, keeps tombstones', async () => {
    const now = Date.now();
    await store.transaction(() => {
      for (const k of keys) store.putInTxn(k, args(`v-${k}`), now);
      store.putInTxn('short-lived', args('x', { expiresAt: now + 50 }), now);
      store.delInTxn('k7', undefined, now);
    });
    const later = now + 100;
    const seen: string[] = [];
    let after: [number, string] | undefined;
    let live = 0;
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(100);
      const r = store.scan(0, 0xffffffff, after, 7, 1 << 20, later);
      expect(r.n).toBe(readMoved(r.packed, 1024).length);
      for (const m of readMoved(r.packed, 1024)) seen.push(cursorOf(m.key)[1]);
      live += r.live;
      if (!r.next) break;
      after = r.next;
    }
    const expected = [...keys].sort((a, b) => pointOfKey(a) - pointOfKey(b) || (a < b ? -1 : 1));
    expect(seen).toEqual(expected); // k7 as a tombstone, short-lived left out
    expect(live).toBe(keys.length - 1);
    // A sub-range holds exactly the keys whose points fall in it.
    const mid = pointOfKey(expected[150]!);
    const part = store.scan(0, mid, undefined, 10_000, 1 << 20, later);
    expect(part.next).toBeUndefined();
    expect(part.n).toBe(151);
    expect(store.countRange(0, mid).keys).toBe(151);
    expect(store.countRange(mid + 1, 0xffffffff).keys).toBe(keys.length - 151 + 1); // + the unswept expired record
  });

  it('scan stops at maxBytes', () => {
    return store
      .transaction(() => {
        for (const k of keys) store.putInTxn(k, args('x'.repeat(1000)));
      })
      .then(() => {
        const r = store.scan(0, 0xffffffff, undefined, 10_000, 10_000);
        expect(r.n).toBeGreaterThan(5);
        expect(r.n).toBeLessThan(15);
        expect(r.next).toBeDefined();
      });
  });

  it('fetchPacked + importInTxn copy one record with its version and expiry; purgeRange removes records and their index entries', async () => {
    const x = Date.now() + 60_000;
    const ver = await put('ttl-key', args('payload', { expiresAt: x, epoch: 3 }));
    const packed = store.fetchPacked('ttl-key')!;
    expect(store.fetchPacked('never')).toBeNull();
    const other = path.join(dir, 'other');
    const dst = new Store({ path: other, mapSizeBytes: 64 * 1024 * 1024, noSync: true, tombstoneGraceMs: GRACE_MS });
    try {
      const [m] = readMoved(packed, 1024);
      expect(await dst.transaction(() => dst.importInTxn(m!.key, m!.value, 5))).toBe(true);
      expect(dst.get('ttl-key')).toEqual({ v: Buffer.from('payload'), ct: 'text/plain', ver, x });
      // Importing again over a record written before the migration epoch is harmless.
      expect(await dst.transaction(() => dst.importInTxn(m!.key, m!.value, 5))).toBe(true);
      // A record written at the migration epoch or later stays: the moved copy is older.
      const other2 = await dst.transaction(() => dst.putInTxn('ttl-key', args('newer', { expiresAt: x, epoch: 5 })));
      expect(await dst.transaction(() => dst.importInTxn(m!.key, m!.value, 5))).toBe(false);
      expect(dst.get('ttl-key')).toMatchObject({ v: Buffer.from('newer'), ver: other2 });
      expect(dst.list('ttl', undefined, 10).entries.map(([k]) => k)).toEqual(['ttl-key']);
      const p = keyPoint('ttl-key');
      expect(await dst.purgeRange(p, p, 500)).toBe(1);
      expect(dst.lookup('ttl-key')).toBeNull();
      // The expiry index entry went with the record: nothing left to sweep.
      expect(await dst.sweep(100, x + 1)).toBe(0);
    } finally {
      await dst.close();
    }
  });

  it('importManyInTxn ends in the same state as importInTxn record by record, in order, out of order and with repeats', async () => {
    const now = Date.now();
    // A small deterministic generator, so a failure repeats.
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const openAt = (name: string) => new Store({ path: path.join(dir, name), mapSizeBytes: 64 * 1024 * 1024, noSync: true, tombstoneGraceMs: GRACE_MS });
    const everything = (st: Store) => ({
      records: st.scan(0, 2 ** 32 - 1, undefined, 10_000, 2 ** 30, now).packed.toString('hex'),
      keys: st.list('', undefined, 10_000, now).entries,
      valueBytes: st.stats().valueBytes,
      count: st.stats().records,
    });
    for (let trial = 0; trial < 12; trial++) {
      const src = openAt(`src${trial}`);
      const many = openAt(`many${trial}`);
      const one = openAt(`one${trial}`);
      try {
        await src.transaction(() => {
          for (let i = 0; i < 300; i++) {
            const x = rand(5) === 0 ? (rand(2) === 0 ? now - 1000 : now + 600_000) : 0;
            src.putInTxn(`k${i}`, args('v'.repeat(1 + rand(40)), { expiresAt: x, epoch: 3 }), now - 5000);
          }
          for (let i = 0; i < 20; i++) src.delInTxn(`k${rand(300)}`, undefined, now - 4000, 3);
        });
        // The targets hold some of the keys already: older copies, newer
        // writes and newer deletes, interleaved with the moved keys. `one`
        // starts as an exact copy of `many`.
        await many.transaction(() => {
          for (let i = 0; i < 300; i += 1 + rand(4)) {
            const k = `k${i}`;
            if (i % 3 === 0) many.putInTxn(k, args(`old${i}`, { epoch: 2 }), now - 3000);
            else if (i % 3 === 1) many.putInTxn(k, args(`new${i}`, { expiresAt: i % 2 ? now + 900_000 : 0, epoch: 7 }), now - 3000);
            else many.delInTxn(k, undefined, now - 3000, 7);
          }
          if (trial % 2 === 0) for (let i = 0; i < 40; i++) many.putInTxn(`own${i}`, args('mine', { epoch: 2 }), now - 3000);
        });
        if (trial % 4 === 3) {
          // A move back after a cancel: the target still holds older copies of most moved keys.
          const copies = readMoved(src.scan(0, 2 ** 32 - 1, undefined, 10_000, 2 ** 30, now).packed, 1024);
          await many.transaction(() => {
            for (const m of copies) if (rand(10) > 0) many.importInTxn(m.key, m.value, 0, now);
          });
        }
        const held = readMoved(many.scan(0, 2 ** 32 - 1, undefined, 10_000, 2 ** 30, now).packed, 1024);
        await one.transaction(() => {
          for (const m of held) one.importInTxn(m.key, m.value, 0, now);
        });
        expect(everything(one)).toEqual(everything(many));
        let recs = readMoved(src.scan(0, 2 ** 32 - 1, undefined, 10_000, 2 ** 30, now - 2000).packed, 1024);
        if (trial % 3 === 1) recs = [...recs].sort(() => rand(3) - 1); // out of order
        if (trial % 3 === 2) recs = [...recs, ...recs.slice(0, 50), ...recs.slice(100, 120)]; // repeats
        const wMany = await many.transaction(() => many.importManyInTxn(recs, 5, now));
        const wOne = await one.transaction(() => {
          let n = 0;
          for (const m of recs) if (one.importInTxn(m.key, m.value, 5, now)) n++;
          return n;
        });
        expect(wMany).toBe(wOne);
        expect(wMany).toBeGreaterThan(50);
        expect(everything(many)).toEqual(everything(one));
        // The expiry index holds the same entries: a sweep takes the same records.
        expect(await many.sweep(10_000, now + 3_600_000)).toBe(await one.sweep(10_000, now + 3_600_000));
        expect(everything(many)).toEqual(everything(one));
      } finally {
        await Promise.all([src.close(), many.close(), one.close()]);
      }
    }
  });

  it('keeps valueBytes through writes, overwrites, deletes, sweeps, imports and purges, and counts it again on open', async () => {
    const now = Date.now();
    const vb = () => store.stats().valueBytes;
    await put('a', args('x'.repeat(10)));
    await put('b', args('y'.repeat(20), { expiresAt: now + 1000 }), now);
    expect(vb()).toBe(30);
    await put('a', args('z'.repeat(4)));
    expect(vb()).toBe(24);
    await del('a');
    expect(vb()).toBe(20);
    await del('a'); // a tombstone holds no value bytes
    expect(vb()).toBe(20);
    await put('a', args('w'.repeat(7))); // over a tombstone
    expect(vb()).toBe(27);
    // The expired value goes with the sweep.
    expect(await store.sweep(100, now + 2000)).toBe(1);
    expect(vb()).toBe(7);
    expect(store.stats().ops.expired).toBe(1);
    // An import adds the moved value, minus what it replaces; a purge takes it all.
    const [m] = readMoved(store.fetchPacked('a')!, 1024);
    await put('a', args('v'.repeat(3)));
    expect(vb()).toBe(3);
    expect(await store.transaction(() => store.importInTxn(m!.key, m!.value, 5))).toBe(true);
    expect(vb()).toBe(7);
    await store.close();
    store = open();
    expect(vb()).toBe(7);
    const p = keyPoint('a');
    expect(await store.purgeRange(p, p, 500)).toBe(1);
    expect(vb()).toBe(0);
    expect(store.stats().ops.purged).toBe(1);
    const s = store.stats();
    expect(s.usedBytes).toBeGreaterThan(0);
    expect(s.mapSizeBytes).toBe(64 * 1024 * 1024);
  });

  it('refuses to open a directory written by another storage format', async () => {
    await store.close();
    const { open: openLmdb } = await import('lmdb');
    const root = openLmdb({ path: dir, maxDbs: 8 });
    await root.openDB<number, string>({ name: 'meta' }).put('format', 1);
    await root.close();
    expect(thrownKvError(() => open()).code).toBe('KV_ERR_CONFIG');
    const root2 = openLmdb({ path: dir, maxDbs: 8 });
    await root2.openDB<number, string>({ name: 'meta' }).put('format', FORMAT_VERSION);
    await root2.close();
    store = open();
  });
});

describe('Store list (the key-ordered index)', () => {
  const listAll = (s: Store, prefix: string, limit: number, now?: number) => {
    const out: Array<[string, number]> = [];
    let after: string | undefined;
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(1000);
      const r = s.list(prefix, after, limit, now);
      if (r.more) expect(r.entries.length).toBe(limit);
      for (const [k, , , , d] of r.entries) out.push([k, d]);
      if (!r.more) return out;
      after = r.entries[r.entries.length - 1]![0];
    }
  };

  it('pages through the keys under a prefix in UTF-8 byte order, deletes and expired values marked', async () => {
    const now = Date.now();
    const keys = ['a/1', 'a/10', 'a/2', 'a/é', 'a/\u{1F600}', 'a/\uE000', 'b/1', 'a', 'a/z'];
    await store.transaction(() => {
      for (const k of keys) store.putInTxn(k, args(k), now);
      store.putInTxn('a/ttl', args('t', { expiresAt: now + 50 }), now);
      store.delInTxn('a/2', undefined, now);
    });
    const byBytes = (xs: string[]) => [...xs].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    const under = byBytes([...keys.filter((k) => k.startsWith('a/')), 'a/ttl']);
    for (const limit of [1, 2, 3, 100]) {
      const got = listAll(store, 'a/', limit, now + 100);
      expect(got.map(([k]) => k)).toEqual(under);
      expect(got.filter(([, d]) => d === 1).map(([k]) => k)).toEqual(['a/2', 'a/ttl']);
    }
    // Byte order puts U+E000 before the emoji (UTF-16 order would not).
    expect(under.indexOf('a/\uE000')).toBeLessThan(under.indexOf('a/\u{1F600}'));
    expect(listAll(store, '', 100, now + 100).map(([k]) => k)).toEqual(byBytes([...keys, 'a/ttl']));
    expect(store.list('c', undefined, 10).entries).toEqual([]);
    // Versions and epochs are the record's.
    const [first] = store.list('b/', undefined, 10).entries;
    expect(first![0]).toBe('b/1');
    expect(first![2]).toBe(store.get('b/1')!.ver);
  });

  it('the index follows sweep, purge and import, and survives a reopen', async () => {
    const now = Date.now();
    await store.transaction(() => {
      for (let i = 0; i < 50; i++) store.putInTxn(`k${i}`, args('v', i < 10 ? { expiresAt: now + 10 } : {}), now);
    });
    expect(await store.sweep(1000, now + 20)).toBe(10);
    expect(listAll(store, 'k', 7, now + 20)).toHaveLength(40);
    const p = keyPoint('k20');
    await store.purgeRange(p, p, 500);
    expect(listAll(store, 'k', 7).map(([k]) => k)).not.toContain('k20');
    expect(listAll(store, 'k', 7)).toHaveLength(39);
    // An imported record is listed.
    const other = path.join(dir, 'other');
    const dst = new Store({ path: other, mapSizeBytes: 64 * 1024 * 1024, noSync: true, tombstoneGraceMs: GRACE_MS });
    try {
      const [m] = readMoved(store.fetchPacked('k30')!, 1024);
      await dst.transaction(() => dst.importInTxn(m!.key, m!.value, 5));
      expect(dst.list('', undefined, 10).entries.map((e) => e[0])).toEqual(['k30']);
    } finally {
      await dst.close();
    }
    await store.close();
    store = open();
    expect(listAll(store, 'k', 100)).toHaveLength(39);
  });

  it('merges every bucket of the index: many keys, over the whole ring, come back in byte order', async () => {
    // 600 keys put their points in every one of the index's buckets; the
    // merged pages must be one byte order, without gaps or repeats.
    const keys = Array.from({ length: 600 }, (_, i) => `m/${(i * 7919) % 1000}${i % 3 === 0 ? 'é' : ''}${i % 5 === 0 ? '\u{1F600}' : ''}`);
    const buckets = new Set(keys.map((k) => keyPoint(k) >>> (32 - INDEX_BUCKET_BITS)));
    expect(buckets.size).toBe(INDEX_BUCKETS);
    await store.transaction(() => {
      for (const k of keys) store.putInTxn(k, args(k));
      store.putInTxn('n/outside', args('x'));
    });
    const sorted = [...new Set(keys)].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    for (const limit of [1, 7, 64, 1000]) expect(listAll(store, 'm/', limit).map(([k]) => k)).toEqual(sorted);
    // A prefix inside the set, and a cursor in the middle of it.
    expect(listAll(store, 'm/1', 5).map(([k]) => k)).toEqual(sorted.filter((k) => k.startsWith('m/1')));
    const mid = sorted[300]!;
    expect(store.list('m/', mid, 10).entries.map(([k]) => k)).toEqual(sorted.slice(301, 311));
  });

  it('upgrades a format 3 directory (one key order, no buckets) by rebuilding the index', async () => {
    await store.transaction(() => {
      for (let i = 0; i < 40; i++) store.putInTxn(`u${i}`, args('v'));
    });
    await store.close();
    const { open: openLmdb } = await import('lmdb');
    const root = openLmdb({ path: dir, maxDbs: 8 });
    await root.openDB<number, string>({ name: 'meta' }).put('format', 3);
    // Format 3's index: the key's UTF-8 bytes -> its 4-byte point.
    const index = root.openDB<Buffer, Buffer>({ name: 'keys', keyEncoding: 'binary', encoding: 'binary' });
    await index.drop();
    await root.transaction(() => {
      for (let i = 0; i < 40; i++) {
        const p = Buffer.alloc(4);
        p.writeUInt32BE(keyPoint(`u${i}`));
        void index.put(Buffer.from(`u${i}`), p);
      }
    });
    await root.close();
    store = open();
    expect(listAll(store, 'u', 6).map(([k]) => k)).toEqual(Array.from({ length: 40 }, (_, i) => `u${i}`).sort());
    await store.close();
    const again = openLmdb({ path: dir, maxDbs: 8 });
    expect(again.openDB<number, string>({ name: 'meta' }).get('format')).toBe(FORMAT_VERSION);
    expect(again.openDB({ name: 'keys', keyEncoding: 'binary' }).getCount()).toBe(40);
    await again.close();
    store = open();
  });

  it('upgrades a format 2 directory by building the index', async () => {
    await store.transaction(() => {
      for (let i = 0; i < 20; i++) store.putInTxn(`u${i}`, args('v'));
    });
    await store.close();
    const { open: openLmdb } = await import('lmdb');
    const root = openLmdb({ path: dir, maxDbs: 8 });
    await root.openDB<number, string>({ name: 'meta' }).put('format', 2);
    await root.openDB({ name: 'keys', keyEncoding: 'binary' }).drop();
    await root.close();
    store = open();
    expect(listAll(store, 'u', 6)).toHaveLength(20);
  });
});
