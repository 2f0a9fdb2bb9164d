// A scriptable HTTP server that stands in for a router in the client's unit
// tests: it records every request and answers as the test's handler says
// (a status and body, a hang, or a dropped connection).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

export type Reply =
  | { status: number; headers?: Record<string, string>; body?: string | Buffer | object }
  /** Never answer (until the server closes). */
  | 'hang'
  /** Destroy the connection after the request arrived. */
  | 'drop';

export type Handler = (req: SeenRequest) => Reply;

export class FakeRouter {
  readonly seen: SeenRequest[] = [];
  handler: Handler;
  readonly #server: http.Server;
  port = 0;

  private constructor(handler: Handler) {
    this.handler = handler;
    this.#server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
        this.seen.push(seen);
        const r = this.handler(seen);
        if (r === 'hang') return;
        if (r === 'drop') return void req.socket.destroy();
        const body = r.body === undefined ? '' : Buffer.isBuffer(r.body) || typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
        const type = r.body !== undefined && typeof r.body === 'object' && !Buffer.isBuffer(r.body) ? { 'content-type': 'application/json' } : {};
        res.writeHead(r.status, { ...type, ...r.headers });
        res.end(req.method === 'HEAD' ? undefined : body);
      });
    });
  }

  /** Listen on `port` (default: any free one). */
  static async start(handler: Handler, port = 0): Promise<FakeRouter> {
    const f = new FakeRouter(handler);
    await new Promise<void>((resolve, reject) => {
      f.#server.once('error', reject);
      f.#server.listen(port, '127.0.0.1', resolve);
    });
    f.port = (f.#server.address() as AddressInfo).port;
    return f;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Requests other than readiness probes. */
  get data(): SeenRequest[] {
    return this.seen.filter((r) => r.url !== '/readyz');
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** An error answer as a router sends it. */
export const kvErr = (status: number, code: string, message = code, headers: Record<string, string> = {}): Reply => ({
  status,
  headers,
  body: { code, message, requestId: 'req-1' },
});
