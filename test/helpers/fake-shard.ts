// A scriptable fake shard for fault cases that real shards cannot produce on
// demand: it speaks the frame protocol and can hang, hang up or answer with an
// error code, for every request (`mode`) or per request (`answer`).
import net from 'node:net';
import { encodeFrame, FrameDecoder, type Request } from '../../src/core/protocol.js';
import { HANDSHAKE_VERSION, isAuth, newNonce, peerProof, proofMatches, shardProof } from '../../src/core/handshake.js';

import { TEST_CLUSTER_SECRET } from './secrets.js';

export { TEST_CLUSTER_SECRET };

export type FakeMode =
  { kind: 'hang' } | { kind: 'hangup' } | { kind: 'error'; code: string; message: string } | { kind: 'ok' } | { kind: 'delay'; ms: number };

/** The scripted answer to one request. */
export type FakeAnswer =
  | { r: unknown }
  | { err: { code: string; message: string; [k: string]: unknown } }
  | { hang: true }
  /** Close the connection without answering (requests on it are lost). */
  | { hangup: true };

export class FakeShard {
  mode: FakeMode = { kind: 'ok' };
  /**
   * Per-request script: each request gets its own answer (possibly later);
   * undefined falls back to `mode` for that request.
   */
  answer: ((req: Request) => FakeAnswer | Promise<FakeAnswer> | undefined) | undefined;
  readonly received: Request[] = [];
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  port = 0;

  /** Peers that failed the handshake. */
  authFailures = 0;

  /** A shard `id` that proves `secret` in the handshake, as a real shard does. */
  constructor(
    readonly id = 'f1',
    readonly secret = TEST_CLUSTER_SECRET,
  ) {
    this.#server = net.createServer((s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => {});
      const dec = new FrameDecoder(1 << 26);
      const nonce = newNonce();
      let authed = false;
      s.write(encodeFrame({ hello: HANDSHAKE_VERSION, id: this.id, nonce }));
      s.on('data', (chunk: Buffer) => {
        for (const frame of dec.push(chunk)) {
          if (!authed) {
            if (!isAuth(frame) || !proofMatches(frame.proof, peerProof(this.secret, this.id, nonce, frame.nonce))) {
              this.authFailures++;
              s.destroy();
              return;
            }
            authed = true;
            s.write(encodeFrame({ ok: HANDSHAKE_VERSION, proof: shardProof(this.secret, this.id, nonce, frame.nonce) }));
            continue;
          }
          const reqs = frame as Request[];
          this.received.push(...reqs);
          const byMode: Request[] = [];
          for (const r of reqs) {
            const scripted = this.answer?.(r);
            if (scripted === undefined) byMode.push(r);
            else void Promise.resolve(scripted).then((a) => this.#send(s, r, a));
          }
          if (byMode.length > 0) this.#byMode(s, byMode);
        }
      });
    });
  }

  /** Requests received with op `o` (and key `k`, if given). */
  requests(o: string, k?: string): Request[] {
    return this.received.filter((r) => r.o === o && (k === undefined || (r as { k?: string }).k === k));
  }

  #send(s: net.Socket, req: Request, a: FakeAnswer): void {
    if (s.destroyed) return;
    if ('hang' in a) return;
    if ('hangup' in a) {
      s.destroy();
      return;
    }
    s.write(encodeFrame([{ i: req.i, ...a }]));
  }

  #byMode(s: net.Socket, reqs: Request[]): void {
    const m = this.mode;
    if (m.kind === 'hang') return;
    if (m.kind === 'hangup') {
      s.destroy();
      return;
    }
    const ok = () => encodeFrame(reqs.map((r) => ({ i: r.i, r: r.o === 'get' ? null : { ver: 1, deleted: true } })));
    if (m.kind === 'error') s.write(encodeFrame(reqs.map((r) => ({ i: r.i, err: { code: m.code, message: m.message } }))));
    else if (m.kind === 'delay')
      setTimeout(() => {
        if (!s.destroyed) s.write(ok());
      }, m.ms);
    else s.write(ok());
  }

  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }

  listen(): Promise<void> {
    return new Promise((resolve) =>
      this.#server.listen(0, '127.0.0.1', () => {
        this.port = (this.#server.address() as net.AddressInfo).port;
        resolve();
      }),
    );
  }

  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
