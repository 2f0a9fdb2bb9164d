// Tools of the hostile-input fuzz test: a small seeded PRNG (so a failing
// run can be repeated from its seed), the checks every answer must pass, and
// a data-port peer that can play the handshake any way a test wants.
import net from 'node:net';
import { ERRORS, isErrorCode } from '../../src/core/errors.js';
import { encodeFrame, FrameDecoder } from '../../src/core/protocol.js';
import { HANDSHAKE_VERSION, isHello, newNonce, peerProof, type Hello } from '../../src/core/handshake.js';
import { TEST_CLUSTER_SECRET } from './secrets.js';

/** mulberry32: tiny, fast and good enough to pick test cases. */
export class Rng {
  #s: number;

  constructor(seed: number) {
    this.#s = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('pick from an empty list');
    return xs[this.int(xs.length)]!;
  }

  /** One of `xs` with the given weights. */
  weighted<T>(xs: ReadonlyArray<readonly [number, T]>): T {
    const total = xs.reduce((n, [w]) => n + w, 0);
    let r = this.next() * total;
    for (const [w, x] of xs) {
      r -= w;
      if (r < 0) return x;
    }
    return xs[xs.length - 1]![1];
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** The seed of case `i` of a run: every case is the same whatever ran before it. */
export function caseSeed(seed: number, i: number): number {
  let h = (seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a whole number, got ${JSON.stringify(raw)}`);
  return n;
}

/** What a case demands of an HTTP answer. */
export type HttpExpect =
  /** A refusal: a documented 4xx (the case tried a write, or sent something no endpoint takes). */
  | 'refuse'
  /** A refusal, or 200 from a batch whose every result is a refusal. */
  | 'batch'
  /** 2xx or a documented 4xx. */
  | 'any';

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly json: unknown;
}

const STATUSES: ReadonlySet<number> = new Set(Object.values(ERRORS).map((e) => e.status));

/** The error body of a refusal: `{code, message, requestId}` with the status of `code`. */
function errorProblems(status: number, body: unknown, needRequestId: boolean): string[] {
  const o = body as Record<string, unknown> | null | undefined;
  if (typeof o !== 'object' || o === null) return [`${status} without a JSON error body`];
  const problems: string[] = [];
  const code = o['code'];
  if (!isErrorCode(code)) problems.push(`${status} with code ${JSON.stringify(code)}, not one of the error table`);
  else if (ERRORS[code].status !== status) problems.push(`${status} with ${code}, whose status is ${ERRORS[code].status}`);
  if (typeof o['message'] !== 'string' || o['message'].length === 0) problems.push(`${status} ${String(code)} without a message`);
  if (needRequestId && (typeof o['requestId'] !== 'string' || o['requestId'].length === 0)) problems.push(`${status} ${String(code)} without a requestId`);
  return problems;
}

/** Everything wrong with one HTTP answer. `head`: the request was HEAD (no body to check). */
export function httpProblems(res: HttpAnswer, expect: HttpExpect, head = false): string[] {
  const s = res.status;
  if (s >= 500) return [`server error ${s}: ${JSON.stringify(res.json)}`];
  if (s >= 200 && s < 300) {
    if (expect === 'refuse') return [`accepted with ${s} (expected a refusal)`];
    if (expect === 'batch' && s === 200) {
      const results = (res.json as { results?: unknown } | undefined)?.results;
      if (!Array.isArray(results)) return ['batch answered 200 without results'];
      const problems: string[] = [];
      for (const [n, r] of (results as Array<{ status?: unknown }>).entries()) {
        const rs = typeof r?.status === 'number' ? r.status : NaN;
        if (!(rs >= 400 && rs < 500)) problems.push(`batch result ${n} has status ${String(r?.status)} (expected a refusal)`);
        else problems.push(...errorProblems(rs, r, false).map((p) => `batch result ${n}: ${p}`));
      }
      return problems;
    }
    return [];
  }
  if (s < 400 || !STATUSES.has(s)) return [`status ${s} is not a documented answer`];
  if (head) return [];
  const problems = errorProblems(s, res.json, true);
  const ct = res.headers['content-type'];
  if (typeof ct !== 'string' || !ct.startsWith('application/json')) problems.push(`${s} with content-type ${String(ct)}`);
  return problems;
}

/** Everything wrong with a data-port answer to `sent` requests that must all be refused (optionally with one of `codes`). */
export function wireRefusalProblems(frame: unknown, sent: number, codes?: readonly string[]): string[] {
  if (!Array.isArray(frame)) return [`answer is not a response list: ${preview(frame)}`];
  const problems: string[] = [];
  if (frame.length !== sent) problems.push(`${frame.length} responses to ${sent} requests`);
  for (const r of frame as Array<{ i?: unknown; r?: unknown; err?: { code?: unknown; message?: unknown } }>) {
    const code = r?.err?.code;
    if (r?.err === undefined) problems.push(`request ${String(r?.i)} was answered ${preview(r?.r)}, not refused`);
    else if (!isErrorCode(code) || code === 'KV_ERR_INTERNAL') problems.push(`request ${String(r?.i)} refused with ${String(code)}: ${String(r.err.message)}`);
    else if (codes && !codes.includes(code))
      problems.push(`request ${String(r?.i)} refused with ${code} (${String(r.err.message)}), expected ${codes.join(' or ')}`);
    else if (typeof r.err.message !== 'string' || r.err.message.length === 0) problems.push(`request ${String(r?.i)} refused without a message`);
  }
  return problems;
}

export function preview(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v, (_k, x: unknown) => (x instanceof Uint8Array || (x as { type?: unknown })?.type === 'Buffer' ? '<bytes>' : x));
  } catch {
    s = String(v);
  }
  return s === undefined ? String(v) : s.length > 200 ? `${s.slice(0, 200)}...` : s;
}

/**
 * A peer on a shard's data port that plays the handshake as told: it keeps
 * the shard's hello, can answer it with any secret, replay another
 * connection's auth frame, or send something else first.
 */
export class WirePeer {
  readonly socket: net.Socket;
  hello: Hello | undefined;
  /** The auth frame this peer sent (to replay it elsewhere). */
  auth: Record<string, unknown> | undefined;
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

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Connect and read the shard's hello (no handshake yet). */
  static async open(port: number): Promise<WirePeer> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    const peer = new WirePeer(socket);
    const hello = await peer.next();
    if (!isHello(hello)) {
      peer.close();
      throw new Error(`expected the shard's hello, got ${preview(hello)}`);
    }
    peer.hello = hello;
    return peer;
  }

  /** Open and authenticate with `secret`; throws when the shard does not say ok. */
  static async authed(port: number, secret = TEST_CLUSTER_SECRET): Promise<WirePeer> {
    const peer = await WirePeer.open(port);
    peer.sendAuth(secret);
    const answer = (await peer.next()) as Record<string, unknown>;
    if (answer['ok'] !== HANDSHAKE_VERSION) {
      peer.close();
      throw new Error(`handshake refused: ${preview(answer)}`);
    }
    return peer;
  }

  /** Answer the hello with a proof of `secret` (for shard id `id`, default the one that said hello). */
  sendAuth(secret: string, id = this.hello!.id): void {
    const nonce = newNonce();
    this.auth = { auth: HANDSHAKE_VERSION, nonce, proof: peerProof(secret, id, this.hello!.nonce, nonce) };
    this.send(this.auth);
  }

  /** Send a frame body (encoded), or raw bytes as they are. */
  send(body: unknown): void {
    if (!this.socket.destroyed) this.socket.write(Buffer.isBuffer(body) ? body : encodeFrame(body));
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

  /** Frames received and not read yet. */
  drain(): unknown[] {
    return this.#frames.splice(0);
  }

  /** 'closed' when the shard closes the connection within `timeoutMs`, else 'open'. */
  async closedWithin(timeoutMs: number): Promise<'closed' | 'open'> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<'open'>((r) => {
      timer = setTimeout(() => r('open'), timeoutMs);
    });
    try {
      return await Promise.race([this.closed.then(() => 'closed' as const), t]);
    } finally {
      clearTimeout(timer);
    }
  }

  #wake(): void {
    for (const w of this.#waiters) w();
  }

  close(): void {
    this.socket.destroy();
  }
}
