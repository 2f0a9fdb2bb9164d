// A scriptable fake shard for fault cases that real shards cannot produce on
// demand: it speaks the frame protocol and can hang, hang up or answer with an
// error code.
import net from 'node:net';
import { encodeFrame, FrameDecoder, type Request } from '../../src/core/protocol.js';

export type FakeMode =
  | { kind: 'hang' }
  | { kind: 'hangup' }
  | { kind: 'error'; code: string; message: string }
  | { kind: 'ok' }
  | { kind: 'delay'; ms: number };

export class FakeShard {
  mode: FakeMode = { kind: 'ok' };
  readonly received: Request[] = [];
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  port = 0;

  constructor() {
    this.#server = net.createServer((s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => {});
      const dec = new FrameDecoder(1 << 26);
      s.on('data', (chunk: Buffer) => {
        for (const frame of dec.push(chunk)) {
          const reqs = frame as Request[];
          this.received.push(...reqs);
          const m = this.mode;
          if (m.kind === 'hang') continue;
          if (m.kind === 'hangup') { s.destroy(); return; }
          const ok = () => encodeFrame(reqs.map((r) => ({ i: r.i, r: r.o === 'get' ? null : { ver: 1, deleted: true } })));
          if (m.kind === 'error') s.write(encodeFrame(reqs.map((r) => ({ i: r.i, err: { code: m.code, message: m.message } }))));
          else if (m.kind === 'delay') setTimeout(() => { if (!s.destroyed) s.write(ok()); }, m.ms);
          else s.write(ok());
        }
      });
    });
  }

  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.#server.listen(0, '127.0.0.1', () => {
      this.port = (this.#server.address() as net.AddressInfo).port;
      resolve();
    }));
  }

  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
