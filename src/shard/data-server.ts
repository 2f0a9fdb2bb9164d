// The shard's binary data port: length-prefixed msgpack frames (src/protocol.ts).
// One response frame per request frame. A protocol violation (oversized or
// undecodable frame) closes that connection only. close() drains: it stops
// accepting, refuses new frames with KV_ERR_SHARD_UNAVAILABLE (nothing
// written), lets frames already running answer, then ends each connection.
import net from 'node:net';
import { encodeFrame, FrameDecoder, type Request, type Response } from '../core/protocol.js';
import { kvError, toWire, type KvError } from '../core/errors.js';
import type { FrameHandler } from './frame-handler.js';

export interface DataServerOptions {
  readonly id: string;
  readonly maxFrameBytes: number;
  readonly maxInFlightPerConnection: number;
}

export interface DataServer {
  readonly server: net.Server;
  listen(port: number, host: string): Promise<number>;
  /** Drain and close; resolves when every connection has ended (or after timeoutMs). */
  close(timeoutMs: number): Promise<void>;
}

interface Conn {
  inFlight: number;
}

export function createDataServer(handler: FrameHandler, opts: DataServerOptions): DataServer {
  const conns = new Map<net.Socket, Conn>();
  let closing = false;

  const refuseAll = (reqs: Request[], err: KvError): Response[] => {
    const wire = toWire(err);
    return reqs.map((r) => ({ i: typeof r?.i === 'number' ? r.i : -1, err: wire }));
  };

  const server = net.createServer((socket) => {
    const conn: Conn = { inFlight: 0 };
    conns.set(socket, conn);
    socket.setNoDelay(true);
    const decoder = new FrameDecoder(opts.maxFrameBytes);
    const write = (responses: Response[]): void => {
      if (socket.writable) socket.write(encodeFrame(responses));
    };
    const endIfDrained = () => {
      if (closing && conn.inFlight === 0) socket.end();
    };
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
        if (closing) {
          write(refuseAll(reqs, kvError('KV_ERR_SHARD_UNAVAILABLE', opts.id, 'shutting down')));
          continue;
        }
        if (conn.inFlight + reqs.length > opts.maxInFlightPerConnection) {
          write(refuseAll(reqs, kvError('KV_ERR_OVERLOADED', opts.id, opts.maxInFlightPerConnection)));
          continue;
        }
        conn.inFlight += reqs.length;
        handler.handle(reqs).then(write, (err: unknown) => {
          write(refuseAll(reqs, err instanceof Error && 'code' in err ? (err as KvError) : kvError('KV_ERR_INTERNAL', String(err))));
        }).finally(() => {
          conn.inFlight -= reqs.length;
          endIfDrained();
        });
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => conns.delete(socket));
  });

  return {
    server,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve((server.address() as net.AddressInfo).port);
        });
      });
    },
    close(timeoutMs) {
      closing = true;
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => { for (const s of conns.keys()) s.destroy(); }, timeoutMs);
        server.close(() => { clearTimeout(timer); resolve(); });
        for (const [s, c] of conns) if (c.inFlight === 0) s.end();
      });
    },
  };
}
