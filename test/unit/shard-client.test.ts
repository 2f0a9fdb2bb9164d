// The router's connection to one shard against a real data port (frame
// handler over a real LMDB store): how the requests of one event-loop turn
// travel. Reads and writes queued together go in separate frames, reads
// first, so a read is not answered only after a write's commit.
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
  const recording = {
    handle: async (reqs: Request[]): Promise<Response[]> => {
      const ops = reqs.map(opOf);
      frames.push(ops);
      if (gate && ops.some((o) => o === 'put' || o === 'del')) await gate;
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
  conn = new ShardConnection('a', `127.0.0.1:${port}`, {
    requestTimeoutMs: 10_000,
    connectTimeoutMs: 5000,
    maxInFlightPerShard: 1000,
    maxFrameBytes: 1 << 20,
    clusterSecret: SECRET,
    dataTls: false,
    tlsCaFile: '',
    dataPingIntervalMs: 0,
  });
  // Connected and authenticated before the tests count frames.
  await conn.request({ o: OPS.PING, e: 0 });
  frames = [];
});

afterEach(async () => {
  conn.close();
  await server.close(1000);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

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
});
