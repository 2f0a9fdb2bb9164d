// Direct mode: the client does the router's job for its own keys. The
// topology comes from the routers (router-topology.ts); the routing itself is
// the router's own Forwarder (ring owner, STALE_EPOCH/NOT_OWNER refresh and
// retry, freeze waits, migration reads from both owners, pull-ahead), over
// the router's ShardConnection (framing, batching per event-loop turn, the
// cluster-secret handshake). Input is checked with the router's own rules
// (core/validate.ts, router/batch.ts' parser) and defaults, so a request
// gets the same result or KV_ERR_* code either way.
//
// Retries follow the HTTP path's safety rules (transport.ts): an attempt
// that surely sent nothing may be repeated; one that may have reached a
// shard only when it is a read.
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffMs } from '../core/backoff.js';
import { ROUTER_DEFAULTS, type BatchLimits } from '../core/config.js';
import { KvError, type ErrorCode } from '../core/errors.js';
import { OPS, type Body, type StoredValue } from '../core/protocol.js';
import { checkClientKey } from '../core/tenant.js';
import { parseIfMatch, parseTtl, validateContentType, validateKey, validateValue } from '../core/validate.js';
import { parseBatch, runBatch, type BatchResult } from '../router/batch.js';
import { Forwarder } from '../router/forwarder.js';
import type { Balancer } from './balancer.js';
import type { ClientConfig, DirectConfig } from './options.js';
import { RouterTopology } from './router-topology.js';
import { NOTHING_DONE } from './transport.js';

/** The routers' default limits: what a router with default settings would accept. */
const LIMITS: BatchLimits = {
  maxKeyBytes: ROUTER_DEFAULTS.maxKeyBytes,
  maxValueBytes: ROUTER_DEFAULTS.maxValueBytes,
  maxTtlSeconds: ROUTER_DEFAULTS.maxTtlSeconds,
  maxContentTypeBytes: ROUTER_DEFAULTS.maxContentTypeBytes,
  maxFrameBytes: ROUTER_DEFAULTS.maxFrameBytes,
  maxBatchOps: ROUTER_DEFAULTS.maxBatchOps,
};

/** A read that may have reached a shard learned nothing: asking again is safe. */
const READ_AGAIN: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['KV_ERR_OUTCOME_UNKNOWN', 'KV_ERR_TIMEOUT']);

export interface DirectPut {
  readonly ttl: number | undefined;
  readonly ifMatch: string | undefined;
  readonly ifNoneMatch: boolean;
}

function keyOf(key: unknown): string {
  return checkClientKey(validateKey(key, LIMITS));
}

export class DirectPath {
  readonly #cfg: ClientConfig;
  readonly #topology: RouterTopology;
  readonly #forwarder: Forwarder;

  constructor(cfg: ClientConfig, direct: DirectConfig, balancer: Balancer) {
    this.#cfg = cfg;
    this.#topology = new RouterTopology(balancer, { pollMs: direct.topologyPollMs, timeoutMs: cfg.timeoutMs });
    this.#forwarder = new Forwarder(this.#topology, {
      requestTimeoutMs: cfg.timeoutMs,
      connectTimeoutMs: cfg.connectTimeoutMs,
      maxInFlightPerShard: ROUTER_DEFAULTS.maxInFlightPerShard,
      maxFrameBytes: ROUTER_DEFAULTS.maxFrameBytes,
      clusterSecret: direct.clusterSecret,
      dataTls: direct.dataTls,
      tlsCaFile: direct.tlsCaFile,
      dataPingIntervalMs: ROUTER_DEFAULTS.dataPingIntervalMs,
      maxRetries: ROUTER_DEFAULTS.maxRetries,
      epochRetryDelayMs: ROUTER_DEFAULTS.epochRetryDelayMs,
    });
  }

  /** The epoch of the topology in use (undefined before the first request). */
  get epoch(): number | undefined {
    return this.#forwarder.topology?.epoch;
  }

  async get(key: string, signal: AbortSignal | undefined): Promise<StoredValue | null> {
    const k = keyOf(key);
    return this.#run(() => this.#forwarder.exec({ o: OPS.GET, k }), true, signal);
  }

  async put(key: string, bytes: Uint8Array, contentType: string, o: DirectPut, signal: AbortSignal | undefined): Promise<number> {
    const k = keyOf(key);
    const v = validateValue(bytes, LIMITS);
    const ttl = parseTtl(o.ttl, LIMITS);
    const ct = validateContentType(contentType, LIMITS);
    const m = parseIfMatch(o.ifMatch);
    const req: Body<'put'> = {
      o: OPS.PUT,
      k,
      v,
      ct,
      x: ttl ? Date.now() + ttl * 1000 : 0,
      ...(m !== undefined ? { m } : {}),
      ...(o.ifNoneMatch ? { n: true } : {}),
    };
    const r = await this.#run(() => this.#forwarder.exec(req), false, signal);
    return r.ver;
  }

  /** True when the key had a live value. */
  async del(key: string, ifMatch: string | undefined, signal: AbortSignal | undefined): Promise<boolean> {
    const k = keyOf(key);
    const m = parseIfMatch(ifMatch);
    const r = await this.#run(() => this.#forwarder.exec({ o: OPS.DEL, k, ...(m !== undefined ? { m } : {}) }), false, signal);
    return r.deleted;
  }

  /** A batch in the router's wire form: checked by the router's parser, each op routed to its owner. */
  async batch(body: string, signal: AbortSignal | undefined): Promise<BatchResult[]> {
    const ops = parseBatch(Buffer.from(body, 'utf8'), LIMITS);
    ops.forEach((op, n) => {
      try {
        checkClientKey(op.key);
      } catch (err) {
        throw err instanceof KvError ? new KvError(err.code, `ops[${n}]: ${err.message}`, { index: n }) : err;
      }
    });
    return this.#run(
      () => runBatch(ops, this.#forwarder),
      ops.every((op) => op.op === 'get'),
      signal,
    );
  }

  /** One request with its attempts; the caller's abort ends the wait at once (a write under way may still land). */
  async #run<T>(send: () => Promise<T>, idempotent: boolean, signal: AbortSignal | undefined): Promise<T> {
    let last: KvError | undefined;
    for (let attempt = 0; attempt <= this.#cfg.retries; attempt++) {
      signal?.throwIfAborted();
      if (attempt > 0) {
        await sleep(backoffMs(attempt - 1, this.#cfg.retryDelayMs, 1000), undefined, signal ? { signal } : {}).catch((err: unknown) => {
          throw signal?.aborted ? signal.reason : err;
        });
      }
      try {
        await this.#topology.ready();
        return await abortable(send(), signal);
      } catch (err) {
        if (!(err instanceof KvError)) throw err;
        last = err;
        // No router answered for the topology: nothing was sent to a shard either.
        const nothingSent = NOTHING_DONE.has(err.code) || err.code === 'KV_ERR_ROUTER_UNAVAILABLE';
        if (!(nothingSent || (idempotent && READ_AGAIN.has(err.code)))) throw err;
      }
    }
    throw last!;
  }

  close(): void {
    this.#topology.close();
    this.#forwarder.close();
  }
}

function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
