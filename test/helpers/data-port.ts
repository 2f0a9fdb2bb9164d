// A raw peer on a shard's data port, for tests that speak the protocol by
// hand: it can do the handshake (with the right secret, a wrong one, or not
// at all), send frames or raw bytes, and read the frames that come back.
import net from 'node:net';
import { encodeFrame, FrameDecoder } from '../../src/core/protocol.js';
import { HANDSHAKE_VERSION, isHello, newNonce, peerProof } from '../../src/core/handshake.js';
import { TEST_CLUSTER_SECRET } from './secrets.js';

export class RawPeer {
  readonly socket: net.Socket;
  readonly #frames: unknown[] = [];
  readonly #waiters = new Set<() => void>();
  readonly closed: Promise<void>;
  #isClosed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    const dec = new FrameDecoder(1 << 26);
    socket.on('data', (d: Buffer) => {
      try {
        this.#frames.push(...dec.push(d));
      } catch {
        socket.destroy();
      }
      this.#wake();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.#isClosed = true;
        this.#wake();
        resolve();
      }),
    );
  }

  #wake(): void {
    for (const w of this.#waiters) w();
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Connect; with `secret` (default: the test secret) also authenticate, as a router does. `secret: null` skips the handshake. */
  static async connect(port: number, o: { secret?: string | null } = {}): Promise<RawPeer> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    const peer = new RawPeer(socket);
    const hello = await peer.next();
    if (!isHello(hello)) throw new Error(`expected the shard's hello, got ${JSON.stringify(hello)}`);
    if (o.secret === null) return peer;
    const nonce = newNonce();
    peer.send({ auth: HANDSHAKE_VERSION, nonce, proof: peerProof(o.secret ?? TEST_CLUSTER_SECRET, hello.id, hello.nonce, nonce) });
    const answer = (await peer.next()) as Record<string, unknown>;
    if (answer['ok'] !== HANDSHAKE_VERSION) throw Object.assign(new Error(`handshake refused: ${JSON.stringify(answer)}`), { answer });
    return peer;
  }

  /** Send a frame body (encoded), or raw bytes as they are. */
  send(body: unknown): void {
    this.socket.write(Buffer.isBuffer(body) ? body : encodeFrame(body));
  }

  /** The next frame; rejects when the connection closes first or after `timeoutMs`. */
  next(timeoutMs = 5000): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.#frames.length > 0) return done(() => resolve(this.#frames.shift()));
        if (this.#isClosed) done(() => reject(new Error('connection closed')));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no frame within ${timeoutMs} ms`))), timeoutMs);
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        f();
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Resolves 'closed' when the shard closes the connection within `timeoutMs`, else 'open'. */
  async closedWithin(timeoutMs: number): Promise<'closed' | 'open'> {
    const t = new Promise<'open'>((r) => setTimeout(() => r('open'), timeoutMs).unref());
    return Promise.race([this.closed.then(() => 'closed' as const), t]);
  }

  close(): void {
    this.socket.destroy();
  }
}
