// The shard's binary data port: length-prefixed msgpack frames (src/protocol.ts).
// One response frame per request frame. A protocol violation (oversized or
// undecodable frame) closes that connection only.
import net from 'node:net';
import { encodeFrame, FrameDecoder, type Request, type Response } from '../src/protocol.js';
import { kvError, toWire } from '../src/errors.js';
import type { FrameHandler } from './handler.js';

export interface DataServerOptions {
  readonly maxFrameBytes: number;
  readonly maxInFlightPerConnection: number;
}

export function createDataServer(handler: FrameHandler, opts: DataServerOptions): net.Server {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    const decoder = new FrameDecoder(opts.maxFrameBytes);
    let inFlight = 0;
    socket.on('data', (chunk: Buffer) => {
      let frames: unknown[];
      try {
        frames = decoder.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const frame of frames) {
        if (!Array.isArray(frame)) { socket.destroy(); return; }
        const reqs = frame as Request[];
        if (inFlight + reqs.length > opts.maxInFlightPerConnection) {
          const err = toWire(kvError('KV_ERR_OVERLOADED', 'this shard', opts.maxInFlightPerConnection));
          write(reqs.map((r): Response => ({ i: typeof r?.i === 'number' ? r.i : -1, err })));
          continue;
        }
        inFlight += reqs.length;
        handler.handle(reqs).then(write, (err: unknown) => {
          const wire = toWire(err);
          write(reqs.map((r): Response => ({ i: typeof r?.i === 'number' ? r.i : -1, err: wire })));
        }).finally(() => { inFlight -= reqs.length; });
      }
    });
    const write = (responses: Response[]): void => {
      if (!socket.destroyed) socket.write(encodeFrame(responses));
    };
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('close', () => { for (const s of sockets) s.destroy(); });
  // Let close() finish even while routers keep their connections open.
  const origClose = server.close.bind(server);
  server.close = ((cb?: (err?: Error) => void) => {
    origClose(cb);
    for (const s of sockets) s.end();
    return server;
  }) as typeof server.close;
  return server;
}
