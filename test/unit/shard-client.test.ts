// The router's connection to one shard against a real data port (frame
// handler over a real LMDB store): how the requests of one event-loop turn
// travel. Reads and writes queued together go in separate frames, reads
// first, so a read is not answered only after a write's commit; reads that
// come while reads are out wait and then go together.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LIMIT_DEFAULTS } from '../../src/core/config.js';
import { Ring } from '../../src/core/ring.js';
import { OPS, TAGS, type Request, type Response } from '../../src/core/protocol.js';
import { ShardConnection } from '../../src/infra/shard-client.js';
import { createDataServer, type DataServer } from '../../src/shard/data-server.js';
import { FrameHandler } from '../../src/shard/frame-handler.js';
import { Store } from '../../src/shard/store.js';
import { waitUntil } from '../../src/local/wait.js';

const SECRET = 'test-secret';
const EPOCH = 1;

let dir: string;
let store: Store;
let server: DataServer;
let conn: ShardConnection;
/** The ops of each request frame the shard received, in arrival order. */
let frames: string[][];
/** While set, a frame holding a write waits for it before it runs. */
let gate: Promise<void> | undefined;
/** While set, a frame of only reads waits for it before it runs. */
let readGate: Promise<void> | undefined;

/** A connection to the test shard at `addr`, authenticated with the test secret. */
function connectionTo(addr: string, requestTimeoutMs: number): ShardConnection {
  return new ShardConnection('a', addr, {
    requestTimeoutMs,
    connectTimeoutMs: 5000,
    maxInFlightPerShard: 1000,
    maxFrameBytes: 1 << 20,
    clusterSecret: SECRET,
    dataTls: false,
    tlsCaFile: '',
    dataPingIntervalMs: 0,
  });
}

const opOf = (r: unknown): string =>
  Array.isArray(r) ? (r[0] === TAGS.GET ? 'get' : r[0] === TAGS.PUT ? 'put' : r[0] === TAGS.DEL ? 'del' : '?') : String((r as { o: unknown }).o);

beforeEach(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'shardkv-client-'));
  store = new Store({ path: dir, mapSizeBytes: 64 * 1024 * 1024, noSync: true, tombstoneGraceMs: 60_000 });
  const handler = new FrameHandler({
    shardId: 'a',
    store,
    limits: LIMIT_DEFAULTS,
    view: () => ({ epoch: EPOCH, ring: Ring.of([{ id: 'a', weight: 1 }]) }),
    refresh: async () => undefined,
  });
  frames = [];
  gate = undefined;
  readGate = undefined;
  const recording = {
    handle: async (reqs: Request[]): Promise<Response[]> => {
      const ops = reqs.map(opOf);
      frames.push(ops);
      if (gate && ops.some((o) => o === 'put' || o === 'del')) await gate;
      if (readGate && ops.every((o) => o === 'get')) await readGate;
      return handler.handle(reqs);
    },
  } as unknown as FrameHandler;
  server = createDataServer(recording, {
    id: 'a',
    clusterSecret: SECRET,
    maxFrameBytes: 1 << 20,
    maxInFlightPerConnection: 1000,
    maxDataConnections: 10,
    handshakeTimeoutMs: 5000,
    dataIdleTimeoutMs: 60_000,
    maxBufferedFrameBytes: 1 << 24,
    tlsCertFile: '',
    tlsKeyFile: '',
  });
  const port = await server.listen(0, '127.0.0.1');
  conn = connectionTo(`127.0.0.1:${port}`, 10_000);
  // Connected and authenticated before the tests count frames.
  await conn.request({ o: OPS.PING, e: 0 });
  frames = [];
});

afterEach(async () => {
  openReads?.();
  conn.close();
  await server.close(1000);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

let openReads: (() => void) | undefined;
/** Hold the shard's read frames until the returned function is called. */
function holdReads(): () => void {
  readGate = new Promise<void>((resolve) => (openReads = resolve));
  return () => {
    readGate = undefined;
    openReads!();
  };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const until = (what: string, cond: () => boolean) => waitUntil(cond, { timeoutMs: 5000, intervalMs: 5, what });

const put = (k: string, v: string) => conn.keyed({ o: OPS.PUT, k, v: Buffer.from(v), ct: 'text/plain', x: 0 }, EPOCH);
const get = (k: string) => conn.keyed({ o: OPS.GET, k }, EPOCH);

describe('ShardConnection framing', () => {
  it('sends the reads and the writes of one turn in two frames, reads first', async () => {
    await put('k0', 'zero');
    frames = [];
    const answers = await Promise.all([get('k0'), put('k1', 'one'), get('k0'), conn.keyed({ o: OPS.DEL, k: 'k0' }, EPOCH), get('k2')]);
    expect(frames).toEqual([
      ['get', 'get', 'get'],
      ['put', 'del'],
    ]);
    expect(Buffer.from((answers[0] as { v: Uint8Array }).v).toString()).toBe('zero');
    expect(answers[4]).toBeNull();
    expect(Buffer.from(((await get('k1')) as { v: Uint8Array }).v).toString()).toBe('one');
  });

  it('keeps a turn of only reads or only writes in one frame', async () => {
    await Promise.all([get('a'), get('b'), get('c')]);
    await Promise.all([put('a', '1'), put('b', '2')]);
    expect(frames).toEqual([
      ['get', 'get', 'get'],
      ['put', 'put'],
    ]);
  });

  it('answers a read while a write queued beside it still waits', async () => {
    await put('k', 'before');
    let open!: () => void;
    gate = new Promise<void>((resolve) => (open = resolve));
    let written = false;
    const w = put('k', 'after').then(() => (written = true));
    const r = await get('k');
    // The read came back while the write it travelled beside is held.
    expect(written).toBe(false);
    expect(Buffer.from((r as { v: Uint8Array }).v).toString()).toBe('before');
    open();
    await w;
    expect(written).toBe(true);
    expect(Buffer.from(((await get('k')) as { v: Uint8Array }).v).toString()).toBe('after');
  });

  it('holds reads of later turns while a read frame is out, sends them in one frame after its answer, and never holds writes', async () => {
    await put('a', 'A');
    frames = [];
    const open = holdReads();
    const first = get('a');
    await until('the first read frame', () => frames.length === 1);
    const later = [get('a')];
    await nextTurn();
    later.push(get('b'));
    await nextTurn();
    // A write is not held behind the reads.
    await put('c', 'C');
    later.push(get('c'));
    await nextTurn();
    expect(frames).toEqual([['get'], ['put']]);
    open();
    expect(Buffer.from(((await first) as { v: Uint8Array }).v).toString()).toBe('A');
    const answers = await Promise.all(later);
    expect(frames).toEqual([['get'], ['put'], ['get', 'get', 'get']]);
    expect(answers.map((r) => (r === null ? null : Buffer.from((r as { v: Uint8Array }).v).toString()))).toEqual(['A', null, 'C']);
  });

  /** On a connection of its own: a read the shard holds until `open()`, once its frame has arrived. */
  async function stuckRead(quick: ShardConnection): Promise<{ open: () => void; stuck: Promise<unknown>; sentAt: number }> {
    await quick.request({ o: OPS.PING, e: 0 });
    await put('k', 'v');
    frames = [];
    const open = holdReads();
    const sentAt = Date.now();
    const stuck = quick.keyed({ o: OPS.GET, k: 'k' }, EPOCH);
    await until('the stuck read frame', () => frames.length === 1);
    return { open, stuck, sentAt };
  }

  it('sends a held read as soon as the read ahead of it times out', async () => {
    const quick = connectionTo(conn.addr, 1000);
    try {
      const { open, stuck, sentAt } = await stuckRead(quick);
      // Queued well after the stuck read, so its own deadline is later.
      await until('half the timeout', () => Date.now() - sentAt >= 500);
      const held = quick.keyed({ o: OPS.GET, k: 'k' }, EPOCH);
      await nextTurn();
      expect(frames).toEqual([['get']]);
      await expect(stuck).rejects.toMatchObject({ code: 'KV_ERR_TIMEOUT' });
      open();
      // The stuck read's late answer is dropped; the held one went out when the stuck one timed out.
      expect(Buffer.from(((await held) as { v: Uint8Array }).v).toString()).toBe('v');
      expect(frames).toEqual([['get'], ['get']]);
    } finally {
      quick.close();
    }
  });

  it('times out reads the shard never answers with KV_ERR_TIMEOUT, held or sent, and then sends reads again', async () => {
    const quick = connectionTo(conn.addr, 300);
    try {
      const { open, stuck } = await stuckRead(quick);
      const held = quick.keyed({ o: OPS.GET, k: 'k' }, EPOCH);
      await expect(stuck).rejects.toMatchObject({ code: 'KV_ERR_TIMEOUT' });
      await expect(held).rejects.toMatchObject({ code: 'KV_ERR_TIMEOUT' });
      open();
      const again = await quick.keyed({ o: OPS.GET, k: 'k' }, EPOCH);
      expect(Buffer.from((again as { v: Uint8Array }).v).toString()).toBe('v');
    } finally {
      quick.close();
    }
  });
});
