// One request of the client, with its attempts: pick a router, send, and
// decide from how it failed whether another attempt is safe.
//
// - A request that surely never left (the connection was refused, or never
//   came up) may always be sent again, to another router.
// - A 503 whose code says nothing was written (overload, a shard or Redis
//   unavailable, a topology change) may be sent again too: the router did
//   nothing with it.
// - Any other failure after the request may have reached a router (a lost
//   connection, a timeout, a 502/504) is retried only for reads: a write may
//   have been applied, and sending it again could apply it twice or make a
//   compare-and-set fail on its own write. The caller gets a typed error
//   that says the outcome is unknown.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { backoffMs } from '../core/backoff.js';
import { KvError, fromWire, kvError, type ErrorCode } from '../core/errors.js';
import type { Balancer, Endpoint } from './balancer.js';
import type { ClientConfig } from './options.js';

export interface Exchange {
  readonly method: 'GET' | 'HEAD' | 'PUT' | 'DELETE' | 'POST';
  /** Path and query, already encoded. */
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: Uint8Array | string;
  /** The request may be sent again after it may have reached a router (reads). */
  readonly idempotent: boolean;
  readonly signal?: AbortSignal | undefined;
}

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  /** The router that answered. */
  readonly url: string;
}

/** Connection errors that happen before a byte of the request is written. */
const NOT_SENT = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** 503 codes that promise the router sent nothing on (docs/errors.md). */
export const NOTHING_DONE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'KV_ERR_BUSY',
  'KV_ERR_NOT_READY',
  'KV_ERR_NO_SHARDS',
  'KV_ERR_REDIS_UNAVAILABLE',
  'KV_ERR_SHARD_UNAVAILABLE',
  'KV_ERR_OVERLOADED',
  'KV_ERR_TOPOLOGY_CHANGING',
  'KV_ERR_MIGRATION_FREEZE',
]);

/** 502/503/504 codes about a shard, not the router: the router stays in the rotation. */
const SHARD_SIDE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'KV_ERR_SHARD_UNAVAILABLE',
  'KV_ERR_OVERLOADED',
  'KV_ERR_OUTCOME_UNKNOWN',
  'KV_ERR_TIMEOUT',
  'KV_ERR_TOPOLOGY_CHANGING',
  'KV_ERR_MIGRATION_FREEZE',
]);

function codeOf(err: unknown): string | undefined {
  const e = err as { code?: unknown; errors?: unknown; cause?: unknown };
  if (typeof e?.code === 'string') return e.code;
  if (Array.isArray(e?.errors)) return codeOf(e.errors[0]);
  if (e?.cause !== undefined) return codeOf(e.cause);
  return undefined;
}

/** An answer's error, rebuilt from its `{code, message, requestId}` body. */
export function errorOf(a: Answer): KvError {
  let wire: unknown;
  try {
    wire = JSON.parse(a.body.toString('utf8'));
  } catch {
    wire = undefined;
  }
  const w = wire as { code?: unknown; message?: unknown } | undefined;
  const err =
    w !== undefined && typeof w === 'object' && w !== null && typeof w.code === 'string' && w.code.startsWith('KV_ERR_')
      ? fromWire(w as Record<string, unknown>)
      : kvError('KV_ERR_BAD_RESPONSE', a.url, a.status, JSON.stringify(a.body.subarray(0, 120).toString('utf8')));
  const ra = a.headers['retry-after'];
  if (typeof ra === 'string' && /^\d+$/.test(ra)) err.retryAfterS = Number(ra);
  return err;
}

/** What an attempt's failure means for the next step. */
interface Failure {
  readonly error: KvError;
  /** Another attempt is safe whatever the method. */
  readonly nothingSent: boolean;
  /** The router is taken out of the rotation. */
  readonly routerDown: boolean;
}

export class Transport {
  readonly #cfg: ClientConfig;
  readonly #balancer: Balancer;

  constructor(cfg: ClientConfig, balancer: Balancer) {
    this.#cfg = cfg;
    this.#balancer = balancer;
  }

  /** Send `x` and return the router's answer (any status); throws for failures no attempt overcame. */
  async send(x: Exchange): Promise<Answer> {
    const tried = new Set<Endpoint>();
    let last: KvError | undefined;
    for (let attempt = 0; attempt <= this.#cfg.retries; attempt++) {
      x.signal?.throwIfAborted();
      const e = this.#balancer.pick(tried);
      if (tried.has(e)) {
        // Every router was tried: wait a little before going round again.
        const ms = backoffMs(attempt - this.#balancer.endpoints.length, this.#cfg.retryDelayMs, 1000);
        await sleep(ms, undefined, x.signal ? { signal: x.signal } : {}).catch((err: unknown) => {
          throw x.signal?.aborted ? x.signal.reason : err;
        });
      }
      tried.add(e);
      const f = await this.#attempt(e, x);
      if (!('error' in f)) return f;
      last = f.error;
      if (f.routerDown) this.#balancer.markDown(e, f.error.message);
      if (!(f.nothingSent || x.idempotent)) break;
    }
    throw last!;
  }

  async #attempt(e: Endpoint, x: Exchange): Promise<Answer | Failure> {
    let res: Dispatcher.ResponseData;
    const timeoutMs = this.#cfg.timeoutMs;
    try {
      res = await e.pool.request({
        method: x.method,
        path: x.path,
        headers: x.headers ?? {},
        body: x.body ?? null,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: x.signal ?? null,
      });
    } catch (err) {
      return this.#failure(e, x, err, false);
    }
    let body: Buffer;
    try {
      body = await this.#read(res, x.signal);
    } catch (err) {
      return this.#failure(e, x, err, true);
    }
    e.answered++;
    const a: Answer = { status: res.statusCode, headers: res.headers, body, url: e.url };
    if (a.status !== 502 && a.status !== 503 && a.status !== 504) return a;
    const error = errorOf(a);
    // A 502/503 from the router itself (not ready, overloaded, Redis down),
    // or one without a KV_ERR_* code (a proxy in front of it), takes it out.
    const routerSide = a.status !== 504 && !SHARD_SIDE.has(error.code);
    return { error, nothingSent: a.status === 503 && NOTHING_DONE.has(error.code), routerDown: routerSide };
  }

  async #read(res: Dispatcher.ResponseData, signal: AbortSignal | undefined): Promise<Buffer> {
    const max = this.#cfg.maxResponseBytes;
    const length = Number(res.headers['content-length'] ?? NaN);
    if (Number.isSafeInteger(length) && length <= max) {
      // The common case: the router names the length, so read it in one go.
      const body = Buffer.from(await res.body.arrayBuffer());
      signal?.throwIfAborted();
      return body;
    }
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > max) {
        res.body.destroy();
        throw kvError('KV_ERR_BAD_RESPONSE', 'the router', res.statusCode, `a body over maxResponseBytes (${max})`);
      }
      chunks.push(chunk);
    }
    signal?.throwIfAborted();
    return Buffer.concat(chunks, n);
  }

  #failure(e: Endpoint, x: Exchange, err: unknown, answered: boolean): Failure {
    // The caller's own abort ends the request at once, with the signal's reason.
    if (x.signal?.aborted) throw x.signal.reason;
    if (err instanceof KvError) throw err;
    const code = codeOf(err) ?? 'unknown';
    const why = `${code}: ${(err as Error)?.message ?? String(err)}`;
    if (!answered && NOT_SENT.has(code)) {
      return { error: kvError('KV_ERR_ROUTER_UNAVAILABLE', `${e.url}: ${why}`), nothingSent: true, routerDown: true };
    }
    if (TIMEOUTS.has(code)) {
      return { error: kvError('KV_ERR_ROUTER_TIMEOUT', e.url, this.#cfg.timeoutMs), nothingSent: false, routerDown: true };
    }
    return { error: kvError('KV_ERR_ROUTER_LOST', e.url, why), nothingSent: false, routerDown: true };
  }
}
