// The shard's data port and its shared budget of frame bytes still arriving
// (maxBufferedFrameBytes): the peer that goes over it is cut, and only that
// one. A peer sending whole frames (a router) must never be cut because
// another peer was: neither in the same event turn as that cut nor after it.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Request, Response } from '../../src/core/protocol.js';
import { createDataServer, type DataServer } from '../../src/shard/data-server.js';
import type { FrameHandler } from '../../src/shard/frame-handler.js';
import { RawPeer } from '../helpers/data-port.js';
import { TEST_CLUSTER_SECRET } from '../helpers/secrets.js';

const BUDGET = 100_000;

let server: DataServer;
let port: number;

/** A frame handler that answers every request with its id. */
const echo = { handle: async (reqs: Request[]): Promise<Response[]> => reqs.map((r) => ({ i: r.i, r: 'ok' }) as Response) } as unknown as FrameHandler;

/** The first `sent` bytes of a frame whose header announces `announced` body bytes. */
function partial(announced: number, sent: number): Buffer {
  const b = Buffer.alloc(4 + sent, 0x90);
  b.writeUInt32BE(announced, 0);
  return b;
}

beforeEach(async () => {
  server = createDataServer(echo, {
    id: 'a',
    clusterSecret: TEST_CLUSTER_SECRET,
    maxFrameBytes: 1 << 20,
    maxInFlightPerConnection: 1000,
    maxDataConnections: 100,
    handshakeTimeoutMs: 5000,
    dataIdleTimeoutMs: 60_000,
    maxBufferedFrameBytes: BUDGET,
    tlsCertFile: '',
    tlsKeyFile: '',
  });
  port = await server.listen(0, '127.0.0.1');
});

afterEach(async () => {
  await server.close(1000);
});

describe('data port: the buffered frame budget', () => {
  it('cuts the peer that goes over it, and never a peer sending whole frames, in the same turn or after', async () => {
    // A holds 60% of the budget in a frame it never finishes.
    const holder = await RawPeer.connect(port);
    holder.send(partial(60_000, 50_000));
    const router = await RawPeer.connect(port);
    // Make sure the holder's bytes are in before the rounds start.
    router.send([{ o: 'ping', i: 0, e: 0 }]);
    await router.next();
    for (let round = 1; round <= 20; round++) {
      const over = await RawPeer.connect(port);
      // The second partial frame goes over the budget; the router's whole
      // frame is written in the same turn, so the shard reads both in one
      // turn, before the cut peer's 'close' arrives.
      over.send(partial(60_000, 1_000));
      router.send([{ o: 'ping', i: round, e: 0 }]);
      expect(await over.closedWithin(3000)).toBe('closed');
      expect(await router.next(3000)).toEqual([{ i: round, r: 'ok' }]);
    }
    expect(router.isClosed).toBe(false);
    expect(holder.isClosed).toBe(false);
    // The cut peers' bytes left the budget: a frame that fits beside the holder's still comes in.
    const late = await RawPeer.connect(port);
    late.send(partial(30_000, 1_000));
    expect(await late.closedWithin(300)).toBe('open');
    for (const p of [holder, router, late]) p.close();
  });
});
