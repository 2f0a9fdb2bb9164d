// The hot data routes on plain node:http, ahead of Fastify: GET, HEAD, PUT
// and DELETE of /v1/kv/<key>, the requests a data service answers most. They
// cost a router worker a fraction of what Fastify's routing, hooks, reply
// and per-request objects do, and answer exactly as the Fastify routes in
// kv-routes.ts: the same checks in the same order (credentials and the
// tenant's rate first, then the body, then key, value, TTL, content type and
// preconditions), the same status codes, headers and error bodies from the
// same error table (infra/http.ts), the same admission control.
//
// A request takes this path only when it is plainly one of those: HTTP/1.1
// with a Host header, an origin-form target under /v1/kv/ with no query or
// fragment, no reserved name, a key no longer than the Fastify route
// accepts, and for a PUT a Content-Length within the body limit (no chunked
// body). Everything else (?ttl=, other methods, chunked uploads, odd
// targets) goes to Fastify, which answers it as it always has.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import type { RouterConfig } from '../core/config.js';
import { kvError, type KvError } from '../core/errors.js';
import { OPS, type StoredValue } from '../core/protocol.js';
import { etag, parseIfMatch, validateContentType, validateValue } from '../core/validate.js';
import { errorBody, newRequestId, toKvError } from '../infra/http.js';
import type { Admission } from './admission.js';
import type { Caller } from './authenticator.js';
import type { Forwarder } from './forwarder.js';
import { recordFgLatency } from './fg-latency.js';
import { ROUTE_KV_KEY, methodIndex, type RequestMetrics } from './request-metrics.js';
import { KV_PREFIX, RESERVED, TTL_HEADER, storedKeyOfPath, ttlOf, type CallerOf } from './kv-routes.js';

export interface FastPathDeps {
  readonly config: RouterConfig;
  readonly forwarder: Forwarder;
  readonly admission: Admission;
  readonly callerOf: CallerOf;
  readonly workerId: string;
  readonly draining: () => boolean;
  /** Told of every 5xx answer (a rebalance counts them). */
  readonly onServerError: () => void;
  readonly log: FastifyBaseLogger;
  /** Where answers are counted (undefined: requestMetrics=false). */
  readonly metrics: RequestMetrics | undefined;
}

/** The request handler's first look: true when it took the request. */
export type FastPath = (req: IncomingMessage, res: ServerResponse) => boolean;

const JSON_TYPE = 'application/json; charset=utf-8';
const EMPTY = Buffer.alloc(0);

export function kvFastPath(d: FastPathDeps): FastPath {
  const { config, forwarder, admission, callerOf, workerId, draining, metrics } = d;
  // Longer targets go to Fastify, which refuses them as it always has.
  const maxRaw = config.maxKeyBytes * 3 + 16;
  const maxBody = config.maxBodyBytes;

  /** The headers every answer carries, added to `list`; also counts the request and its latency (metrics, rebalance pacing). */
  function headers(res: ServerResponse, status: number, list: string[]): string[] {
    const ms = performance.now() - (res as Timed)[STARTED];
    recordFgLatency(ms);
    if (metrics) metrics.record(ROUTE_KV_KEY, methodIndex(res.req.method), status, ms);
    list.push('x-kv-worker', workerId);
    if (draining()) list.push('connection', 'close');
    return list;
  }

  function fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    if (res.headersSent || res.destroyed) return;
    const id = newRequestId();
    let kv: KvError = toKvError(err, maxBody);
    if (kv.code === 'KV_ERR_INTERNAL') {
      d.log.error({ err, requestId: id, method: req.method, url: req.url }, 'unhandled error');
      kv = kvError('KV_ERR_INTERNAL', `see the server log for request ${id}`);
    }
    if (kv.statusCode >= 500) d.onServerError();
    metrics?.error(kv.code);
    const body = Buffer.from(JSON.stringify(errorBody(kv, id)));
    const h = ['content-type', JSON_TYPE, 'content-length', String(body.length)];
    if (kv.retryAfterS !== undefined) h.push('retry-after', String(kv.retryAfterS));
    res.writeHead(kv.statusCode, headers(res, kv.statusCode, h));
    res.end(body);
  }

  /**
   * Run one shard operation for this connection under admission control:
   * the slot is given back before `ok` or the error answer runs (one reaction per
   * request, not one for the release and one for the answer).
   */
  function admitted<T>(req: IncomingMessage, res: ServerResponse, run: () => Promise<T>, ok: (r: T) => void): void {
    const client = req.socket;
    admission.acquire(client, 1);
    run().then(
      (r) => {
        admission.release(client, 1);
        ok(r);
      },
      (err: unknown) => {
        admission.release(client, 1);
        fail(req, res, err);
      },
    );
  }

  function get(req: IncomingMessage, res: ServerResponse, caller: Caller, raw: string): void {
    const k = storedKeyOfPath(caller, raw, config);
    admitted(
      req,
      res,
      () => forwarder.exec({ o: OPS.GET, k }),
      (rec: StoredValue | null) => {
        if (!rec) return fail(req, res, kvError('KV_ERR_NOT_FOUND'));
        if (res.destroyed) return;
        const v = rec.v;
        const body = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
        const h = ['etag', etag(rec.ver), 'content-type', rec.ct];
        if (rec.x) h.push('x-kv-expires-at', String(rec.x));
        h.push('content-length', String(body.length));
        res.writeHead(200, headers(res, 200, h));
        res.end(body);
      },
    );
  }

  function put(req: IncomingMessage, res: ServerResponse, caller: Caller, raw: string, body: Buffer): void {
    const k = storedKeyOfPath(caller, raw, config);
    const v = validateValue(body, config);
    const h = req.headers;
    const ttl = ttlOf(undefined, h[TTL_HEADER], config);
    const ct = validateContentType(h['content-type'], config);
    const m = parseIfMatch(h['if-match']);
    const inm = h['if-none-match'];
    if (inm !== undefined && inm !== '*') throw kvError('KV_ERR_BAD_PRECONDITION', JSON.stringify(inm));
    const x = ttl ? Date.now() + ttl * 1000 : 0;
    const op =
      m === undefined && inm === undefined
        ? { o: OPS.PUT, k, v, ct, x }
        : { o: OPS.PUT, k, v, ct, x, ...(m !== undefined ? { m } : {}), ...(inm === '*' ? { n: true } : {}) };
    admitted(
      req,
      res,
      () => forwarder.exec(op),
      (r) => {
        if (res.destroyed) return;
        res.writeHead(204, headers(res, 204, ['etag', etag(r.ver)]));
        res.end();
      },
    );
  }

  function del(req: IncomingMessage, res: ServerResponse, caller: Caller, raw: string): void {
    const k = storedKeyOfPath(caller, raw, config);
    const m = parseIfMatch(req.headers['if-match']);
    admitted(
      req,
      res,
      () => forwarder.exec(m === undefined ? { o: OPS.DEL, k } : { o: OPS.DEL, k, m }),
      (r) => {
        if (!r.deleted) return fail(req, res, kvError('KV_ERR_NOT_FOUND'));
        if (res.destroyed) return;
        res.writeHead(204, headers(res, 204, []));
        res.end();
      },
    );
  }

  /** The PUT body (its length is known and within the limit), then the write. */
  function readBody(req: IncomingMessage, res: ServerResponse, caller: Caller, raw: string, length: number): void {
    if (length === 0) return put(req, res, caller, raw, EMPTY);
    let first: Buffer | undefined;
    let parts: Buffer[] | undefined;
    req.on('data', (chunk: Buffer) => {
      if (first === undefined) first = chunk;
      else (parts ??= [first]).push(chunk);
    });
    req.on('end', () => {
      try {
        put(req, res, caller, raw, parts ? Buffer.concat(parts) : (first ?? EMPTY));
      } catch (err) {
        fail(req, res, err);
      }
    });
  }

  function serve(req: IncomingMessage, res: ServerResponse, caller: Caller, raw: string, length: number): void {
    try {
      switch (req.method) {
        case 'GET':
        case 'HEAD':
          return get(req, res, caller, raw);
        case 'PUT':
          return readBody(req, res, caller, raw, length);
        default:
          return del(req, res, caller, raw);
      }
    } catch (err) {
      fail(req, res, err);
    }
  }

  function start(req: IncomingMessage, res: ServerResponse, raw: string, length: number): void {
    let caller: Caller | Promise<Caller>;
    try {
      caller = callerOf(req);
    } catch (err) {
      return fail(req, res, err);
    }
    if (caller instanceof Promise) {
      caller.then(
        (c) => serve(req, res, c, raw, length),
        (err: unknown) => fail(req, res, err),
      );
    } else {
      serve(req, res, caller, raw, length);
    }
  }

  return (req, res) => {
    const url = req.url!;
    if (!url.startsWith(KV_PREFIX)) return false;
    const method = req.method;
    if (method !== 'GET' && method !== 'PUT' && method !== 'HEAD' && method !== 'DELETE') return false;
    if (req.httpVersionMinor !== 1 || req.httpVersionMajor !== 1 || req.headers.host === undefined) return false;
    const raw = url.slice(KV_PREFIX.length);
    if (raw === '' || raw.length > maxRaw || raw.includes('?') || raw.includes('#') || RESERVED.has(raw)) return false;
    let length = 0;
    if (method === 'PUT') {
      const cl = req.headers['content-length'];
      if (cl === undefined || req.headers['transfer-encoding'] !== undefined) return false;
      length = Number(cl);
      if (!(length <= maxBody)) return false;
    }
    // A client gone in the middle of its body is no error of ours.
    req.on('error', noop);
    (res as Timed)[STARTED] = performance.now();
    start(req, res, raw, length);
    return true;
  };
}

function noop(): void {}

const STARTED = Symbol('kv.fastPath.started');
type Timed = ServerResponse & { [STARTED]: number };
