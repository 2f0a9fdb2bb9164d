// A raw HTTP/1.1 client on node:net, for requests that a real client refuses
// to send: lying or malformed framing, bad versions, garbage, huge headers,
// slow bodies. It writes the given pieces (optionally paced), reads until the
// server closes the connection (or a deadline), and parses every response
// that came back: status line, headers, and a body framed by Content-Length,
// chunked encoding or the end of the connection.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Bytes to send, or a pause before the next piece (a slow sender). */
export type RawPiece = string | Buffer | { readonly pauseMs: number };

export interface RawResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  readonly json: unknown;
}

export interface RawResult {
  readonly responses: RawResponse[];
  /** The server closed the connection (else the deadline cut it). */
  readonly closed: boolean;
  /** Bytes after the last complete response that do not parse as one. */
  readonly garbage: Buffer;
  /** When the first response byte arrived, in ms after the connection opened (undefined: none). */
  readonly firstByteMs: number | undefined;
  readonly elapsedMs: number;
}

export interface RawOptions {
  readonly host?: string;
  /** Give up (and destroy the socket) after this long. */
  readonly timeoutMs?: number;
  /** Methods of the requests in order, so that a HEAD response is read without a body. */
  readonly methods?: readonly string[];
  /** Stop reading once this many responses have arrived (for keep-alive connections). */
  readonly responses?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

export async function rawHttp(port: number, pieces: readonly RawPiece[], o: RawOptions = {}): Promise<RawResult> {
  const started = performance.now();
  const socket = net.connect(port, o.host ?? '127.0.0.1');
  socket.setNoDelay(true);
  const chunks: Buffer[] = [];
  let firstByteMs: number | undefined;
  let closed = false;
  let wake: () => void = () => {};
  const closedP = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closed = true;
      resolve();
    }),
  );
  socket.on('error', () => {});
  socket.on('data', (d: Buffer) => {
    firstByteMs ??= performance.now() - started;
    chunks.push(d);
    wake();
  });
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = sleep(timeoutMs, 'timeout' as const, { ref: false });
  const connected = await Promise.race([
    new Promise<'ok'>((resolve) => socket.once('connect', () => resolve('ok'))),
    closedP.then(() => 'closed' as const),
    deadline,
  ]);
  if (connected === 'ok') {
    for (const p of pieces) {
      if (closed) break;
      if (typeof p === 'object' && !Buffer.isBuffer(p)) {
        await sleep(p.pauseMs);
        continue;
      }
      // Write errors (the server hung up mid-request) are fine: what it
      // answered before is still read.
      await new Promise<void>((resolve) => socket.write(p, () => resolve()));
    }
    // Wait for the server to close, or for the responses asked for.
    const enough = () => o.responses !== undefined && parseResponses(Buffer.concat(chunks), o.methods ?? [], false).responses.length >= o.responses;
    await Promise.race([
      closedP,
      deadline,
      new Promise<void>((resolve) => {
        wake = () => {
          if (enough()) resolve();
        };
        wake();
      }),
    ]);
  }
  socket.destroy();
  const parsed = parseResponses(Buffer.concat(chunks), o.methods ?? [], closed);
  return { ...parsed, closed, firstByteMs, elapsedMs: performance.now() - started };
}

/** Split a byte stream into HTTP responses; what does not parse is left as garbage. */
export function parseResponses(buf: Buffer, methods: readonly string[], ended: boolean): { responses: RawResponse[]; garbage: Buffer } {
  const responses: RawResponse[] = [];
  let off = 0;
  for (;;) {
    const headEnd = buf.indexOf('\r\n\r\n', off);
    if (headEnd < 0) break;
    const lines = buf.toString('latin1', off, headEnd).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
    if (!m) break;
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const status = Number(m[1]);
    let p = headEnd + 4;
    let body: Buffer;
    const noBody = methods[responses.length] === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
    if (noBody) {
      body = Buffer.alloc(0);
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = [];
      let complete = false;
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', p);
        if (lineEnd < 0) break;
        const size = parseInt(buf.toString('latin1', p, lineEnd), 16);
        if (!Number.isFinite(size)) break;
        if (size === 0) {
          const trailerEnd = buf.indexOf('\r\n\r\n', lineEnd);
          if (trailerEnd < 0) break;
          p = trailerEnd + 4;
          complete = true;
          break;
        }
        if (lineEnd + 2 + size + 2 > buf.length) break;
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        p = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (!Number.isSafeInteger(n) || p + n > buf.length) break;
      body = buf.subarray(p, p + n);
      p += n;
    } else {
      // Delimited by the end of the connection.
      if (!ended) break;
      body = buf.subarray(p);
      p = buf.length;
    }
    let json: unknown;
    try {
      json = body.length > 0 ? JSON.parse(body.toString('utf8')) : undefined;
    } catch {
      json = undefined;
    }
    // An interim answer (100 Continue) is not the answer.
    if (status >= 200) responses.push({ status, headers, body, json });
    off = p;
  }
  return { responses, garbage: buf.subarray(off) };
}
