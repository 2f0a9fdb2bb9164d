// The shard's binary data port: length-prefixed msgpack frames (core/protocol.ts).
//
// A peer first proves the cluster secret (core/handshake.ts): until it has,
// it may send only its handshake frame (at most HANDSHAKE_MAX_FRAME_BYTES),
// within handshakeTimeoutMs; anything else cuts the connection, and the
// refusal is counted. Then: one response frame per request frame. A protocol
// violation (oversized or undecodable frame) closes that connection only.
// Limits: maxDataConnections open connections (more are dropped at once), a
// connection with nothing in flight closes after dataIdleTimeoutMs of
// silence, and all connections together buffer at most maxBufferedFrameBytes
// of frames still arriving (the connection that would go over is cut).
//
// close() drains: it stops accepting, refuses new frames with
// KV_ERR_SHARD_UNAVAILABLE (nothing written), lets frames already running
// answer, then ends each connection.
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { encodeFrame, FrameDecoder, type Request, type Response } from '../core/protocol.js';
import { kvError, toWire, type KvError } from '../core/errors.js';
import { HANDSHAKE_MAX_FRAME_BYTES, HANDSHAKE_VERSION, isAuth, newNonce, peerProof, proofMatches, shardProof } from '../core/handshake.js';
import type { FrameHandler } from './frame-handler.js';

export interface DataServerOptions {
  readonly id: string;
  /** Empty only with insecure=true: peers then prove an empty secret. */
  readonly clusterSecret: string;
  readonly maxFrameBytes: number;
  readonly maxInFlightPerConnection: number;
  readonly maxDataConnections: number;
  readonly handshakeTimeoutMs: number;
  readonly dataIdleTimeoutMs: number;
  readonly maxBufferedFrameBytes: number;
  readonly tlsCertFile: string;
  readonly tlsKeyFile: string;
}

/** What the data port has refused, for stats and metrics. */
export interface DataServerCounters {
  /** Peers that proved the secret. */
  authenticated: number;
  /** Peers cut before or during the handshake (wrong proof, other frames first, too slow). */
  authFailures: number;
  /** Connections dropped above maxDataConnections. */
  connectionsRefused: number;
  /** Connections closed after dataIdleTimeoutMs of silence. */
  idleClosed: number;
  /** Connections cut for a bad or oversized frame, or for going over maxBufferedFrameBytes. */
  protocolErrors: number;
}

export interface DataServer {
  readonly server: net.Server;
  readonly counters: DataServerCounters;
  listen(port: number, host: string): Promise<number>;
  /** Drain and close; resolves when every connection has ended (or after timeoutMs). */
  close(timeoutMs: number): Promise<void>;
}

/** How long a refused peer's connection stays open for the refusal to reach it. */
const DENY_LINGER_MS = 1000;

interface Conn {
  inFlight: number;
  /** Frame bytes this connection has buffered (counted in the server's total). */
  buffered: number;
}

export function createDataServer(handler: FrameHandler, opts: DataServerOptions): DataServer {
  const conns = new Map<net.Socket, Conn>();
  const counters: DataServerCounters = { authenticated: 0, authFailures: 0, connectionsRefused: 0, idleClosed: 0, protocolErrors: 0 };
  let closing = false;
  let totalBuffered = 0;

  const refuseAll = (reqs: Request[], err: KvError): Response[] => {
    const wire = toWire(err);
    return reqs.map((r) => ({ i: typeof r?.i === 'number' ? r.i : -1, err: wire }));
  };

  const serve = (socket: net.Socket) => {
    const conn: Conn = { inFlight: 0, buffered: 0 };
    conns.set(socket, conn);
    socket.setNoDelay(true);
    const decoder = new FrameDecoder(HANDSHAKE_MAX_FRAME_BYTES);
    const write = (responses: Response[]): void => {
      if (socket.writable) socket.write(encodeFrame(responses));
    };
    const endIfDrained = () => {
      if (closing && conn.inFlight === 0) socket.end();
    };
    /** Run one frame and answer it; one function per connection, not a chain of closures per frame. */
    const run = async (reqs: Request[]): Promise<void> => {
      conn.inFlight += reqs.length;
      try {
        write(await handler.handle(reqs));
      } catch (err) {
        write(refuseAll(reqs, err instanceof Error && 'code' in err ? (err as KvError) : kvError('KV_ERR_INTERNAL', String(err))));
      }
      conn.inFlight -= reqs.length;
      endIfDrained();
    };

    // The handshake: our nonce first, then the peer's proof.
    const nonce = newNonce();
    let authed = false;
    const deny = (why: string) => {
      counters.authFailures++;
      // Say why, then close: end() lets the refusal reach the peer; nothing more is read.
      socket.pause();
      if (socket.writable) socket.end(encodeFrame({ denied: HANDSHAKE_VERSION, ...toWire(kvError('KV_ERR_AUTH_FAILED', why)) }));
      setTimeout(() => socket.destroy(), DENY_LINGER_MS).unref();
    };
    const handshakeTimer = setTimeout(() => deny(`no handshake within ${opts.handshakeTimeoutMs} ms`), opts.handshakeTimeoutMs);
    socket.write(encodeFrame({ hello: HANDSHAKE_VERSION, id: opts.id, nonce }));
    const authenticate = (frame: unknown): void => {
      if (!isAuth(frame)) return deny('the first frame must be the handshake');
      if (!proofMatches(frame.proof, peerProof(opts.clusterSecret, opts.id, nonce, frame.nonce))) return deny("the proof does not match this cluster's secret");
      clearTimeout(handshakeTimer);
      authed = true;
      counters.authenticated++;
      decoder.setMaxFrameBytes(opts.maxFrameBytes);
      socket.write(encodeFrame({ ok: HANDSHAKE_VERSION, proof: shardProof(opts.clusterSecret, opts.id, nonce, frame.nonce) }));
      socket.setTimeout(opts.dataIdleTimeoutMs);
    };
    /** Cut this peer: its buffered bytes leave the total at once, not when 'close' comes (a later event turn). */
    const cut = (): void => {
      totalBuffered -= conn.buffered;
      conn.buffered = 0;
      socket.destroy();
    };
    socket.on('timeout', () => {
      if (conn.inFlight > 0) return; // busy, not idle
      counters.idleClosed++;
      cut();
    });

    socket.on('data', (chunk: Buffer) => {
      let frames: unknown[];
      try {
        frames = decoder.push(chunk);
      } catch {
        if (authed) counters.protocolErrors++;
        else counters.authFailures++;
        cut();
        return;
      }
      const grew = decoder.buffered > conn.buffered;
      totalBuffered += decoder.buffered - conn.buffered;
      conn.buffered = decoder.buffered;
      // Only the peer whose bytes go over the budget is cut; one that buffers
      // nothing more (a router's whole frames) is never cut for another's.
      if (grew && totalBuffered > opts.maxBufferedFrameBytes) {
        counters.protocolErrors++;
        cut();
        return;
      }
      for (const frame of frames) {
        if (!authed) {
          authenticate(frame);
          if (!authed) return;
          continue;
        }
        if (!Array.isArray(frame)) {
          counters.protocolErrors++;
          cut();
          return;
        }
        const reqs = frame as Request[];
        if (closing) {
          write(refuseAll(reqs, kvError('KV_ERR_SHARD_UNAVAILABLE', opts.id, 'shutting down')));
          continue;
        }
        if (conn.inFlight + reqs.length > opts.maxInFlightPerConnection) {
          write(refuseAll(reqs, kvError('KV_ERR_OVERLOADED', opts.id, opts.maxInFlightPerConnection)));
          continue;
        }
        void run(reqs);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(handshakeTimer);
      totalBuffered -= conn.buffered;
      conns.delete(socket);
    });
  };

  const server: net.Server = opts.tlsCertFile
    ? tls.createServer({ cert: readFileSync(opts.tlsCertFile), key: readFileSync(opts.tlsKeyFile), handshakeTimeout: opts.handshakeTimeoutMs }, serve)
    : net.createServer(serve);
  server.maxConnections = opts.maxDataConnections;
  server.on('drop', () => {
    counters.connectionsRefused++;
  });
  // A TLS handshake that fails never reaches serve(); it still counts as a refused peer.
  server.on('tlsClientError', () => {
    counters.authFailures++;
  });

  return {
    server,
    counters,
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
        const timer = setTimeout(() => {
          for (const s of conns.keys()) s.destroy();
        }, timeoutMs);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        for (const [s, c] of conns) if (c.inFlight === 0) s.end();
      });
    },
  };
}
